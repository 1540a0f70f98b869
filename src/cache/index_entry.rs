//! A cached `APKINDEX.tar.gz` with the HTTP validators it was served with, in one file
//! so that they always belong together.

use std::path::Path;

use super::{Bucket, CacheError};

const INDEX_MAGIC: &str = "sysroot-mk index cache v1\n";

/// A cached index with the validators it was served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The URL it was fetched from (for `sysroot-mk cache list`).
    pub url: Option<String>,
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
        IndexEntry::parse(&raw)
    }

    /// Reads the entry `name` of `bucket` without following a symlink; `None` when
    /// absent, not a plain file or not in this version's format.
    pub fn read_in(bucket: &Bucket, name: &str, max_size: u64) -> Option<IndexEntry> {
        use std::io::Read;
        let file = bucket.open(name).ok()??;
        let mut raw = Vec::new();
        file.take(max_size.saturating_add(4096))
            .read_to_end(&mut raw)
            .ok()?;
        IndexEntry::parse(&raw)
    }

    fn parse(raw: &[u8]) -> Option<IndexEntry> {
        let rest = raw.strip_prefix(INDEX_MAGIC.as_bytes())?;
        let mut entry = IndexEntry {
            url: None,
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
                "url" => entry.url = Some(value.to_string()),
                "etag" => entry.etag = Some(value.to_string()),
                "last-modified" => entry.last_modified = Some(value.to_string()),
                _ => return None,
            }
        }
        entry.bytes = rest[at..].to_vec();
        Some(entry)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 256);
        out.extend_from_slice(INDEX_MAGIC.as_bytes());
        // Header values come from a server: keep them on one line.
        let clean = |v: &str| v.replace(['\r', '\n'], " ");
        if let Some(url) = &self.url {
            out.extend_from_slice(format!("url: {}\n", clean(url)).as_bytes());
        }
        if let Some(etag) = &self.etag {
            out.extend_from_slice(format!("etag: {}\n", clean(etag)).as_bytes());
        }
        if let Some(modified) = &self.last_modified {
            out.extend_from_slice(format!("last-modified: {}\n", clean(modified)).as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Writes the entry atomically at `path`.
    pub fn write(&self, path: &Path) -> Result<(), CacheError> {
        super::write_atomic(path, &self.encode())
    }

    /// Writes the entry `name` of `bucket` atomically, never through a symlink.
    pub fn write_in(&self, bucket: &Bucket, name: &str) -> Result<(), CacheError> {
        bucket.write_atomic(name, &self.encode())
    }
}
