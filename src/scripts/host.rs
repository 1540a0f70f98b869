//! The script host: this binary re-executed as `sysroot-mk __script-host`, a small
//! single-threaded helper that runs scripts in a root from inside a user namespace.
//!
//! Why a separate process: a user namespace can only be entered by a single-threaded
//! process, and a build has download, verification and writer threads; forking such a
//! process and running Rust code in the child is unsafe, while spawning a fresh program
//! is not. One helper serves the whole build, so its setup (namespace, binfmt_misc
//! instance, `/proc`) is paid once and each script costs one chrooted fork+exec, as it
//! does under apk.
//!
//! ```text
//! build ── spawn ──> host: unshare(USER|NS)            -> "R"
//!   writes the id maps (identity of its own ids,
//!   or the caller's subordinate ids via newuidmap)   <- "G"
//!                      host: binfmt_misc instance + qemu `OCF`, /proc in the root
//!                                                     -> "O" | "E <errno> <step>"
//!   "X <len>" + program\0argv...                      -> fork, chroot, exec, collect
//!                                                     <- "S <wait status> <len>" + output
//!   EOF on the host's stdin: it exits; its namespaces, mounts and binfmt entry go with it.
//! ```
//!
//! The host has a parent-death signal, so a killed build never leaves one behind, and
//! nothing it mounts is ever visible to the host's mount table.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::child::{drain, pipe, spawn, wait, ChildSetup};
use super::{outcome_of, ProcMount, ScriptOutcome};
use crate::arch::Arch;
use crate::binfmt::{self, Flags, Registration, Table};
use crate::userns::IdMap;

/// The hidden subcommand that runs [`serve`].
pub const SUBCOMMAND: &str = "__script-host";
/// Output kept per script, as for scripts run directly.
const MAX_FRAME: usize = super::MAX_OUTPUT + 4096;
/// Where the host mounts its binfmt_misc instance, inside its own mount namespace.
const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// Starting or talking to the script host failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The binary could not be started.
    #[error("cannot start the script host `{exe}`")]
    Spawn {
        /// The binary.
        exe: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A setup step inside the host failed.
    #[error("the script host cannot {step}")]
    Setup {
        /// What was being done.
        step: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The build's end of a running script host.
#[derive(Debug)]
pub struct ScriptHost {
    child: Child,
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl ScriptHost {
    /// Starts a host for `root`; with `registration`, foreign binaries run through it
    /// (a private binfmt_misc instance; the host's table is not touched).
    pub fn start(
        root: &Path,
        emulation: Option<(Arch, &Registration)>,
    ) -> Result<ScriptHost, HostError> {
        let exe = std::env::current_exe().map_err(|source| HostError::Spawn {
            exe: PathBuf::from("/proc/self/exe"),
            source,
        })?;
        let root = std::fs::canonicalize(root).map_err(|source| HostError::Setup {
            step: format!("find the root `{}`", root.display()),
            source,
        })?;
        let mut command = Command::new(&exe);
        command.arg(SUBCOMMAND).arg(&root);
        if let Some((arch, r)) = emulation {
            command
                .arg(arch.name())
                .arg(&r.interpreter)
                .arg(r.flags.to_string());
        }
        let mut child = command
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| HostError::Spawn {
                exe: exe.clone(),
                source,
            })?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(setup_error(
                "talk to the helper",
                io::ErrorKind::BrokenPipe.into(),
            ));
        };
        let mut host = ScriptHost {
            child,
            input: Some(input),
            output: BufReader::new(output),
        };
        if let Err(e) = host.handshake() {
            host.kill();
            return Err(e);
        }
        Ok(host)
    }

    fn handshake(&mut self) -> Result<(), HostError> {
        self.expect_ok("create a user namespace")?;
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        IdMap::choose(true)
            .write(pid)
            .map_err(|e| setup_error("map the ids of its user namespace", e))?;
        self.send(b"G\n")
            .map_err(|e| setup_error("talk to the helper", e))?;
        self.expect_ok("prepare the root")
    }

    /// Reads a status line: `R`/`O` is fine, `E <errno> <step>` is a failure.
    fn expect_ok(&mut self, what: &str) -> Result<(), HostError> {
        let mut line = String::new();
        (&mut self.output)
            .take(4096)
            .read_line(&mut line)
            .map_err(|e| setup_error(what, e))?;
        let line = line.trim_end();
        if line == "R" || line == "O" {
            return Ok(());
        }
        match line.strip_prefix("E ").and_then(|r| r.split_once(' ')) {
            Some((errno, step)) => Err(setup_error(
                step,
                io::Error::from_raw_os_error(errno.parse().unwrap_or(libc::EIO)),
            )),
            None => Err(setup_error(
                what,
                io::Error::new(io::ErrorKind::UnexpectedEof, "the helper exited"),
            )),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let input = self
            .input
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        input.write_all(bytes)?;
        input.flush()
    }

    /// Runs `program` (a path inside the root) with `argv` and returns how it went.
    pub fn run(&mut self, program: &str, argv: &[String]) -> io::Result<ScriptOutcome> {
        let mut request = Vec::new();
        for field in std::iter::once(program).chain(argv.iter().map(String::as_str)) {
            if field.contains('\0') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "NUL in an argument",
                ));
            }
            request.extend_from_slice(field.as_bytes());
            request.push(0);
        }
        let mut frame = format!("X {}\n", request.len()).into_bytes();
        frame.extend_from_slice(&request);
        self.send(&frame)?;
        let (kind, value, body) = read_frame(&mut self.output)?;
        match kind.as_str() {
            "S" => {
                use std::os::unix::process::ExitStatusExt;
                let status = std::process::ExitStatus::from_raw(value);
                Ok(outcome_of(status, body))
            }
            _ => Err(io::Error::from_raw_os_error(value)),
        }
    }

    /// Closes the host's input and waits for it to exit.
    pub fn stop(mut self) -> io::Result<()> {
        self.input = None;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "the script host ended with {status}"
            )));
        }
        Ok(())
    }

    fn kill(&mut self) {
        self.input = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ScriptHost {
    fn drop(&mut self) {
        if self.input.is_some() {
            self.kill();
        }
    }
}

fn setup_error(step: &str, source: io::Error) -> HostError {
    HostError::Setup {
        step: step.to_string(),
        source,
    }
}

/// Reads `<kind> <value> <len>\n` and `len` bytes.
fn read_frame(input: &mut impl BufRead) -> io::Result<(String, i32, Vec<u8>)> {
    let mut header = String::new();
    input.take(128).read_line(&mut header)?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "malformed reply from the script host",
        )
    };
    let mut parts = header.split_whitespace();
    let kind = parts.next().ok_or_else(bad)?.to_string();
    let value: i32 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let len: usize = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if len > MAX_FRAME {
        return Err(bad());
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    Ok((kind, value, body))
}

/// The host's side, run by the binary for [`SUBCOMMAND`] with the remaining
/// arguments `ROOT [ARCH QEMU FLAGS]`; returns the exit code.
pub fn serve(args: &[std::ffi::OsString]) -> i32 {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let fail = |out: &mut dyn Write, step: &str, err: &io::Error| {
        let _ = writeln!(out, "E {} {step}", err.raw_os_error().unwrap_or(libc::EIO));
        let _ = out.flush();
        1
    };
    let Some(root) = args.first().map(PathBuf::from) else {
        return 2;
    };
    let registration = match args.get(1..4) {
        Some([arch, qemu, flags]) => {
            let arch = arch.to_str().and_then(Arch::from_name);
            let flags = flags.to_str().and_then(|f| Flags::parse(f).ok());
            match (arch, flags) {
                (Some(arch), Some(flags)) => {
                    Some(Registration::for_arch(arch, Path::new(qemu), flags))
                }
                _ => return 2,
            }
        }
        _ => None,
    };
    // SAFETY: plain system call; this process is single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        return fail(
            &mut out,
            "create a user namespace",
            &io::Error::last_os_error(),
        );
    }
    let _ = writeln!(out, "R");
    let _ = out.flush();
    let mut go = String::new();
    if (&mut input).take(16).read_line(&mut go).is_err() || go.trim_end() != "G" {
        return 1;
    }
    // SAFETY: only this process's mount namespace, which unshare made its own.
    if unsafe { crate::mountns::make_private() } != 0 {
        return fail(
            &mut out,
            "make its mounts private",
            &io::Error::last_os_error(),
        );
    }
    if let Some(registration) = &registration {
        if let Err(e) = binfmt::mount_instance(Path::new(BINFMT_DIR)) {
            return fail(&mut out, &e.to_string(), &io_of(e));
        }
        if let Err(e) = Table::at(BINFMT_DIR).register(registration) {
            return fail(&mut out, &e.to_string(), &io_of(e));
        }
    }
    let _proc = match ProcMount::new(&root) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                &mut out,
                "mount `/proc` in the root",
                &io::Error::other(crate::report::error_chain(&e)),
            )
        }
    };
    let _ = writeln!(out, "O");
    let _ = out.flush();
    loop {
        let mut header = String::new();
        match (&mut input).take(64).read_line(&mut header) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let Some(len) = header
            .strip_prefix("X ")
            .and_then(|l| l.trim_end().parse::<usize>().ok())
            .filter(|&l| l <= MAX_FRAME)
        else {
            return 2;
        };
        let mut request = vec![0u8; len];
        if input.read_exact(&mut request).is_err() {
            return 1;
        }
        let reply = match run_request(&root, &request) {
            Ok((status, output)) => {
                let mut reply = format!("S {status} {}\n", output.len()).into_bytes();
                reply.extend_from_slice(&output);
                reply
            }
            Err(e) => format!("F {} 0\n", e.raw_os_error().unwrap_or(libc::EIO)).into_bytes(),
        };
        if out.write_all(&reply).and_then(|()| out.flush()).is_err() {
            return 1;
        }
    }
}

/// Runs one request (`program\0argv...\0`) in the root; returns the raw wait status and
/// the output.
fn run_request(root: &Path, request: &[u8]) -> io::Result<(i32, Vec<u8>)> {
    use std::os::unix::process::ExitStatusExt;
    let fields: Vec<String> = request
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let Some((program, argv)) = fields.split_first() else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let (mut reader, writer) = pipe()?;
    let mut setup = ChildSetup::new(root, program, argv)?;
    setup.own_proc = false;
    let null = std::fs::File::open("/dev/null")?;
    let pid = spawn(&setup, null.as_raw_fd(), writer.as_raw_fd())?;
    drop((null, writer));
    let output = drain(&mut reader)?;
    Ok((wait(pid)?.into_raw(), output))
}

fn io_of(err: binfmt::BinfmtError) -> io::Error {
    match err {
        binfmt::BinfmtError::Io { source, .. } => source,
        binfmt::BinfmtError::Mount { source, .. } => io::Error::from(source),
        other => io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let mut input: &[u8] = b"S 256 5\nhello";
        assert_eq!(
            read_frame(&mut input).unwrap(),
            ("S".into(), 256, b"hello".to_vec())
        );
        let mut huge: &[u8] = b"S 0 99999999999\n";
        assert!(read_frame(&mut huge).is_err());
        let mut short: &[u8] = b"S 0 10\nab";
        assert!(read_frame(&mut short).is_err());
        let mut garbage: &[u8] = b"nonsense\n";
        assert!(read_frame(&mut garbage).is_err());
    }
}
