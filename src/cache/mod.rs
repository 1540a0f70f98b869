//! The on-disk cache: index copies with their HTTP validators, packages keyed by their
//! index checksum, pinned keys fetched by name, and parsed indexes keyed by the digest
//! of their verified archive.
//!
//! Layout: `CACHEDIR.TAG` at the top (backup tools skip the folder), then one folder
//! per format version, `v1/`, holding one bucket per kind: `v1/index/`,
//! `v1/packages/`, `v1/keys/`, `v1/parsed/`. A format change bumps the version folder instead of
//! migrating entries; the builds ignore other folders, and `sysroot-mk cache prune`
//! removes them (the layout before versions, `indexes-v1/` and its siblings, too).
//! Every entry is written to a temporary file in its bucket and renamed into place,
//! so a reader (or a concurrent run) sees either the old entry or the complete new one.
//!
//! The cache never trusts its own directory: a folder owned by another non-root user
//! is refused (as git's `safe.directory`), since whoever can write into it could plant
//! symlinks for root to write through; the version folder, buckets and entries are
//! opened relative to a directory descriptor with `O_NOFOLLOW`, so a planted symlink
//! fails the open.

mod bucket;
mod index_entry;
pub mod manage;
mod parsed;

pub use bucket::{write_atomic, Bucket};
pub use index_entry::IndexEntry;
pub use parsed::{ParsedStore, PARSED_BUCKET, PARSED_MIN_TEXT};

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

/// The folder of this format version, under the cache root.
pub const VERSION_DIR: &str = "v1";
/// Bucket of cached indexes.
pub const INDEX_BUCKET: &str = "index";
/// Bucket of cached packages.
pub const PACKAGE_BUCKET: &str = "packages";
/// Bucket of fetched pinned keys.
pub const KEY_BUCKET: &str = "keys";

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by sysroot-mk.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// A cache folder could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the cache at `{}`", path.display())]
pub struct CacheError {
    /// The file or folder.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

impl crate::report::Hinted for CacheError {
    fn hint(&self) -> Option<crate::report::Hint> {
        Some(crate::report::Hint::fix(
            "pass `--cache-dir` to use another folder, or `--no-cache`",
        ))
    }
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

/// The cache root, checked to be the caller's (or root's); `None` when it is missing.
/// The root is the user's own path: symlinks up to it are followed.
pub(super) fn open_root(root: &Path) -> Result<Option<OwnedFd>, CacheError> {
    let err = |source| CacheError {
        path: root.to_path_buf(),
        source,
    };
    let fd = match rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(err(e.into())),
    };
    let meta = File::from(fd.try_clone().map_err(err)?)
        .metadata()
        .map_err(err)?;
    check_owner(&meta, root)?;
    Ok(Some(fd))
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

/// Opens the folder `name` under `parent` without following a symlink, creating it
/// when `create`; refuses another user's. `None` when absent and not created.
fn open_dir_at(
    parent: &OwnedFd,
    name: &str,
    path: &Path,
    create: bool,
) -> Result<Option<OwnedFd>, CacheError> {
    let err = |source| CacheError {
        path: path.to_path_buf(),
        source,
    };
    if create {
        match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(err(e.into())),
        }
    }
    let fd = match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) if !create => return Ok(None),
        Err(e) => return Err(err(e.into())),
    };
    let meta = File::from(fd.try_clone().map_err(err)?)
        .metadata()
        .map_err(err)?;
    check_owner(&meta, path)?;
    Ok(Some(fd))
}

/// An opened cache folder (its version folder, to be exact).
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    version: Arc<OwnedFd>,
    create: bool,
}

impl Cache {
    /// Creates the folder (with its `CACHEDIR.TAG` and version folder) when missing;
    /// refuses one owned by another non-root user.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        let err = |source| CacheError {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(err)?;
        let cache = Cache::open_with(root, true)?
            .ok_or_else(|| err(std::io::ErrorKind::NotFound.into()))?;
        let tag = root.join("CACHEDIR.TAG");
        if std::fs::symlink_metadata(&tag).is_err() {
            write_atomic(&tag, CACHEDIR_TAG.as_bytes())?;
        }
        Ok(cache)
    }

    /// Opens the cache for reading only (`--offline`): `None` when the folder or its
    /// version folder does not exist; nothing is created, now or by its buckets.
    pub fn open_existing(root: &Path) -> Result<Option<Cache>, CacheError> {
        Cache::open_with(root, false)
    }

    fn open_with(root: &Path, create: bool) -> Result<Option<Cache>, CacheError> {
        let Some(fd) = open_root(root)? else {
            return Ok(None);
        };
        let version_path = root.join(VERSION_DIR);
        let Some(version) = open_dir_at(&fd, VERSION_DIR, &version_path, create)? else {
            return Ok(None);
        };
        Ok(Some(Cache {
            root: root.to_path_buf(),
            version: Arc::new(version),
            create,
        }))
    }

    /// The cache's top folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A bucket folder's path, created when missing; refused when it is a symlink or
    /// another user's.
    pub fn bucket(&self, name: &str) -> Result<PathBuf, CacheError> {
        Ok(self.bucket_dir(name)?.path().to_path_buf())
    }

    /// A bucket opened for entries made relative to its descriptor, created when
    /// missing (a cache opened read-only gives `NotFound` instead).
    pub fn bucket_dir(&self, name: &str) -> Result<Bucket, CacheError> {
        let path = self.root.join(VERSION_DIR).join(name);
        match open_dir_at(&self.version, name, &path, self.create)? {
            Some(fd) => Ok(Bucket::new(path, fd)),
            None => Err(CacheError {
                path,
                source: std::io::ErrorKind::NotFound.into(),
            }),
        }
    }

    /// A bucket when it exists; never creates it.
    pub fn existing_bucket(&self, name: &str) -> Result<Option<Bucket>, CacheError> {
        let path = self.root.join(VERSION_DIR).join(name);
        Ok(open_dir_at(&self.version, name, &path, false)?.map(|fd| Bucket::new(path, fd)))
    }

    /// The entry name of the index fetched from `url` in [`INDEX_BUCKET`].
    pub fn index_key(url: &str) -> String {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(url.as_bytes()));
        digest[..32].to_string()
    }

    /// Where the index fetched from `url` is kept (the bucket is created).
    pub fn index_entry(&self, url: &str) -> Result<PathBuf, CacheError> {
        Ok(self.bucket(INDEX_BUCKET)?.join(Cache::index_key(url)))
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
        assert!(path.starts_with(cache.root().join("v1/index")));
        let entry = IndexEntry {
            url: Some("https://x/main/x86_64/APKINDEX.tar.gz".into()),
            etag: Some("\"abc\"".into()),
            last_modified: None,
            bytes: b"\n\nbody\n".to_vec(),
        };
        entry.write(&path).unwrap();
        assert_eq!(IndexEntry::read(&path, 100), Some(entry));
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(IndexEntry::read(&path, 100), None);
    }

    #[test]
    fn a_read_only_opening_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        assert!(Cache::open_existing(&root).unwrap().is_none());
        assert!(!root.exists());
        std::fs::create_dir(&root).unwrap();
        Cache::open(&root).unwrap();
        let cache = Cache::open_existing(&root).unwrap().unwrap();
        assert!(cache.existing_bucket(PACKAGE_BUCKET).unwrap().is_none());
        assert!(!root.join("v1/packages").exists());
    }

    #[test]
    fn a_symlinked_version_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join(VERSION_DIR)).unwrap();
        assert!(Cache::open(&root).is_err());
    }
}
