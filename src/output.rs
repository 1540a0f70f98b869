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
//! thread (see `interrupt`): it removes every live staging directory and partial cache
//! file, prints one line and exits with 128 + the signal number. The main thread never
//! needs to unwind for cleanup to happen; it may poll [`interrupted`] to stop early,
//! and must call [`wait_for_exit`] instead of reporting an error once it is set.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod force;
mod interrupt;
use force::remove_tree;
pub use force::CrossesMount;
pub use interrupt::{handle_interrupts, interrupted, wait_for_exit, LivePartial};
use interrupt::{COMMITTED, LIVE, STATE};

impl crate::report::Hinted for OutputError {
    fn hint(&self) -> Option<crate::report::Hint> {
        match self {
            OutputError::NotEmpty { .. } => Some(crate::report::Hint::fix(
                "choose another directory, or pass `--force` to replace it",
            )),
            _ => None,
        }
    }
}

/// Errors preparing or committing the output directory.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The destination holds files and `--force` was not given.
    #[error("`{dest}` exists and is not empty")]
    NotEmpty {
        /// The destination.
        dest: PathBuf,
    },
    /// The destination is a file or something else that is not a directory.
    #[error("`{dest}` exists and is not a directory; remove it or choose another path")]
    NotADirectory {
        /// The destination.
        dest: PathBuf,
    },
    /// The destination is a symbolic link, which is never followed.
    #[error("`{dest}` is a symbolic link; sysroot-mk does not follow it: name the real directory instead")]
    Symlink {
        /// The destination.
        dest: PathBuf,
    },
    /// The destination is `/`.
    #[error("refusing to build into `/`, the root of this machine; choose a new directory, e.g. `./sysroot`")]
    Root,
    /// The destination is a mount point (`--force` does not lift this).
    #[error("refusing to replace `{dest}`: it is a mount point; build into a new directory inside it instead")]
    MountPoint {
        /// The destination.
        dest: PathBuf,
    },
    /// The destination is the current directory or one of its ancestors.
    #[error("refusing to replace `{dest}`: the current directory `{cwd}` is inside it; build into a new subdirectory, e.g. `./sysroot`")]
    CurrentDirectory {
        /// The destination.
        dest: PathBuf,
        /// The current directory.
        cwd: PathBuf,
    },
    /// The destination is a home directory or one of its ancestors.
    #[error("refusing to replace `{dest}`: it holds the home directory `{home}`; build into a new directory instead")]
    Home {
        /// The destination.
        dest: PathBuf,
        /// The home directory found inside it.
        home: PathBuf,
    },
    /// `--force` was given but the destination is not a sysroot.
    #[error("refusing to replace `{dest}`: it is not a sysroot (no `lib/apk/db/installed`), and `--force` only replaces sysroots; remove it yourself or choose another directory")]
    NotASysroot {
        /// The destination.
        dest: PathBuf,
    },
    /// The old sysroot has another file system mounted inside.
    #[error("refusing to replace `{dest}`: `{mount}` inside it is a mount point, whose files would be deleted; unmount it first")]
    MountInside {
        /// The destination.
        dest: PathBuf,
        /// The mount point found.
        mount: PathBuf,
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
    /// A signal arrived before the commit: the watcher removes the tree.
    #[error("interrupted before the sysroot was complete")]
    Interrupted,
    /// Installing the signal handlers failed.
    #[error("cannot install the Ctrl-C handler: {0}")]
    Signals(#[source] io::Error),
}

pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OutputError {
    let path = path.to_path_buf();
    move |source| OutputError::Io {
        action,
        path,
        source,
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// [`remove_tree`], again while other threads of this process still write into the
/// tree (after a signal); never again after it stopped at a mount point.
fn remove_tree_retrying(path: &Path) -> io::Result<()> {
    let mut last = Ok(());
    for _ in 0..5 {
        match remove_tree(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.get_ref().is_some_and(|i| i.is::<CrossesMount>()) => return Err(e),
            Err(e) => last = Err(e),
        }
    }
    last
}

fn is_empty_dir(path: &Path) -> io::Result<bool> {
    Ok(std::fs::read_dir(path)?.next().is_none())
}

/// The infix of staging names: `.<name>.sysroot-mk-<pid>-<n>`.
const STAGING_INFIX: &str = ".sysroot-mk-";

/// A sysroot under construction in a hidden sibling of its destination.
///
/// The staging directory stays `flock`ed while this lives, so a later run can tell a
/// directory left by a killed build (unlocked) from one a running build still uses.
#[derive(Debug)]
pub struct Staging {
    dest: PathBuf,
    path: PathBuf,
    force: bool,
    done: bool,
    _lock: std::fs::File,
}

impl Staging {
    /// Checks `dest` (absent, an empty directory, or with `force` a sysroot; never `/`,
    /// a mount point, the current directory, a home directory or a symlink) and creates
    /// the staging directory `.<name>.sysroot-mk-<pid>-<n>` beside it, mode 0755.
    /// Missing parents of `dest` are created; staging directories that killed builds
    /// left beside it are removed.
    pub fn create(dest: &Path, force: bool) -> Result<Staging, OutputError> {
        let dest = resolve_dest(dest)?;
        check_dest(&dest, force)?;
        let parent = dest.parent().ok_or(OutputError::Root)?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        remove_stale(parent, &name);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!(".{name}{STAGING_INFIX}{}-{n}", std::process::id()));
            // Creating and registering happen under the watcher's lock, so a signal
            // never finds a staging directory it does not know.
            let state = STATE.lock();
            // `create_dir` fails on anything already there, a symlink included.
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    use std::os::unix::fs::PermissionsExt;
                    if let Ok(mut live) = LIVE.lock() {
                        live.push(path.clone());
                    }
                    drop(state);
                    let lock = match lock_dir(&path, true) {
                        Ok(Some(lock)) => lock,
                        Ok(None) => {
                            return Err(io_err("lock", &path)(io::ErrorKind::WouldBlock.into()))
                        }
                        Err(e) => {
                            let _ = std::fs::remove_dir(&path);
                            return Err(io_err("lock", &path)(e));
                        }
                    };
                    let staging = Staging {
                        dest,
                        path,
                        force,
                        done: false,
                        _lock: lock,
                    };
                    std::fs::set_permissions(&staging.path, std::fs::Permissions::from_mode(0o755))
                        .map_err(io_err("set the mode of", &staging.path))?;
                    drop_inherited_acls(&staging.path)
                        .map_err(io_err("remove the inherited ACLs of", &staging.path))?;
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
    /// tree, which is then removed (never across a mount point).
    pub fn commit(mut self) -> Result<(), OutputError> {
        check_dest(&self.dest, self.force)?;
        // Under the watcher's lock: after a signal nothing is committed, and a commit
        // under way completes before the watcher looks.
        let state = STATE.lock();
        if interrupted() {
            return Err(OutputError::Interrupted);
        }
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
                Ok(()) => {
                    self.done = true;
                    let old = self.path.clone();
                    self.mark_moved();
                    drop(state);
                    return remove_tree_retrying(&old)
                        .map_err(io_err("remove the replaced tree at", &old));
                }
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
                    drop(state);
                    return remove_tree_retrying(&aside)
                        .map_err(io_err("remove the replaced tree at", &aside));
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
        drop(state);
        Ok(())
    }

    /// The staging directory no longer exists under its name: nothing to clean up.
    fn mark_moved(&mut self) {
        self.done = true;
        if let Ok(mut committed) = COMMITTED.lock() {
            committed.push(self.dest.clone());
        }
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|p| p != &self.path);
        }
    }
}
impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_tree_retrying(&self.path);
            if let Ok(mut live) = LIVE.lock() {
                live.retain(|p| p != &self.path);
            }
        }
    }
}

/// `dest` made absolute with its parent canonical (symlinks in the parent are the
/// user's path and followed; the last component never is). A path ending in `..` is
/// canonicalized whole, so `--force ..` is judged as the directory it names.
fn resolve_dest(dest: &Path) -> Result<PathBuf, OutputError> {
    let abs = std::path::absolute(dest).map_err(io_err("resolve", dest))?;
    let ends_in_name = matches!(
        abs.components().next_back(),
        Some(std::path::Component::Normal(_))
    );
    if !ends_in_name {
        let canonical = std::fs::canonicalize(&abs).map_err(io_err("resolve", &abs))?;
        return match canonical.parent() {
            None => Err(OutputError::Root),
            Some(_) => Ok(canonical),
        };
    }
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(OutputError::Root);
    };
    std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let parent = std::fs::canonicalize(parent).map_err(io_err("resolve", parent))?;
    Ok(parent.join(name))
}

fn check_dest(dest: &Path, force: bool) -> Result<(), OutputError> {
    let md = match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", dest)(e)),
        Ok(md) => md,
    };
    let dest_buf = || dest.to_path_buf();
    if md.file_type().is_symlink() {
        return Err(OutputError::Symlink { dest: dest_buf() });
    }
    if !md.is_dir() {
        return Err(OutputError::NotADirectory { dest: dest_buf() });
    }
    force::refuse_protected(dest)?;
    if is_empty_dir(dest).map_err(io_err("read", dest))? {
        return Ok(());
    }
    if !force {
        return Err(OutputError::NotEmpty { dest: dest_buf() });
    }
    if !force::is_sysroot(dest) {
        return Err(OutputError::NotASysroot { dest: dest_buf() });
    }
    if let Some(mount) = force::mount_inside(dest).map_err(io_err("read", dest))? {
        return Err(OutputError::MountInside {
            dest: dest_buf(),
            mount,
        });
    }
    Ok(())
}

/// Takes an exclusive `flock` on a directory (not following a symlink); `None` when
/// another process holds it and `wait` is false.
fn lock_dir(path: &Path, wait: bool) -> io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)?;
    let op = if wait {
        rustix::fs::FlockOperation::LockExclusive
    } else {
        rustix::fs::FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&dir, op) {
        Ok(()) => Ok(Some(dir)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the POSIX ACLs a staging directory took from its parent's default ACL. With a
/// default ACL, new files and directories get their mode bits through it rather than
/// through the umask, and inherit it: the packages' modes (a file's 0644 under a parent
/// whose default ACL gives others nothing) would come out cut, and every inode would
/// carry ACLs that apk's tree does not have.
fn drop_inherited_acls(path: &Path) -> io::Result<()> {
    for name in ["system.posix_acl_default", "system.posix_acl_access"] {
        match rustix::fs::removexattr(path, name) {
            Ok(()) => {}
            // None there, or a filesystem without ACLs.
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes the staging directories of `name` in `parent` that no live build holds
/// locked: what a SIGKILLed build left. Best effort; a failure leaves them for later.
fn remove_stale(parent: &Path, name: &str) {
    let prefix = format!(".{name}{STAGING_INFIX}");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        // `<pid>-<n>`, optionally `.old`: nothing else of the user's is touched.
        let rest = rest.strip_suffix(".old").unwrap_or(rest);
        let ours = rest.split_once('-').is_some_and(|(pid, n)| {
            !pid.is_empty()
                && !n.is_empty()
                && pid.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())
        });
        if !ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if let Ok(Some(_lock)) = lock_dir(&path, false) {
            let _ = remove_tree(&path);
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
