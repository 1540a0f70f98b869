//! The terminal side of [`Reporter`]: indicatif bars on a TTY, plain lines under `-v`,
//! warnings only otherwise, nothing but errors under `-q`.
//!
//! Bars are drawn on stderr so that stdout stays clean for `--simulate`'s plan.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
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
    /// Added on the first download, with the plan's total: local repositories and a
    /// warm cache never show it.
    bytes: Mutex<Option<ProgressBar>>,
    packages: Mutex<Option<ProgressBar>>,
    /// Added when a build announces its scripts, with their number as its total; a run
    /// that announces none (an update) gets a counter when the first script runs.
    scripts: Mutex<Option<ProgressBar>>,
    /// What the plan fetches, counted before the bar exists too.
    fetch: Mutex<FetchTotals>,
}

/// The plan's bytes to fetch, and those already fetched (or found in the cache).
#[derive(Default)]
struct FetchTotals {
    /// Per planned package (`name-version`): its size, and its bytes already counted.
    sizes: HashMap<String, (u64, u64)>,
    total: u64,
    counted: u64,
}

impl Bars {
    fn add(
        &self,
        slot: &Mutex<Option<ProgressBar>>,
        template: &str,
        prefix: &'static str,
        length: u64,
    ) -> Option<ProgressBar> {
        let mut slot = slot.lock().ok()?;
        let bar = slot.get_or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(length));
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

    /// Counts `bytes` more of `name` (no more than its planned size); all the rest of it
    /// when `bytes` is `None` (finished, or served from the cache).
    fn count_bytes(&self, name: &str, bytes: Option<u64>) {
        // Held while the bar moves, so that a bar being added sees every byte exactly
        // once (see `download_started`).
        let Ok(mut fetch) = self.fetch.lock() else {
            return;
        };
        let step = match fetch.sizes.get_mut(name) {
            Some((size, seen)) => {
                let step = bytes.unwrap_or(u64::MAX).min(*size - *seen);
                *seen += step;
                step
            }
            None => 0,
        };
        fetch.counted += step;
        if let Some(bar) = Bars::get(&self.bytes) {
            bar.inc(step);
            complete_if_full(&bar);
        }
    }
}

/// Draws a bar's final state once it is full, so the last frame shown is 100%.
fn complete_if_full(bar: &ProgressBar) {
    if bar.length().is_some_and(|len| bar.position() >= len) && !bar.is_finished() {
        bar.finish();
    }
}

const BYTES_TEMPLATE: &str = "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}";
const PACKAGES_TEMPLATE: &str = "{prefix:>10} [{bar:30}] {pos}/{len} {msg}";
const SCRIPTS_TEMPLATE: &str = "{prefix:>10} [{bar:30}] {pos}/{len} {msg}";
const SCRIPTS_COUNTER_TEMPLATE: &str = "{prefix:>10} {pos} run {msg} ({elapsed})";

impl TerminalReporter {
    /// Bars only when stderr is a terminal and not under `-q`.
    pub fn new(verbosity: Verbosity) -> TerminalReporter {
        let bars =
            (verbosity != Verbosity::Quiet && std::io::stderr().is_terminal()).then(|| Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bytes: Mutex::new(None),
                packages: Mutex::new(None),
                scripts: Mutex::new(None),
                fetch: Mutex::new(FetchTotals::default()),
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
        if let (Stage::Finish, Some(bars)) = (stage, &self.bars) {
            // The scripts phase is over: its last frame keeps the count and the last
            // script (`finish` would move the count to the bar's length, and a bar
            // with a total is full already: each planned script ran or was skipped).
            if let Some(bar) = Bars::get(&bars.scripts) {
                bar.abandon();
            }
        }
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

    fn planned(&self, packages: &[sysroot_mk::index::Package]) {
        let Some(bars) = &self.bars else {
            return;
        };
        if let Ok(mut fetch) = bars.fetch.lock() {
            for p in packages {
                fetch.sizes.insert(p.name_version(), (p.size, 0));
            }
            // Several arches (`--output oci`) add up; one arch is known whole up front.
            fetch.total += packages.iter().map(|p| p.size).sum::<u64>();
            if let Some(bar) = Bars::get(&bars.bytes) {
                bar.set_length(fetch.total);
            }
        }
        let count = packages.len() as u64;
        let fresh = Bars::get(&bars.packages).is_none();
        if let Some(bar) = bars.add(&bars.packages, PACKAGES_TEMPLATE, "install", count) {
            if !fresh {
                bar.inc_length(count);
            }
        }
    }

    fn download_started(&self, _name: &str, _total: u64) {
        let Some(bars) = &self.bars else {
            return;
        };
        let Ok(fetch) = bars.fetch.lock() else {
            return;
        };
        if Bars::get(&bars.bytes).is_some() {
            return;
        }
        // The plan's whole total, with what the cache already gave counted as done.
        if let Some(bar) = bars.add(&bars.bytes, BYTES_TEMPLATE, "fetch", fetch.total) {
            bar.set_position(fetch.counted);
        }
    }

    fn download_progress(&self, name: &str, bytes: u64) {
        if let Some(bars) = &self.bars {
            bars.count_bytes(name, Some(bytes));
        }
    }

    fn download_finished(&self, name: &str) {
        if let Some(bars) = &self.bars {
            bars.count_bytes(name, None);
        }
    }

    fn install_started(&self, count: usize) {
        // Normally the plan fixed it already; otherwise this count does.
        if let Some(bars) = &self.bars {
            bars.add(&bars.packages, PACKAGES_TEMPLATE, "install", count as u64);
        }
    }

    fn shows_totals(&self) -> bool {
        self.bars.is_some()
    }

    fn scripts_planned(&self, count: usize) {
        if let Some(bars) = self.bars.as_ref().filter(|_| count > 0) {
            bars.add(&bars.scripts, SCRIPTS_TEMPLATE, "scripts", count as u64);
        }
    }

    fn script_started(&self, script: &str) {
        if let Some(bar) = self
            .bars
            .as_ref()
            .and_then(|b| b.add(&b.scripts, SCRIPTS_COUNTER_TEMPLATE, "scripts", 0))
        {
            bar.inc(1);
            bar.set_message(script.to_string());
        }
        // Under `-v` the library's own line (`Executing ...`) names it once.
    }

    fn script_skipped(&self, script: &str) {
        if let Some(bar) = self.bars.as_ref().and_then(|b| Bars::get(&b.scripts)) {
            bar.inc(1);
            bar.set_message(format!("{script} (matched nothing)"));
        }
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!(
                "skipped {script}: its trigger globs match no directory"
            ));
        }
    }

    fn package_installed(&self, name: &str) {
        if let Some(bar) = self.bars.as_ref().and_then(|b| Bars::get(&b.packages)) {
            bar.set_message(name.to_string());
            bar.inc(1);
            complete_if_full(&bar);
        }
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("installed {name}"));
        }
    }
}
