//! Command-line parsing, the terminal reporter and error rendering (binary only).
//!
//! Everything here is presentation: the work happens in the library, which this
//! module calls once per command and whose errors it prints as a cause chain.

mod enter;
mod progress;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use sysroot_mk::build::{self, BuildOptions, Outcome};
use sysroot_mk::report::Reporter;

/// Build Alpine Linux sysroots for any architecture, natively, and step inside them.
#[derive(Debug, Parser)]
#[command(
    name = "sysroot-mk",
    version,
    args_conflicts_with_subcommands = true,
    override_usage = "sysroot-mk [OPTIONS] --arch ARCH DIR [PACKAGE...]\n       sysroot-mk enter [OPTIONS] DIR [-- CMD [ARGS...]]\n       sysroot-mk binfmt status|register|unregister [ARCH...]"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs,
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Explain what is done: URLs fetched, keys used, scripts run.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a shell or a command inside a sysroot (under qemu when the arch is foreign).
    Enter(enter::EnterArgs),
    /// Show, register or remove the host's binfmt_misc handlers for qemu.
    Binfmt(enter::BinfmtArgs),
}

/// `sysroot-mk [OPTIONS] --arch ARCH DIR [PACKAGE...]`
#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// Target architecture (x86_64, x86, aarch64, armhf, armv7, ppc64le, s390x, riscv64, loongarch64, ppc64, ppc, mips64, mips64el).
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    /// The sysroot to create (must be absent or empty, unless --force).
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Packages to install, apk-style: `name`, `name=1.2-r0`, `name>=1.2`, `!name` (default: alpine-base).
    #[arg(value_name = "PACKAGE")]
    packages: Vec<String>,
    /// A repository (`<repo>/<arch>/APKINDEX.tar.gz`): http(s) or file:// URL, or a path. Repeatable; order is priority.
    #[arg(long = "repo", short = 'X', value_name = "URL|PATH")]
    repos: Vec<String>,
    /// Mirror used when no --repo is given (its main and community repositories).
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://dl-cdn.alpinelinux.org/alpine"
    )]
    mirror: String,
    /// Branch of the mirror: latest-stable, edge, v3.19, ...
    #[arg(long, value_name = "NAME", default_value = "latest-stable")]
    branch: String,
    /// Read repositories from a file in apk's syntax (comments, `@tag URL` lines).
    #[arg(long, value_name = "FILE")]
    repositories_file: Option<PathBuf>,
    /// Trust the public keys in DIR (repeatable); then only these keys are trusted.
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
    /// Resolve and print the install plan (`name-version`, one per line); write nothing.
    #[arg(long)]
    simulate: bool,
    /// Record package scripts in the database but do not run them.
    #[arg(long)]
    no_scripts: bool,
    /// Replace DIR even when it exists and is not empty.
    #[arg(long)]
    force: bool,
}

/// Parses the command line, runs it and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { 2 } else { 0 };
        }
    };
    let verbosity = progress::Verbosity::from_flags(cli.quiet, cli.verbose);
    let result = match cli.command {
        Some(Command::Enter(args)) => enter::run_enter(args),
        Some(Command::Binfmt(args)) => enter::run_binfmt(args),
        None => run_build(cli.build, verbosity),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => 0,
        Err(err) => {
            render_error(&err);
            if err.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

/// A command line that parses but makes no sense; exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn run_build(args: BuildArgs, verbosity: progress::Verbosity) -> anyhow::Result<i32> {
    let (Some(arch), Some(dir)) = (args.arch, args.dir) else {
        return Err(UsageError(
            "the build needs `--arch ARCH` and `DIR`: e.g. `sysroot-mk --arch aarch64 ./aarch64`; see `sysroot-mk --help`".into(),
        )
        .into());
    };
    let arch = arch
        .parse()
        .map_err(|e: sysroot_mk::arch::UnknownArch| UsageError(e.to_string()))?;
    let repos = if args.repos.is_empty() && args.repositories_file.is_none() {
        build::RepoSelection::Mirror {
            mirror: args.mirror,
            branch: args.branch,
        }
    } else {
        build::RepoSelection::Explicit {
            repos: args.repos,
            repositories_file: args.repositories_file,
        }
    };
    let reporter = progress::TerminalReporter::new(verbosity);
    let cache_dir = match (args.no_cache, args.cache_dir) {
        (true, _) => None,
        (false, Some(dir)) => Some(dir),
        (false, None) => sysroot_mk::repository::cache::default_or_warn(&reporter),
    };
    let packages = if args.packages.is_empty() {
        vec!["alpine-base".to_string()]
    } else {
        args.packages
    };
    let options = BuildOptions {
        arch,
        dir: dir.clone(),
        packages,
        repos,
        keys_dirs: args.keys_dirs,
        allow_untrusted: args.allow_untrusted,
        cache_dir,
        simulate: args.simulate,
        no_scripts: args.no_scripts,
        force: args.force,
    };
    sysroot_mk::output::handle_interrupts()?;
    let outcome = build::run(&options, &reporter as &dyn Reporter);
    if sysroot_mk::output::interrupted() {
        // The signal watcher removes what is unfinished, says so and exits 128 + N;
        // errors seen here are consequences of that cleanup.
        sysroot_mk::output::wait_for_exit();
    }
    reporter.finish();
    match outcome.with_context(|| format!("building `{}` failed", dir.display()))? {
        Outcome::Simulated(plan) => {
            let mut out = std::io::stdout().lock();
            for package in &plan.packages {
                writeln!(out, "{}", package.name_version())?;
            }
            out.flush()?;
        }
        Outcome::Built(summary) => {
            if verbosity != progress::Verbosity::Quiet {
                // A closed stderr must not turn a finished build into a failure.
                let _ = writeln!(std::io::stderr().lock(), "{summary}");
            }
        }
    }
    Ok(0)
}

/// Prints an error once, as `error: ...` and one `caused by:` line per cause.
pub(super) fn render_error(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    for cause in err.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
}

/// `sysroot-mk --simulate ... | head` must exit quietly: a closed stdout is not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
