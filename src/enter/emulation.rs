//! How the sysroot's binaries will run: natively, or through qemu via a private, the
//! host's, or a newly registered global binfmt_misc handler.

use super::{BinfmtMode, EnterError, EnterOptions};
use crate::arch::Arch;
use crate::binfmt::{self, BinfmtError, Entry, Flags, Handler};
use crate::report::Reporter;
use std::path::PathBuf;

/// The host's qemu, bound read-only into the session's `/dev` for the guard to exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuBind {
    /// The host's file.
    pub host: PathBuf,
    /// Where the session sees it (under [`binfmt::QEMU_DIR`]).
    pub inside: PathBuf,
}

/// The decision, made before any namespace exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulation {
    /// The host runs the binaries; `linux32` asks for the 32-bit personality (x86 on x86_64).
    Native {
        /// Run under `PER_LINUX32`.
        linux32: bool,
    },
    /// Register `handler` in the enter's own binfmt_misc instance.
    Private {
        /// The handler to register: the guard with `POCF`, or (in a build without one)
        /// qemu with `OCF`, plus `P` when qemu honours it.
        handler: Handler,
    },
    /// Use the host's table as it is.
    Host {
        /// The handler expected to serve, when it could be read.
        handler: Option<String>,
    },
    /// The handler was registered on the host before entering.
    Global {
        /// Its name.
        name: String,
        /// The qemu its guard runs, when it has one.
        qemu: Option<QemuBind>,
    },
}

impl Emulation {
    /// Whether qemu is involved.
    pub fn is_emulated(&self) -> bool {
        !matches!(self, Emulation::Native { .. })
    }

    /// A short description for `-v`.
    pub fn describe(&self) -> String {
        match self {
            Emulation::Native { linux32: true } => "native (32-bit personality)".into(),
            Emulation::Native { linux32: false } => "native".into(),
            Emulation::Private { handler } => format!(
                "qemu `{}` through a private binfmt_misc entry (flags {}{})",
                handler.registration.interpreter.display(),
                handler.registration.flags,
                if handler.guard.is_some() {
                    ", behind sysroot-mk's guard"
                } else {
                    ""
                }
            ),
            Emulation::Host { handler: Some(h) } => format!("the host's binfmt_misc entry `{h}`"),
            Emulation::Host { handler: None } => "the host's binfmt_misc table".into(),
            Emulation::Global { name, .. } => {
                format!("the host's binfmt_misc entry `{name}` (just registered)")
            }
        }
    }

    /// Whether sysroot-mk's guard stands in front of qemu (which then gets the tool's own
    /// options as arguments, not through the environment).
    pub fn guarded(&self) -> bool {
        self.qemu_bind().is_some()
    }

    /// The qemu the session must show the guard, if any.
    pub fn qemu_bind(&self) -> Option<QemuBind> {
        match self {
            Emulation::Private { handler } => {
                let guard = handler.guard.as_ref()?;
                Some(QemuBind {
                    host: handler.registration.interpreter.clone(),
                    inside: guard.qemus.first()?.clone(),
                })
            }
            Emulation::Global { qemu, .. } => qemu.clone(),
            _ => None,
        }
    }
}

/// Chooses the emulation for `arch` on this host, registering globally when asked to.
pub(crate) fn plan(
    arch: Arch,
    options: &EnterOptions,
    reporter: &dyn Reporter,
) -> Result<Emulation, EnterError> {
    if let Some(host) = Arch::host() {
        if arch.runs_natively_on(host) {
            let linux32 = arch.info().bits == 32 && host.info().bits == 64;
            return Ok(Emulation::Native { linux32 });
        }
    }
    let supported = binfmt::private_instances_supported();
    let handler = || {
        host_handlers(arch)
            .ok()
            .and_then(|h| h.first().map(|e| e.name.clone()))
    };
    let mode = choose_mode(arch, options.binfmt, supported, handler, reporter)?;
    match mode {
        BinfmtMode::Private => {
            let qemu = find_qemu(arch, options, reporter)?;
            let inside = binfmt::qemu_inside(arch);
            Ok(Emulation::Private {
                handler: qemu_handler(arch, &qemu, vec![inside], reporter)?,
            })
        }
        BinfmtMode::Host => host(arch, reporter),
        BinfmtMode::Global => global(arch, options, reporter),
    }
}

/// What `--binfmt` (or its absence) comes to: `private` when the kernel has private
/// instances, else the host's handler (`host_handler` names it) with a warning, else a
/// refusal that explains `--binfmt global` and what it costs.
fn choose_mode(
    arch: Arch,
    requested: Option<BinfmtMode>,
    private_supported: bool,
    host_handler: impl FnOnce() -> Option<String>,
    reporter: &dyn Reporter,
) -> Result<BinfmtMode, EnterError> {
    match requested {
        Some(BinfmtMode::Private) if !private_supported => Err(EnterError::NoEmulation(format!(
            "`--binfmt private` needs Linux >= 6.7 with user namespaces enabled; use \
             `--binfmt host` with a handler for `{arch}` registered on the host, or \
             `--binfmt global` (registers qemu with the C flag for every local user)"
        ))),
        Some(mode) => Ok(mode),
        None if private_supported => Ok(BinfmtMode::Private),
        None => match host_handler() {
            Some(name) => {
                reporter.warn(&format!(
                    "this kernel has no private binfmt_misc instances (Linux >= 6.7 needed); \
                     using the host's handler `{name}`"
                ));
                Ok(BinfmtMode::Host)
            }
            None => Err(EnterError::NoEmulation(format!(
                "this kernel cannot give `enter` a private binfmt_misc instance (Linux >= 6.7 \
                 needed) and the host has no handler for `{arch}`; `--binfmt global` registers \
                 qemu on the host with the C flag, which makes setuid work but lets every local \
                 user become root through qemu; or register without C: \
                 `sysroot-mk binfmt register {arch} --flags OF` (setuid will not work)"
            ))),
        },
    }
}

fn host_handlers(arch: Arch) -> Result<Vec<Entry>, BinfmtError> {
    binfmt::with_host_table(move |table| table.handlers_for(arch))
}

fn host(arch: Arch, reporter: &dyn Reporter) -> Result<Emulation, EnterError> {
    let handlers = match host_handlers(arch) {
        Ok(handlers) => handlers,
        Err(e) => {
            reporter.warn(&format!(
                "cannot read the host's binfmt_misc table ({e}); setuid inside may not work"
            ));
            return Ok(Emulation::Host { handler: None });
        }
    };
    let Some(first) = handlers.first() else {
        return Err(EnterError::NoEmulation(format!(
            "the host has no binfmt_misc handler for `{arch}`; drop `--binfmt host` to use a \
             private one, or register one with `sysroot-mk binfmt register {arch}`"
        )));
    };
    if let Some(bad) = handlers.iter().find(|e| !e.setuid_works()) {
        reporter.warn(&format!(
            "the host's binfmt_misc entry `{}` for `{arch}` has flags `{}` without C: setuid \
             programs (doas, su) will not gain privileges; use the default `--binfmt private`, \
             or re-register with `sysroot-mk binfmt register {arch} --flags OCF`",
            bad.name, bad.flags
        ));
    }
    Ok(Emulation::Host {
        handler: Some(first.name.clone()),
    })
}

fn global(
    arch: Arch,
    options: &EnterOptions,
    reporter: &dyn Reporter,
) -> Result<Emulation, EnterError> {
    let qemu = find_qemu(arch, options, reporter)?;
    let inside = binfmt::qemu_inside(arch);
    // Outside a session the guard finds qemu where the host has it.
    let handler = qemu_handler(arch, &qemu, vec![inside.clone(), qemu.clone()], reporter)?;
    let registration = &handler.registration;
    if binfmt::mount_host_table()? {
        reporter.warn(&format!(
            "mounted the host's binfmt_misc at `{}`",
            binfmt::HOST_MOUNT
        ));
    }
    handler.register_in(&binfmt::Table::at(binfmt::HOST_MOUNT), true)?;
    let exposure = if handler.guard.is_some() {
        "setuid programs of that arch now work for every local user, through sysroot-mk's \
         guard (qemu's QEMU_* variables are ignored for them)"
    } else {
        "every local user can now gain root through qemu"
    };
    reporter.warn(&format!(
        "registered `{}` on the host with flags {}: {exposure}; remove it with \
         `sysroot-mk binfmt unregister {arch}`",
        registration.name, registration.flags
    ));
    let qemu = handler
        .guard
        .is_some()
        .then_some(QemuBind { host: qemu, inside });
    Ok(Emulation::Global {
        name: registration.name.clone(),
        qemu,
    })
}

/// The host's qemu for `arch`, with a warning when it cannot run inside a sysroot.
fn find_qemu(
    arch: Arch,
    options: &EnterOptions,
    reporter: &dyn Reporter,
) -> Result<PathBuf, EnterError> {
    let qemu = binfmt::find_qemu(arch, options.qemu.as_deref())?;
    if binfmt::is_static_elf(&qemu) == Some(false) {
        // qemu runs inside the sysroot, where the host's shared libraries are not.
        reporter.warn(&format!(
            "`{}` is dynamically linked and will not find its libraries inside the sysroot; \
             install Debian's `qemu-user-static` or pass a static qemu with `--qemu`",
            qemu.display()
        ));
    }
    Ok(qemu)
}

/// The handler for `arch`: the guard in front of `qemu` (which it looks for at `qemus`),
/// or, in a build without a guard, qemu itself with `OCF`, plus `P` when qemu honours it.
fn qemu_handler(
    arch: Arch,
    qemu: &std::path::Path,
    qemus: Vec<PathBuf>,
    reporter: &dyn Reporter,
) -> Result<Handler, EnterError> {
    if binfmt::guard_available() {
        // The guard passes argv[0] with `-0`: no need to ask qemu whether it reads `P`.
        return Ok(Handler::new(arch, qemu, Flags::default(), qemus));
    }
    reporter.warn(
        "this build of sysroot-mk has no qemu guard (see the build's warnings): qemu runs \
         setuid programs with the caller's QEMU_* variables, so a user inside can reach \
         root inside, which `--userns identity` makes host root",
    );
    let letters = if binfmt::qemu_preserves_argv0(qemu) {
        "POCF"
    } else {
        "OCF"
    };
    Ok(Handler::new(arch, qemu, Flags::parse(letters)?, qemus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Warnings(Mutex<Vec<String>>);
    impl Reporter for Warnings {
        fn warn(&self, message: &str) {
            self.0.lock().unwrap().push(message.to_string());
        }
    }

    fn aarch64() -> Arch {
        Arch::from_name("aarch64").unwrap()
    }

    #[test]
    fn private_is_the_default_when_the_kernel_has_it() {
        let w = Warnings::default();
        let mode = choose_mode(aarch64(), None, true, || panic!("host not consulted"), &w);
        assert_eq!(mode.unwrap(), BinfmtMode::Private);
        assert!(w.0.lock().unwrap().is_empty());
    }

    #[test]
    fn old_kernels_fall_back_to_a_host_handler_with_a_warning() {
        let w = Warnings::default();
        let mode = choose_mode(aarch64(), None, false, || Some("qemu-aarch64".into()), &w);
        assert_eq!(mode.unwrap(), BinfmtMode::Host);
        assert!(w.0.lock().unwrap()[0].contains("`qemu-aarch64`"));
    }

    #[test]
    fn old_kernels_without_a_handler_are_refused_with_global_and_its_cost() {
        let w = Warnings::default();
        let err = choose_mode(aarch64(), None, false, || None, &w)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--binfmt global") && err.contains("root through qemu"),
            "{err}"
        );
    }

    #[test]
    fn explicit_private_on_an_old_kernel_is_refused() {
        let w = Warnings::default();
        let err = choose_mode(aarch64(), Some(BinfmtMode::Private), false, || None, &w);
        assert!(err.unwrap_err().to_string().contains("6.7"));
        let ok = choose_mode(aarch64(), Some(BinfmtMode::Host), false, || None, &w);
        assert_eq!(ok.unwrap(), BinfmtMode::Host);
    }
}
