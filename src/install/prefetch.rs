//! Verifying and writing out the packages of a whole plan ahead of their place in it.
//!
//! Extraction waits for package scripts between batches, and a script spends most of its
//! time in fork, exec and the kernel; verifying, inflating and writing file contents do
//! not depend on the scripts. So background threads verify each package file against its
//! index entry and inflate its data member straight into the installer's scratch folder
//! ([`super::scratch`]), reading each file once, front to back, and hashing the data
//! member as it goes (nothing of a package moves out of the scratch folder before that
//! hash matched), in plan order, as far ahead as the budget allows; the first batch
//! starts as soon as its own packages are written instead of after all of them.
//! [`Prefetch::verified`] hands out the verified package (scripts, `.PKGINFO`) and
//! [`super::Installer::extract_prefetched`] takes its entries when its batch comes. A
//! package the extraction waits for is always worked on, whatever the budget says, so the
//! two can never wait on each other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use crate::index::Package;
use crate::package::{FileStamp, PackageError, VerifiedPackage};

use super::background::{Background, StepBack};
use super::scratch::Scratch;
use super::{entries, InstallError, Loaded};

/// Verifies and inflates the packages of a plan on background threads, in plan order.
///
/// ```text
/// let prefetch = installer.prefetch(&plan.packages, &files, budget);
/// std::thread::scope(|s| {
///     s.spawn(|| prefetch.work());                   // one per core
///     let verified = prefetch.verified(0)?;           // blocks until checked
///     /* installer.extract_prefetched(&pairs[a..b], a, &prefetch, reporter)? ... */
///     prefetch.stop();                               // also after an error: workers return
/// });
/// ```
pub struct Prefetch<'a> {
    packages: &'a [Package],
    files: &'a [PathBuf],
    /// Per file, the stamp under which the fetcher verified it whole, if it did.
    stamps: Vec<Option<FileStamp>>,
    /// Files still being downloaded: see [`Prefetch::after`].
    ready: Option<&'a (dyn Fn(usize) -> Option<Option<FileStamp>> + Sync)>,
    budget: u64,
    scratch: Arc<Scratch>,
    next: AtomicUsize,
    verified: Vec<OnceLock<VerifiedPackage>>,
    state: Mutex<State>,
    changed: Condvar,
    /// The threads running [`Prefetch::work`], which step back while a script runs.
    background: Background,
    /// See [`Prefetch::huge_pages`].
    huge_pages: bool,
}

struct State {
    slots: Vec<Option<Result<Loaded, InstallError>>>,
    /// Verification failures, until [`Prefetch::verified`] hands them out.
    refused: Vec<Option<PackageError>>,
    /// Estimated inflated bytes of the packages inflated or being inflated, not yet taken.
    held: u64,
    /// The package the extraction waits for (or will take next).
    wanted: usize,
    stopped: bool,
    /// A worker thread panicked: what it held will never come.
    crashed: bool,
}

impl<'a> Prefetch<'a> {
    /// Prepares to verify `packages` (the whole plan, in order) against the `.apk` files
    /// `files` (same order) and write them into `scratch`, about `budget` bytes (installed
    /// size) ahead of the extraction at most (one package larger than that goes alone).
    pub(super) fn new(
        packages: &'a [Package],
        files: &'a [PathBuf],
        budget: u64,
        scratch: Arc<Scratch>,
    ) -> Prefetch<'a> {
        let count = packages.len().min(files.len());
        Prefetch {
            packages: &packages[..count],
            files: &files[..count],
            stamps: Vec::new(),
            ready: None,
            budget,
            scratch,
            next: AtomicUsize::new(0),
            verified: (0..count).map(|_| OnceLock::new()).collect(),
            state: Mutex::new(State {
                slots: (0..count).map(|_| None).collect(),
                refused: (0..count).map(|_| None).collect(),
                held: 0,
                wanted: 0,
                stopped: false,
                crashed: false,
            }),
            changed: Condvar::new(),
            background: Background::for_this_process(),
            huge_pages: true,
        }
    }

    /// Whether each thread's buffer for members inflated whole is a huge page (see
    /// [`entries::extract`]); yes unless said otherwise. Downloads running alongside
    /// hold ~3 MB of connection buffers over HTTP: a huge page per thread on top of
    /// them would take the peak RSS of an alpine-base build past 16 MB.
    pub fn huge_pages(mut self, huge_pages: bool) -> Prefetch<'a> {
        self.huge_pages = huge_pages;
        self
    }

    /// Files that were verified whole under these stamps (same order as the files) and
    /// are still unchanged are not hashed again.
    pub fn trusting(mut self, stamps: Vec<Option<FileStamp>>) -> Prefetch<'a> {
        self.stamps = stamps;
        self
    }

    /// Files that are still being fetched: before reading file `i`, `ready(i)` waits
    /// until it is there and gives the stamp it was verified under, if any (`None`: it
    /// never will be, and the package is refused as unreadable; the caller knows why).
    pub fn after(
        mut self,
        ready: &'a (dyn Fn(usize) -> Option<Option<FileStamp>> + Sync),
    ) -> Prefetch<'a> {
        self.ready = Some(ready);
        self
    }

    /// The loop of one background thread: returns when every package is inflated or
    /// [`Prefetch::stop`] was called.
    pub fn work(&self) {
        // A panic here (a bug) must not leave the extraction waiting for a package that
        // this thread will never deliver: it stops everything, and the waits say so.
        struct Crash<'p, 'a>(&'p Prefetch<'a>);
        impl Drop for Crash<'_, '_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let mut state = self.0.lock();
                    state.crashed = true;
                    state.stopped = true;
                    self.0.changed.notify_all();
                }
            }
        }
        let _crash = Crash(self);
        let _registered = self.background.register_current();
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let (Some(pkg), Some(file)) = (self.packages.get(index), self.files.get(index)) else {
                return;
            };
            if self.lock().stopped {
                return;
            }
            let fetched = match self.ready {
                Some(ready) => match ready(index) {
                    Some(stamp) => stamp,
                    None => {
                        let err = PackageError::Read {
                            package: pkg.name_version(),
                            path: file.display().to_string(),
                            source: std::io::Error::other("it was not fetched"),
                        };
                        self.refuse(index, err);
                        continue;
                    }
                },
                None => None,
            };
            // The budget is taken before the file is read: its bytes count too.
            let size = estimate(pkg);
            {
                let mut state = self.lock();
                while !state.stopped
                    && index > state.wanted
                    && state.held > 0
                    && state.held.saturating_add(size) > self.budget
                {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.stopped {
                    return;
                }
                state.held += size;
            }
            let stamp = fetched.or(self.stamps.get(index).copied().flatten());
            let (verified, mut data) = match VerifiedPackage::open_streaming(pkg, file, stamp) {
                Ok(opened) => opened,
                Err(err) => {
                    self.refuse(index, err);
                    continue;
                }
            };
            // Its control member is verified: scripts and `.PKGINFO` may be used now.
            let verified = self.verified[index].get_or_init(|| verified);
            self.changed.notify_all();
            let loaded = load(pkg, verified, &mut data, &self.scratch, self.huge_pages);
            // A tar that cannot be read may be a file that is not the signed one: the
            // hash says which, so it is checked either way.
            let loaded = match (loaded, data.finish()) {
                (_, Err(source)) => Err(InstallError::Data {
                    source: Box::new(source),
                }),
                (loaded, Ok(())) => loaded,
            };
            let mut state = self.lock();
            state.slots[index] = Some(loaded);
            self.changed.notify_all();
        }
    }

    fn refuse(&self, index: usize, err: PackageError) {
        let mut state = self.lock();
        state.refused[index] = Some(err);
        state.slots[index] = Some(Err(InstallError::Unverified { index }));
        self.changed.notify_all();
    }

    /// Makes the background threads return as soon as they finish their current package.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// Lets a package script have the CPU until the guard is dropped: the background
    /// threads step back (see [`super::background`]).
    pub(crate) fn script_first(&self) -> StepBack<'_> {
        self.background.step_back()
    }

    /// Package `index` of the plan once verified, waiting for it if needed; the reason
    /// when it failed verification (handed out once).
    pub fn verified(&self, index: usize) -> Result<&VerifiedPackage, PackageError> {
        let mut state = self.lock();
        state.wanted = state.wanted.max(index);
        self.changed.notify_all();
        loop {
            match self.verified.get(index) {
                None => return Err(PackageError::NotInPlan { index }),
                Some(cell) => {
                    if let Some(verified) = cell.get() {
                        return Ok(verified);
                    }
                }
            }
            if let Some(err) = state.refused[index].take() {
                return Err(err);
            }
            if state.crashed {
                return Err(PackageError::Read {
                    package: self.packages[index].name_version(),
                    path: self.files[index].display().to_string(),
                    source: std::io::Error::other(CRASHED),
                });
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The entries of package `index` of the plan, its files written, waiting if needed.
    pub(super) fn take(&self, index: usize) -> Result<Loaded, InstallError> {
        let mut state = self.lock();
        state.wanted = state.wanted.max(index);
        self.changed.notify_all();
        loop {
            if let Some(loaded) = self.take_slot(&mut state, index) {
                return loaded;
            }
            if index >= state.slots.len() {
                return Err(InstallError::NotPrefetched { index });
            }
            if state.crashed {
                return Err(InstallError::Unverified { index });
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether package `index` passed verification already ([`Prefetch::verified`]
    /// would not wait).
    pub fn is_verified(&self, index: usize) -> bool {
        self.verified
            .get(index)
            .is_some_and(|cell| cell.get().is_some())
    }

    /// Whether the files of package `index` are written (or its failure known), so that
    /// taking it would not wait.
    pub fn is_ready(&self, index: usize) -> bool {
        self.lock().slots.get(index).is_some_and(Option::is_some)
    }

    /// [`Prefetch::take`] without waiting: `None` while package `index` is not ready.
    pub(super) fn try_take(&self, index: usize) -> Option<Result<Loaded, InstallError>> {
        let mut state = self.lock();
        let loaded = self.take_slot(&mut state, index)?;
        state.wanted = state.wanted.max(index);
        Some(loaded)
    }

    /// Empties the slot of package `index` if it is filled, giving its share of the
    /// budget back to the workers.
    fn take_slot(&self, state: &mut State, index: usize) -> Option<Result<Loaded, InstallError>> {
        let loaded = state.slots.get_mut(index).and_then(Option::take)?;
        state.held = state.held.saturating_sub(estimate(&self.packages[index]));
        self.changed.notify_all();
        Some(loaded)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a package never came: a worker thread panicked.
const CRASHED: &str = "the thread verifying packages stopped on an internal error";

/// What a package is expected to inflate to: its installed size (the index's `I:`, known
/// before the file is read).
fn estimate(pkg: &Package) -> u64 {
    pkg.installed_size
}

/// Inflates a package's data member, read from `data_member`, into `scratch` and returns
/// its entries (nothing for `I:0` packages, which apk does not open). `huge_pages`: see
/// [`entries::extract`].
pub(super) fn load(
    pkg: &Package,
    verified: &VerifiedPackage,
    data_member: &mut dyn std::io::Read,
    scratch: &Scratch,
    huge_pages: bool,
) -> Result<Loaded, InstallError> {
    if !super::opened(pkg) {
        return Ok(Loaded {
            entries: Vec::new(),
        });
    }
    let name = pkg.name_version();
    let limit = verified
        .info()
        .size
        .saturating_mul(4)
        .max(256 * 1024 * 1024);
    let whole = verified.info().size <= entries::WHOLE_MAX;
    let entries = entries::extract(&name, data_member, limit, whole, huge_pages, scratch)?;
    Ok(Loaded { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::Path;

    const ALPINE_BASE: &str = include_str!("../../fixtures/install/alpine-base-v3.19-x86_64.plan");

    fn scratch() -> (tempfile::TempDir, Arc<Scratch>) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = crate::rootfs::RootDir::open(tmp.path()).expect("root");
        let scratch = Scratch::create(&root).expect("scratch");
        (tmp, Arc::new(scratch))
    }

    /// alpine-base's packages in apk's order with their files, from the shared data.
    fn alpine_base() -> Option<(Vec<Package>, Vec<PathBuf>)> {
        let repo = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/alpine/v3.19/main/x86_64"
        ));
        let Ok(bytes) = std::fs::read(repo.join("APKINDEX.tar.gz")) else {
            eprintln!("skipped: ../shared/alpine is absent");
            return None;
        };
        let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(&bytes[..]));
        let mut text = String::new();
        for entry in archive.entries().expect("index tar") {
            let mut entry = entry.expect("index entry");
            if entry.path_bytes().as_ref() == b"APKINDEX" {
                entry.read_to_string(&mut text).expect("APKINDEX text");
            }
        }
        let mut index = std::collections::HashMap::new();
        for stanza in text.split("\n\n") {
            let mut p = Package::default();
            for (key, value) in stanza.lines().filter_map(|l| l.split_once(':')) {
                match key {
                    "C" => p.checksum = value.into(),
                    "P" => p.name = value.into(),
                    "V" => p.version = crate::version::Version::new(value),
                    "I" => p.installed_size = value.parse().unwrap_or(0),
                    _ => {}
                }
            }
            index.insert(p.name_version(), p);
        }
        let packages: Vec<Package> = ALPINE_BASE.lines().map(|nv| index[nv].clone()).collect();
        let files = packages.iter().map(|p| repo.join(p.file_name())).collect();
        Some((packages, files))
    }

    #[test]
    fn a_worker_that_panics_fails_the_waits_instead_of_hanging_them() {
        let packages: Vec<Package> = ["one", "two"]
            .iter()
            .map(|name| Package {
                name: name.to_string(),
                installed_size: 1,
                ..Package::default()
            })
            .collect();
        let files = vec![PathBuf::from("/nonexistent/one.apk"); 2];
        let (_tmp, scratch) = scratch();
        let (done, outcome) = std::sync::mpsc::channel();
        // The waits run on a thread of their own, so that a hang fails this test
        // instead of stalling the suite.
        std::thread::spawn(move || {
            let ready = |_: usize| -> Option<Option<FileStamp>> { panic!("a bug in a worker") };
            let prefetch = Prefetch::new(&packages, &files, u64::MAX, scratch).after(&ready);
            let scope = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                std::thread::scope(|scope| {
                    scope.spawn(|| prefetch.work());
                    let verified = prefetch.verified(1).map(|_| ()).map_err(|e| e.to_string());
                    let taken = prefetch.take(0).map(|_| ()).map_err(|e| e.to_string());
                    let _ = done.send((verified, taken));
                })
            }));
            assert!(scope.is_err(), "the worker's panic reaches the scope");
        });
        let (verified, taken) = outcome
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the waits returned");
        assert!(
            verified.as_ref().is_err_and(|e| e.contains("two")),
            "{verified:?}"
        );
        assert!(taken.is_err(), "{taken:?}");
    }

    #[test]
    fn readiness_is_answered_without_waiting_and_a_package_is_taken_once() {
        let Some((packages, files)) = alpine_base() else {
            return;
        };
        let (packages, files) = (&packages[..3], &files[..3]);
        let (_tmp, scratch) = scratch();
        let prefetch = Prefetch::new(packages, files, u64::MAX, scratch);
        // Nothing read yet: every answer is "not yet", and nothing waits for it.
        assert!(!prefetch.is_verified(0));
        assert!(!prefetch.is_ready(0));
        assert!(prefetch.try_take(0).is_none());
        // One worker on this thread reads them all, then returns.
        prefetch.work();
        for i in 0..packages.len() {
            assert!(prefetch.is_verified(i), "{i}");
            assert!(prefetch.is_ready(i), "{i}");
        }
        let busybox = prefetch.try_take(2).expect("ready").expect("inflated");
        assert!(busybox.entries.iter().any(|e| e.path == "bin/busybox"));
        assert!(!prefetch.is_ready(2), "taken, so no longer there");
        assert!(prefetch.try_take(2).is_none(), "taken twice");
        assert!(prefetch.take(0).is_ok(), "the others are still there");
        assert!(!prefetch.is_verified(packages.len()), "beyond the plan");
    }

    #[test]
    fn a_tiny_budget_still_delivers_every_package_in_order() {
        let Some((packages, files)) = alpine_base() else {
            return;
        };
        // One byte: only the package the extraction waits for may be inflated.
        let (_tmp, scratch) = scratch();
        let prefetch = Prefetch::new(&packages, &files, 1, scratch);
        let mut kept = Vec::new();
        std::thread::scope(|scope| {
            scope.spawn(|| prefetch.work());
            scope.spawn(|| prefetch.work());
            for (i, pkg) in packages.iter().enumerate() {
                let verified = prefetch.verified(i).expect("verified");
                assert_eq!(verified.name_version(), pkg.name_version());
                let loaded = prefetch.take(i).expect("inflated");
                // Held for the whole build: its compressed data must not be.
                if !verified.data_member().is_empty() {
                    kept.push(pkg.name.clone());
                }
                if pkg.installed_size == 0 {
                    assert!(loaded.entries.is_empty());
                }
                if pkg.name == "busybox" {
                    assert!(loaded.entries.iter().any(|e| e.path == "bin/busybox"));
                }
            }
            prefetch.stop();
        });
        assert!(
            kept.is_empty(),
            "data members kept after inflation: {kept:?}"
        );
    }

    #[test]
    fn a_package_that_is_not_the_indexed_one_is_refused_and_never_inflated() {
        let Some((mut packages, files)) = alpine_base() else {
            return;
        };
        // musl's index entry with busybox's file.
        let musl = packages
            .iter()
            .position(|p| p.name == "musl")
            .expect("musl");
        let busybox = packages
            .iter()
            .position(|p| p.name == "busybox")
            .expect("busybox");
        let mut files = files;
        files[musl] = files[busybox].clone();
        packages.truncate(musl.max(busybox) + 1);
        let (_tmp, scratch) = scratch();
        let prefetch = Prefetch::new(&packages, &files, u64::MAX, scratch);
        std::thread::scope(|scope| {
            scope.spawn(|| prefetch.work());
            assert!(matches!(
                prefetch.verified(musl),
                Err(PackageError::ControlChecksum { .. })
            ));
            assert!(matches!(
                prefetch.take(musl),
                Err(InstallError::Unverified { .. })
            ));
            assert!(matches!(
                prefetch.verified(packages.len()),
                Err(PackageError::NotInPlan { .. })
            ));
            prefetch.stop();
        });
    }
}
