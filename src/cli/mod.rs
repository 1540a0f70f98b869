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
    /// Target architecture (x86_64, x86, aarch64, armhf, armv7, ppc64le, s390x, riscv64, loongarch64, ppc64, ppc, mips64, mips64el); repeatable with `--output oci`.
    #[arg(long, value_name = "ARCH")]
    arch: Vec<String>,
    /// The sysroot to create (must be absent or empty, unless --force); with --output tar or oci, the archive or the image layout.
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
    #[command(flatten)]
    image: ImageArgs,
}

// ---- Outputs other than a directory (tar, OCI) and reproducibility -------------------

/// What is written at DIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputKind {
    /// The sysroot as a directory.
    Dir,
    /// A tar archive, compressed by DIR's extension (`.tar.gz`, `.tar.zst`); `-` writes it uncompressed to stdout.
    Tar,
    /// A gzip-compressed tar archive, whatever the extension.
    #[value(name = "tar.gz")]
    TarGz,
    /// A zstd-compressed tar archive, whatever the extension.
    #[value(name = "tar.zst")]
    TarZst,
    /// An OCI image layout directory (one image per `--arch`, tagged `latest`).
    Oci,
}

#[derive(Debug, clap::Args)]
struct ImageArgs {
    /// What to write at DIR: dir, tar (tar.gz, tar.zst) or oci.
    #[arg(
        long = "output",
        short = 'o',
        value_name = "KIND",
        default_value = "dir"
    )]
    output: OutputKind,
    /// Reproducible output: mtimes clamped to $SOURCE_DATE_EPOCH, or else to the newest package's build time.
    #[arg(long)]
    reproducible: bool,
    /// After an `--output oci` build, push the image (all arches) to REF (`HOST/REPO:TAG`) with `skopeo copy`.
    #[arg(long, value_name = "REF")]
    push: Option<String>,
}

/// `--push`: the layout goes to the registry through skopeo; prints the stored digest.
fn push_image(args: &ImageArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    if let Some(reference) = &args.push {
        let digest = sysroot_mk::image::push(dir, reference)
            .with_context(|| format!("pushing `{}` failed", dir.display()))?;
        println!("{reference}@{digest}");
    }
    Ok(())
}

/// The output format, the epoch (`SOURCE_DATE_EPOCH`) and `--reproducible` of a build.
fn image_options(
    args: &ImageArgs,
    dir: &std::path::Path,
    simulate: bool,
) -> anyhow::Result<(sysroot_mk::image::Format, Option<u64>, bool)> {
    use sysroot_mk::image::{Compression, Format};
    let format = match args.output {
        OutputKind::Dir => Format::Directory,
        OutputKind::Tar => Format::Tar(Compression::from_path(dir)),
        OutputKind::TarGz => Format::Tar(Compression::Gzip),
        OutputKind::TarZst => Format::Tar(Compression::Zstd),
        OutputKind::Oci => Format::Oci,
    };
    if args.push.is_some() && (format != Format::Oci || simulate) {
        return Err(
            UsageError("`--push` needs `--output oci` (and no `--simulate`)".into()).into(),
        );
    }
    if dir == std::path::Path::new("-") && !matches!(format, Format::Tar(_)) {
        return Err(UsageError("`-` (stdout) needs `--output tar`".into()).into());
    }
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => {
            Some(value.trim().parse::<u64>().map_err(|_| {
                UsageError(format!(
                    "SOURCE_DATE_EPOCH=`{value}` is not a number of seconds since 1970"
                ))
            })?)
        }
        _ => None,
    };
    Ok((format, epoch, args.reproducible))
}

// ---- end of image outputs ---------------------------------------------------------------

/// Parses the command line, runs it and returns the exit code.
pub fn main() -> i32 {
    // The build's script host: this binary re-executed, before anything else runs.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == sysroot_mk::scripts::host::SUBCOMMAND)
    {
        return sysroot_mk::scripts::host::serve(&args[2..]);
    }
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
    let (Some(first_arch), Some(dir)) = (args.arch.first(), args.dir) else {
        return Err(UsageError(
            "the build needs `--arch ARCH` and `DIR`: e.g. `sysroot-mk --arch aarch64 ./aarch64`; see `sysroot-mk --help`".into(),
        )
        .into());
    };
    let parse_arch = |a: &String| {
        a.parse::<sysroot_mk::arch::Arch>()
            .map_err(|e| UsageError(e.to_string()))
    };
    let arch = parse_arch(first_arch)?;
    let arches = args
        .arch
        .iter()
        .map(parse_arch)
        .collect::<Result<Vec<_>, _>>()?;
    let (output, source_date_epoch, reproducible) =
        image_options(&args.image, &dir, args.simulate)?;
    let image_args = args.image;
    if arches.len() > 1 && output != sysroot_mk::image::Format::Oci {
        return Err(UsageError(
            "several `--arch` values need `--output oci` (one image per arch)".into(),
        )
        .into());
    }
    if let Some(twice) = arches
        .iter()
        .enumerate()
        .find_map(|(i, a)| arches[..i].contains(a).then_some(a))
    {
        return Err(UsageError(format!("`--arch {}` is given twice", twice.name())).into());
    }
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
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir
            .or_else(sysroot_mk::repository::cache::default_dir)
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
        output,
        source_date_epoch,
        reproducible,
    };
    let mapped = match enter_rootless(&options) {
        Ok(Ok(map)) => map,
        Ok(Err(code)) => return Ok(code),
        Err(err) => {
            if verbosity != progress::Verbosity::Quiet {
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: {}; building without one: files keep your ids, and package scripts wait for `sysroot-mk enter`",
                    sysroot_mk::report::error_chain(&err)
                );
            }
            None
        }
    };
    let reporter = progress::TerminalReporter::new(verbosity);
    if mapped == Some(sysroot_mk::userns::IdMap::Single) {
        reporter.warn(&format!(
            "no subordinate ids for you in `/etc/subuid` and `/etc/subgid` (or no `newuidmap`): \
             the build runs in a user namespace that maps only you, so its files belong to you; \
             their owners are recorded in apk's database (`{}`)",
            sysroot_mk::db::INSTALLED
        ));
    }
    let outcomes = build::run_arches(&options, &arches, &reporter as &dyn Reporter);
    reporter.finish();
    for outcome in outcomes.with_context(|| format!("building `{}` failed", dir.display()))? {
        print_outcome(outcome, verbosity)?;
    }
    push_image(&image_args, &dir)?;
    Ok(0)
}

fn print_outcome(outcome: Outcome, verbosity: progress::Verbosity) -> anyhow::Result<()> {
    match outcome {
        Outcome::Simulated(plan) => {
            let mut out = std::io::stdout().lock();
            for package in &plan.packages {
                writeln!(out, "{}", package.name_version())?;
            }
            out.flush()?;
        }
        Outcome::Built(summary) => {
            if verbosity != progress::Verbosity::Quiet {
                eprintln!("{summary}");
            }
        }
    }
    Ok(())
}

/// A non-root build goes on as root of a user namespace: `Ok(Ok(map))` in it (or
/// `None` when not needed), `Ok(Err(code))` in the parent once the build ended there.
fn enter_rootless(
    options: &BuildOptions,
) -> Result<Result<Option<sysroot_mk::userns::IdMap>, i32>, sysroot_mk::rootless::RootlessError> {
    use sysroot_mk::rootless::Entered;
    if options.simulate {
        return Ok(Ok(None));
    }
    // SAFETY: nothing has started a thread yet: arguments are parsed, nothing else ran.
    Ok(match unsafe { sysroot_mk::rootless::enter() }? {
        Entered::NotNeeded => Ok(None),
        Entered::Namespace(map) => Ok(Some(map)),
        Entered::Parent(code) => Err(code),
    })
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
