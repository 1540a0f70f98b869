//! `sysroot-mk cache list|clean|prune`.

use super::progress::Verbosity;
use super::UsageError;
use std::io::Write;
use std::path::PathBuf;
use sysroot_mk::cache::manage::{self, EntryKind};

/// `sysroot-mk cache [--cache-dir DIR] list|clean|prune`
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// The cache [default: $XDG_CACHE_HOME/sysroot-mk].
    #[arg(long, value_name = "DIR", global = true)]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    action: CacheAction,
}

#[derive(Debug, clap::Subcommand)]
enum CacheAction {
    /// List the entries and their sizes (bytes, path, what it is).
    List,
    /// Remove everything the cache holds.
    Clean,
    /// Remove what no build can use: other layouts, packages no cached index lists,
    /// stale partial downloads; with --max-age, also indexes not refreshed for AGE.
    Prune {
        /// `30d`, `12h`, `90m`, `600s` (a bare number is days).
        #[arg(long, value_name = "AGE")]
        max_age: Option<String>,
    },
}

/// Runs `sysroot-mk cache ...`.
pub fn run_cache(args: CacheArgs, verbosity: Verbosity) -> anyhow::Result<i32> {
    let Some(dir) = args.cache_dir.or_else(sysroot_mk::cache::default_dir) else {
        return Err(UsageError(
            "no cache folder: neither XDG_CACHE_HOME nor HOME is set; pass `--cache-dir`".into(),
        )
        .into());
    };
    let mut out = std::io::stdout().lock();
    match args.action {
        CacheAction::List => {
            let entries = manage::list(&dir)?;
            for entry in &entries {
                let what = match (&entry.what, entry.kind) {
                    (Some(what), kind) => format!("{} {what}", kind.word()),
                    (None, EntryKind::OldLayout) => {
                        "old-layout (unused; `sysroot-mk cache prune` removes it)".to_string()
                    }
                    (None, kind) => kind.word().to_string(),
                };
                writeln!(out, "{}\t{}\t{what}", entry.size, entry.path.display())?;
            }
            let total: u64 = entries.iter().map(|e| e.size).sum();
            if verbosity != Verbosity::Quiet {
                let _ = writeln!(
                    std::io::stderr(),
                    "{} entries, {} in `{}`",
                    entries.len(),
                    human(total),
                    dir.display()
                );
            }
        }
        CacheAction::Clean => {
            let removed = manage::clean(&dir)?;
            writeln!(
                out,
                "removed {} entries, {} from `{}`",
                removed.entries,
                human(removed.bytes),
                dir.display()
            )?;
        }
        CacheAction::Prune { max_age } => {
            let max_age = match max_age {
                Some(text) => Some(manage::parse_age(&text).ok_or_else(|| {
                    UsageError(format!(
                        "`--max-age {text}`: expected a number with `s`, `m`, `h` or `d`"
                    ))
                })?),
                None => None,
            };
            let removed = manage::prune(&dir, max_age, std::time::SystemTime::now())?;
            writeln!(
                out,
                "removed {} entries, {} from `{}`",
                removed.entries,
                human(removed.bytes),
                dir.display()
            )?;
        }
    }
    out.flush()?;
    Ok(0)
}

fn human(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
