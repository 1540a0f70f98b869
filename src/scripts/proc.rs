//! `/proc` mounted once in the root for all the scripts of a build.
//!
//! Its mounts use libc, as `crate::mountns` (which makes the namespace they go into, and
//! also serves cloned children before exec) and `child.rs` (which mounts `/proc` the
//! same way when there is no shared one) do: one crate for one job.

use std::ffi::CString;
use std::io::{self};
use std::path::{Path, PathBuf};

use crate::rootfs::RootDir;
use rustix::fs::OFlags;

use super::child::cstring;
use super::ScriptError;

thread_local! {
    /// The root whose `/proc` a live [`ProcMount`] of this thread mounted, if any.
    pub(super) static SHARED_PROC: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// `/proc` mounted in a root once for all the scripts this thread runs there, as apk
/// mounts it once per run; without one, each script mounts its own.
///
/// The calling thread moves into a private mount namespace (its copy of the host's
/// mounts, none of them propagating back) and mounts `proc` on the root's `proc`
/// directory there; the host never sees the mount, and the scripts (forked from this
/// thread) see it as before. Dropping it unmounts `/proc` again; keep it shorter-lived
/// than the directory (declare it after the staging directory), and drop it before the
/// root is renamed or removed.
#[derive(Debug)]
pub struct ProcMount {
    target: CString,
    /// Device nodes bound in for the scripts; the mount points were made here.
    devices: Vec<(CString, RootDir, &'static str)>,
}

/// The nodes scripts write to (`>/dev/null`) or read from; without them a redirection
/// would create a regular file in the tree.
const DEVICES: [&str; 4] = ["null", "zero", "random", "urandom"];

impl ProcMount {
    /// Mounts `/proc` in `root` for the scripts this thread runs there from now on.
    pub fn new(root: &Path) -> Result<ProcMount, ScriptError> {
        let io_err = |source| ScriptError::Io {
            script: "(mounting /proc)".to_string(),
            root: root.to_path_buf(),
            source,
        };
        if !rustix::process::geteuid().is_root() {
            return Err(ScriptError::NotRoot {
                script: "(mounting /proc)".to_string(),
            });
        }
        let root = std::fs::canonicalize(root).map_err(io_err)?;
        let dir = RootDir::open(&root).map_err(io_err)?;
        dir.mkdir("proc", None, 0o555).map_err(io_err)?;
        let proc_path = cstring(&format!("{}/proc", root.display())).map_err(io_err)?;
        let check = |r: i32| {
            if r == 0 {
                Ok(())
            } else {
                Err(io_err(io::Error::last_os_error()))
            }
        };
        // SAFETY: plain system calls with valid, NUL-terminated arguments; they affect only
        // the calling thread's mount namespace, which unshare made its own.
        unsafe {
            check(crate::mountns::enter_private())?;
            // O_NOFOLLOW: a `proc` symlink shipped by a package is not followed; the mount
            // goes on the directory this descriptor names.
            let fd = libc::open(
                proc_path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(io_err(io::Error::last_os_error()));
            }
            let via = cstring(&format!("/proc/self/fd/{fd}"));
            let mounted = via.map_err(io_err).and_then(|via| {
                let fresh = libc::mount(
                    c"proc".as_ptr(),
                    via.as_ptr(),
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                );
                if fresh == 0 {
                    return Ok(());
                }
                // In a user namespace without a pid namespace of its own (a rootless
                // build, the script host) a fresh proc is refused; the host's, bound
                // in, shows what apk's scripts see as root: the host's processes.
                check(libc::mount(
                    c"/proc".as_ptr(),
                    via.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))
            });
            libc::close(fd);
            mounted?;
        }
        SHARED_PROC.with(|shared| *shared.borrow_mut() = Some(root.clone()));
        let mut mount = ProcMount {
            target: proc_path,
            devices: Vec::new(),
        };
        mount.bind_missing_devices(&root);
        Ok(mount)
    }

    /// In a user namespace the skeleton has no device nodes: bind the host's over empty
    /// files made for the purpose (and removed again on drop), in this thread's mount
    /// namespace only. Best effort: a script without them still runs.
    fn bind_missing_devices(&mut self, root: &Path) {
        let Ok(dir) = RootDir::open(root) else {
            return;
        };
        for name in DEVICES {
            let rel = format!("dev/{name}");
            if !matches!(dir.lstat(&rel), Ok(None)) || dir.touch(&rel, 0o666).is_err() {
                continue;
            }
            let bound = dir
                .open_in(&rel, OFlags::PATH | OFlags::NOFOLLOW, 0)
                .ok()
                .and_then(|fd| {
                    use std::os::fd::AsRawFd;
                    let via = cstring(&format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
                    let host = cstring(&format!("/dev/{name}")).ok()?;
                    // SAFETY: valid NUL-terminated paths; this thread's own namespace.
                    let r = unsafe {
                        libc::mount(
                            host.as_ptr(),
                            via.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND,
                            std::ptr::null(),
                        )
                    };
                    let target = cstring(&format!("{}/{rel}", root.display())).ok()?;
                    (r == 0).then_some(target)
                });
            match (bound, RootDir::open(root)) {
                (Some(target), Ok(handle)) => self.devices.push((target, handle, name)),
                _ => {
                    let _ = dir.remove(&rel);
                }
            }
        }
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        SHARED_PROC.with(|shared| *shared.borrow_mut() = None);
        for (target, dir, name) in self.devices.drain(..) {
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
            let _ = dir.remove(format!("dev/{name}"));
        }
        // SAFETY: a valid NUL-terminated path; detaching cannot fail for a busy mount.
        unsafe {
            libc::umount2(
                self.target.as_ptr(),
                libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW,
            );
        }
    }
}
