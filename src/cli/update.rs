//! `sysroot-mk add|del|upgrade DIR ...`, and the plain build form on an existing sysroot:
//! update in place (see the library's `update` module).

use std::path::PathBuf;

use super::{progress, target_arches, UsageError};
use sysroot_mk::build::RepoSelection;
use sysroot_mk::update::{self, Action, UpdateOptions, UpdateOutcome};

/// Where packages come from for an update: by default the sysroot's own repositories
/// and keys.
#[derive(Debug, clap::Args)]
pub(super) struct UpdateSource {
    /// Must match the sysroot's `etc/apk/arch` when given.
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    /// A repository (repeatable) instead of the sysroot's `etc/apk/repositories`.
    #[arg(long = "repo", short = 'X', value_name = "URL|PATH")]
    repos: Vec<String>,
    /// Trust the public keys in DIR (repeatable) instead of the sysroot's `etc/apk/keys`.
    #[arg(long = "keys-dir", value_name = "DIR")]
    keys_dirs: Vec<PathBuf>,
    /// Accept unsigned indexes and indexes signed by unknown keys (with a warning).
    #[arg(long)]
    allow_untrusted: bool,
    /// Cache for indexes and packages [default: $XDG_CACHE_HOME/sysroot-mk].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Neither read nor write the cache.
    #[arg(long)]
    no_cache: bool,
    /// No network at all: indexes and packages come from the cache (a miss fails).
    #[arg(long)]
    offline: bool,
    /// Do not run package scripts now: record them for the first `sysroot-mk enter`.
    #[arg(long)]
    no_scripts: bool,
}

/// `add DIR PKG...` / `del DIR PKG...`
#[derive(Debug, clap::Args)]
pub(super) struct ChangeArgs {
    #[command(flatten)]
    source: UpdateSource,
    /// The sysroot.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Packages, apk-style.
    #[arg(value_name = "PACKAGE", required = true)]
    packages: Vec<String>,
}

/// `upgrade DIR`
#[derive(Debug, clap::Args)]
pub(super) struct UpgradeArgs {
    #[command(flatten)]
    source: UpdateSource,
    /// The sysroot.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Which update subcommand.
pub(super) enum Which {
    Add(ChangeArgs),
    Del(ChangeArgs),
    Upgrade(UpgradeArgs),
}

/// Runs an update subcommand.
pub(super) fn run(which: Which, verbosity: progress::Verbosity) -> anyhow::Result<i32> {
    let (source, dir, action) = match which {
        Which::Add(a) => (a.source, a.dir, Action::Add(a.packages)),
        Which::Del(a) => (a.source, a.dir, Action::Del(a.packages)),
        Which::Upgrade(a) => (a.source, a.dir, Action::Upgrade),
    };
    let arch = match &source.arch {
        Some(name) => Some(target_arches(std::slice::from_ref(name), verbosity)?[0]),
        None => None,
    };
    let repos = (!source.repos.is_empty()).then(|| RepoSelection::Explicit {
        repos: source.repos.clone(),
        repositories_file: None,
    });
    let reporter = progress::TerminalReporter::new(verbosity);
    let cache_dir = match (source.no_cache, source.cache_dir) {
        (true, _) => None,
        (false, Some(dir)) => Some(dir),
        (false, None) => sysroot_mk::cache::default_or_warn(&reporter),
    };
    let options = UpdateOptions {
        dir,
        arch,
        action,
        repos,
        keys_dirs: source.keys_dirs,
        allow_untrusted: source.allow_untrusted,
        cache_dir,
        no_scripts: source.no_scripts,
        offline: source.offline,
    };
    finish(update::run(&options, &reporter), &options, verbosity)
}

/// The plain build form on a DIR that holds an apk database: the world becomes
/// `packages`, arch and repositories default to the sysroot's.
pub(super) fn run_set(
    options: UpdateOptions,
    verbosity: progress::Verbosity,
) -> anyhow::Result<i32> {
    let reporter = progress::TerminalReporter::new(verbosity);
    finish(update::run(&options, &reporter), &options, verbosity)
}

fn finish(
    result: Result<UpdateOutcome, update::UpdateError>,
    options: &UpdateOptions,
    verbosity: progress::Verbosity,
) -> anyhow::Result<i32> {
    match result {
        Ok(UpdateOutcome::UpToDate) => {
            if verbosity != progress::Verbosity::Quiet {
                println!("{} is up to date", options.dir.display());
            }
            Ok(0)
        }
        Ok(UpdateOutcome::Updated { changes, elapsed }) => {
            if verbosity != progress::Verbosity::Quiet {
                println!(
                    "{}: {changes} changes in {:.2} s",
                    options.dir.display(),
                    elapsed.as_secs_f64()
                );
            }
            Ok(0)
        }
        Err(update::UpdateError::ArchMismatch { given, installed }) => Err(UsageError(format!(
            "`--arch {given}` does not match the sysroot's architecture `{installed}`"
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}
