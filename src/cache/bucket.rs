//! One bucket of the cache, held open by descriptor, and the atomic writes entries go
//! through.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

use super::CacheError;

/// A bucket folder of the cache, held open: entries are opened, renamed and removed
/// relative to it, never through a symlink.
#[derive(Debug, Clone)]
pub struct Bucket {
    path: PathBuf,
    fd: Arc<OwnedFd>,
}

impl Bucket {
    pub(super) fn new(path: PathBuf, fd: OwnedFd) -> Bucket {
        Bucket {
            path,
            fd: Arc::new(fd),
        }
    }

    /// The bucket's path (for messages and for readers outside the cache code).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bucket's descriptor (for listing it).
    pub(super) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Opens the entry `name` for reading; `None` when absent. A symlink or anything
    /// but a regular file is an error.
    pub fn open(&self, name: &str) -> std::io::Result<Option<File>> {
        match rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => regular(File::from(fd), &self.path.join(name)).map(Some),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens (creating it if missing) the file `name` for reading and writing, without
    /// following a symlink; refuses anything but a regular file with one link.
    pub fn open_rw(&self, name: &str) -> std::io::Result<File> {
        let fd = rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::from_raw_mode(0o644),
        )?;
        regular(File::from(fd), &self.path.join(name))
    }

    /// Whether `file` is still the entry named `name` (not renamed or replaced).
    pub fn still_named(&self, file: &File, name: &str) -> bool {
        let Ok(held) = file.metadata() else {
            return false;
        };
        rustix::fs::statat(&*self.fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| st.st_ino == held.ino() && st.st_dev == held.dev())
    }

    /// Renames the entry `from` to `to` within the bucket.
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        rustix::fs::renameat(&*self.fd, from, &*self.fd, to).map_err(Into::into)
    }

    /// Removes the entry `name`; absent is fine.
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match rustix::fs::unlinkat(&*self.fd, name, rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the entry `name` whole: into a fresh file of the bucket (`O_EXCL`, so
    /// nothing planted is written through), then renamed over the old entry.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let path = self.path.join(name);
        let err = |source| CacheError {
            path: path.clone(),
            source,
        };
        if crate::output::interrupted() {
            return Err(err(std::io::ErrorKind::Interrupted.into()));
        }
        let mut attempt = 0u32;
        let (tmp_name, fd) = loop {
            let tmp_name = format!(".tmp-{}-{attempt}-{name}", std::process::id());
            match rustix::fs::openat(
                &*self.fd,
                &tmp_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            ) {
                Ok(fd) => break (tmp_name, fd),
                Err(rustix::io::Errno::EXIST) if attempt < 16 => attempt += 1,
                Err(e) => return Err(err(e.into())),
            }
        };
        // A signal before the rename removes the temporary file.
        let _live = crate::output::LivePartial::register(&self.path.join(&tmp_name));
        let written = File::from(fd)
            .write_all(bytes)
            .and_then(|()| self.rename(&tmp_name, name));
        if let Err(e) = written {
            let _ = self.remove(&tmp_name);
            return Err(err(e));
        }
        Ok(())
    }
}

fn regular(file: File, path: &Path) -> std::io::Result<File> {
    let meta = file.metadata()?;
    // A second hard link would let the entry's writes reach a file outside the cache.
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(std::io::Error::other(format!(
            "`{}` is not a plain file of the cache (a link or special file was planted?)",
            path.display()
        )));
    }
    Ok(file)
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |source| CacheError {
        path: path.to_path_buf(),
        source,
    };
    if crate::output::interrupted() {
        return Err(err(std::io::ErrorKind::Interrupted.into()));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(err)?;
    // A signal before the rename removes the temporary file (exit skips its Drop).
    let _live = crate::output::LivePartial::register(tmp.path());
    tmp.write_all(bytes).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
