//! The build pipeline: options -> verified indexes -> plan -> packages -> sysroot.
//!
//! This module only sequences the stages; each stage lives in its own module and
//! reports through [`Reporter`]. Scripts force some sequencing: a package's
//! pre-install script must run before its files land, and scripts may add users that
//! later packages' files are owned by. So packages are extracted in parallel batches
//! that end where the next package has a pre-install script.

use crate::arch::Arch;
use crate::db::ScriptAction;
use crate::index::{Dependency, Package};
use crate::report::{Reporter, Stage};
use crate::resolve::Plan;
use crate::{db, fetch, install, layout, output, package, repository, resolve, scripts, trust};
use std::path::PathBuf;
use std::time::Instant;

/// Where the repositories come from.
#[derive(Debug, Clone)]
pub enum RepoSelection {
    /// `--mirror` + `--branch`: the branch's `main` and `community`.
    Mirror {
        /// Base URL of the mirror.
        mirror: String,
        /// `latest-stable`, `edge`, `v3.19`...
        branch: String,
    },
    /// `--repo` arguments (in order), then the repositories file's lines.
    Explicit {
        /// `--repo` values as given.
        repos: Vec<String>,
        /// `--repositories-file`.
        repositories_file: Option<PathBuf>,
    },
}

/// Everything a build needs to know.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Target architecture.
    pub arch: Arch,
    /// The sysroot to create.
    pub dir: PathBuf,
    /// World requests, apk syntax.
    pub packages: Vec<String>,
    /// Repositories.
    pub repos: RepoSelection,
    /// `--keys-dir` values: when non-empty, the only trusted keys.
    pub keys_dirs: Vec<PathBuf>,
    /// Accept unsigned and unknown-key indexes.
    pub allow_untrusted: bool,
    /// Index and package cache; `None` for `--no-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Stop after resolving.
    pub simulate: bool,
    /// Record scripts but do not run them.
    pub no_scripts: bool,
    /// Replace a non-empty DIR.
    pub force: bool,
}

/// What a build produced.
#[derive(Debug)]
pub enum Outcome {
    /// `--simulate`: the plan, nothing written.
    Simulated(Plan),
    /// A finished sysroot.
    Built(output::Summary),
}

/// A stage failed; the variant says which.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A `PACKAGE` argument is not a valid dependency.
    #[error("`{0}` is not a valid package request (expected `name`, `name=version`, `name>=version`, `!name`)")]
    BadRequest(String, #[source] crate::index::IndexError),
    /// No repository was configured.
    #[error("no repository to install from: pass `--repo`, `--repositories-file` or `--mirror`")]
    NoRepositories,
    /// Reading the repositories or their indexes failed.
    #[error(transparent)]
    Repository(#[from] repository::RepositoryError),
    /// Building the keyring failed.
    #[error(transparent)]
    Trust(#[from] trust::TrustError),
    /// The request cannot be satisfied.
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    /// Downloading a package failed.
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    /// A package failed verification against its index entry.
    #[error("`{url}` does not match the signed index; nothing was installed")]
    Verify {
        /// Where the package came from.
        url: String,
        /// What differed.
        #[source]
        source: package::PackageError,
    },
    /// Extracting a package failed.
    #[error(transparent)]
    Install(#[from] install::InstallError),
    /// Running a script failed (not the script itself: apk carries on after those).
    #[error(transparent)]
    Scripts(#[from] scripts::ScriptError),
    /// Writing apk's database failed.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// Laying out the skeleton, repositories, keys or CA bundle failed.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// Creating or committing the staging directory failed.
    #[error(transparent)]
    Output(#[from] output::OutputError),
    /// Reading a file named on the command line failed.
    #[error("cannot read `{}`", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Ctrl-C or SIGTERM arrived; the partial sysroot was removed.
    #[error("interrupted; nothing was left behind")]
    Interrupted,
}

/// Runs a build (or, with `simulate`, only its resolution).
pub fn run(options: &BuildOptions, reporter: &dyn Reporter) -> Result<Outcome, BuildError> {
    let started = Instant::now();
    let arch = options.arch.name();
    let world = parse_world(&options.packages)?;
    let repos = select_repositories(&options.repos)?;

    reporter.stage(Stage::Indexes);
    let keyring = trust::Keyring::for_target(
        arch,
        &trust::KeyOptions {
            keys_dirs: options.keys_dirs.clone(),
            target_root: None,
            host_dirs: trust::KeyOptions::default_host_dirs(arch),
        },
        reporter,
    )?;
    let index_options = repository::IndexOptions {
        allow_untrusted: options.allow_untrusted,
        cache_dir: options.cache_dir.clone(),
        ..repository::IndexOptions::default()
    };
    // One HTTP client for indexes and packages: building one loads the native TLS roots
    // (hundreds of files), which a second client would do again.
    let transport = crate::transport::Transport::new(index_options.transport.clone());
    let indexes = repository::load_indexes_with(
        &transport,
        &repos,
        arch,
        &keyring,
        &index_options,
        reporter,
    )?;

    reporter.stage(Stage::Resolve);
    let keys = unique_keys(&indexes);
    // Move the packages out rather than clone them: the full indexes hold ~23,000
    // packages of a dozen strings each, and copying them costs as much as parsing.
    let mut universe = Vec::with_capacity(indexes.iter().map(|i| i.packages.len()).sum());
    for index in indexes {
        universe.extend(index.packages);
    }
    let plan = resolve::resolve(
        &universe,
        &world,
        &resolve::ResolveOptions {
            repo_tags: repos.iter().map(|r| r.tag.clone()).collect(),
            arch: Some(arch.to_string()),
        },
    )?;
    if options.simulate {
        // The universe is large and the process ends here: let the OS reclaim it.
        std::mem::forget(universe);
        return Ok(Outcome::Simulated(plan));
    }
    drop(universe);
    install_plan(
        options, &transport, &repos, &keys, &world, plan, started, reporter,
    )
}

/// Parses the `PACKAGE` arguments with apk's dependency syntax.
fn parse_world(packages: &[String]) -> Result<Vec<Dependency>, BuildError> {
    packages
        .iter()
        .map(|p| Dependency::parse(p).map_err(|e| BuildError::BadRequest(p.clone(), e)))
        .collect()
}

/// The repositories in priority order: `--repo` arguments, then the repositories file.
fn select_repositories(
    selection: &RepoSelection,
) -> Result<Vec<repository::Repository>, BuildError> {
    let repos = match selection {
        RepoSelection::Mirror { mirror, branch } => {
            repository::Repository::from_mirror(mirror, branch)?
        }
        RepoSelection::Explicit {
            repos,
            repositories_file,
        } => {
            let mut list = repos
                .iter()
                .map(|r| repository::Repository::parse(r))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(file) = repositories_file {
                list.extend(repository::Repository::read_repositories_file(file)?);
            }
            list
        }
    };
    if repos.is_empty() {
        return Err(BuildError::NoRepositories);
    }
    Ok(repos)
}

/// Everything after resolution: fetch, verify, extract, scripts, database, output.
#[allow(clippy::too_many_arguments)]
fn install_plan(
    options: &BuildOptions,
    transport: &crate::transport::Transport,
    repos: &[repository::Repository],
    keys: &[(String, Vec<u8>)],
    world: &[Dependency],
    plan: Plan,
    started: Instant,
    reporter: &dyn Reporter,
) -> Result<Outcome, BuildError> {
    let arch = options.arch.name();
    output::handle_interrupts()?;
    let staging = output::Staging::create(&options.dir, options.force)?;
    let root = staging.path().to_path_buf();
    // Before the skeleton: the installer prepares the root for its directories first.
    let mut installer = install::Installer::new(&root, install::InstallOptions::default())?;
    layout::init_skeleton(&root)?;

    reporter.stage(Stage::Download);
    let fetched = fetch::fetch_packages_with(
        transport,
        &plan.packages,
        repos,
        arch,
        &fetch::FetchOptions {
            cache_dir: options.cache_dir.clone(),
            temp_dir: Some(root.clone()),
            // Every package is verified below, before anything of it is used.
            verify_local: false,
            ..fetch::FetchOptions::default()
        },
        reporter,
    )?;
    let downloaded_bytes = fetched.iter().map(|f| f.downloaded).sum();
    check_interrupted()?;

    reporter.stage(Stage::Install);
    reporter.install_started(plan.packages.len());
    let run_scripts = !options.no_scripts && scripts_can_run(options.arch, reporter);
    // One `/proc` for all scripts, as apk mounts it once; unmounted (dropped) before the
    // staging directory is committed or removed.
    let proc_mount = match run_scripts {
        true => Some(scripts::ProcMount::new(&root)?),
        false => None,
    };
    // Each package is verified, then inflated, on background threads in plan order, ahead
    // of the extraction and while scripts run; nothing of a package is used before it
    // verified, and a failure anywhere removes the whole staging tree.
    let files: Vec<PathBuf> = fetched.iter().map(|f| f.path.clone()).collect();
    let prefetch = install::Prefetch::new(&plan.packages, &files, PREFETCH_BUDGET);
    let broken_scripts = std::thread::scope(|scope| {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..workers.min(plan.packages.len()) {
            scope.spawn(|| prefetch.work());
        }
        let verified = |i: usize| -> Result<&package::VerifiedPackage, BuildError> {
            prefetch.verified(i).map_err(|source| {
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
        let result = extract_all(
            &root,
            &plan.packages,
            &verified,
            &prefetch,
            run_scripts,
            &mut installer,
            reporter,
        );
        prefetch.stop();
        result
    })?;
    // Downloads without a cache live in a temporary folder as long as these handles.
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
    if run_scripts {
        for (name, outcome) in scripts::run_triggers(&root, &mut installed, reporter)? {
            report_outcome(&name, "trigger", &outcome, reporter);
        }
        scripts::reconcile_exec_dir(&root, &installed)?;
    }
    drop(proc_mount);
    check_interrupted()?;

    reporter.stage(Stage::Finish);
    let world_names: Vec<String> = world.iter().map(|d| d.to_string()).collect();
    db::write_database(&root, &installed, &world_names, arch)?;
    layout::write_repositories(&root, &repository_lines(options, repos)?)?;
    layout::install_keys(&root, keys)?;
    layout::ensure_ca_bundle(&root, None, reporter)?;
    check_interrupted()?;
    staging.commit()?;

    Ok(Outcome::Built(output::Summary {
        packages: installed.len(),
        installed_bytes: installed.iter().map(|p| p.package.installed_size).sum(),
        downloaded_bytes,
        elapsed: started.elapsed(),
        errors: installed.iter().filter(|p| p.status.broken_script).count(),
    }))
}

/// Inflated bytes held ahead of the extraction at most (a larger package is held alone).
const PREFETCH_BUDGET: u64 = 64 * 1024 * 1024;

/// Extracts the plan batch by batch with the install scripts between batches; returns,
/// per package, whether one of its scripts failed (apk's `f:s`). `verified(i)` gives
/// package `i` once it passed verification.
fn extract_all<'v>(
    root: &std::path::Path,
    packages: &[Package],
    verified: &dyn Fn(usize) -> Result<&'v package::VerifiedPackage, BuildError>,
    prefetch: &install::Prefetch<'_>,
    run_scripts: bool,
    installer: &mut install::Installer,
    reporter: &dyn Reporter,
) -> Result<Vec<bool>, BuildError> {
    let mut broken_scripts = vec![false; packages.len()];
    let mut pairs: Vec<(&Package, &package::VerifiedPackage)> = Vec::with_capacity(packages.len());
    let mut start = 0;
    while start < packages.len() {
        // The batch ends after a package with a post-install script or before one with a
        // pre-install script, so packages are verified one beyond the batch.
        let mut end = start + 1;
        loop {
            while pairs.len() < (end + 1).min(packages.len()) {
                let i = pairs.len();
                pairs.push((&packages[i], verified(i)?));
            }
            if !extends_batch(&pairs, end, run_scripts) {
                break;
            }
            end += 1;
        }
        if run_scripts {
            broken_scripts[start] |= run_package_script(
                root,
                pairs[start],
                ScriptAction::PreInstall,
                installer,
                reporter,
            )?;
        }
        installer.extract_prefetched(&pairs[start..end], start, prefetch, reporter)?;
        check_interrupted()?;
        if run_scripts {
            let last = end - 1;
            broken_scripts[last] |= run_package_script(
                root,
                pairs[last],
                ScriptAction::PostInstall,
                installer,
                reporter,
            )?;
        }
        start = end;
    }
    Ok(broken_scripts)
}

/// Whether package scripts can run for `arch` on this host; says why not when they cannot.
fn scripts_can_run(arch: Arch, reporter: &dyn Reporter) -> bool {
    let native = Arch::host().is_some_and(|host| arch.runs_natively_on(host));
    if !native {
        reporter.warn(&format!(
            "`{arch}` is not native to this host: package scripts are recorded in the database but not run \
             (busybox applet links and users created by scripts are missing); \
             run them later inside the sysroot with `sysroot-mk enter`"
        ));
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        reporter.warn("package scripts need root (chroot): they are recorded but not run; pass `--no-scripts` to silence this");
        return false;
    }
    true
}

/// Whether package `end` joins the batch that currently ends before it. apk runs a
/// package's pre-install script just before its files land and its post-install script
/// just after, and scripts may add the users that later packages' files belong to; so a
/// batch never spans a script: it ends after a package with a post-install script and
/// before one with a pre-install script. Between scripts, packages extract in parallel.
fn extends_batch(
    pairs: &[(&Package, &package::VerifiedPackage)],
    end: usize,
    run_scripts: bool,
) -> bool {
    if end >= pairs.len() {
        return false;
    }
    if !run_scripts {
        return true;
    }
    let runs = |i: usize, action| pairs[i].0.installed_size != 0 && has_script(pairs[i].1, action);
    !runs(end - 1, ScriptAction::PostInstall) && !runs(end, ScriptAction::PreInstall)
}

fn has_script(package: &package::VerifiedPackage, action: ScriptAction) -> bool {
    package
        .scripts()
        .iter()
        .any(|s| s.action == action.as_str())
}

/// Runs one install script of a package; returns whether it failed (apk's `f:s`).
fn run_package_script(
    root: &std::path::Path,
    (pkg, verified): (&Package, &package::VerifiedPackage),
    action: ScriptAction,
    installer: &mut install::Installer,
    reporter: &dyn Reporter,
) -> Result<bool, BuildError> {
    // apk does not open packages with `I:0`, so it neither records nor runs their scripts.
    if pkg.installed_size == 0 || !has_script(verified, action) {
        return Ok(false);
    }
    let mut record = db::InstalledPackage::new(pkg.clone());
    record.scripts = verified.scripts().to_vec();
    let outcome = scripts::run_script(root, &mut record, action, reporter)?;
    report_outcome(&pkg.name_version(), action.as_str(), &outcome, reporter);
    // Scripts add users and groups that later packages' files are owned by.
    installer.refresh_ids();
    Ok(outcome.failed())
}

fn report_outcome(
    package: &str,
    action: &str,
    outcome: &scripts::ScriptOutcome,
    reporter: &dyn Reporter,
) {
    match outcome {
        scripts::ScriptOutcome::Absent => {}
        scripts::ScriptOutcome::Succeeded { output } => {
            reporter.info(&format!("ran {action} script of `{package}`"));
            if !output.is_empty() {
                reporter.info(String::from_utf8_lossy(output).trim_end());
            }
        }
        scripts::ScriptOutcome::Failed { status, output } => reporter.warn(&format!(
            "{action} script of `{package}` {status}; the package is marked broken (`f:s`) as apk does\n{}",
            String::from_utf8_lossy(output).trim_end()
        )),
    }
}

/// What goes into the sysroot's `etc/apk/repositories`: the repositories file as given,
/// or one line per repository used (`@tag URL` for tagged ones).
fn repository_lines(
    options: &BuildOptions,
    repos: &[repository::Repository],
) -> Result<Vec<String>, BuildError> {
    if let RepoSelection::Explicit {
        repositories_file: Some(file),
        repos: given,
    } = &options.repos
    {
        if given.is_empty() {
            let text = std::fs::read_to_string(file).map_err(|source| BuildError::ReadFile {
                path: file.clone(),
                source,
            })?;
            return Ok(text.lines().map(str::to_string).collect());
        }
    }
    Ok(repos
        .iter()
        .map(|r| match &r.tag {
            Some(tag) => format!("@{} {}", tag.trim_start_matches('@'), r.url),
            None => r.url.clone(),
        })
        .collect())
}

/// The keys that verified the indexes, once each.
fn unique_keys(indexes: &[repository::LoadedIndex]) -> Vec<(String, Vec<u8>)> {
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    for key in indexes.iter().filter_map(|i| i.key.as_ref()) {
        if !keys.iter().any(|(name, _)| *name == key.name) {
            keys.push((key.name.clone(), key.pem.clone()));
        }
    }
    keys
}

fn check_interrupted() -> Result<(), BuildError> {
    if output::interrupted() {
        return Err(BuildError::Interrupted);
    }
    Ok(())
}
