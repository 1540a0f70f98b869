//! The sysroot through an id-mapped mount, for sessions whose root is not the host's.
//!
//! With [`IdMap::Range`] the session's uid 0 is an unprivileged host id. Shown as it
//! is, the sysroot (owned by host root) would belong to nobody inside. An id-mapped
//! mount translates instead: a file owned by host 0 appears owned by 0 inside, and what
//! the session's root creates lands owned by 0 in the sysroot, while every other host
//! file (binds, `/sys`) sees only the unprivileged id. The tool, as root, clones the
//! checked sysroot handle into a detached mount (`open_tree`), attaches the map of a
//! throwaway user namespace with the same map (`mount_setattr(MOUNT_ATTR_IDMAP)`), and
//! init moves that mount onto the sysroot inside its namespace (`move_mount`).
//! [`session_map`] chooses the map of a session and falls back, with a warning, to the
//! identity map where the filesystem has no id-mapped mounts.

use super::emulation::Emulation;
use super::UsernsMode;
use crate::report::Reporter;
use crate::rootfs::RootDir;
use crate::userns::IdMap;
use nix::unistd::{fork, ForkResult};
use rustix::mount::OpenTreeFlags;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

// The mount and namespace calls go through rustix; `mount_setattr`, which rustix 1.1
// does not wrap, is the one raw system call (through libc).

/// `mount_setattr`'s flag for an id-mapped mount.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `mount_setattr`'s flag for a read-only mount.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;

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

/// A detached, recursive copy of the sysroot at `root` whose ids go through `map`.
/// Fails where the filesystem (or the kernel) has no id-mapped mounts.
pub(crate) fn sysroot_tree(root: &RootDir, map: &IdMap) -> std::io::Result<OwnedFd> {
    let userns = user_namespace_with(map)?;
    let tree = rustix::mount::open_tree(
        root,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE
            | OpenTreeFlags::AT_EMPTY_PATH,
    )?;
    mount_setattr(&tree, MOUNT_ATTR_IDMAP, Some(&userns))?;
    Ok(tree)
}

/// A user namespace with `map`, held by its descriptor alone: a child process creates
/// it, the map is written, its `/proc/PID/ns/user` opened, and the child ends.
fn user_namespace_with(map: &IdMap) -> std::io::Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (done_r, done_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: enter's process is single-threaded; the child makes only syscalls.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            // SAFETY: no `FILES` flag, so no descriptor table is split from another thread.
            let ok = unsafe {
                rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER).is_ok()
            };
            let _ = nix::unistd::write(&ready_w, if ok { b"y" } else { b"n" });
            let mut byte = [0u8; 1];
            // Waits until the parent has what it needs (EOF).
            let _ = nix::unistd::read(&done_r, &mut byte);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let mut byte = [0u8; 1];
            let got = std::fs::File::from(ready_r).read(&mut byte);
            let result = match got {
                Ok(1) if byte[0] == b'y' => map.write(child).and_then(|()| {
                    std::fs::File::open(format!("/proc/{child}/ns/user")).map(OwnedFd::from)
                }),
                _ => Err(std::io::Error::other("cannot create a user namespace")),
            };
            let _ = std::fs::File::from(done_w).flush();
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

/// Moves the detached `tree` onto the directory `onto` (in the caller's namespace).
pub(crate) fn attach(tree: &impl AsFd, onto: &impl AsFd) -> std::io::Result<()> {
    rustix::mount::move_mount(
        tree,
        "",
        onto,
        "",
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
            | rustix::mount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?;
    Ok(())
}

/// The id map of the session and, for [`IdMap::Range`], the sysroot's id-mapped tree.
pub(crate) fn session_map(
    root: &RootDir,
    mode: UsernsMode,
    emulation: &Emulation,
    reporter: &dyn Reporter,
) -> (IdMap, Option<std::os::fd::OwnedFd>) {
    let wants_userns = matches!(emulation, Emulation::Private { .. });
    let fallback = || IdMap::choose(wants_userns);
    if mode == UsernsMode::Identity || !nix::unistd::geteuid().is_root() {
        return (fallback(), None);
    }
    let why = match IdMap::unprivileged_range() {
        None => "no range of 65536 host ids is free of users and subordinate ranges".to_string(),
        Some(map) => match sysroot_tree(root, &map) {
            Ok(tree) => return (map, Some(tree)),
            Err(e) => format!("cannot show it through an id-mapped mount ({e})"),
        },
    };
    reporter.warn(&format!(
        "`{}`: {why}; the session runs with the identity map: root inside is root on the \
         host, so a `--user` session that reaches root inside (a setuid program, qemu's C \
         flag) reaches root on the host; enter only sysroots and users you trust, or put \
         the sysroot on ext4, xfs, btrfs or tmpfs",
        root.path().display()
    ));
    (fallback(), None)
}

/// The map in words, for `-v`.
pub(crate) fn describe(map: &IdMap) -> String {
    match map {
        IdMap::None => "none (host ids)".into(),
        IdMap::Identity => "identity (root inside is host root)".into(),
        IdMap::Range { base, count } => {
            format!(
                "ids 0-{} inside are host ids {base}-{}",
                count - 1,
                base + (count - 1)
            )
        }
        IdMap::Subordinate { .. } => "the caller's subordinate ids".into(),
        IdMap::Single => "the caller alone, as root".into(),
    }
}
