//! The command process: signals back to defaults, personality, credentials, home
//! directory, then execve through PATH like a shell.

use super::namespaces::{Failure, Step};
use super::user::SysrootUser;
use super::{fds, pty};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{Gid, Uid};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// The 32-bit personality (`uname -m` says i686 for x86).
const PER_LINUX32: libc::c_ulong = 0x0008;

pub(crate) fn cstring(s: &std::ffi::OsStr) -> CString {
    // Arguments from a command line or a file cannot hold NUL; drop any that might.
    CString::new(
        s.as_bytes()
            .iter()
            .copied()
            .filter(|&b| b != 0)
            .collect::<Vec<u8>>(),
    )
    .unwrap_or_default()
}

/// What the command process executes, all prepared before forking.
pub(crate) struct Exec {
    /// The command line.
    pub argv: Vec<CString>,
    /// `NAME=value` pairs.
    pub envp: Vec<CString>,
    /// PATH's directories, searched for a bare command name.
    pub path: Vec<Vec<u8>>,
    /// Run under the 32-bit personality.
    pub linux32: bool,
    /// Whether setgroups is allowed in this user namespace.
    pub set_groups: bool,
    /// Which of the caller's stdin, stdout, stderr are terminals (the pty replaces those).
    pub ttys: [bool; 3],
}

/// The command process: signals reset, a new session (on the pty `slave` when there is
/// one), personality, credentials, home, exec. Returns only on failure.
pub(crate) fn run_command(
    user: &SysrootUser,
    exec: &Exec,
    blocked: &SigSet,
    slave: Option<std::os::fd::RawFd>,
) -> Failure {
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: restoring default dispositions (Rust ignores SIGPIPE) before exec.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(blocked), None);
    let creds = (|| -> Result<(), Failure> {
        pty::attach(slave, exec.ttys, user.uid)?;
        if exec.linux32 {
            // SAFETY: plain syscall wrapper.
            if unsafe { libc::personality(PER_LINUX32) } == -1 {
                return Err(std::io::Error::last_os_error())
                    .step("switch to the 32-bit personality");
            }
        }
        if exec.set_groups {
            let groups: Vec<Gid> = user.groups.iter().map(|&g| Gid::from_raw(g)).collect();
            nix::unistd::setgroups(&groups).step(&format!("set the groups of `{}`", user.name))?;
        }
        let gid = Gid::from_raw(user.gid);
        nix::unistd::setresgid(gid, gid, gid)
            .step(&format!("switch to the group of `{}`", user.name))?;
        let uid = Uid::from_raw(user.uid);
        nix::unistd::setresuid(uid, uid, uid)
            .step(&format!("switch to the user `{}`", user.name))?;
        Ok(())
    })();
    if let Err(failure) = creds {
        return failure;
    }
    if nix::unistd::chdir(user.home.as_str()).is_err() {
        let _ = nix::unistd::chdir("/");
    }
    // Only stdin, stdout and stderr cross exec; the failure report pipe stays usable
    // until then.
    fds::cloexec_from_3();
    execute(exec)
}

/// execve through PATH like a shell: ENOENT moves on, EACCES is remembered.
fn execute(exec: &Exec) -> Failure {
    let Some(program) = exec.argv.first() else {
        return Failure {
            step: "exec an empty command".into(),
            errno: libc::ENOENT,
        };
    };
    let name = program.to_string_lossy().into_owned();
    let failure = |errno| Failure {
        step: format!("exec {name}"),
        errno,
    };
    if program.as_bytes().contains(&b'/') {
        let e = nix::unistd::execve(program, &exec.argv, &exec.envp).unwrap_err();
        return failure(e as i32);
    }
    let mut denied = false;
    for dir in &exec.path {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(program.as_bytes());
        let Ok(full) = CString::new(full) else {
            continue;
        };
        match nix::unistd::execve(&full, &exec.argv, &exec.envp).unwrap_err() {
            nix::Error::EACCES => denied = true,
            nix::Error::ENOENT | nix::Error::ENOTDIR => {}
            e => return failure(e as i32),
        }
    }
    failure(if denied { libc::EACCES } else { libc::ENOENT })
}
