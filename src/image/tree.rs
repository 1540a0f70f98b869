//! The staged tree as archive entries: sorted by path, hardlinks found by inode, owners
//! from apk's `installed` records where the build could not apply them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{io_err, ImageError};
use crate::db::{Acl, InstalledPackage};

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file of this many bytes.
    File(u64),
    /// A symbolic link to this target.
    Symlink(PathBuf),
    /// Another name of the regular file at this path (which comes earlier).
    Hardlink(PathBuf),
    /// A character device.
    Char(u32, u32),
    /// A block device.
    Block(u32, u32),
    /// A named pipe.
    Fifo,
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the root, without a leading `./` or trailing `/`.
    pub path: PathBuf,
    /// Type (and what the type needs: size, target, device numbers).
    pub kind: Kind,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    /// Modification time, clamped to the epoch when one is given.
    pub mtime: u64,
}

/// How [`walk`] reads the tree.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions<'a> {
    /// apk's records of what the packages installed.
    pub installed: &'a [InstalledPackage],
    /// The build could not give files their owners (they belong to the caller): take
    /// the owners of recorded paths from `installed`, and the caller's ids as 0.
    pub owners_from_db: bool,
    /// Clamp every mtime to this (`SOURCE_DATE_EPOCH`).
    pub epoch: Option<u64>,
}

/// The device nodes `apk add --initdb` makes as root (see `layout::init_skeleton`),
/// added as headers when the build could not make them.
const SKELETON_DEVICES: [(&str, u32, u32, u32); 5] = [
    ("dev/console", 0o600, 5, 1),
    ("dev/null", 0o666, 1, 3),
    ("dev/random", 0o666, 1, 8),
    ("dev/urandom", 0o666, 1, 9),
    ("dev/zero", 0o666, 1, 5),
];

/// Every entry below `root` (not `root` itself), sorted by the bytes of their paths, so
/// that a directory comes before what it holds and the order does not depend on the
/// file system.
pub fn walk(root: &Path, options: &WalkOptions<'_>) -> Result<Vec<Entry>, ImageError> {
    let recorded = if options.owners_from_db {
        recorded_acls(options.installed)
    } else {
        HashMap::new()
    };
    let caller = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let clamp = |t: i64| {
        let t = u64::try_from(t).unwrap_or(0);
        options.epoch.map_or(t, |e| t.min(e))
    };
    let mut found: Vec<(Entry, u64, u64, u64)> = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        for name in read_dir_names(&root.join(&dir))? {
            let rel = dir.join(&name);
            let abs = root.join(&rel);
            let md = std::fs::symlink_metadata(&abs).map_err(io_err("inspect", &abs))?;
            let ft = md.file_type();
            let rdev = md.rdev();
            let dev = || (libc::major(rdev), libc::minor(rdev));
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_dir() {
                stack.push(rel.clone());
                Kind::Dir
            } else if ft.is_file() {
                Kind::File(md.len())
            } else if ft.is_symlink() {
                Kind::Symlink(std::fs::read_link(&abs).map_err(io_err("read the link", &abs))?)
            } else if ft.is_char_device() {
                Kind::Char(dev().0, dev().1)
            } else if ft.is_block_device() {
                Kind::Block(dev().0, dev().1)
            } else if ft.is_fifo() {
                Kind::Fifo
            } else {
                // Sockets cannot be archived; a script's leftover one is not worth failing for.
                continue;
            };
            let (mut uid, mut gid, mode) = (md.uid(), md.gid(), md.mode() & 0o7777);
            if options.owners_from_db {
                match recorded.get(rel.as_os_str().as_bytes()) {
                    // The mode is the staged one: the owner could apply it (setuid bits
                    // too), and it is right where the record is not (apk keeps the mode
                    // of a directory that existed before its package, like `proc`).
                    Some(acl) => (uid, gid) = (acl.uid, acl.gid),
                    None => {
                        // Made by a script or the skeleton as the caller: root's, as in a
                        // root build.
                        if uid == caller.0 {
                            uid = 0;
                        }
                        if gid == caller.1 {
                            gid = 0;
                        }
                    }
                }
            }
            let entry = Entry {
                path: rel,
                kind,
                uid,
                gid,
                mode,
                mtime: clamp(md.mtime()),
            };
            found.push((entry, md.dev(), md.ino(), md.nlink()));
        }
    }
    add_missing_devices(&mut found, options.epoch);
    found.sort_by(|a, b| {
        a.0.path
            .as_os_str()
            .as_bytes()
            .cmp(b.0.path.as_os_str().as_bytes())
    });
    // The first name of a file in path order carries the data; later ones link to it.
    let mut first: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut entries = Vec::with_capacity(found.len());
    for (mut entry, dev, ino, nlink) in found {
        if nlink > 1 && matches!(entry.kind, Kind::File(_)) {
            match first.get(&(dev, ino)) {
                Some(target) => entry.kind = Kind::Hardlink(target.clone()),
                None => {
                    first.insert((dev, ino), entry.path.clone());
                }
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Sets every mtime (and atime) below `root` that is later than `epoch` to `epoch`, the
/// root's too, so that a directory build with `SOURCE_DATE_EPOCH` gives the same tree,
/// times included, as an archive of it does. Links are not followed.
pub fn clamp_mtimes(root: &Path, epoch: u64) -> Result<(), ImageError> {
    let at = rustix::fs::Timespec {
        tv_sec: i64::try_from(epoch).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: at,
        last_modification: at,
    };
    let clamp = |path: &Path, md: &std::fs::Metadata| -> Result<(), ImageError> {
        if u64::try_from(md.mtime()).unwrap_or(0) > epoch {
            rustix::fs::utimensat(
                rustix::fs::CWD,
                path,
                &times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| io_err("set the mtime of", path)(e.into()))?;
        }
        Ok(())
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for name in read_dir_names(&dir)? {
            let path = dir.join(name);
            let md = std::fs::symlink_metadata(&path).map_err(io_err("inspect", &path))?;
            if md.is_dir() {
                stack.push(path.clone());
            }
            clamp(&path, &md)?;
        }
    }
    // Changing children's times leaves their directory's alone; the root is done last.
    let md = std::fs::symlink_metadata(root).map_err(io_err("inspect", root))?;
    clamp(root, &md)
}

/// Path -> recorded owner (and mode) of every directory and file of the packages.
fn recorded_acls(installed: &[InstalledPackage]) -> HashMap<Vec<u8>, Acl> {
    let mut acls = HashMap::new();
    for dir in installed.iter().flat_map(|p| &p.dirs) {
        if !dir.path.is_empty() {
            acls.insert(dir.path.as_bytes().to_vec(), dir.acl);
        }
        for file in &dir.files {
            let path = if dir.path.is_empty() {
                file.name.clone()
            } else {
                format!("{}/{}", dir.path, file.name)
            };
            acls.insert(path.into_bytes(), file.acl);
        }
    }
    acls
}

/// Adds apk's skeleton device nodes that a build without root could not create, owned by
/// root with apk's modes; dated like `dev` itself.
fn add_missing_devices(found: &mut Vec<(Entry, u64, u64, u64)>, epoch: Option<u64>) {
    let Some(dev_mtime) = found
        .iter()
        .find(|(e, ..)| e.path == Path::new("dev") && e.kind == Kind::Dir)
        .map(|(e, ..)| e.mtime)
    else {
        return;
    };
    for (path, mode, major, minor) in SKELETON_DEVICES {
        if found.iter().any(|(e, ..)| e.path == Path::new(path)) {
            continue;
        }
        let entry = Entry {
            path: PathBuf::from(path),
            kind: Kind::Char(major, minor),
            uid: 0,
            gid: 0,
            mode,
            mtime: epoch.map_or(dev_mtime, |e| dev_mtime.min(e)),
        };
        found.push((entry, 0, 0, 1));
    }
}

/// The names in a directory; a directory the caller owns but may not read (a rootless
/// build outside a user namespace) is made readable first: the staged tree is removed
/// after it is archived, and the mode read before is what goes into the archive.
fn read_dir_names(dir: &Path) -> Result<Vec<std::ffi::OsString>, ImageError> {
    let read = || -> std::io::Result<Vec<std::ffi::OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    };
    match read() {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            add_owner_bits(dir, 0o500);
            read()
        }
        other => other,
    }
    .map_err(io_err("read the directory", dir))
}

/// Opens a staged file for reading, adding the owner's read bit when it lacks it.
pub(crate) fn open_staged(path: &Path) -> Result<std::fs::File, ImageError> {
    match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            add_owner_bits(path, 0o400);
            std::fs::File::open(path)
        }
        other => other,
    }
    .map_err(io_err("read", path))
}

fn add_owner_bits(path: &Path, bits: u32) {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        let mode = (md.mode() & 0o7777) | bits;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
}

/// `path` with `/` appended, as tar names directories.
pub(crate) fn dir_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(OsStr::new("/"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_names_of_a_file_are_hardlinks_to_the_first_in_path_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir(root.join("dir")).unwrap();
        std::fs::write(root.join("dir/z"), b"data").unwrap();
        std::fs::hard_link(root.join("dir/z"), root.join("a")).unwrap();
        std::os::unix::fs::symlink("dir/z", root.join("link")).unwrap();
        let options = WalkOptions {
            installed: &[],
            owners_from_db: false,
            epoch: Some(1),
        };
        let entries = walk(root, &options).unwrap();
        let names: Vec<_> = entries
            .iter()
            .map(|e| e.path.display().to_string())
            .collect();
        assert_eq!(names, ["a", "dir", "dir/z", "link"]);
        assert_eq!(entries[0].kind, Kind::File(4));
        assert_eq!(entries[2].kind, Kind::Hardlink(PathBuf::from("a")));
        assert_eq!(entries[3].kind, Kind::Symlink(PathBuf::from("dir/z")));
        assert!(entries.iter().all(|e| e.mtime == 1), "clamped to the epoch");
    }
}
