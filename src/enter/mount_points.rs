//! Mount points in the sysroot, created when missing and removed again at the end, so
//! that the sysroot is left as it was found. Paths resolve inside the sysroot (through
//! [`RootDir`]), so an absolute symlink in it never puts a mount point on the host.
//!
//! Each one is recorded in [`RECORD`] before it is made, so that a run killed with
//! SIGKILL is cleaned up by the next one. Sessions of one sysroot hold a shared lock on
//! it; removal (of one's own or recorded mount points) happens only under the exclusive
//! lock, i.e. when no other session may be using them.

use crate::rootfs::RootDir;
use rustix::fs::{FlockOperation, OFlags};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The record of mount points made, at the top of the sysroot.
pub(crate) const RECORD: &str = ".sysroot-mk-mount-points";
/// A record is a few lines; anything larger is not ours.
const MAX_RECORD: u64 = 1024 * 1024;

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
    /// The sysroot opened for reading, holding the session lock (`None`: locks
    /// unavailable, then nothing recorded is removed).
    lock: Option<OwnedFd>,
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
    /// Tracks mount points under `root`: takes the shared lock, after removing what an
    /// earlier, killed run recorded when no other session is running.
    pub(crate) fn new(root: &'a RootDir) -> MountPoints<'a> {
        let lock = rustix::fs::open(
            format!("/proc/self/fd/{}", root.as_fd().as_raw_fd()),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok();
        let points = MountPoints {
            root,
            created: Vec::new(),
            lock,
        };
        if let Some(lock) = &points.lock {
            if rustix::fs::flock(lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
                points.remove_recorded();
            }
            let _ = rustix::fs::flock(lock, FlockOperation::LockShared);
        }
        points
    }

    /// Removes every recorded mount point that is still empty, newest first, then the
    /// record. Only under the exclusive lock.
    fn remove_recorded(&self) {
        let Ok(Some(text)) = self.root.read_regular(RECORD, MAX_RECORD, false) else {
            return;
        };
        for line in text.split(|&b| b == b'\n').rev() {
            let kind = match line.first() {
                Some(b'd') => Kind::Dir,
                Some(b'f') => Kind::File,
                _ => continue,
            };
            let rel = relative(Path::new(std::ffi::OsStr::from_bytes(&line[1..])));
            if rel.as_os_str().is_empty() {
                continue;
            }
            self.remove_if_empty(&rel, kind);
        }
        let _ = self.root.remove(RECORD);
    }

    /// Appends `rel` to the record (before it is created: a kill in between leaves a
    /// line for something absent, which removal skips).
    fn record(&self, rel: &Path, kind: Kind) -> std::io::Result<()> {
        if rel.as_os_str().as_bytes().contains(&b'\n') {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW;
        let fd = self.root.open_in(RECORD, flags, 0o600)?;
        let mut line = vec![if kind == Kind::Dir { b'd' } else { b'f' }];
        line.extend_from_slice(rel.as_os_str().as_bytes());
        line.push(b'\n');
        // One write: appends of concurrent sessions do not interleave.
        std::fs::File::from(fd).write_all(&line)
    }

    fn remove_if_empty(&self, rel: &Path, kind: Kind) {
        // A directory someone filled meanwhile stays (rmdir refuses); that is intended.
        let _ = match kind {
            Kind::Dir => self.root.remove_dir(rel),
            Kind::File => match self.root.lstat(rel) {
                Ok(Some(st))
                    if st.st_size == 0
                        && rustix::fs::FileType::from_raw_mode(st.st_mode)
                            == rustix::fs::FileType::RegularFile =>
                {
                    self.root.remove(rel)
                }
                _ => return,
            },
        };
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
        self.record(&rel, kind)?;
        match kind {
            Kind::Dir => self.root.mkdir(&rel, None, 0o755)?,
            Kind::File => self.root.touch(&rel, 0o644)?,
        }
        self.created.push((rel, kind));
        Ok(())
    }

    /// Removes what [`ensure`](Self::ensure) created, newest first, when still empty,
    /// and whatever else was recorded, unless another session holds the sysroot: then
    /// the record keeps them for the last one to end.
    pub(crate) fn remove_created(&mut self) {
        let Some(lock) = &self.lock else { return };
        if rustix::fs::flock(lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            return;
        }
        while let Some((rel, kind)) = self.created.pop() {
            self.remove_if_empty(&rel, kind);
        }
        self.remove_recorded();
        let _ = rustix::fs::flock(lock, FlockOperation::LockShared);
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
        assert!(!dir.path().join(RECORD).exists());
    }

    #[test]
    fn what_a_killed_run_recorded_is_removed_by_the_next_but_not_under_a_live_session() {
        let dir = tempfile::tempdir().unwrap();
        let open = || RootDir::open(dir.path()).unwrap();
        let (a, b, c, d) = (open(), open(), open(), open());
        // A session is running when another one makes mount points and is killed.
        let live = MountPoints::new(&a);
        let mut killed = MountPoints::new(&b);
        killed.ensure(Path::new("/run"), Kind::Dir).unwrap();
        killed
            .ensure(Path::new("/etc/resolv.conf"), Kind::File)
            .unwrap();
        killed.created.clear();
        drop(killed);
        assert!(dir.path().join(RECORD).exists());
        // A third run while the first is alive leaves them: they may be in use.
        let mut third = MountPoints::new(&c);
        third.remove_created();
        drop(third);
        assert!(dir.path().join("run").is_dir());
        drop(live);
        // The next run alone cleans up.
        let _next = MountPoints::new(&d);
        assert!(!dir.path().join("run").exists());
        assert!(!dir.path().join("etc").exists());
        assert!(!dir.path().join(RECORD).exists());
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
