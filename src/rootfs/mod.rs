//! File operations confined to a root directory (a sysroot being built or entered).
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` against a handle of the root, so
//! absolute symlinks such as alpine-baselayout's `var/run -> /run` resolve inside the root
//! as the root's own `/` would resolve them, and no `..` or symlink leads out of it. An
//! operation on a path opens the path's directory that way, then acts on the last
//! component with the `*at` calls, which never follow it.
//!
//! Conventions of every operation:
//! - paths are relative to the root; a leading `/` means the root and `..` stops at it
//!   (the kernel clamps it); where an operation acts on the last component, that must be
//!   a name (not empty, `.` or `..`), else the error is `InvalidInput`;
//! - errors are plain `io::Error`s: callers know which root and path they asked about and
//!   put both in their own error. Absence is an answer, not an error, where asking about
//!   it is the point ([`RootDir::read`] and [`RootDir::lstat`] give `None`, removals of
//!   what is not there succeed);
//! - what is created gets exactly the mode asked for (the umask does not apply), and the
//!   owner is set before the mode because `chown` clears setuid and setgid bits.
//!
//! Hot paths (the installer writes thousands of entries) open each directory once as a
//! [`Dir`] ([`RootDir::open_dirs`]) and create entries in it without resolving the
//! directory again.

mod dir;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

pub use dir::{Content, Dir};

/// The owner to give an inode, or `None` to leave it to whoever creates it (not root).
pub type Owner = Option<(u32, u32)>;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// An open handle on a root directory; every path given to it is inside it.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Splits `dir/name` into the directory (empty for the root) and the last component.
pub fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

impl RootDir {
    /// Opens the directory at `path` as a root.
    pub fn open(path: &Path) -> io::Result<RootDir> {
        // A path handle: all the root is used for is resolving, `fchdir` and mounting.
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
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

    /// Opens `rel` with `flags` (close-on-exec is added); `mode` is for `CREATE` only
    /// and must be 0 otherwise. Symlinks, the last one included, resolve inside the root.
    pub fn open_in(&self, rel: impl AsRef<Path>, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
        Ok(rustix::fs::openat2(
            &self.fd,
            here(relative(rel.as_ref())),
            flags | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
            RESOLVE,
        )?)
    }

    /// Opens the directory `rel` (empty for the root itself), for operations in it.
    pub fn dir(&self, rel: impl AsRef<Path>) -> io::Result<Dir> {
        self.open_in(rel, OFlags::PATH | OFlags::DIRECTORY, 0)
            .map(Dir::new)
    }

    /// Opens every directory of `dirs` once (directories that do not exist are left out;
    /// whoever needs one reports it missing).
    pub fn open_dirs<'a>(&self, dirs: impl Iterator<Item = &'a str>) -> HashMap<String, Dir> {
        let mut map = HashMap::new();
        for dir in dirs {
            if !map.contains_key(dir) {
                if let Ok(handle) = self.dir(dir) {
                    map.insert(dir.to_owned(), handle);
                }
            }
        }
        map
    }

    /// Reads the whole file `rel`, refusing one larger than `limit` bytes
    /// (`InvalidData`); `None` when it does not exist.
    pub fn read(&self, rel: impl AsRef<Path>, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let rel = rel.as_ref();
        let Some(data) = self.read_head(rel, limit.saturating_add(1))? else {
            return Ok(None);
        };
        if data.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "`{}` is larger than {limit} bytes; refusing to read it",
                    rel.display()
                ),
            ));
        }
        Ok(Some(data))
    }

    /// Reads at most the first `limit` bytes of `rel`; `None` when it does not exist.
    /// See [`read_regular`](Self::read_regular) (the last component is followed).
    pub fn read_head(&self, rel: impl AsRef<Path>, limit: u64) -> io::Result<Option<Vec<u8>>> {
        self.read_regular(rel, limit, true)
    }

    /// Reads at most `limit` bytes of the regular file `rel`; `None` when it does not
    /// exist. The last component is followed only with `follow`. Only regular files are
    /// read, and nothing else is even opened for reading (opening some devices acts, a
    /// FIFO planted as `etc/passwd` would block): the file is opened as a path first,
    /// its type checked, and then reopened through that handle, with no second lookup.
    pub fn read_regular(
        &self,
        rel: impl AsRef<Path>,
        limit: u64,
        follow: bool,
    ) -> io::Result<Option<Vec<u8>>> {
        let rel = rel.as_ref();
        let flags = if follow {
            OFlags::PATH
        } else {
            OFlags::PATH | OFlags::NOFOLLOW
        };
        let handle = match self.open_in(rel, flags, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&handle)?.st_mode);
        if kind != rustix::fs::FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "`{}` is not a regular file ({kind:?}); refusing to read it",
                    rel.display()
                ),
            ));
        }
        let file = rustix::fs::open(
            format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&handle)),
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let mut out = Vec::new();
        std::fs::File::from(file)
            .take(limit)
            .read_to_end(&mut out)?;
        Ok(Some(out))
    }

    /// What is at `rel`, without following its last component; `None` when nothing is
    /// (also when a directory on the way is missing or not a directory).
    pub fn lstat(&self, rel: impl AsRef<Path>) -> io::Result<Option<Stat>> {
        let (dir, name) = parent_and_name(rel.as_ref())?;
        match self.dir(dir) {
            Ok(parent) => parent.stat(name),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether something is at `rel` (a dangling symlink counts).
    pub fn exists(&self, rel: impl AsRef<Path>) -> io::Result<bool> {
        Ok(self.lstat(rel)?.is_some())
    }

    /// See [`Dir::mkdir`]; the parent must exist.
    pub fn mkdir(&self, rel: impl AsRef<Path>, owner: Owner, mode: u32) -> io::Result<()> {
        let (dir, name) = self.at(rel.as_ref())?;
        dir.mkdir(name, owner, mode)
    }

    /// Creates `rel` and its missing parents; new directories get exactly `mode`,
    /// existing ones are left as they are (as apk's `mkdirat` calls leave them).
    pub fn mkdir_all(&self, rel: impl AsRef<Path>, mode: u32) -> io::Result<()> {
        let rel = rel.as_ref();
        match self.dir(rel) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        let (parent, _) = parent_and_name(rel)?;
        if !parent.is_empty() {
            self.mkdir_all(Path::new(parent), mode)?;
        }
        self.mkdir(rel, None, mode)?;
        // What was already there (a dangling symlink) must have become a directory.
        self.dir(rel).map(drop)
    }

    /// See [`Dir::mknod_char`]; the parent must exist.
    pub fn mknod_char(
        &self,
        rel: impl AsRef<Path>,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let (dir, name) = self.at(rel.as_ref())?;
        dir.mknod_char(name, mode, major, minor)
    }

    /// See [`Dir::touch`]; the parent must exist.
    pub fn touch(&self, rel: impl AsRef<Path>, mode: u32) -> io::Result<()> {
        let (dir, name) = self.at(rel.as_ref())?;
        dir.touch(name, mode)
    }

    /// See [`Dir::write_atomic`]; the parent must exist.
    pub fn write_atomic(&self, rel: impl AsRef<Path>, bytes: &[u8], mode: u32) -> io::Result<()> {
        let (dir, name) = self.at(rel.as_ref())?;
        dir.write_atomic(name, bytes, mode)
    }

    /// Writes `bytes` to `rel` (as [`write_atomic`](Self::write_atomic)) only when nothing
    /// is there yet; returns whether it wrote.
    pub fn write_new(&self, rel: impl AsRef<Path>, bytes: &[u8], mode: u32) -> io::Result<bool> {
        let (dir, name) = self.at(rel.as_ref())?;
        if dir.stat(name)?.is_some() {
            return Ok(false);
        }
        dir.write_atomic(name, bytes, mode)?;
        Ok(true)
    }

    /// See [`Dir::set_owner_mode`].
    pub fn set_owner_mode(&self, rel: impl AsRef<Path>, owner: Owner, mode: u32) -> io::Result<()> {
        let (dir, name) = self.at(rel.as_ref())?;
        dir.set_owner_mode(name, owner, mode)
    }

    /// Removes the non-directory `rel` if present (a symlink itself, not its target).
    pub fn remove(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let (dir, name) = self.at(rel.as_ref())?;
        dir.remove(name)
    }

    /// Removes the empty directory `rel` if present.
    pub fn remove_dir(&self, rel: impl AsRef<Path>) -> io::Result<()> {
        let (dir, name) = self.at(rel.as_ref())?;
        dir.remove_dir(name)
    }

    /// The directory holding `rel`, opened inside the root, and the last component.
    fn at<'p>(&self, rel: &'p Path) -> io::Result<(Dir, &'p OsStr)> {
        let (dir, name) = parent_and_name(rel)?;
        Ok((self.dir(Path::new(dir))?, name))
    }
}

/// The process's umask, read once without changing it (`/proc/self/status`); when that
/// is unavailable every mode counts as cut by it, so callers always chmod.
pub(crate) fn process_umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .map_or(0o777, |umask| umask & 0o777)
    })
}

impl AsFd for RootDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `rel` without leading and trailing `/` (the kernel resolves the rest inside the root).
fn relative(rel: &Path) -> &[u8] {
    let b = rel.as_os_str().as_bytes();
    let start = b.iter().position(|&c| c != b'/').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b'/').map_or(start, |i| i + 1);
    &b[start..end]
}

/// A relative path for the `*at` calls, `.` for the root itself.
fn here(rel: &[u8]) -> &OsStr {
    if rel.is_empty() {
        OsStr::new(".")
    } else {
        OsStr::from_bytes(rel)
    }
}

/// `rel`'s directory (empty for the root) and last component, which must be a name.
fn parent_and_name(rel: &Path) -> io::Result<(&OsStr, &OsStr)> {
    let b = relative(rel);
    let (dir, name) = match b.iter().rposition(|&c| c == b'/') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (&b[..0], b),
    };
    let name = OsStr::from_bytes(name);
    check_name(name).map_err(|_| not_a_name(rel))?;
    Ok((OsStr::from_bytes(dir), name))
}

/// Refuses what would not stay in the directory it is used in: the `*at` calls resolve
/// a `/` in a name without the root's confinement.
fn check_name(name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(not_a_name(Path::new(name)));
    }
    Ok(())
}

fn not_a_name(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "`{}` does not end in a file name; expected `dir/name` inside the root",
            path.display()
        ),
    )
}

/// `Err` of an `*at` call, or `Ok(absent)` when it failed because nothing is there.
fn absent_ok<T>(r: rustix::io::Result<T>, absent: T) -> io::Result<T> {
    match r {
        Err(Errno::NOENT) => Ok(absent),
        other => Ok(other?),
    }
}
