//! The build pipeline: options -> verified indexes -> plan -> packages -> sysroot.
//!
//! This module only sequences the stages; each stage lives in its own module and
//! reports through [`Reporter`]. The build is split at the plan: [`resolve`] (or, with
//! a lockfile, [`resolve_locked`]) gives a [`Resolved`], and [`install`] turns one into
//! a tree. What needs only the plan sits between: `plan`/`--simulate` print it,
//! `--lock` writes it. The first half is in `resolution`, the second in
//! `install_plan`.

mod install_plan;
mod resolution;

pub use resolution::{resolve, resolve_locked};
pub(crate) use resolution::{select_repositories, universe, IndexSource};

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
    /// `--mirror` + `--branch` + `--repos`: repositories of a branch of a mirror.
    Mirror(repository::Mirror),
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
    /// `--offline`: no network at all; indexes and packages come from the cache.
    pub offline: bool,
    /// `--lock FILE`: write the resolution there before installing it.
    pub lock: Option<PathBuf>,
    /// `--locked FILE`: build that lockfile's resolution instead of resolving.
    pub locked: Option<PathBuf>,
}

impl BuildOptions {
    /// A build of `packages` for `arch` into the directory `dir` from `repos`, with
    /// everything else as the CLI has it by default: the default keys, no cache,
    /// scripts run, nothing replaced, no lockfile.
    pub fn new(arch: Arch, dir: PathBuf, packages: Vec<String>, repos: RepoSelection) -> Self {
        BuildOptions {
            arch,
            dir,
            packages,
            repos,
            keys_dirs: Vec::new(),
            allow_untrusted: false,
            cache_dir: None,
            no_scripts: false,
            force: false,
            repositories_out: None,
            relative_links: false,
            output: Format::Directory,
            source_date_epoch: None,
            reproducible: false,
            offline: false,
            lock: None,
            locked: None,
        }
    }
}

/// The first half of a build: what to install, from where, trusting which keys.
#[derive(Debug)]
pub struct Resolved {
    /// The target arch.
    pub arch: Arch,
    /// The packages in install order, with their repository tags.
    pub plan: Plan,
    /// The repositories, in priority order ([`crate::index::Package::repo`] indexes it).
    pub repositories: Vec<repository::Repository>,
    /// The keys to install into the sysroot (name, PEM): those that verified the
    /// indexes, or a lockfile's.
    pub keys: Vec<(String, Vec<u8>)>,
    /// The world.
    pub world: Vec<Dependency>,
    /// When no signed index vouches for the plan (a lockfile built offline), the keys
    /// each package's own signature must verify with.
    pub signers: Option<trust::Keyring>,
    transport: crate::transport::Transport,
    started: Instant,
    fetched: Option<Vec<fetch::FetchedPackage>>,
    /// Positions in `repositories` of optional repositories whose index is missing (a
    /// warning): left out of the sysroot's `etc/apk/repositories`, where its own apk
    /// would fail on them.
    skipped: Vec<usize>,
}

impl Resolved {
    /// A resolution made elsewhere (a plan computed against an existing sysroot, say),
    /// whose packages are vouched for by the verified indexes they came from.
    pub fn new(
        arch: Arch,
        plan: Plan,
        repositories: Vec<repository::Repository>,
        keys: Vec<(String, Vec<u8>)>,
        world: Vec<Dependency>,
    ) -> Resolved {
        Resolved {
            arch,
            plan,
            repositories,
            keys,
            world,
            signers: None,
            transport: crate::transport::Transport::new(Default::default()),
            started: Instant::now(),
            fetched: None,
            skipped: Vec::new(),
        }
    }

    /// The lockfile of this resolution.
    pub fn lockfile(&self) -> crate::lock::Lockfile {
        let keys: Vec<String> = self.keys.iter().map(|(name, _)| name.clone()).collect();
        crate::lock::Lockfile::new(
            self.arch.name(),
            &self.world,
            &self.repositories,
            &keys,
            &self.plan.packages,
            &self.plan.pinned_tags,
        )
    }

    /// Fetches (or finds in the cache) the packages of the plan, once; `temp_dir` is
    /// where uncached downloads go.
    fn fetch(
        &mut self,
        options: &BuildOptions,
        temp_dir: Option<PathBuf>,
        reporter: &dyn Reporter,
    ) -> Result<(), BuildError> {
        if self.fetched.is_some() {
            return Ok(());
        }
        reporter.stage(Stage::Download);
        reporter.planned(&self.plan.packages);
        let fetched = fetch::fetch_packages_with(
            &self.transport,
            &self.plan.packages,
            &self.repositories,
            self.arch.name(),
            &self.fetch_options(options, temp_dir),
            reporter,
        )?;
        self.fetched = Some(fetched);
        Ok(())
    }

    /// How the packages of the plan are fetched; `temp_dir` is where uncached downloads go.
    fn fetch_options(
        &self,
        options: &BuildOptions,
        temp_dir: Option<PathBuf>,
    ) -> fetch::FetchOptions {
        fetch::FetchOptions {
            cache_dir: options.cache_dir.clone(),
            temp_dir,
            // Every package is verified before anything of it is used.
            verify_local: false,
            offline: options.offline,
            signers: self.signers.clone(),
            ..fetch::FetchOptions::default()
        }
    }
}

/// A stage failed; the variant says which.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A `PACKAGE` argument is not a valid dependency.
    #[error("`{0}` is not a valid package request (expected `name`, `name=version`, `name>=version`, `!name`)")]
    BadRequest(String, #[source] crate::index::IndexError),
    /// No repository was configured.
    #[error("no repository to install from")]
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
    /// Writing, reading or checking a lockfile failed.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// `--lock` or `--locked` with several arches.
    #[error("a lockfile holds one arch: `--lock` and `--locked` build one `--arch` at a time")]
    LockSeveralArches,
    /// Ctrl-C or SIGTERM arrived; the partial sysroot was removed.
    #[error("interrupted; nothing was left behind")]
    Interrupted,
}

/// Runs a build: resolves (or reads the lockfile), writes the lockfile when asked,
/// installs.
pub fn run(options: &BuildOptions, reporter: &dyn Reporter) -> Result<output::Summary, BuildError> {
    let mut summaries = run_arches(options, &[options.arch], reporter)?;
    Ok(summaries.remove(0))
}

/// The first half of a build as options ask for it: [`resolve_locked`] with
/// `--locked`, else [`resolve`]; then the lockfile is written when `--lock` asks.
pub fn plan(options: &BuildOptions, reporter: &dyn Reporter) -> Result<Resolved, BuildError> {
    let resolved = match &options.locked {
        Some(path) => resolve_locked(options, &crate::lock::Lockfile::read(path)?, reporter)?,
        None => resolve(options, reporter)?,
    };
    if let Some(path) = &options.lock {
        resolved.lockfile().write(path)?;
        reporter.info(&format!("wrote the lockfile `{}`", path.display()));
    }
    Ok(resolved)
}

/// Builds one tree per arch, one after the other, into one destination: several arches
/// need [`Format::Oci`], whose layout then holds an image index with one image per arch.
/// `options.arch` is ignored; the summaries are in the order of `arches`.
pub fn run_arches(
    options: &BuildOptions,
    arches: &[Arch],
    reporter: &dyn Reporter,
) -> Result<Vec<output::Summary>, BuildError> {
    if arches.len() > 1 && options.output != Format::Oci {
        return Err(ImageError::SeveralArchesNeedOci.into());
    }
    if arches.len() > 1 && (options.lock.is_some() || options.locked.is_some()) {
        return Err(BuildError::LockSeveralArches);
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
    // Opened once the first plan is known, so that a failed resolution writes nothing.
    let mut destination = None;
    let mut summaries = Vec::with_capacity(arches.len());
    for &arch in arches {
        let options = BuildOptions {
            arch,
            ..options.clone()
        };
        let mut resolved = plan(&options, reporter)?;
        if options.offline {
            // Offline, everything is in the cache or the build fails: find out before
            // anything is written.
            resolved.fetch(&options, None, reporter)?;
        }
        let destination = match &mut destination {
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
        summaries.push(install(&options, resolved, destination, reporter)?);
    }
    if let Some(destination) = destination {
        destination.finish()?;
    }
    Ok(summaries)
}

/// The second half of a build: fetch, verify, extract, scripts, database, and the
/// finished tree handed to `destination`.
pub fn install(
    options: &BuildOptions,
    resolved: Resolved,
    destination: &mut Destination,
    reporter: &dyn Reporter,
) -> Result<output::Summary, BuildError> {
    install_plan::install_plan(options, destination, resolved, reporter)
}

/// What goes into the sysroot's `etc/apk/repositories`: `--repositories-out`, else the
/// repositories file as given, else one line per repository used (`@tag URL` for
/// tagged ones).
fn repository_lines(
    options: &BuildOptions,
    repos: &[repository::Repository],
    skipped: &[usize],
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
        .enumerate()
        .filter(|(i, _)| !skipped.contains(i))
        .map(|(_, r)| match &r.tag {
            Some(tag) => format!("@{} {}", tag.trim_start_matches('@'), r.url),
            None => r.url.clone(),
        })
        .collect())
}

fn check_interrupted() -> Result<(), BuildError> {
    if output::interrupted() {
        return Err(BuildError::Interrupted);
    }
    Ok(())
}
