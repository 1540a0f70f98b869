//! Running a phase's independent jobs on a few threads.
//!
//! A work-stealing pool suits short phases badly: between phases its idle workers spin
//! (`sched_yield`, over a thousand calls per alpine-base build, taking CPU from the
//! threads that verify and inflate). Here small phases run on the calling thread, and
//! larger ones on threads that exist only for the phase, taking jobs from a shared
//! counter, the caller among them; nothing waits by spinning. The installer inflates
//! packages that were not prefetched this way; it places files with one thread (see
//! `Installer::placing`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Below this many jobs a phase runs on the calling thread: starting a thread costs
/// about as much as a handful of syscalls.
const SMALL: usize = 16;

/// Runs jobs on up to a fixed number of threads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Workers {
    threads: usize,
}

impl Workers {
    /// At most `threads` threads per phase (the caller's included); at least one.
    pub(super) fn new(threads: usize) -> Workers {
        Workers {
            threads: threads.max(1),
        }
    }

    /// Runs `job(i)` for every `i` in `0..count`, in no particular order; stops starting
    /// jobs after the first error and returns it.
    pub(super) fn run<E: Send>(
        &self,
        count: usize,
        job: impl Fn(usize) -> Result<(), E> + Sync,
    ) -> Result<(), E> {
        let threads = self.threads.min(count / SMALL + 1);
        if threads <= 1 {
            return (0..count).try_for_each(job);
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let failure: Mutex<Option<E>> = Mutex::new(None);
        let work = || {
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                if let Err(e) = job(i) {
                    stop.store(true, Ordering::Relaxed);
                    failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    return;
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
        match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// [`Workers::run`] over the items of `items` that `keep` selects.
    pub(super) fn each<T: Sync, E: Send>(
        &self,
        items: &[T],
        keep: impl Fn(usize, &T) -> bool,
        job: impl Fn(usize, &T) -> Result<(), E> + Sync,
    ) -> Result<(), E> {
        let picked: Vec<usize> = (0..items.len()).filter(|&i| keep(i, &items[i])).collect();
        self.run(picked.len(), |k| job(picked[k], &items[picked[k]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_once_small_or_large_and_the_first_error_stops_the_rest() {
        for count in [0, 1, SMALL - 1, SMALL * 10] {
            let seen: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
            Workers::new(4)
                .run(count, |i| {
                    seen[i].fetch_add(1, Ordering::Relaxed);
                    Ok::<(), ()>(())
                })
                .expect("no job fails");
            assert!(
                seen.iter().all(|n| n.load(Ordering::Relaxed) == 1),
                "{count}"
            );
        }
        let ran = AtomicUsize::new(0);
        let result = Workers::new(4).run(100_000, |i| {
            ran.fetch_add(1, Ordering::Relaxed);
            if i == 5 {
                Err(i)
            } else {
                Ok(())
            }
        });
        assert_eq!(result, Err(5));
        assert!(
            ran.load(Ordering::Relaxed) < 100_000,
            "jobs went on after the error"
        );
    }
}
