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
//! Concurrency: `jobs` worker threads pull from one queue sorted largest first (uv's
//! order), so the long downloads start early and the small ones fill the gaps; the
//! work is network bound, so threads, not rayon, whose pool belongs to CPU work.

use crate::archive::{self, ArchiveError};
use crate::index::Package;
use crate::report::Reporter;
use crate::repository::cache::{Cache, CacheError, PACKAGE_BUCKET};
use crate::repository::Repository;
use crate::transport::{Transport, TransportError, TransportOptions};
use base64::Engine;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Slack allowed over `S:` before a download is cut off (S: is exact in practice).
const SIZE_SLACK: u64 = 4096;
/// Cap for packages whose index gives no size.
const MAX_UNSIZED: u64 = 4 * 1024 * 1024 * 1024;

/// Why packages could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The package is not where its index says.
    #[error("package `{package}` of repository `{repo}` is not at `{url}`; the index and the repository disagree (a mirror in sync?); fetch again later or use another mirror")]
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
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            cache_dir: None,
            temp_dir: None,
            // Enough to hide per-request latency on a CDN without hammering a mirror.
            jobs: 6,
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
    for p in packages {
        if p.repo >= repos.len() {
            return Err(FetchError::UnknownRepository {
                package: p.name_version(),
                repo: p.repo,
                count: repos.len(),
            });
        }
    }
    let any_remote = packages.iter().any(|p| repos[p.repo].is_remote());
    let cache = match &options.cache_dir {
        Some(dir) if any_remote => Some(Cache::open(dir)?),
        _ => None,
    };
    let bucket = cache
        .as_ref()
        .map(|c| c.bucket(PACKAGE_BUCKET))
        .transpose()?;
    let fetcher = Fetcher {
        transport,
        repos,
        arch,
        bucket,
        temp_base: options.temp_dir.clone(),
        temp: Mutex::new(None),
        verify_local: options.verify_local,
        reporter,
    };

    let mut order: Vec<usize> = (0..packages.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(packages[i].size));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<FetchedPackage, FetchError>>>> =
        packages.iter().map(|_| Mutex::new(None)).collect();
    let workers = options.jobs.clamp(1, packages.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let result = fetcher.fetch(&packages[i]);
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    // The first failure in plan order, so the message does not depend on timing.
    // Slots left empty belong to packages not started after a failure, which the loop
    // reaches as an error first or later; without a failure every slot is filled.
    let mut out = Vec::with_capacity(packages.len());
    let mut first_error = None;
    for slot in results {
        match slot.into_inner().ok().flatten() {
            Some(Ok(fetched)) => out.push(fetched),
            Some(Err(err)) => {
                first_error.get_or_insert(err);
            }
            None => {}
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(out),
    }
}

struct Fetcher<'a> {
    transport: &'a Transport,
    repos: &'a [Repository],
    arch: &'a str,
    bucket: Option<PathBuf>,
    temp_base: Option<PathBuf>,
    temp: Mutex<Option<Arc<tempfile::TempDir>>>,
    verify_local: bool,
    reporter: &'a dyn Reporter,
}

impl Fetcher<'_> {
    fn fetch(&self, package: &Package) -> Result<FetchedPackage, FetchError> {
        let repo = &self.repos[package.repo];
        let name = package.name_version();
        let url = repo.package_url(self.arch, package);
        let fetched = |path, origin, downloaded, temp| FetchedPackage {
            name: name.clone(),
            checksum: package.checksum.clone(),
            path,
            origin,
            downloaded,
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
            if self.verify_local {
                self.verify(package, &path, false)?;
            }
            self.reporter.download_finished(&name);
            return Ok(fetched(path, Origin::LocalRepository, 0, None));
        }
        let key = cache_key(&package.checksum);
        if let (Some(bucket), Some(key)) = (&self.bucket, &key) {
            let path = bucket.join(format!("{key}.apk"));
            if path.is_file() && self.verify(package, &path, false).is_ok() {
                self.reporter.download_finished(&name);
                return Ok(fetched(path, Origin::Cache, 0, None));
            }
            let partial = bucket.join(format!("{key}.partial"));
            // Another run may be downloading the same package into the same partial
            // file: take turns, and take its result if it finished meanwhile.
            let _lock = lock(&partial)?;
            if path.is_file() && self.verify(package, &path, false).is_ok() {
                if std::fs::metadata(&partial).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&partial);
                }
                self.reporter.download_finished(&name);
                return Ok(fetched(path, Origin::Cache, 0, None));
            }
            let downloaded = self.download(package, repo, &url, &partial, &path)?;
            return Ok(fetched(path, Origin::Downloaded, downloaded, None));
        }
        let temp = self.temp_dir()?;
        let path = temp.path().join(package.file_name());
        let partial = temp.path().join(format!("{}.partial", package.file_name()));
        let downloaded = self.download(package, repo, &url, &partial, &path)?;
        Ok(fetched(path, Origin::Downloaded, downloaded, Some(temp)))
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

    /// Downloads into `partial` (resuming), verifies, renames to `dest`. A resumed file
    /// that fails verification may hold a stale prefix: it is discarded and fetched once
    /// more from scratch before giving up.
    fn download(
        &self,
        package: &Package,
        repo: &Repository,
        url: &str,
        partial: &Path,
        dest: &Path,
    ) -> Result<u64, FetchError> {
        let name = package.name_version();
        let limit = if package.size > 0 {
            package.size + SIZE_SLACK
        } else {
            MAX_UNSIZED
        };
        self.reporter.download_started(&name, package.size);
        let mut transferred = 0u64;
        let mut retried = false;
        loop {
            let resumed = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0) > 0;
            let mut progress = |n: u64| {
                transferred += n;
                self.reporter.download_progress(&name, n);
            };
            self.transport
                .download(url, partial, limit, &mut progress)
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
            match self.verify(package, partial, true) {
                Ok(()) => {
                    std::fs::rename(partial, dest).map_err(|source| FetchError::Io {
                        path: dest.to_path_buf(),
                        source,
                    })?;
                    self.reporter.download_finished(&name);
                    return Ok(transferred);
                }
                Err(err) => {
                    let _ = std::fs::remove_file(partial);
                    if !resumed || retried {
                        return Err(err);
                    }
                    retried = true;
                    self.reporter.info(&format!(
                        "resumed download of `{name}` did not verify; downloading it again"
                    ));
                }
            }
        }
    }

    /// Checks the file's control member against `C:` (and its size against `S:`).
    fn verify(&self, package: &Package, path: &Path, download: bool) -> Result<(), FetchError> {
        let repo = &self.repos[package.repo].url;
        let name = package.name_version();
        let io_err = |source| FetchError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        let found = archive::control_checksum(BufReader::new(file)).map_err(|source| {
            FetchError::Archive {
                package: name.clone(),
                repo: repo.clone(),
                path: path.to_path_buf(),
                source,
            }
        })?;
        let found = format!(
            "Q1{}",
            base64::engine::general_purpose::STANDARD.encode(found)
        );
        if found != package.checksum {
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
        Ok(())
    }
}

/// An exclusive advisory lock on `partial` (created if missing), held until dropped.
fn lock(partial: &Path) -> Result<File, FetchError> {
    let io_err = |source| FetchError::Io {
        path: partial.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(partial)
        .map_err(io_err)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_err(e.into()))?;
    Ok(file)
}

/// The cache file name of a `C:` value: hex of its SHA-1 (`None` unless it is `Q1`
/// + base64 of 20 bytes, so no index value can name a path of its choosing).
pub fn cache_key(checksum: &str) -> Option<String> {
    let b64 = checksum.strip_prefix("Q1")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
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
