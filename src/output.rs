//! Atomic output: build in a hidden sibling of the destination and rename it into place
//! at the end, so a failed or interrupted build leaves no half-made sysroot.
//!
//! How the orchestrator uses it:
//!
//! ```text
//! output::handle_interrupts()?;              // once, early in the binary's `run`
//! let staging = Staging::create(dest, force)?;
//! ... build into staging.path(); in long loops: if output::interrupted() { bail }
//! staging.commit()?;                          // dropping it instead removes the tree
//! ```
//!
//! After [`handle_interrupts`], SIGINT, SIGTERM and SIGHUP are handled by a watcher
//! thread: it sets the [`interrupted`] flag, removes every live staging directory and
//! exits with 128 + the signal number; a second signal while that runs exits at once.
//! The main thread therefore never needs to unwind for cleanup to happen, but it may
//! poll [`interrupted`] to stop early.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Errors preparing or committing the output directory.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The destination holds files and `--force` was not given.
    #[error("`{dest}` exists and is not empty; choose another directory or pass `--force` to replace it")]
    NotEmpty {
        /// The destination.
        dest: PathBuf,
    },
    /// The destination is a file, a symlink or something else that is not a directory.
    #[error("`{dest}` exists and is not a directory; remove it or choose another path")]
    NotADirectory {
        /// The destination.
        dest: PathBuf,
    },
    /// A file system operation failed.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The final rename failed, typically because the destination is a mount point.
    #[error("cannot move the finished sysroot into `{dest}`; if `{dest}` is a mount point, build into a directory inside it")]
    Rename {
        /// The destination.
        dest: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Installing the signal handlers failed.
    #[error("cannot install the Ctrl-C handler: {0}")]
    Signals(#[source] io::Error),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OutputError {
    let path = path.to_path_buf();
    move |source| OutputError::Io {
        action,
        path,
        source,
    }
}

/// Staging directories alive in this process, removed by the signal watcher.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn interrupted_flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Whether SIGINT, SIGTERM or SIGHUP arrived since [`handle_interrupts`].
pub fn interrupted() -> bool {
    interrupted_flag().load(Ordering::SeqCst)
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
                let live: Vec<PathBuf> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
                for path in live {
                    let _ = remove_tree(&path);
                }
                std::process::exit(128 + sig);
            }
        })
        .map_err(OutputError::Signals)?;
    let _ = INSTALLED.set(());
    Ok(())
}

/// Removes a tree without following symlinks, making directories writable when a
/// non-root build left read-only ones, and retrying while other threads still write.
fn remove_tree(path: &Path) -> io::Result<()> {
    let mut last = Ok(());
    for _ in 0..5 {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                if e.kind() == io::ErrorKind::PermissionDenied {
                    make_writable(path);
                }
                last = Err(e);
            }
        }
    }
    last
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700));
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
}

fn is_empty_dir(path: &Path) -> io::Result<bool> {
    Ok(std::fs::read_dir(path)?.next().is_none())
}

/// A sysroot under construction in a hidden sibling of its destination.
#[derive(Debug)]
pub struct Staging {
    dest: PathBuf,
    path: PathBuf,
    force: bool,
    done: bool,
}

impl Staging {
    /// Checks `dest` (absent, an empty directory, or anything-but-empty with `force`) and
    /// creates the staging directory `.<name>.sysroot-mk-<pid>-<n>` beside it, mode 0755.
    /// Missing parents of `dest` are created.
    pub fn create(dest: &Path, force: bool) -> Result<Staging, OutputError> {
        let dest = std::path::absolute(dest).map_err(io_err("resolve", dest))?;
        check_dest(&dest, force)?;
        let parent = dest
            .parent()
            .ok_or_else(|| OutputError::NotADirectory { dest: dest.clone() })?;
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!(".{name}.sysroot-mk-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    use std::os::unix::fs::PermissionsExt;
                    if let Ok(mut live) = LIVE.lock() {
                        live.push(path.clone());
                    }
                    let staging = Staging {
                        dest,
                        path,
                        force,
                        done: false,
                    };
                    std::fs::set_permissions(&staging.path, std::fs::Permissions::from_mode(0o755))
                        .map_err(io_err("set the mode of", &staging.path))?;
                    return Ok(staging);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create", &path)(e)),
            }
        }
    }

    /// The directory to build into.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The final destination (absolute).
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Moves the finished tree to the destination: a plain rename when the destination
    /// is absent or an empty directory; with `force`, an atomic exchange with the old
    /// tree, which is then removed.
    pub fn commit(mut self) -> Result<(), OutputError> {
        check_dest(&self.dest, self.force)?;
        let occupied = match std::fs::symlink_metadata(&self.dest) {
            Ok(_) => !is_empty_dir(&self.dest).map_err(io_err("read", &self.dest))?,
            Err(_) => false,
        };
        if occupied {
            let exchanged = rustix::fs::renameat_with(
                rustix::fs::CWD,
                &self.path,
                rustix::fs::CWD,
                &self.dest,
                rustix::fs::RenameFlags::EXCHANGE,
            );
            match exchanged {
                // The old tree now sits at the staging path, which Drop removes.
                Ok(()) => return Ok(()),
                // File systems without RENAME_EXCHANGE: move the old tree aside first.
                Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
                    let mut aside = self.path.clone().into_os_string();
                    aside.push(".old");
                    let aside = PathBuf::from(aside);
                    std::fs::rename(&self.dest, &aside).map_err(|source| OutputError::Rename {
                        dest: self.dest.clone(),
                        source,
                    })?;
                    if let Err(source) = std::fs::rename(&self.path, &self.dest) {
                        let _ = std::fs::rename(&aside, &self.dest);
                        return Err(OutputError::Rename {
                            dest: self.dest.clone(),
                            source,
                        });
                    }
                    self.mark_moved();
                    return remove_tree(&aside).map_err(io_err("remove the replaced", &aside));
                }
                Err(e) => {
                    return Err(OutputError::Rename {
                        dest: self.dest.clone(),
                        source: e.into(),
                    })
                }
            }
        }
        std::fs::rename(&self.path, &self.dest).map_err(|source| OutputError::Rename {
            dest: self.dest.clone(),
            source,
        })?;
        self.mark_moved();
        Ok(())
    }

    /// The staging directory no longer exists under its name: nothing to clean up.
    fn mark_moved(&mut self) {
        self.done = true;
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|p| p != &self.path);
        }
    }
}
impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_tree(&self.path);
            if let Ok(mut live) = LIVE.lock() {
                live.retain(|p| p != &self.path);
            }
        }
    }
}

fn check_dest(dest: &Path, force: bool) -> Result<(), OutputError> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspect", dest)(e)),
        Ok(md) if !md.is_dir() => Err(OutputError::NotADirectory {
            dest: dest.to_path_buf(),
        }),
        Ok(_) if force => Ok(()),
        Ok(_) => {
            if is_empty_dir(dest).map_err(io_err("read", dest))? {
                Ok(())
            } else {
                Err(OutputError::NotEmpty {
                    dest: dest.to_path_buf(),
                })
            }
        }
    }
}

/// The closing line of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Packages installed.
    pub packages: usize,
    /// Sum of their installed sizes (`I:`), as apk counts.
    pub installed_bytes: u64,
    /// Bytes downloaded (0 when everything came from a local repository or the cache).
    pub downloaded_bytes: u64,
    /// Wall time of the build.
    pub elapsed: Duration,
    /// Packages that ended with errors (failed scripts).
    pub errors: usize,
}

impl Summary {
    /// Exactly apk's line: `OK: 10 MiB in 25 packages` (`1 error; ...` when some failed).
    pub fn apk_line(&self) -> String {
        let head = match self.errors {
            0 => "OK:".to_string(),
            1 => "1 error;".to_string(),
            n => format!("{n} errors;"),
        };
        format!(
            "{head} {} MiB in {} packages",
            self.installed_bytes / (1024 * 1024),
            self.packages
        )
    }
}

impl fmt::Display for Summary {
    /// apk's line followed by what apk does not say: `, 3.5 MiB downloaded, 0.21 s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.apk_line())?;
        if self.downloaded_bytes > 0 {
            write!(
                f,
                ", {:.1} MiB downloaded",
                self.downloaded_bytes as f64 / (1024.0 * 1024.0)
            )?;
        }
        write!(f, ", {:.2} s", self.elapsed.as_secs_f64())
    }
}
