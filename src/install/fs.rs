//! Every write into the root goes through here: the parent directory of an entry is
//! opened with `openat2(RESOLVE_IN_ROOT)` relative to a handle of the root, so absolute
//! symlinks such as alpine-baselayout's `var/run -> /run` resolve inside the root and no
//! `..` or symlink can lead out of it. The last component is then created with the `*at`
//! calls, which never follow it.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};

/// An open handle on the root directory.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
}

/// The owner to give an inode, or `None` to leave it to whoever creates it (not root).
pub(crate) type Owner = Option<(u32, u32)>;

/// What [`Root::lstat`] found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing.
    Nothing,
    /// A directory.
    Dir,
    /// Something else (file, symlink, device...).
    Other,
}

/// Splits `dir/name` into the parent (possibly empty) and the last component.
pub(crate) fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

impl Root {
    /// Opens the root directory.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    /// Opens directory `dir` (relative, may be empty for the root itself) inside the root.
    pub(crate) fn dir(&self, dir: &str) -> io::Result<OwnedFd> {
        let dir = if dir.is_empty() { "." } else { dir };
        Ok(rfs::openat2(
            &self.fd,
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_flags(),
        )?)
    }

    /// Reads a whole file inside the root, at most `limit` bytes; `None` if absent.
    pub(crate) fn read(&self, path: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        let fd = match rfs::openat2(
            &self.fd,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_flags(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        std::fs::File::from(fd).take(limit).read_to_end(&mut out)?;
        Ok(Some(out))
    }

    /// What is at `path`, without following its last component.
    pub(crate) fn lstat(&self, path: &str) -> io::Result<Found> {
        let (dir, name) = split(path);
        let parent = match self.dir(dir) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                return Ok(Found::Nothing)
            }
            Err(e) => return Err(e),
        };
        match rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
                Ok(Found::Dir)
            }
            Ok(_) => Ok(Found::Other),
            Err(rustix::io::Errno::NOENT) => Ok(Found::Nothing),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates directory `path` (its parent must exist) and gives it its owner and mode.
    pub(crate) fn mkdir(&self, path: &str, owner: Owner, mode: u32) -> io::Result<()> {
        let (dir, name) = split(path);
        let parent = self.dir(dir)?;
        match rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        set_owner_mode(&parent, name, owner, mode)
    }

    /// Sets owner, then mode, of an existing directory (permission reconciliation).
    pub(crate) fn set_dir_acl(&self, path: &str, owner: Owner, mode: u32) -> io::Result<()> {
        let (dir, name) = split(path);
        let parent = self.dir(dir)?;
        let st = rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if owner.is_some_and(|(uid, gid)| st.st_uid != uid || st.st_gid != gid) {
            chown(&parent, name, owner, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        if st.st_mode & 0o7777 != mode {
            rfs::chmodat(&parent, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
        }
        Ok(())
    }

    /// Opens every directory of `dirs` once, for the write phase (directories that do
    /// not exist are left out; writes into them fail with their own error).
    pub(crate) fn open_dirs<'a>(
        &self,
        dirs: impl Iterator<Item = &'a str>,
    ) -> HashMap<String, OwnedFd> {
        let mut map = HashMap::new();
        for dir in dirs {
            if !map.contains_key(dir) {
                if let Ok(fd) = self.dir(dir) {
                    map.insert(dir.to_owned(), fd);
                }
            }
        }
        map
    }
}

/// Writes a regular file named `tmp` in `parent` (a directory opened through [`Root`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_file(
    parent: BorrowedFd<'_>,
    tmp: &str,
    data: &[u8],
    owner: Owner,
    mode: u32,
    mtime: u64,
    xattrs: &[(String, Vec<u8>)],
) -> io::Result<()> {
    use std::io::Write;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let create = || rfs::openat(parent, tmp, flags, Mode::from_raw_mode(0o600));
    let fd = retry_stale(parent, tmp, create)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data)?;
    // Owner first: chown clears setuid/setgid, so the mode must come after it.
    if let Some((uid, gid)) = owner {
        rfs::fchown(
            &file,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
        )?;
    }
    rfs::fchmod(&file, Mode::from_raw_mode(mode))?;
    for (name, value) in xattrs {
        rfs::fsetxattr(&file, name.as_str(), value, rfs::XattrFlags::empty())?;
    }
    rfs::futimens(&file, &times(mtime))?;
    Ok(())
}

/// Creates symlink `tmp` in `parent` pointing at `target` (stored, not resolved).
pub(crate) fn symlink(
    parent: BorrowedFd<'_>,
    tmp: &str,
    target: &str,
    owner: Owner,
) -> io::Result<()> {
    retry_stale(parent, tmp, || rfs::symlinkat(target, parent, tmp))?;
    chown(&parent, tmp, owner, AtFlags::SYMLINK_NOFOLLOW)
}

/// Hard-links `from_name` in `from` as `tmp` in `parent`, then applies the link's header
/// the way apk does (owner, setuid bits, mtime land on the shared inode). The target is
/// always a regular file this package just wrote.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hardlink(
    from: BorrowedFd<'_>,
    from_name: &str,
    parent: BorrowedFd<'_>,
    tmp: &str,
    owner: Owner,
    mode: u32,
    mtime: u64,
) -> io::Result<()> {
    retry_stale(parent, tmp, || {
        rfs::linkat(from, from_name, parent, tmp, AtFlags::empty())
    })?;
    chown(&parent, tmp, owner, AtFlags::SYMLINK_NOFOLLOW)?;
    if mode & 0o7000 != 0 {
        rfs::chmodat(parent, tmp, Mode::from_raw_mode(mode), AtFlags::empty())?;
    }
    rfs::utimensat(parent, tmp, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Renames `tmp` to `name` inside `parent`, replacing a non-directory already there.
pub(crate) fn rename(parent: BorrowedFd<'_>, tmp: &str, name: &str) -> io::Result<()> {
    rfs::renameat(parent, tmp, parent, name)?;
    Ok(())
}

/// Removes `name` in `parent` if present.
pub(crate) fn unlink(parent: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    remove_stale(&parent, name)
}

/// SHA-1 of what is at `name` in `parent`, as apk computes it: `None` when nothing is
/// there, `Some(None)` for something without a checksum (a directory, a device), the
/// content's SHA-1 for a regular file and the target's for a symlink.
pub(crate) fn existing_sha1(
    parent: BorrowedFd<'_>,
    name: &str,
) -> io::Result<Option<Option<[u8; 20]>>> {
    use sha1::{Digest, Sha1};
    let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match rfs::FileType::from_raw_mode(st.st_mode) {
        rfs::FileType::Symlink => {
            let target = rfs::readlinkat(parent, name, Vec::new())?;
            Ok(Some(Some(Sha1::digest(target.as_bytes()).into())))
        }
        rfs::FileType::RegularFile => {
            let fd = rfs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mut hasher = Sha1::new();
            io::copy(&mut std::fs::File::from(fd), &mut hasher)?;
            Ok(Some(Some(hasher.finalize().into())))
        }
        _ => Ok(Some(None)),
    }
}

/// Runs `create`; when a stale entry of that name is in the way (an interrupted run),
/// removes it and tries once more. Cheaper than unlinking before every create.
fn retry_stale<T>(
    parent: BorrowedFd<'_>,
    name: &str,
    create: impl Fn() -> rustix::io::Result<T>,
) -> io::Result<T> {
    match create() {
        Err(rustix::io::Errno::EXIST) => {
            remove_stale(&parent, name)?;
            Ok(create()?)
        }
        other => Ok(other?),
    }
}

fn remove_stale(parent: &impl AsFd, name: &str) -> io::Result<()> {
    match rfs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn chown(parent: &impl AsFd, name: &str, owner: Owner, flags: AtFlags) -> io::Result<()> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    rfs::chownat(
        parent,
        name,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
        flags,
    )?;
    Ok(())
}

fn set_owner_mode(parent: &impl AsFd, name: &str, owner: Owner, mode: u32) -> io::Result<()> {
    chown(parent, name, owner, AtFlags::SYMLINK_NOFOLLOW)?;
    rfs::chmodat(parent, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
    Ok(())
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}
