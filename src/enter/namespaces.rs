//! The processes of a session: the tool clones init (pid 1 of new user, mount, pid,
//! uts and ipc namespaces), init mounts and forks the command, both wait and forward.
//!
//! Signals: the tool and init block the signals they forward and take them with
//! `sigwaitinfo` (the tool, relaying a pty, with a signalfd), so nothing runs in a
//! signal handler. The command leads a session of its own, so nothing the caller's
//! terminal sends reaches it directly: the tool passes every signal it takes down to
//! init, which passes it to the command. init leads a process group of its own, so
//! the terminal's signals (Ctrl-C) reach it only through the tool. Init has a parent-death signal, so killing the tool with SIGKILL still takes
//! the namespaces and their mounts down.

use super::emulation::Emulation;
use super::exec::{cstring, Exec};
use super::init;
use super::mounts::MountPlan;
use super::pty;
use super::user::SysrootUser;
use super::EnterError;
use crate::binfmt::BinfmtError;
use crate::userns::IdMap;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
    /// Device and inode of the sysroot the tool checked; init refuses any other.
    pub root_id: (u64, u64),
    /// How the session's ids map to the host's.
    pub idmap: &'a IdMap,
    /// The sysroot's id-mapped tree (with [`IdMap::Range`]), for init to move in place.
    pub tree: Option<&'a OwnedFd>,
    /// Whether init must switch to the namespace's root first (its ids are not mapped).
    pub switch_to_root: bool,
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
    let idmap = child.idmap;
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
        ttys: pty::caller_ttys(),
    };
    let use_pty = exec.ttys[0];
    let (sync_r, sync_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ns_err("create a pipe"))?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ns_err("create a pipe"))?;
    let (sock_tool, sock_init) = socketpair().map_err(|source| EnterError::Namespaces {
        step: "create a socket pair".into(),
        source,
    })?;

    let mut blocked = crate::signals::waited_set();
    if use_pty {
        blocked.add(Signal::SIGWINCH);
    }
    let mut old_mask = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), Some(&mut old_mask))
        .map_err(ns_err("block signals"))?;

    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if *idmap != IdMap::None {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let mut stack = vec![0u8; STACK_SIZE];
    let ids_mapped = idmap.ids_mapped();
    let init_fds = init::InitFds {
        sync_r: sync_r.as_raw_fd(),
        err_w: err_w.as_raw_fd(),
        sock: sock_init.as_raw_fd(),
        tree: child.tree.map_or(-1, |t| t.as_raw_fd()),
    };
    let init = Box::new(|| -> isize { init::init(child, &exec, &init_fds, ids_mapped, &blocked) });
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
        Ok(pid) => {
            // init leads a process group of its own (it asks too, whichever runs first),
            // so the terminal's signals reach only the tool. Were init in the tool's group,
            // the terminal's Ctrl-C (which init must ignore) could still be pending there
            // when the tool's forwarded copy arrived, and the two would merge into one
            // that init ignores: a lost Ctrl-C under load.
            let _ = nix::unistd::setpgid(pid, pid);
            drop((sync_r, err_w, sock_init));
            let pipes = ToolFds {
                sync_w,
                err_r,
                sock: sock_tool,
            };
            supervise(pid, idmap, pipes, child.root, use_pty, &blocked)
        }
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

/// A connected pair of close-on-exec unix stream sockets.
fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut pair = [-1; 2];
    // SAFETY: socketpair fills the two-element array on success.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) })
}

/// The tool's ends of the same channels.
struct ToolFds {
    sync_w: OwnedFd,
    err_r: OwnedFd,
    sock: OwnedFd,
}

fn supervise(
    pid: Pid,
    idmap: &IdMap,
    pipes: ToolFds,
    root: &Path,
    use_pty: bool,
    blocked: &SigSet,
) -> Result<i32, EnterError> {
    let ToolFds {
        sync_w,
        err_r,
        sock,
    } = pipes;
    if let Err(source) = idmap.write(pid) {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        return Err(EnterError::Namespaces {
            step: "map the user ids of the new user namespace".into(),
            source,
        });
    }
    let _ = std::fs::File::from(sync_w).write_all(b"g");
    // init sends the master before it forks the command, or closes its end on failure.
    let master = if use_pty {
        pty::recv_fd(sock.as_raw_fd()).ok().flatten()
    } else {
        None
    };
    let mut report = Vec::new();
    let _ = std::fs::File::from(err_r)
        .take(64 * 1024)
        .read_to_end(&mut report);
    // Open until here: init takes its closing for the tool's death.
    drop(sock);
    let status = match master {
        Some(master) => {
            // Restored when it drops, on every way out of the relay.
            let _raw = pty::RawTerminal::enable();
            pty::relay(master, pid, blocked)
        }
        // The command leads its own session: the terminal's signals come through here.
        None => crate::signals::wait_forwarding(pid, false, true),
    };
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

fn parse_failure(report: &[u8]) -> Option<(bool, String, i32)> {
    let text = String::from_utf8_lossy(report);
    let (head, step) = text.split_once('\n')?;
    let (kind, errno) = head.split_at_checked(1)?;
    Some((kind == "E", step.to_string(), errno.parse().ok()?))
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
