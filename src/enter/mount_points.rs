//! Mount points in the sysroot, created when missing and removed again at the end, so
//! that the sysroot is left as it was found. Paths resolve inside the sysroot (through
//! [`RootDir`]), so an absolute symlink in it never puts a mount point on the host.

use crate::rootfs::RootDir;
use rustix::fs::OFlags;
use std::path::{Component, Path, PathBuf};

/// What a mount point must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// A regular file (for binding a file).
    File,
}

/// The mount points made in one sysroot, for removal.
pub(crate) struct MountPoints<'a> {
    root: &'a RootDir,
    created: Vec<(PathBuf, Kind)>,
}

/// `rel` as plain names (`/` and `.` dropped; `..` stays, the kernel keeps it inside).
fn relative(rel: &Path) -> PathBuf {
    rel.components()
        .filter(|c| {
            !matches!(
                c,
                Component::RootDir | Component::Prefix(_) | Component::CurDir
            )
        })
        .collect()
}

impl<'a> MountPoints<'a> {
    /// Tracks mount points under `root`.
    pub(crate) fn new(root: &'a RootDir) -> MountPoints<'a> {
        MountPoints {
            root,
            created: Vec::new(),
        }
    }

    /// Makes sure `rel` exists as `kind` (creating missing parents as directories);
    /// something else in the way (a dangling symlink) is an error.
    pub(crate) fn ensure(&mut self, rel: &Path, kind: Kind) -> std::io::Result<()> {
        let rel = relative(rel);
        if self.root.open_in(&rel, OFlags::PATH, 0).is_ok() {
            return Ok(());
        }
        let (Some(parent), Some(_)) = (rel.parent(), rel.file_name()) else {
            return Err(std::io::ErrorKind::InvalidInput.into());
        };
        self.ensure(parent, Kind::Dir)?;
        if self.root.exists(&rel)? {
            return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
        }
        match kind {
            Kind::Dir => self.root.mkdir(&rel, None, 0o755)?,
            Kind::File => self.root.touch(&rel, 0o644)?,
        }
        self.created.push((rel, kind));
        Ok(())
    }

    /// Removes what [`ensure`](Self::ensure) created, newest first, when still empty.
    pub(crate) fn remove_created(&mut self) {
        while let Some((rel, kind)) = self.created.pop() {
            // A directory someone filled meanwhile stays (rmdir refuses); that is intended.
            let _ = match kind {
                Kind::Dir => self.root.remove_dir(&rel),
                Kind::File => match self.root.lstat(&rel) {
                    Ok(Some(st)) if st.st_size == 0 => self.root.remove(&rel),
                    _ => continue,
                },
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_mount_points_are_removed_but_filled_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let mut points = MountPoints::new(&root);
        points.ensure(Path::new("/a/b/c"), Kind::Dir).unwrap();
        points
            .ensure(Path::new("/etc/resolv.conf"), Kind::File)
            .unwrap();
        points.ensure(Path::new("/keep/file"), Kind::File).unwrap();
        std::fs::write(dir.path().join("keep/file"), "data").unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
        points.remove_created();
        assert!(!dir.path().join("a").exists());
        assert!(!dir.path().join("etc").exists());
        assert!(dir.path().join("keep/file").exists());
    }

    #[test]
    fn dangling_symlink_in_the_way_is_an_error_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/run/gone", dir.path().join("etc/resolv.conf")).unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let mut points = MountPoints::new(&root);
        let err = points
            .ensure(Path::new("/etc/resolv.conf"), Kind::File)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        points.remove_created();
        assert!(dir.path().join("etc/resolv.conf").is_symlink());
    }
}
