//! `/proc` mounted once in the root for all the scripts of a build.

use std::ffi::CString;
use std::io::{self};
use std::path::{Path, PathBuf};

use crate::rootfs::RootDir;

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
}

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
        Ok(ProcMount { target: proc_path })
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        SHARED_PROC.with(|shared| *shared.borrow_mut() = None);
        // SAFETY: a valid NUL-terminated path; detaching cannot fail for a busy mount.
        unsafe {
            libc::umount2(
                self.target.as_ptr(),
                libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW,
            );
        }
    }
}
