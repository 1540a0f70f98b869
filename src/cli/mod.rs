//! Command-line parsing, the terminal reporter and error rendering (binary only).
//!
//! Everything here is presentation: the work happens in the library, which this
//! module calls once per command and whose errors it prints as a cause chain.

mod cache;
mod enter;
mod hints;
mod image;
mod progress;
mod update;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use sysroot_mk::build::{self, BuildOptions};
use sysroot_mk::report::Reporter;

/// Build Alpine Linux sysroots for any architecture, natively, and step inside them.
#[derive(Debug, Parser)]
#[command(
    name = "sysroot-mk",
    version,
    arg_required_else_help = true,
    override_usage = "sysroot-mk [build] [OPTIONS] [--arch ARCH] DIR [PACKAGE...]\n       sysroot-mk add|del [OPTIONS] DIR PACKAGE...\n       sysroot-mk upgrade [OPTIONS] DIR\n       sysroot-mk plan [OPTIONS] [--arch ARCH] [PACKAGE...]\n       sysroot-mk enter [OPTIONS] DIR [CMD [ARGS...]]\n       sysroot-mk binfmt status|register|unregister [ARCH...]\n       sysroot-mk cache list|clean|prune",
    after_help = "`sysroot-mk --arch ARCH DIR [PACKAGE...]` is short for `sysroot-mk build ...`; on a DIR that holds an apk database it updates DIR in place, the world becoming the PACKAGEs."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Explain what is done: URLs fetched, cache hits and misses, keys used, scripts run;
    /// for `enter`, the emulation and user namespace chosen.
    #[arg(short, long, global = true)]
    verbose: bool,
}

/// The command line's definition.
fn cli_command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a sysroot (the default: `sysroot-mk --arch A DIR` means `sysroot-mk build --arch A DIR`).
    Build(BuildArgs),
    /// Resolve packages and print the install plan (`name-version`, one per line); write nothing.
    Plan(PlanArgs),
    /// Run a shell or a command inside a sysroot (under qemu when the arch is foreign).
    Enter(enter::EnterArgs),
    /// Show, register or remove the host's binfmt_misc handlers for qemu.
    Binfmt(enter::BinfmtArgs),
    /// List, clean or prune the index and package cache.
    Cache(cache::CacheArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `sysroot-mk man > sysroot-mk.1`.
    Man,
    /// Add packages to an existing sysroot's world, in place, as `apk add`.
    Add(update::ChangeArgs),
    /// Remove packages from an existing sysroot's world, in place, as `apk del`.
    Del(update::ChangeArgs),
    /// Upgrade an existing sysroot's packages in place, as `apk upgrade`.
    Upgrade(update::UpgradeArgs),
}

/// The words that name a subcommand (anything else first is the bare build form).
const SUBCOMMANDS: [&str; 11] = [
    "add",
    "del",
    "upgrade",
    "build",
    "plan",
    "enter",
    "binfmt",
    "cache",
    "completions",
    "man",
    "help",
];

/// Where packages come from and what they must be signed by (build and plan).
#[derive(Debug, clap::Args)]
struct SourceArgs {
    /// Target architecture [default: this host's] (x86_64, x86, aarch64, armhf, armv7, ppc64le, s390x, riscv64, loongarch64, ppc64, ppc, mips64, mips64el; amd64, arm64, i686, ppc64el are understood); repeatable with `--output oci`.
    #[arg(long, value_name = "ARCH")]
    arch: Vec<String>,
    /// A repository (`<repo>/<arch>/APKINDEX.tar.gz`): http(s) or file:// URL, or a path. Repeatable; order is priority.
    #[arg(long = "repo", short = 'X', value_name = "URL|PATH")]
    repos: Vec<String>,
    /// Mirror used when no --repo is given.
    #[arg(long, value_name = "URL", default_value = sysroot_mk::repository::DEFAULT_MIRROR)]
    mirror: String,
    /// Branch of the mirror: latest-stable, edge, v3.19, ...
    #[arg(long, value_name = "NAME", default_value = sysroot_mk::repository::DEFAULT_BRANCH)]
    branch: String,
    /// The branch's repositories to use, in priority order (e.g. `main,community,testing`);
    /// a missing one other than `main` is skipped with a warning.
    #[arg(
        long = "repos",
        value_name = "NAME,...",
        value_delimiter = ',',
        default_values = sysroot_mk::repository::DEFAULT_REPOS,
        conflicts_with_all = ["repos", "repositories_file"]
    )]
    branch_repos: Vec<String>,
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
    /// No network at all: indexes and packages come from the cache (a miss fails).
    #[arg(long)]
    offline: bool,
}

impl SourceArgs {
    /// What these arguments say about which hints apply.
    fn typed(&self) -> hints::Typed {
        hints::Typed {
            mirror: self.repos.is_empty() && self.repositories_file.is_none(),
        }
    }
}

/// `sysroot-mk [build] [OPTIONS] [--arch ARCH] DIR [PACKAGE...]`
#[derive(Debug, clap::Args)]
struct BuildArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// The sysroot to create (must be absent or empty, unless --force); with --output tar or oci, the archive or the image layout.
    #[arg(value_name = "DIR", required = true)]
    dir: Option<PathBuf>,
    /// Packages to install, apk-style: `name`, `name=1.2-r0`, `name>=1.2`, `!name` (default: alpine-base).
    #[arg(value_name = "PACKAGE")]
    packages: Vec<String>,
    /// Resolve and print the install plan instead of building; prefer `sysroot-mk plan`.
    #[arg(long)]
    simulate: bool,
    /// Do not run package scripts now: record them for the first `sysroot-mk enter`.
    #[arg(long)]
    no_scripts: bool,
    /// Replace DIR even when it exists and is not empty.
    #[arg(long)]
    force: bool,
    /// A line of the sysroot's `etc/apk/repositories` (URL, or `@tag URL`; repeatable),
    /// instead of the repositories used for the build.
    #[arg(long = "repositories-out", value_name = "URL")]
    repositories_out: Vec<String>,
    /// Rewrite absolute symlinks as relative ones, so host tools given DIR as a sysroot
    /// (`clang --sysroot=DIR`) resolve them inside it; the rewrites are recorded.
    #[arg(long)]
    relative_links: bool,
    /// Write the exact resolution (packages, stanzas, repositories, keys) to FILE.
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Build exactly the resolution in FILE (from `--lock`), without resolving; its
    /// world, arch and repositories are used.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["lock", "repositories_file", "repos"])]
    locked: Option<PathBuf>,
    #[command(flatten)]
    image: image::ImageArgs,
}

/// `sysroot-mk plan [OPTIONS] [--arch ARCH] [PACKAGE...]`
#[derive(Debug, clap::Args)]
struct PlanArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Packages to resolve, apk-style (default: alpine-base).
    #[arg(value_name = "PACKAGE")]
    packages: Vec<String>,
    /// Also write the resolution to FILE, as `build --lock` does.
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
}

/// The arguments with `build` inserted when the user typed the bare build form:
/// the first word that is not an option (or an option's value) names no subcommand.
fn with_subcommand(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let command = cli_command();
    let build = command
        .find_subcommand("build")
        .cloned()
        .unwrap_or_else(|| clap::Command::new("build"));
    let takes_value = |word: &str| {
        build
            .get_arguments()
            .chain(command.get_arguments())
            .any(|a| {
                let named = match word.strip_prefix("--") {
                    Some(long) => a.get_long() == Some(long),
                    None => word.len() == 2 && a.get_short() == word.chars().nth(1),
                };
                named && a.get_action().takes_values()
            })
    };
    let mut i = 1;
    while let Some(word) = args.get(i).and_then(|w| w.to_str()) {
        if word == "--" || !word.starts_with('-') || word == "-" {
            break;
        }
        i += if !word.contains('=') && takes_value(word) {
            2
        } else {
            1
        };
    }
    let first = args.get(i).and_then(|w| w.to_str());
    let asks_about_the_tool = args[1..]
        .iter()
        .take(i.saturating_sub(1))
        .any(|w| matches!(w.to_str(), Some("-h" | "--help" | "-V" | "--version")));
    if args.len() <= 1 || asks_about_the_tool || first.is_some_and(|w| SUBCOMMANDS.contains(&w)) {
        return args;
    }
    let mut out = args;
    out.insert(1, "build".into());
    out
}

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
    use clap::FromArgMatches;
    let parsed = cli_command()
        .try_get_matches_from(with_subcommand(args))
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { 2 } else { 0 };
        }
    };
    let verbosity = progress::Verbosity::from_flags(cli.quiet, cli.verbose);
    let typed = match &cli.command {
        Command::Build(args) => args.source.typed(),
        Command::Plan(args) => args.source.typed(),
        _ => hints::Typed::default(),
    };
    let result = match cli.command {
        Command::Build(args) => run_build(args, verbosity),
        Command::Plan(args) => run_plan(args.source, args.packages, args.lock, verbosity),
        Command::Enter(args) => enter::run_enter(args, verbosity),
        Command::Binfmt(args) => enter::run_binfmt(args),
        Command::Cache(args) => cache::run_cache(args, verbosity),
        Command::Completions { shell } => print_completions(shell),
        Command::Man => print_man_page(),
        Command::Add(args) => update::run(update::Which::Add(args), verbosity),
        Command::Del(args) => update::run(update::Which::Del(args), verbosity),
        Command::Upgrade(args) => update::run(update::Which::Upgrade(args), verbosity),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => 0,
        Err(err) => {
            render_error(&err, typed);
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
pub(super) struct UsageError(pub(super) String);

fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli_command(), "sysroot-mk", &mut out);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(0)
}

fn print_man_page() -> anyhow::Result<i32> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cli_command()).render(&mut out)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(0)
}

/// The target arches: `--arch` values (Alpine names and common aliases, each once),
/// else this host's.
fn target_arches(
    names: &[String],
    verbosity: progress::Verbosity,
) -> anyhow::Result<Vec<sysroot_mk::arch::Arch>> {
    use sysroot_mk::arch::Arch;
    if names.is_empty() {
        let host = Arch::host().ok_or_else(|| {
            UsageError(format!(
                "this host's arch (`{}`) is not one Alpine builds for; pass `--arch`",
                std::env::consts::ARCH
            ))
        })?;
        return Ok(vec![host]);
    }
    let mut arches = Vec::with_capacity(names.len());
    for name in names {
        let (arch, note) = Arch::resolve(name).map_err(|e| UsageError(e.to_string()))?;
        if let (Some(note), false) = (note, verbosity == progress::Verbosity::Quiet) {
            let _ = writeln!(std::io::stderr(), "note: {note}");
        }
        if arches.contains(&arch) {
            return Err(UsageError(format!("`--arch {}` is given twice", arch.name())).into());
        }
        arches.push(arch);
    }
    Ok(arches)
}

/// Build options from the shared source arguments.
fn options_from(
    source: SourceArgs,
    dir: PathBuf,
    packages: Vec<String>,
    verbosity: progress::Verbosity,
    reporter: &dyn Reporter,
) -> anyhow::Result<BuildOptions> {
    let arch = target_arches(&source.arch, verbosity)?[0];
    let repos = if source.repos.is_empty() && source.repositories_file.is_none() {
        build::RepoSelection::Mirror(sysroot_mk::repository::Mirror {
            url: source.mirror,
            branch: source.branch,
            repos: source.branch_repos,
        })
    } else {
        build::RepoSelection::Explicit {
            repos: source.repos,
            repositories_file: source.repositories_file,
        }
    };
    let cache_dir = match (source.no_cache, source.cache_dir) {
        (true, _) => None,
        (false, Some(dir)) => Some(dir),
        (false, None) => sysroot_mk::cache::default_or_warn(reporter),
    };
    let packages = if packages.is_empty() {
        vec!["alpine-base".to_string()]
    } else {
        packages
    };
    Ok(BuildOptions {
        keys_dirs: source.keys_dirs,
        allow_untrusted: source.allow_untrusted,
        offline: source.offline,
        cache_dir,
        ..BuildOptions::new(arch, dir, packages, repos)
    })
}

/// The plain form on a DIR holding an apk database (without `--force`, into a
/// directory): an update that sets the world.
fn update_in_place(
    args: &BuildArgs,
    verbosity: progress::Verbosity,
) -> anyhow::Result<Option<sysroot_mk::update::UpdateOptions>> {
    let Some(dir) = &args.dir else {
        return Ok(None);
    };
    let directory = args.image.is_directory();
    if args.force || !directory || !sysroot_mk::update::state::has_database(dir) {
        return Ok(None);
    }
    if args.lock.is_some() || args.locked.is_some() {
        return Err(UsageError(format!(
            "`{}` holds a sysroot, which is updated in place; `--lock` and `--locked` build a \
             new one: pass `--force` to replace it, or another DIR",
            dir.display()
        ))
        .into());
    }
    let arch = match args.source.arch.as_slice() {
        [] => None,
        [one] => Some(target_arches(std::slice::from_ref(one), verbosity)?[0]),
        _ => return Err(UsageError("an existing sysroot has one arch".into()).into()),
    };
    let repos =
        (!args.source.repos.is_empty() || args.source.repositories_file.is_some()).then(|| {
            build::RepoSelection::Explicit {
                repos: args.source.repos.clone(),
                repositories_file: args.source.repositories_file.clone(),
            }
        });
    let cache_dir = match (args.source.no_cache, &args.source.cache_dir) {
        (true, _) => None,
        (false, Some(dir)) => Some(dir.clone()),
        (false, None) => {
            sysroot_mk::cache::default_or_warn(&progress::TerminalReporter::new(verbosity))
        }
    };
    let packages = if args.packages.is_empty() {
        vec!["alpine-base".to_string()]
    } else {
        args.packages.clone()
    };
    Ok(Some(sysroot_mk::update::UpdateOptions {
        dir: dir.clone(),
        arch,
        action: sysroot_mk::update::Action::Set(packages),
        repos,
        keys_dirs: args.source.keys_dirs.clone(),
        allow_untrusted: args.source.allow_untrusted,
        cache_dir,
        no_scripts: args.no_scripts,
        offline: args.source.offline,
    }))
}

/// `sysroot-mk plan` (and the old `--simulate`): the plan on stdout, nothing written.
fn run_plan(
    source: SourceArgs,
    packages: Vec<String>,
    lock: Option<PathBuf>,
    verbosity: progress::Verbosity,
) -> anyhow::Result<i32> {
    if source.arch.len() > 1 {
        return Err(UsageError("`plan` resolves for one `--arch` at a time".into()).into());
    }
    let reporter = progress::TerminalReporter::new(verbosity);
    let mut options = options_from(source, PathBuf::new(), packages, verbosity, &reporter)?;
    options.lock = lock;
    sysroot_mk::output::handle_interrupts()?;
    let outcome = build::plan(&options, &reporter as &dyn Reporter);
    if sysroot_mk::output::interrupted() {
        // The signal watcher removes what is unfinished, says so and exits 128 + N;
        // errors seen here are consequences of that cleanup.
        sysroot_mk::output::wait_for_exit();
    }
    reporter.finish();
    let what = options.packages.join(" ");
    let resolved =
        outcome.with_context(|| format!("planning `{what}` for {} failed", options.arch))?;
    let mut out = std::io::stdout().lock();
    for package in &resolved.plan.packages {
        writeln!(out, "{}", package.name_version())?;
    }
    out.flush()?;
    Ok(0)
}

fn run_build(args: BuildArgs, verbosity: progress::Verbosity) -> anyhow::Result<i32> {
    if !args.simulate {
        if let Some(options) = update_in_place(&args, verbosity)? {
            return update::run_set(options, verbosity);
        }
    }
    let Some(dir) = args.dir else {
        return Err(UsageError(
            "the build needs `DIR`: e.g. `sysroot-mk --arch aarch64 ./aarch64`; see `sysroot-mk --help`".into(),
        )
        .into());
    };
    if args.simulate {
        // The old spelling: `--simulate gcc` must not plan alpine-base into a DIR `gcc`.
        let looks_like_a_package = !dir.exists()
            && dir.components().count() == 1
            && !dir.as_os_str().to_string_lossy().starts_with('.');
        if looks_like_a_package {
            return Err(UsageError(format!(
                "`--simulate` reads `{}` as DIR, not as a package; to plan packages, run \
                 `sysroot-mk plan [--arch ARCH] {}`",
                dir.display(),
                std::iter::once(dir.display().to_string())
                    .chain(args.packages.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
            .into());
        }
        return run_plan(args.source, args.packages, args.lock, verbosity);
    }
    let mut source = args.source;
    if let Some(locked) = &args.locked {
        if !args.packages.is_empty() {
            return Err(UsageError(
                "`--locked` builds the lockfile's world: give no PACKAGE".into(),
            )
            .into());
        }
        // The lockfile says which arch; `--arch` may repeat it.
        if source.arch.is_empty() {
            let lock = sysroot_mk::lock::Lockfile::read(locked)?;
            source.arch.push(lock.arch);
        }
    }
    let arches = target_arches(&source.arch, verbosity)?;
    let (output, source_date_epoch, reproducible) = image::image_options(&args.image, &dir, false)?;
    if arches.len() > 1 && output != sysroot_mk::image::Format::Oci {
        return Err(UsageError(
            "several `--arch` values need `--output oci` (one image per arch)".into(),
        )
        .into());
    }
    let image_args = args.image;
    let reporter = progress::TerminalReporter::new(verbosity);
    let mut options = options_from(source, dir.clone(), args.packages, verbosity, &reporter)?;
    options.no_scripts = args.no_scripts;
    options.force = args.force;
    options.output = output;
    options.source_date_epoch = source_date_epoch;
    options.reproducible = reproducible;
    options.relative_links = args.relative_links;
    options.lock = args.lock;
    if let Some(locked) = args.locked {
        options.locked = Some(locked);
        // The lockfile's repositories are the ones built from.
        options.repos = build::RepoSelection::Explicit {
            repos: Vec::new(),
            repositories_file: None,
        };
    }
    options.repositories_out = (!args.repositories_out.is_empty()).then_some(args.repositories_out);
    // Before anything starts a thread (see `enter_rootless`).
    let mapped = match enter_rootless() {
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
    if mapped == Some(sysroot_mk::userns::IdMap::Single) {
        reporter.warn(&format!(
            "no subordinate ids for you in `/etc/subuid` and `/etc/subgid` (or no `newuidmap`): \
             the build runs in a user namespace that maps only you, so its files belong to you; \
             their owners are recorded in apk's database (`{}`)",
            sysroot_mk::db::INSTALLED
        ));
    }
    // After the rootless fork: the handlers start a thread.
    sysroot_mk::output::handle_interrupts()?;
    let outcomes = build::run_arches(&options, &arches, &reporter as &dyn Reporter);
    if sysroot_mk::output::interrupted() {
        // The signal watcher removes what is unfinished, says so and exits 128 + N;
        // errors seen here are consequences of that cleanup.
        sysroot_mk::output::wait_for_exit();
    }
    reporter.finish();
    for summary in outcomes.with_context(|| format!("building `{}` failed", dir.display()))? {
        if verbosity != progress::Verbosity::Quiet {
            let _ = writeln!(std::io::stderr(), "{summary}");
        }
    }
    if verbosity != progress::Verbosity::Quiet
        && options.output == sysroot_mk::image::Format::Directory
    {
        let _ = writeln!(std::io::stderr(), "{}", next_step(&dir));
    }
    image::push_image(&image_args, &dir)?;
    Ok(0)
}

/// What to do with a finished sysroot, and what its first `enter` will do.
fn next_step(dir: &std::path::Path) -> String {
    let shown = shell_word(dir);
    match sysroot_mk::scripts::pending::read_pending(dir) {
        Ok(Some(list)) if !list.is_empty() => format!(
            "enter it with: sysroot-mk enter {shown} (it first runs the {} package scripts left pending)",
            list.len()
        ),
        _ => format!("enter it with: sysroot-mk enter {shown}"),
    }
}

/// `path` as a shell would need it typed.
fn shell_word(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A non-root build goes on as root of a user namespace: `Ok(Ok(map))` in it (or
/// `None` when not needed), `Ok(Err(code))` in the parent once the build ended there.
fn enter_rootless(
) -> Result<Result<Option<sysroot_mk::userns::IdMap>, i32>, sysroot_mk::rootless::RootlessError> {
    use sysroot_mk::rootless::Entered;
    // SAFETY: nothing has started a thread yet: arguments are parsed, nothing else ran.
    Ok(match unsafe { sysroot_mk::rootless::enter() }? {
        Entered::NotNeeded => Ok(None),
        Entered::Namespace(map) => Ok(Some(map)),
        Entered::Parent(code) => Err(code),
    })
}

/// Prints an error once, as `error: ...`, one `caused by:` line per cause, and the
/// `hint:` that applies to what was typed, if any.
pub(super) fn render_error(err: &anyhow::Error, typed: hints::Typed) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    for cause in err.chain().skip(1) {
        let _ = writeln!(stderr, "  caused by: {cause}");
    }
    if let Some(hint) = hints::hint_line(err, typed) {
        let _ = writeln!(stderr, "hint: {hint}");
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
