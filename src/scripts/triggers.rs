//! Triggers after a fresh install, and the `lib/apk/exec` mode apk leaves behind.

use std::ffi::CString;
use std::path::Path;

use rustix::fs::OFlags;

use super::{script_file_name, Runner, ScriptError, ScriptOutcome, EXEC_DIR};
use crate::db::{InstalledPackage, ScriptAction};
use crate::report::Reporter;
use crate::rootfs::RootDir;

/// The directories a package's trigger fires on after a fresh install: every directory
/// of the installed set (and their parents, and `/`), as `/path`, that matches one of
/// `globs` with `fnmatch(FNM_PATHNAME)`; globs not starting with `/` never match, as in
/// apk. They come in apk's order: that of its table of directories, walked bucket by
/// bucket, the newest directory first within a bucket (see [`apk_dir_bucket`]).
pub fn trigger_arguments(installed: &[InstalledPackage], globs: &[String]) -> Vec<String> {
    trigger_arguments_in(installed, globs, None)
}

/// [`trigger_arguments`] limited, when `modified` is given, to the directories a change
/// touched (paths without the leading `/`; `""` is the root): apk fires the triggers of
/// packages it did not install or upgrade only on directories the change modified.
pub fn trigger_arguments_in(
    installed: &[InstalledPackage],
    globs: &[String],
    modified: Option<&std::collections::HashSet<String>>,
) -> Vec<String> {
    // Each directory with the order in which apk's database met it (parents first).
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let note = |dir: &str, seen: &mut std::collections::HashMap<String, usize>| {
        let next = seen.len();
        seen.entry(dir.to_string()).or_insert(next);
    };
    note("", &mut seen);
    for pkg in installed {
        for d in &pkg.dirs {
            let path = d.path.trim_matches('/');
            let mut end = 0;
            for part in path.split('/').filter(|p| !p.is_empty()) {
                end += part.len() + usize::from(end > 0);
                note(&path[..end], &mut seen);
            }
        }
    }
    let patterns: Vec<CString> = globs
        .iter()
        .filter(|g| g.starts_with('/'))
        .filter_map(|g| CString::new(g.as_str()).ok())
        .collect();
    let mut matched: Vec<(u32, usize, String)> = seen
        .into_iter()
        .filter(|(dir, _)| modified.is_none_or(|m| m.contains(dir)))
        .filter_map(|(dir, order)| {
            let full = format!("/{dir}");
            let c = CString::new(full.as_str()).ok()?;
            // SAFETY: both arguments are valid NUL-terminated strings.
            let hit = patterns
                .iter()
                .any(|p| unsafe { libc::fnmatch(p.as_ptr(), c.as_ptr(), libc::FNM_PATHNAME) } == 0);
            hit.then(|| (crate::apk_hash::bucket(&dir), order, full))
        })
        .collect();
    matched.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    matched.into_iter().map(|(_, _, dir)| dir).collect()
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
                if installed[i].script(ScriptAction::Trigger).is_some() {
                    reporter
                        .script_skipped(&script_file_name(&installed[i], ScriptAction::Trigger));
                }
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
