//! Triggers after a fresh install, and the `lib/apk/exec` mode apk leaves behind.

use std::ffi::CString;
use std::path::Path;

use rustix::fs::OFlags;

use super::{Runner, ScriptError, ScriptOutcome, EXEC_DIR};
use crate::db::{InstalledPackage, ScriptAction};
use crate::report::Reporter;
use crate::rootfs::RootDir;

/// The directories a package's trigger fires on after a fresh install: every directory
/// of the installed set (and their parents, and `/`), as `/path`, that matches one of
/// `globs` with `fnmatch(FNM_PATHNAME)`; globs not starting with `/` never match, as in
/// apk. apk passes them in its hash table's order; here they are sorted.
pub fn trigger_arguments(installed: &[InstalledPackage], globs: &[String]) -> Vec<String> {
    let mut dirs = std::collections::BTreeSet::new();
    dirs.insert("/".to_string());
    for pkg in installed {
        for d in &pkg.dirs {
            let mut path = d.path.trim_matches('/');
            while !path.is_empty() {
                if !dirs.insert(format!("/{path}")) {
                    break;
                }
                path = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            }
        }
    }
    let patterns: Vec<CString> = globs
        .iter()
        .filter(|g| g.starts_with('/'))
        .filter_map(|g| CString::new(g.as_str()).ok())
        .collect();
    dirs.into_iter()
        .filter(|dir| {
            let Ok(c) = CString::new(dir.as_str()) else {
                return false;
            };
            // SAFETY: both arguments are valid NUL-terminated strings.
            patterns
                .iter()
                .any(|p| unsafe { libc::fnmatch(p.as_ptr(), c.as_ptr(), libc::FNM_PATHNAME) } == 0)
        })
        .collect()
}

/// Runs the `.trigger` of every package with triggers, in install order, as apk does at
/// the end of a fresh install, in this process (see [`Runner::run_triggers`]).
pub fn run_triggers(
    root: &Path,
    installed: &mut [InstalledPackage],
    reporter: &dyn Reporter,
) -> Result<Vec<(String, ScriptOutcome)>, ScriptError> {
    Runner::direct().run_triggers(root, installed, reporter)
}

impl Runner {
    /// Runs the `.trigger` of every package with triggers, in install order, as apk does
    /// at the end of a fresh install: `argv = ["trigger", dirs...]` with the matching
    /// directories; a package whose globs match nothing is not run. Returns each package
    /// name with its outcome; failures mark the package `f:s`.
    pub fn run_triggers(
        &mut self,
        root: &Path,
        installed: &mut [InstalledPackage],
        reporter: &dyn Reporter,
    ) -> Result<Vec<(String, ScriptOutcome)>, ScriptError> {
        let mut results = Vec::new();
        for i in 0..installed.len() {
            if installed[i].triggers.is_empty() {
                continue;
            }
            let args = trigger_arguments(installed, &installed[i].triggers);
            if args.is_empty() {
                continue;
            }
            let pkg = &mut installed[i];
            let outcome =
                self.run_script_with_args(root, pkg, ScriptAction::Trigger, &args, reporter)?;
            results.push((pkg.package.name.clone(), outcome));
        }
        Ok(results)
    }
}

/// For builds that extract everything before running scripts: apk creates
/// `lib/apk/exec` 0700 when the first script runs and keeps that mode when a package
/// ships the directory later (apk-tools does, 0755). Call after the install scripts:
/// if a pre-/post-install script in `installed` (plan order) would have run before the
/// shipping package's files were extracted, the directory gets 0700 as under apk.
pub fn reconcile_exec_dir(root: &Path, installed: &[InstalledPackage]) -> Result<(), ScriptError> {
    let owner = installed
        .iter()
        .position(|p| p.dirs.iter().any(|d| d.path == EXEC_DIR));
    let Some(owner) = owner else { return Ok(()) };
    let runs = |p: &InstalledPackage, a| p.script(a).is_some();
    let early = installed[..owner]
        .iter()
        .any(|p| runs(p, ScriptAction::PreInstall) || runs(p, ScriptAction::PostInstall))
        || runs(&installed[owner], ScriptAction::PreInstall);
    if !early {
        return Ok(());
    }
    let io_err = |source| ScriptError::Io {
        script: EXEC_DIR.to_string(),
        root: root.to_path_buf(),
        source,
    };
    let dir = RootDir::open(root).map_err(io_err)?;
    let fd = dir
        .open_in(EXEC_DIR, OFlags::DIRECTORY | OFlags::RDONLY, 0)
        .map_err(io_err)?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o700))
        .map_err(|e| io_err(e.into()))?;
    Ok(())
}
