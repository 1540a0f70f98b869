//! The on-disk cache: index copies with their HTTP validators, packages keyed by their
//! index checksum, and pinned keys fetched by name.
//!
//! Layout (uv style): one folder per kind with a versioned name, bumped when the format
//! changes instead of migrating old entries; a `CACHEDIR.TAG` at the top so backup
//! tools skip it. Every entry is written to a temporary file in its folder and renamed
//! into place, so a reader (or a concurrent run) sees either the old entry or the
//! complete new one, never a torn write.

use std::io::Write;
use std::path::{Path, PathBuf};

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

/// An opened cache folder.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Creates the folder (and its `CACHEDIR.TAG`) when missing.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        let err = |source| CacheError {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(err)?;
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            write_atomic(&tag, CACHEDIR_TAG.as_bytes())?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    /// The cache's top folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A bucket folder, created when missing.
    pub fn bucket(&self, name: &str) -> Result<PathBuf, CacheError> {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).map_err(|source| CacheError {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    /// Where the index fetched from `url` is kept.
    pub fn index_entry(&self, url: &str) -> Result<PathBuf, CacheError> {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(url.as_bytes()));
        Ok(self.bucket(INDEX_BUCKET)?.join(&digest[..32]))
    }
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |source| CacheError {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(err)?;
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
