//! The half of a build after resolution: fetch, verify, extract, scripts, database,
//! layout, and the atomic rename of the staging directory.
//!
//! Scripts force some sequencing: a package's pre-install script must run before its
//! files land and its post-install script right after, and scripts may add users that
//! later packages' files are owned by. So packages are extracted in parallel batches
//! that never span a script, while later packages are verified and inflated ahead.

use super::{check_interrupted, repository_lines, BuildError, BuildOptions, Resolved};
use crate::db::ScriptAction;
use crate::index::Package;
use crate::report::{Reporter, Stage};
use crate::{db, install, layout, output, package, scripts};
use std::path::PathBuf;

/// Everything after resolution: fetch, verify, extract, scripts, database, output.
pub(super) fn install_plan(
    options: &BuildOptions,
    destination: &mut crate::image::Destination,
    mut resolved: Resolved,
    reporter: &dyn Reporter,
) -> Result<output::Summary, BuildError> {
    let arch = resolved.arch.name();
    let staging = destination.stage()?;
    let root = staging.path().to_path_buf();
    // An archive's headers take owners from the database where the files lack them.
    let install_options = install::InstallOptions::default();
    let owners_applied = install_options.chown;
    // Reproducible without an epoch: the newest package is as old as the tree can be.
    let epoch = options.source_date_epoch.or_else(|| {
        options.reproducible.then(|| {
            resolved
                .plan
                .packages
                .iter()
                .map(|p| p.build_time)
                .max()
                .unwrap_or(0)
        })
    });
    // Before the skeleton: the installer prepares the root for its directories first.
    let mut installer = install::Installer::new(&root, install_options)?;

    // Downloads run while the first packages are verified and extracted: each file is
    // read only once the fetcher verified it (see `Prefetch::after`). Packages fetched
    // before (offline builds check the cache first) are used as they are.
    let fetch_options = resolved.fetch_options(options, Some(root.clone()));
    let prefetched = resolved.fetched.take();
    if prefetched.is_none() {
        reporter.stage(Stage::Download);
        reporter.planned(&resolved.plan.packages);
    }
    let skipped = std::mem::take(&mut resolved.skipped);
    let Resolved {
        plan,
        repositories: repos,
        keys,
        world,
        started,
        transport,
        ..
    } = resolved;
    let repos = &repos[..];
    let downloads = match prefetched {
        Some(_) => None,
        None => Some(crate::fetch::Downloads::new(
            &transport,
            &plan.packages,
            repos,
            arch,
            &fetch_options,
            reporter,
        )?),
    };
    let files: Vec<PathBuf> = match (&prefetched, &downloads) {
        (Some(fetched), _) => fetched.iter().map(|f| f.path.clone()).collect(),
        (None, Some(downloads)) => downloads.paths().to_vec(),
        (None, None) => Vec::new(),
    };
    check_interrupted()?;

    reporter.stage(Stage::Install);
    reporter.install_started(plan.packages.len());
    // Background threads read each package once, in plan order, ahead of the extraction
    // and while scripts run: its control member is verified before its scripts are used,
    // its data member is inflated into the installer's scratch folder and verified before
    // anything of it is placed; a failure anywhere removes the whole staging tree.
    let ready = |i: usize| downloads.as_ref().and_then(|d| d.ready(i));
    let mut prefetch = installer.prefetch(&plan.packages, &files, PREFETCH_BUDGET);
    match (&prefetched, &downloads) {
        // Cache hits were hashed whole by the fetcher: not again while unchanged.
        (Some(fetched), _) => {
            prefetch = prefetch.trusting(fetched.iter().map(|f| f.verified).collect())
        }
        (None, Some(downloads)) => {
            prefetch = prefetch.after(&ready).huge_pages(!downloads.uses_network())
        }
        (None, None) => {}
    }
    // The scripts' total, for the progress display (when there is one), is read from the
    // control members ahead of verification: at once when every file is here, else just
    // before the first script runs (waiting for the downloads then, not before extracting).
    let mut announced = !reporter.shows_totals();
    let mut announce_scripts = |runs: bool| {
        if std::mem::replace(&mut announced, true) {
            return;
        }
        if let Some(downloads) = &downloads {
            (0..plan.packages.len()).for_each(|i| {
                downloads.ready(i);
            });
        }
        let count = if runs {
            scripts::count_planned_scripts(&plan.packages, &files)
        } else {
            0
        };
        reporter.scripts_planned(count);
    };
    let extracted = std::thread::scope(|scope| {
        if let Some(downloads) = &downloads {
            for _ in 0..downloads.jobs() {
                scope.spawn(|| downloads.work());
            }
        }
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..workers.min(plan.packages.len()) {
            scope.spawn(|| prefetch.work());
        }
        let verified = |i: usize| -> Result<&package::VerifiedPackage, BuildError> {
            prefetch.verified(i).map_err(|source| {
                // A package that could not be fetched: say why, not that it is unreadable.
                if let Some(err) = downloads.as_ref().and_then(|d| d.take_error()) {
                    return BuildError::Fetch(err);
                }
                if let Err(interrupted) = check_interrupted() {
                    return interrupted;
                }
                let pkg = &plan.packages[i];
                BuildError::Verify {
                    url: repos.get(pkg.repo).map_or_else(
                        || files[i].display().to_string(),
                        |r| r.package_url(arch, pkg),
                    ),
                    source,
                }
            })
        };
        let extracted = (|| -> Result<(scripts::Runner, Vec<bool>), BuildError> {
            // The skeleton is made while the first packages are inflated into the scratch
            // folder, which is all that the inflating threads touch (~0.7 ms sooner to
            // the first extraction on ext4).
            if layout::init_skeleton(&root)? == layout::DeviceNodes::Skipped
                && crate::userns::in_user_namespace()
            {
                reporter.warn(
                    "device nodes (`dev/null`, `dev/zero`, `dev/random`, `dev/urandom`, \
                     `dev/console`) cannot be created in a user namespace: skipped",
                );
            }
            // Natively, scripts run from this thread with one `/proc` for all of them, as
            // apk mounts it once; foreign ones through a helper with qemu; else they are
            // recorded. Made while the first packages are inflated (it touches only
            // `proc` and `dev` of the root); it is finished (its mounts gone) before the
            // staging directory is committed or removed.
            let mut runner =
                scripts::Runner::for_build(&root, options.arch, options.no_scripts, reporter)?;
            let runs = runner.runs();
            let mut announce_scripts = || announce_scripts(runs);
            if downloads.is_none() {
                announce_scripts();
            }
            let broken = extract_all(
                &root,
                &plan.packages,
                &verified,
                &prefetch,
                &mut runner,
                &mut installer,
                &mut announce_scripts,
                reporter,
            )?;
            // Triggers are scripts too: the total is out before they run.
            announce_scripts();
            Ok((runner, broken))
        })();
        // Also after an error: the workers return once their current package is done.
        prefetch.stop();
        if let Some(downloads) = &downloads {
            downloads.stop();
        }
        extracted
    });
    // Downloads without a cache live in a temporary folder as long as these handles.
    let fetched = match downloads {
        Some(downloads) => downloads.finish(),
        None => Ok(prefetched.unwrap_or_default()),
    };
    let (mut runner, broken_scripts) = extracted?;
    let fetched = fetched?;
    let downloaded_bytes = fetched.iter().map(|f| f.downloaded).sum();
    drop(fetched);
    let mut installed = installer.finish()?;
    for ((record, broken), tag) in installed
        .iter_mut()
        .zip(broken_scripts)
        .zip(&plan.pinned_tags)
    {
        record.status.broken_script |= broken;
        record.status.repository_tag = tag.clone();
    }

    reporter.stage(Stage::Scripts);
    // Outcomes were reported as the scripts ran; failures are in the records (`f:s`).
    runner.run_triggers(&root, &mut installed, reporter)?;
    if runner.runs() {
        scripts::reconcile_exec_dir(&root, &installed)?;
    }
    let deferred = runner.deferred_because().cloned();
    let pending = runner.finish()?;
    if let Some(reason) = deferred.filter(|_| !pending.is_empty()) {
        scripts::pending::write_pending(&root, &pending)?;
        let message = format!(
            "{reason}: {} package scripts were recorded in `{}` instead of run (busybox's \
             applet links and users made by scripts are missing until then); \
             `sysroot-mk enter --run-pending {dir}` runs them, and so does the first \
             `sysroot-mk enter {dir}`",
            pending.len(),
            scripts::pending::PENDING_FILE,
            dir = options.dir.display()
        );
        match reason {
            scripts::DeferReason::NoScripts => reporter.info(&message),
            _ => reporter.warn(&message),
        }
    }
    check_interrupted()?;

    reporter.stage(Stage::Finish);
    if options.relative_links {
        // After the scripts: they make links too (busybox's applets).
        let count = layout::links::make_links_relative(&root)?;
        reporter.info(&format!(
            "rewrote {count} absolute symlinks as relative ones (listed in `{}`)",
            layout::links::RECORD
        ));
    }
    let world_names: Vec<String> = world.iter().map(|d| d.to_string()).collect();
    db::write_database_at(&root, &installed, &world_names, arch, epoch)?;
    let repositories = repository_lines(options, repos, &skipped)?;
    layout::write_repositories(&root, &repositories)?;
    layout::install_keys(&root, &keys)?;
    layout::ensure_ca_bundle(&root, None, reporter)?;
    check_interrupted()?;
    destination.take(
        staging,
        &crate::image::ImageTree {
            arch,
            installed: &installed,
            owners_from_db: !owners_applied,
            epoch,
            repositories: &repositories,
        },
    )?;

    Ok(output::Summary {
        packages: installed.len(),
        installed_bytes: installed.iter().map(|p| p.package.installed_size).sum(),
        downloaded_bytes,
        elapsed: started.elapsed(),
        errors: installed.iter().filter(|p| p.status.broken_script).count(),
    })
}

/// Bytes (installed size) written into the scratch folder ahead of the extraction at
/// most; they are on disk, not in memory, so this only bounds how far ahead it goes.
const PREFETCH_BUDGET: u64 = 256 * 1024 * 1024;

/// Extracts the plan in plan order with the install scripts between extractions;
/// returns, per package, whether one of its scripts failed (apk's `f:s`). `verified(i)`
/// gives package `i` once it passed verification; `announce_scripts` is called before
/// each script that runs.
///
/// apk runs a package's pre-install script just before its files land and its
/// post-install script just after, and scripts may add the users that later packages'
/// files belong to; so an extraction never spans a script. Between scripts, packages
/// are placed together as they come: what is verified and inflated goes in while the
/// next package is still being read, instead of waiting for the end of its batch to be
/// known (which needs the next package's control member).
#[allow(clippy::too_many_arguments)]
fn extract_all<'v>(
    root: &std::path::Path,
    packages: &[Package],
    verified: &dyn Fn(usize) -> Result<&'v package::VerifiedPackage, BuildError>,
    prefetch: &install::Prefetch<'_>,
    runner: &mut scripts::Runner,
    installer: &mut install::Installer,
    announce_scripts: &mut dyn FnMut(),
    reporter: &dyn Reporter,
) -> Result<Vec<bool>, BuildError> {
    let run_scripts = runner.runs();
    let mut broken_scripts = vec![false; packages.len()];
    let mut pairs: Vec<(&Package, &package::VerifiedPackage)> = Vec::with_capacity(packages.len());
    // Packages `placed..pairs.len()` are verified, have no script before them, and wait
    // to be placed.
    let mut placed = 0;
    let place = |pairs: &[(&Package, &package::VerifiedPackage)],
                 placed: &mut usize,
                 installer: &mut install::Installer|
     -> Result<(), BuildError> {
        if *placed < pairs.len() {
            installer.extract_prefetched(&pairs[*placed..], *placed, prefetch, reporter)?;
            *placed = pairs.len();
            check_interrupted()?;
        }
        Ok(())
    };
    for i in 0..packages.len() {
        if placed < i && !prefetch.is_verified(i) && prefetch.is_ready(placed) {
            place(&pairs, &mut placed, installer)?;
        }
        let pair = (&packages[i], verified(i)?);
        if run_scripts && runs_script(pair, ScriptAction::PreInstall) {
            place(&pairs, &mut placed, installer)?;
            announce_scripts();
            let _first = prefetch.script_first();
            broken_scripts[i] |= run_package_script(
                runner,
                root,
                pair,
                ScriptAction::PreInstall,
                installer,
                reporter,
            )?;
        }
        pairs.push(pair);
        if run_scripts && runs_script(pair, ScriptAction::PostInstall) {
            place(&pairs, &mut placed, installer)?;
            announce_scripts();
            let _first = prefetch.script_first();
            broken_scripts[i] |= run_package_script(
                runner,
                root,
                pair,
                ScriptAction::PostInstall,
                installer,
                reporter,
            )?;
        }
    }
    place(&pairs, &mut placed, installer)?;
    if !run_scripts {
        // Recorded, not run: the same requests in the same order as a run would make.
        for pair in &pairs {
            for action in [ScriptAction::PreInstall, ScriptAction::PostInstall] {
                run_package_script(runner, root, *pair, action, installer, reporter)?;
            }
        }
    }
    Ok(broken_scripts)
}

/// Whether the package has the script and it is run: apk does not open packages with
/// `I:0`, so it neither records nor runs their scripts.
fn runs_script(
    (pkg, verified): (&Package, &package::VerifiedPackage),
    action: ScriptAction,
) -> bool {
    pkg.installed_size != 0 && has_script(verified, action)
}

fn has_script(package: &package::VerifiedPackage, action: ScriptAction) -> bool {
    package
        .scripts()
        .iter()
        .any(|s| s.action == action.as_str())
}

/// Runs one install script of a package; returns whether it failed (apk's `f:s`).
fn run_package_script(
    runner: &mut scripts::Runner,
    root: &std::path::Path,
    (pkg, verified): (&Package, &package::VerifiedPackage),
    action: ScriptAction,
    installer: &mut install::Installer,
    reporter: &dyn Reporter,
) -> Result<bool, BuildError> {
    if !runs_script((pkg, verified), action) {
        return Ok(false);
    }
    let mut record = db::InstalledPackage::new(pkg.clone());
    record.scripts = verified.scripts().to_vec();
    let outcome = runner.run_script(root, &mut record, action, reporter)?;
    if runner.runs() {
        // Scripts add users and groups that later packages' files are owned by.
        installer.refresh_ids();
    }
    Ok(outcome.failed())
}
