//! File descriptors that must not cross into the session: the caller's (a shell's
//! `exec 7</etc/shadow`) and the tool's own (the sysroot's O_PATH handle, whose
//! `/proc/1/fd/N/..` would lead to the host's `/`). Only system calls, no allocation:
//! these run in init and in the command after `clone`/`fork`.

use std::os::fd::RawFd;

/// `close_range`'s flag: mark close-on-exec instead of closing.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 4;
/// Descriptors above this are not looked at by the fallback loop (kernels before 5.9).
const FALLBACK_LIMIT: RawFd = 65536;

fn close_range(first: RawFd, last: RawFd, flags: libc::c_uint) {
    if first > last {
        return;
    }
    // SAFETY: plain syscall on integer arguments.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            flags,
        )
    };
    if rc == 0 {
        return;
    }
    for fd in first..=last.min(FALLBACK_LIMIT) {
        // SAFETY: closing or flagging descriptors this process owns; unused ones fail harmlessly.
        unsafe {
            if flags & CLOSE_RANGE_CLOEXEC != 0 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            } else {
                libc::close(fd);
            }
        }
    }
}

/// Closes every descriptor from 3 up except the (at most 8) in `keep`.
pub(crate) fn close_all_but(keep: &[RawFd]) {
    let mut sorted = [RawFd::MAX; 8];
    for (slot, &fd) in sorted.iter_mut().zip(keep) {
        *slot = fd;
    }
    sorted.sort_unstable();
    let mut next: RawFd = 3;
    for fd in sorted {
        if fd == RawFd::MAX {
            break;
        }
        if fd >= next {
            close_range(next, fd - 1, 0);
            next = fd + 1;
        }
    }
    close_range(next, RawFd::MAX, 0);
}

/// Marks every descriptor from 3 up close-on-exec, so that exec leaves the command
/// only stdin, stdout and stderr, while a failure report can still be written before.
pub(crate) fn cloexec_from_3() {
    close_range(3, RawFd::MAX, CLOSE_RANGE_CLOEXEC);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn only_the_kept_descriptors_survive() {
        // In a child process: closing descriptors under the test harness is not ours to do.
        let a = std::fs::File::open("/dev/null").unwrap();
        let b = std::fs::File::open("/dev/null").unwrap();
        let c = std::fs::File::open("/dev/null").unwrap();
        let (a, b, c) = (a.as_raw_fd(), b.as_raw_fd(), c.as_raw_fd());
        // SAFETY: the child only makes syscalls and exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                close_all_but(&[b]);
                let open = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
                let ok = !open(a) && open(b) && !open(c) && open(2);
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
