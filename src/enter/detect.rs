//! What a sysroot is: its arch (from `etc/apk/arch`, else an ELF header) and hostname.

use super::EnterError;
use crate::arch::Arch;
use crate::rootfs::RootDir;
use std::path::Path;

/// Finds the arch of the sysroot at `root`: `etc/apk/arch` when present, else the ELF
/// header of `bin/busybox` or of what `bin/sh` points to (resolved inside the sysroot).
pub fn detect_arch(root: &Path) -> Result<Arch, EnterError> {
    let fd = RootDir::open(root).map_err(|_| EnterError::NotADirectory(root.to_path_buf()))?;
    detect_arch_at(&fd)
}

/// [`detect_arch`] on a sysroot already opened (and checked) by the caller.
pub fn detect_arch_at(fd: &RootDir) -> Result<Arch, EnterError> {
    let root = fd.path();
    let read_err = |path: &str| {
        let path = path.into();
        move |source| EnterError::Read {
            root: root.to_path_buf(),
            path,
            source,
        }
    };
    if let Some(data) = fd
        .read_regular("etc/apk/arch", 256, false)
        .map_err(read_err("etc/apk/arch"))?
    {
        let name = String::from_utf8_lossy(&data).trim().to_string();
        if !name.is_empty() {
            return Arch::from_name(&name).ok_or_else(|| EnterError::UnlistedArch {
                root: root.to_path_buf(),
                name,
                known: Arch::names().collect::<Vec<_>>().join(", "),
            });
        }
    }
    // bin/sh is a symlink to busybox by design; resolving stays inside the root.
    for (candidate, follow) in [("bin/busybox", false), ("bin/sh", true)] {
        if let Some(arch) = elf_arch(fd, candidate, follow) {
            return Ok(arch);
        }
    }
    Err(EnterError::UnknownArch(root.to_path_buf()))
}

fn elf_arch(root: &RootDir, rel: &str, follow: bool) -> Option<Arch> {
    let header = root.read_regular(rel, 20, follow).ok()??;
    Arch::from_elf_header(&header)
}

/// The sysroot's `etc/hostname` when it holds a valid name, else `sysroot`.
pub(crate) fn hostname(root: &RootDir) -> String {
    let name = root
        .read_regular("etc/hostname", 256, false)
        .ok()
        .flatten()
        .map(|d| {
            String::from_utf8_lossy(&d)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid {
        name
    } else {
        "sysroot".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apk_arch_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/apk")).unwrap();
        std::fs::write(dir.path().join("etc/apk/arch"), "riscv64\n").unwrap();
        assert_eq!(detect_arch(dir.path()).unwrap().name(), "riscv64");
    }

    #[test]
    fn unknown_apk_arch_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/apk")).unwrap();
        std::fs::write(dir.path().join("etc/apk/arch"), "sparc64\n").unwrap();
        let err = detect_arch(dir.path()).unwrap_err().to_string();
        assert!(err.contains("`sparc64`"), "{err}");
    }

    #[test]
    fn elf_header_of_sh_target_is_used_through_absolute_symlink() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        let magic = hex::decode(Arch::from_name("s390x").unwrap().info().magic).unwrap();
        std::fs::write(dir.path().join("bin/real"), &magic).unwrap();
        std::os::unix::fs::symlink("/bin/real", dir.path().join("bin/sh")).unwrap();
        assert_eq!(detect_arch(dir.path()).unwrap().name(), "s390x");
    }

    #[test]
    fn empty_tree_has_no_arch() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            detect_arch(dir.path()),
            Err(EnterError::UnknownArch(_))
        ));
    }

    #[test]
    fn hostname_falls_back_when_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let fd = RootDir::open(dir.path()).unwrap();
        assert_eq!(hostname(&fd), "sysroot");
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hostname"), "box-1\n").unwrap();
        assert_eq!(hostname(&fd), "box-1");
        std::fs::write(dir.path().join("etc/hostname"), "bad name!\n").unwrap();
        assert_eq!(hostname(&fd), "sysroot");
    }
}
