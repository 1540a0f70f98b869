//! `--relative-links`: absolute symlinks (`lib/libc.musl-x86_64.so.1 -> /lib/ld-musl-...`,
//! busybox's applets `-> /bin/busybox`) rewritten as relative ones, so that tools on the
//! host that take the tree as a sysroot (`clang --sysroot=DIR`) resolve them inside it
//! rather than on the host.
//!
//! apk's `audit` compares a link's target with the checksum in `installed`, so every
//! rewrite is recorded in [`RECORD`] (`path`, tab, the original target), from which the
//! original links can be put back.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::{in_root, LayoutError};
use crate::rootfs::RootDir;

/// Where the rewritten links are listed, relative to the root.
pub const RECORD: &str = "lib/apk/sysroot-mk.relative-links";

/// `target` (absolute, inside the root) as seen from the directory `from` (relative to
/// the root): `../` up to their common ancestor, then down. The common part stops at a
/// `..` of the target, which is kept as written after it.
pub fn relative_target(from: &Path, target: &str) -> String {
    let here: Vec<&std::ffi::OsStr> = from
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let there: Vec<&str> = target
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let common = here
        .iter()
        .zip(&there)
        .take_while(|(a, b)| **a == std::ffi::OsStr::new(b) && **b != "..")
        .count();
    let mut parts: Vec<&str> = vec![".."; here.len() - common];
    parts.extend(&there[common..]);
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Rewrites every absolute symlink below `root` as a relative one and records what it
/// changed; returns how many. Directories are walked without following links, and every
/// write goes through [`RootDir`], so nothing outside the root is touched.
pub fn make_links_relative(root: &Path) -> Result<usize, LayoutError> {
    let dir = in_root(root, ".", RootDir::open(root))?;
    let mut record = String::new();
    let mut count = 0;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let shown = |p: &Path| p.display().to_string();
        let entries = in_root(root, &shown(&rel), std::fs::read_dir(root.join(&rel)))?;
        for entry in entries {
            let entry = in_root(root, &shown(&rel), entry)?;
            let path = rel.join(entry.file_name());
            let kind = in_root(root, &shown(&path), entry.file_type())?;
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if !kind.is_symlink() {
                continue;
            }
            let target = in_root(root, &shown(&path), std::fs::read_link(root.join(&path)))?;
            let Some(target) = target.to_str().filter(|t| t.starts_with('/')) else {
                continue;
            };
            let relative = relative_target(&rel, target);
            in_root(
                root,
                &shown(&path),
                replace_link(&dir, &rel, &entry.file_name(), &relative),
            )?;
            record.push_str(&format!("{}\t{target}\n", shown(&path)));
            count += 1;
        }
    }
    if count > 0 {
        in_root(root, "lib/apk", dir.mkdir_all("lib/apk", 0o755))?;
        in_root(
            root,
            RECORD,
            dir.write_atomic(RECORD, record.as_bytes(), 0o644),
        )?;
    }
    Ok(count)
}

/// Replaces the link `name` in `parent` by one to `target`, atomically (a new link
/// under a temporary name, renamed over the old one), with the old link's owner.
fn replace_link(
    root: &RootDir,
    parent: &Path,
    name: &std::ffi::OsStr,
    target: &str,
) -> io::Result<()> {
    let dir = root.dir(parent)?;
    let owner = dir
        .stat(name)?
        .filter(|_| rustix::process::geteuid().is_root())
        .map(|st| (st.st_uid, st.st_gid));
    let mut temp = std::ffi::OsString::from(".sysroot-mk-link.");
    temp.push(name);
    dir.symlink(&temp, target, owner)?;
    dir.rename(&temp, name).inspect_err(|_| {
        let _ = dir.remove(&temp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_become_relative_to_the_links_directory() {
        assert_eq!(relative_target(Path::new("bin"), "/bin/busybox"), "busybox");
        assert_eq!(
            relative_target(Path::new("usr/bin"), "/bin/busybox"),
            "../../bin/busybox"
        );
        assert_eq!(
            relative_target(Path::new("lib"), "/lib/ld-musl-x86_64.so.1"),
            "ld-musl-x86_64.so.1"
        );
        assert_eq!(relative_target(Path::new(""), "/usr/lib"), "usr/lib");
        assert_eq!(relative_target(Path::new("var"), "/var"), ".");
        assert_eq!(relative_target(Path::new("etc"), "/"), "..");
        assert_eq!(relative_target(Path::new("a/b"), "/a/../x"), "../../x");
    }

    #[test]
    fn absolute_links_are_rewritten_and_recorded_others_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/busybox"), b"").unwrap();
        std::os::unix::fs::symlink("/bin/busybox", root.join("usr/bin/env")).unwrap();
        std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("/run", root.join("var-run")).unwrap();
        assert_eq!(make_links_relative(root).unwrap(), 2);
        let link = |p: &str| std::fs::read_link(root.join(p)).unwrap();
        assert_eq!(link("usr/bin/env"), PathBuf::from("../../bin/busybox"));
        assert_eq!(link("bin/sh"), PathBuf::from("busybox"));
        assert_eq!(link("var-run"), PathBuf::from("run"));
        let record = std::fs::read_to_string(root.join(RECORD)).unwrap();
        assert!(record.contains("usr/bin/env\t/bin/busybox\n"), "{record}");
        assert!(record.contains("var-run\t/run\n"), "{record}");
        assert!(std::fs::canonicalize(root.join("usr/bin/env"))
            .unwrap()
            .starts_with(std::fs::canonicalize(root).unwrap()));
    }
}
