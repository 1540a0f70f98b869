//! The session's own terminal. Sharing the caller's would let a program inside push
//! keystrokes into the caller's shell (TIOCSTI) and leaves `tty` naming a `/dev/pts/N`
//! that the fresh devpts inside does not have. So, when stdin is a terminal, init opens
//! a pty pair in the session's devpts, hands the master to the tool over a socket
//! (SCM_RIGHTS) and gives the slave to the command as its controlling terminal in a
//! new session; the tool puts its own terminal in raw mode and relays bytes and window
//! sizes until init ends. Without a terminal the command still gets a new session.

use super::namespaces::{Failure, Step};
use nix::sys::signal::SigSet;
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Bytes moved per read.
const CHUNK: usize = 16 * 1024;

/// Opens a pty pair in the devpts mounted at `/dev/pts` (after pivot_root): the master,
/// and the slave opened from it (TIOCGPTPEER, so no path is looked up).
pub(crate) fn open_pair() -> Result<(OwnedFd, OwnedFd), Failure> {
    let flags =
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC;
    let master = nix::fcntl::open("/dev/pts/ptmx", flags, nix::sys::stat::Mode::empty())
        .step("open `/dev/pts/ptmx`")?;
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on the descriptor just opened, with the argument types they take.
    let slave = unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(std::io::Error::last_os_error()).step("unlock the pty");
        }
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(std::io::Error::last_os_error()).step("open the pty's slave");
    }
    // SAFETY: TIOCGPTPEER returned a new descriptor that nothing else owns.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

/// The command's side: a new session (always), and the slave as controlling terminal on
/// those of stdin, stdout, stderr that were terminals in the caller. The slave is given
/// to `uid` first, as login does, so the user can reopen its `tty`.
pub(crate) fn attach(slave: Option<RawFd>, ttys: [bool; 3], uid: u32) -> Result<(), Failure> {
    nix::unistd::setsid().step("start a new session")?;
    let Some(slave) = slave else {
        return Ok(());
    };
    // SAFETY: syscalls on descriptors this process owns.
    unsafe {
        let _ = libc::fchown(slave, uid, u32::MAX);
        for (fd, is_tty) in ttys.iter().enumerate() {
            if *is_tty && libc::dup2(slave, fd as RawFd) < 0 {
                return Err(std::io::Error::last_os_error()).step("give the pty to the command");
            }
        }
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
            return Err(std::io::Error::last_os_error())
                .step("make the pty the controlling terminal");
        }
    }
    Ok(())
}

/// Sends `fd` over the unix socket `sock`.
pub(crate) fn send_fd(sock: RawFd, fd: RawFd) -> std::io::Result<()> {
    let mut byte = [b'm'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = [0u64; 8];
    // SAFETY: msghdr and cmsg built on stack buffers large enough for one descriptor
    // (CMSG_SPACE(4) is 24 bytes here, the buffer 64).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives one descriptor from `sock`; `None` when the peer closed it without one.
pub(crate) fn recv_fd(sock: RawFd) -> std::io::Result<Option<OwnedFd>> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = [0u64; 8];
    // SAFETY: as in `send_fd`; a descriptor the kernel installs is owned by us alone.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&space) as _;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Ok(None);
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}

/// Which of stdin, stdout, stderr are terminals; the pty is used when stdin is one.
pub(crate) fn caller_ttys() -> [bool; 3] {
    [0, 1, 2].map(|fd| nix::unistd::isatty(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap_or(false))
}

/// The caller's terminal in raw mode for as long as this lives.
pub(crate) struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Puts stdin's terminal in raw mode.
    pub(crate) fn enable() -> nix::Result<RawTerminal> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSADRAIN, &raw)?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

fn copy_window_size(master: RawFd) {
    // SAFETY: winsize is plain data, filled by the kernel.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

fn read_some(fd: RawFd, buf: &mut [u8]) -> isize {
    // SAFETY: reading into a buffer we own.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing from a buffer we own.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        data = &data[n as usize..];
    }
}

/// Relays between the caller's terminal and `master` until `init` ends, and returns
/// init's exit status. `signals` (blocked by the caller) are taken through a signalfd:
/// SIGWINCH resizes the pty, SIGCHLD may end the relay, the rest go to init.
pub(crate) fn relay(master: OwnedFd, init: Pid, signals: &SigSet) -> i32 {
    let master_fd = master.as_raw_fd();
    let out = if nix::unistd::isatty(std::io::stdout()).unwrap_or(false) {
        1
    } else {
        2
    };
    // SAFETY: a valid sigset; the descriptor is ours.
    let sigfd = unsafe { libc::signalfd(-1, signals.as_ref(), libc::SFD_CLOEXEC) };
    // SAFETY: fcntl on our descriptor.
    unsafe { libc::fcntl(master_fd, libc::F_SETFL, libc::O_NONBLOCK) };
    copy_window_size(master_fd);
    let mut to_master: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let (mut stdin_open, mut master_open) = (true, true);
    let status = loop {
        if let Some(status) = reaped(init) {
            break status;
        }
        let mut fds = [
            libc::pollfd {
                fd: if stdin_open && to_master.is_empty() {
                    0
                } else {
                    -1
                },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if master_open { master_fd } else { -1 },
                events: libc::POLLIN
                    | if to_master.is_empty() {
                        0
                    } else {
                        libc::POLLOUT
                    },
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: three valid pollfd entries.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } < 0 {
            continue;
        }
        if fds[2].revents & libc::POLLIN != 0 {
            // SAFETY: signalfd_siginfo is plain data, filled by read.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of_val(&info);
            // SAFETY: reading one record into `info`.
            let n = unsafe {
                libc::read(
                    sigfd,
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n as usize == size {
                match info.ssi_signo as i32 {
                    libc::SIGCHLD => {}
                    libc::SIGWINCH => copy_window_size(master_fd),
                    // The caller's terminal is raw: nothing typed reaches the tool as a
                    // signal, so whatever arrives was meant for the session.
                    sig => {
                        // SAFETY: signalling our child.
                        unsafe { libc::kill(init.as_raw(), sig) };
                    }
                }
            }
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let n = read_some(0, &mut buf);
            if n <= 0 {
                stdin_open = false;
            } else {
                to_master.extend_from_slice(&buf[..n as usize]);
            }
        }
        if fds[1].revents & libc::POLLOUT != 0 && !to_master.is_empty() {
            // SAFETY: writing from our buffer to a non-blocking descriptor.
            let n = unsafe { libc::write(master_fd, to_master.as_ptr().cast(), to_master.len()) };
            if n > 0 {
                to_master.drain(..n as usize);
            }
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let n = read_some(master_fd, &mut buf);
            if n > 0 {
                write_all(out, &buf[..n as usize]);
            } else if n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN)
            {
                // EIO: every slave is closed, the session is ending; SIGCHLD follows.
                master_open = false;
            }
        }
    };
    // What the command wrote just before it ended is still in the master.
    if master_open {
        loop {
            let n = read_some(master_fd, &mut buf);
            if n <= 0 {
                break;
            }
            write_all(out, &buf[..n as usize]);
        }
    }
    // SAFETY: closing our descriptors.
    unsafe {
        if sigfd >= 0 {
            libc::close(sigfd);
        }
    }
    drop(master);
    status
}

/// init's exit status once it has ended.
fn reaped(init: Pid) -> Option<i32> {
    match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
        Ok(_) => None,
        Err(_) => Some(1),
    }
}
