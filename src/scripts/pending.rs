//! Scripts that could not run when the sysroot was built (`--no-scripts`, no qemu, a
//! kernel without a usable binfmt_misc), kept for later.
//!
//! The build records each request it would have made, in order, in [`PENDING_FILE`]
//! (apk never looks there). `sysroot-mk enter` runs them once, before the user's
//! command, each in an `enter` session of its own ([`Runner::session`]), and removes
//! each line once its script ran; a failing script marks its package `f:s` in
//! `installed`, as apk would have at build time. The script bodies come from apk's own
//! `scripts.tar`.
//!
//! Format: a header line, then one line per request: package name, action, arguments,
//! separated by tabs, with `\\`, `\t` and `\n` escaped.

use std::path::Path;

use super::{Runner, ScriptError, ScriptOutcome};
use crate::arch::Arch;
use crate::db::{self, ScriptAction};
use crate::report::Reporter;
use crate::rootfs::RootDir;

/// Where pending scripts are recorded, relative to the root.
pub const PENDING_FILE: &str = "lib/apk/sysroot-mk.pending";
const HEADER: &str = "# sysroot-mk pending scripts v1: `sysroot-mk enter` runs them in this order";
/// A pending list larger than this is not one sysroot-mk wrote.
const MAX_PENDING: u64 = 16 << 20;

/// One script to run later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingScript {
    /// The package whose script it is.
    pub package: String,
    /// Which script.
    pub action: ScriptAction,
    /// The arguments after `argv[0]` (the version; a trigger's directories).
    pub args: Vec<String>,
}

/// Reading or running pending scripts failed.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    /// The file is not in the format sysroot-mk writes.
    #[error("`{root}/{PENDING_FILE}` line {line} is not understood")]
    Malformed {
        /// The sysroot.
        root: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A line names a package the database does not have.
    #[error(
        "`{root}/{PENDING_FILE}` names `{package}`, which `lib/apk/db/installed` does not list"
    )]
    UnknownPackage {
        /// The sysroot.
        root: std::path::PathBuf,
        /// The package.
        package: String,
    },
    /// Reading or writing the file failed.
    #[error("cannot {action} `{root}/{PENDING_FILE}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The sysroot.
        root: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be read or written.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// A script could not be started.
    #[error(transparent)]
    Script(#[from] ScriptError),
}

fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(field: &str) -> Option<String> {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            _ => return None,
        });
    }
    Some(out)
}

/// The file's text for `scripts`.
pub fn format_pending(scripts: &[PendingScript]) -> String {
    let mut text = format!("{HEADER}\n");
    for s in scripts {
        text.push_str(&escape(&s.package));
        text.push('\t');
        text.push_str(s.action.as_str());
        for arg in &s.args {
            text.push('\t');
            text.push_str(&escape(arg));
        }
        text.push('\n');
    }
    text
}

/// Parses the file's text; `Err(line)` names the first line that is not understood.
pub fn parse_pending(text: &str) -> Result<Vec<PendingScript>, usize> {
    let mut scripts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let parsed = (|| {
            let package = unescape(fields.next()?)?;
            let action = ScriptAction::parse(fields.next()?)?;
            let args = fields.map(unescape).collect::<Option<Vec<_>>>()?;
            (!package.is_empty()).then_some(PendingScript {
                package,
                action,
                args,
            })
        })();
        scripts.push(parsed.ok_or(i + 1)?);
    }
    Ok(scripts)
}

/// Records `scripts` in `root` (removes the file when there are none).
pub fn write_pending(root: &Path, scripts: &[PendingScript]) -> Result<(), PendingError> {
    let io_err = |action| {
        move |source| PendingError::Io {
            action,
            root: root.to_path_buf(),
            source,
        }
    };
    let dir = RootDir::open(root).map_err(io_err("open"))?;
    if scripts.is_empty() {
        return match dir.remove(PENDING_FILE) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove")(e)),
            _ => Ok(()),
        };
    }
    dir.mkdir_all("lib/apk", 0o755).map_err(io_err("write"))?;
    dir.write_atomic(PENDING_FILE, format_pending(scripts).as_bytes(), 0o644)
        .map_err(io_err("write"))
}

/// The scripts pending in `root`, or `None` when nothing is pending.
pub fn read_pending(root: &Path) -> Result<Option<Vec<PendingScript>>, PendingError> {
    let io_err = |source| PendingError::Io {
        action: "read",
        root: root.to_path_buf(),
        source,
    };
    let dir = RootDir::open(root).map_err(io_err)?;
    let Some(bytes) = dir.read(PENDING_FILE, MAX_PENDING).map_err(io_err)? else {
        return Ok(None);
    };
    let scripts = parse_pending(&String::from_utf8_lossy(&bytes)).map_err(|line| {
        PendingError::Malformed {
            root: root.to_path_buf(),
            line,
        }
    })?;
    Ok(Some(scripts))
}

/// What [`run_pending`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingRun {
    /// Scripts run.
    pub ran: usize,
    /// Of those, how many failed (their packages are now `f:s`).
    pub failed: usize,
}

/// Runs the scripts pending in `root` (a sysroot of `arch`) in order, each in an `enter`
/// session, and returns what it did, or `None` when nothing was pending. Each line is
/// dropped from the file once its script ran, so an interrupted run resumes where it
/// stopped. Forks: call it from a single-threaded process, as `enter::run`.
pub fn run_pending(
    root: &Path,
    arch: Arch,
    reporter: &dyn Reporter,
) -> Result<Option<PendingRun>, PendingError> {
    let Some(mut scripts) = read_pending(root)? else {
        return Ok(None);
    };
    if scripts.is_empty() {
        write_pending(root, &[])?;
        return Ok(None);
    }
    let mut installed = db::read_database(root)?;
    run_in_order(root, arch, &mut scripts, &mut installed, reporter).map(Some)
}

fn run_in_order(
    root: &Path,
    arch: Arch,
    scripts: &mut Vec<PendingScript>,
    installed: &mut [db::InstalledPackage],
    reporter: &dyn Reporter,
) -> Result<PendingRun, PendingError> {
    // Not the build's runners: the pending list and `scripts.tar` are read back from a
    // tree that anyone who was root inside it may have rewritten, so each script runs
    // in a session of its own with no more power than a shell there.
    let mut runner = Runner::session(arch);
    let mut run = PendingRun::default();
    while let Some(script) = scripts.first().cloned() {
        let Some(pkg) = installed
            .iter_mut()
            .find(|p| p.package.name == script.package)
        else {
            return Err(PendingError::UnknownPackage {
                root: root.to_path_buf(),
                package: script.package,
            });
        };
        let outcome =
            runner.run_script_with_args(root, pkg, script.action, &script.args, reporter)?;
        if outcome.failed() {
            run.failed += 1;
            rewrite_installed(root, installed)?;
        }
        if !matches!(outcome, ScriptOutcome::Absent) {
            run.ran += 1;
        }
        scripts.remove(0);
        write_pending(root, scripts)?;
    }
    runner.finish()?;
    if run.ran > 0 {
        // As at build time: apk makes `lib/apk/exec` 0700 when the first script runs,
        // before apk-tools ships it 0755.
        super::reconcile_exec_dir(root, installed)?;
    }
    Ok(run)
}

/// Rewrites `installed` alone, so a failed script's `f:s` is recorded and the other
/// database files stay byte for byte as the build wrote them.
fn rewrite_installed(root: &Path, installed: &[db::InstalledPackage]) -> Result<(), PendingError> {
    let dir = RootDir::open(root).map_err(|source| PendingError::Io {
        action: "open",
        root: root.to_path_buf(),
        source,
    })?;
    dir.write_atomic(
        db::INSTALLED,
        db::write_installed(installed).as_bytes(),
        0o644,
    )
    .map_err(|source| PendingError::Io {
        action: "update the database for",
        root: root.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_lines_round_trip_with_awkward_arguments() {
        let scripts = vec![
            PendingScript {
                package: "busybox".into(),
                action: ScriptAction::PostInstall,
                args: vec!["1.36.1-r15".into()],
            },
            PendingScript {
                package: "busybox".into(),
                action: ScriptAction::Trigger,
                args: vec!["/bin".into(), "/a\tb\\c\nd".into()],
            },
        ];
        let text = format_pending(&scripts);
        assert!(text.starts_with("# sysroot-mk pending"));
        assert_eq!(parse_pending(&text), Ok(scripts));
    }

    #[test]
    fn malformed_lines_are_named() {
        assert_eq!(
            parse_pending("# h\nbusybox\tpost-install\t1\nx\tnope\n"),
            Err(3)
        );
        assert_eq!(parse_pending("a\tpost-install\tbad\\q\n"), Err(1));
        assert_eq!(parse_pending("\tpost-install\n"), Err(1));
    }
}
