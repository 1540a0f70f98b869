//! The processes of a session: the tool clones init (pid 1 of new user, mount, pid,
//! uts and ipc namespaces), init mounts and forks the command, both wait and forward.
//!
//! Signals: the tool and init block the signals they forward and take them with
//! `sigwaitinfo`, so nothing runs in a signal handler. A signal the terminal sends
//! (`si_code == SI_KERNEL`, e.g. Ctrl-C) already reached the command, which shares the
//! process group, and is not forwarded again; one sent with `kill` (SIGTERM from a
//! supervisor) is passed down tool -> init -> command. Init has a parent-death signal,
//! so killing the tool with SIGKILL still takes the namespaces and their mounts down.

use super::emulation::Emulation;
use super::exec::{cstring, run_command, Exec};
use crate::userns::IdMap;
use super::mounts::{self, MountPlan};
use super::user::SysrootUser;
use super::EnterError;
use crate::binfmt::BinfmtError;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The signals passed down to the command.
const FORWARDED: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];
/// `si_code` of signals the kernel generated (terminal keys, hangup).
const SI_KERNEL: i32 = 0x80;
/// Init's stack: it mounts and forks, nothing deep.
const STACK_SIZE: usize = 1 << 20;

/// A step of the setup that failed inside the namespaces, with its errno.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What was being done.
    pub step: String,
    /// The errno it failed with.
    pub errno: i32,
}

/// Errors that carry an errno.
pub(crate) trait AsErrno {
    /// The errno, EIO when there is none.
    fn errno(&self) -> i32;
}

impl AsErrno for nix::Error {
    fn errno(&self) -> i32 {
        *self as i32
    }
}
impl AsErrno for std::io::Error {
    fn errno(&self) -> i32 {
        self.raw_os_error().unwrap_or(libc::EIO)
    }
}
impl AsErrno for rustix::io::Errno {
    fn errno(&self) -> i32 {
        self.raw_os_error()
    }
}
impl AsErrno for BinfmtError {
    fn errno(&self) -> i32 {
        match self {
            BinfmtError::Io { source, .. } => source.errno(),
            BinfmtError::Mount { source, .. } => source.errno(),
            _ => libc::EINVAL,
        }
    }
}

/// Names the step of a fallible call.
pub(crate) trait Step<T> {
    /// Turns the error into a [`Failure`] of `what`.
    fn step(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: AsErrno> Step<T> for Result<T, E> {
    fn step(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step: what.to_string(),
            errno: e.errno(),
        })
    }
}

/// Everything the children need, prepared by the tool.
pub(crate) struct Child<'a> {
    /// The sysroot.
    pub root: &'a Path,
    /// How its binaries run.
    pub emulation: &'a Emulation,
    /// What init mounts.
    pub mounts: &'a MountPlan,
    /// Who runs the command.
    pub user: &'a SysrootUser,
    /// The command line.
    pub command: Vec<OsString>,
    /// The whole environment.
    pub env: Vec<(OsString, OsString)>,
    /// The hostname.
    pub hostname: &'a str,
}

/// Creates the namespaces, runs the command and returns its exit status.
pub(crate) fn spawn_and_wait(child: &Child<'_>) -> Result<i32, EnterError> {
    let ns_err = |step: &str| {
        let step = step.to_string();
        move |e: nix::Error| EnterError::Namespaces {
            step,
            source: std::io::Error::from(e),
        }
    };
    let idmap = IdMap::choose(matches!(child.emulation, Emulation::Private { .. }));
    let path = child
        .env
        .iter()
        .find(|(n, _)| n == "PATH")
        .map(|(_, v)| {
            v.as_bytes()
                .split(|&b| b == b':')
                .map(|d| d.to_vec())
                .collect()
        })
        .unwrap_or_default();
    let exec = Exec {
        argv: child.command.iter().map(|a| cstring(a)).collect(),
        envp: child
            .env
            .iter()
            .map(|(n, v)| {
                let mut kv = n.clone();
                kv.push("=");
                kv.push(v);
                cstring(&kv)
            })
            .collect(),
        path,
        linux32: matches!(child.emulation, Emulation::Native { linux32: true }),
        set_groups: idmap.ids_mapped(),
    };
    let (sync_r, sync_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ns_err("create a pipe"))?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ns_err("create a pipe"))?;

    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGCHLD);
    for s in FORWARDED {
        blocked.add(s);
    }
    let mut old_mask = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), Some(&mut old_mask))
        .map_err(ns_err("block signals"))?;

    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if idmap != IdMap::None {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let mut stack = vec![0u8; STACK_SIZE];
    let ids_mapped = idmap.ids_mapped();
    let init = Box::new(|| -> isize { init(child, &exec, &sync_r, &err_w, ids_mapped, &blocked) });
    // SAFETY: the child gets a copy of this (single-threaded) process and its own stack
    // buffer; it only runs `init`, which ends in `_exit`.
    let pid = unsafe { nix::sched::clone(init, &mut stack, flags, Some(libc::SIGCHLD)) };
    let result = match pid {
        Err(e) if flags.contains(CloneFlags::CLONE_NEWUSER) => Err(EnterError::Namespaces {
            step: "create the namespaces (are user namespaces disabled? as root, \
                   `--binfmt host` needs none)"
                .into(),
            source: e.into(),
        }),
        Err(e) => Err(EnterError::Namespaces {
            step: "create the namespaces".into(),
            source: e.into(),
        }),
        Ok(pid) => supervise(pid, &idmap, sync_r, sync_w, err_r, err_w, child.root),
    };
    // Ctrl-C that ended the command is pending here too: it was the command's to handle,
    // so it must not kill the tool once unblocked.
    drain(&blocked);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    result
}

/// Discards pending signals of `set`.
fn drain(set: &SigSet) {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: valid sigset, null siginfo is allowed, valid timespec.
        let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero) };
        if sig <= 0 {
            break;
        }
    }
}

fn supervise(
    pid: Pid,
    idmap: &IdMap,
    sync_r: OwnedFd,
    sync_w: OwnedFd,
    err_r: OwnedFd,
    err_w: OwnedFd,
    root: &Path,
) -> Result<i32, EnterError> {
    drop(sync_r);
    drop(err_w);
    if let Err(source) = idmap.write(pid) {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        return Err(EnterError::Namespaces {
            step: "map the user ids of the new user namespace".into(),
            source,
        });
    }
    let _ = std::fs::File::from(sync_w).write_all(b"g");
    let mut report = Vec::new();
    let _ = std::fs::File::from(err_r)
        .take(64 * 1024)
        .read_to_end(&mut report);
    let status = wait_forwarding(pid, false);
    match parse_failure(&report) {
        None => Ok(status),
        Some((true, step, errno)) => Err(EnterError::Exec {
            root: root.to_path_buf(),
            command: step.strip_prefix("exec ").unwrap_or(&step).to_string(),
            source: std::io::Error::from_raw_os_error(errno),
        }),
        Some((false, step, errno)) => Err(EnterError::Setup {
            root: root.to_path_buf(),
            step,
            source: std::io::Error::from_raw_os_error(errno),
        }),
    }
}

/// Waits for `child` while forwarding signals that were sent with `kill`; with
/// `reap_all`, also reaps every other process (init's duty). Returns the exit status.
fn wait_forwarding(child: Pid, reap_all: bool) -> i32 {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    loop {
        // Reap first: the child may have exited before its SIGCHLD was waited for.
        loop {
            let target = if reap_all { Pid::from_raw(-1) } else { child };
            match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => return 128 + sig as i32,
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
        if code != SI_KERNEL {
            if let Ok(signal) = Signal::try_from(sig) {
                let _ = kill(child, signal);
            }
        }
    }
}

fn parse_failure(report: &[u8]) -> Option<(bool, String, i32)> {
    let text = String::from_utf8_lossy(report);
    let (head, step) = text.split_once('\n')?;
    let (kind, errno) = head.split_at_checked(1)?;
    Some((kind == "E", step.to_string(), errno.parse().ok()?))
}

fn send_failure(err_w: &OwnedFd, exec: bool, failure: &Failure) {
    let kind = if exec { "E" } else { "S" };
    let message = format!("{kind}{}\n{}", failure.errno, failure.step);
    let _ = nix::unistd::write(err_w, message.as_bytes());
}

/// pid 1: waits for the id maps, mounts, forks the command, reaps until it ends.
fn init(
    child: &Child<'_>,
    exec: &Exec,
    sync_r: &OwnedFd,
    err_w: &OwnedFd,
    ids_mapped: bool,
    blocked: &SigSet,
) -> isize {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let mut go = [0u8; 1];
    // EOF instead of the byte: the tool died or gave up.
    if !matches!(nix::unistd::read(sync_r, &mut go), Ok(1)) {
        unsafe { libc::_exit(1) };
    }
    let setup = (|| -> Result<(), Failure> {
        nix::unistd::sethostname(child.hostname)
            .step(&format!("set the hostname `{}`", child.hostname))?;
        mounts::setup(child.root, child.mounts, ids_mapped)
    })();
    if let Err(failure) = setup {
        send_failure(err_w, false, &failure);
        unsafe { libc::_exit(125) };
    }
    // SAFETY: init is single-threaded; the command side only prepares credentials and execs.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let failure = run_command(child.user, exec, blocked);
            let status = if failure.errno == libc::ENOENT {
                127
            } else {
                126
            };
            send_failure(err_w, failure.step.starts_with("exec "), &failure);
            unsafe { libc::_exit(status) };
        }
        Ok(nix::unistd::ForkResult::Parent { child: command }) => {
            // The command's copy closes on exec; with ours gone the tool sees EOF.
            // SAFETY: the descriptor is not used again in this process.
            unsafe { libc::close(std::os::fd::AsRawFd::as_raw_fd(err_w)) };
            let status = wait_forwarding(command, true);
            unsafe { libc::_exit(status) };
        }
        Err(e) => {
            send_failure(
                err_w,
                false,
                &Failure {
                    step: "fork the command".into(),
                    errno: e as i32,
                },
            );
            unsafe { libc::_exit(125) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reports_round_trip() {
        assert_eq!(
            parse_failure(b"E2\nexec nope"),
            Some((true, "exec nope".into(), 2))
        );
        assert_eq!(
            parse_failure(b"S1\nmount `/proc`"),
            Some((false, "mount `/proc`".into(), 1))
        );
        assert_eq!(parse_failure(b""), None);
        assert_eq!(parse_failure(b"Sx\nbad"), None);
    }
}
