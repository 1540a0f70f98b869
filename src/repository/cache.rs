//! The on-disk cache: index copies with their HTTP validators, packages keyed by their
//! index checksum, and pinned keys fetched by name.
//!
//! Layout (uv style): one folder per kind with a versioned name, bumped when the format
//! changes instead of migrating old entries; a `CACHEDIR.TAG` at the top so backup
//! tools skip it. Every entry is written to a temporary file in its folder and renamed
//! into place, so a reader (or a concurrent run) sees either the old entry or the
//! complete new one, never a torn write.
//!
//! The cache never trusts its own directory: a folder owned by another non-root user
//! is refused (as git's `safe.directory`), since whoever can write into it could plant
//! symlinks for root to write through; buckets and package entries are opened relative
//! to a directory descriptor with `O_NOFOLLOW`, so a planted symlink fails the open.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

/// Folder of cached indexes.
pub const INDEX_BUCKET: &str = "indexes-v1";
/// Folder of cached packages.
pub const PACKAGE_BUCKET: &str = "packages-v1";
/// Folder of fetched pinned keys.
pub const KEY_BUCKET: &str = "keys-v1";

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by sysroot-mk.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

const INDEX_MAGIC: &str = "sysroot-mk index cache v1\n";

/// A cache folder could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the cache at `{}`; pass `--cache-dir` to use another folder or `--no-cache`", path.display())]
pub struct CacheError {
    /// The file or folder.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// The default cache folder: `$XDG_CACHE_HOME/sysroot-mk`, else `~/.cache/sysroot-mk`.
pub fn default_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("sysroot-mk"))
}

/// The default cache folder when it can be used; otherwise warns once (through
/// `reporter`) and returns `None`, so the build goes on without a cache. Nothing is
/// created here: a build from local repositories never touches the cache.
pub fn default_or_warn(reporter: &dyn crate::report::Reporter) -> Option<PathBuf> {
    let Some(dir) = default_dir() else {
        reporter.warn("no cache: neither XDG_CACHE_HOME nor HOME is set; building without one");
        return None;
    };
    // A missing home is not ours to create, even when we could (as root).
    let home = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .is_none()
        .then(|| std::env::var_os("HOME").map(PathBuf::from))
        .flatten();
    let checked = match home {
        Some(home) if !home.is_dir() => Err(std::io::Error::other(format!(
            "the home directory `{}` does not exist",
            home.display()
        ))),
        _ => usable(&dir),
    };
    match checked {
        Ok(()) => Some(dir),
        Err(cause) => {
            reporter.warn(&format!(
                "cannot use the default cache at `{}` ({cause}); building without a cache (pass `--cache-dir` to choose one)",
                dir.display()
            ));
            None
        }
    }
}

/// Whether `dir` exists as a folder of ours, or could be created: its nearest existing
/// ancestor is a writable folder.
fn usable(dir: &Path) -> std::io::Result<()> {
    let Some(existing) = dir.ancestors().find(|p| std::fs::metadata(p).is_ok()) else {
        return Err(std::io::ErrorKind::NotFound.into());
    };
    let meta = std::fs::metadata(existing)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other(format!(
            "`{}` is not a directory",
            existing.display()
        )));
    }
    if existing == dir {
        check_owner(&meta, dir).map_err(|e| e.source)?;
    }
    rustix::fs::access(
        existing,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(|e| {
        std::io::Error::other(format!(
            "`{}`: {}",
            existing.display(),
            std::io::Error::from(e)
        ))
    })
}

/// An opened cache folder.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    fd: Arc<OwnedFd>,
}

/// Refuses a cache file or folder owned by another user than us or root.
fn check_owner(meta: &std::fs::Metadata, path: &Path) -> Result<(), CacheError> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(CacheError {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!(
                "it is owned by uid {}, not by this user (uid {me}) or root; another user's cache could redirect what is written",
                meta.uid()
            )),
        });
    }
    Ok(())
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl Cache {
    /// Creates the folder (and its `CACHEDIR.TAG`) when missing; refuses one owned by
    /// another non-root user.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        let err = |source| CacheError {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(err)?;
        // The root is the user's own path: symlinks up to it are followed.
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(e.into()))?;
        let meta = File::from(fd.try_clone().map_err(err)?)
            .metadata()
            .map_err(err)?;
        check_owner(&meta, root)?;
        let cache = Cache {
            root: root.to_path_buf(),
            fd: Arc::new(fd),
        };
        let tag = root.join("CACHEDIR.TAG");
        if std::fs::symlink_metadata(&tag).is_err() {
            write_atomic(&tag, CACHEDIR_TAG.as_bytes())?;
        }
        Ok(cache)
    }

    /// The cache's top folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A bucket folder, created when missing; refused when it is a symlink or another
    /// user's.
    pub fn bucket(&self, name: &str) -> Result<PathBuf, CacheError> {
        Ok(self.bucket_dir(name)?.path)
    }

    /// A bucket opened for entries made relative to its descriptor.
    pub fn bucket_dir(&self, name: &str) -> Result<Bucket, CacheError> {
        let path = self.root.join(name);
        let err = |source| CacheError {
            path: path.clone(),
            source,
        };
        match rustix::fs::mkdirat(&*self.fd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(err(e.into())),
        }
        let fd = rustix::fs::openat(&*self.fd, name, dir_flags(), Mode::empty())
            .map_err(|e| err(e.into()))?;
        let meta = File::from(fd.try_clone().map_err(err)?)
            .metadata()
            .map_err(err)?;
        check_owner(&meta, &path)?;
        Ok(Bucket {
            path,
            fd: Arc::new(fd),
        })
    }

    /// Where the index fetched from `url` is kept.
    pub fn index_entry(&self, url: &str) -> Result<PathBuf, CacheError> {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(url.as_bytes()));
        Ok(self.bucket(INDEX_BUCKET)?.join(&digest[..32]))
    }
}

/// A bucket folder of the cache, held open: entries are opened, renamed and removed
/// relative to it, never through a symlink.
#[derive(Debug, Clone)]
pub struct Bucket {
    path: PathBuf,
    fd: Arc<OwnedFd>,
}

impl Bucket {
    /// The bucket's path (for messages and for readers outside the cache code).
    pub fn path(&self) -> &Path {
        &self.path
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

/// A cached index with the validators it was served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// `ETag`.
    pub etag: Option<String>,
    /// `Last-Modified`.
    pub last_modified: Option<String>,
    /// The `APKINDEX.tar.gz` bytes.
    pub bytes: Vec<u8>,
}

impl IndexEntry {
    /// Reads an entry; `None` when absent or not in this version's format.
    pub fn read(path: &Path, max_size: u64) -> Option<IndexEntry> {
        let raw = crate::transport::read_local(path, max_size.saturating_add(4096)).ok()?;
        let rest = raw.strip_prefix(INDEX_MAGIC.as_bytes())?;
        let mut entry = IndexEntry {
            etag: None,
            last_modified: None,
            bytes: Vec::new(),
        };
        let mut at = 0;
        loop {
            let end = at + rest[at..].iter().position(|b| *b == b'\n')?;
            let line = std::str::from_utf8(&rest[at..end]).ok()?;
            at = end + 1;
            if line.is_empty() {
                break;
            }
            let (key, value) = line.split_once(": ")?;
            match key {
                "etag" => entry.etag = Some(value.to_string()),
                "last-modified" => entry.last_modified = Some(value.to_string()),
                _ => return None,
            }
        }
        entry.bytes = rest[at..].to_vec();
        Some(entry)
    }

    /// Writes the entry atomically (validators and body in one file, so they always
    /// belong together).
    pub fn write(&self, path: &Path) -> Result<(), CacheError> {
        let mut out = Vec::with_capacity(self.bytes.len() + 256);
        out.extend_from_slice(INDEX_MAGIC.as_bytes());
        // Header values come from a server: keep them on one line.
        let clean = |v: &str| v.replace(['\r', '\n'], " ");
        if let Some(etag) = &self.etag {
            out.extend_from_slice(format!("etag: {}\n", clean(etag)).as_bytes());
        }
        if let Some(modified) = &self.last_modified {
            out.extend_from_slice(format!("last-modified: {}\n", clean(modified)).as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(&self.bytes);
        write_atomic(path, &out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entry_round_trips_and_is_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c")).unwrap();
        let tag = std::fs::read_to_string(cache.root().join("CACHEDIR.TAG")).unwrap();
        assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
        let path = cache
            .index_entry("https://x/main/x86_64/APKINDEX.tar.gz")
            .unwrap();
        assert!(path.starts_with(cache.root().join(INDEX_BUCKET)));
        let entry = IndexEntry {
            etag: Some("\"abc\"".into()),
            last_modified: None,
            bytes: b"\n\nbody\n".to_vec(),
        };
        entry.write(&path).unwrap();
        assert_eq!(IndexEntry::read(&path, 100), Some(entry));
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(IndexEntry::read(&path, 100), None);
    }
}
