//! `sysroot-mk cache list|clean|prune`: what the cache holds, and removing it.
//!
//! Prune keeps what a build can still use: it removes folders of other layouts (other
//! format versions, and the unversioned `indexes-v1/`... of earlier releases), partial
//! downloads no build holds locked, temporary files over an hour old, and packages that
//! no cached index lists. With a maximum age, index entries not fetched or revalidated for that long go
//! first, and the packages only they listed with them, and parsed indexes not used for
//! that long. Keys are small and kept.
//!
//! Everything is removed relative to directory descriptors opened with `O_NOFOLLOW`:
//! a symlink planted in the cache is removed, never followed.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode};

use super::{
    dir_flags, open_root, Cache, CacheError, IndexEntry, INDEX_BUCKET, KEY_BUCKET, PACKAGE_BUCKET,
    PARSED_BUCKET, VERSION_DIR,
};

/// What an entry of the cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A cached `APKINDEX.tar.gz`.
    Index,
    /// A verified package.
    Package,
    /// A pinned key fetched by name.
    Key,
    /// An index's text and resolver tables, read instead of parsing it again.
    Parsed,
    /// A download in progress or cut off, or a temporary file.
    Partial,
    /// A folder of another layout or format version (its whole size).
    OldLayout,
    /// Anything else found in a bucket.
    Other,
}

impl EntryKind {
    /// A short word for listings.
    pub fn word(self) -> &'static str {
        match self {
            EntryKind::Index => "index",
            EntryKind::Package => "package",
            EntryKind::Key => "key",
            EntryKind::Parsed => "parsed-index",
            EntryKind::Partial => "partial",
            EntryKind::OldLayout => "old-layout",
            EntryKind::Other => "other",
        }
    }
}

/// One entry of the cache.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its path below the cache root.
    pub path: PathBuf,
    /// Bytes (a folder's: the sum of its files).
    pub size: u64,
    /// What it is.
    pub kind: EntryKind,
    /// The index's URL, the package's `name-version` when a cached index names it, or a
    /// parsed index's description.
    pub what: Option<String>,
    /// Last modification.
    pub modified: Option<SystemTime>,
}

/// What a clean or prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Entries removed (a folder of another layout counts once).
    pub entries: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Names in the folder `fd`, without `.` and `..`, sorted.
fn names(fd: &OwnedFd, path: &Path) -> Result<Vec<String>, CacheError> {
    let err = |source| CacheError {
        path: path.to_path_buf(),
        source,
    };
    let dir = rustix::fs::Dir::read_from(fd).map_err(|e| err(e.into()))?;
    let mut out = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| err(e.into()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Size and type of `name` in `fd`, not following a symlink; a folder's size is the
/// sum of what it holds.
fn measure(fd: &OwnedFd, name: &str) -> (u64, Option<SystemTime>, bool) {
    let Ok(st) = rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return (0, None, false);
    };
    let modified =
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(st.st_mtime.max(0) as u64));
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return (st.st_size as u64, modified, false);
    }
    let Ok(sub) = rustix::fs::openat(fd, name, dir_flags(), Mode::empty()) else {
        return (0, modified, true);
    };
    let total = names(&sub, Path::new(name))
        .unwrap_or_default()
        .iter()
        .map(|n| measure(&sub, n).0)
        .sum();
    (total, modified, true)
}

/// Removes `name` in `fd` (a whole folder included) without following symlinks.
fn remove_at(fd: &OwnedFd, name: &str, path: &Path) -> Result<(), CacheError> {
    let err = |source: std::io::Error| CacheError {
        path: path.join(name),
        source,
    };
    let st = match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(err(e.into())),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub =
            rustix::fs::openat(fd, name, dir_flags(), Mode::empty()).map_err(|e| err(e.into()))?;
        let sub_path = path.join(name);
        for child in names(&sub, &sub_path)? {
            remove_at(&sub, &child, &sub_path)?;
        }
        return match rustix::fs::unlinkat(fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(err(e.into())),
        };
    }
    match rustix::fs::unlinkat(fd, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(err(e.into())),
    }
}

/// Package entry name -> `name-version`.
type Listed = std::collections::HashMap<String, String>;

/// What the cached indexes list: package entry names with their `name-version`, and
/// each index entry's name and URL.
fn index_contents(cache: &Cache) -> (Listed, Vec<(String, Option<String>)>) {
    let mut packages = Listed::new();
    let mut indexes = Vec::new();
    let Ok(Some(bucket)) = cache.existing_bucket(INDEX_BUCKET) else {
        return (packages, indexes);
    };
    for name in names(bucket.fd(), bucket.path()).unwrap_or_default() {
        let Some(entry) = IndexEntry::read_in(&bucket, &name, crate::repository::MAX_INDEX_ARCHIVE)
        else {
            continue;
        };
        for package in crate::repository::packages_of_archive(&entry.bytes).unwrap_or_default() {
            if let Some(key) = crate::fetch::cache_key(&package.checksum) {
                packages.insert(format!("{key}.apk"), package.name_version());
            }
        }
        indexes.push((name, entry.url));
    }
    (packages, indexes)
}

fn kind_of(bucket: &str, name: &str) -> EntryKind {
    if name.starts_with(".tmp-") || name.ends_with(".partial") {
        return EntryKind::Partial;
    }
    match bucket {
        INDEX_BUCKET => EntryKind::Index,
        PACKAGE_BUCKET if name.ends_with(".apk") => EntryKind::Package,
        KEY_BUCKET => EntryKind::Key,
        PARSED_BUCKET => EntryKind::Parsed,
        _ => EntryKind::Other,
    }
}

/// Every entry of the cache at `root`: the buckets' files, then other layouts' folders.
pub fn list(root: &Path) -> Result<Vec<Entry>, CacheError> {
    let Some(root_fd) = open_root(root)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if let Some(cache) = Cache::open_existing(root)? {
        let (packages, indexes) = index_contents(&cache);
        for bucket_name in [INDEX_BUCKET, PACKAGE_BUCKET, KEY_BUCKET, PARSED_BUCKET] {
            let Some(bucket) = cache.existing_bucket(bucket_name)? else {
                continue;
            };
            for name in names(bucket.fd(), bucket.path())? {
                let (size, modified, _) = measure(bucket.fd(), &name);
                let kind = kind_of(bucket_name, &name);
                let what = match kind {
                    EntryKind::Package => packages.get(&name).cloned(),
                    EntryKind::Index => indexes
                        .iter()
                        .find(|(n, _)| *n == name)
                        .and_then(|(_, url)| url.clone()),
                    EntryKind::Parsed => super::parsed::description_of(&bucket, &name)
                        .filter(|d| !d.is_empty())
                        .map(|d| format!("parsed index {d}")),
                    _ => None,
                };
                out.push(Entry {
                    path: Path::new(VERSION_DIR).join(bucket_name).join(&name),
                    size,
                    kind,
                    what,
                    modified,
                });
            }
        }
    }
    for name in names(&root_fd, root)? {
        if name == VERSION_DIR || name == "CACHEDIR.TAG" {
            continue;
        }
        let (size, modified, _) = measure(&root_fd, &name);
        out.push(Entry {
            path: PathBuf::from(&name),
            size,
            kind: EntryKind::OldLayout,
            what: None,
            modified,
        });
    }
    Ok(out)
}

/// Removes everything the cache holds (the folder and its `CACHEDIR.TAG` stay).
pub fn clean(root: &Path) -> Result<Removed, CacheError> {
    let entries = list(root)?;
    let Some(root_fd) = open_root(root)? else {
        return Ok(Removed::default());
    };
    let removed = Removed {
        entries: entries.len(),
        bytes: entries.iter().map(|e| e.size).sum(),
    };
    for name in names(&root_fd, root)? {
        if name != "CACHEDIR.TAG" {
            remove_at(&root_fd, &name, root)?;
        }
    }
    Ok(removed)
}

/// Removes what no build can use any more (see the module documentation); `max_age`
/// also ages out index entries not fetched or revalidated since `now - max_age`.
pub fn prune(
    root: &Path,
    max_age: Option<Duration>,
    now: SystemTime,
) -> Result<Removed, CacheError> {
    let entries = list(root)?;
    let Some(root_fd) = open_root(root)? else {
        return Ok(Removed::default());
    };
    let mut removed = Removed::default();
    let mut count = |entry: &Entry| {
        removed.entries += 1;
        removed.bytes += entry.size;
    };
    for entry in entries.iter().filter(|e| e.kind == EntryKind::OldLayout) {
        remove_at(&root_fd, &entry.path.to_string_lossy(), root)?;
        count(entry);
    }
    let Some(cache) = Cache::open_existing(root)? else {
        return Ok(removed);
    };
    let too_old =
        |entry: &Entry| max_age.is_some_and(|age| entry.modified.is_none_or(|m| m + age < now));
    for (bucket_name, kind) in [
        (INDEX_BUCKET, EntryKind::Index),
        (PARSED_BUCKET, EntryKind::Parsed),
    ] {
        let Some(bucket) = cache.existing_bucket(bucket_name)? else {
            continue;
        };
        for entry in entries.iter().filter(|e| e.kind == kind && too_old(e)) {
            bucket
                .remove(&file_name(entry))
                .map_err(|source| CacheError {
                    path: root.join(&entry.path),
                    source,
                })?;
            count(entry);
        }
    }
    // Listed again: what the remaining indexes name.
    let (listed, _) = index_contents(&cache);
    let listed: HashSet<&String> = listed.keys().collect();
    for bucket_name in [INDEX_BUCKET, PACKAGE_BUCKET, KEY_BUCKET, PARSED_BUCKET] {
        let Some(bucket) = cache.existing_bucket(bucket_name)? else {
            continue;
        };
        for entry in entries
            .iter()
            .filter(|e| e.path.parent() == Some(&Path::new(VERSION_DIR).join(bucket_name)))
        {
            let name = file_name(entry);
            let unused = match entry.kind {
                EntryKind::Package => !listed.contains(&name),
                EntryKind::Partial => !in_use(&bucket, &name, entry, now),
                EntryKind::Other => true,
                _ => false,
            };
            if unused {
                bucket.remove(&name).map_err(|source| CacheError {
                    path: root.join(&entry.path),
                    source,
                })?;
                count(entry);
            }
        }
    }
    Ok(removed)
}

fn file_name(entry: &Entry) -> String {
    entry
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether a build may be writing the file: it holds the lock on a partial download,
/// or a temporary file is under an hour old (it is renamed into place moments after
/// it is made).
fn in_use(bucket: &super::Bucket, name: &str, entry: &Entry, now: SystemTime) -> bool {
    if !name.ends_with(".partial") {
        return entry
            .modified
            .is_none_or(|m| m + Duration::from_secs(3600) > now);
    }
    let Ok(Some(file)) = bucket.open(name) else {
        return false;
    };
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
}

/// Parses `--max-age`: a number with `s`, `m`, `h` or `d` (days when bare).
pub fn parse_age(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "d"),
    };
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(seconds).map(Duration::from_secs)
}
