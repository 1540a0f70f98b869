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
    started: std::time::Instant,
}

struct Bars {
    multi: MultiProgress,
    /// Added on the first download: local repositories never show it.
    bytes: Mutex<Option<ProgressBar>>,
    packages: Mutex<Option<ProgressBar>>,
    /// Added when the first script runs; its count grows as scripts start.
    scripts: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn add(
        &self,
        slot: &Mutex<Option<ProgressBar>>,
        template: &str,
        prefix: &'static str,
    ) -> Option<ProgressBar> {
        let mut slot = slot.lock().ok()?;
        let bar = slot.get_or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(prefix);
            bar
        });
        Some(bar.clone())
    }

    fn get(slot: &Mutex<Option<ProgressBar>>) -> Option<ProgressBar> {
        slot.lock().ok()?.clone()
    }
}

const BYTES_TEMPLATE: &str = "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}";
const PACKAGES_TEMPLATE: &str = "{prefix:>10} [{bar:30}] {pos}/{len} {msg}";
const SCRIPTS_TEMPLATE: &str = "{prefix:>10} {pos} {msg} ({elapsed})";

impl TerminalReporter {
    /// Bars only when stderr is a terminal and not under `-q`.
    pub fn new(verbosity: Verbosity) -> TerminalReporter {
        let bars =
            (verbosity != Verbosity::Quiet && std::io::stderr().is_terminal()).then(|| Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bytes: Mutex::new(None),
                packages: Mutex::new(None),
                scripts: Mutex::new(None),
            });
        TerminalReporter {
            verbosity,
            bars,
            started: std::time::Instant::now(),
        }
    }

    /// Clears the bars so that the summary and errors print on clean lines.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            for slot in [&bars.bytes, &bars.packages, &bars.scripts] {
                if let Some(bar) = Bars::get(slot) {
                    bar.finish_and_clear();
                }
            }
            let _ = bars.multi.clear();
        }
    }

    fn line(&self, text: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(text);
            }
            // A closed stderr silences the output; it never stops the build.
            None => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }
}

impl Reporter for TerminalReporter {
    fn stage(&self, stage: Stage) {
        if self.verbosity == Verbosity::Verbose {
            let at = self.started.elapsed().as_secs_f64();
            self.line(&format!("==> {stage:?} (at {at:.3} s)"));
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
        if let Some(bar) = self
            .bars
            .as_ref()
            .and_then(|b| b.add(&b.bytes, BYTES_TEMPLATE, "download"))
        {
            bar.inc_length(total);
        }
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("fetching {name}"));
        }
    }

    fn download_progress(&self, _name: &str, bytes: u64) {
        if let Some(bar) = self.bars.as_ref().and_then(|b| Bars::get(&b.bytes)) {
            bar.inc(bytes);
        }
    }

    fn install_started(&self, count: usize) {
        if let Some(bar) = self
            .bars
            .as_ref()
            .and_then(|b| b.add(&b.packages, PACKAGES_TEMPLATE, "install"))
        {
            bar.set_length(count as u64);
        }
    }

    fn script_started(&self, script: &str) {
        if let Some(bar) = self
            .bars
            .as_ref()
            .and_then(|b| b.add(&b.scripts, SCRIPTS_TEMPLATE, "scripts"))
        {
            bar.inc(1);
            bar.set_message(script.to_string());
        }
    }

    fn package_installed(&self, name: &str) {
        if let Some(bar) = self.bars.as_ref().and_then(|b| Bars::get(&b.packages)) {
            bar.set_message(name.to_string());
            bar.inc(1);
        }
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("installed {name}"));
        }
    }
}
