//! Running package scripts and triggers inside the root, as apk 2.14 does
//! (`apk_ipkg_run_script`, `apk_db_run_script`, `fire_triggers`).
//!
//! apk writes the script to `lib/apk/exec/<name>-<version>.<action>` (creating the
//! directory 0700 if needed), forks, `chroot`s into the root and executes it with
//! `argv = [action, version]` (upgrades add the old version; triggers get the matching
//! directories) and only `PATH=/usr/sbin:/usr/bin:/sbin:/bin` in the environment, umask
//! 022, with `/proc` mounted in the root meanwhile; the file is removed afterwards. A
//! failing script does not stop apk: it prints `ERROR: <file>: script exited with error N`
//! and records `f:s` for the package. Here each script runs in a child with its own mount
//! namespace, so its `/proc` mount disappears with it and the host never sees it.
//! Scripts run one at a time: they mutate shared files (`etc/group`, links in `bin`).
//!
//! Order in a fresh install, per package in plan order: [`run_script`] with
//! `PreInstall` before its files are extracted (then re-read `etc/passwd`/`etc/group`,
//! as apk resets its id cache after every script), `PostInstall` after; at the end
//! [`run_triggers`]; if extraction ran ahead of the scripts, [`reconcile_exec_dir`];
//! then `db::write_database`, which records the `f:s` marks set here. apk does not open
//! packages with `I:0`, so it neither records nor runs their scripts.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use crate::db::{InstalledPackage, ScriptAction};
use crate::report::Reporter;
use crate::rootfs::RootDir;

/// Where apk puts a script while it runs, relative to the root.
pub const EXEC_DIR: &str = "lib/apk/exec";
/// The only environment apk gives a script.
pub const SCRIPT_PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
/// Output kept per script (the rest is read and dropped so the script never blocks).
const MAX_OUTPUT: usize = 1 << 20;

/// Errors that keep a script from running at all (a script that runs and fails is a
/// [`ScriptOutcome::Failed`], which apk tolerates).
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// chroot and mounting `/proc` need root.
    #[error("cannot run `{script}`: running package scripts needs root (chroot, mount); run as root or pass `--no-scripts`")]
    NotRoot {
        /// `<name>-<version>.<action>`.
        script: String,
    },
    /// The script could not be written into `lib/apk/exec` or started.
    #[error("cannot run `{script}` in the sysroot `{root}`: {source}")]
    Io {
        /// `<name>-<version>.<action>`.
        script: String,
        /// The sysroot.
        root: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// What running one script gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOutcome {
    /// The package has no script for that action (or a trigger matched nothing).
    Absent,
    /// The script exited with status 0.
    Succeeded {
        /// stdout and stderr, interleaved as written (at most 1 MiB).
        output: Vec<u8>,
    },
    /// The script failed; apk marks the package `f:s` and carries on.
    Failed {
        /// apk's wording: `exited with error 127`, `killed by signal 9`.
        status: String,
        /// stdout and stderr, interleaved as written (at most 1 MiB).
        output: Vec<u8>,
    },
}

impl ScriptOutcome {
    /// Whether the script ran and failed.
    pub fn failed(&self) -> bool {
        matches!(self, ScriptOutcome::Failed { .. })
    }
}

thread_local! {
    /// The root whose `/proc` a live [`ProcMount`] of this thread mounted, if any.
    static SHARED_PROC: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// `/proc` mounted in a root once for all the scripts this thread runs there, as apk
/// mounts it once per run; without one, each script mounts its own.
///
/// The calling thread moves into a private mount namespace (its copy of the host's
/// mounts, none of them propagating back) and mounts `proc` on the root's `proc`
/// directory there; the host never sees the mount, and the scripts (forked from this
/// thread) see it as before. Dropping it unmounts `/proc` again; keep it shorter-lived
/// than the directory (declare it after the staging directory), and drop it before the
/// root is renamed or removed.
#[derive(Debug)]
pub struct ProcMount {
    target: CString,
}

impl ProcMount {
    /// Mounts `/proc` in `root` for the scripts this thread runs there from now on.
    pub fn new(root: &Path) -> Result<ProcMount, ScriptError> {
        let io_err = |source| ScriptError::Io {
            script: "(mounting /proc)".to_string(),
            root: root.to_path_buf(),
            source,
        };
        if !rustix::process::geteuid().is_root() {
            return Err(ScriptError::NotRoot {
                script: "(mounting /proc)".to_string(),
            });
        }
        let root = std::fs::canonicalize(root).map_err(io_err)?;
        let dir = RootDir::open(&root).map_err(io_err)?;
        dir.mkdir("proc", None, 0o555).map_err(io_err)?;
        let proc_path = cstring(&format!("{}/proc", root.display())).map_err(io_err)?;
        let check = |r: i32| {
            if r == 0 {
                Ok(())
            } else {
                Err(io_err(io::Error::last_os_error()))
            }
        };
        // SAFETY: plain system calls with valid, NUL-terminated arguments; they affect only
        // the calling thread's mount namespace, which unshare made its own.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // O_NOFOLLOW: a `proc` symlink shipped by a package is not followed; the mount
            // goes on the directory this descriptor names.
            let fd = libc::open(
                proc_path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(io_err(io::Error::last_os_error()));
            }
            let via = cstring(&format!("/proc/self/fd/{fd}"));
            let mounted = via.map_err(io_err).and_then(|via| {
                check(libc::mount(
                    c"proc".as_ptr(),
                    via.as_ptr(),
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                ))
            });
            libc::close(fd);
            mounted?;
        }
        SHARED_PROC.with(|shared| *shared.borrow_mut() = Some(root.clone()));
        Ok(ProcMount { target: proc_path })
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        SHARED_PROC.with(|shared| *shared.borrow_mut() = None);
        // SAFETY: a valid NUL-terminated path; detaching cannot fail for a busy mount.
        unsafe {
            libc::umount2(
                self.target.as_ptr(),
                libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW,
            );
        }
    }
}

/// The file name apk gives a script in `lib/apk/exec`: `<name>-<version>.<action>`.
pub fn script_file_name(pkg: &InstalledPackage, action: ScriptAction) -> String {
    format!(
        "{}-{}.{}",
        pkg.package.name,
        pkg.package.version,
        action.as_str()
    )
}

/// Runs `pkg`'s script for `action` as a fresh install does (`argv = [action, version]`).
/// On failure the package is marked `broken_script` (`f:s`), as apk does.
pub fn run_script(
    root: &Path,
    pkg: &mut InstalledPackage,
    action: ScriptAction,
    reporter: &dyn Reporter,
) -> Result<ScriptOutcome, ScriptError> {
    let version = pkg.package.version.to_string();
    run_script_with_args(root, pkg, action, &[version], reporter)
}

/// Runs `pkg`'s script for `action` with `args` after `argv[0]` (upgrades: new and old
/// version; triggers: the directories). Marks the package `broken_script` on failure.
pub fn run_script_with_args(
    root: &Path,
    pkg: &mut InstalledPackage,
    action: ScriptAction,
    args: &[String],
    reporter: &dyn Reporter,
) -> Result<ScriptOutcome, ScriptError> {
    let Some(body) = pkg.script(action).map(<[u8]>::to_vec) else {
        return Ok(ScriptOutcome::Absent);
    };
    let name = script_file_name(pkg, action);
    if !rustix::process::geteuid().is_root() {
        return Err(ScriptError::NotRoot { script: name });
    }
    let io_err = |source| ScriptError::Io {
        script: name.clone(),
        root: root.to_path_buf(),
        source,
    };
    reporter.info(&format!("Executing {name}"));
    let rel = format!("{EXEC_DIR}/{name}");
    let dir = RootDir::open(root).map_err(io_err)?;
    let result = write_and_run(&dir, &rel, &body, action, args);
    // apk removes the script whatever happened.
    let _ = dir.remove(&rel);
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            pkg.status.broken_script = true;
            return Err(io_err(e));
        }
    };
    if let ScriptOutcome::Succeeded { output } | ScriptOutcome::Failed { output, .. } = &outcome {
        for line in String::from_utf8_lossy(output).lines() {
            reporter.info(&format!("{name}: {line}"));
        }
    }
    if let ScriptOutcome::Failed { status, output } = &outcome {
        pkg.status.broken_script = true;
        let tail: Vec<String> = String::from_utf8_lossy(output)
            .lines()
            .rev()
            .take(5)
            .map(str::to_string)
            .collect();
        let tail: Vec<String> = tail.into_iter().rev().collect();
        let mut msg = format!(
            "`{name}`: script {status}; the package is recorded as broken (`f:s`), as apk does"
        );
        if !tail.is_empty() {
            msg.push_str(&format!("; last output: {}", tail.join(" | ")));
        }
        reporter.warn(&msg);
    }
    Ok(outcome)
}

fn write_and_run(
    dir: &RootDir,
    rel: &str,
    body: &[u8],
    action: ScriptAction,
    args: &[String],
) -> io::Result<ScriptOutcome> {
    dir.mkdir_all("lib/apk", 0o755)?;
    dir.mkdir(EXEC_DIR, None, 0o700)?;
    {
        use std::io::Write;
        let fd = dir.open_in(
            rel,
            OFlags::CREATE | OFlags::TRUNC | OFlags::WRONLY | OFlags::NOFOLLOW,
            0o755,
        )?;
        rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o755))?;
        std::fs::File::from(fd).write_all(body)?;
    }
    dir.mkdir("proc", None, 0o555)?;
    let (mut reader, writer) = pipe()?;

    let mut argv = vec![action.as_str().to_string()];
    argv.extend(args.iter().cloned());
    let root = std::fs::canonicalize(dir.path())?;
    let shared_proc = SHARED_PROC.with(|shared| shared.borrow().as_deref() == Some(root.as_path()));
    let mut setup = ChildSetup::new(&root, rel, &argv)?;
    setup.own_proc = !shared_proc;
    let null = std::fs::File::open("/dev/null")?;
    let pid = spawn(&setup, null.as_raw_fd(), writer.as_raw_fd())?;
    drop((null, writer));
    let output = drain(&mut reader)?;
    let status = wait(pid)?;
    Ok(if status.success() {
        ScriptOutcome::Succeeded { output }
    } else {
        ScriptOutcome::Failed {
            status: describe_status(status),
            output,
        }
    })
}

/// Everything the child needs between fork and exec, prepared beforehand.
struct ChildSetup {
    /// Mount `/proc` in a namespace of the child's own (no [`ProcMount`] is live).
    own_proc: bool,
    root: CString,
    program: CString,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers point into `_strings`, owned by the same value and never
// mutated; the value is only used by the forked child.
unsafe impl Send for ChildSetup {}
// SAFETY: as above, shared access is read-only.
unsafe impl Sync for ChildSetup {}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

impl ChildSetup {
    fn new(root: &Path, program: &str, argv: &[String]) -> io::Result<ChildSetup> {
        use std::os::unix::ffi::OsStrExt;
        let root = CString::new(root.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut strings = argv
            .iter()
            .map(|a| cstring(a))
            .collect::<io::Result<Vec<_>>>()?;
        strings.push(cstring(SCRIPT_PATH)?);
        let argv_ptrs: Vec<*const libc::c_char> = strings[..argv.len()]
            .iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp = vec![strings[argv.len()].as_ptr(), std::ptr::null()];
        Ok(ChildSetup {
            own_proc: true,
            root,
            program: cstring(program)?,
            _strings: strings,
            argv: argv_ptrs,
            envp,
        })
    }

    /// Runs in the child: own mount namespace, `/proc` in the root, chroot, umask 022.
    /// Paths are resolved after `unshare`, since descriptors opened before it point
    /// into the host's namespace, where the `/proc` mount must not appear.
    fn enter(&self) -> io::Result<()> {
        let check = |r: i32| {
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        };
        // SAFETY: plain system calls with valid, NUL-terminated arguments.
        unsafe {
            if self.own_proc {
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                check(libc::chdir(self.root.as_ptr()))?;
                // O_NOFOLLOW: a `proc` symlink shipped by a package is not followed.
                let proc_fd = libc::open(
                    c"proc".as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                );
                if proc_fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                check(libc::fchdir(proc_fd))?;
                check(libc::mount(
                    c"proc".as_ptr(),
                    c".".as_ptr(),
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                ))?;
            }
            check(libc::chdir(self.root.as_ptr()))?;
            check(libc::chroot(c".".as_ptr()))?;
            check(libc::chdir(c"/".as_ptr()))?;
            libc::umask(0o022);
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            );
            libc::_exit(127);
        }
    }
}

/// What the child reports back through the memory it shares with the parent.
struct Spawn<'a> {
    setup: &'a ChildSetup,
    stdin: RawFd,
    output: RawFd,
    /// The errno of the step that failed before exec, 0 if none did.
    error: i32,
}

/// Starts the script like `posix_spawn` does: `clone(CLONE_VM | CLONE_VFORK)`, so the
/// child borrows this process's memory until it execs instead of copying its page tables
/// (a fork of this multi-threaded process cost ~1 ms per script). The child sets up stdio,
/// default signal handling and the root, then execs; a failure before the exec is
/// reported like `Command::spawn` reports one (an error here), an exec failure becomes
/// exit status 127, as under apk. Returns the child's pid.
fn spawn(setup: &ChildSetup, stdin: RawFd, output: RawFd) -> io::Result<libc::pid_t> {
    const STACK: usize = 256 * 1024;
    let mut stack = vec![0u8; STACK];
    let mut shared = Spawn {
        setup,
        stdin,
        output,
        error: 0,
    };
    // SAFETY: all signals are blocked around clone so that no handler of this process runs
    // on the child's borrowed memory; the child (`child_main`) only makes system calls on
    // data prepared before, on its own stack, and the parent does not run until the child
    // called execve or _exit (CLONE_VFORK). The stack outlives that.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(STACK - 64);
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::addr_of_mut!(shared).cast(),
        );
        let clone_error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_error);
        }
        pid
    };
    drop(stack);
    if shared.error != 0 {
        wait(pid)?;
        return Err(io::Error::from_raw_os_error(shared.error));
    }
    Ok(pid)
}

/// The child side of [`spawn`]: only system calls, no allocation, no locks.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Spawn` of the parent, which waits (CLONE_VFORK) until this
    // function execs or exits.
    let shared = unsafe { &mut *arg.cast::<Spawn<'_>>() };
    // SAFETY: plain system calls on valid arguments.
    unsafe {
        // Handlers of the parent must not run here; exec resets them anyway.
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut action) == 0
                && (action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN
                    || sig == libc::SIGPIPE)
            {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if libc::dup2(shared.stdin, 0) < 0
            || libc::dup2(shared.output, 1) < 0
            || libc::dup2(shared.output, 2) < 0
        {
            shared.error = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            libc::_exit(127);
        }
        // `enter` only returns on a failure before the exec.
        if let Err(err) = shared.setup.enter() {
            shared.error = err.raw_os_error().unwrap_or(libc::EIO);
        }
        libc::_exit(127)
    }
}

/// Waits for the child `pid` and returns how it ended.
fn wait(pid: libc::pid_t) -> io::Result<std::process::ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
            return Ok(std::process::ExitStatus::from_raw(status));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn drain(reader: &mut OwnedFd) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::from(reader.try_clone()?);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let keep = n.min(MAX_OUTPUT.saturating_sub(out.len()));
                out.extend_from_slice(&buf[..keep]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// apk's wording for a non-zero wait status (`apk_exit_status_str`).
fn describe_status(status: std::process::ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with error {code}")
    } else if let Some(sig) = status.signal() {
        format!("killed by signal {sig}")
    } else if let Some(sig) = status.stopped_signal() {
        format!("stopped by signal {sig}")
    } else {
        format!("status unknown {:x}", status.into_raw())
    }
}

/// The directories a package's trigger fires on after a fresh install: every directory
/// of the installed set (and their parents, and `/`), as `/path`, that matches one of
/// `globs` with `fnmatch(FNM_PATHNAME)`; globs not starting with `/` never match, as in
/// apk. apk passes them in its hash table's order; here they are sorted.
pub fn trigger_arguments(installed: &[InstalledPackage], globs: &[String]) -> Vec<String> {
    let mut dirs = std::collections::BTreeSet::new();
    dirs.insert("/".to_string());
    for pkg in installed {
        for d in &pkg.dirs {
            let mut path = d.path.trim_matches('/');
            while !path.is_empty() {
                if !dirs.insert(format!("/{path}")) {
                    break;
                }
                path = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            }
        }
    }
    let patterns: Vec<CString> = globs
        .iter()
        .filter(|g| g.starts_with('/'))
        .filter_map(|g| CString::new(g.as_str()).ok())
        .collect();
    dirs.into_iter()
        .filter(|dir| {
            let Ok(c) = CString::new(dir.as_str()) else {
                return false;
            };
            // SAFETY: both arguments are valid NUL-terminated strings.
            patterns
                .iter()
                .any(|p| unsafe { libc::fnmatch(p.as_ptr(), c.as_ptr(), libc::FNM_PATHNAME) } == 0)
        })
        .collect()
}

/// Runs the `.trigger` of every package with triggers, in install order, as apk does at
/// the end of a fresh install: `argv = ["trigger", dirs...]` with the matching
/// directories; a package whose globs match nothing is not run. Returns each package
/// name with its outcome; failures mark the package `f:s`.
pub fn run_triggers(
    root: &Path,
    installed: &mut [InstalledPackage],
    reporter: &dyn Reporter,
) -> Result<Vec<(String, ScriptOutcome)>, ScriptError> {
    let mut results = Vec::new();
    for i in 0..installed.len() {
        if installed[i].triggers.is_empty() {
            continue;
        }
        let args = trigger_arguments(installed, &installed[i].triggers);
        if args.is_empty() {
            continue;
        }
        let pkg = &mut installed[i];
        let outcome = run_script_with_args(root, pkg, ScriptAction::Trigger, &args, reporter)?;
        results.push((pkg.package.name.clone(), outcome));
    }
    Ok(results)
}

/// For builds that extract everything before running scripts: apk creates
/// `lib/apk/exec` 0700 when the first script runs and keeps that mode when a package
/// ships the directory later (apk-tools does, 0755). Call after the install scripts:
/// if a pre-/post-install script in `installed` (plan order) would have run before the
/// shipping package's files were extracted, the directory gets 0700 as under apk.
pub fn reconcile_exec_dir(root: &Path, installed: &[InstalledPackage]) -> Result<(), ScriptError> {
    let owner = installed
        .iter()
        .position(|p| p.dirs.iter().any(|d| d.path == EXEC_DIR));
    let Some(owner) = owner else { return Ok(()) };
    let runs = |p: &InstalledPackage, a| p.script(a).is_some();
    let early = installed[..owner]
        .iter()
        .any(|p| runs(p, ScriptAction::PreInstall) || runs(p, ScriptAction::PostInstall))
        || runs(&installed[owner], ScriptAction::PreInstall);
    if !early {
        return Ok(());
    }
    let io_err = |source| ScriptError::Io {
        script: EXEC_DIR.to_string(),
        root: root.to_path_buf(),
        source,
    };
    let dir = RootDir::open(root).map_err(io_err)?;
    let fd = dir
        .open_in(EXEC_DIR, OFlags::DIRECTORY | OFlags::RDONLY, 0)
        .map_err(io_err)?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o700))
        .map_err(|e| io_err(e.into()))?;
    Ok(())
}
