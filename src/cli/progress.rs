//! The terminal side of [`Reporter`]: indicatif bars on a TTY, plain lines under `-v`,
//! warnings only otherwise, nothing but errors under `-q`.
//!
//! Bars are drawn on stderr so that stdout stays clean for `--simulate`'s plan.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use sysroot_mk::report::{Reporter, Stage};

/// How much the user asked to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: errors only.
    Quiet,
    /// Default: warnings and, on a terminal, progress bars.
    Normal,
    /// `-v`: every info line too.
    Verbose,
}

impl Verbosity {
    /// Maps the `-q` / `-v` flags.
    pub fn from_flags(quiet: bool, verbose: bool) -> Verbosity {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, true) => Verbosity::Verbose,
            (false, false) => Verbosity::Normal,
        }
    }
}

/// Renders library events for a person.
pub struct TerminalReporter {
    verbosity: Verbosity,
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    bytes: ProgressBar,
    packages: Mutex<Option<ProgressBar>>,
}

impl TerminalReporter {
    /// Bars only when stderr is a terminal and not under `-q`.
    pub fn new(verbosity: Verbosity) -> TerminalReporter {
        let bars = (verbosity != Verbosity::Quiet && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let bytes = multi.add(ProgressBar::hidden());
            bytes.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bytes.set_prefix("download");
            Bars {
                multi,
                bytes,
                packages: Mutex::new(None),
            }
        });
        TerminalReporter { verbosity, bars }
    }

    /// Clears the bars so that the summary and errors print on clean lines.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.bytes.finish_and_clear();
            if let Some(p) = bars.packages.lock().map(|mut p| p.take()).ok().flatten() {
                p.finish_and_clear();
            }
            let _ = bars.multi.clear();
        }
    }

    fn line(&self, text: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

impl Reporter for TerminalReporter {
    fn stage(&self, stage: Stage) {
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("==> {stage:?}"));
        }
    }

    fn info(&self, message: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.line(message);
        }
    }

    fn warn(&self, message: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.line(&format!("warning: {message}"));
        }
    }

    fn download_started(&self, name: &str, total: u64) {
        if let Some(bars) = &self.bars {
            if bars.bytes.is_hidden() {
                bars.bytes.set_draw_target(ProgressDrawTarget::stderr());
            }
            bars.bytes.inc_length(total);
        }
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("fetching {name}"));
        }
    }

    fn download_progress(&self, _name: &str, bytes: u64) {
        if let Some(bars) = &self.bars {
            bars.bytes.inc(bytes);
        }
    }

    fn install_started(&self, count: usize) {
        if let Some(bars) = &self.bars {
            let bar = bars.multi.add(ProgressBar::new(count as u64));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix("install");
            if let Ok(mut slot) = bars.packages.lock() {
                *slot = Some(bar);
            }
        }
    }

    fn package_installed(&self, name: &str) {
        if let Some(bars) = &self.bars {
            if let Ok(slot) = bars.packages.lock() {
                if let Some(bar) = slot.as_ref() {
                    bar.set_message(name.to_string());
                    bar.inc(1);
                }
            }
        }
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("installed {name}"));
        }
    }
}
