//! Loading the indexes of all repositories: fetch (or revalidate the cached copy),
//! verify the signature, parse.
//!
//! Several repositories load in parallel, one rayon task each: fetching is I/O bound
//! and parsing the larger indexes is CPU bound, and there are only a handful of them,
//! so one task per repository keeps both cores busy without a pool of its own.

use super::{Mirror, Repository, RepositoryError, DEFAULT_KEY_URL};
use crate::archive::{self, Signed};
use crate::cache::{Bucket, Cache, IndexEntry, ParsedStore, INDEX_BUCKET, KEY_BUCKET};
use crate::index::{parse_apkindex, Package, ParsedIndex};
use crate::report::Reporter;
use crate::transport::{Conditional, Transport, TransportOptions, Validators};
use crate::trust::{pin_for, Keyring, Message, TrustError, TrustedKey};
use flate2::bufread::MultiGzDecoder;
use rayon::prelude::*;
use std::io::Read;
use std::path::PathBuf;

mod warm;

/// Largest `APKINDEX.tar.gz` accepted (v3.19 community is 2.5 MB).
pub const MAX_INDEX_ARCHIVE: u64 = 128 * 1024 * 1024;
/// Largest inflated index tar accepted (v3.19 community is 7.6 MB of text).
const MAX_INDEX_TEXT: u64 = 1024 * 1024 * 1024;
/// Largest key file fetched by name.
const MAX_KEY: u64 = 64 * 1024;

/// How indexes are loaded.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Accept unsigned or untrusted indexes, with a warning.
    pub allow_untrusted: bool,
    /// The cache folder for remote indexes (and fetched keys); `None` with `--no-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Base URL from which pinned keys missing locally are fetched by name (checked
    /// against the pin before use); `None` to never fetch keys. Ignored when the
    /// keyring is explicit (`--keys-dir`).
    pub key_url: Option<String>,
    /// Timeouts and retries.
    pub transport: TransportOptions,
    /// The mirror branch the repositories are (in its order): a missing index of one of
    /// its optional repositories is a warning, and a missing required one names the
    /// arches the branch publishes. `None` for repositories given one by one.
    pub mirror: Option<Mirror>,
    /// `--offline`: no network at all; remote indexes come from the cache (and are
    /// verified as if fresh), keys are never fetched.
    pub offline: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            offline: false,
            allow_untrusted: false,
            cache_dir: None,
            key_url: Some(DEFAULT_KEY_URL.to_string()),
            transport: TransportOptions::default(),
            mirror: None,
        }
    }
}

/// A verified, checked index.
#[derive(Debug, Clone)]
pub struct LoadedIndex {
    /// Position of the repository in the list given (what [`Package::repo`] holds).
    pub repo: usize,
    /// The index URL it was read from.
    pub url: String,
    /// The `DESCRIPTION` file (e.g. `v3.19.1-78-g...`), trimmed.
    pub description: String,
    /// The index text with what resolving reads of it.
    pub index: ParsedIndex,
    /// The key that verified the index; `None` when accepted by `--allow-untrusted`.
    pub key: Option<TrustedKey>,
}

impl LoadedIndex {
    /// Every package in full, in index order (read from the text on each call: a build
    /// only needs the planned ones, which the resolver makes itself).
    pub fn packages(&self) -> Vec<Package> {
        self.index.packages(self.repo)
    }
}

/// Loads the index of every repository for `arch`, in parallel, in the given order.
pub fn load_indexes(
    repos: &[Repository],
    arch: &str,
    keyring: &Keyring,
    options: &IndexOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<LoadedIndex>, RepositoryError> {
    let transport = Transport::new(options.transport.clone());
    load_indexes_with(&transport, repos, arch, keyring, options, reporter)
}

/// [`load_indexes`] with a caller's transport (to share its HTTP client with the
/// package downloads).
pub fn load_indexes_with(
    transport: &Transport,
    repos: &[Repository],
    arch: &str,
    keyring: &Keyring,
    options: &IndexOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<LoadedIndex>, RepositoryError> {
    let cache = match &options.cache_dir {
        // Offline, nothing is written: a cache that is not there is one without entries.
        Some(dir) if options.offline => Cache::open_existing(dir)?,
        Some(dir) if repos.iter().any(Repository::is_remote) => Some(Cache::open(dir)?),
        _ => None,
    };
    let bucket = match &cache {
        Some(cache) if options.offline => cache.existing_bucket(INDEX_BUCKET)?,
        Some(cache) if repos.iter().any(Repository::is_remote) => {
            Some(cache.bucket_dir(INDEX_BUCKET)?)
        }
        _ => None,
    };
    let parsed = options
        .cache_dir
        .as_deref()
        .map(|dir| ParsedStore::new(dir, !options.offline));
    let loader = Loader {
        parsed: parsed.as_ref(),
        transport,
        arch,
        keyring,
        options,
        cache: cache.as_ref(),
        bucket: bucket.as_ref(),
        reporter,
    };
    let load = |(i, repo)| loader.load_or_skip(i, repo);
    // One repository is loaded on this thread: the rayon pool would cost two thread
    // starts and a hand-off for nothing to run beside it.
    let results: Vec<_> = if repos.len() > 1 {
        repos.par_iter().enumerate().map(load).collect()
    } else {
        repos.iter().enumerate().map(load).collect()
    };
    let mut loaded = Vec::with_capacity(results.len());
    let mut missing = Vec::new();
    for (result, repo) in results.into_iter().zip(repos) {
        match result {
            Ok(Ok(index)) => loaded.push(index),
            Ok(Err(not_found)) => missing.push((not_found, repo)),
            Err(err) => return Err(loader.explain_missing(err)),
        }
    }
    if loaded.is_empty() && !missing.is_empty() {
        // Every repository of the selection is missing: none is optional then.
        let (err, _) = missing.swap_remove(0);
        return Err(loader.explain_missing(err));
    }
    // Said only once the build goes on: next to a fatal error it would only distract.
    for (err, repo) in missing {
        reporter.warn(&format!(
            "{}; going on without `{}` (a sysroot built now leaves it out of its \
             `etc/apk/repositories`)",
            crate::report::error_chain(&err),
            repo.url
        ));
    }
    Ok(loaded)
}

/// Whether an error is a repository's index being absent (not unreachable, not bad).
fn is_not_found(err: &RepositoryError) -> bool {
    matches!(
        err,
        RepositoryError::Fetch {
            source: crate::transport::TransportError::NotFound { .. },
            ..
        }
    )
}

struct Loader<'a> {
    parsed: Option<&'a ParsedStore>,
    transport: &'a Transport,
    arch: &'a str,
    keyring: &'a Keyring,
    options: &'a IndexOptions,
    cache: Option<&'a Cache>,
    bucket: Option<&'a Bucket>,
    reporter: &'a dyn Reporter,
}

impl Loader<'_> {
    /// Loads a repository; a missing index of an optional repository of the mirror is
    /// `Ok(Err(..))`, for a warning once the others loaded.
    fn load_or_skip(
        &self,
        position: usize,
        repo: &Repository,
    ) -> Result<Result<LoadedIndex, RepositoryError>, RepositoryError> {
        match self.load(position, repo) {
            Ok(index) => Ok(Ok(index)),
            Err(err)
                if is_not_found(&err)
                    && self
                        .options
                        .mirror
                        .as_ref()
                        .is_some_and(|m| m.is_optional(position)) =>
            {
                Ok(Err(err))
            }
            Err(err) => Err(err),
        }
    }

    /// A mirror repository without an index for the arch: which arches it has instead,
    /// asked of the mirror for every known arch at once (a HEAD request each).
    fn explain_missing(&self, err: RepositoryError) -> RepositoryError {
        let (Some(mirror), RepositoryError::Fetch { repo, .. }) = (&self.options.mirror, &err)
        else {
            return err;
        };
        if !is_not_found(&err) {
            return err;
        }
        let repo = Repository {
            url: repo.clone(),
            tag: None,
        };
        let probes: Vec<(&str, Result<bool, _>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = crate::arch::Arch::names()
                .map(|name| {
                    let url = repo.index_url(name);
                    (name, scope.spawn(move || self.transport.exists(&url)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(name, h)| (name, h.join().unwrap_or(Ok(false))))
                .collect()
        });
        // A probe that failed tells nothing: keep the plain error rather than guess.
        if probes.iter().any(|(_, r)| r.is_err()) {
            return err;
        }
        let mut published: Vec<String> = probes
            .into_iter()
            .filter(|(_, r)| matches!(r, Ok(true)))
            .map(|(name, _)| name.to_string())
            .collect();
        published.sort();
        self.reporter.info(&format!(
            "`{}` publishes: {}",
            repo.url,
            published.join(", ")
        ));
        if published.is_empty() {
            return RepositoryError::NoBranch {
                repo: repo.url,
                branch: mirror.branch.clone(),
            };
        }
        RepositoryError::NoArchIndex {
            repo: repo.url,
            arch: self.arch.to_string(),
            closest: super::closest_arch(self.arch, &published),
            published,
        }
    }

    fn load(&self, position: usize, repo: &Repository) -> Result<LoadedIndex, RepositoryError> {
        let url = repo.index_url(self.arch);
        if !repo.is_remote() {
            if let Some(loaded) = self.load_warm_local(position, &url)? {
                return Ok(loaded);
            }
        }
        let (bytes, fresh) = self.fetch(repo, &url)?;
        let archive_err = |source| RepositoryError::Archive {
            url: url.clone(),
            source,
        };
        let signed = archive::split_signature(&bytes).map_err(archive_err)?;
        // The parsed form the bytes name (the SHA-1 the signature covers, hashed once
        // for both) is read while their signature is checked, and used only once it
        // passed: it never stands in for an index that did not.
        let sha1: Option<[u8; 20]> = self.parsed.map(|_| {
            use sha1::Digest;
            sha1::Sha1::digest(signed.rest).into()
        });
        let check = || {
            let message = Message::Bytes(signed.rest, sha1.as_ref());
            self.check_trust(&url, &signed, message)
        };
        let (key, (digest, hit)) = match (self.parsed, &sha1) {
            (Some(store), Some(sha1)) => rayon::join(check, || {
                let digest = ParsedStore::key(sha1);
                let hit = store.read(&digest);
                (Some(digest), hit)
            }),
            // Nothing to read beside the check: no hand-off to the pool.
            _ => (check(), (None, None)),
        };
        let key = key?;
        self.said_verified(&url, key.as_ref());
        let (description, index) = match hit {
            Some(hit) => {
                self.reporter
                    .info(&format!("`{url}`: using the parsed form the cache holds"));
                hit
            }
            None => {
                let (description, text) = read_index_tar(signed.rest, &url)?;
                let mut index =
                    ParsedIndex::parse(text).map_err(|source| RepositoryError::Index {
                        url: url.clone(),
                        source,
                    })?;
                if let (Some(store), Some(digest)) = (self.parsed, &digest) {
                    if let Err(err) = store.write(digest, &description, &mut index) {
                        self.reporter.info(&format!(
                            "cannot keep the parsed form of `{url}`: {}",
                            crate::report::error_chain(&err)
                        ));
                    }
                }
                (description, index)
            }
        };
        // Only a verified (or knowingly accepted) index is worth keeping.
        if let (Some(bucket), Some(fresh)) = (self.bucket, fresh) {
            IndexEntry {
                url: Some(url.clone()),
                etag: fresh.etag,
                last_modified: fresh.last_modified,
                bytes,
            }
            .write_in(bucket, &Cache::index_key(&url))?;
        }
        Ok(self.loaded(position, &url, description, index, key))
    }

    /// The loaded index, said.
    fn loaded(
        &self,
        position: usize,
        url: &str,
        description: String,
        index: ParsedIndex,
        key: Option<TrustedKey>,
    ) -> LoadedIndex {
        self.reporter.info(&format!(
            "`{url}`: {} packages ({description})",
            index.len()
        ));
        LoadedIndex {
            repo: position,
            url: url.to_string(),
            description,
            index,
            key,
        }
    }

    /// Says which key verified the index at `url` (nothing when it was accepted
    /// unverified: that was warned about).
    fn said_verified(&self, url: &str, key: Option<&TrustedKey>) {
        if let Some(key) = key {
            self.reporter.info(&format!(
                "`{url}` verified with `{}` from `{}`",
                key.name, key.source
            ));
        }
    }

    /// The cached copy of the index at `url` (remote ones only).
    fn cached(&self, url: &str) -> Option<IndexEntry> {
        match self.bucket {
            Some(bucket) if crate::transport::is_remote(url) => {
                IndexEntry::read_in(bucket, &Cache::index_key(url), MAX_INDEX_ARCHIVE)
            }
            _ => None,
        }
    }

    /// The index bytes, and the validators to cache them with when they came fresh
    /// from a server.
    fn fetch(
        &self,
        repo: &Repository,
        url: &str,
    ) -> Result<(Vec<u8>, Option<Validators>), RepositoryError> {
        let fetch_err = |source| RepositoryError::Fetch {
            repo: repo.url.clone(),
            source,
        };
        let cached = self.cached(url);
        if self.options.offline && repo.is_remote() {
            return match cached {
                Some(entry) => {
                    self.reporter
                        .info(&format!("offline: using the cached copy of `{url}`"));
                    Ok((entry.bytes, None))
                }
                None => Err(RepositoryError::Offline {
                    url: url.to_string(),
                    path: self.cache.map(|c| {
                        c.root()
                            .join(crate::cache::VERSION_DIR)
                            .join(INDEX_BUCKET)
                            .join(Cache::index_key(url))
                    }),
                }),
            };
        }
        let validators = cached
            .as_ref()
            .map(|c| Validators {
                etag: c.etag.clone(),
                last_modified: c.last_modified.clone(),
            })
            .unwrap_or_default();
        if repo.is_remote() {
            let cache = match (&cached, self.cache) {
                (Some(_), _) => "cache hit, revalidating",
                (None, Some(_)) => "cache miss",
                (None, None) => "no cache",
            };
            self.reporter.info(&format!("fetching `{url}` ({cache})"));
        }
        match self
            .transport
            .read_conditional(url, &validators, MAX_INDEX_ARCHIVE)
        {
            Ok(Conditional::Fresh { bytes, validators }) => {
                Ok((bytes, repo.is_remote().then_some(validators)))
            }
            Ok(Conditional::NotModified) => match cached {
                Some(entry) => {
                    self.reporter
                        .info(&format!("`{url}` not modified; using the cached copy"));
                    self.touch(url);
                    Ok((entry.bytes, None))
                }
                None => Err(fetch_err(crate::transport::TransportError::Status {
                    url: url.to_string(),
                    status: 304,
                    attempts: 1,
                })),
            },
            // A mirror that cannot be reached does not stop a build the cache can serve:
            // the copy is verified against its signature like a fresh one.
            Err(err) if cached.is_some() && unreachable(&err) => {
                self.reporter.warn(&format!(
                    "{}; using the cached copy of `{url}`",
                    crate::report::error_chain(&err)
                ));
                Ok((cached.map(|c| c.bytes).unwrap_or_default(), None))
            }
            Err(err) => Err(fetch_err(err)),
        }
    }

    /// Marks the cached copy of `url` as revalidated now (`cache prune --max-age`
    /// ages entries by it); failing only costs an earlier prune.
    fn touch(&self, url: &str) {
        if let Some(Ok(Some(file))) = self.bucket.map(|b| b.open(&Cache::index_key(url))) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Verifies the signatures of `signed` over `message`, made of its signed part.
    fn check_trust(
        &self,
        url: &str,
        signed: &Signed<'_>,
        message: Message<'_>,
    ) -> Result<Option<TrustedKey>, RepositoryError> {
        let result = match self.keyring.verify_signed_message(signed, message) {
            Err(TrustError::UnknownKey { key, known }) => {
                self.with_fetched_key(url, signed, message, key, known)
            }
            other => other.cloned(),
        };
        let err = match result {
            Ok(key) => return Ok(Some(key)),
            Err(err) => err,
        };
        let err = match err {
            TrustError::UnknownKey { key, known } => RepositoryError::UntrustedKey {
                url: url.to_string(),
                key,
                known,
            },
            TrustError::BadSignature { key, origin } => RepositoryError::BadSignature {
                url: url.to_string(),
                key,
                origin,
            },
            TrustError::Unsigned => RepositoryError::Unsigned {
                url: url.to_string(),
            },
            other => RepositoryError::Key {
                url: url.to_string(),
                source: other,
            },
        };
        if self.options.allow_untrusted {
            self.reporter
                .warn(&format!("{err}; using it anyway (`--allow-untrusted`)"));
            return Ok(None);
        }
        Err(err)
    }

    /// The signature names a pinned official key that no local folder holds: fetch it
    /// by name (or take the cached copy), check it against its pin, and verify with it.
    fn with_fetched_key(
        &self,
        url: &str,
        signed: &Signed<'_>,
        message: Message<'_>,
        key: String,
        known: Vec<String>,
    ) -> Result<TrustedKey, TrustError> {
        let unknown = || TrustError::UnknownKey {
            key: key.clone(),
            known: known.clone(),
        };
        let Some(base) = &self.options.key_url else {
            return Err(unknown());
        };
        // `--allow-untrusted` accepts the index anyway: no reason to wait on the network.
        if self.options.allow_untrusted
            || self.keyring.is_explicit()
            || pin_for(&key, self.arch).is_none()
        {
            return Err(unknown());
        }
        let mut ring = self.keyring.clone();
        let bucket = match self.cache {
            // Offline nothing is written: the bucket is used only if it is there.
            Some(cache) if self.options.offline => cache.existing_bucket(KEY_BUCKET).ok().flatten(),
            Some(cache) => cache.bucket_dir(KEY_BUCKET).ok(),
            None => None,
        };
        if let Some(bucket) = &bucket {
            if let Some(pem) = read_cached_key(bucket, &key) {
                let origin = bucket.path().join(&key).display().to_string();
                if ring.add_pinned(&key, &pem, &origin).unwrap_or(false) {
                    return ring.verify_signed_message(signed, message).cloned();
                }
            }
        }
        if self.options.offline {
            self.reporter.warn(&format!(
                "offline: `{url}` is signed by the pinned key `{key}`, which neither the host nor the cache holds; pass `--keys-dir`"
            ));
            return Err(unknown());
        }
        let key_url = format!("{}/{key}", base.trim_end_matches('/'));
        self.reporter.info(&format!(
            "`{url}` is signed by `{key}`; fetching it from `{key_url}` to check against its pin"
        ));
        let pem = match self.transport.read(&key_url, MAX_KEY) {
            Ok(pem) => pem,
            Err(err) => {
                self.reporter.warn(&format!(
                    "cannot fetch the pinned key `{key}` that signs `{url}`: {}",
                    crate::report::error_chain(&err)
                ));
                return Err(unknown());
            }
        };
        if !ring.add_pinned(&key, &pem, &key_url)? {
            return Err(unknown());
        }
        if let Some(bucket) = &bucket {
            // A failed cache write only costs a later re-fetch.
            let _ = bucket.write_atomic(&key, &pem);
        }
        ring.verify_signed_message(signed, message).cloned()
    }
}

/// A pinned key cached by name, read without following a symlink (it is checked
/// against its pin before use).
pub(crate) fn read_cached_key(bucket: &Bucket, name: &str) -> Option<Vec<u8>> {
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    let file = bucket.open(name).ok()??;
    let mut pem = Vec::new();
    file.take(MAX_KEY + 1).read_to_end(&mut pem).ok()?;
    (pem.len() as u64 <= MAX_KEY).then_some(pem)
}

/// The packages of an `APKINDEX.tar.gz`, its signature not checked (for listing what
/// the cache holds, never for installing).
pub fn packages_of_archive(bytes: &[u8]) -> Option<Vec<Package>> {
    let signed = archive::split_signature(bytes).ok()?;
    let (_, text) = read_index_tar(signed.rest, "").ok()?;
    parse_apkindex(&text, 0).ok()
}

/// Whether a fetch failed because the mirror cannot be reached (rather than because it
/// answered something wrong).
fn unreachable(err: &crate::transport::TransportError) -> bool {
    use crate::transport::TransportError as T;
    match err {
        T::Http { .. }
        | T::Stalled { .. }
        | T::Deadline { .. }
        | T::Unreachable { .. }
        | T::HostDown { .. } => true,
        T::Status { status, .. } => *status >= 500,
        _ => false,
    }
}

/// The index archive inflated by streaming (what [`crate::inflate`] leaves), with its
/// error when the stream is damaged or larger than an index may be.
fn inflate_streaming(rest: &[u8]) -> Result<Vec<u8>, archive::ArchiveError> {
    // Sized up front from the trailer: growing a ~8 MB vector by doubling costs more
    // than inflating it. A hint that cannot be had is only slower.
    let hint = crate::inflate::size_hint(rest).unwrap_or(0);
    let mut tar_bytes = Vec::new();
    let _ = tar_bytes.try_reserve_exact(hint.min(MAX_INDEX_TEXT as usize) + 1024);
    MultiGzDecoder::new(rest)
        .take(MAX_INDEX_TEXT + 1)
        .read_to_end(&mut tar_bytes)
        .map_err(archive::ArchiveError::Gzip)?;
    if tar_bytes.len() as u64 > MAX_INDEX_TEXT {
        return Err(archive::ArchiveError::TooLarge {
            limit: MAX_INDEX_TEXT,
        });
    }
    Ok(tar_bytes)
}

/// Inflates the index tar and returns `DESCRIPTION` and `APKINDEX`; the text is moved
/// to the front of the inflated buffer rather than copied out of it.
fn read_index_tar(rest: &[u8], url: &str) -> Result<(String, String), RepositoryError> {
    let archive_err = |source| RepositoryError::Archive {
        url: url.to_string(),
        source,
    };
    let mut tar_bytes = match crate::inflate::gzip_members(rest, MAX_INDEX_TEXT as usize) {
        Some(bytes) => bytes,
        None => inflate_streaming(rest).map_err(archive_err)?,
    };
    let mut description = String::new();
    let mut text: Option<Result<std::ops::Range<usize>, Vec<u8>>> = None;
    let mut seen = Vec::new();
    let mut tar = archive::tar_archive(&tar_bytes[..]);
    let entries = tar
        .entries_with_seek()
        .map_err(|e| archive_err(archive::ArchiveError::Tar(e)))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(archive::ArchiveError::Tar(e)))?;
        if !archive::apk_sees(entry.header())
            .map_err(|e| archive_err(archive::ArchiveError::Tar(e)))?
        {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match name.as_str() {
            "DESCRIPTION" => {
                let mut content = Vec::new();
                entry
                    .read_to_end(&mut content)
                    .map_err(|e| archive_err(archive::ArchiveError::Tar(e)))?;
                description = String::from_utf8_lossy(&content).trim().to_string();
            }
            "APKINDEX" => {
                // The types apk reads are stored plainly: the data is the next `size`
                // bytes of the archive.
                let start = entry.raw_file_position() as usize;
                let end = start.checked_add(entry.size() as usize);
                match end.filter(|&end| end <= tar_bytes.len()) {
                    Some(end) => text = Some(Ok(start..end)),
                    None => {
                        let mut content = Vec::new();
                        entry
                            .read_to_end(&mut content)
                            .map_err(|e| archive_err(archive::ArchiveError::Tar(e)))?;
                        text = Some(Err(content));
                    }
                }
            }
            _ => seen.push(name),
        }
    }
    let text = text.map(|found| {
        let bytes = match found {
            Ok(range) => {
                let len = range.len();
                tar_bytes.copy_within(range, 0);
                tar_bytes.truncate(len);
                tar_bytes
            }
            Err(content) => content,
        };
        match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    });
    let text = text.ok_or_else(|| RepositoryError::MissingApkindex {
        url: url.to_string(),
        detail: if seen.is_empty() {
            "it is empty".to_string()
        } else {
            format!("found {}", seen.join(", "))
        },
    })?;
    Ok((description, text))
}
