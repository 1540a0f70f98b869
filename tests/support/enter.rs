//! Helpers shared by the `enter` and `binfmt` integration tests: skipping, extracting real
//! Alpine root filesystems, snapshotting (and serialising access to) the host's state.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use sysroot_mk::arch::Arch;

/// The built tool.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sysroot-mk"))
}

/// Prints why a test does not run.
pub fn skip(reason: &str) {
    eprintln!("skipped: {reason}");
}

/// The value, or `None` after printing why the test does not run.
pub fn or_skip<T>(found: Result<T, String>) -> Option<T> {
    found.map_err(|why| skip(&why)).ok()
}

/// Runs `cmd` with no qemu to be found on `PATH`, expects exit status 1 and returns stderr.
pub fn fails_without_qemu(cmd: &mut Command) -> String {
    let out = cmd.env("PATH", "/nonexistent").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    stderr(&out)
}

/// The shared Alpine data, if present: `../shared/alpine` next to the checkout (CI),
/// or two levels up for a worktree under `wt/<name>`.
pub fn alpine() -> Option<PathBuf> {
    [
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/alpine"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/alpine"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|dir| dir.is_dir())
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether `name` is an executable on PATH.
pub fn on_path(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(name).is_file())
}

/// Whether mount, pid, uts and ipc namespaces can be made here (a container without
/// privileges refuses them).
pub fn namespaces_available() -> bool {
    probe(|| {
        use nix::sched::CloneFlags as F;
        nix::sched::unshare(F::CLONE_NEWNS | F::CLONE_NEWPID | F::CLONE_NEWUTS | F::CLONE_NEWIPC)?;
        let flags = nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE;
        nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)?;
        Ok(())
    })
}

/// Whether a user namespace can mount its own binfmt_misc here (Linux >= 6.7, user
/// namespaces allowed), tried for real in a throwaway process.
pub fn private_binfmt() -> bool {
    sysroot_mk::binfmt::private_instances_supported()
        && probe(|| {
            let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
            nix::sched::unshare(
                nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS,
            )?;
            std::fs::write("/proc/self/setgroups", "deny")?;
            std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
            std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
            let dir = "/proc/sys/fs/binfmt_misc";
            nix::mount::mount(
                Some("binfmt_misc"),
                dir,
                Some("binfmt_misc"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )?;
            Ok(())
        })
}

/// Runs `setup` in a child process about to exec `true`; whether it all worked.
fn probe(setup: fn() -> std::io::Result<()>) -> bool {
    let mut cmd = Command::new("true");
    // SAFETY: the child only makes syscalls (and small writes to /proc) before exec.
    unsafe {
        cmd.pre_exec(setup);
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// Extracts a `.tar.gz` (or an `.apk`, a tar.gz stream too) into `dir` as the system
/// tar does it as root: owners and setuid bits kept.
pub fn extract(archive: &Path, dir: &Path, members: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .args(members)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar {}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The minirootfs tarball of `arch` (3.20.3), when present.
pub fn minirootfs(arch: &str) -> Option<PathBuf> {
    let path = alpine()?.join(format!("minirootfs/alpine-minirootfs-3.20.3-{arch}.tar.gz"));
    path.is_file().then_some(path)
}

/// Runs the tool and returns its output.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).stdin(Stdio::null()).output().unwrap()
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

static IN_PROCESS: Mutex<()> = Mutex::new(());

/// Exclusive use of the host's binfmt_misc table and mounts, within this test process
/// and across concurrent test runs on the machine (tests that compare the host's state
/// before and after must not see another test's temporary change).
pub struct HostLock {
    _file: nix::fcntl::Flock<std::fs::File>,
    _guard: MutexGuard<'static, ()>,
}

/// Takes the [`HostLock`].
pub fn host_lock() -> HostLock {
    let guard = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("sysroot-mk-tests-host-state.lock"))
        .unwrap();
    let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|_| panic!("cannot lock the host state"));
    HostLock {
        _file: file,
        _guard: guard,
    }
}

/// What must not change on the host: this process's mount table, the listing of
/// `/proc/sys/fs/binfmt_misc` and the host's binfmt_misc entries (read by the tool
/// itself, which sees them even when nothing is mounted there).
pub fn host_state() -> (String, Vec<String>, String) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut listing: Vec<String> = std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    listing.sort();
    let status = run(&["binfmt", "status"]);
    (mountinfo, listing, stdout(&status))
}

/// A handler registered in the host's binfmt_misc table for the duration of a test.
///
/// The host's table keeps entries only while mounted; a helper process mounts it in a
/// mount namespace of its own (so the host's mounts stay as they are), the entry is
/// registered through `/proc/<pid>/root`, and dropping this removes the entry and ends
/// the helper. The helper dies with the test process too (parent-death signal), taking
/// the entry along when the host had no mount of its own.
pub struct HostHandler {
    helper: std::process::Child,
    entry: PathBuf,
}

impl HostHandler {
    /// Registers `line` (`:name:M:...`) on the host.
    pub fn register(name: &str, line: &str) -> HostHandler {
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        // SAFETY: only syscalls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                use nix::mount::{mount, MsFlags};
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )?;
                let dir = "/proc/sys/fs/binfmt_misc";
                let _ = mount(
                    Some("binfmt_misc"),
                    dir,
                    Some("binfmt_misc"),
                    MsFlags::empty(),
                    None::<&str>,
                );
                Ok(())
            });
        }
        let helper = cmd.spawn().unwrap();
        let dir = PathBuf::from(format!(
            "/proc/{}/root/proc/sys/fs/binfmt_misc",
            helper.id()
        ));
        // The helper may not have mounted yet: wait for its register file (it appears
        // in well under a second; this is readiness, not a timed assertion).
        for _ in 0..500 {
            if dir.join("register").exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut register = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("register"))
            .unwrap();
        register.write_all(line.as_bytes()).unwrap();
        HostHandler {
            entry: dir.join(name),
            helper,
        }
    }
}

impl HostHandler {
    /// Enables or disables the entry (writes `1` or `0` to its file).
    pub fn set_enabled(&self, enabled: bool) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.entry)
            .unwrap();
        f.write_all(if enabled { b"1" } else { b"0" }).unwrap();
    }
}

impl Drop for HostHandler {
    fn drop(&mut self) {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&self.entry) {
            let _ = f.write_all(b"-1");
        }
        drop(self.helper.stdin.take());
        let _ = self.helper.wait();
    }
}

/// Compiles a static aarch64 program printing its effective uid, if the cross compiler
/// is there.
pub fn build_euid_program(out: &Path) -> Option<()> {
    build_aarch64_program(
        out,
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"%d\\n\",(int)geteuid());return 0;}\n",
    )
}

/// Compiles `source` into a static aarch64 program at `out`, if the cross compiler (and
/// its libc, `libc6-dev-arm64-cross`) is there.
pub fn build_aarch64_program(out: &Path, source: &str) -> Option<()> {
    if !on_path("aarch64-linux-gnu-gcc") {
        return None;
    }
    let src = out.with_extension("c");
    std::fs::write(&src, source).unwrap();
    let status = Command::new("aarch64-linux-gnu-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(&src)
        .status()
        .ok()?;
    let _ = std::fs::remove_file(&src);
    status.success().then_some(())
}

/// Makes `path` owned by root and setuid.
pub fn make_setuid_root(path: &Path) {
    std::os::unix::fs::chown(path, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
}

/// An aarch64 sysroot holding `usr/local/bin/euid`, a static setuid-root program
/// printing its effective uid, or why not.
pub fn aarch64_with_setuid_program() -> Result<tempfile::TempDir, String> {
    let dir = sysroot("aarch64")?;
    let program = dir.path().join("usr/local/bin/euid");
    build_euid_program(&program).ok_or(
        "aarch64-linux-gnu-gcc with its libc (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) is missing",
    )?;
    make_setuid_root(&program);
    Ok(dir)
}

/// Root, the shared data and (for foreign arches) qemu with a private binfmt_misc, or why not.
pub fn can_enter(arch: &str) -> Result<(), String> {
    if !is_root() {
        return Err("needs root to extract root filesystems with their owners".into());
    }
    if !namespaces_available() {
        return Err("mount/pid namespaces are not available here".into());
    }
    let a = Arch::from_name(arch).ok_or("unknown arch")?;
    let native = Arch::host().is_some_and(|h| a.runs_natively_on(h));
    if !native {
        if !private_binfmt() {
            return Err("kernel without private binfmt_misc instances (Linux >= 6.7)".into());
        }
        sysroot_mk::binfmt::find_qemu(a, None).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A temporary sysroot from the 3.20.3 minirootfs of `arch`, or why not.
pub fn sysroot(arch: &str) -> Result<tempfile::TempDir, String> {
    can_enter(arch)?;
    let tarball = minirootfs(arch).ok_or("../shared/alpine/minirootfs is missing")?;
    let dir = tempfile::tempdir().unwrap();
    extract(&tarball, dir.path(), &[]);
    Ok(dir)
}

/// The first arch this host runs without emulation, for tests about anything but qemu.
pub fn native_arch() -> &'static str {
    match Arch::host().map(|a| a.name()) {
        Some(name) if minirootfs(name).is_some() => name,
        _ => "x86_64",
    }
}

/// A sysroot of [`native_arch`], or `None` after saying why not.
pub fn native_sysroot() -> Option<tempfile::TempDir> {
    or_skip(sysroot(native_arch()))
}

/// `sysroot-mk enter EXTRA DIR -- COMMAND`, not yet started.
pub fn enter_command(dir: &Path, extra: &[&str], command: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.arg("enter")
        .args(extra)
        .arg(dir)
        .arg("--")
        .args(command);
    cmd
}

pub fn enter(dir: &Path, extra: &[&str], command: &[&str]) -> std::process::Output {
    enter_command(dir, extra, command)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Adds the user `builder` (uid and gid 1000, home `/home/builder`) to the sysroot.
pub fn add_builder(root: &Path) {
    let append = |file: &str, line: &str| {
        let path = root.join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(line);
        std::fs::write(path, text).unwrap();
    };
    append(
        "etc/passwd",
        "builder:x:1000:1000:builder:/home/builder:/bin/sh\n",
    );
    append("etc/group", "builder:x:1000:\n");
    std::fs::create_dir_all(root.join("home/builder")).unwrap();
    std::os::unix::fs::chown(root.join("home/builder"), Some(1000), Some(1000)).unwrap();
}
