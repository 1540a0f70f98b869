//! binfmt_misc: parse, register and remove handlers in the host's or a private instance.
//!
//! A [`Table`] is one mounted binfmt_misc instance (a directory holding `register`,
//! `status` and one file per entry). The host's instance belongs to the initial user
//! namespace; since Linux 6.7 every user namespace may mount its own, which is what
//! `enter` uses by default (DESIGN.md section 5).
//!
//! Entries of an instance live only as long as some mount of it exists: unmounting the
//! last one drops them. That is why [`with_host_table`] may read the host's table
//! through a short-lived private mount, while persistent registration needs the
//! host-visible mount that [`mount_host_table`] makes.

use crate::arch::Arch;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Where the host's binfmt_misc instance is conventionally mounted.
pub const HOST_MOUNT: &str = "/proc/sys/fs/binfmt_misc";

/// Status and entry files are a few hundred bytes; anything longer is not binfmt_misc.
const MAX_ENTRY_FILE: u64 = 64 * 1024;

/// What can go wrong reading or changing a binfmt_misc table.
#[derive(Debug, thiserror::Error)]
pub enum BinfmtError {
    /// A flag letter outside `POCF`.
    #[error("unknown binfmt_misc flag `{0}` in `{1}`; expected letters from `POCF`")]
    UnknownFlag(char, String),
    /// An entry file did not have the shape the kernel writes.
    #[error("binfmt_misc entry `{name}` is not understood: {reason}")]
    Malformed {
        /// Entry name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// A registration that the kernel would refuse or misparse.
    #[error("cannot register binfmt_misc entry `{name}`: {reason}")]
    Invalid {
        /// Entry name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// Reading or writing a file of the table failed.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The host's table is not mounted and this process may not mount it.
    #[error(
        "the host's binfmt_misc is not mounted at `{HOST_MOUNT}` and mounting it needs root; \
         run `mount -t binfmt_misc binfmt_misc {HOST_MOUNT}` as root"
    )]
    HostNotMounted,
    /// Mounting an instance failed.
    #[error("cannot mount binfmt_misc at `{path}`")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// No qemu for the arch was found.
    #[error(
        "no qemu for `{arch}`: neither `qemu-{qemu}-static` nor `qemu-{qemu}` is on PATH; \
         install Debian's `qemu-user-static` package (`apt-get install qemu-user-static`) \
         or pass `--qemu PATH`"
    )]
    QemuMissing {
        /// Alpine arch name.
        arch: &'static str,
        /// qemu's name for it.
        qemu: &'static str,
    },
    /// `--qemu` names something that is not an executable file.
    #[error("`{0}` (given with --qemu) is not an executable file")]
    QemuNotExecutable(PathBuf),
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BinfmtError + 'a {
    move |source| BinfmtError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The flags of an entry (`P`, `O`, `C`, `F`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `P`: the interpreter gets the original argv[0].
    pub preserve_argv0: bool,
    /// `O`: the interpreter gets an open file descriptor of the binary.
    pub open_binary: bool,
    /// `C`: credentials come from the binary, so setuid works under emulation (implies `O`).
    pub credentials: bool,
    /// `F`: the interpreter is opened at registration, so it need not exist inside a chroot.
    pub fix_binary: bool,
}

impl Flags {
    /// Parses letters from `POCF` in any order (the kernel's status line uses that order).
    pub fn parse(text: &str) -> Result<Flags, BinfmtError> {
        let mut flags = Flags::default();
        for c in text.chars() {
            match c {
                'P' => flags.preserve_argv0 = true,
                'O' => flags.open_binary = true,
                'C' => flags.credentials = true,
                'F' => flags.fix_binary = true,
                _ => return Err(BinfmtError::UnknownFlag(c, text.to_string())),
            }
        }
        if flags.credentials {
            flags.open_binary = true;
        }
        Ok(flags)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [
            (self.preserve_argv0, "P"),
            (self.open_binary, "O"),
            (self.credentials, "C"),
            (self.fix_binary, "F"),
        ] {
            if on {
                f.write_str(c)?;
            }
        }
        Ok(())
    }
}

/// How an entry recognises its binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Bytes at an offset, compared under a mask (all ones when absent).
    Magic {
        /// Offset of the magic in the file.
        offset: usize,
        /// The bytes.
        magic: Vec<u8>,
        /// The mask, same length as `magic`.
        mask: Option<Vec<u8>>,
    },
    /// A file name extension (`E` entries).
    Extension(String),
}

/// One registered handler, as its entry file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's file name.
    pub name: String,
    /// Whether the entry is enabled.
    pub enabled: bool,
    /// The interpreter's path (as registered).
    pub interpreter: PathBuf,
    /// Its flags.
    pub flags: Flags,
    /// What it matches.
    pub matcher: Matcher,
}

impl Entry {
    /// Parses the text of an entry file.
    pub fn parse(name: &str, text: &str) -> Result<Entry, BinfmtError> {
        let malformed = |reason: String| BinfmtError::Malformed {
            name: name.to_string(),
            reason,
        };
        let mut enabled = None;
        let (mut interpreter, mut flags, mut offset) = (None, Flags::default(), 0usize);
        let (mut magic, mut mask, mut extension) = (None, None, None);
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "enabled" => enabled = Some(true),
                "disabled" => enabled = Some(false),
                "interpreter" => interpreter = Some(PathBuf::from(value)),
                "flags:" => flags = Flags::parse(value.trim())?,
                "offset" => {
                    offset = value
                        .parse()
                        .map_err(|_| malformed(format!("offset `{value}` is not a number")))?
                }
                "magic" => {
                    magic =
                        Some(hex::decode(value).map_err(|_| {
                            malformed(format!("magic `{value}` is not hexadecimal"))
                        })?)
                }
                "mask" => {
                    mask = Some(
                        hex::decode(value)
                            .map_err(|_| malformed(format!("mask `{value}` is not hexadecimal")))?,
                    )
                }
                "extension" => extension = Some(value.to_string()),
                _ => {}
            }
        }
        let enabled = enabled.ok_or_else(|| malformed("no `enabled`/`disabled` line".into()))?;
        let interpreter = interpreter.ok_or_else(|| malformed("no `interpreter` line".into()))?;
        let matcher = match (magic, extension) {
            (Some(magic), _) => {
                if mask.as_ref().is_some_and(|m| m.len() != magic.len()) {
                    return Err(malformed("mask and magic differ in length".into()));
                }
                Matcher::Magic {
                    offset,
                    magic,
                    mask,
                }
            }
            (None, Some(ext)) => Matcher::Extension(ext),
            (None, None) => return Err(malformed("neither `magic` nor `extension`".into())),
        };
        Ok(Entry {
            name: name.to_string(),
            enabled,
            interpreter,
            flags,
            matcher,
        })
    }

    /// Whether this entry catches the binaries of `arch` (tested on the arch's
    /// canonical ELF header, the table's magic).
    pub fn matches_arch(&self, arch: Arch) -> bool {
        let Matcher::Magic {
            offset,
            magic,
            mask,
        } = &self.matcher
        else {
            return false;
        };
        let Ok(header) = hex::decode(arch.info().magic) else {
            return false;
        };
        if offset + magic.len() > header.len() {
            return false;
        }
        magic.iter().enumerate().all(|(i, m)| {
            let k = mask.as_ref().map_or(0xff, |mask| mask[i]);
            (header[offset + i] ^ m) & k == 0
        })
    }

    /// Whether a setuid binary run through this entry gets its credentials.
    pub fn setuid_works(&self) -> bool {
        self.enabled && self.flags.credentials
    }
}

/// A handler to register: the kernel's `:name:M:offset:magic:mask:interpreter:flags` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Entry name.
    pub name: String,
    /// Offset of the magic.
    pub offset: usize,
    /// Magic bytes.
    pub magic: Vec<u8>,
    /// Mask bytes, same length.
    pub mask: Vec<u8>,
    /// The interpreter (opened by the kernel now when `F` is set).
    pub interpreter: PathBuf,
    /// Flags.
    pub flags: Flags,
}

impl Registration {
    /// The qemu handler for `arch`, named like Debian's (`qemu-aarch64`), so that a later
    /// registration of the same arch replaces it instead of piling up.
    pub fn for_arch(arch: Arch, interpreter: &Path, flags: Flags) -> Registration {
        let info = arch.info();
        Registration {
            name: format!("qemu-{}", info.qemu),
            offset: 0,
            // The table's strings are checked hex by arch.rs's own tests.
            magic: hex::decode(info.magic).unwrap_or_default(),
            mask: hex::decode(info.mask).unwrap_or_default(),
            interpreter: interpreter.to_path_buf(),
            flags,
        }
    }

    /// The line to write to `register`, checked for what the kernel would refuse.
    pub fn line(&self) -> Result<Vec<u8>, BinfmtError> {
        let invalid = |reason: &str| BinfmtError::Invalid {
            name: self.name.clone(),
            reason: reason.to_string(),
        };
        if self.name.is_empty()
            || self.name.contains([':', '/'])
            || matches!(self.name.as_str(), "." | ".." | "register" | "status")
        {
            return Err(invalid("the name must be non-empty, without `:` or `/`"));
        }
        let interp = self
            .interpreter
            .to_str()
            .ok_or_else(|| invalid("the interpreter path is not UTF-8"))?;
        if interp.is_empty() || interp.contains(':') || !interp.starts_with('/') {
            return Err(invalid(
                "the interpreter must be an absolute path without `:`",
            ));
        }
        if self.magic.is_empty() || self.magic.len() != self.mask.len() {
            return Err(invalid(
                "magic and mask must be non-empty and the same length",
            ));
        }
        let esc = |bytes: &[u8]| {
            bytes
                .iter()
                .map(|b| format!("\\x{b:02x}"))
                .collect::<String>()
        };
        let line = format!(
            ":{}:M:{}:{}:{}:{}:{}",
            self.name,
            self.offset,
            esc(&self.magic),
            esc(&self.mask),
            interp,
            self.flags
        );
        Ok(line.into_bytes())
    }
}

/// One mounted binfmt_misc instance.
#[derive(Debug, Clone)]
pub struct Table {
    dir: PathBuf,
}

impl Table {
    /// The instance mounted at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Table {
        Table { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether an instance is mounted there (its `register` file exists).
    pub fn is_mounted(&self) -> bool {
        self.dir.join("register").exists()
    }

    /// Whether the instance as a whole is enabled.
    pub fn enabled(&self) -> Result<bool, BinfmtError> {
        let path = self.dir.join("status");
        Ok(read_small(&path)?.trim() == "enabled")
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> Result<Vec<Entry>, BinfmtError> {
        let mut entries = Vec::new();
        for item in std::fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))? {
            let item = item.map_err(io_err("list", &self.dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                continue;
            }
            match self.entry(&name)? {
                Some(entry) => entries.push(entry),
                None => continue, // removed meanwhile
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The entry called `name`, if registered.
    pub fn entry(&self, name: &str) -> Result<Option<Entry>, BinfmtError> {
        let path = self.dir.join(name);
        match read_small(&path) {
            Ok(text) => Ok(Some(Entry::parse(name, &text)?)),
            Err(BinfmtError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The enabled entries that catch `arch`'s binaries.
    pub fn handlers_for(&self, arch: Arch) -> Result<Vec<Entry>, BinfmtError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| e.enabled && e.matches_arch(arch))
            .collect())
    }

    /// Registers `reg`; fails if the name is taken (the kernel says `EEXIST`).
    pub fn register(&self, reg: &Registration) -> Result<(), BinfmtError> {
        let line = reg.line()?;
        let path = self.dir.join("register");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        // The kernel parses one write() as one registration.
        file.write_all(&line).map_err(|source| BinfmtError::Io {
            action: "register an entry through",
            path: path.clone(),
            source,
        })
    }

    /// Removes the entry `name` (writes `-1` to its file); a missing entry is not an error.
    pub fn unregister(&self, name: &str) -> Result<(), BinfmtError> {
        let path = self.dir.join(name);
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(mut file) => file.write_all(b"-1").map_err(io_err("remove", &path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("open", &path)(e)),
        }
    }

    /// Registers `reg`, replacing an entry of the same name without a moment where
    /// neither exists: the new handler goes in under a temporary name first, the old
    /// one goes, the new one takes the real name, and the temporary one goes.
    /// (Remove-then-add lost most concurrent execs in the measurements of DESIGN.md 5.)
    pub fn replace(&self, reg: &Registration) -> Result<(), BinfmtError> {
        if self.entry(&reg.name)?.is_none() {
            return self.register(reg);
        }
        let temporary = Registration {
            name: format!("{}.sysroot-mk-swap", reg.name),
            ..reg.clone()
        };
        // A leftover from an interrupted swap is a duplicate of something: drop it.
        self.unregister(&temporary.name)?;
        self.register(&temporary)?;
        self.unregister(&reg.name)?;
        let result = self.register(reg);
        if result.is_ok() {
            self.unregister(&temporary.name)?;
        }
        result
    }
}

fn read_small(path: &Path) -> Result<String, BinfmtError> {
    let file = std::fs::File::open(path).map_err(io_err("read", path))?;
    let mut text = String::new();
    file.take(MAX_ENTRY_FILE)
        .read_to_string(&mut text)
        .map_err(io_err("read", path))?;
    Ok(text)
}

/// Mounts a binfmt_misc instance at `dir`: the host's when called in the initial user
/// namespace, else the calling user namespace's own (Linux >= 6.7).
pub fn mount_instance(dir: &Path) -> Result<(), BinfmtError> {
    use nix::mount::{mount, MsFlags};
    mount(
        Some("binfmt_misc"),
        dir,
        Some("binfmt_misc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|source| BinfmtError::Mount {
        path: dir.to_path_buf(),
        source,
    })
}

/// Mounts the host's instance at [`HOST_MOUNT`] when nothing is mounted there, so that
/// registrations outlive this process. Returns whether it mounted.
pub fn mount_host_table() -> Result<bool, BinfmtError> {
    let table = Table::at(HOST_MOUNT);
    if table.is_mounted() {
        return Ok(false);
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(BinfmtError::HostNotMounted);
    }
    mount_instance(Path::new(HOST_MOUNT))?;
    Ok(true)
}

/// Runs `f` on the host's table. When it is not mounted at [`HOST_MOUNT`], a helper
/// thread mounts it in a mount namespace of its own and runs `f` there, so the host's
/// mounts stay as they were (and, as the kernel keeps entries only while mounted,
/// registrations made through it vanish when `f` returns: use [`mount_host_table`] first
/// to make them last).
pub fn with_host_table<T, F>(f: F) -> Result<T, BinfmtError>
where
    T: Send,
    F: FnOnce(&Table) -> Result<T, BinfmtError> + Send,
{
    let table = Table::at(HOST_MOUNT);
    if table.is_mounted() {
        return f(&table);
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(BinfmtError::HostNotMounted);
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                use nix::mount::{mount, MsFlags};
                use nix::sched::{unshare, CloneFlags};
                // CLONE_FS gives this thread its own root/cwd so the new mount namespace is
                // its alone; it dies with the thread, taking the mount along.
                let private =
                    unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS).and_then(|_| {
                        mount(
                            None::<&str>,
                            "/",
                            None::<&str>,
                            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                            None::<&str>,
                        )
                    });
                private.map_err(|source| BinfmtError::Mount {
                    path: PathBuf::from(HOST_MOUNT),
                    source,
                })?;
                mount_instance(Path::new(HOST_MOUNT))?;
                f(&table)
            })
            .join()
            .unwrap_or_else(|_| Err(BinfmtError::HostNotMounted))
    })
}

/// Whether this kernel lets a user namespace mount its own binfmt_misc instance
/// (Linux >= 6.7) and user namespaces are available.
pub fn private_instances_supported() -> bool {
    let Ok(uts) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = uts.release().to_string_lossy();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    (major, minor) >= (6, 7) && userns
}

/// Finds the qemu for `arch`: `explicit` when given, else `qemu-<name>-static` or
/// `qemu-<name>` on PATH.
pub fn find_qemu(arch: Arch, explicit: Option<&Path>) -> Result<PathBuf, BinfmtError> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(path) = explicit {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        return if is_exe(&path) {
            Ok(path)
        } else {
            Err(BinfmtError::QemuNotExecutable(path))
        };
    }
    let qemu = arch.info().qemu;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for name in [format!("qemu-{qemu}-static"), format!("qemu-{qemu}")] {
        for dir in std::env::split_paths(&path).filter(|d| d.is_absolute()) {
            let candidate = dir.join(&name);
            if is_exe(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(BinfmtError::QemuMissing {
        arch: arch.info().name,
        qemu,
    })
}

/// Whether the ELF file at `path` has no program interpreter (is statically linked);
/// `None` when it cannot be read as ELF. A dynamic qemu cannot run inside a sysroot,
/// whose libraries are the target's, not the host's.
pub fn is_static_elf(path: &Path) -> Option<bool> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    if head.len() < 52 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let wide = head[4] == 2;
    let little = head[5] == 1;
    let num = |at: usize, len: usize| -> Option<u64> {
        let bytes = head.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let b = if little { bytes[len - 1 - i] } else { bytes[i] };
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (num(32, 8)?, num(54, 2)?, num(56, 2)?)
    } else {
        (num(28, 4)?, num(42, 2)?, num(44, 2)?)
    };
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).ok()?;
        // PT_INTERP names the dynamic loader.
        if num(at, 4)? == 3 {
            return Some(false);
        }
    }
    Some(true)
}

/// Whether `qemu` takes the original argv[0] from the kernel (`P` flag, through
/// `AT_FLAGS`), which qemu does since 6.0; older or unknown versions get no `P`.
pub fn qemu_preserves_argv0(qemu: &Path) -> bool {
    let Ok(out) = std::process::Command::new(qemu)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or("");
    version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|major| major >= 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn arch(name: &str) -> Arch {
        Arch::from_name(name).unwrap()
    }

    #[test]
    fn debian_entry_parses_and_lacks_credentials() {
        let e = Entry::parse("qemu-aarch64", DEBIAN_AARCH64).unwrap();
        assert!(e.enabled);
        assert_eq!(e.flags.to_string(), "POF");
        assert!(!e.setuid_works());
        assert!(e.matches_arch(arch("aarch64")));
        assert!(!e.matches_arch(arch("x86_64")));
        assert!(!e.matches_arch(arch("riscv64")));
    }

    #[test]
    fn extension_entries_parse_and_match_no_arch() {
        let e = Entry::parse(
            "jar",
            "disabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n",
        )
        .unwrap();
        assert!(!e.enabled);
        assert_eq!(e.matcher, Matcher::Extension(".jar".into()));
        assert!(!e.matches_arch(arch("aarch64")));
    }

    #[test]
    fn garbage_entry_is_an_error_naming_it() {
        let err = Entry::parse("x", "enabled\ninterpreter /a\nmagic zz\n").unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
        assert!(Entry::parse("y", "").is_err());
    }

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        // This test binary is dynamic on the usual hosts; a truncated file is not ELF.
        let me = std::env::current_exe().unwrap();
        assert!(is_static_elf(&me).is_some());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), b"\x7fELF").unwrap();
        assert_eq!(is_static_elf(&dir.path().join("short")), None);
        if Path::new("/usr/bin/qemu-aarch64-static").exists() {
            assert_eq!(
                is_static_elf(Path::new("/usr/bin/qemu-aarch64-static")),
                Some(true)
            );
        }
        if Path::new("/bin/sh").exists() {
            assert_eq!(is_static_elf(Path::new("/bin/sh")), Some(false));
        }
    }

    #[test]
    fn credentials_imply_open_binary() {
        assert_eq!(Flags::parse("CF").unwrap().to_string(), "OCF");
        assert!(Flags::parse("X").is_err());
    }

    #[test]
    fn every_arch_registration_matches_its_own_arch_only() {
        for a in Arch::all() {
            let reg =
                Registration::for_arch(a, Path::new("/usr/bin/qemu"), Flags::parse("OCF").unwrap());
            let entry = Entry {
                name: reg.name.clone(),
                enabled: true,
                interpreter: reg.interpreter.clone(),
                flags: reg.flags,
                matcher: Matcher::Magic {
                    offset: 0,
                    magic: reg.magic.clone(),
                    mask: Some(reg.mask.clone()),
                },
            };
            for b in Arch::all() {
                let same = a.info().qemu == b.info().qemu;
                assert_eq!(entry.matches_arch(b), same, "{} vs {}", a, b);
            }
        }
    }

    #[test]
    fn registration_line_has_escaped_magic() {
        let reg = Registration::for_arch(
            arch("aarch64"),
            Path::new("/usr/bin/qemu-aarch64-static"),
            Flags::parse("OCF").unwrap(),
        );
        let line = String::from_utf8(reg.line().unwrap()).unwrap();
        assert!(
            line.starts_with(":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46\\x02"),
            "{line}"
        );
        assert!(
            line.ends_with(":/usr/bin/qemu-aarch64-static:OCF"),
            "{line}"
        );
    }

    #[test]
    fn registrations_the_kernel_would_misparse_are_refused() {
        let mut reg = Registration::for_arch(arch("s390x"), Path::new("/q:x"), Flags::default());
        assert!(reg.line().is_err());
        reg.interpreter = PathBuf::from("/q");
        reg.name = "a/b".into();
        assert!(reg.line().is_err());
    }
}
