//! Waiting for a child while passing signals on, without signal handlers: the caller
//! blocks [`waited_set`] and this takes the signals with `sigwaitinfo`. Used by the
//! `enter` tool and its init, and by the parent of a rootless build.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The signals passed down to the child.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];
/// `si_code` of signals the kernel generated (terminal keys, hangup).
pub const SI_KERNEL: i32 = 0x80;

/// [`FORWARDED`] and `SIGCHLD`: what a caller of [`wait_forwarding`] must block first.
pub fn waited_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    set
}

/// Waits for `child` while passing on the [`FORWARDED`] signals this process takes;
/// returns its exit status (128 + n when signal n killed it). With `reap_all`, every
/// other child is reaped too (init's duty). Without `pass_terminal`, signals the
/// kernel generated are not passed on: the child, in the caller's process group, got
/// the terminal's own copy.
pub fn wait_forwarding(child: Pid, reap_all: bool, pass_terminal: bool) -> i32 {
    let set = waited_set();
    loop {
        // Reap first: the child may have exited before its SIGCHLD was waited for.
        loop {
            let target = if reap_all { Pid::from_raw(-1) } else { child };
            match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => return 128 + sig as i32,
                Err(nix::Error::ECHILD) if !reap_all => return 1,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
        // SAFETY: `set` is a valid sigset and `info` a writable siginfo_t.
        let sig = unsafe { libc::sigwaitinfo(set.as_ref(), info.as_mut_ptr()) };
        if sig <= 0 || sig == libc::SIGCHLD {
            continue;
        }
        // SAFETY: sigwaitinfo filled `info` when it returned a signal.
        let code = unsafe { info.assume_init() }.si_code;
        if code != SI_KERNEL || pass_terminal {
            if let Ok(signal) = Signal::try_from(sig) {
                let _ = kill(child, signal);
            }
        }
    }
}
