//! pid 1 of the session: drops every descriptor of the tool's, waits for the go-ahead
//! (the id maps are written then), becomes the namespace's root when the map needs it,
//! mounts, opens the session's pty, forks the command and reaps until it ends.

use super::exec::{run_command, Exec};
use super::namespaces::{Child, Failure, Step};
use super::{fds, mounts, pty};
use nix::sys::signal::SigSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// init's ends of the channels, as numbers: init closes every other descriptor first.
pub(crate) struct InitFds {
    /// Read end of the go-ahead pipe.
    pub sync_r: RawFd,
    /// Write end of the failure report pipe.
    pub err_w: RawFd,
    /// init's end of the socket the pty master travels over.
    pub sock: RawFd,
    /// The id-mapped tree of the sysroot, or -1.
    pub tree: RawFd,
}

/// Reports `failure` to the tool (`E` for the exec itself, `S` for the setup).
pub(crate) fn send_failure(err_w: &OwnedFd, exec: bool, failure: &Failure) {
    let kind = if exec { "E" } else { "S" };
    let message = format!("{kind}{}\n{}", failure.errno, failure.step);
    let _ = nix::unistd::write(err_w, message.as_bytes());
}

/// Whether the peer of the socket `sock` has closed it (the tool has ended).
fn tool_gone(sock: RawFd) -> bool {
    let mut fd = libc::pollfd {
        fd: sock,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0
}

/// pid 1: waits for the id maps, mounts, forks the command, reaps until it ends.
pub(crate) fn init(
    child: &Child<'_>,
    exec: &Exec,
    fds: &InitFds,
    ids_mapped: bool,
    blocked: &SigSet,
) -> isize {
    // Nothing of the tool's stays here: not the sysroot's O_PATH handle (a way out
    // through /proc/1/fd), not the caller's stray descriptors, not the write end of the
    // go-ahead pipe (the tool's death must read as EOF below).
    fds::close_all_but(&[fds.sync_r, fds.err_w, fds.sock, fds.tree]);
    // SAFETY: descriptors numbered in `fds` stay open in this process until closed here.
    let (sync_r, err_w, sock) = unsafe {
        (
            OwnedFd::from_raw_fd(fds.sync_r),
            OwnedFd::from_raw_fd(fds.err_w),
            OwnedFd::from_raw_fd(fds.sock),
        )
    };
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    // Out of the tool's process group (the tool asks too): see `namespaces`.
    let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    let mut go = [0u8; 1];
    // EOF instead of the byte: the tool died or gave up.
    if !matches!(nix::unistd::read(&sync_r, &mut go), Ok(1)) {
        unsafe { libc::_exit(1) };
    }
    drop(sync_r);
    let err_w = &err_w;
    let setup = (|| -> Result<Option<OwnedFd>, Failure> {
        if child.switch_to_root {
            // Born with the tool's kernel ids (host root's), which the range does not map:
            // become the namespace's root, an unprivileged id outside, before anything else.
            nix::unistd::setgroups(&[]).step("drop the host's groups")?;
            let (uid, gid) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
            nix::unistd::setresgid(gid, gid, gid).step("become the session's root group")?;
            nix::unistd::setresuid(uid, uid, uid).step("become the session's root")?;
            // A credential change clears the parent-death signal: set it again, then make
            // sure the tool did not die in between (its end of the socket would be closed).
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
            if tool_gone(sock.as_raw_fd()) {
                // SAFETY: ends init; nothing to clean up.
                unsafe { libc::_exit(1) };
            }
        }
        nix::unistd::sethostname(child.hostname)
            .step(&format!("set the hostname `{}`", child.hostname))?;
        // SAFETY: kept open by close_all_but, owned by nothing else in this process.
        let tree = (fds.tree >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fds.tree) });
        mounts::setup(child.root, child.root_id, tree, child.mounts, ids_mapped)?;
        if !exec.ttys[0] {
            return Ok(None);
        }
        let (master, slave) = pty::open_pair()?;
        pty::send_fd(sock.as_raw_fd(), master.as_raw_fd()).step("hand the pty to the tool")?;
        Ok(Some(slave))
    })();
    drop(sock);
    let slave = match setup {
        Ok(slave) => slave,
        Err(failure) => {
            send_failure(err_w, false, &failure);
            unsafe { libc::_exit(125) };
        }
    };
    // SAFETY: init is single-threaded; the command side only prepares credentials and execs.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let slave = slave.as_ref().map(|s| s.as_raw_fd());
            let failure = run_command(child.user, exec, blocked, slave);
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
            unsafe { libc::close(err_w.as_raw_fd()) };
            drop(slave);
            // init keeps no way to the caller's files or terminal: the command has them.
            if let Ok(null) = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDWR,
                nix::sys::stat::Mode::empty(),
            ) {
                for fd in 0..3 {
                    // SAFETY: dup2 onto the standard descriptors of this process.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
            // In a process group of its own, init takes signals only from the tool (and
            // the kernel's on its behalf): it passes on all of them.
            let status = crate::signals::wait_forwarding(command, true, true);
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
