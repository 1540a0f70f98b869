//! The qemu guard: a small interpreter of ours (`guard/main.rs`, built by build.rs) that
//! binfmt_misc runs in front of qemu.
//!
//! With flag `C` a setuid binary starts qemu with the binary's credentials, and qemu
//! trusts `QEMU_LD_PREFIX`, `QEMU_LOG_FILENAME` and the rest of its environment. The
//! guard, registered with `POCF` in qemu's place, removes those variables on a secure
//! execution (`AT_SECURE`), hands qemu the kernel's descriptor of the binary instead of
//! its path, and execs qemu from a place the session's users cannot write
//! ([`QEMU_DIR`], bound read-only by `enter`). Options of the tool's own (armhf's
//! `-cpu`) are written into the image, not passed through the environment.
//!
//! The image is written to a sealed memfd and registered with `F`, so the kernel keeps
//! its own reference: nothing inside the sysroot names or can replace it.

use super::{io_err, BinfmtError, Flags, Registration, Table};
use crate::arch::Arch;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The guard built for this host; empty where build.rs could not build one.
static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/qemu-guard"));
/// Starts the configuration block of the image (the guard's `SYSROOT_MK_GUARD_CONFIG`).
const MARKER: &[u8] = b"SYSROOT-MK-GUARD-CONFIG-1\0";
/// The size of that block, marker included.
const CONFIG_LEN: usize = 1024;

/// The directory of a session's `/dev` where `enter` binds qemu for the guard.
pub const QEMU_DIR: &str = "/dev/.sysroot-mk";

/// Whether this build has a guard.
pub fn guard_available() -> bool {
    !IMAGE.is_empty()
}

/// Where a session shows `arch`'s qemu: `/dev/.sysroot-mk/qemu-<name>`.
pub fn qemu_inside(arch: Arch) -> PathBuf {
    Path::new(QEMU_DIR).join(format!("qemu-{}", arch.info().qemu))
}

/// What the guard runs: the first qemu of `qemus` that exists, with `args` before the
/// binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// Absolute paths, tried in order (`ENOENT` moves on to the next).
    pub qemus: Vec<PathBuf>,
    /// qemu options (e.g. `-cpu arm1176`).
    pub args: Vec<String>,
}

/// A qemu handler with or without the guard in front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// The entry; its interpreter is the host's qemu, which the guard replaces when set.
    pub registration: Registration,
    /// The guard, when this build has one.
    pub guard: Option<Guard>,
}

impl Guard {
    /// The guard image with this configuration written in.
    pub fn image(&self) -> Result<Vec<u8>, BinfmtError> {
        let invalid = |reason: String| BinfmtError::Guard(reason);
        if IMAGE.is_empty() {
            return Err(invalid("this build of sysroot-mk has no guard".into()));
        }
        let mut config = Vec::new();
        let entries = self
            .qemus
            .iter()
            .map(|q| (b'q', q.as_os_str().as_encoded_bytes()))
            .chain(self.args.iter().map(|a| (b'a', a.as_bytes())));
        for (kind, value) in entries {
            if value.is_empty() || value.contains(&0) {
                return Err(invalid("an empty entry or one with a NUL byte".into()));
            }
            config.push(kind);
            config.extend_from_slice(value);
            config.push(0);
        }
        // The guard stops at an empty entry: the block's zeros after the last one.
        if MARKER.len() + config.len() >= CONFIG_LEN {
            return Err(invalid(format!(
                "its configuration is {} bytes, more than {}",
                config.len(),
                CONFIG_LEN - MARKER.len() - 1
            )));
        }
        let at = find_marker(IMAGE).ok_or_else(|| invalid("no configuration block".into()))?;
        let mut image = IMAGE.to_vec();
        image[at + MARKER.len()..at + MARKER.len() + config.len()].copy_from_slice(&config);
        Ok(image)
    }

    /// The image in a sealed, executable memfd, for registration with `F`.
    pub fn memfd(&self) -> Result<OwnedFd, BinfmtError> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let image = self.image()?;
        let what = Path::new("memfd:sysroot-mk-qemu-guard");
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        // MFD_EXEC (Linux >= 6.3) keeps it executable where vm.memfd_noexec=1 would not.
        let fd = rustix::fs::memfd_create("sysroot-mk-qemu-guard", flags | MemfdFlags::EXEC)
            .or_else(|_| rustix::fs::memfd_create("sysroot-mk-qemu-guard", flags))
            .map_err(|e| io_err("create", what)(e.into()))?;
        let mut file = std::fs::File::from(fd);
        std::io::Write::write_all(&mut file, &image).map_err(io_err("write", what))?;
        let seals = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
        rustix::fs::fcntl_add_seals(&file, seals).map_err(|e| io_err("seal", what)(e.into()))?;
        Ok(file.into())
    }
}

fn find_marker(image: &[u8]) -> Option<usize> {
    let mut found = image
        .windows(MARKER.len())
        .enumerate()
        .filter(|(_, w)| *w == MARKER);
    let (at, _) = found.next()?;
    // Two blocks would mean the marker also occurs as data: patch neither.
    match found.next() {
        None if at + CONFIG_LEN <= image.len() => Some(at),
        _ => None,
    }
}

impl Handler {
    /// The handler for `qemu` (a host path) serving `arch`: through the guard (flags
    /// `POCF`; the guard passes argv[0] to qemu itself) when this build has one, else
    /// qemu directly with `flags`. `qemus` are where the guard looks for qemu.
    pub fn new(arch: Arch, qemu: &Path, flags: Flags, qemus: Vec<PathBuf>) -> Handler {
        if !guard_available() {
            return Handler {
                registration: Registration::for_arch(arch, qemu, flags),
                guard: None,
            };
        }
        let mut args = Vec::new();
        if arch.name() == "armhf" {
            // qemu's default arm CPU is a v7: armhf (ARMv6) says `armv6l` only with an ARM1176.
            args.extend(["-cpu".to_string(), "arm1176".to_string()]);
        }
        let all = Flags {
            preserve_argv0: true,
            open_binary: true,
            credentials: true,
            fix_binary: true,
        };
        Handler {
            registration: Registration::for_arch(arch, qemu, all),
            guard: Some(Guard { qemus, args }),
        }
    }

    /// Registers it in `table` (replacing an entry of its name when `replace`).
    pub fn register_in(&self, table: &Table, replace: bool) -> Result<(), BinfmtError> {
        let Some(guard) = &self.guard else {
            return if replace {
                table.replace(&self.registration)
            } else {
                table.register(&self.registration)
            };
        };
        let memfd = guard.memfd()?;
        let registration = Registration {
            interpreter: PathBuf::from(format!("/proc/self/fd/{}", memfd.as_raw_fd())),
            ..self.registration.clone()
        };
        // `F`: the kernel opens the memfd now and keeps it; ours may close after.
        if replace {
            table.replace(&registration)
        } else {
            table.register(&registration)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aarch64() -> Arch {
        Arch::from_name("aarch64").unwrap()
    }

    #[test]
    fn the_configuration_lands_after_the_marker_and_is_bounded() {
        if !guard_available() {
            return eprintln!("skipped: this build has no guard");
        }
        let guard = Guard {
            qemus: vec![qemu_inside(aarch64())],
            args: vec!["-cpu".into(), "arm1176".into()],
        };
        let image = guard.image().unwrap();
        let at = find_marker(&image).unwrap();
        let block = &image[at + MARKER.len()..at + CONFIG_LEN];
        let text = b"q/dev/.sysroot-mk/qemu-aarch64\0a-cpu\0aarm1176\0\0";
        assert_eq!(&block[..text.len()], text);
        let long = Guard {
            qemus: vec![PathBuf::from(format!("/{}", "x".repeat(CONFIG_LEN)))],
            args: vec![],
        };
        assert!(long.image().unwrap_err().to_string().contains("more than"));
        let nul = Guard {
            qemus: vec![],
            args: vec!["a\0b".into()],
        };
        assert!(nul.image().is_err());
    }

    #[test]
    fn with_a_guard_every_arch_gets_pocf_and_only_armhf_a_cpu() {
        for arch in Arch::all() {
            let h = Handler::new(arch, Path::new("/q"), Flags::default(), vec![]);
            match &h.guard {
                Some(guard) => {
                    assert_eq!(h.registration.flags.to_string(), "POCF");
                    assert_eq!(guard.args.is_empty(), arch.name() != "armhf", "{arch}");
                }
                None => assert_eq!(h.registration.flags, Flags::default()),
            }
        }
    }
}
