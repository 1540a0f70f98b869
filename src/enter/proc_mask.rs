//! What `/proc` and `/sys` show inside, trimmed as container runtimes do: the kernel's
//! knobs read-only (`/proc/sys`, `/proc/sysrq-trigger`, `/sys`), and files that expose
//! the host's memory, keys or timers masked (`/dev/null` bound over files, an empty
//! read-only tmpfs over directories).
//!
//! These are not the boundary against the session's root: a user namespace's root may
//! unmount what its own mount namespace mounted. The boundary is the id map (root
//! inside is an unprivileged id outside, so the host's sysctls refuse it); these keep
//! the identity-mapped fallback and mistakes inside from reaching the host's knobs.

use super::mounts::{fd_path, mount_at};
use super::namespaces::{Failure, Step};
use crate::rootfs::RootDir;
use nix::mount::MsFlags;
use rustix::fs::OFlags;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

/// Made read-only (with everything mounted below them).
const READ_ONLY: [&str; 5] = [
    "proc/sys",
    "proc/sysrq-trigger",
    "proc/bus",
    "proc/fs",
    "proc/irq",
];
/// Files hidden behind `/dev/null`.
const MASKED_FILES: [&str; 6] = [
    "proc/kcore",
    "proc/keys",
    "proc/timer_list",
    "proc/sched_debug",
    "proc/latency_stats",
    "proc/timer_stats",
];
/// Directories hidden behind an empty read-only tmpfs.
const MASKED_DIRS: [&str; 4] = ["proc/acpi", "proc/scsi", "proc/asound", "sys/firmware"];

/// `mount_setattr`'s flag for a read-only mount.
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets `attr_set` on the mount at `fd` (and every mount below it), with the user
/// namespace `userns` for [`MOUNT_ATTR_IDMAP`].
pub(crate) fn mount_setattr(
    fd: &impl AsFd,
    attr_set: u64,
    userns: Option<&impl AsFd>,
) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |u| u.as_fd().as_raw_fd() as u64),
    };
    // SAFETY: a valid descriptor, an empty C string and a struct of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Opens `rel` as a path; `None` when this kernel has no such file.
fn existing(top: &RootDir, rel: &str) -> Result<Option<std::os::fd::OwnedFd>, Failure> {
    match top.open_in(rel, OFlags::PATH, 0) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).step(&format!("open `/{rel}`")),
    }
}

/// Makes the mount at `rel` read-only, together with everything mounted below it.
pub(crate) fn read_only(top: &RootDir, rel: &str) -> Result<(), Failure> {
    let what = format!("make `/{rel}` read-only");
    let Some(fd) = existing(top, rel)? else {
        return Ok(());
    };
    mount_setattr(&fd, MOUNT_ATTR_RDONLY, None::<&std::os::fd::OwnedFd>).step(&what)
}

/// Binds `rel` on itself (so that it is a mount of its own) and makes that read-only.
fn read_only_bind(top: &RootDir, rel: &str) -> Result<(), Failure> {
    let what = format!("make `/{rel}` read-only");
    let Some(fd) = existing(top, rel)? else {
        return Ok(());
    };
    mount_at(
        Some(&fd_path(&fd)),
        &fd,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .step(&what)?;
    // The handle opened before names what is now underneath; the bind is on top.
    read_only(top, rel)
}

/// Applies the read-only and masked paths of `/proc` (mounted, binfmt_misc registered).
pub(crate) fn trim_proc(top: &RootDir) -> Result<(), Failure> {
    for rel in READ_ONLY {
        read_only_bind(top, rel)?;
    }
    for rel in MASKED_FILES {
        if let Some(fd) = existing(top, rel)? {
            mount_at(
                Some(Path::new("/dev/null")),
                &fd,
                None,
                MsFlags::MS_BIND,
                None,
            )
            .step(&format!("mask `/{rel}`"))?;
        }
    }
    Ok(())
}

/// Hides the directories of [`MASKED_DIRS`] (`/sys` must be mounted).
pub(crate) fn mask_dirs(top: &RootDir) -> Result<(), Failure> {
    for rel in MASKED_DIRS {
        if let Some(fd) = existing(top, rel)? {
            mount_at(
                Some(Path::new("tmpfs")),
                &fd,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0,mode=555"),
            )
            .step(&format!("mask `/{rel}`"))?;
        }
    }
    Ok(())
}
