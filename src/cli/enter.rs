//! Arguments of `enter` and `binfmt`, mapped onto the library.

use clap::{Args, Subcommand};
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use sysroot_mk::arch::Arch;
use sysroot_mk::binfmt::{self, Flags, Registration, Table};
use sysroot_mk::enter::{self, Bind, BinfmtMode, EnterError, EnterOptions, UsernsMode};
use sysroot_mk::report::Reporter;
use sysroot_mk::scripts::pending;

/// `sysroot-mk enter [OPTIONS] DIR [-- CMD [ARGS...]]`
#[derive(Debug, Args)]
pub struct EnterArgs {
    /// How foreign binaries reach qemu: `private` (default when the kernel allows: a
    /// binfmt_misc instance of the session's own; setuid works, host untouched), `host`
    /// (the host's handlers as they are) or `global` (register on the host with C, and keep it).
    #[arg(long, value_name = "MODE")]
    binfmt: Option<BinfmtMode>,
    /// The qemu to use (default: `qemu-<arch>-static` or `qemu-<arch>` on PATH).
    #[arg(long, value_name = "PATH")]
    qemu: Option<PathBuf>,
    /// The sysroot's arch, instead of reading `etc/apk/arch` or the ELF header of `bin/busybox`.
    #[arg(long)]
    arch: Option<Arch>,
    /// Run as this user of the sysroot (name or uid), with its groups and HOME.
    #[arg(long, short)]
    user: Option<String>,
    /// Bind a host path inside: `SRC:DST[:ro]` (repeatable).
    #[arg(long, value_name = "SRC:DST[:ro]")]
    bind: Vec<Bind>,
    /// Add `NAME=VALUE` to the clean environment, or pass the host's `NAME` (repeatable;
    /// `QEMU_*` is refused: set it inside the session instead).
    #[arg(long, value_name = "NAME[=VALUE]")]
    env: Vec<OsString>,
    /// The hostname inside (default: the sysroot's `etc/hostname`).
    #[arg(long)]
    hostname: Option<String>,
    /// Only run the package scripts the build left pending (every `enter` runs them
    /// first), then exit.
    #[arg(long, conflicts_with = "command")]
    run_pending: bool,
    /// How the session's ids map to the host's: `auto` (default: for root, an
    /// unprivileged range of host ids, the sysroot shown through an id-mapped mount, so
    /// root inside is not root outside) or `identity` (root inside is host root).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    userns: UsernsMode,
    /// The sysroot.
    dir: PathBuf,
    /// The command and its arguments (default: a login shell); `--` before it is optional.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

/// `sysroot-mk binfmt status|register|unregister`
#[derive(Debug, Args)]
pub struct BinfmtArgs {
    #[command(subcommand)]
    action: BinfmtAction,
    /// Accepted, but adds nothing: `binfmt` always prints what it reads and what it
    /// changes.
    // Its own flag, so that its help is not the build's; clap skips the global one here.
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum BinfmtAction {
    /// Show the host's handlers and, for each arch, whether setuid works under emulation.
    Status {
        /// Arches to report on (default: all known).
        arch: Vec<Arch>,
    },
    /// Register qemu for these arches on the host (replacing gaplessly) and keep it.
    Register {
        /// Arches to register.
        #[arg(required = true)]
        arch: Vec<Arch>,
        /// binfmt_misc flags, letters from POCF (default: OCF, plus P when qemu honours it).
        /// C makes setuid work, and lets every local user become root through qemu.
        #[arg(long)]
        flags: Option<String>,
        /// The qemu to use (only with one arch).
        #[arg(long, value_name = "PATH")]
        qemu: Option<PathBuf>,
    },
    /// Remove the host's qemu handlers for these arches.
    Unregister {
        /// Arches whose handlers go.
        #[arg(required = true)]
        arch: Vec<Arch>,
    },
}

/// Prints warnings, and progress under `-v`, to stderr.
struct Stderr {
    verbose: bool,
}

impl Reporter for Stderr {
    fn info(&self, message: &str) {
        if self.verbose {
            eprintln!("{message}");
        }
    }
    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// Runs the scripts a build left pending in `dir`, saying so on stderr.
fn run_pending(dir: &Path, arch: Option<Arch>, reporter: &Stderr) -> anyhow::Result<()> {
    if !dir.is_dir() {
        // `enter` itself says what is wrong with DIR.
        return Ok(());
    }
    let Some(list) = pending::read_pending(dir)? else {
        return Ok(());
    };
    let arch = match arch {
        Some(arch) => arch,
        None => enter::detect_arch(dir)?,
    };
    eprintln!(
        "running {} package scripts of `{}` that the build left pending",
        list.len(),
        dir.display()
    );
    if let Some(run) = pending::run_pending(dir, arch, reporter)? {
        if run.failed > 0 {
            reporter.warn(&format!(
                "{} of {} pending scripts failed; their packages are marked broken (`f:s`)",
                run.failed, run.ran
            ));
        }
    }
    Ok(())
}

/// Runs `enter`, returning the command's exit status.
pub fn run_enter(args: EnterArgs, verbosity: super::progress::Verbosity) -> anyhow::Result<i32> {
    let reporter = Stderr {
        verbose: verbosity == super::progress::Verbosity::Verbose,
    };
    run_pending(&args.dir, args.arch, &reporter)?;
    if args.run_pending {
        return Ok(0);
    }
    let env = args
        .env
        .iter()
        .map(|item| {
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(item.as_os_str());
            match bytes.iter().position(|&b| b == b'=') {
                Some(i) => {
                    let (name, value) = (&bytes[..i], &bytes[i + 1..]);
                    use std::os::unix::ffi::OsStrExt;
                    (
                        std::ffi::OsStr::from_bytes(name).into(),
                        Some(std::ffi::OsStr::from_bytes(value).into()),
                    )
                }
                None => (item.clone(), None),
            }
        })
        .collect();
    let options = EnterOptions {
        root: args.dir,
        command: args.command,
        binfmt: args.binfmt,
        qemu: args.qemu,
        arch: args.arch,
        user: args.user,
        binds: args.bind,
        env,
        hostname: args.hostname,
        userns: args.userns,
    };
    match enter::run(&options, &reporter) {
        Ok(status) => Ok(status),
        // A command that is not there exits like a shell says (127/126), with the message.
        Err(err @ EnterError::Exec { .. }) => {
            let status = err.exit_status();
            super::render_error(&anyhow::Error::new(err), Default::default());
            Ok(status)
        }
        Err(err) => Err(err.into()),
    }
}

/// Runs `binfmt`.
pub fn run_binfmt(args: BinfmtArgs) -> anyhow::Result<i32> {
    match args.action {
        BinfmtAction::Status { arch } => status(arch),
        BinfmtAction::Register { arch, flags, qemu } => {
            if !nix::unistd::geteuid().is_root() {
                return Err(binfmt::BinfmtError::NeedsRoot("register").into());
            }
            if qemu.is_some() && arch.len() > 1 {
                anyhow::bail!(
                    "`--qemu` names one interpreter; register one arch at a time with it"
                );
            }
            let flags = flags.as_deref().map(Flags::parse).transpose()?;
            // Everything is checked before the host is touched.
            let mut regs = Vec::new();
            for a in arch {
                let qemu = binfmt::find_qemu(a, qemu.as_deref())?;
                let flags = match flags {
                    Some(flags) => flags,
                    None if binfmt::qemu_preserves_argv0(&qemu) => Flags::parse("POCF")?,
                    None => Flags::parse("OCF")?,
                };
                regs.push((a, Registration::for_arch(a, &qemu, flags)));
            }
            if binfmt::mount_host_table()? {
                eprintln!("mounted the host's binfmt_misc at `{}`", binfmt::HOST_MOUNT);
            }
            let table = Table::at(binfmt::HOST_MOUNT);
            let mut credentials = false;
            let mut out = std::io::stdout().lock();
            for (a, reg) in regs {
                table.replace(&reg)?;
                credentials |= reg.flags.credentials;
                writeln!(
                    out,
                    "{a}: registered `{}` -> `{}` (flags {})",
                    reg.name,
                    reg.interpreter.display(),
                    reg.flags
                )?;
            }
            if credentials {
                eprintln!("warning: with the C flag every local user can gain root through qemu");
            }
            Ok(0)
        }
        BinfmtAction::Unregister { arch } => {
            if !nix::unistd::geteuid().is_root() {
                return Err(binfmt::BinfmtError::NeedsRoot("unregister").into());
            }
            let removed = binfmt::with_host_table(move |table| {
                let mut removed = Vec::new();
                for a in arch {
                    // Disabled ones too: re-enabling one would bring it back.
                    for entry in table.entries_for(a)? {
                        table.unregister(&entry.name)?;
                        removed.push(format!("{a}: removed `{}`", entry.name));
                    }
                }
                Ok(removed)
            })?;
            let mut out = std::io::stdout().lock();
            for line in removed {
                writeln!(out, "{line}")?;
            }
            Ok(0)
        }
    }
}

fn status(arches: Vec<Arch>) -> anyhow::Result<i32> {
    let (entries, enabled) = binfmt::with_host_table(|t| Ok((t.entries()?, t.enabled()?)))?;
    // `binfmt status | head` must end quietly: write errors go up, where a broken pipe
    // exits 0.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "binfmt_misc: {}",
        if enabled { "enabled" } else { "disabled" }
    )?;
    for e in &entries {
        let matcher = match &e.matcher {
            binfmt::Matcher::Magic {
                offset,
                magic,
                mask,
            } => format!(
                "offset {offset} magic {} mask {}",
                hex::encode(magic),
                mask.as_deref()
                    .map(hex::encode)
                    .unwrap_or_else(|| "-".into())
            ),
            binfmt::Matcher::Extension(ext) => format!("extension {ext}"),
        };
        writeln!(
            out,
            "{}: {} interpreter {} flags {} {matcher}",
            e.name,
            if e.enabled { "enabled" } else { "disabled" },
            e.interpreter.display(),
            if e.flags == Flags::default() {
                "-".to_string()
            } else {
                e.flags.to_string()
            },
        )?;
    }
    let host = Arch::host();
    let arches: Vec<Arch> = if arches.is_empty() {
        Arch::all().collect()
    } else {
        arches
    };
    let private = binfmt::private_instances_supported();
    for a in arches {
        let handlers: Vec<_> = entries
            .iter()
            .filter(|e| e.enabled && e.matches_arch(a))
            .collect();
        let disabled: Vec<&str> = entries
            .iter()
            .filter(|e| !e.enabled && e.matches_arch(a))
            .map(|e| e.name.as_str())
            .collect();
        let mut verdict = if host.is_some_and(|h| a.runs_natively_on(h)) {
            "native".to_string()
        } else if handlers.is_empty() {
            match (private, binfmt::find_qemu(a, None).is_ok()) {
                (true, true) => "no handler (enter uses a private one, where setuid works)".into(),
                (_, false) => format!(
                    "no handler and no qemu-{}-static: enter cannot run it (install qemu-user-static)",
                    a.info().qemu
                ),
                (false, true) => "no handler, and this kernel has no private binfmt_misc \
                                  instances (Linux >= 6.7): enter needs one registered"
                    .into(),
            }
        } else if handlers.iter().all(|e| e.setuid_works()) {
            format!("`{}`, setuid works", handlers[0].name)
        } else {
            let bad = handlers
                .iter()
                .find(|e| !e.setuid_works())
                .map(|e| e.name.as_str())
                .unwrap_or("");
            format!("`{bad}` lacks C: setuid fails under --binfmt host")
        };
        if !disabled.is_empty() {
            verdict.push_str(&format!("; disabled: `{}`", disabled.join("`, `")));
        }
        writeln!(out, "{a}: {verdict}")?;
    }
    Ok(0)
}
