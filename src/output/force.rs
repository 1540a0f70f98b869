//! Which destinations a build may replace, and how an old tree is removed.
//!
//! `--force` replaces a directory only when it is a sysroot (it holds apk's database,
//! `lib/apk/db/installed`, as both apk and sysroot-mk write it), and never one whose loss
//! would hurt beyond it: `/`, a mount point, the current directory or one of its
//! ancestors, a home directory or one of its ancestors. These refusals hold with
//! `--force`. Removal never crosses into another mount, as `rm --one-file-system`.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::OutputError;

/// Whether `path` (not followed) is the root of a mount. `statx` reports bind mounts of
/// the same file system too; kernels without `STATX_ATTR_MOUNT_ROOT` fall back to
/// comparing the device with `parent_dev`.
pub(super) fn is_mount_point(path: &Path, parent_dev: Option<u64>) -> io::Result<bool> {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
    let st = statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
    .map_err(io::Error::from)?;
    if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
    }
    let dev = libc::makedev(st.stx_dev_major, st.stx_dev_minor);
    Ok(parent_dev.is_some_and(|p| p != dev))
}

/// Refuses destinations no build may write to, empty or not: `/`, mount points, the
/// current directory and its ancestors, home directories and their ancestors.
/// `dest` is absolute with a canonical parent and exists as a directory.
pub(super) fn refuse_protected(dest: &Path) -> Result<(), OutputError> {
    if dest.parent().is_none() {
        return Err(OutputError::Root);
    }
    let parent_dev = dest
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.dev());
    if is_mount_point(dest, parent_dev).map_err(super::io_err("inspect", dest))? {
        return Err(OutputError::MountPoint {
            dest: dest.to_path_buf(),
        });
    }
    if let Ok(cwd) = std::env::current_dir().and_then(std::fs::canonicalize) {
        if cwd.starts_with(dest) {
            return Err(OutputError::CurrentDirectory {
                dest: dest.to_path_buf(),
                cwd,
            });
        }
    }
    if let Some(home) = homes().into_iter().find(|h| h.starts_with(dest)) {
        return Err(OutputError::Home {
            dest: dest.to_path_buf(),
            home,
        });
    }
    Ok(())
}

/// `$HOME` and every home directory in `/etc/passwd`, canonical where they exist; `/`
/// is left out (system accounts use it, and `/` is refused on its own).
fn homes() -> Vec<PathBuf> {
    let mut homes: Vec<PathBuf> = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(passwd) = crate::transport::read_local(Path::new("/etc/passwd"), 16 << 20) {
        for line in String::from_utf8_lossy(&passwd).lines() {
            if let Some(home) = line.split(':').nth(5).filter(|h| h.starts_with('/')) {
                homes.push(PathBuf::from(home));
            }
        }
    }
    homes
        .into_iter()
        .map(|h| std::fs::canonicalize(&h).unwrap_or(h))
        .filter(|h| h.parent().is_some())
        .collect()
}

/// Whether `dest` holds apk's database through real directories (no symlinks).
pub(super) fn is_sysroot(dest: &Path) -> bool {
    let mut path = dest.to_path_buf();
    for dir in ["lib", "apk", "db"] {
        path.push(dir);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return false;
        }
    }
    std::fs::symlink_metadata(path.join("installed")).is_ok_and(|m| m.is_file())
}

/// The first directory below `root` that is another mount, if any.
pub(super) fn mount_inside(root: &Path) -> io::Result<Option<PathBuf>> {
    let dev = std::fs::symlink_metadata(root)?.dev();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let path = entry.path();
            if is_mount_point(&path, Some(dev))? {
                return Ok(Some(path));
            }
            stack.push(path);
        }
    }
    Ok(None)
}

/// A removal stopped at a mount point inside the tree.
#[derive(Debug, thiserror::Error)]
#[error("`{}` is a mount point; it and what contains it were left in place (unmount it first)", .0.display())]
pub struct CrossesMount(pub PathBuf);

/// Removes a tree without following symlinks and without entering another mount:
/// a mount point inside makes it stop with [`CrossesMount`] (as `rm --one-file-system`)
/// and leaves the mount and its parents. Read-only directories left by a non-root build
/// are made writable first.
pub(super) fn remove_tree(path: &Path) -> io::Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !md.is_dir() {
        return std::fs::remove_file(path);
    }
    remove_dir(path, md.dev())
}

fn remove_dir(dir: &Path, dev: u64) -> io::Result<()> {
    if is_mount_point(dir, Some(dev))? {
        return Err(io::Error::other(CrossesMount(dir.to_path_buf())));
    }
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(dir)?;
            std::fs::read_dir(dir)?
        }
        other => other?,
    };
    let mut first_err = None;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let result = match entry.file_type()? {
            t if t.is_dir() => remove_dir(&path, dev),
            _ => std::fs::remove_file(&path).or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => Ok(()),
                io::ErrorKind::PermissionDenied => {
                    make_writable(dir)?;
                    std::fs::remove_file(&path)
                }
                _ => Err(e),
            }),
        };
        if let Err(e) = result {
            // A mount point stops the whole removal; other errors let the rest go first.
            if e.get_ref().is_some_and(|inner| inner.is::<CrossesMount>()) {
                return Err(e);
            }
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn make_writable(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}
