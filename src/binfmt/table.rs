//! Mounted instances: reading, registering, swapping; the host's one and private ones.

use super::{io_err, BinfmtError, Entry, Registration, HOST_MOUNT};
use crate::arch::Arch;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Status and entry files are a few hundred bytes; anything longer is not binfmt_misc.
const MAX_ENTRY_FILE: u64 = 64 * 1024;

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
            .entries_for(arch)?
            .into_iter()
            .filter(|e| e.enabled)
            .collect())
    }

    /// Every entry that would catch `arch`'s binaries, disabled ones included (one
    /// `echo 1 > entry` away from serving them).
    pub fn entries_for(&self, arch: Arch) -> Result<Vec<Entry>, BinfmtError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| e.matches_arch(arch))
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
    /// (Remove-then-add lost most concurrent execs when measured; this order lost none.)
    ///
    /// Ctrl-C, SIGTERM and SIGHUP wait until the swap is over, so an interrupt never
    /// leaves the temporary entry behind (a SIGKILL can; the next replace of the same
    /// name, or `unregister` of the arch, removes it).
    pub fn replace(&self, reg: &Registration) -> Result<(), BinfmtError> {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal};
        let mut held = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            held.add(s);
        }
        let mut old = SigSet::empty();
        let blocked =
            nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&held), Some(&mut old));
        let result = self.replace_now(reg);
        if blocked.is_ok() {
            let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
        result
    }

    fn replace_now(&self, reg: &Registration) -> Result<(), BinfmtError> {
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
                // The namespace is this thread's alone; it dies with the thread, taking
                // the mount along.
                // SAFETY: only this scoped thread changes namespace, and it mounts nothing
                // that another thread needs to see.
                let private = nix::errno::Errno::result(unsafe { crate::mountns::enter_private() });
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
