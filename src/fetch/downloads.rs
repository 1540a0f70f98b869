//! The download queue: worker threads fetch the packages largest first, and each
//! package is handed out as soon as it is verified, so extraction can begin while the
//! rest still arrive.

use super::{FetchError, FetchOptions, FetchedPackage, Fetcher};
use crate::cache::{Cache, PACKAGE_BUCKET};
use crate::index::Package;
use crate::package::FileStamp;
use crate::report::Reporter;
use crate::repository::Repository;
use crate::transport::Transport;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

/// Requests in flight at most to a server that closes its connections after each
/// answer (browsers' limit per host for HTTP/1).
const CLOSING_SERVER_JOBS: usize = 6;

/// The packages of a plan being fetched by worker threads (see [`Downloads::work`]).
///
/// ```text
/// let downloads = Downloads::new(&transport, &plan, &repos, arch, &options, reporter)?;
/// std::thread::scope(|s| {
///     for _ in 0..downloads.jobs() { s.spawn(|| downloads.work()); }
///     let first = downloads.wait(0);       // blocks until package 0 is verified
///     /* ... use it while the others download ... */
///     downloads.stop();                   // also after an error: workers return
/// });
/// let fetched = downloads.finish()?;      // every package, or the first error
/// ```
pub struct Downloads<'a> {
    fetcher: Fetcher<'a>,
    packages: &'a [Package],
    /// Where each package's file will be, known before it is fetched.
    paths: Vec<PathBuf>,
    /// Positions in `packages`, largest first.
    order: Vec<usize>,
    next: AtomicUsize,
    jobs: usize,
    /// Some package may come over the network.
    network: bool,
    done: Vec<OnceLock<FetchedPackage>>,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    errors: Vec<Option<FetchError>>,
    /// A package failed or [`Downloads::stop`] was called: nothing more is started.
    halted: bool,
    /// Worker threads inside [`Downloads::work`].
    working: usize,
}

impl<'a> Downloads<'a> {
    /// Prepares to fetch `packages` (from `repos`, by [`Package::repo`]) for `arch`:
    /// checks the repository positions and opens the cache (or makes the temporary
    /// folder). Nothing is fetched until [`Downloads::work`] runs.
    pub fn new(
        transport: &'a Transport,
        packages: &'a [Package],
        repos: &'a [Repository],
        arch: &'a str,
        options: &'a FetchOptions,
        reporter: &'a dyn Reporter,
    ) -> Result<Downloads<'a>, FetchError> {
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
        let (bucket, bucket_path) = match &options.cache_dir {
            Some(dir) if any_remote && options.offline => {
                let path = dir.join(crate::cache::VERSION_DIR).join(PACKAGE_BUCKET);
                let bucket = match Cache::open_existing(dir)? {
                    Some(cache) => cache.existing_bucket(PACKAGE_BUCKET)?,
                    None => None,
                };
                (bucket, Some(path))
            }
            Some(dir) if any_remote => {
                let bucket = Cache::open(dir)?.bucket_dir(PACKAGE_BUCKET)?;
                let path = bucket.path().to_path_buf();
                (Some(bucket), Some(path))
            }
            _ => (None, None),
        };
        let fetcher = Fetcher {
            transport,
            repos,
            arch,
            bucket,
            bucket_path,
            temp_base: options.temp_dir.clone(),
            temp: Mutex::new(None),
            verify_local: options.verify_local || options.signers.is_some(),
            offline: options.offline,
            signers: options.signers.as_ref(),
            reporter,
        };
        let paths = packages
            .iter()
            .map(|p| fetcher.destination(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..packages.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(packages[i].size));
        let verifying = fetcher.verify_local;
        // Without the network there is only verifying to do: one thread per core; and
        // without that, a look at each file, which one thread does in microseconds.
        let jobs = if !any_remote && !verifying {
            1
        } else if !any_remote || options.offline {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            options.jobs.min(cores)
        } else if packages
            .iter()
            .any(|p| transport.closes_connections(&repos[p.repo].url))
        {
            // A server that closes every connection (as python's http.server) takes a
            // connect per request, and such servers often keep a short listen queue:
            // more connects at once than it holds wait a second for the SYN retry.
            options.jobs.min(CLOSING_SERVER_JOBS)
        } else {
            options.jobs
        };
        Ok(Downloads {
            fetcher,
            packages,
            paths,
            order,
            next: AtomicUsize::new(0),
            jobs: jobs.clamp(1, packages.len().max(1)),
            network: any_remote && !options.offline,
            done: packages.iter().map(|_| OnceLock::new()).collect(),
            state: Mutex::new(State {
                errors: packages.iter().map(|_| None).collect(),
                halted: false,
                working: 0,
            }),
            changed: Condvar::new(),
        })
    }

    /// How many threads should run [`Downloads::work`].
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// Whether some package may be downloaded (it is not all local files or, offline,
    /// the cache's), which takes memory for the connections' buffers while it runs.
    pub fn uses_network(&self) -> bool {
        self.network
    }

    /// Where each package's file will be once fetched (same order as the packages).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The loop of one worker thread: fetches packages until none is left, one failed,
    /// [`Downloads::stop`] was called or the run is interrupted.
    pub fn work(&self) {
        self.lock().working += 1;
        // Leaves the count even when a fetch panics, or `wait` would wait for this thread
        // forever; a panic also halts the others (the panic itself reaches the scope).
        struct Leave<'d, 'a>(&'d Downloads<'a>);
        impl Drop for Leave<'_, '_> {
            fn drop(&mut self) {
                let mut state = self.0.lock();
                state.working -= 1;
                state.halted |= std::thread::panicking();
                self.0.changed.notify_all();
            }
        }
        let _leave = Leave(self);
        loop {
            if self.lock().halted || crate::output::interrupted() {
                break;
            }
            let Some(&i) = self.order.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let result = self.fetcher.fetch(&self.packages[i]);
            let mut state = self.lock();
            match result {
                Ok(fetched) => {
                    debug_assert_eq!(fetched.path, self.paths[i]);
                    let _ = self.done[i].set(fetched);
                }
                Err(err) => {
                    state.errors[i] = Some(err);
                    state.halted = true;
                }
            }
            self.changed.notify_all();
        }
    }

    /// Package `index` once fetched and verified, waiting for it; `None` when it failed
    /// or will not be fetched (another failed first, or [`Downloads::stop`]), in which
    /// case [`Downloads::finish`] says why. Needs threads in [`Downloads::work`].
    pub fn wait(&self, index: usize) -> Option<&FetchedPackage> {
        let cell = self.done.get(index)?;
        let mut state = self.lock();
        loop {
            if let Some(fetched) = cell.get() {
                return Some(fetched);
            }
            if state.errors[index].is_some() || (state.halted && state.working == 0) {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// For an installer reading the files at [`Downloads::paths`]: waits for package
    /// `index`; `Some` with the stamp it was verified under (if any) once its file is
    /// there, `None` if it never will be.
    pub fn ready(&self, index: usize) -> Option<Option<FileStamp>> {
        self.wait(index).map(|fetched| fetched.verified)
    }

    /// Starts nothing more; workers return after their current package.
    pub fn stop(&self) {
        self.lock().halted = true;
        self.changed.notify_all();
    }

    /// The packages in order once the workers returned; else the first failure in plan
    /// order, so the message does not depend on timing. After an interruption (or
    /// [`Downloads::stop`]) without a failure, the packages not fetched are missing:
    /// the caller checks for the interruption.
    pub fn finish(self) -> Result<Vec<FetchedPackage>, FetchError> {
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(err) = state.errors.into_iter().flatten().next() {
            return Err(err);
        }
        Ok(self
            .done
            .into_iter()
            .filter_map(OnceLock::into_inner)
            .collect())
    }

    /// The first failure in plan order so far, if any (taken: reported once).
    pub fn take_error(&self) -> Option<FetchError> {
        self.lock().errors.iter_mut().find_map(Option::take)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Reporter;
    use crate::repository::Repository;
    use crate::transport::{Transport, TransportOptions};

    /// A reporter whose every finished download is a bug.
    struct Panics;
    impl Reporter for Panics {
        fn download_finished(&self, _name: &str) {
            panic!("a bug while fetching");
        }
    }

    #[test]
    fn threads_and_network_follow_where_the_packages_come_from() {
        let packages: Vec<Package> = (0..20)
            .map(|i| Package {
                name: format!("p{i}"),
                version: crate::version::Version::new("1-r0"),
                ..Package::default()
            })
            .collect();
        let local = tempfile::tempdir().expect("tempdir");
        let temp = tempfile::tempdir().expect("tempdir");
        let transport = Transport::new(TransportOptions::default());
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let plan = |url: &str, verify_local: bool, offline: bool| {
            let repos = vec![Repository::parse(url).expect("repo")];
            let options = FetchOptions {
                verify_local,
                offline,
                temp_dir: Some(temp.path().to_path_buf()),
                ..FetchOptions::default()
            };
            let d = Downloads::new(
                &transport,
                &packages,
                &repos,
                "x86_64",
                &options,
                &crate::report::Silent,
            )
            .expect("downloads");
            (d.jobs(), d.uses_network())
        };
        let local = local.path().display().to_string();
        // Local files taken as they are: a stat each, on one thread.
        assert_eq!(plan(&local, false, false), (1, false));
        // Hashed ahead: one thread per core.
        assert_eq!(plan(&local, true, false), (16.min(cores), false));
        let remote = "http://127.0.0.1:9/alpine/v3.19/main";
        assert_eq!(plan(remote, false, false), (16, true));
        // Offline, remote packages come from the cache or not at all.
        assert!(!plan(remote, false, true).1);
    }

    #[test]
    fn a_worker_that_panics_fails_the_waits_instead_of_hanging_them() {
        let repo_dir = tempfile::tempdir().expect("tempdir");
        let package = Package {
            name: "one".into(),
            version: crate::version::Version::new("1-r0"),
            ..Package::default()
        };
        std::fs::create_dir(repo_dir.path().join("x86_64")).expect("arch folder");
        std::fs::write(
            repo_dir.path().join("x86_64").join(package.file_name()),
            b"",
        )
        .expect("package file");
        let repos = vec![Repository::parse(&repo_dir.path().display().to_string()).expect("repo")];
        let (done, outcome) = std::sync::mpsc::channel();
        // The wait runs on a thread of its own, so that a hang fails this test instead
        // of stalling the suite.
        std::thread::spawn(move || {
            let transport = Transport::new(TransportOptions::default());
            let packages = [package];
            // Taken as it is: the fetch reaches the reporter without checking the file.
            let options = FetchOptions {
                verify_local: false,
                ..FetchOptions::default()
            };
            let downloads =
                Downloads::new(&transport, &packages, &repos, "x86_64", &options, &Panics)
                    .expect("downloads");
            let scope = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                std::thread::scope(|scope| {
                    scope.spawn(|| downloads.work());
                    let _ = done.send(downloads.wait(0).is_none());
                })
            }));
            assert!(scope.is_err(), "the worker's panic reaches the scope");
        });
        let never = outcome
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the wait returned");
        assert!(never, "a package whose worker panicked is never there");
    }
}
