//! File operations confined to a sysroot.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` against a handle of the root,
//! so a symlink a package shipped (`var/run -> /run`, or something hostile) is followed
//! as the sysroot's own `/` would follow it and never reaches the host.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// An open handle on a sysroot directory; all paths given to it are relative to it.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Splits `rel` into its normal components, refusing `..`, absolute paths and empty names.
fn components(rel: &str) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("path `{rel}` must be relative and without `..`"),
                ))
            }
        }
    }
    Ok(out)
}

impl RootDir {
    /// Opens the sysroot at `path` (which must be a directory).
    pub fn open(path: &Path) -> io::Result<RootDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The host path the root was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` inside the root with `flags`.
    pub fn open_in(&self, rel: &str, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
        components(rel)?;
        let rel = if rel.is_empty() { "." } else { rel };
        Ok(rustix::fs::openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
            RESOLVE,
        )?)
    }

    /// Opens the directory `rel` inside the root.
    pub fn open_dir(&self, rel: &str) -> io::Result<OwnedFd> {
        self.open_in(rel, OFlags::DIRECTORY | OFlags::RDONLY, 0)
    }

    /// Whether `rel` exists inside the root (a dangling symlink counts as existing).
    pub fn exists(&self, rel: &str) -> io::Result<bool> {
        let (dir, name) = match self.parent_of(rel) {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates `rel` and its missing parents; new directories get exactly `mode`
    /// (no umask), existing ones are left as they are, as apk's `mkdirat` calls do.
    pub fn mkdir_all(&self, rel: &str, mode: u32) -> io::Result<()> {
        let parts = components(rel)?;
        let mut cur = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for part in parts {
            match rustix::fs::mkdirat(&cur, part, Mode::from_raw_mode(mode)) {
                Ok(()) => {
                    let fd = rustix::fs::openat2(
                        &cur,
                        part,
                        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                        Mode::empty(),
                        RESOLVE,
                    )?;
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
                    cur = fd;
                }
                Err(rustix::io::Errno::EXIST) => {
                    cur = rustix::fs::openat2(
                        &cur,
                        part,
                        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                        Mode::empty(),
                        RESOLVE,
                    )?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Creates the directory `rel` (parent must exist) with exactly `mode` if it is missing.
    pub fn mkdir(&self, rel: &str, mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(mode)) {
            Ok(()) => {
                let fd = rustix::fs::openat(
                    &dir,
                    name,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
                Ok(())
            }
            Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a character device node `rel` with exactly `mode` if it is missing.
    pub fn mknod_char(&self, rel: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        let dev = rustix::fs::makedev(major, minor);
        match rustix::fs::mknodat(
            &dir,
            name,
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(mode),
            dev,
        ) {
            Ok(()) => {
                rustix::fs::chmodat(
                    &dir,
                    name,
                    Mode::from_raw_mode(mode),
                    rustix::fs::AtFlags::empty(),
                )?;
                Ok(())
            }
            Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the regular file `rel` (empty, exactly `mode`) if it is missing.
    pub fn touch(&self, rel: &str, mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// Replaces `rel` with `bytes` atomically: written to `<name>.new` beside it, then renamed.
    pub fn write_atomic(&self, rel: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        let mut tmp = name.to_os_string();
        tmp.push(".new");
        let _ = rustix::fs::unlinkat(&dir, &tmp, rustix::fs::AtFlags::empty());
        let fd = rustix::fs::openat(
            &dir,
            &tmp,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        let result = (|| {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
            let mut file = std::fs::File::from(fd);
            file.write_all(bytes)?;
            rustix::fs::renameat(&dir, &tmp, &dir, name)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&dir, &tmp, rustix::fs::AtFlags::empty());
        }
        result
    }

    /// Writes `bytes` to `rel` only when nothing exists there yet; returns whether it wrote.
    pub fn write_new(&self, rel: &str, bytes: &[u8], mode: u32) -> io::Result<bool> {
        if self.exists(rel)? {
            return Ok(false);
        }
        self.write_atomic(rel, bytes, mode)?;
        Ok(true)
    }

    /// Reads the regular file `rel`, refusing files larger than `limit` bytes.
    pub fn read(&self, rel: &str, limit: u64) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let fd = self.open_in(rel, OFlags::RDONLY, 0)?;
        let file = std::fs::File::from(fd);
        let mut out = Vec::new();
        file.take(limit + 1).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{rel}` is larger than {limit} bytes"),
            ));
        }
        Ok(out)
    }

    /// Removes the file `rel` if present.
    pub fn remove_file(&self, rel: &str) -> io::Result<()> {
        let (dir, name) = self.parent_of(rel)?;
        match rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The directory holding `rel`, opened inside the root, and the last component.
    fn parent_of<'a>(&self, rel: &'a str) -> io::Result<(OwnedFd, &'a OsStr)> {
        let parts = components(rel)?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty path inside the root",
            ));
        };
        let parent: PathBuf = parents.iter().collect();
        let parent = parent.to_str().unwrap_or(".");
        let dir = self.open_dir(if parent.is_empty() { "." } else { parent })?;
        Ok((dir, name))
    }
}

impl AsFd for RootDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
