//! Command-line parsing, the terminal reporter and error rendering (binary only).

mod enter;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Build Alpine Linux sysroots for any architecture, natively, and step inside them.
#[derive(Debug, Parser)]
#[command(name = "sysroot-mk", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs,
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
    /// Target architecture (x86_64, aarch64, ppc64le, ...).
    #[arg(long)]
    arch: Option<String>,
    /// The sysroot to create.
    dir: Option<PathBuf>,
    /// Packages to install (default: alpine-base).
    packages: Vec<String>,
}

/// Parses the command line, runs it and returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Enter(args)) => enter::run_enter(args),
        Some(Command::Binfmt(args)) => enter::run_binfmt(args),
        None => {
            let _ = cli.build;
            Ok(0)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            1
        }
    }
}
