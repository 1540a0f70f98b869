//! Downloading the planned packages in parallel through the content-addressed cache.
//!
//! Packages of local repositories (`file://`, paths) are used where they lie. Remote
//! ones go through the cache, keyed by the index checksum `C:` (the SHA-1 of the
//! control member, so the key names the content, not the URL): a hit costs no
//! request; a miss downloads to `<key>.partial` (resumed if an earlier run left one),
//! checks the control member against `C:` and the size against `S:`, and only then
//! renames the file into place, so no damaged entry ever lands. With `--no-cache` the
//! files go to a temporary folder that lives as long as the returned handles.
//!
//! Offline, nothing is downloaded and nothing is written: a package the cache lacks
//! fails with one line naming it and where it was looked for. When no signed index
//! vouches for the packages (a lockfile built offline), each must also carry its own
//! signature by a trusted key and match its stanza (`package::verify_signed_stanza`).
//!
//! Concurrency: `jobs` worker threads pull from one queue sorted largest first (uv's
//! order), so the long downloads start early and the small ones fill the gaps; the
//! work is network bound, so threads, not rayon, whose pool belongs to CPU work. The
//! threads share the transport's connections: kept alive over HTTP/1.1 (one per
//! thread at most), multiplexed over one HTTP/2 connection where the server offers it.
//! [`Downloads`] hands each package out as soon as it is verified, so a caller can
//! extract the first packages while the others still arrive.

use crate::archive::{self, ArchiveError};
use crate::cache::{Bucket, CacheError};
use crate::index::Package;
use crate::report::Reporter;
use crate::repository::Repository;
use crate::transport::{Transport, TransportError, TransportOptions};
use base64::Engine;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod downloads;
pub use downloads::Downloads;

impl crate::report::Hinted for FetchError {
    fn hint(&self) -> Option<crate::report::Hint> {
        match self {
            FetchError::Missing { .. } => Some(crate::report::Hint::Server {
                check: "try again later".into(),
            }),
            FetchError::Download { source, .. } => crate::report::Hinted::hint(source),
            FetchError::Cache(e) => crate::report::Hinted::hint(e),
            FetchError::Offline { .. } => Some(crate::report::Hint::fix(
                "build once online with the same `--cache-dir` to fill the cache",
            )),
            _ => None,
        }
    }
}

/// Slack allowed over `S:` before a download is cut off (S: is exact in practice).
const SIZE_SLACK: u64 = 4096;
/// Cap for packages whose index gives no size.
const MAX_UNSIZED: u64 = 4 * 1024 * 1024 * 1024;

/// Why packages could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The package is not where its index says.
    #[error("package `{package}` of repository `{repo}` is not at `{url}`: the index and the repository disagree (a mirror being synced?)")]
    Missing {
        /// `name-version`.
        package: String,
        /// The repository URL.
        repo: String,
        /// Where it was looked for.
        url: String,
    },
    /// The download failed.
    #[error("cannot download package `{package}` from repository `{repo}`")]
    Download {
        /// `name-version`.
        package: String,
        /// The repository URL.
        repo: String,
        /// What went wrong.
        #[source]
        source: TransportError,
    },
    /// The file's control member does not hash to the index's `C:`.
    #[error("package `{package}` from repository `{repo}` is not the one the index lists: its control checksum is `{found}`, the index says `{expected}`{}", if *discarded { "; the download was discarded, try again" } else { "" })]
    Checksum {
        /// `name-version`.
        package: String,
        /// The repository URL.
        repo: String,
        /// `C:` from the index.
        expected: String,
        /// What the file hashes to.
        found: String,
        /// Whether a download was removed because of it.
        discarded: bool,
    },
    /// The file's size is not the index's `S:`.
    #[error("package `{package}` from repository `{repo}` is {found} bytes, the index says {expected}{}", if *discarded { "; the download was discarded, try again" } else { "" })]
    Size {
        /// `name-version`.
        package: String,
        /// The repository URL.
        repo: String,
        /// `S:` from the index.
        expected: u64,
        /// The file's size.
        found: u64,
        /// Whether a download was removed because of it.
        discarded: bool,
    },
    /// The file's control member matches `C:` but the rest of it does not verify (the
    /// data member against `datahash`, or `.PKGINFO` against the index).
    #[error("package `{package}` from repository `{repo}` does not verify{}", if *discarded { "; the download was discarded, try again" } else { "" })]
    Verify {
        /// `name-version`.
        package: String,
        /// The repository URL.
        repo: String,
        /// Whether a download was removed because of it.
        discarded: bool,
        /// What did not match.
        #[source]
        source: Box<crate::package::PackageError>,
    },
    /// The file is not an apk archive.
    #[error("package `{package}` from repository `{repo}` is damaged (`{}`)", path.display())]
    Archive {
        /// `name-version`.
        package: String,
        /// The repository URL.
        repo: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ArchiveError,
    },
    /// A package names a repository that is not in the list.
    #[error("package `{package}` names repository #{repo}, but only {count} are configured")]
    UnknownRepository {
        /// `name-version`.
        package: String,
        /// The position it names.
        repo: usize,
        /// How many repositories there are.
        count: usize,
    },
    /// A local file operation failed.
    #[error("cannot read or write `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The cache cannot be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// `--offline`, and the cache holds no copy of the package.
    #[error("offline: package `{package}` is not in the cache{}", match path { Some(p) => format!(" (`{}`)", p.display()), None => " (no cache: `--no-cache` or no usable cache folder)".to_string() })]
    Offline {
        /// `name-version`.
        package: String,
        /// Where it was looked for.
        path: Option<PathBuf>,
    },
}

/// How packages are fetched.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The cache folder; `None` with `--no-cache` (neither read nor written).
    pub cache_dir: Option<PathBuf>,
    /// Where the temporary folder for uncached downloads is made (default: the
    /// system's temporary folder).
    pub temp_dir: Option<PathBuf>,
    /// Parallel downloads.
    pub jobs: usize,
    /// Timeouts and retries.
    pub transport: TransportOptions,
    /// Check files of local repositories against `C:` and `S:` here. A caller that
    /// verifies every package right after fetching (`package::VerifiedPackage::open`,
    /// which checks `C:` and the data hash) turns it off so the control member is not
    /// read and hashed twice.
    pub verify_local: bool,
    /// `--offline`: use the cache only; download nothing, write nothing.
    pub offline: bool,
    /// When no signed index vouches for the packages: the keys their own signatures
    /// must verify with (local and cached files are then always verified whole).
    pub signers: Option<crate::trust::Keyring>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            offline: false,
            signers: None,
            cache_dir: None,
            temp_dir: None,
            // Requests in flight at once. apk asks for one package at a time and pays a
            // round trip for each; 16 covers a small plan in one or two round trips and
            // stays far below what mirrors accept per client (nginx and CDNs take
            // hundreds of connections; over HTTP/2 they are streams of one connection).
            jobs: 16,
            transport: TransportOptions::default(),
            verify_local: true,
        }
    }
}

/// Where a fetched package's file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// In a local repository, used in place.
    LocalRepository,
    /// Already in the cache.
    Cache,
    /// Downloaded in this run (into the cache, or a temporary folder).
    Downloaded,
}

/// A package file on disk, checked against its index checksum.
#[derive(Debug, Clone)]
pub struct FetchedPackage {
    /// `name-version`.
    pub name: String,
    /// `C:` of the package.
    pub checksum: String,
    /// The `.apk` file.
    pub path: PathBuf,
    /// Where the file is.
    pub origin: Origin,
    /// Bytes transferred over the network for it in this run.
    pub downloaded: u64,
    /// The stamp of the file when it was verified whole here (cache hits, downloads
    /// without a cache), so the installer need not hash it again while it is unchanged.
    pub verified: Option<crate::package::FileStamp>,
    // Keeps the temporary folder of uncached downloads alive while the file is used.
    _temp: Option<Arc<tempfile::TempDir>>,
}

/// Fetches `packages` (from `repos`, by [`Package::repo`]) for `arch`; the result is in
/// the same order as `packages`.
pub fn fetch_packages(
    packages: &[Package],
    repos: &[Repository],
    arch: &str,
    options: &FetchOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<FetchedPackage>, FetchError> {
    let transport = Transport::new(options.transport.clone());
    fetch_packages_with(&transport, packages, repos, arch, options, reporter)
}

/// [`fetch_packages`] with a caller's transport (shared with the index loading).
pub fn fetch_packages_with(
    transport: &Transport,
    packages: &[Package],
    repos: &[Repository],
    arch: &str,
    options: &FetchOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<FetchedPackage>, FetchError> {
    let downloads = Downloads::new(transport, packages, repos, arch, options, reporter)?;
    std::thread::scope(|scope| {
        for _ in 0..downloads.jobs() {
            scope.spawn(|| downloads.work());
        }
    });
    downloads.finish()
}

struct Fetcher<'a> {
    transport: &'a Transport,
    repos: &'a [Repository],
    arch: &'a str,
    bucket: Option<Bucket>,
    bucket_path: Option<PathBuf>,
    temp_base: Option<PathBuf>,
    temp: Mutex<Option<Arc<tempfile::TempDir>>>,
    verify_local: bool,
    offline: bool,
    signers: Option<&'a crate::trust::Keyring>,
    reporter: &'a dyn Reporter,
}

impl Fetcher<'_> {
    fn fetch(&self, package: &Package) -> Result<FetchedPackage, FetchError> {
        let repo = &self.repos[package.repo];
        let name = package.name_version();
        let url = repo.package_url(self.arch, package);
        let fetched = |path, origin, downloaded, temp, verified| FetchedPackage {
            name: name.clone(),
            checksum: package.checksum.clone(),
            path,
            origin,
            downloaded,
            verified,
            _temp: temp,
        };
        if !repo.is_remote() {
            let path = crate::transport::local_path(&url).unwrap_or_else(|| PathBuf::from(&url));
            if !path.is_file() {
                return Err(FetchError::Missing {
                    package: name,
                    repo: repo.url.clone(),
                    url,
                });
            }
            let verified = match self.verify_local {
                true => Some(self.verify(package, &path, false)?),
                false => None,
            };
            self.reporter.download_finished(&name);
            return Ok(fetched(path, Origin::LocalRepository, 0, None, verified));
        }
        let key = cache_key(&package.checksum);
        if self.offline {
            let entry = key.as_ref().map(|k| format!("{k}.apk"));
            if let (Some(bucket), Some(entry)) = (&self.bucket, &entry) {
                if let Some(stamp) = self.cached(package, bucket, entry)? {
                    self.reporter.download_finished(&name);
                    let path = bucket.path().join(entry);
                    return Ok(fetched(path, Origin::Cache, 0, None, Some(stamp)));
                }
            }
            return Err(FetchError::Offline {
                package: name,
                path: self
                    .bucket_path
                    .as_ref()
                    .map(|p| p.join(entry.unwrap_or_else(|| package.file_name()))),
            });
        }
        if let (Some(bucket), Some(key)) = (&self.bucket, &key) {
            let entry = format!("{key}.apk");
            let path = bucket.path().join(&entry);
            if let Some(stamp) = self.cached(package, bucket, &entry)? {
                self.reporter
                    .info(&format!("cache hit: `{name}` (`{}`)", path.display()));
                self.reporter.download_finished(&name);
                return Ok(fetched(path, Origin::Cache, 0, None, Some(stamp)));
            }
            self.reporter.info(&format!("cache miss: `{name}`"));
            let partial_name = format!("{key}.partial");
            let partial_path = bucket.path().join(&partial_name);
            // Another run may be downloading the same package into the same partial
            // file: take turns, and take its result if it finished meanwhile.
            let live = crate::output::LivePartial::register_shared(&partial_path);
            let mut partial = lock(bucket, &partial_name, &live)?;
            if let Some(stamp) = self.cached(package, bucket, &entry)? {
                if partial.metadata().is_ok_and(|m| m.len() == 0) {
                    let _ = bucket.remove(&partial_name);
                }
                self.reporter.download_finished(&name);
                return Ok(fetched(path, Origin::Cache, 0, None, Some(stamp)));
            }
            let downloaded = self.download(package, repo, &url, &mut partial, &partial_path);
            let result = downloaded.and_then(|(downloaded, _)| {
                bucket
                    .rename(&partial_name, &entry)
                    .map_err(|source| FetchError::Io {
                        path: path.clone(),
                        source,
                    })?;
                // The rename changed the change time: the stamp is taken again, from the
                // handle that was verified, so it names that very inode as it is now. A
                // file another run puts under the name, or any write to this one, has
                // another stamp, and the installer hashes it again.
                let stamp = crate::package::FileStamp::of(&partial).ok();
                Ok((downloaded, stamp))
            });
            // A download cut off by the network stays, for the next run to resume (it
            // is verified before use); anything else that failed is discarded.
            if result
                .as_ref()
                .is_err_and(|e| !matches!(e, FetchError::Download { .. }))
            {
                let _ = bucket.remove(&partial_name);
            }
            drop(live);
            let (downloaded, stamp) = result?;
            self.reporter.download_finished(&name);
            return Ok(fetched(path, Origin::Downloaded, downloaded, None, stamp));
        }
        // The temporary folder is ours alone and the handle goes out only after the
        // file verified, so it is written under its final name: no rename, and the
        // stamp taken while verifying stays valid, so the installer does not hash the
        // file a second time.
        let temp = self.temp_dir()?;
        let path = temp.path().join(package.file_name());
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|source| FetchError::Io {
                    path: path.clone(),
                    source,
                })?
        };
        let (downloaded, stamp) = self.download(package, repo, &url, &mut file, &path)?;
        self.reporter.download_finished(&name);
        Ok(fetched(
            path,
            Origin::Downloaded,
            downloaded,
            Some(temp),
            Some(stamp),
        ))
    }

    /// Where [`Fetcher::fetch`] puts (or finds) `package`'s file.
    fn destination(&self, package: &Package) -> Result<PathBuf, FetchError> {
        let repo = &self.repos[package.repo];
        let url = repo.package_url(self.arch, package);
        if !repo.is_remote() {
            return Ok(crate::transport::local_path(&url).unwrap_or_else(|| PathBuf::from(&url)));
        }
        let entry = cache_key(&package.checksum).map(|key| format!("{key}.apk"));
        if let (Some(bucket), Some(entry)) = (&self.bucket, &entry) {
            return Ok(bucket.path().join(entry));
        }
        if self.offline {
            // Such a package fails to fetch; the path is never opened.
            return Ok(PathBuf::from(package.file_name()));
        }
        Ok(self.temp_dir()?.path().join(package.file_name()))
    }

    /// The stamp of a verified copy of `package` held in the cache as `entry`, if any.
    /// An entry that does not verify is removed, so it is fetched once more.
    fn cached(
        &self,
        package: &Package,
        bucket: &Bucket,
        entry: &str,
    ) -> Result<Option<crate::package::FileStamp>, FetchError> {
        let path = bucket.path().join(entry);
        let file = match bucket.open(entry) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(None),
            // Offline nothing is written, nor removed: the entry is refused as it is.
            Err(source) if self.offline => return Err(FetchError::Io { path, source }),
            Err(source) => {
                // Not a plain file (a planted symlink, a FIFO...): never read, but gone.
                self.reporter.warn(&format!(
                    "removing `{}` from the cache: {source}",
                    path.display()
                ));
                bucket
                    .remove(entry)
                    .map_err(|source| FetchError::Io { path, source })?;
                return Ok(None);
            }
        };
        match self.verify_file(package, &file, &path, false) {
            Ok(stamp) => Ok(Some(stamp)),
            // Offline it cannot be fetched again: say why it is refused. It stays, since
            // it may be good for another lockfile or index.
            Err(err) if self.offline => Err(err),
            Err(err) => {
                self.reporter.info(&format!(
                    "cached `{}` does not verify ({err}); fetching it again",
                    package.name_version()
                ));
                bucket
                    .remove(entry)
                    .map_err(|source| FetchError::Io { path, source })?;
                Ok(None)
            }
        }
    }

    fn temp_dir(&self) -> Result<Arc<tempfile::TempDir>, FetchError> {
        let mut slot = self.temp.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = slot.as_ref() {
            return Ok(dir.clone());
        }
        let base = self.temp_base.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("sysroot-mk-packages-")
            .tempdir_in(&base)
            .map_err(|source| FetchError::Io { path: base, source })?;
        let dir = Arc::new(dir);
        *slot = Some(dir.clone());
        Ok(dir)
    }

    /// Downloads into `partial` (resuming) and verifies the whole package; returns the
    /// bytes transferred and the stamp the file verified under. A download that fails
    /// verification may hold a stale prefix or a byte damaged on the way: it is
    /// discarded and fetched once more from scratch before giving up.
    fn download(
        &self,
        package: &Package,
        repo: &Repository,
        url: &str,
        partial: &mut File,
        partial_path: &Path,
    ) -> Result<(u64, crate::package::FileStamp), FetchError> {
        let name = package.name_version();
        let limit = if package.size > 0 {
            package.size + SIZE_SLACK
        } else {
            MAX_UNSIZED
        };
        let io_err = |source| FetchError::Io {
            path: partial_path.to_path_buf(),
            source,
        };
        self.reporter.info(&format!("fetching `{url}`"));
        self.reporter.download_started(&name, package.size);
        let mut transferred = 0u64;
        let mut retried = false;
        loop {
            let mut progress = |n: u64| {
                transferred += n;
                self.reporter.download_progress(&name, n);
            };
            self.transport
                .download_into(url, partial, partial_path, limit, &mut progress)
                .map_err(|source| match source {
                    TransportError::NotFound { .. } => FetchError::Missing {
                        package: name.clone(),
                        repo: repo.url.clone(),
                        url: url.to_string(),
                    },
                    source => FetchError::Download {
                        package: name.clone(),
                        repo: repo.url.clone(),
                        source,
                    },
                })?;
            match self.verify_file(package, partial, partial_path, true) {
                Ok(stamp) => return Ok((transferred, stamp)),
                Err(err) => {
                    partial.set_len(0).map_err(io_err)?;
                    partial.rewind().map_err(io_err)?;
                    if retried {
                        return Err(err);
                    }
                    retried = true;
                    self.reporter.info(&format!(
                        "download of `{name}` did not verify ({err}); downloading it again"
                    ));
                }
            }
        }
    }

    /// Checks the file at `path` (of a local repository) against its index entry.
    fn verify(
        &self,
        package: &Package,
        path: &Path,
        download: bool,
    ) -> Result<crate::package::FileStamp, FetchError> {
        let file = File::open(path).map_err(|source| FetchError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.verify_file(package, &file, path, download)
    }

    /// Checks the whole file against the index entry: the control member against `C:`,
    /// the size against `S:`, then the data member against `datahash`. Returns the
    /// file's stamp from before it was read, under which it is known good.
    fn verify_file(
        &self,
        package: &Package,
        mut file: &File,
        path: &Path,
        download: bool,
    ) -> Result<crate::package::FileStamp, FetchError> {
        let repo = &self.repos[package.repo].url;
        let name = package.name_version();
        let io_err = |source| FetchError::Io {
            path: path.to_path_buf(),
            source,
        };
        file.rewind().map_err(io_err)?;
        let stamp = crate::package::FileStamp::of(file).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        let found = archive::control_checksum(BufReader::new(file)).map_err(|source| {
            FetchError::Archive {
                package: name.clone(),
                repo: repo.clone(),
                path: path.to_path_buf(),
                source,
            }
        })?;
        // Digests, not strings, are compared: `C:` may be non-canonical base64.
        if crate::package::decode_q1(&package.checksum) != Some(found) {
            let found = crate::package::encode_q1(&found);
            return Err(FetchError::Checksum {
                package: name,
                repo: repo.clone(),
                expected: package.checksum.clone(),
                found,
                discarded: download,
            });
        }
        if package.size > 0 && size != package.size {
            return Err(FetchError::Size {
                package: name,
                repo: repo.clone(),
                expected: package.size,
                found: size,
                discarded: download,
            });
        }
        let verify_err = |source| FetchError::Verify {
            package: name.clone(),
            repo: repo.clone(),
            discarded: download,
            source: Box::new(source),
        };
        // Streamed through a small buffer, not read whole: up to 16 download threads
        // verify at once. The package keeps its signature and control members only,
        // all that the signed stanza is checked against.
        let own = file.try_clone().map_err(io_err)?;
        let (verified, data) =
            crate::package::VerifiedPackage::streaming_from(package, own, path, None)
                .map_err(verify_err)?;
        data.finish().map_err(verify_err)?;
        if let Some(signers) = self.signers {
            crate::package::verify_signed_stanza(
                package,
                verified.bytes(),
                verified.info(),
                signers,
            )
            .map_err(verify_err)?;
        }
        Ok(stamp)
    }
}

/// Opens the bucket's `partial` file (created if missing, never through a symlink)
/// and takes an exclusive advisory lock on it, held until the file is dropped. When the
/// lock holder before us renamed the file into place meanwhile, the fresh name is
/// opened again, so we never write into a finished entry.
fn lock(
    bucket: &Bucket,
    partial: &str,
    live: &crate::output::LivePartial,
) -> Result<File, FetchError> {
    let io_err = |source| FetchError::Io {
        path: bucket.path().join(partial),
        source,
    };
    let mut removed = false;
    // Bounded: a name that keeps changing under us is another process's doing.
    for _ in 0..64 {
        let file = match live.create(|| bucket.open_rw(partial)) {
            Ok(file) => file,
            // A planted symlink, hard link or special file: removing the name does
            // not follow it, and the download starts afresh in a file of our own.
            Err(e)
                if !removed
                    && (e.raw_os_error() == Some(libc::ELOOP)
                        || e.kind() == std::io::ErrorKind::Other) =>
            {
                bucket.remove(partial).map_err(io_err)?;
                removed = true;
                continue;
            }
            Err(e) => return Err(io_err(e)),
        };
        if live
            .lock(&file, |file| bucket.still_named(file, partial))
            .map_err(io_err)?
        {
            return Ok(file);
        }
    }
    Err(io_err(std::io::Error::other(
        "the file keeps being replaced while we wait for it",
    )))
}

/// The cache file name of a `C:` value: hex of its SHA-1 (`None` unless it is `Q1`
/// + base64 of 20 bytes, so no index value can name a path of its choosing).
pub fn cache_key(checksum: &str) -> Option<String> {
    let b64 = checksum.strip_prefix("Q1")?;
    let raw = crate::index::LENIENT_BASE64.decode(b64).ok()?;
    (raw.len() == 20).then(|| hex::encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_come_only_from_sha1_checksums() {
        assert_eq!(
            cache_key("Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=").as_deref(),
            Some("0000000000000000000000000000000000000000")
        );
        assert_eq!(cache_key("Q1../../etc/passwd"), None);
        assert_eq!(cache_key("Q2AAAAAAAAAAAAAAAAAAAAAAAAAAA="), None);
        assert_eq!(cache_key(""), None);
    }
}
