//! Reading the sysroot's small configuration files without trusting them: a device
//! node or FIFO planted as `etc/passwd` must not even be opened for reading (opening
//! some devices acts), and a symlink must not lead to another file.

use crate::rootfs::RootDir;
use rustix::fs::{FileType, OFlags};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Reads at most `limit` bytes of the regular file `rel` of the sysroot; `None` when it
/// does not exist. The path is resolved inside the root; the last component is not
/// followed unless `follow` (for `bin/sh`, a symlink by design). The file is first
/// opened as a path only, its type checked, and only then opened for reading, through
/// the same handle.
pub(crate) fn read_regular(
    root: &RootDir,
    rel: impl AsRef<Path>,
    limit: u64,
    follow: bool,
) -> std::io::Result<Option<Vec<u8>>> {
    let rel = rel.as_ref();
    let flags = if follow {
        OFlags::PATH
    } else {
        OFlags::PATH | OFlags::NOFOLLOW
    };
    let handle = match root.open_in(rel, flags, 0) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let kind = FileType::from_raw_mode(rustix::fs::fstat(&handle)?.st_mode);
    if kind != FileType::RegularFile {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "`{}` is not a regular file ({kind:?}); refusing to read it",
                rel.display()
            ),
        ));
    }
    // Reopening the handle's own inode: no path is looked up again.
    let file = rustix::fs::open(
        format!("/proc/self/fd/{}", handle.as_raw_fd()),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let mut out = Vec::new();
    std::fs::File::from(file)
        .take(limit)
        .read_to_end(&mut out)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_and_symlinks_are_refused_regular_files_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/real"), "data").unwrap();
        nix::unistd::mkfifo(&dir.path().join("etc/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("etc/link")).unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        assert_eq!(
            read_regular(&root, "etc/real", 2, false).unwrap(),
            Some(b"da".to_vec())
        );
        assert!(read_regular(&root, "etc/fifo", 10, false).is_err());
        assert!(read_regular(&root, "etc/link", 10, false).is_err());
        assert_eq!(
            read_regular(&root, "etc/link", 10, true).unwrap(),
            Some(b"data".to_vec())
        );
        assert_eq!(read_regular(&root, "etc/none", 10, false).unwrap(), None);
    }
}
