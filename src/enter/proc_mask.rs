//! What `/proc` and `/sys` show inside, trimmed as container runtimes do: the kernel's
//! knobs read-only (`/proc/sys`, `/proc/sysrq-trigger`, `/sys`), and files that expose
//! the host's memory, keys or timers masked (`/dev/null` bound over files, an empty
//! read-only tmpfs over directories).
//!
//! These are not the boundary against the session's root: a user namespace's root may
//! unmount what its own mount namespace mounted. The boundary is the id map (root
//! inside is an unprivileged id outside, so the host's sysctls refuse it); these keep
//! the identity-mapped fallback and mistakes inside from reaching the host's knobs.

use super::idmapped::{mount_setattr, MOUNT_ATTR_RDONLY};
use super::mounts::{fd_path, mount_at};
use super::namespaces::{Failure, Step};
use crate::rootfs::RootDir;
use nix::mount::MsFlags;
use rustix::fs::OFlags;
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
