//! Rootless builds: a non-root caller's build runs as root of a user namespace.
//!
//! With subordinate ids (`/etc/subuid`, `/etc/subgid` and the setuid `newuidmap`), the
//! namespace maps 0 to the caller and 1.. to the caller's ranges, so `chown` to package
//! owners, setuid bits and scripts work as for root, and the tree looks, through the
//! same mapping (e.g. inside `sysroot-mk enter`), exactly like a root build. Without
//! them only the caller is mapped, as 0: files stay the caller's, and their owners are
//! recorded in apk's database only.
//!
//! A user namespace can only be entered by a single-threaded process, so the binary
//! calls [`enter`] first thing. It forks: the child unshares the user and mount
//! namespaces and goes on with the build; the parent writes the id maps, then waits,
//! passes on signals sent to it with `kill`, and exits with the child's status.
//!
//! ```text
//! parent (caller's ids)                     child
//!   fork ─────────────────────────────────> unshare(USER | NS), "R"
//!   newuidmap/newgidmap (or one id) ──"G"─> mounts made private; builds as root
//!   waits, forwards SIGTERM/SIGHUP/SIGINT   exits with the build's status
//! ```

use nix::unistd::{ForkResult, Pid};
use std::os::fd::OwnedFd;

use crate::userns::IdMap;

/// Where [`enter`] left this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entered {
    /// Root already: nothing was done.
    NotNeeded,
    /// This is the child, now root of a user namespace with this map.
    Namespace(IdMap),
    /// This was the parent; the build ran in the child, which exited with this code.
    Parent(i32),
}

/// Entering a user namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// A step failed.
    #[error("cannot {step} for a rootless build")]
    Step {
        /// What was being done.
        step: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn step(step: &'static str) -> impl FnOnce(nix::Error) -> RootlessError {
    move |e| RootlessError::Step {
        step,
        source: e.into(),
    }
}

/// Moves a non-root caller's build into a user namespace; see the module documentation.
///
/// # Safety
/// Forks: the calling process must be single-threaded (call it before anything starts
/// a thread), and the child returns into the caller's code.
pub unsafe fn enter() -> Result<Entered, RootlessError> {
    if nix::unistd::geteuid().is_root() {
        return Ok(Entered::NotNeeded);
    }
    let map = IdMap::choose(true);
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(step("create a pipe"))?;
    let (go_r, go_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(step("create a pipe"))?;
    // SAFETY: the caller guarantees a single-threaded process.
    match unsafe { nix::unistd::fork() }.map_err(step("fork"))? {
        ForkResult::Child => {
            drop((ready_r, go_w));
            child(ready_w, go_r, map)
        }
        ForkResult::Parent { child } => {
            drop((ready_w, go_r));
            parent(child, ready_r, go_w, &map)
        }
    }
}

fn child(ready_w: OwnedFd, go_r: OwnedFd, map: IdMap) -> Result<Entered, RootlessError> {
    // SAFETY: plain system call in a single-threaded process.
    let unshared = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) };
    let report = if unshared == 0 { b"R" } else { b"E" };
    let _ = nix::unistd::write(&ready_w, report);
    drop(ready_w);
    if unshared != 0 {
        // The parent reports the failure and carries on without a namespace.
        std::process::exit(RETRY_WITHOUT);
    }
    let mut go = [0u8; 1];
    if !matches!(nix::unistd::read(&go_r, &mut go), Ok(1)) || go[0] != b'G' {
        std::process::exit(RETRY_WITHOUT);
    }
    // SAFETY: this process's own mount namespace, just unshared.
    if unsafe { crate::mountns::make_private() } != 0 {
        return Err(RootlessError::Step {
            step: "make the mounts private",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(Entered::Namespace(map))
}

/// The child's exit code when it could not enter the namespace before doing anything:
/// the parent then goes on alone, without one.
const RETRY_WITHOUT: i32 = 121;

fn parent(
    child: Pid,
    ready_r: OwnedFd,
    go_w: OwnedFd,
    map: &IdMap,
) -> Result<Entered, RootlessError> {
    let mut ready = [0u8; 1];
    let entered = matches!(nix::unistd::read(&ready_r, &mut ready), Ok(1)) && ready[0] == b'R';
    let mapped = entered && map.write(child).is_ok();
    let _ = nix::unistd::write(&go_w, if mapped { b"G" } else { b"N" });
    drop(go_w);
    // The child is in our process group: the terminal's signals reach it directly.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&crate::signals::waited_set()),
        None,
    );
    let status = crate::signals::wait_forwarding(child, false, false);
    if !mapped && status == RETRY_WITHOUT {
        return Err(RootlessError::Step {
            step: if entered {
                "map the ids of a user namespace"
            } else {
                "create a user namespace"
            },
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        });
    }
    Ok(Entered::Parent(status))
}
