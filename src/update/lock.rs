//! One update of a sysroot at a time, and none while apk works on it: the update holds
//! apk's own lock, `flock` on `lib/apk/db/lock`, from reading the database to the
//! exchange. The exchange swaps in a tree with another lock file, so a waiter that gets
//! the lock checks that the sysroot is still the tree it locked, and starts over if not.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FlockOperation, OFlags};

use super::UpdateError;
use crate::report::Reporter;
use crate::rootfs::RootDir;

/// The held lock; released when dropped.
#[derive(Debug)]
pub struct DbLock {
    _fd: OwnedFd,
}

/// Takes the lock of the sysroot at `dir`, waiting (and saying so) while another process
/// holds it. The lock file is opened read-only and never created, so that an update with
/// nothing to do leaves the sysroot untouched; a tree without one is locked through its
/// root directory.
pub fn lock(dir: &Path, reporter: &dyn Reporter) -> Result<DbLock, UpdateError> {
    let io = |source: std::io::Error| UpdateError::Read {
        path: dir.join(crate::db::LOCK).display().to_string(),
        source,
    };
    let mut said = false;
    loop {
        let root = RootDir::open(dir).map_err(io)?;
        let fd = match root.open_in(crate::db::LOCK, OFlags::RDONLY | OFlags::NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => root
                .open_in("", OFlags::RDONLY | OFlags::DIRECTORY, 0)
                .map_err(io)?,
            Err(e) => return Err(io(e)),
        };
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                if !said {
                    reporter.info(&format!(
                        "waiting for another process (apk, or sysroot-mk) to finish with `{}`",
                        dir.display()
                    ));
                    said = true;
                }
                rustix::fs::flock(&fd, FlockOperation::LockExclusive).map_err(|e| io(e.into()))?;
            }
            Err(e) => return Err(io(e.into())),
        }
        // Still the tree we opened? (An update that finished meanwhile exchanged it.)
        let now = rustix::fs::stat(dir).map_err(|e| io(e.into()))?;
        let locked = rustix::fs::fstat(root_fd(&root)?).map_err(|e| io(e.into()))?;
        if (now.st_dev, now.st_ino) == (locked.st_dev, locked.st_ino) {
            return Ok(DbLock { _fd: fd });
        }
    }
}

fn root_fd(root: &RootDir) -> Result<OwnedFd, UpdateError> {
    root.open_in("", OFlags::PATH | OFlags::DIRECTORY, 0)
        .map_err(|source| UpdateError::Read {
            path: root.path().display().to_string(),
            source,
        })
}
