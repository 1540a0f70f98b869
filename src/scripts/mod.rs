//! Running package scripts and triggers inside the root, as apk 2.14 does
//! (`apk_ipkg_run_script`, `apk_db_run_script`, `fire_triggers`).
//!
//! apk writes the script to `lib/apk/exec/<name>-<version>.<action>` (creating the
//! directory 0700 if needed), forks, `chroot`s into the root and executes it with
//! `argv = [action, version]` (upgrades add the old version; triggers get the matching
//! directories) and only `PATH=/usr/sbin:/usr/bin:/sbin:/bin` in the environment, umask
//! 022, with `/proc` mounted in the root meanwhile; the file is removed afterwards. A
//! failing script does not stop apk: it prints `ERROR: <file>: script exited with error N`
//! and records `f:s` for the package. Scripts run one at a time: they mutate shared
//! files (`etc/group`, links in `bin`).
//!
//! Who executes them is a [`Runner`] (see `runner.rs`): this process directly (native
//! arch, root or root of a rootless build's user namespace), the script host (`host.rs`:
//! a helper in a user namespace with qemu in a private binfmt_misc instance, for foreign
//! arches), or nobody yet ([`pending`]: recorded for `sysroot-mk enter`). `/proc` is
//! mounted once per build inside a private mount namespace ([`ProcMount`]), or, without
//! one, by each script's child in a namespace of its own; the host never sees it.
//!
//! Order in a fresh install, per package in plan order: `PreInstall` before its files
//! are extracted (then re-read `etc/passwd`/`etc/group`, as apk resets its id cache
//! after every script), `PostInstall` after; at the end [`Runner::run_triggers`]; if
//! extraction ran ahead of the scripts, [`reconcile_exec_dir`]; then
//! `db::write_database`, which records the `f:s` marks set here. apk does not open
//! packages with `I:0`, so it neither records nor runs their scripts.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use crate::db::{InstalledPackage, ScriptAction};
use crate::report::Reporter;
use crate::rootfs::RootDir;

/// Where apk puts a script while it runs, relative to the root.
pub const EXEC_DIR: &str = "lib/apk/exec";
/// The only environment apk gives a script.
pub const SCRIPT_PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
/// Output kept per script (the rest is read and dropped so the script never blocks).
const MAX_OUTPUT: usize = 1 << 20;

impl crate::report::Hinted for ScriptError {
    fn hint(&self) -> Option<crate::report::Hint> {
        match self {
            ScriptError::NotRoot { .. } => Some(crate::report::Hint::fix(
                "run as root, or pass `--no-scripts` to leave them to the first `sysroot-mk enter`",
            )),
            ScriptError::Io { .. } => None,
        }
    }
}

/// Errors that keep a script from running at all (a script that runs and fails is a
/// [`ScriptOutcome::Failed`], which apk tolerates).
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// chroot and mounting `/proc` need root.
    #[error("cannot run `{script}`: running package scripts needs root (chroot, mount)")]
    NotRoot {
        /// `<name>-<version>.<action>`.
        script: String,
    },
    /// The script could not be written into `lib/apk/exec` or started.
    #[error("cannot run `{script}` in the sysroot `{root}`")]
    Io {
        /// `<name>-<version>.<action>`.
        script: String,
        /// The sysroot.
        root: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// What running one script gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOutcome {
    /// The package has no script for that action (or a trigger matched nothing).
    Absent,
    /// The script exited with status 0.
    Succeeded {
        /// stdout and stderr, interleaved as written (at most 1 MiB).
        output: Vec<u8>,
    },
    /// The script could not run now and was recorded as pending (see [`pending`]).
    Deferred,
    /// The script failed; apk marks the package `f:s` and carries on.
    Failed {
        /// apk's wording: `exited with error 127`, `killed by signal 9`.
        status: String,
        /// stdout and stderr, interleaved as written (at most 1 MiB).
        output: Vec<u8>,
    },
}

impl ScriptOutcome {
    /// Whether the script ran and failed.
    pub fn failed(&self) -> bool {
        matches!(self, ScriptOutcome::Failed { .. })
    }
}

mod child;
pub mod host;
pub mod pending;
mod proc;
mod runner;
mod triggers;

use child::{describe_status, drain, pipe, spawn, wait, ChildSetup};
pub use proc::ProcMount;
use proc::SHARED_PROC;
pub use runner::{DeferReason, Runner};
pub use triggers::{reconcile_exec_dir, run_triggers, trigger_arguments, trigger_arguments_in};

/// How many scripts a fresh install of `packages` (whose `.apk` files are `files`, same
/// order) runs when scripts run: their pre- and post-install scripts and the triggers of
/// packages with trigger globs, as a build runs them (none for `I:0` packages). Read
/// ahead of verification, for a progress total only.
pub fn count_planned_scripts(packages: &[crate::index::Package], files: &[PathBuf]) -> usize {
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

/// The file name apk gives a script in `lib/apk/exec`: `<name>-<version>.<action>`.
pub fn script_file_name(pkg: &InstalledPackage, action: ScriptAction) -> String {
    format!(
        "{}-{}.{}",
        pkg.package.name,
        pkg.package.version,
        action.as_str()
    )
}

/// Runs `pkg`'s script for `action` as a fresh install does (`argv = [action, version]`),
/// in this process (see [`Runner::direct`]). On failure the package is marked
/// `broken_script` (`f:s`), as apk does.
pub fn run_script(
    root: &Path,
    pkg: &mut InstalledPackage,
    action: ScriptAction,
    reporter: &dyn Reporter,
) -> Result<ScriptOutcome, ScriptError> {
    Runner::direct().run_script(root, pkg, action, reporter)
}

/// Runs `pkg`'s script for `action` with `args` after `argv[0]`, in this process (see
/// [`Runner::direct`]). Marks the package `broken_script` on failure.
pub fn run_script_with_args(
    root: &Path,
    pkg: &mut InstalledPackage,
    action: ScriptAction,
    args: &[String],
    reporter: &dyn Reporter,
) -> Result<ScriptOutcome, ScriptError> {
    Runner::direct().run_script_with_args(root, pkg, action, args, reporter)
}

impl Runner {
    /// Runs `pkg`'s script for `action` as a fresh install does (`argv = [action, version]`).
    pub fn run_script(
        &mut self,
        root: &Path,
        pkg: &mut InstalledPackage,
        action: ScriptAction,
        reporter: &dyn Reporter,
    ) -> Result<ScriptOutcome, ScriptError> {
        let version = pkg.package.version.to_string();
        self.run_script_with_args(root, pkg, action, &[version], reporter)
    }

    /// Runs `pkg`'s script for `action` with `args` after `argv[0]` (upgrades: new and old
    /// version; triggers: the directories), or records it as pending when this runner
    /// defers. Marks the package `broken_script` on failure.
    pub fn run_script_with_args(
        &mut self,
        root: &Path,
        pkg: &mut InstalledPackage,
        action: ScriptAction,
        args: &[String],
        reporter: &dyn Reporter,
    ) -> Result<ScriptOutcome, ScriptError> {
        let Some(body) = pkg.script(action).map(<[u8]>::to_vec) else {
            return Ok(ScriptOutcome::Absent);
        };
        let name = script_file_name(pkg, action);
        if self.record(&pkg.package.name, action, args) {
            return Ok(ScriptOutcome::Deferred);
        }
        let io_err = |source| ScriptError::Io {
            script: name.clone(),
            root: root.to_path_buf(),
            source,
        };
        reporter.info(&format!("Executing {name}"));
        reporter.script_started(&name);
        let rel = format!("{EXEC_DIR}/{name}");
        let dir = RootDir::open(root).map_err(io_err)?;
        let mut argv = vec![action.as_str().to_string()];
        argv.extend(args.iter().cloned());
        let result =
            write_script(&dir, &rel, &body).and_then(|()| self.exec(root, &rel, &argv, reporter));
        // apk removes the script whatever happened.
        let _ = dir.remove(&rel);
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                pkg.status.broken_script = true;
                return Err(io_err(e));
            }
        };
        if let ScriptOutcome::Succeeded { output } | ScriptOutcome::Failed { output, .. } = &outcome
        {
            for line in String::from_utf8_lossy(output).lines() {
                reporter.info(&format!("{name}: {line}"));
            }
        }
        if let ScriptOutcome::Failed { status, output } = &outcome {
            pkg.status.broken_script = true;
            let tail: Vec<String> = String::from_utf8_lossy(output)
                .lines()
                .rev()
                .take(5)
                .map(str::to_string)
                .collect();
            let tail: Vec<String> = tail.into_iter().rev().collect();
            let mut msg = format!(
                "`{name}`: script {status}; the package is recorded as broken (`f:s`), as apk does"
            );
            if !tail.is_empty() {
                msg.push_str(&format!("; last output: {}", tail.join(" | ")));
            }
            reporter.warn(&msg);
        }
        Ok(outcome)
    }
}

/// Writes a script where apk puts it (`lib/apk/exec`, created 0700), mode 0755.
fn write_script(dir: &RootDir, rel: &str, body: &[u8]) -> io::Result<()> {
    use std::io::Write;
    dir.mkdir_all("lib/apk", 0o755)?;
    dir.mkdir(EXEC_DIR, None, 0o700)?;
    let fd = dir.open_in(
        rel,
        OFlags::CREATE | OFlags::TRUNC | OFlags::WRONLY | OFlags::NOFOLLOW,
        0o755,
    )?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o755))?;
    std::fs::File::from(fd).write_all(body)?;
    dir.mkdir("proc", None, 0o555)
}

/// Runs `program` (a path inside `root`) with `argv` in `root` from this process: a
/// chrooted child with only [`SCRIPT_PATH`] in its environment, stdin `/dev/null`,
/// stdout and stderr collected together. `/proc` is the live [`ProcMount`] of this
/// thread, or one the child mounts in a namespace of its own.
pub(crate) fn exec_here(root: &Path, program: &str, argv: &[String]) -> io::Result<ScriptOutcome> {
    let (mut reader, writer) = pipe()?;
    let root = std::fs::canonicalize(root)?;
    let shared_proc = SHARED_PROC.with(|shared| shared.borrow().as_deref() == Some(root.as_path()));
    let mut setup = ChildSetup::new(&root, program, argv)?;
    setup.own_proc = !shared_proc;
    let null = std::fs::File::open("/dev/null")?;
    let pid = spawn(&setup, null.as_raw_fd(), writer.as_raw_fd())?;
    drop((null, writer));
    let output = drain(&mut reader)?;
    let status = wait(pid)?;
    Ok(outcome_of(status, output))
}

/// A finished script's outcome from its wait status.
pub(crate) fn outcome_of(status: std::process::ExitStatus, output: Vec<u8>) -> ScriptOutcome {
    if status.success() {
        ScriptOutcome::Succeeded { output }
    } else {
        ScriptOutcome::Failed {
            status: describe_status(status),
            output,
        }
    }
}
