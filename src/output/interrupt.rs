//! SIGINT, SIGTERM and SIGHUP: one watcher thread cleans up and ends the process.
//!
//! The watcher sets the [`interrupted`] flag, waits for a staging directory being
//! created or committed ([`STATE`]) so it never races a rename, removes every live
//! staging directory and partial cache file, prints exactly one line saying so, and
//! exits with 128 + the signal number. The main thread, once it sees the flag, must not
//! report errors of its own (they would be consequences of the cleanup, such as a
//! directory vanishing under it): it calls [`wait_for_exit`]. A second signal while the
//! cleanup runs exits at once.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::OutputError;

/// Staging directories alive in this process, removed by the watcher.
pub(super) static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Held while a staging directory is created and registered, or committed and
/// unregistered; the watcher takes it before cleaning up.
pub(super) static STATE: Mutex<()> = Mutex::new(());
/// Destinations this process completed: a signal after a commit keeps them.
pub(super) static COMMITTED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Cache files being written by this process, removed by the watcher; the flag says
/// whether this process holds the file's `flock` (or needs none).
static LIVE_FILES: Mutex<Vec<(PathBuf, bool)>> = Mutex::new(Vec::new());

/// A cache file this process is about to write: a signal removes it (a download
/// interrupted by Ctrl-C leaves nothing in the cache); dropping the guard only forgets it.
///
/// Register before creating the file: once the watcher runs, registering blocks until
/// the process ends, so no file appears after the cleanup.
#[derive(Debug)]
pub struct LivePartial(PathBuf);

impl LivePartial {
    /// Registers `path`, which this process alone writes (e.g. a new temporary file).
    pub fn register(path: &Path) -> LivePartial {
        Self::push(path, true)
    }

    /// Registers `path`, a file other processes may hold `flock`ed; the watcher removes
    /// it only once [`LivePartial::lock`] took it for us, or when nobody holds it.
    pub fn register_shared(path: &Path) -> LivePartial {
        Self::push(path, false)
    }

    fn push(path: &Path, owned: bool) -> LivePartial {
        if let Ok(mut live) = LIVE_FILES.lock() {
            live.push((path.to_path_buf(), owned));
        }
        LivePartial(path.to_path_buf())
    }

    /// Runs `create` (which makes the file) so that the watcher sees either no file or
    /// a registered one: after a signal it blocks until the process ends.
    pub fn create<T>(&self, create: impl FnOnce() -> T) -> T {
        let _live = LIVE_FILES.lock();
        create()
    }

    /// Takes `file`'s exclusive `flock`, waiting while another process holds it, and,
    /// if `still_ours` then holds, marks the file this process's: both in one step as
    /// the watcher sees it, which otherwise could find the file locked by this process
    /// but not yet marked, take the lock for another process's and leave the file.
    /// `false` when `still_ours` fails (dropping `file` releases the lock).
    pub fn lock(
        &self,
        file: &std::fs::File,
        still_ours: impl Fn(&std::fs::File) -> bool,
    ) -> io::Result<bool> {
        use rustix::fs::{flock, FlockOperation};
        loop {
            {
                // After a signal the watcher keeps this lock: the loop ends with the
                // process.
                let mut live = LIVE_FILES.lock().unwrap_or_else(|e| e.into_inner());
                match flock(file, FlockOperation::NonBlockingLockExclusive) {
                    Ok(()) => {
                        if !still_ours(file) {
                            return Ok(false);
                        }
                        if let Some(entry) = live.iter_mut().find(|(p, _)| *p == self.0) {
                            entry.1 = true;
                        }
                        return Ok(true);
                    }
                    Err(rustix::io::Errno::WOULDBLOCK) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // Another run downloads the same package into the same file.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for LivePartial {
    fn drop(&mut self) {
        if let Ok(mut live) = LIVE_FILES.lock() {
            if let Some(at) = live.iter().position(|(p, _)| *p == self.0) {
                live.swap_remove(at);
            }
        }
    }
}

/// Whether no process holds `path`'s `flock` (opened without following a symlink).
fn unlocked(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok()
}

fn interrupted_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Whether SIGINT, SIGTERM or SIGHUP arrived since [`handle_interrupts`].
pub fn interrupted() -> bool {
    interrupted_flag().load(Ordering::SeqCst)
}

/// After [`interrupted`]: blocks while the watcher cleans up; it ends the process.
/// Bounded, in case the cleanup itself hangs on a dead file system.
pub fn wait_for_exit() -> ! {
    std::thread::sleep(Duration::from_secs(60));
    // SAFETY: `_exit` ends the process without running anything else.
    unsafe { libc::_exit(130) }
}

/// Installs the handlers described in the module documentation; idempotent.
pub fn handle_interrupts() -> Result<(), OutputError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let flag = interrupted_flag().clone();
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Registered before the watcher: a second signal, once the flag is set, exits now.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, flag.clone())
            .map_err(OutputError::Signals)?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(OutputError::Signals)?;
    std::thread::Builder::new()
        .name("sysroot-mk-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                flag.store(true, Ordering::SeqCst);
                let line = clean_up(sig);
                let _ = writeln!(io::stderr().lock(), "{line}");
                // SAFETY: `_exit` skips exit handlers, which could wait on locks the
                // interrupted threads hold (stdout's, the allocator's).
                unsafe { libc::_exit(128 + sig) }
            }
        })
        .map_err(OutputError::Signals)?;
    let _ = INSTALLED.set(());
    Ok(())
}

/// Removes what this process left unfinished; returns the line that says what.
fn clean_up(sig: i32) -> String {
    let name = match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    };
    // Poisoned or not, the locks order us after a create or commit under way, and are
    // never released: the process ends with them held, so no thread registers (and
    // then creates) anything after the cleanup.
    std::mem::forget(STATE.lock());
    let live_files = LIVE_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let files: Vec<PathBuf> = live_files
        .iter()
        .filter(|(path, owned)| *owned || unlocked(path))
        .map(|(path, _)| path.clone())
        .collect();
    std::mem::forget(live_files);
    let dirs: Vec<PathBuf> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    for dir in dirs {
        match remove_while_written(&dir) {
            Ok(()) => removed.push(dir),
            Err(err) => failed.push(format!("could not remove `{}`: {err}", dir.display())),
        }
    }
    let mut partials = 0;
    for file in files {
        match std::fs::remove_file(&file) {
            Ok(()) => partials += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(err) => failed.push(format!("could not remove `{}`: {err}", file.display())),
        }
    }
    let mut what = Vec::new();
    match removed.as_slice() {
        [] => {}
        [one] => what.push(format!("the unfinished sysroot `{}`", one.display())),
        many => what.push(format!("{} unfinished sysroots", many.len())),
    }
    match partials {
        0 => {}
        1 => what.push("1 partial download".to_string()),
        n => what.push(format!("{n} partial downloads")),
    }
    let committed: Vec<PathBuf> = COMMITTED.lock().map(|c| c.clone()).unwrap_or_default();
    let mut line = match (what.is_empty(), committed.as_slice()) {
        (true, [done, ..]) => format!(
            "interrupted by {name} after the sysroot `{}` was complete; it is kept",
            done.display()
        ),
        (true, []) => format!("interrupted by {name}; nothing to clean up"),
        (false, _) => format!("interrupted by {name}; removed {}", what.join(" and ")),
    };
    for failure in failed {
        line.push_str("; ");
        line.push_str(&failure);
    }
    line
}

/// Removes `dir` while other threads of this process may still write into it: they
/// stop within moments, once their directory is gone or they see the flag.
fn remove_while_written(dir: &Path) -> io::Result<()> {
    let started = Instant::now();
    loop {
        let result = super::remove_tree(dir);
        let crossed = result
            .as_ref()
            .err()
            .and_then(|e| e.get_ref())
            .is_some_and(|inner| inner.is::<super::CrossesMount>());
        if crossed {
            return result;
        }
        if result.is_ok() && std::fs::symlink_metadata(dir).is_err() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(5) {
            return result;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
