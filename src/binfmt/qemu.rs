//! Finding qemu and what it can do.

use super::BinfmtError;
use crate::arch::Arch;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Finds the qemu for `arch`: `explicit` when given, else `qemu-<name>-static` or
/// `qemu-<name>` on PATH.
pub fn find_qemu(arch: Arch, explicit: Option<&Path>) -> Result<PathBuf, BinfmtError> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(path) = explicit {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        return if is_exe(&path) {
            Ok(path)
        } else {
            Err(BinfmtError::QemuNotExecutable(path))
        };
    }
    let qemu = arch.info().qemu;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for name in [format!("qemu-{qemu}-static"), format!("qemu-{qemu}")] {
        for dir in std::env::split_paths(&path).filter(|d| d.is_absolute()) {
            let candidate = dir.join(&name);
            if is_exe(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(BinfmtError::QemuMissing {
        arch: arch.info().name,
        qemu,
    })
}

/// Whether the ELF file at `path` has no program interpreter (is statically linked);
/// `None` when it cannot be read as ELF. A dynamic qemu cannot run inside a sysroot,
/// whose libraries are the target's, not the host's.
pub fn is_static_elf(path: &Path) -> Option<bool> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    if head.len() < 52 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let wide = head[4] == 2;
    let little = head[5] == 1;
    let num = |at: usize, len: usize| -> Option<u64> {
        let bytes = head.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let b = if little { bytes[len - 1 - i] } else { bytes[i] };
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (num(32, 8)?, num(54, 2)?, num(56, 2)?)
    } else {
        (num(28, 4)?, num(42, 2)?, num(44, 2)?)
    };
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).ok()?;
        // PT_INTERP names the dynamic loader.
        if num(at, 4)? == 3 {
            return Some(false);
        }
    }
    Some(true)
}

/// Whether `qemu` takes the original `argv[0]` from the kernel (`P` flag, through
/// `AT_FLAGS`), which qemu does since 6.0; older or unknown versions get no `P`.
pub fn qemu_preserves_argv0(qemu: &Path) -> bool {
    let Ok(out) = std::process::Command::new(qemu)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or("");
    version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|major| major >= 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        // This test binary is dynamic on the usual hosts; a truncated file is not ELF.
        let me = std::env::current_exe().unwrap();
        assert!(is_static_elf(&me).is_some());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), b"\x7fELF").unwrap();
        assert_eq!(is_static_elf(&dir.path().join("short")), None);
        if Path::new("/usr/bin/qemu-aarch64-static").exists() {
            assert_eq!(
                is_static_elf(Path::new("/usr/bin/qemu-aarch64-static")),
                Some(true)
            );
        }
        if Path::new("/bin/sh").exists() {
            assert_eq!(is_static_elf(Path::new("/bin/sh")), Some(false));
        }
    }
}
