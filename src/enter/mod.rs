//! `sysroot-mk enter`: run a shell or command inside a sysroot, under qemu where the arch is foreign.
//!
//! The shape of a run:
//!
//! ```text
//! tool (host namespaces): detect arch, choose emulation, look the user up, make mount points
//!  └─ clone(NEWUSER? NEWNS NEWPID NEWUTS NEWIPC) ── init, pid 1: mounts, private binfmt_misc,
//!       │                                            pivot_root, reaps, forwards signals
//!       └─ fork ── the command (pid 2): credentials, personality, clean env, exec
//! ```
//!
//! Everything is decided and checked in the tool before the clone, so the children only
//! carry out a plan; their failures come back through a close-on-exec pipe. The mounts
//! live in the new mount namespace and vanish with it, also when the tool is killed
//! (init has a parent-death signal). The only host-side traces are mount points created
//! in the sysroot when missing, which the tool removes again on exit, or the next run
//! does after a kill (they are recorded first).
//!
//! What the session may not get from the host (SECURITY.md): run by root, the session's
//! root is an unprivileged host id and sees the sysroot through an id-mapped mount
//! (`idmapped`); no inherited descriptor crosses into it (`fds`); it gets its own
//! session and pty (`pty`); `/proc` and `/sys` are trimmed (`proc_mask`); the sysroot's
//! files are read only when regular (`files`).

mod detect;
mod emulation;
mod exec;
mod fds;
mod idmapped;
mod init;
mod mount_points;
mod mounts;
mod namespaces;
mod proc_mask;
mod pty;
mod user;

pub use detect::{detect_arch, detect_arch_at};
pub use emulation::Emulation;
pub use user::SysrootUser;

use crate::arch::Arch;
use crate::binfmt::BinfmtError;
use crate::report::Reporter;
use crate::rootfs::RootDir;
use crate::userns::IdMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;

/// How foreign binaries get to qemu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinfmtMode {
    /// A binfmt_misc instance of the enter's own user namespace (Linux >= 6.7): setuid
    /// works, the host's table is untouched.
    Private,
    /// Whatever the host has registered.
    Host,
    /// Register the target's qemu on the host with `OCF` (replacing gaplessly) and leave it.
    Global,
}

impl FromStr for BinfmtMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "private" => Ok(BinfmtMode::Private),
            "host" => Ok(BinfmtMode::Host),
            "global" => Ok(BinfmtMode::Global),
            _ => Err(format!(
                "unknown binfmt mode `{s}`; expected `private`, `host` or `global`"
            )),
        }
    }
}

/// Whose ids the session's are on the host (`--userns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsernsMode {
    /// For root: an unprivileged range of host ids that no host user owns, with the
    /// sysroot shown through an id-mapped mount; the identity map (with a warning) where
    /// the filesystem has no id-mapped mounts. For other users: their own ids.
    #[default]
    Auto,
    /// As before the range existed: root inside is root on the host (no user namespace
    /// at all for a native sysroot, the identity map for a private binfmt_misc).
    Identity,
}

impl FromStr for UsernsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(UsernsMode::Auto),
            "identity" => Ok(UsernsMode::Identity),
            _ => Err(format!(
                "unknown userns mode `{s}`; expected `auto` or `identity`"
            )),
        }
    }
}

/// A `--bind SRC:DST[:ro]`: a host path made visible inside the sysroot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the sysroot (absolute, resolved within it).
    pub target: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

impl FromStr for Bind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, read_only) = match s.strip_suffix(":ro") {
            Some(rest) => (rest, true),
            None => (s.strip_suffix(":rw").unwrap_or(s), false),
        };
        let (source, target) = match rest.split_once(':') {
            Some((src, dst)) => (src, dst),
            None => (rest, rest),
        };
        if source.is_empty() || target.is_empty() || target.contains(':') {
            return Err(format!("bind `{s}` is not `SRC:DST[:ro]`"));
        }
        if !target.starts_with('/') {
            return Err(format!(
                "bind `{s}`: the destination `{target}` must be an absolute path inside the sysroot"
            ));
        }
        Ok(Bind {
            source: PathBuf::from(source),
            target: PathBuf::from(target),
            read_only,
        })
    }
}

/// Everything `enter` needs to know.
#[derive(Debug, Clone, Default)]
pub struct EnterOptions {
    /// The sysroot.
    pub root: PathBuf,
    /// The command and its arguments; empty for a login shell.
    pub command: Vec<OsString>,
    /// Emulation mode; `None` chooses `private` when the kernel allows, else `host`.
    pub binfmt: Option<BinfmtMode>,
    /// The qemu to use instead of searching PATH.
    pub qemu: Option<PathBuf>,
    /// The arch, instead of detecting it.
    pub arch: Option<Arch>,
    /// The sysroot user (name or uid) to run as; root when `None`.
    pub user: Option<String>,
    /// Host paths to bind inside.
    pub binds: Vec<Bind>,
    /// Extra environment: `(NAME, Some(value))`, or `(NAME, None)` to pass the host's value.
    pub env: Vec<(OsString, Option<OsString>)>,
    /// The hostname inside; default: the sysroot's `etc/hostname`.
    pub hostname: Option<String>,
    /// How the session's ids map to the host's.
    pub userns: UsernsMode,
}

impl crate::report::Hinted for EnterError {
    fn hint(&self) -> Option<crate::report::Hint> {
        use crate::report::Hint;
        match self {
            EnterError::UnknownArch(_) => Some(Hint::fix("pass `--arch ARCH`")),
            EnterError::ImplicitRoot { .. } => {
                Some(Hint::fix("pass `--user root` to run as root on purpose"))
            }
            EnterError::UnmappedUser { .. } => Some(Hint::fix(
                "run `sysroot-mk enter` as root, or give your user subordinate ids in \
                 `/etc/subuid` and `/etc/subgid` (with `newuidmap` and `newgidmap` installed, \
                 Debian's `uidmap` package)",
            )),
            EnterError::Binfmt(err) => crate::report::Hinted::hint(err),
            _ => None,
        }
    }
}

/// What can go wrong entering a sysroot.
#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    /// The sysroot is not a directory.
    #[error("`{0}` is not a directory; pass the sysroot's top directory")]
    NotADirectory(PathBuf),
    /// Reading a file inside the sysroot failed.
    #[error("cannot read `{path}` in the sysroot `{root}`")]
    Read {
        /// The sysroot.
        root: PathBuf,
        /// Path inside it.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Neither `etc/apk/arch` nor an ELF binary told the arch.
    #[error("cannot tell the architecture of `{0}`: no `etc/apk/arch` and no ELF `bin/busybox` or `bin/sh` of a known arch")]
    UnknownArch(PathBuf),
    /// `etc/apk/arch` names an arch not in the table.
    #[error("`{root}/etc/apk/arch` says `{name}`, which this tool does not know; known: {known}")]
    UnlistedArch {
        /// The sysroot.
        root: PathBuf,
        /// The name found.
        name: String,
        /// The known names.
        known: String,
    },
    /// `--user` names nobody in the sysroot.
    #[error("no user `{user}` in `{root}/etc/passwd`; pass a name from there or a numeric uid")]
    NoSuchUser {
        /// The sysroot.
        root: PathBuf,
        /// What was asked for.
        user: String,
    },
    /// `--user` resolves to the id -1, which the set*id calls read as "unchanged".
    #[error("`--user {user}` resolves to uid {uid} gid {gid} in `{root}/etc/passwd`; 4294967295 (-1) cannot be switched to (the command would stay root)")]
    InvalidId {
        /// The sysroot.
        root: PathBuf,
        /// What was asked for.
        user: String,
        /// The uid found.
        uid: u32,
        /// The gid found.
        gid: u32,
    },
    /// `--user NAME` resolves to uid 0 under another name.
    #[error("`--user {user}` is uid 0 (root) in `{root}/etc/passwd`")]
    ImplicitRoot {
        /// The sysroot.
        root: PathBuf,
        /// What was asked for.
        user: String,
    },
    /// `--user` names ids the session's user namespace does not map.
    #[error("`--user {user}` is uid {uid} gid {gid} in the sysroot, but this session's user namespace maps {mapped}, so it cannot be switched to")]
    UnmappedUser {
        /// What was asked for.
        user: String,
        /// Its uid in the sysroot.
        uid: u32,
        /// Its gid in the sysroot.
        gid: u32,
        /// What the map holds.
        mapped: String,
    },
    /// `--env` names a variable of qemu's.
    #[error("`--env {0}`: qemu's `QEMU_*` variables are not passed into a session (they steer the emulator of every program inside, setuid ones included); set it inside instead, e.g. `-- env {0}=... CMD`")]
    QemuVariable(String),
    /// binfmt_misc or qemu trouble.
    #[error(transparent)]
    Binfmt(#[from] BinfmtError),
    /// No way to run the foreign binaries was found.
    #[error("{0}")]
    NoEmulation(String),
    /// A `--bind` source is missing.
    #[error("cannot bind `{0}`: it does not exist on the host")]
    BindSource(PathBuf),
    /// A mount point could not be made inside the sysroot.
    #[error("cannot create the mount point `{path}` inside `{root}`")]
    MountPoint {
        /// The sysroot.
        root: PathBuf,
        /// Path inside it.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Creating the namespaces or the init process failed.
    #[error("cannot {step}")]
    Namespaces {
        /// What was being done.
        step: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A step inside the new namespaces failed.
    #[error("inside the sysroot `{root}`: cannot {step}")]
    Setup {
        /// The sysroot.
        root: PathBuf,
        /// What was being done.
        step: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The command could not be executed.
    #[error("cannot run `{command}` inside `{root}`")]
    Exec {
        /// The sysroot.
        root: PathBuf,
        /// The command.
        command: String,
        /// The cause (`NotFound` when it is not there).
        #[source]
        source: std::io::Error,
    },
}

impl EnterError {
    /// The exit status a shell would give for this failure: 127 for a command that is
    /// not there, 126 for one that cannot be executed, else 1.
    pub fn exit_status(&self) -> i32 {
        match self {
            EnterError::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
            EnterError::Exec { .. } => 126,
            _ => 1,
        }
    }
}

/// Runs the command (or a login shell) inside the sysroot and returns its exit status
/// (128 + n when it died of signal n).
///
/// Forks: call it from a single-threaded process (the binary is one).
pub fn run(options: &EnterOptions, reporter: &dyn Reporter) -> Result<i32, EnterError> {
    let root = std::fs::canonicalize(&options.root)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| EnterError::NotADirectory(options.root.clone()))?;
    let root_fd = RootDir::open(&root).map_err(|_| EnterError::NotADirectory(root.clone()))?;
    let root_id = rustix::fs::fstat(&root_fd)
        .map(|st| (st.st_dev, st.st_ino))
        .map_err(|_| EnterError::NotADirectory(root.clone()))?;
    let arch = match options.arch {
        Some(arch) => arch,
        None => detect_arch_at(&root_fd)?,
    };
    let user = match &options.user {
        Some(spec) => user::lookup(&root, &root_fd, spec)?,
        None => user::root_user(&root, &root_fd)?,
    };
    if let Some((name, _)) = options
        .env
        .iter()
        .find(|(name, _)| name.as_encoded_bytes().starts_with(b"QEMU_"))
    {
        return Err(EnterError::QemuVariable(
            name.to_string_lossy().into_owned(),
        ));
    }
    for bind in &options.binds {
        if !bind.source.exists() {
            return Err(EnterError::BindSource(bind.source.clone()));
        }
    }
    // Last of the checks: `--binfmt global` changes the host.
    let emulation = emulation::plan(arch, options, reporter)?;
    let hostname = match &options.hostname {
        Some(name) => name.clone(),
        None => detect::hostname(&root_fd),
    };
    reporter.info(&format!(
        "entering `{}` ({arch}) as `{}`, {}",
        root.display(),
        user.name,
        emulation.describe()
    ));
    let (idmap, tree) = idmapped::session_map(&root_fd, options.userns, &emulation, reporter);
    reporter.info(&format!("user namespace: {}", idmapped::describe(&idmap)));
    if let Some(mapped) = unmapped(&idmap, user.uid, user.gid) {
        return Err(EnterError::UnmappedUser {
            user: user.name.clone(),
            uid: user.uid,
            gid: user.gid,
            mapped,
        });
    }
    let mut made = mount_points::MountPoints::new(&root_fd);
    let result = (|| {
        let plan = mounts::prepare(&root, &mut made, options, &emulation, reporter)?;
        let child = namespaces::Child {
            root: &root,
            root_id,
            idmap: &idmap,
            tree: tree.as_ref(),
            switch_to_root: matches!(idmap, IdMap::Range { .. }),
            emulation: &emulation,
            mounts: &plan,
            user: &user,
            command: command_line(options, &user),
            env: environment(options, &user, arch, &emulation),
            hostname: &hostname,
        };
        namespaces::spawn_and_wait(&child)
    })();
    made.remove_created();
    result
}

/// What `map` holds, when it lacks `uid` or `gid` (seen from inside): switching to them
/// would fail with a bare EINVAL after the namespaces are made.
fn unmapped(map: &IdMap, uid: u32, gid: u32) -> Option<String> {
    let within = |id: u32, (_, count): (u32, u32)| id == 0 || id <= count;
    match map {
        IdMap::Single if uid != 0 || gid != 0 => {
            Some("only one id: yours, as root inside".to_string())
        }
        IdMap::Subordinate { uid: u, gid: g } if !within(uid, *u) || !within(gid, *g) => {
            Some(format!(
                "your id as root and your {} subordinate uids and {} gids from 1",
                u.1, g.1
            ))
        }
        _ => None,
    }
}

fn command_line(options: &EnterOptions, user: &SysrootUser) -> Vec<OsString> {
    if !options.command.is_empty() {
        return options.command.clone();
    }
    vec![OsString::from(user.login_shell()), OsString::from("-l")]
}

/// Alpine's default PATH (its `/etc/profile`): the host's names host directories.
pub const ALPINE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The clean environment: TERM and LANG from the host, Alpine's PATH, HOME/USER/LOGNAME
/// of the sysroot user, then `--env`.
fn environment(
    options: &EnterOptions,
    user: &SysrootUser,
    arch: Arch,
    emulation: &Emulation,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    let mut set = |name: &str, value: OsString| {
        env.retain(|(n, _)| n != name);
        env.push((name.into(), value));
    };
    for name in ["TERM", "LANG"] {
        if let Some(value) = std::env::var_os(name) {
            set(name, value);
        }
    }
    set("PATH", ALPINE_PATH.into());
    set("HOME", user.home.clone().into());
    set("USER", user.name.clone().into());
    set("LOGNAME", user.name.clone().into());
    if emulation.is_emulated() && arch.name() == "armhf" && !emulation.guarded() {
        // qemu's default arm CPU is a v7: armhf (ARMv6) says `armv6l` only with an ARM1176.
        // (The guard passes it as `-cpu`, where a user inside cannot change it.)
        set("QEMU_CPU", "arm1176".into());
    }
    for (name, value) in &options.env {
        let value = match value {
            Some(v) => Some(v.clone()),
            None => std::env::var_os(name),
        };
        if let Some(value) = value {
            set(&name.to_string_lossy(), value);
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_specs_parse() {
        let b: Bind = "/src:/work:ro".parse().unwrap();
        assert_eq!(b.source, PathBuf::from("/src"));
        assert_eq!(b.target, PathBuf::from("/work"));
        assert!(b.read_only);
        let b: Bind = "/src".parse().unwrap();
        assert_eq!(b.target, PathBuf::from("/src"));
        assert!(!b.read_only);
        assert!("/a:rel".parse::<Bind>().is_err());
        assert!(":/x".parse::<Bind>().is_err());
    }

    #[test]
    fn binfmt_modes_parse() {
        assert_eq!("global".parse::<BinfmtMode>(), Ok(BinfmtMode::Global));
        assert!("both".parse::<BinfmtMode>().unwrap_err().contains("`both`"));
    }

    #[test]
    fn exec_failures_map_to_shell_statuses() {
        let err = |kind| EnterError::Exec {
            root: "/r".into(),
            command: "x".into(),
            source: std::io::Error::from(kind),
        };
        assert_eq!(err(std::io::ErrorKind::NotFound).exit_status(), 127);
        assert_eq!(err(std::io::ErrorKind::PermissionDenied).exit_status(), 126);
    }
}
