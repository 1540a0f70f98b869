//! Committing a change set inside a root, in apk's order and with apk's scripts:
//! removals purge (pre-deinstall, files, post-deinstall), installs extract between
//! pre-install and post-install, upgrades run pre-upgrade NEW OLD, take over the old
//! version's files and remove those the new one no longer has, then post-upgrade NEW OLD.
//! Then the triggers of the change set's packages fire on the directories it touched, and
//! the database is written in the order apk keeps it in memory.

use std::collections::HashSet;
use std::path::Path;

use super::{state::RootState, UpdateError};
use crate::db::{self, InstalledPackage, ScriptAction};
use crate::index::Package;
use crate::report::Reporter;
use crate::resolve::Change;
use crate::rootfs::RootDir;
use crate::{install, package, scripts};

/// Bytes (installed size) written into the scratch folder ahead of the extraction at
/// most; they are on disk, not in memory, so this only bounds how far ahead it goes.
const PREFETCH_BUDGET: u64 = 256 * 1024 * 1024;

/// What [`apply`] needs besides the changes.
pub struct Apply<'a> {
    /// The root to change (a staging copy of the sysroot).
    pub root: &'a Path,
    /// The root's state before the change.
    pub state: RootState,
    /// The `.apk` file of each change's new package, `None` where nothing is extracted.
    pub files: Vec<Option<std::path::PathBuf>>,
    /// Stamps of files the fetcher verified whole.
    pub stamps: Vec<Option<package::FileStamp>>,
    /// The new world.
    pub world: Vec<String>,
    /// Scripts run (or are recorded as pending) by this runner.
    pub runner: &'a mut scripts::Runner,
}

/// Applies `changes` (apk's commit order) to the root.
pub fn apply(a: Apply<'_>, changes: &[Change], reporter: &dyn Reporter) -> Result<(), UpdateError> {
    let Apply {
        root,
        state,
        files,
        stamps,
        world,
        runner,
    } = a;
    let handle = RootDir::open(root).map_err(|source| UpdateError::Read {
        path: root.display().to_string(),
        source,
    })?;
    let arch = state.arch.clone();
    let old_trigger_order = state.trigger_order.clone();
    let old_count = state.installed.len();
    let mut installer = install::Installer::new(root, install::InstallOptions::default())?;
    installer.seed(state.installed);

    // Packages to extract, in change order, verified ahead on background threads.
    let mut extract: Vec<Package> = Vec::new();
    let mut extract_files = Vec::new();
    let mut extract_stamps = Vec::new();
    for ((c, f), s) in changes.iter().zip(&files).zip(stamps) {
        if let (Some(new), Some(f)) = (&c.new, f) {
            extract.push(new.clone());
            extract_files.push(f.clone());
            extract_stamps.push(s);
        }
    }
    let prefetch = installer
        .prefetch(&extract, &extract_files, PREFETCH_BUDGET)
        .trusting(extract_stamps);
    // Index in the installer of each package, for scripts and triggers.
    let mut slot_of_old: Vec<Option<usize>> = (0..old_count).map(Some).collect();
    let mut modified: HashSet<String> = HashSet::new();
    let mut run_all: HashSet<usize> = HashSet::new();
    let mut change_slots: Vec<Option<usize>> = Vec::new();
    let mut broken: Vec<(usize, bool)> = Vec::new();
    let mut released: HashSet<usize> = HashSet::new();

    std::thread::scope(|scope| -> Result<(), UpdateError> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..workers.min(extract.len()) {
            scope.spawn(|| prefetch.work());
        }
        let result = (|| -> Result<(), UpdateError> {
            let mut next = 0;
            for change in changes {
                super::check_interrupted()?;
                let old_slot = change.old.and_then(|o| slot_of_old[o]);
                let Some(new) = &change.new else {
                    // A removal.
                    let Some(slot) = old_slot else {
                        change_slots.push(None);
                        continue;
                    };
                    let version = installer.record_mut(slot).package.version.to_string();
                    reporter.info(&format!(
                        "Purging {}",
                        installer.record_mut(slot).package.name_version()
                    ));
                    script(
                        runner,
                        root,
                        installer.record_mut(slot),
                        ScriptAction::PreDeinstall,
                        std::slice::from_ref(&version),
                        reporter,
                    )?;
                    let record = installer.release(slot);
                    released.insert(slot);
                    purge_record(&handle, &mut installer, &record, &mut modified)?;
                    let mut record = record;
                    script(
                        runner,
                        root,
                        &mut record,
                        ScriptAction::PostDeinstall,
                        &[version],
                        reporter,
                    )?;
                    if let Some(o) = change.old {
                        slot_of_old[o] = None;
                    }
                    change_slots.push(None);
                    continue;
                };
                let kept = old_slot
                    .is_some_and(|s| installer.record_mut(s).package.checksum == new.checksum);
                if kept {
                    if let Some(slot) = old_slot {
                        installer.record_mut(slot).status.repository_tag = change.new_tag.clone();
                    }
                    change_slots.push(old_slot);
                    continue;
                }
                let i = next;
                next += 1;
                let verified = prefetch.verified(i).map_err(|source| UpdateError::Verify {
                    package: new.name_version(),
                    source,
                })?;
                let upgrade_args = old_slot.map(|s| {
                    vec![
                        new.version.to_string(),
                        installer.record_mut(s).package.version.to_string(),
                    ]
                });
                let (pre, post, args) = match &upgrade_args {
                    Some(args) => (
                        ScriptAction::PreUpgrade,
                        ScriptAction::PostUpgrade,
                        args.clone(),
                    ),
                    None => (
                        ScriptAction::PreInstall,
                        ScriptAction::PostInstall,
                        vec![new.version.to_string()],
                    ),
                };
                reporter.info(&format!(
                    "{} {}",
                    if upgrade_args.is_some() {
                        "Upgrading"
                    } else {
                        "Installing"
                    },
                    new.name_version()
                ));
                let mut pre_failed = false;
                if new.installed_size != 0 {
                    let mut record = InstalledPackage::new(new.clone());
                    record.scripts = verified.scripts().to_vec();
                    pre_failed = script(runner, root, &mut record, pre, &args, reporter)?;
                    installer.refresh_ids();
                    installer.extract_prefetched(&[(new, verified)], i, &prefetch, reporter)?;
                } else {
                    installer.seed(vec![InstalledPackage::new(new.clone())]);
                }
                let slot = installer.count() - 1;
                for d in &installer.record_mut(slot).dirs {
                    modified.insert(d.path.clone());
                }
                if let Some(old) = old_slot {
                    // What the old version still owns, the new one no longer ships.
                    let record = installer.release(old);
                    released.insert(old);
                    purge_record(&handle, &mut installer, &record, &mut modified)?;
                    if let Some(o) = change.old {
                        slot_of_old[o] = None;
                    }
                }
                let failed = new.installed_size != 0
                    && script(
                        runner,
                        root,
                        installer.record_mut(slot),
                        post,
                        &args,
                        reporter,
                    )?;
                installer.refresh_ids();
                broken.push((slot, pre_failed || failed));
                installer.record_mut(slot).status.repository_tag = change.new_tag.clone();
                run_all.insert(slot);
                change_slots.push(Some(slot));
            }
            Ok(())
        })();
        prefetch.stop();
        result
    })?;
    for (slot, failed) in broken {
        installer.record_mut(slot).status.broken_script |= failed;
    }

    // Triggers of the change set's packages, in change order, on what it touched.
    let count = installer.count();
    let mut live_index: Vec<Option<usize>> = vec![None; count];
    let mut k = 0;
    for (s, slot) in live_index.iter_mut().enumerate() {
        if !released.contains(&s) {
            *slot = Some(k);
            k += 1;
        }
    }
    let mut all = installer.finish()?;
    for slot in change_slots.iter().flatten() {
        let Some(i) = live_index[*slot] else { continue };
        if all[i].triggers.is_empty() {
            continue;
        }
        let only = (!run_all.contains(slot)).then_some(&modified);
        let args = scripts::trigger_arguments_in(&all, &all[i].triggers, only);
        if args.is_empty() {
            continue;
        }
        let pkg = &mut all[i];
        runner.run_script_with_args(root, pkg, ScriptAction::Trigger, &args, reporter)?;
    }
    write_database(root, &all, &world, &arch, &old_trigger_order)?;
    Ok(())
}

/// Runs one script (if the package has it); whether it failed.
fn script(
    runner: &mut scripts::Runner,
    root: &Path,
    record: &mut InstalledPackage,
    action: ScriptAction,
    args: &[String],
    reporter: &dyn Reporter,
) -> Result<bool, UpdateError> {
    if record.script(action).is_none() {
        return Ok(false);
    }
    let outcome = runner.run_script_with_args(root, record, action, args, reporter)?;
    Ok(outcome.failed())
}

fn purge_record(
    root: &RootDir,
    installer: &mut install::Installer,
    record: &InstalledPackage,
    modified: &mut HashSet<String>,
) -> Result<(), UpdateError> {
    // Released packages are left with empty records, so all of them can be passed.
    let remaining: Vec<&InstalledPackage> = installer.installed().collect();
    let (touched, removed) =
        super::remove::purge(root, record, &remaining).map_err(|source| UpdateError::Remove {
            package: record.package.name_version(),
            source,
        })?;
    installer.forget_dirs(&removed);
    modified.extend(touched);
    Ok(())
}

/// apk's database after a commit: `installed` sorted, `scripts.tar` in installed-list
/// order, `triggers` in the triggers list's order (packages that kept their triggers
/// first, as the file had them, then the new ones in install order).
fn write_database(
    root: &Path,
    installed: &[InstalledPackage],
    world: &[String],
    arch: &str,
    old_trigger_order: &[String],
) -> Result<(), UpdateError> {
    db::write_database_at(root, installed, world, arch, None)?;
    let position = |p: &InstalledPackage| {
        old_trigger_order
            .iter()
            .position(|c| *c == p.package.checksum)
            .unwrap_or(usize::MAX)
    };
    let mut ordered: Vec<&InstalledPackage> = installed.iter().collect();
    // Stable: new ones keep install order among themselves.
    ordered.sort_by_key(|p| position(p));
    let owned: Vec<InstalledPackage> = ordered.into_iter().cloned().collect();
    let text = db::write_triggers(&owned);
    let dir = RootDir::open(root).map_err(|source| UpdateError::Read {
        path: root.display().to_string(),
        source,
    })?;
    dir.write_atomic(db::TRIGGERS, text.as_bytes(), 0o644)
        .map_err(|source| UpdateError::Read {
            path: root.join(db::TRIGGERS).display().to_string(),
            source,
        })?;
    Ok(())
}
