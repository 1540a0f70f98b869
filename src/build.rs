//! The build pipeline: options -> verified indexes -> plan -> packages -> sysroot.
//!
//! This module only sequences the stages; each stage lives in its own module and
//! reports through [`Reporter`]. Scripts force some sequencing: a package's
//! pre-install script must run before its files land, and scripts may add users that
//! later packages' files are owned by. So packages are extracted in parallel batches
//! that end where the next package has a pre-install script.

use crate::arch::Arch;
use crate::index::Dependency;
use crate::report::{Reporter, Stage};
use crate::resolve::Plan;
use crate::{repository, resolve, trust};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    Built(Summary),
}

/// The closing line of a build, like apk's `OK: 10 MiB in 25 packages`.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Packages installed.
    pub packages: usize,
    /// Sum of the packages' installed sizes.
    pub installed_bytes: u64,
    /// Bytes downloaded over the network (0 for local repositories and cache hits).
    pub downloaded_bytes: u64,
    /// Wall time of the whole build.
    pub elapsed: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OK: {} MiB in {} packages ({:.2} s)",
            self.installed_bytes.div_ceil(1024 * 1024),
            self.packages,
            self.elapsed.as_secs_f64()
        )
    }
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
    let indexes = repository::load_indexes(&repos, arch, &keyring, &index_options, reporter)?;

    reporter.stage(Stage::Resolve);
    let mut universe = Vec::with_capacity(indexes.iter().map(|i| i.packages.len()).sum());
    for index in &indexes {
        universe.extend(index.packages.iter().cloned());
    }
    let plan = resolve::resolve(
        &universe,
        &world,
        &resolve::ResolveOptions {
            repo_tags: repos.iter().map(|r| r.tag.clone()).collect(),
            arch: Some(arch.to_string()),
        },
    )?;
    drop(universe);
    if options.simulate {
        return Ok(Outcome::Simulated(plan));
    }
    install_plan(options, &repos, &indexes, &world, plan, started, reporter)
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

#[allow(clippy::too_many_arguments)]
fn install_plan(
    _options: &BuildOptions,
    _repos: &[repository::Repository],
    _indexes: &[repository::LoadedIndex],
    _world: &[Dependency],
    _plan: Plan,
    _started: Instant,
    _reporter: &dyn Reporter,
) -> Result<Outcome, BuildError> {
    Err(BuildError::NoRepositories)
}
