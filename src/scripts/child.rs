//! Starting a script in the chroot (clone with shared memory, like posix_spawn), and
//! collecting its output and exit status.
//!
//! The child's system calls (clone, unshare, mount, chroot, exec) go through libc alone:
//! it runs on the parent's memory before exec, where only raw calls on arguments
//! prepared beforehand are safe, and its namespace setup is `crate::mountns`'s.

use super::{MAX_OUTPUT, SCRIPT_PATH};
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

/// Everything the child needs between fork and exec, prepared beforehand.
pub(super) struct ChildSetup {
    /// Mount `/proc` in a namespace of the child's own (no [`ProcMount`] is live).
    pub(super) own_proc: bool,
    root: CString,
    program: CString,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers point into `_strings`, owned by the same value and never
// mutated; the value is only used by the forked child.
unsafe impl Send for ChildSetup {}
// SAFETY: as above, shared access is read-only.
unsafe impl Sync for ChildSetup {}

pub(super) fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl ChildSetup {
    pub(super) fn new(root: &Path, program: &str, argv: &[String]) -> io::Result<ChildSetup> {
        use std::os::unix::ffi::OsStrExt;
        let root = CString::new(root.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut strings = argv
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<Vec<_>>>()?;
        strings.push(cstring(SCRIPT_PATH)?);
        let argv_ptrs: Vec<*const libc::c_char> = strings[..argv.len()]
            .iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp = vec![strings[argv.len()].as_ptr(), std::ptr::null()];
        Ok(ChildSetup {
            own_proc: true,
            root,
            program: cstring(program)?,
            _strings: strings,
            argv: argv_ptrs,
            envp,
        })
    }

    /// Runs in the child: own mount namespace, `/proc` in the root, chroot, umask 022.
    /// Paths are resolved after `unshare`, since descriptors opened before it point
    /// into the host's namespace, where the `/proc` mount must not appear.
    fn enter(&self) -> io::Result<()> {
        let check = |r: i32| {
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        // SAFETY: plain system calls with valid, NUL-terminated arguments.
        unsafe {
            if self.own_proc {
                check(crate::mountns::enter_private())?;
                check(libc::chdir(self.root.as_ptr()))?;
                // O_NOFOLLOW: a `proc` symlink shipped by a package is not followed.
                let proc_fd = libc::open(
                    c"proc".as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                );
                if proc_fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                check(libc::fchdir(proc_fd))?;
                check(libc::mount(
                    c"proc".as_ptr(),
                    c".".as_ptr(),
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                ))?;
            }
            check(libc::chdir(self.root.as_ptr()))?;
            check(libc::chroot(c".".as_ptr()))?;
            check(libc::chdir(c"/".as_ptr()))?;
            libc::umask(0o022);
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            );
            libc::_exit(127);
        }
    }
}

/// What the child reports back through the memory it shares with the parent.
struct Spawn<'a> {
    setup: &'a ChildSetup,
    stdin: RawFd,
    output: RawFd,
    /// The errno of the step that failed before exec, 0 if none did.
    error: i32,
}

/// Starts the script like `posix_spawn` does: `clone(CLONE_VM | CLONE_VFORK)`, so the
/// child borrows this process's memory until it execs instead of copying its page tables
/// (a fork of this multi-threaded process cost ~1 ms per script). The child sets up stdio,
/// default signal handling and the root, then execs; a failure before the exec is
/// reported like `Command::spawn` reports one (an error here), an exec failure becomes
/// exit status 127, as under apk. Returns the child's pid.
pub(super) fn spawn(setup: &ChildSetup, stdin: RawFd, output: RawFd) -> io::Result<libc::pid_t> {
    const STACK: usize = 256 * 1024;
    let mut stack = vec![0u8; STACK];
    let mut shared = Spawn {
        setup,
        stdin,
        output,
        error: 0,
    };
    // SAFETY: all signals are blocked around clone so that no handler of this process runs
    // on the child's borrowed memory; the child (`child_main`) only makes system calls on
    // data prepared before, on its own stack, and the parent does not run until the child
    // called execve or _exit (CLONE_VFORK). The stack outlives that.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(STACK - 64);
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::addr_of_mut!(shared).cast(),
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_error);
        }
        pid
    };
    drop(stack);
    if shared.error != 0 {
        wait(pid)?;
        return Err(io::Error::from_raw_os_error(shared.error));
    }
    Ok(pid)
}

/// The child side of [`spawn`]: only system calls, no allocation, no locks.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Spawn` of the parent, which waits (CLONE_VFORK) until this
    // function execs or exits.
    let shared = unsafe { &mut *arg.cast::<Spawn<'_>>() };
    // SAFETY: plain system calls on valid arguments.
    unsafe {
        // Handlers of the parent must not run here; exec resets them anyway.
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut action) == 0
                && (action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN
                    || sig == libc::SIGPIPE)
            {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if libc::dup2(shared.stdin, 0) < 0
            || libc::dup2(shared.output, 1) < 0
            || libc::dup2(shared.output, 2) < 0
        {
            shared.error = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            libc::_exit(127);
        }
        // `enter` only returns on a failure before the exec.
        if let Err(err) = shared.setup.enter() {
            shared.error = err.raw_os_error().unwrap_or(libc::EIO);
        }
        libc::_exit(127)
    }
}

/// Waits for the child `pid` and returns how it ended.
pub(super) fn wait(pid: libc::pid_t) -> io::Result<std::process::ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
            return Ok(std::process::ExitStatus::from_raw(status));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(super) fn drain(reader: &mut OwnedFd) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::from(reader.try_clone()?);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let keep = n.min(MAX_OUTPUT.saturating_sub(out.len()));
                out.extend_from_slice(&buf[..keep]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// apk's wording for a non-zero wait status (`apk_exit_status_str`).
pub(super) fn describe_status(status: std::process::ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with error {code}")
    } else if let Some(sig) = status.signal() {
        format!("killed by signal {sig}")
    } else if let Some(sig) = status.stopped_signal() {
        format!("stopped by signal {sig}")
    } else {
        format!("status unknown {:x}", status.into_raw())
    }
}
