//! The build pipeline: options -> verified indexes -> plan -> packages -> sysroot.
//!
//! This module only sequences the stages; each stage lives in its own module and
//! reports through [`Reporter`]. Up to the plan it is here; what follows the plan
//! (fetch, verify, extract between scripts, database, output) is in `install_plan`.

mod install_plan;

use crate::arch::Arch;
use crate::image::{Destination, Format, ImageError};
use crate::index::Dependency;
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
    /// Replace a non-empty DIR (or an existing archive).
    pub force: bool,
    /// The lines of the sysroot's `etc/apk/repositories`, instead of the repositories
    /// the build used (whose local paths mean nothing inside the sysroot).
    pub repositories_out: Option<Vec<String>>,
    /// Rewrite absolute symlinks as relative ones (recorded in
    /// [`layout::links::RECORD`]), for host tools that use the tree as a sysroot.
    pub relative_links: bool,
    /// What to write at `dir`: the sysroot itself, a tar archive of it (`-`: stdout) or
    /// an OCI image layout.
    pub output: Format,
    /// `SOURCE_DATE_EPOCH`: archive mtimes are clamped to it, and it dates what has no
    /// other date (scripts of packages without a build time, the image config).
    pub source_date_epoch: Option<u64>,
    /// Reproducible outputs even without `source_date_epoch`: the newest build time of
    /// the installed packages stands in for it.
    pub reproducible: bool,
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
    /// Recording the scripts that could not run failed.
    #[error(transparent)]
    Pending(#[from] scripts::pending::PendingError),
    /// Writing apk's database failed.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// Laying out the skeleton, repositories, keys or CA bundle failed.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// Creating or committing the staging directory failed.
    #[error(transparent)]
    Output(#[from] output::OutputError),
    /// Writing the archive or the image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
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
    let mut outcomes = run_arches(options, &[options.arch], reporter)?;
    Ok(outcomes.remove(0))
}

/// Builds one tree per arch, one after the other, into one destination: several arches
/// need [`Format::Oci`], whose layout then holds an image index with one image per arch.
/// `options.arch` is ignored; the outcomes are in the order of `arches`.
pub fn run_arches(
    options: &BuildOptions,
    arches: &[Arch],
    reporter: &dyn Reporter,
) -> Result<Vec<Outcome>, BuildError> {
    if arches.len() > 1 && options.output != Format::Oci {
        return Err(ImageError::SeveralArchesNeedOci.into());
    }
    // Said before anything is built rather than after.
    if options.output == Format::Oci {
        if let Some(arch) = arches
            .iter()
            .find(|a| crate::image::platform(a.name()).is_none())
        {
            return Err(ImageError::UnknownPlatform {
                arch: arch.name().to_string(),
            }
            .into());
        }
    }
    // Opened once the first plan is known, so that `--simulate` writes nothing.
    let mut destination = None;
    let mut outcomes = Vec::with_capacity(arches.len());
    for &arch in arches {
        let options = BuildOptions {
            arch,
            ..options.clone()
        };
        outcomes.push(run_one(&options, &mut destination, reporter)?);
    }
    if let Some(destination) = destination {
        destination.finish()?;
    }
    Ok(outcomes)
}

fn run_one(
    options: &BuildOptions,
    destination: &mut Option<Destination>,
    reporter: &dyn Reporter,
) -> Result<Outcome, BuildError> {
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
    let destination = match destination {
        Some(destination) => destination,
        None => {
            // Before the first staging directory: Ctrl-C removes them all.
            output::handle_interrupts()?;
            destination.insert(Destination::open(
                &options.dir,
                options.output,
                options.force,
            )?)
        }
    };
    install_plan::install_plan(
        options,
        destination,
        &transport,
        &repos,
        &keys,
        &world,
        plan,
        started,
        reporter,
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
pub(crate) fn select_repositories(
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

/// What goes into the sysroot's `etc/apk/repositories`: `--repositories-out`, else the
/// repositories file as given, else one line per repository used (`@tag URL` for
/// tagged ones).
fn repository_lines(
    options: &BuildOptions,
    repos: &[repository::Repository],
) -> Result<Vec<String>, BuildError> {
    if let Some(lines) = &options.repositories_out {
        return Ok(lines.clone());
    }
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
