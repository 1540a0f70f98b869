//! Operations on the entries of one directory opened inside the root. The directory was
//! resolved inside the root once; the entry names given here are single components
//! (checked), so the `*at` calls cannot leave it, and they never follow the last one.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

use super::{absent_ok, check_name, Owner};

/// What [`Dir::write_file`] writes a file from.
pub enum Content<'a> {
    /// The next this many bytes of a reader; the write fails with `UnexpectedEof` when
    /// it ends early.
    Read(&'a mut dyn Read, u64),
    /// These bytes, already in memory (no copy through a buffer).
    Bytes(&'a [u8]),
}

/// A directory inside a [`RootDir`](super::RootDir), from [`RootDir::dir`](super::RootDir::dir).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl std::os::fd::AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Dir {
    pub(super) fn new(fd: OwnedFd) -> Dir {
        Dir { fd }
    }

    /// What `name` is (not followed); `None` when nothing is there.
    pub fn stat(&self, name: impl AsRef<OsStr>) -> io::Result<Option<Stat>> {
        let name = checked(&name)?;
        absent_ok(
            rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map(Some),
            None,
        )
    }

    /// Creates the directory `name` with `owner` and exactly `mode`; succeeds without
    /// touching it when something is already there.
    pub fn mkdir(&self, name: impl AsRef<OsStr>, owner: Owner, mode: u32) -> io::Result<()> {
        let name = checked(&name)?;
        // Most directories are the caller's own with plain bits that the umask leaves
        // whole: made with them at once, they need neither chown nor chmod (two journaled
        // inode updates each on ext4). Otherwise nobody else may use the directory before
        // its owner and bits are final.
        let exact = mode & 0o7000 == 0
            && mode & super::process_umask() == 0
            && self
                .plain_owner()?
                .is_some_and(|given| owner.is_none_or(|o| o == given));
        let first = if exact { mode } else { 0o700 };
        match rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(first)) {
            Ok(()) if exact => return Ok(()),
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        chown(&self.fd, name, owner)?;
        rfs::chmodat(&self.fd, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
        Ok(())
    }

    /// The owner a new directory gets here, when it gets no mode bits from this one
    /// (`None` below a setgid directory, which passes on its group and its setgid bit).
    fn plain_owner(&self) -> io::Result<Option<(u32, u32)>> {
        let st = rfs::fstat(&self.fd)?;
        if st.st_mode & libc::S_ISGID != 0 {
            return Ok(None);
        }
        Ok(Some((
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )))
    }

    /// Creates the character device `name` (`major`, `minor`) with exactly `mode`;
    /// succeeds without touching it when something is already there.
    pub fn mknod_char(
        &self,
        name: impl AsRef<OsStr>,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let name = checked(&name)?;
        let dev = rfs::makedev(major, minor);
        let kind = FileType::CharacterDevice;
        match rfs::mknodat(&self.fd, name, kind, Mode::from_raw_mode(mode), dev) {
            Ok(()) => {
                rfs::chmodat(&self.fd, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
                Ok(())
            }
            Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the regular file `name` when missing (empty) and gives it exactly `mode`.
    pub fn touch(&self, name: impl AsRef<OsStr>, mode: u32) -> io::Result<()> {
        let name = checked(&name)?;
        let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))?;
        rfs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    /// Replaces `name` with `bytes` (exactly `mode`) atomically: written to `<name>.new`
    /// beside it, then renamed over it.
    pub fn write_atomic(&self, name: impl AsRef<OsStr>, bytes: &[u8], mode: u32) -> io::Result<()> {
        let name = checked(&name)?;
        let mut tmp = name.to_os_string();
        tmp.push(".new");
        let _ = rfs::unlinkat(&self.fd, &tmp, AtFlags::empty());
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.fd, &tmp, flags, Mode::from_raw_mode(mode))?;
        let result = (|| {
            rfs::fchmod(&fd, Mode::from_raw_mode(mode))?;
            std::fs::File::from(fd).write_all(bytes)?;
            rfs::renameat(&self.fd, &tmp, &self.fd, name)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = rfs::unlinkat(&self.fd, &tmp, AtFlags::empty());
        }
        result
    }

    /// Writes the regular file `name` (a stale one in the way is replaced) from
    /// `content`, with its owner, mode, extended attributes and modification time.
    pub fn write_file(
        &self,
        name: impl AsRef<OsStr>,
        content: Content<'_>,
        owner: Owner,
        mode: u32,
        mtime: u64,
        xattrs: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        let name = checked(&name)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // Created with its final permission bits, so that the chmod below is only needed
        // when the umask cut some or there are setuid/setgid/sticky bits (which creation
        // cannot set and chown would clear): one syscall less per file on the hot path.
        let fd = self.replacing_stale(name, || {
            rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode & 0o777))
        })?;
        let mut file = std::fs::File::from(fd);
        match content {
            Content::Read(from, len) => copy_exact(from, &mut file, len)?,
            Content::Bytes(bytes) => file.write_all(bytes)?,
        }
        let chmod = mode & 0o7000 != 0 || mode & super::process_umask() != 0;
        give(&file, owner, chmod.then_some(mode), xattrs)?;
        rfs::futimens(&file, &times(mtime))?;
        Ok(())
    }

    /// Moves the regular file `from_name` of `from` (written by [`Dir::write_file`] with
    /// its mode and mtime, on the same filesystem) here as `name`, replacing a stale entry
    /// there; then gives it `owner` (restoring setuid/setgid bits of `mode`, which chown
    /// clears) and `xattrs`, which must come after the owner because chown also drops
    /// file capabilities.
    pub fn adopt(
        &self,
        name: impl AsRef<OsStr>,
        from: &Dir,
        from_name: impl AsRef<OsStr>,
        owner: Owner,
        mode: u32,
        xattrs: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        let name = checked(&name)?;
        rfs::renameat(&from.fd, checked(&from_name)?, &self.fd, name)?;
        if owner.is_none() && xattrs.is_empty() {
            return Ok(());
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = rfs::openat(&self.fd, name, flags, Mode::empty())?;
        let chmod = owner.is_some() && mode & 0o7000 != 0;
        give(&file, owner, chmod.then_some(mode), xattrs)
    }

    /// Creates the directory `name` with exactly `mode`, failing (`AlreadyExists`) when
    /// anything is there: for directories whose contents must be the caller's alone.
    pub fn create_dir(&self, name: impl AsRef<OsStr>, mode: u32) -> io::Result<()> {
        let name = checked(&name)?;
        rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode))?;
        rfs::chmodat(&self.fd, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
        Ok(())
    }

    /// The names of this directory's entries (without `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<std::ffi::OsString>> {
        use std::os::unix::ffi::OsStrExt as _;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.fd, ".", flags, Mode::empty())?;
        let mut names = Vec::new();
        for entry in rfs::Dir::read_from(&fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(names)
    }

    /// Creates the symlink `name` pointing at `target` (stored as given, never resolved
    /// here), replacing a stale entry in the way.
    pub fn symlink(&self, name: impl AsRef<OsStr>, target: &str, owner: Owner) -> io::Result<()> {
        let name = checked(&name)?;
        self.replacing_stale(name, || rfs::symlinkat(target, &self.fd, name))?;
        chown(&self.fd, name, owner)
    }

    /// Hard-links `from_name` of `from` as `name` here (a stale entry in the way is
    /// replaced), then applies the link's own header as apk does: owner, setuid bits and
    /// mtime land on the shared inode.
    #[allow(clippy::too_many_arguments)]
    pub fn hardlink(
        &self,
        name: impl AsRef<OsStr>,
        from: &Dir,
        from_name: impl AsRef<OsStr>,
        owner: Owner,
        mode: u32,
        mtime: u64,
    ) -> io::Result<()> {
        let name = checked(&name)?;
        let from_name = checked(&from_name)?;
        self.replacing_stale(name, || {
            rfs::linkat(&from.fd, from_name, &self.fd, name, AtFlags::empty())
        })?;
        chown(&self.fd, name, owner)?;
        if mode & 0o7000 != 0 {
            rfs::chmodat(&self.fd, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
        }
        rfs::utimensat(&self.fd, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    /// Renames `from` to `to` in this directory, replacing a non-directory at `to`.
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> io::Result<()> {
        rfs::renameat(&self.fd, checked(&from)?, &self.fd, checked(&to)?)?;
        Ok(())
    }

    /// Removes the non-directory `name` if present.
    pub fn remove(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        absent_ok(
            rfs::unlinkat(&self.fd, checked(&name)?, AtFlags::empty()),
            (),
        )
    }

    /// Removes the empty directory `name` if present.
    pub fn remove_dir(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        absent_ok(
            rfs::unlinkat(&self.fd, checked(&name)?, AtFlags::REMOVEDIR),
            (),
        )
    }

    /// Gives `name` its owner, then its mode, each only when it differs (the final
    /// permission pass over shared directories). A symlink put there meanwhile keeps its
    /// mode: `chmod` would follow it, resolved from the host's `/`.
    pub fn set_owner_mode(
        &self,
        name: impl AsRef<OsStr>,
        owner: Owner,
        mode: u32,
    ) -> io::Result<()> {
        let name = checked(&name)?;
        let st = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if owner.is_some_and(|(uid, gid)| st.st_uid != uid || st.st_gid != gid) {
            chown(&self.fd, name, owner)?;
        }
        let is_link = FileType::from_raw_mode(st.st_mode) == FileType::Symlink;
        if !is_link && st.st_mode & 0o7777 != mode {
            rfs::chmodat(&self.fd, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
        }
        Ok(())
    }

    /// SHA-1 of what is at `name`, as apk computes it: `None` when nothing is there,
    /// `Some(None)` for something without a checksum (a directory, a device), the
    /// content's SHA-1 for a regular file and the target's for a symlink.
    pub fn sha1(&self, name: impl AsRef<OsStr>) -> io::Result<Option<Option<[u8; 20]>>> {
        use sha1::{Digest, Sha1};
        let Some(st) = self.stat(&name)? else {
            return Ok(None);
        };
        let name = name.as_ref();
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => {
                let target = rfs::readlinkat(&self.fd, name, Vec::new())?;
                Ok(Some(Some(Sha1::digest(target.as_bytes()).into())))
            }
            FileType::RegularFile => {
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = rfs::openat(&self.fd, name, flags, Mode::empty())?;
                let mut hasher = Sha1::new();
                io::copy(&mut std::fs::File::from(fd), &mut hasher)?;
                Ok(Some(Some(hasher.finalize().into())))
            }
            _ => Ok(Some(None)),
        }
    }

    /// Runs `create`; when a stale entry of that name is in the way (an interrupted run),
    /// removes it and tries once more. Cheaper than unlinking before every create.
    fn replacing_stale<T>(
        &self,
        name: &OsStr,
        create: impl Fn() -> rustix::io::Result<T>,
    ) -> io::Result<T> {
        match create() {
            Err(Errno::EXIST) => {
                self.remove(name)?;
                Ok(create()?)
            }
            other => Ok(other?),
        }
    }
}

/// Gives the open file `file` its owner, then its mode, then its extended attributes:
/// chown clears setuid/setgid bits and drops file capabilities, so both come after it.
fn give(
    file: &impl std::os::fd::AsFd,
    owner: Owner,
    mode: Option<u32>,
    xattrs: &[(String, Vec<u8>)],
) -> io::Result<()> {
    if let Some((uid, gid)) = owner {
        rfs::fchown(
            file,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
        )?;
    }
    if let Some(mode) = mode {
        rfs::fchmod(file, Mode::from_raw_mode(mode))?;
    }
    for (attr, value) in xattrs {
        rfs::fsetxattr(file, attr.as_str(), value, rfs::XattrFlags::empty())?;
    }
    Ok(())
}

/// Copies exactly `len` bytes from `from` to `to`, in writes of up to 128 KiB (most
/// package files in one write), through a buffer each thread keeps.
fn copy_exact(from: &mut dyn Read, to: &mut std::fs::File, len: u64) -> io::Result<()> {
    const CHUNK: usize = 128 * 1024;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            if buf.len() < want {
                buf.resize(want, 0);
            }
            from.read_exact(&mut buf[..want])?;
            to.write_all(&buf[..want])?;
            left -= want as u64;
        }
        Ok(())
    })
}

fn checked<N: AsRef<OsStr> + ?Sized>(name: &N) -> io::Result<&OsStr> {
    let name = name.as_ref();
    check_name(name)?;
    Ok(name)
}

fn chown(dir: &OwnedFd, name: &OsStr, owner: Owner) -> io::Result<()> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    rfs::chownat(
        dir,
        name,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
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
