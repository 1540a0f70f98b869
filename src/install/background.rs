//! Letting a package script have the CPU: the threads that inflate packages ahead step
//! back (`SCHED_IDLE`) while a script runs, and come back when it ends.
//!
//! A script is the critical path of a build while it runs (nothing may be placed before
//! it ends), but with as many inflating threads as cores, its forked children waited
//! for a CPU (busybox's post-install: 2-4.6 ms per build for its `mkdir` child, and its
//! `--install` was preempted for up to 4 ms). Idle-class threads take only what the
//! script leaves; they still run while it waits on the kernel. Medians of interleaved
//! alpine-base builds on an ext4 image: 1.5 to 4.5 ms faster (2-7%) in six sets of 30 to
//! 100 runs; tmpfs unchanged (-1.1 to +0.7 ms).
//!
//! Stepping back is only done where coming back is allowed: leaving `SCHED_IDLE` needs
//! `CAP_SYS_NICE` (of the initial user namespace) or an `RLIMIT_NICE` of at least 20,
//! which rootless builds and containers without that capability lack; there the
//! threads keep their policy.

use std::sync::Mutex;

/// The inflating threads of one build, and whether they may step back.
#[derive(Debug)]
pub(super) struct Background {
    /// Thread ids of the registered threads.
    threads: Mutex<Vec<libc::pid_t>>,
    /// Whether a thread made idle can be given its policy back.
    allowed: bool,
}

impl Background {
    /// An empty set; `allowed` says whether threads may step back at all.
    pub(super) fn new(allowed: bool) -> Background {
        Background {
            threads: Mutex::new(Vec::new()),
            allowed,
        }
    }

    /// A set for this process, allowed where the policy can be restored.
    pub(super) fn for_this_process() -> Background {
        Background::new(may_leave_idle())
    }

    /// Adds the calling thread to the set until the returned guard is dropped, which
    /// the thread must do before it ends: a thread id is reused once its thread is gone,
    /// by any process, and must never be changed then.
    pub(super) fn register_current(&self) -> Registered<'_> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        if self.allowed {
            self.lock().push(tid);
        }
        Registered(self, tid)
    }

    /// Makes the registered threads idle-class until the returned guard is dropped.
    pub(super) fn step_back(&self) -> StepBack<'_> {
        if self.allowed {
            self.set_policy(libc::SCHED_IDLE);
        }
        StepBack(self)
    }

    fn set_policy(&self, policy: libc::c_int) {
        let param = libc::sched_param { sched_priority: 0 };
        for &tid in self.lock().iter() {
            // SAFETY: plain system call on a valid parameter block; the id is that of a
            // live thread of this process (threads leave the set before they end).
            unsafe { libc::sched_setscheduler(tid, policy, &param) };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<libc::pid_t>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes a thread from its [`Background`] when dropped.
#[must_use = "the thread leaves the set when this is dropped"]
pub(super) struct Registered<'b>(&'b Background, libc::pid_t);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.lock().retain(|&tid| tid != self.1);
    }
}

/// Gives the inflating threads their normal policy back when dropped (the guard of
/// `Prefetch::script_first`).
#[must_use = "the threads come back when this is dropped"]
pub struct StepBack<'b>(&'b Background);

impl Drop for StepBack<'_> {
    fn drop(&mut self) {
        if self.0.allowed {
            self.0.set_policy(libc::SCHED_OTHER);
        }
    }
}

/// Whether a thread of this process that went `SCHED_IDLE` may return to
/// `SCHED_OTHER` (the kernel's `can_nice` for nice 0, or `CAP_SYS_NICE`).
fn may_leave_idle() -> bool {
    let rlimit = rustix::process::getrlimit(rustix::process::Resource::Nice);
    if rlimit.current.is_none_or(|n| n >= 20) {
        return true;
    }
    let capable = rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::SYS_NICE)
    });
    capable && !crate::userns::in_user_namespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(tid: libc::pid_t) -> libc::c_int {
        // SAFETY: plain system call.
        unsafe { libc::sched_getscheduler(tid) }
    }

    /// Runs `check` with the id of a registered thread that waits until it returns.
    fn with_registered(background: &Background, check: impl FnOnce(libc::pid_t)) {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            s.spawn(move || {
                let _registered = background.register_current();
                // SAFETY: gettid has no preconditions.
                tx.send(unsafe { libc::gettid() }).expect("send");
                let _ = done_rx.recv();
            });
            check(rx.recv().expect("tid"));
            drop(done_tx);
        });
    }

    #[test]
    fn registered_threads_are_idle_while_a_script_runs_and_normal_after() {
        if !may_leave_idle() {
            eprintln!("skipped: this process may not leave SCHED_IDLE (needs CAP_SYS_NICE)");
            return;
        }
        let background = Background::new(true);
        with_registered(&background, |tid| {
            assert_eq!(policy(tid), libc::SCHED_OTHER);
            let guard = background.step_back();
            assert_eq!(policy(tid), libc::SCHED_IDLE);
            drop(guard);
            assert_eq!(policy(tid), libc::SCHED_OTHER);
        });
        assert!(background.lock().is_empty(), "an ended thread left the set");
    }

    #[test]
    fn where_the_policy_cannot_be_restored_nothing_changes() {
        let background = Background::new(false);
        with_registered(&background, |tid| {
            let _guard = background.step_back();
            assert_eq!(policy(tid), libc::SCHED_OTHER);
            assert!(background.lock().is_empty());
        });
    }
}
