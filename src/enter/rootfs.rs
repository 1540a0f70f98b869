//! Paths inside the sysroot, resolved the way the sysroot itself would see them.
//!
//! A sysroot may hold absolute symlinks (`bin/sh -> /bin/busybox`, `etc/resolv.conf ->
//! /run/...`); followed from the host they would lead out of it, and a mount made
//! through one would land on the host's file. Every lookup here goes through
//! `openat2(RESOLVE_IN_ROOT)`, which treats the sysroot as `/`.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Opens the sysroot's top directory as a path handle.
pub(crate) fn open_root(root: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `rel` without leading `/`, `.` or `..` games (`..` is resolved by the kernel within the root).
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

/// Opens `rel` inside the sysroot `root` (a path handle, or `flags` when given).
pub(crate) fn open_in(root: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> std::io::Result<OwnedFd> {
    let rel = relative(rel);
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    Ok(rustix::fs::openat2(
        root,
        &rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// A path naming an open file through `/proc/self/fd`, for syscalls that take paths
/// (mount). It stays valid as long as `fd` is open.
pub(crate) fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Reads at most `max` bytes of `rel` inside the sysroot; `None` when it does not exist.
pub(crate) fn read_in(
    root: BorrowedFd<'_>,
    rel: &Path,
    max: u64,
) -> std::io::Result<Option<Vec<u8>>> {
    let fd = match open_in(root, rel, OFlags::RDONLY) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    std::fs::File::from(fd).take(max).read_to_end(&mut data)?;
    Ok(Some(data))
}

/// What a mount point must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// A regular file (for binding a file).
    File,
}

/// Mount points in the sysroot, created when missing and removed again at the end, so
/// that the sysroot is left as it was found.
pub(crate) struct MountPoints<'a> {
    fd: BorrowedFd<'a>,
    created: Vec<(PathBuf, Kind)>,
}

impl<'a> MountPoints<'a> {
    /// Tracks mount points under the sysroot open as `fd`.
    pub(crate) fn new(fd: &'a OwnedFd) -> MountPoints<'a> {
        MountPoints {
            fd: fd.as_fd(),
            created: Vec::new(),
        }
    }

    /// Makes sure `rel` exists as `kind` (creating missing parents as directories).
    pub(crate) fn ensure(&mut self, rel: &Path, kind: Kind) -> std::io::Result<()> {
        let rel = relative(rel);
        if rel.as_os_str().is_empty() || open_in(self.fd, &rel, OFlags::PATH).is_ok() {
            return Ok(());
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(std::io::ErrorKind::InvalidInput.into());
        };
        self.ensure(parent, Kind::Dir)?;
        let dir = open_in(self.fd, parent, OFlags::PATH | OFlags::DIRECTORY)?;
        match kind {
            Kind::Dir => rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))?,
            Kind::File => {
                rustix::fs::openat(
                    &dir,
                    name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )?;
            }
        }
        self.created.push((rel, kind));
        Ok(())
    }

    /// Removes what [`ensure`](Self::ensure) created, newest first, when still empty.
    pub(crate) fn remove_created(&mut self) {
        while let Some((rel, kind)) = self.created.pop() {
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                continue;
            };
            let Ok(dir) = open_in(self.fd, parent, OFlags::PATH | OFlags::DIRECTORY) else {
                continue;
            };
            let flags = match kind {
                Kind::Dir => rustix::fs::AtFlags::REMOVEDIR,
                Kind::File => {
                    let empty =
                        rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                            .is_ok_and(|st| st.st_size == 0);
                    if !empty {
                        continue;
                    }
                    rustix::fs::AtFlags::empty()
                }
            };
            // A directory someone filled meanwhile stays (rmdir refuses); that is intended.
            let _ = rustix::fs::unlinkat(&dir, name, flags);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hostname"), "inside\n").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("name")).unwrap();
        let fd = open_root(dir.path()).unwrap();
        let data = read_in(fd.as_fd(), Path::new("/name"), 100)
            .unwrap()
            .unwrap();
        assert_eq!(data, b"inside\n");
        assert!(read_in(fd.as_fd(), Path::new("/missing"), 100)
            .unwrap()
            .is_none());
    }

    #[test]
    fn created_mount_points_are_removed_but_filled_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_root(dir.path()).unwrap();
        let mut points = MountPoints::new(&fd);
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
}
