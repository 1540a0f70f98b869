//! The sysroot's mounts: planned (mount points made) in the tool, carried out by init
//! inside the new mount namespace, ending with `pivot_root` into the sysroot.
//!
//! Every target is opened with `RESOLVE_IN_ROOT` and mounted on through its
//! `/proc/self/fd` path, so a symlink in the sysroot can never redirect a mount to a
//! host path. `/dev` is a small tmpfs with the host's harmless nodes bound in (a user
//! namespace may not create device nodes), plus a fresh `devpts` instance, plus the
//! host's qemu, bound read-only where the qemu guard execs it: the directory belongs to
//! the session's root, so no other user inside can put anything of theirs there.

use super::emulation::{Emulation, QemuBind};
use super::mount_points::{Kind, MountPoints};
use super::namespaces::{Failure, Step};
use super::{idmapped, proc_mask};
use super::{Bind, EnterError, EnterOptions};
use crate::binfmt::{self, Handler, Table};
use crate::report::Reporter;
use crate::rootfs::RootDir;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Standard directories every session mounts on.
const DIRS: [&str; 4] = ["proc", "sys", "dev", "run"];
/// Device nodes bound from the host's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// The host's resolver configuration, shown inside while the session lasts.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What init mounts, decided by the tool.
#[derive(Debug, Clone)]
pub(crate) struct MountPlan {
    /// Bind the host's resolv.conf over the sysroot's.
    pub resolv_conf: bool,
    /// `--bind`s, their targets made.
    pub binds: Vec<Bind>,
    /// The private binfmt_misc handler to register.
    pub private: Option<Handler>,
    /// qemu for the guard, bound into `/dev`.
    pub qemu: Option<QemuBind>,
}

/// Makes the mount points (remembered in `made` for removal) and returns the plan.
pub(crate) fn prepare(
    root: &Path,
    made: &mut MountPoints<'_>,
    options: &EnterOptions,
    emulation: &Emulation,
    reporter: &dyn Reporter,
) -> Result<MountPlan, EnterError> {
    let mut ensure = |rel: &Path, kind| {
        made.ensure(rel, kind)
            .map_err(|source| EnterError::MountPoint {
                root: root.to_path_buf(),
                path: rel.to_path_buf(),
                source,
            })
    };
    for dir in DIRS {
        ensure(Path::new(dir), Kind::Dir)?;
    }
    // Name resolution is a convenience: a sysroot whose resolv.conf is a dangling
    // symlink (resolvconf, systemd-resolved) keeps it, with a warning.
    let resolv_conf = Path::new(RESOLV_CONF).is_file()
        && match ensure(Path::new(RESOLV_CONF), Kind::File) {
            Ok(()) => true,
            Err(e) => {
                reporter.warn(&format!(
                    "{e}; the host's name servers stay invisible inside"
                ));
                false
            }
        };
    for bind in &options.binds {
        let kind = if bind.source.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        ensure(&bind.target, kind)?;
    }
    let private = match emulation {
        Emulation::Private { handler } => Some(handler.clone()),
        _ => None,
    };
    Ok(MountPlan {
        resolv_conf,
        binds: options.binds.clone(),
        private,
        qemu: emulation.qemu_bind(),
    })
}

/// A path naming an open file through `/proc/self/fd`, for syscalls that take paths
/// (mount). It stays valid as long as `fd` is open.
pub(crate) fn fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

pub(crate) fn mount_at(
    source: Option<&Path>,
    target: &impl AsFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    mount(source, &fd_path(target), fstype, flags, data)
}

fn target(root: &RootDir, rel: &str) -> Result<OwnedFd, Failure> {
    root.open_in(rel, OFlags::PATH, 0)
        .step(&format!("open the mount point `/{rel}`"))
}

/// Carries the plan out inside the new namespaces and pivots into the sysroot.
/// `ids_mapped` says whether group 5 (tty) exists in this user namespace.
pub(crate) fn setup(
    root: &Path,
    root_id: (u64, u64),
    tree: Option<OwnedFd>,
    plan: &MountPlan,
    ids_mapped: bool,
) -> Result<(), Failure> {
    let none = None::<&Path>;
    mount(
        none,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .step("make the mounts private")?;
    // pivot_root wants the new root to be a mount point: bind the sysroot on itself.
    // The tool's handle belongs to the host's mount namespace, where no mount of this
    // one can go: the path is opened again here and must still be the directory the tool
    // checked (a rename in a writable parent would otherwise swap it).
    let first = same_root(root, root_id)?;
    let top = match tree {
        // The id-mapped copy of the checked handle goes over the sysroot: it is the new root.
        Some(tree) => {
            idmapped::attach(&tree, &first).step("mount the id-mapped sysroot")?;
            RootDir::open(&fd_path(&tree)).step("open the id-mapped sysroot")?
        }
        None => {
            mount_at(
                Some(&fd_path(&first)),
                &first,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .step("bind the sysroot on itself")?;
            same_root(root, root_id)?
        }
    };
    drop(first);
    let top = &top;

    let fs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_at(
        Some(Path::new("proc")),
        &target(top, "proc")?,
        Some("proc"),
        fs_flags,
        None,
    )
    .step("mount `/proc`")?;
    if let Some(handler) = &plan.private {
        // Kept mounted inside: an instance's entries die with its last mount.
        let dir = target(top, "proc/sys/fs/binfmt_misc")?;
        binfmt::mount_instance(&fd_path(&dir)).step("mount a private binfmt_misc instance")?;
        let dir = target(top, "proc/sys/fs/binfmt_misc")?;
        handler
            .register_in(&Table::at(fd_path(&dir)), false)
            .step(&format!(
                "register `{}` in the private binfmt_misc",
                handler.registration.name
            ))?;
        proc_mask::read_only(top, "proc/sys/fs/binfmt_misc")?;
    }
    // After the registration: the instance lives under `/proc/sys`, read-only from here.
    proc_mask::trim_proc(top)?;
    let sys = target(top, "sys")?;
    // A fresh sysfs needs a network namespace when in a user namespace; keeping the
    // host's network (for apk), bind the host's instead.
    if mount_at(
        Some(Path::new("sysfs")),
        &sys,
        Some("sysfs"),
        fs_flags | MsFlags::MS_RDONLY,
        None,
    )
    .is_err()
    {
        mount_at(
            Some(Path::new("/sys")),
            &sys,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .step("bind `/sys`")?;
    }
    // The host's /sys bound in a user namespace arrives read-write.
    proc_mask::read_only(top, "sys")?;
    proc_mask::mask_dirs(top)?;
    mount_dev(top, ids_mapped)?;
    if let Some(qemu) = &plan.qemu {
        bind_qemu(top, qemu)?;
    }
    mount_at(
        Some(Path::new("tmpfs")),
        &target(top, "run")?,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )
    .step("mount `/run`")?;
    if plan.resolv_conf {
        bind(Path::new(RESOLV_CONF), top, Path::new(RESOLV_CONF), true)?;
    }
    for b in &plan.binds {
        bind(&b.source, top, &b.target, b.read_only)?;
    }
    pivot(top)
}

/// Opens the sysroot at `root` and checks it is the inode `id` (device, inode).
fn same_root(root: &Path, id: (u64, u64)) -> Result<RootDir, Failure> {
    let dir = RootDir::open(root).step("open the sysroot")?;
    let st = rustix::fs::fstat(&dir).step("open the sysroot")?;
    if (st.st_dev, st.st_ino) != id {
        return Err(Failure {
            step: "open the sysroot: it was replaced after it was checked".into(),
            errno: libc::ESTALE,
        });
    }
    Ok(dir)
}

fn mount_dev(top: &RootDir, ids_mapped: bool) -> Result<(), Failure> {
    mount_at(
        Some(Path::new("tmpfs")),
        &target(top, "dev")?,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=1m"),
    )
    .step("mount `/dev`")?;
    let dev = target(top, "dev")?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC;
        drop(
            rustix::fs::openat(&dev, name, flags, Mode::from_raw_mode(0o666))
                .step("create a node in `/dev`")?,
        );
        let node = rustix::fs::openat(&dev, name, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .step("open a node in `/dev`")?;
        mount_at(Some(&host), &node, None, MsFlags::MS_BIND, None)
            .step(&format!("bind `/dev/{name}`"))?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        rustix::fs::symlinkat(to, &dev, link).step(&format!("link `/dev/{link}`"))?;
    }
    for dir in ["pts", "shm"] {
        rustix::fs::mkdirat(&dev, dir, Mode::from_raw_mode(0o755))
            .step(&format!("create `/dev/{dir}`"))?;
    }
    let gid = if ids_mapped { ",gid=5" } else { "" };
    mount_at(
        Some(Path::new("devpts")),
        &target(top, "dev/pts")?,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&format!("newinstance,ptmxmode=0666,mode=620{gid}")),
    )
    .step("mount `/dev/pts`")?;
    mount_at(
        Some(Path::new("tmpfs")),
        &target(top, "dev/shm")?,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .step("mount `/dev/shm`")
}

/// Binds the host's qemu read-only at `qemu.inside` (under `/dev`, which this namespace
/// just made): the guard execs it by that path.
fn bind_qemu(top: &RootDir, qemu: &QemuBind) -> Result<(), Failure> {
    let rel = qemu.inside.strip_prefix("/").unwrap_or(&qemu.inside);
    let what = format!("create `{}`", qemu.inside.display());
    if let Some(parent) = rel.parent() {
        let dir = target(top, "dev")?;
        let sub = parent.strip_prefix("dev").unwrap_or(parent);
        if !sub.as_os_str().is_empty() {
            rustix::fs::mkdirat(&dir, sub, Mode::from_raw_mode(0o755)).step(&what)?;
        }
    }
    let dev = target(top, "dev")?;
    let name = rel.strip_prefix("dev").unwrap_or(rel);
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC;
    drop(rustix::fs::openat(&dev, name, flags, Mode::from_raw_mode(0o755)).step(&what)?);
    bind(&qemu.host, top, rel, true)
}

fn bind(source: &Path, top: &RootDir, rel: &Path, read_only: bool) -> Result<(), Failure> {
    let what = format!("bind `{}` on `{}`", source.display(), rel.display());
    let dst = top.open_in(rel, OFlags::PATH, 0).step(&what)?;
    mount_at(
        Some(source),
        &dst,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .step(&what)?;
    if read_only {
        let dst = top.open_in(rel, OFlags::PATH, 0).step(&what)?;
        // In a user namespace a remount must keep the flags the source mount locked.
        let kept = nix::sys::statvfs::statvfs(&fd_path(&dst))
            .map(|st| locked_flags(st.flags()))
            .unwrap_or(MsFlags::empty());
        mount_at(
            None,
            &dst,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept,
            None,
        )
        .step(&format!("make `{}` read-only", rel.display()))?;
    }
    Ok(())
}

fn locked_flags(st: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let mut flags = MsFlags::empty();
    for (f, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if st.contains(f) {
            flags |= m;
        }
    }
    flags
}

/// Makes the sysroot `/` and detaches the host's tree from this namespace.
fn pivot(top: &RootDir) -> Result<(), Failure> {
    rustix::process::fchdir(top).step("enter the sysroot")?;
    nix::unistd::pivot_root(".", ".").step("pivot_root into the sysroot")?;
    umount2(".", MntFlags::MNT_DETACH).step("detach the host's tree")?;
    nix::unistd::chdir("/").step("enter the sysroot")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sysroot_swapped_after_the_check_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("root");
        std::fs::create_dir(&path).unwrap();
        let checked = RootDir::open(&path).unwrap();
        let st = rustix::fs::fstat(&checked).unwrap();
        let id = (st.st_dev, st.st_ino);
        assert!(same_root(&path, id).is_ok());
        // What a rename in a writable parent does between the tool's check and init.
        std::fs::rename(&path, parent.path().join("moved")).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = same_root(&path, id).unwrap_err();
        assert_eq!(err.errno, libc::ESTALE);
        assert!(err.step.contains("replaced"), "{}", err.step);
    }
}
