//! Verifying and inflating the packages of a whole plan ahead of extraction.
//!
//! Extraction waits for package scripts between batches, and a script spends most of its
//! time in fork, exec and the kernel; verifying and inflating (pure CPU, independent of
//! the root) can run meanwhile. So background threads verify each package file against
//! its index entry and inflate its data member, in plan order, as far ahead as the memory
//! budget allows; the first batch starts as soon as its own packages are verified instead
//! of after all of them. [`Prefetch::verified`] hands out the verified package (scripts,
//! `.PKGINFO`) and [`super::Installer::extract_prefetched`] takes its tar when its batch
//! comes. A package the extraction waits for is always worked on, whatever the budget
//! says, so the two can never wait on each other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use crate::index::Package;
use crate::package::{PackageError, VerifiedPackage};

use super::{entries, InstallError, Loaded};

/// Verifies and inflates the packages of a plan on background threads, in plan order.
///
/// ```text
/// let prefetch = Prefetch::new(&plan.packages, &files, budget);
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
    budget: u64,
    next: AtomicUsize,
    verified: Vec<OnceLock<VerifiedPackage>>,
    state: Mutex<State>,
    changed: Condvar,
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
}

impl<'a> Prefetch<'a> {
    /// Prepares to verify `packages` (the whole plan, in order) against the `.apk` files
    /// `files` (same order) and inflate them, holding about `budget` inflated bytes at
    /// most (one package larger than that is held alone).
    pub fn new(packages: &'a [Package], files: &'a [PathBuf], budget: u64) -> Prefetch<'a> {
        let count = packages.len().min(files.len());
        Prefetch {
            packages: &packages[..count],
            files: &files[..count],
            budget,
            next: AtomicUsize::new(0),
            verified: (0..count).map(|_| OnceLock::new()).collect(),
            state: Mutex::new(State {
                slots: (0..count).map(|_| None).collect(),
                refused: (0..count).map(|_| None).collect(),
                held: 0,
                wanted: 0,
                stopped: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// The loop of one background thread: returns when every package is inflated or
    /// [`Prefetch::stop`] was called.
    pub fn work(&self) {
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            let (Some(pkg), Some(file)) = (self.packages.get(index), self.files.get(index)) else {
                return;
            };
            if self.lock().stopped {
                return;
            }
            let verified = match VerifiedPackage::open(pkg, file) {
                Ok(verified) => verified,
                Err(err) => {
                    let mut state = self.lock();
                    state.refused[index] = Some(err);
                    state.slots[index] = Some(Err(InstallError::Unverified { index }));
                    self.changed.notify_all();
                    continue;
                }
            };
            let verified = self.verified[index].get_or_init(|| verified);
            self.changed.notify_all();
            let size = estimate(verified);
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
            let loaded = load(pkg, verified);
            let mut state = self.lock();
            state.slots[index] = Some(loaded);
            self.changed.notify_all();
        }
    }

    /// Makes the background threads return as soon as they finish their current package.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
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
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The inflated tar of package `index` of the plan, waiting for it if needed.
    pub(super) fn take(&self, index: usize) -> Result<Loaded, InstallError> {
        let mut state = self.lock();
        state.wanted = state.wanted.max(index);
        self.changed.notify_all();
        loop {
            if let Some(loaded) = state.slots.get_mut(index).and_then(Option::take) {
                let size = self.verified[index].get().map_or(0, estimate);
                state.held = state.held.saturating_sub(size);
                self.changed.notify_all();
                return loaded;
            }
            if index >= state.slots.len() {
                return Err(InstallError::NotPrefetched { index });
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a package is expected to inflate to: its installed size.
fn estimate(verified: &VerifiedPackage) -> u64 {
    verified.info().size
}

/// Inflates a package's data member and reads its entries (nothing for `I:0` packages,
/// which apk does not open).
pub(super) fn load(pkg: &Package, verified: &VerifiedPackage) -> Result<Loaded, InstallError> {
    if !super::opened(pkg) {
        return Ok(Loaded {
            data: Vec::new(),
            entries: Vec::new(),
        });
    }
    let name = pkg.name_version();
    let limit = verified
        .info()
        .size
        .saturating_mul(4)
        .max(256 * 1024 * 1024);
    let data = entries::inflate(&name, verified.data_member(), limit)?;
    let entries = entries::read_entries(&name, &data)?;
    Ok(Loaded { data, entries })
}
