//! Updating an existing sysroot in place, as `apk add`/`del`/`upgrade` would.
//!
//! ```text
//! state: DIR's arch, world, repositories and database (installed order)
//!   -> resolve with the installed packages (kept unless upgrading; orphans removed)
//!   -> nothing to do? "up to date", DIR untouched
//!   -> stage: clone DIR beside itself (cp -a: owners, modes, mtimes, xattrs, hard
//!      links, device nodes), apply the change set there (apply, remove), then
//!      exchange it with DIR in one renameat2(RENAME_EXCHANGE) and remove the old tree
//! ```
//!
//! apk's lock (`lib/apk/db/lock`) is held throughout. Atomicity comes from staging, not
//! a journal: until the exchange DIR is untouched, and a failure, Ctrl-C or kill leaves
//! at most a staging sibling that the next run removes.

mod apply;
mod lock;
mod remove;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::arch::Arch;
use crate::build::{self, BuildError, RepoSelection};
use crate::index::Dependency;
use crate::report::{Reporter, Stage};
use crate::resolve::{self, Change, InstalledState};
use crate::{db, fetch, install, output, package, repository, scripts};

/// What to do to the world.
#[derive(Debug, Clone)]
pub enum Action {
    /// `sysroot-mk DIR PKG...` on an existing sysroot: the world becomes exactly these.
    Set(Vec<String>),
    /// `add DIR PKG...`: these join the world (replacing entries of the same name).
    Add(Vec<String>),
    /// `del DIR PKG...`: entries of these names leave the world.
    Del(Vec<String>),
    /// `upgrade DIR`: the same world, newest versions preferred.
    Upgrade,
}

/// An update request.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// The sysroot.
    pub dir: PathBuf,
    /// `--arch`, which must match the sysroot's `etc/apk/arch` when given.
    pub arch: Option<Arch>,
    /// The change.
    pub action: Action,
    /// Repositories; `None`: the sysroot's own `etc/apk/repositories`.
    pub repos: Option<RepoSelection>,
    /// `--keys-dir`; empty: the sysroot's `etc/apk/keys` (then the host's pinned keys).
    pub keys_dirs: Vec<PathBuf>,
    /// Accept unsigned and unknown-key indexes.
    pub allow_untrusted: bool,
    /// Index and package cache.
    pub cache_dir: Option<PathBuf>,
    /// Record scripts instead of running them.
    pub no_scripts: bool,
    /// `--offline`: indexes and packages only from the cache, no network at all.
    pub offline: bool,
}

/// What an update did.
#[derive(Debug)]
pub enum UpdateOutcome {
    /// Nothing to change; the sysroot was not touched.
    UpToDate,
    /// The change set was applied.
    Updated {
        /// Packages installed, upgraded or removed.
        changes: usize,
        /// Time taken.
        elapsed: std::time::Duration,
    },
}

/// Why an update failed; the sysroot is as it was.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Reading or writing a file of the sysroot failed.
    #[error("cannot access `{path}`")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// DIR holds no apk database.
    #[error("`{0}` holds no apk database (`lib/apk/db/installed`); build it first")]
    NotASysroot(PathBuf),
    /// `--arch` differs from the sysroot's.
    #[error(
        "`--arch {given}` does not match the sysroot's architecture `{installed}` (etc/apk/arch)"
    )]
    ArchMismatch {
        /// `--arch`.
        given: String,
        /// `etc/apk/arch`.
        installed: String,
    },
    /// `etc/apk/arch` names no known architecture.
    #[error("the sysroot's etc/apk/arch `{0}` is not a known architecture")]
    UnknownArch(String),
    /// Removing a package's files failed.
    #[error("cannot remove the files of `{package}`")]
    Remove {
        /// `name-version`.
        package: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A package failed verification.
    #[error("`{package}` does not match the signed index; the sysroot was not changed")]
    Verify {
        /// `name-version`.
        package: String,
        /// Why.
        #[source]
        source: package::PackageError,
    },
    /// Copying the sysroot to its staging sibling failed.
    #[error("cannot copy `{from}` to `{to}`: {reason}")]
    Clone {
        /// The sysroot.
        from: PathBuf,
        /// The staging directory.
        to: PathBuf,
        /// What `cp` said.
        reason: String,
    },
    /// A stage shared with the build failed (request, repositories, keys, resolution,
    /// download).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Reading or writing apk's database failed.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// Extracting failed.
    #[error(transparent)]
    Install(#[from] install::InstallError),
    /// Running a script failed.
    #[error(transparent)]
    Scripts(#[from] scripts::ScriptError),
    /// Reading or writing the scripts left pending failed.
    #[error(transparent)]
    Pending(#[from] scripts::pending::PendingError),
    /// Staging or exchanging failed.
    #[error(transparent)]
    Output(#[from] output::OutputError),
    /// Ctrl-C or SIGTERM: the sysroot is as it was.
    #[error("interrupted; the sysroot was not changed")]
    Interrupted,
}

fn check_interrupted() -> Result<(), UpdateError> {
    if output::interrupted() {
        return Err(UpdateError::Interrupted);
    }
    Ok(())
}

/// The new world for `action` on `world` (apk's `add`, `del`, `upgrade`, or a new set).
pub fn new_world(world: &[String], action: &Action) -> Vec<String> {
    let name = |e: &str| -> String {
        let e = e.strip_prefix('!').unwrap_or(e);
        let end = e.find(['<', '>', '=', '~', '@']).unwrap_or(e.len());
        e[..end].to_string()
    };
    match action {
        Action::Set(pkgs) => pkgs.clone(),
        Action::Upgrade => world.to_vec(),
        Action::Add(pkgs) => {
            let mut out = world.to_vec();
            for p in pkgs {
                match out.iter_mut().find(|e| name(e) == name(p)) {
                    Some(slot) => *slot = p.clone(),
                    None => out.push(p.clone()),
                }
            }
            out
        }
        Action::Del(pkgs) => world
            .iter()
            .filter(|e| !pkgs.iter().any(|p| name(p) == name(e)))
            .cloned()
            .collect(),
    }
}

/// Brings `options.dir` to the requested state; see the module documentation.
pub fn run(options: &UpdateOptions, reporter: &dyn Reporter) -> Result<UpdateOutcome, UpdateError> {
    let started = Instant::now();
    let dir = &options.dir;
    if !state::has_database(dir) {
        return Err(UpdateError::NotASysroot(dir.clone()));
    }
    // Held until the end: through the exchange, and while the old tree is removed.
    let _lock = lock::lock(dir, reporter)?;
    let root_state = state::read(dir)?;
    let arch = Arch::from_name(&root_state.arch)
        .ok_or_else(|| UpdateError::UnknownArch(root_state.arch.clone()))?;
    if let Some(given) = options.arch {
        if given != arch {
            return Err(UpdateError::ArchMismatch {
                given: given.name().to_string(),
                installed: arch.name().to_string(),
            });
        }
    }
    let world_text = new_world(&root_state.world, &options.action);
    let world: Vec<Dependency> = world_text
        .iter()
        .map(|p| {
            Dependency::parse(p)
                .map_err(|e| UpdateError::Build(BuildError::BadRequest(p.clone(), e)))
        })
        .collect::<Result<_, _>>()?;
    let repos = match &options.repos {
        Some(selection) => build::select_repositories(selection)?,
        None => {
            let text = root_state.repositories.join("\n");
            let repos = repository::Repository::parse_repositories_file(
                &text,
                &dir.join("etc/apk/repositories"),
            )
            .map_err(BuildError::from)?;
            if repos.is_empty() {
                return Err(BuildError::NoRepositories.into());
            }
            repos
        }
    };

    // Without --keys-dir: the keys the sysroot trusts, then the host's pinned ones.
    let (transport, indexes) = build::IndexSource {
        arch: arch.name(),
        keys_dirs: &options.keys_dirs,
        target_root: options.keys_dirs.is_empty().then(|| dir.clone()),
        allow_untrusted: options.allow_untrusted,
        cache_dir: options.cache_dir.clone(),
        offline: options.offline,
        mirror: match &options.repos {
            Some(RepoSelection::Mirror(mirror)) => Some(mirror.clone()),
            _ => None,
        },
    }
    .load(&repos, reporter)?;
    reporter.stage(Stage::Resolve);
    let universe = build::universe(indexes);
    let installed = InstalledState {
        packages: root_state
            .installed
            .iter()
            .map(|p| p.package.clone())
            .collect(),
        tags: root_state
            .installed
            .iter()
            .map(|p| p.status.repository_tag.clone())
            .collect(),
        world_names: root_state.world.clone(),
        upgrade: matches!(options.action, Action::Upgrade),
    };
    let changes = resolve::resolve_update(
        &universe,
        &world,
        &resolve::ResolveOptions {
            repo_tags: repos.iter().map(|r| r.tag.clone()).collect(),
            arch: Some(arch.name().to_string()),
        },
        &installed,
    )
    .map_err(BuildError::from)?;
    drop(universe);
    let real: Vec<&Change> = changes.iter().filter(|c| !c.is_noop(&installed)).collect();
    let same_world = db::format_world(&world_text) == db::format_world(&root_state.world);
    if real.is_empty() && same_world {
        reporter.info(&format!("{} is up to date", dir.display()));
        return Ok(UpdateOutcome::UpToDate);
    }

    output::handle_interrupts()?;
    let staging = output::Staging::create(dir, true)?;
    clone_tree(dir, staging.path())?;
    check_interrupted()?;

    reporter.stage(Stage::Download);
    let to_fetch: Vec<(usize, crate::index::Package)> = changes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let new = c.new.as_ref()?;
            let kept = c
                .old
                .is_some_and(|o| installed.packages[o].checksum == new.checksum);
            (!kept).then(|| (i, new.clone()))
        })
        .collect();
    let fetch_list: Vec<crate::index::Package> = to_fetch.iter().map(|(_, p)| p.clone()).collect();
    let fetched = fetch::fetch_packages_with(
        &transport,
        &fetch_list,
        &repos,
        arch.name(),
        &fetch::FetchOptions {
            cache_dir: options.cache_dir.clone(),
            temp_dir: Some(staging.path().to_path_buf()),
            verify_local: false,
            offline: options.offline,
            ..fetch::FetchOptions::default()
        },
        reporter,
    )
    .map_err(BuildError::from)?;
    let mut files = vec![None; changes.len()];
    let mut stamps = vec![None; changes.len()];
    for ((i, _), f) in to_fetch.iter().zip(&fetched) {
        files[*i] = Some(f.path.clone());
        stamps[*i] = f.verified;
    }
    check_interrupted()?;

    reporter.stage(Stage::Install);
    let mut runner =
        scripts::Runner::for_build(staging.path(), arch, options.no_scripts, reporter)?;
    let result = apply::apply(
        apply::Apply {
            root: staging.path(),
            state: root_state,
            files,
            stamps,
            world: world_text,
            runner: &mut runner,
        },
        &changes,
        reporter,
    );
    let deferred = runner.deferred_because().cloned();
    let pending = runner.finish()?;
    result?;
    if deferred.is_some() && !pending.is_empty() {
        // Scripts still pending from the build (or an earlier update) run first.
        let mut all = scripts::pending::read_pending(staging.path())?.unwrap_or_default();
        all.extend(pending);
        scripts::pending::write_pending(staging.path(), &all)?;
        reporter.warn(&format!(
            "{} package scripts were recorded in `{}` instead of run; `sysroot-mk enter \
             --run-pending {}` runs them",
            all.len(),
            scripts::pending::PENDING_FILE,
            dir.display()
        ));
    }
    drop(fetched);
    check_interrupted()?;
    reporter.stage(Stage::Finish);
    staging.commit()?;
    Ok(UpdateOutcome::Updated {
        changes: real.len(),
        elapsed: started.elapsed(),
    })
}

/// Copies `from`'s tree into the empty directory `to` with everything apk and scripts
/// may care about: owners, modes, timestamps, extended attributes, hard links, device
/// nodes, sparse files; on file systems that can, as reflinks (no data copied).
fn clone_tree(from: &Path, to: &Path) -> Result<(), UpdateError> {
    let err = |reason: String| UpdateError::Clone {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        reason,
    };
    let output = std::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg("--")
        .arg(from.join("."))
        .arg(to)
        .output()
        .map_err(|e| err(format!("cannot run `cp`: {e}")))?;
    if !output.status.success() {
        return Err(err(String::from_utf8_lossy(&output.stderr)
            .trim()
            .to_string()));
    }
    Ok(())
}
