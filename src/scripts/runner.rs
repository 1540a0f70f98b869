//! The one way package scripts get run in a root: [`Runner`].
//!
//! A build chooses its runner once, from the target arch and its own privileges:
//!
//! - **direct**: this process forks a chrooted child (native arch, running as root or
//!   as root of the user namespace a rootless build entered);
//! - **host**: a helper process ([`super::host`], this binary re-executed) inside a user
//!   namespace of its own, with qemu registered in a private binfmt_misc instance
//!   (foreign arch), or with the caller's subordinate ids (a non-root caller);
//! - **defer**: the scripts cannot run here (`--no-scripts`, no qemu, no usable
//!   binfmt_misc): they are recorded in [`super::pending`] for `sysroot-mk enter`.
//!
//! All three take the same requests (script, argv) in the same order, so the order,
//! arguments and `f:s` bookkeeping of apk hold whichever runs them.

use std::io;
use std::path::{Path, PathBuf};

use super::host::ScriptHost;
use super::pending::PendingScript;
use super::{exec_here, ProcMount, ScriptError, ScriptOutcome};
use crate::arch::Arch;
use crate::binfmt::{self, Flags, Registration};
use crate::db::ScriptAction;
use crate::report::Reporter;

/// Why scripts are recorded instead of run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeferReason {
    /// `--no-scripts`.
    NoScripts,
    /// The arch is foreign and no qemu for it was found.
    NoQemu(String),
    /// The arch is foreign and neither a private binfmt_misc instance nor a host
    /// handler can run its binaries here.
    NoBinfmt(String),
    /// A user namespace could not be made (non-root caller).
    NoNamespace(String),
}

impl std::fmt::Display for DeferReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeferReason::NoScripts => f.write_str("`--no-scripts` was given"),
            DeferReason::NoQemu(why)
            | DeferReason::NoBinfmt(why)
            | DeferReason::NoNamespace(why) => f.write_str(why),
        }
    }
}

/// Runs package scripts in a root; see the module documentation.
#[derive(Debug)]
pub enum Runner {
    /// A chrooted child of this process; `/proc` from the held mount, if any.
    Direct {
        /// `/proc` mounted once for all the scripts of this thread.
        proc_mount: Option<ProcMount>,
    },
    /// A helper process in a user namespace, with qemu where the arch is foreign.
    Host(ScriptHost),
    /// One `sysroot-mk enter` session per script, as the session's root: for scripts
    /// read back from an existing sysroot (pending ones), whose bytes nobody vouches for
    /// any more, so they get no more power than a shell inside it would.
    Session {
        /// The sysroot's arch.
        arch: Arch,
    },
    /// Nothing runs; requests are recorded in order.
    Defer {
        /// Why.
        reason: DeferReason,
        /// The requests so far.
        pending: Vec<PendingScript>,
    },
}

impl Runner {
    /// A direct runner without a shared `/proc` (each script mounts its own).
    pub fn direct() -> Runner {
        Runner::Direct { proc_mount: None }
    }

    /// A runner that executes each script in an `enter` session of `arch` (see
    /// [`Runner::Session`]). The caller must be single-threaded, as for `enter::run`.
    pub fn session(arch: Arch) -> Runner {
        Runner::Session { arch }
    }

    /// A runner that records every request.
    pub fn defer(reason: DeferReason) -> Runner {
        Runner::Defer {
            reason,
            pending: Vec::new(),
        }
    }

    /// The runner a build of `arch` into `root` uses; warns, through `reporter`, when
    /// scripts will be deferred. Must be called on the thread that runs the scripts.
    pub fn for_build(
        root: &Path,
        arch: Arch,
        no_scripts: bool,
        reporter: &dyn Reporter,
    ) -> Result<Runner, ScriptError> {
        if no_scripts {
            return Ok(Runner::defer(DeferReason::NoScripts));
        }
        match Runner::for_root(root, arch, reporter) {
            Ok(runner) => Ok(runner),
            Err(reason) => Ok(Runner::defer(reason)),
        }
    }

    /// A runner that can execute scripts of `arch` in `root` now, or why there is none.
    pub fn for_root(
        root: &Path,
        arch: Arch,
        reporter: &dyn Reporter,
    ) -> Result<Runner, DeferReason> {
        let native = Arch::host().is_some_and(|host| arch.runs_natively_on(host));
        let root_here = rustix::process::geteuid().is_root();
        if native && root_here {
            let proc_mount = ProcMount::new(root).map_err(|e| {
                DeferReason::NoNamespace(format!(
                    "`/proc` cannot be mounted for the scripts: {}",
                    crate::report::error_chain(&e)
                ))
            })?;
            return Ok(Runner::Direct {
                proc_mount: Some(proc_mount),
            });
        }
        if native {
            return ScriptHost::start(root, None)
                .map(Runner::Host)
                .map_err(|e| DeferReason::NoNamespace(crate::report::error_chain(&e)));
        }
        let qemu = binfmt::find_qemu(arch, None).map_err(|e| {
            DeferReason::NoQemu(format!(
                "`{arch}` is foreign to this host and no qemu for it is installed ({}); \
                 install `qemu-user-static`",
                crate::report::error_chain(&e)
            ))
        })?;
        if binfmt::private_instances_supported() {
            let letters = if binfmt::qemu_preserves_argv0(&qemu) {
                "POCF"
            } else {
                "OCF"
            };
            let flags = Flags::parse(letters).map_err(|e| DeferReason::NoBinfmt(e.to_string()))?;
            let registration = Registration::for_arch(arch, &qemu, flags);
            match ScriptHost::start(root, Some((arch, &registration))) {
                Ok(host) => return Ok(Runner::Host(host)),
                Err(e) => reporter.warn(&format!(
                    "cannot run `{arch}` scripts through a private binfmt_misc instance: {}",
                    crate::report::error_chain(&e)
                )),
            }
        }
        // Older kernels: the host's own handler serves, when there is one and this
        // process may chroot.
        let handler = binfmt::with_host_table(|table| table.handlers_for(arch))
            .ok()
            .and_then(|handlers| handlers.into_iter().next());
        match handler {
            Some(entry) if root_here => {
                reporter.info(&format!(
                    "running `{arch}` scripts through the host's binfmt_misc entry `{}`",
                    entry.name
                ));
                let proc_mount = ProcMount::new(root)
                    .map_err(|e| DeferReason::NoBinfmt(crate::report::error_chain(&e)))?;
                Ok(Runner::Direct {
                    proc_mount: Some(proc_mount),
                })
            }
            _ => Err(DeferReason::NoBinfmt(format!(
                "`{arch}` binaries cannot run here: this kernel has no private binfmt_misc \
                 instances (Linux >= 6.7) and the host has no handler for `{arch}` \
                 (`sysroot-mk binfmt register {arch}` adds one)"
            ))),
        }
    }

    /// How many scripts a fresh install of `packages` (whose `.apk` files are `files`,
    /// same order) runs with this runner: their pre- and post-install scripts and the
    /// triggers of packages with trigger globs, as `install_plan` and
    /// [`Runner::run_triggers`] run them (none for `I:0` packages); 0 when deferring.
    /// Read ahead of verification, for a progress total only.
    pub fn planned_scripts(&self, packages: &[crate::index::Package], files: &[PathBuf]) -> usize {
        if !self.runs() {
            return 0;
        }
        let counts = |(pkg, file): (&crate::index::Package, &PathBuf)| {
            if pkg.installed_size == 0 {
                return 0;
            }
            let Ok((info, actions)) = crate::package::peek_control(file) else {
                return 0;
            };
            actions
                .iter()
                .filter(|a| match a.as_str() {
                    "pre-install" | "post-install" => true,
                    "trigger" => !info.triggers.is_empty(),
                    _ => false,
                })
                .count()
        };
        packages.iter().zip(files).map(counts).sum()
    }

    /// Whether scripts run now (rather than being recorded).
    pub fn runs(&self) -> bool {
        !matches!(self, Runner::Defer { .. })
    }

    /// Why scripts are deferred, if they are.
    pub fn deferred_because(&self) -> Option<&DeferReason> {
        match self {
            Runner::Defer { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Records the request when deferring; returns whether it did.
    pub(super) fn record(&mut self, package: &str, action: ScriptAction, args: &[String]) -> bool {
        match self {
            Runner::Defer { pending, .. } => {
                pending.push(PendingScript {
                    package: package.to_string(),
                    action,
                    args: args.to_vec(),
                });
                true
            }
            _ => false,
        }
    }

    /// Executes `program` (inside `root`) with `argv`.
    pub(super) fn exec(
        &mut self,
        root: &Path,
        program: &str,
        argv: &[String],
        reporter: &dyn Reporter,
    ) -> io::Result<ScriptOutcome> {
        match self {
            Runner::Session { arch } => in_session(root, *arch, program, argv, reporter),
            Runner::Direct { .. } => {
                if !rustix::process::geteuid().is_root() {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "running package scripts in this process needs root (chroot, mount)",
                    ));
                }
                exec_here(root, program, argv)
            }
            Runner::Host(host) => host.run(program, argv),
            Runner::Defer { .. } => Ok(ScriptOutcome::Deferred),
        }
    }

    /// Ends the runner: unmounts `/proc`, stops the helper, and returns the deferred
    /// requests (empty when scripts ran).
    pub fn finish(self) -> Result<Vec<PendingScript>, ScriptError> {
        match self {
            Runner::Direct { proc_mount } => {
                drop(proc_mount);
                Ok(Vec::new())
            }
            Runner::Host(host) => {
                host.stop().map_err(|source| ScriptError::Io {
                    script: "(stopping the script host)".into(),
                    root: Default::default(),
                    source,
                })?;
                Ok(Vec::new())
            }
            Runner::Session { .. } => Ok(Vec::new()),
            Runner::Defer { pending, .. } => Ok(pending),
        }
    }
}

/// Runs `program` (relative to the root) in an `enter` session of `root`, with apk's
/// script environment; its output goes where the caller's does.
fn in_session(
    root: &Path,
    arch: Arch,
    program: &str,
    argv: &[String],
    reporter: &dyn Reporter,
) -> io::Result<ScriptOutcome> {
    use crate::enter::{self, EnterError, EnterOptions};
    // The kernel hands a `#!` script its own path, not argv[0]: the program goes first.
    let mut command = vec![std::ffi::OsString::from(format!("/{program}"))];
    command.extend(argv.iter().skip(1).map(std::ffi::OsString::from));
    let options = EnterOptions {
        root: root.to_path_buf(),
        command,
        arch: Some(arch),
        env: vec![(
            "PATH".into(),
            Some(super::SCRIPT_PATH.trim_start_matches("PATH=").into()),
        )],
        ..EnterOptions::default()
    };
    let status = match enter::run(&options, reporter) {
        Ok(status) => status,
        Err(err @ EnterError::Exec { .. }) => err.exit_status(),
        Err(err) => return Err(io::Error::other(crate::report::error_chain(&err))),
    };
    use std::os::unix::process::ExitStatusExt;
    // `enter` gives 128 + n for a death by signal n, as a shell would.
    let raw = if status > 128 {
        status - 128
    } else {
        status << 8
    };
    Ok(super::outcome_of(
        std::process::ExitStatus::from_raw(raw),
        Vec::new(),
    ))
}
