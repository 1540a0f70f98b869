//! Inflating the data members of a whole plan ahead of extraction.
//!
//! Extraction waits for package scripts between batches, and a script spends most of its
//! time in fork, exec and the kernel; inflating (pure CPU, independent of the root) can
//! run meanwhile. So background threads inflate the packages in plan order, as far ahead
//! as the memory budget allows, and [`super::Installer::extract_prefetched`] takes each
//! package's tar when its batch comes. The package the extraction waits for is always
//! inflated, whatever the budget says, so the two can never wait on each other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::index::Package;
use crate::package::VerifiedPackage;

use super::{entries, InstallError, Loaded};

/// Inflates the packages of a plan on background threads, in plan order.
///
/// ```text
/// let prefetch = Prefetch::new(&pairs, budget);
/// std::thread::scope(|s| {
///     s.spawn(|| prefetch.work());          // one per core
///     /* installer.extract_prefetched(&pairs[a..b], a, &prefetch, reporter)? ... */
///     prefetch.stop();                      // also after an error: workers return
/// });
/// ```
pub struct Prefetch<'a> {
    packages: &'a [(&'a Package, &'a VerifiedPackage)],
    budget: u64,
    next: AtomicUsize,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    slots: Vec<Option<Result<Loaded, InstallError>>>,
    /// Estimated inflated bytes of the packages inflated or being inflated, not yet taken.
    held: u64,
    /// The package the extraction waits for (or will take next).
    wanted: usize,
    stopped: bool,
}

impl<'a> Prefetch<'a> {
    /// Prepares to inflate `packages` (the whole plan, in order), holding about `budget`
    /// inflated bytes at most (one package larger than that is held alone).
    pub fn new(packages: &'a [(&'a Package, &'a VerifiedPackage)], budget: u64) -> Prefetch<'a> {
        Prefetch {
            packages,
            budget,
            next: AtomicUsize::new(0),
            state: Mutex::new(State {
                slots: packages.iter().map(|_| None).collect(),
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
            let Some(&(pkg, verified)) = self.packages.get(index) else {
                return;
            };
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

    /// The inflated tar of package `index` of the plan, waiting for it if needed.
    pub(super) fn take(&self, index: usize) -> Result<Loaded, InstallError> {
        let mut state = self.lock();
        state.wanted = state.wanted.max(index);
        self.changed.notify_all();
        loop {
            if let Some(loaded) = state.slots.get_mut(index).and_then(Option::take) {
                let size = self.packages.get(index).map_or(0, |(_, v)| estimate(v));
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
