//! apk's database under `lib/apk/db`: the model of an installed package and the
//! writers of `installed`, `scripts.tar` and `triggers`, byte for byte as apk 2.14.
//!
//! The model types come first (shared with `install`, which fills them while extracting);
//! the formats live in one submodule each, and [`write_database`] puts them in place.

use crate::index::Package;

/// Ownership and permission bits of a file or directory, as recorded in `installed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acl {
    /// Owner uid (already mapped through the target's `etc/passwd`).
    pub uid: u32,
    /// Owner gid (already mapped through the target's `etc/group`).
    pub gid: u32,
    /// Permission bits including setuid/setgid/sticky (no file type bits).
    pub mode: u32,
}

/// One non-directory entry a package owns (`R:` in `installed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// The name within its directory.
    pub name: String,
    /// Ownership and mode.
    pub acl: Acl,
    /// SHA-1 recorded for the file (`Z:Q1...`), if the package carried one.
    pub sha1: Option<[u8; 20]>,
}

/// One directory a package owns (`F:` in `installed`) and the files in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRecord {
    /// Path relative to the root, no leading or trailing `/`; empty for the root itself.
    pub path: String,
    /// Ownership and mode of the directory.
    pub acl: Acl,
    /// Files in the directory, in archive order.
    pub files: Vec<FileRecord>,
}

/// A package script (`.pre-install`, `.post-install`, `.trigger`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The action: `pre-install`, `post-install`, `pre-upgrade`, `post-upgrade`,
    /// `pre-deinstall`, `post-deinstall`, `trigger`.
    pub action: String,
    /// The script's bytes.
    pub body: Vec<u8>,
}

/// Everything the database records about one installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    /// The index entry (completed from `.PKGINFO` where apk does so).
    pub package: Package,
    /// Directories and files, in the order apk records them.
    pub dirs: Vec<DirRecord>,
    /// Scripts from the control member, in archive order.
    pub scripts: Vec<Script>,
    /// Trigger globs (`triggers = ...` in `.PKGINFO`).
    pub triggers: Vec<String>,
    /// What went wrong while installing, and the repository tag (`f:` and `s:`).
    pub status: InstallStatus,
}

/// The per-package state apk records besides the package itself (`s:` and `f:`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallStatus {
    /// `s:` the tag of the repository the package was pinned to (`name@tag`), if any.
    pub repository_tag: Option<String>,
    /// `f:f`: some files could not be installed (apk carries on and marks the package).
    pub broken_files: bool,
    /// `f:s`: a script failed (apk carries on and marks the package).
    pub broken_script: bool,
    /// `f:x`: extended attributes could not be applied.
    pub broken_xattr: bool,
}

impl InstalledPackage {
    /// A package with nothing recorded yet: no directories, scripts, triggers or flags.
    pub fn new(package: Package) -> InstalledPackage {
        InstalledPackage {
            package,
            dirs: Vec::new(),
            scripts: Vec::new(),
            triggers: Vec::new(),
            status: InstallStatus::default(),
        }
    }

    /// The body of the script for `action`, if the package has one (the last one wins,
    /// as when apk reads a control member with duplicates).
    pub fn script(&self, action: ScriptAction) -> Option<&[u8]> {
        self.scripts
            .iter()
            .rev()
            .find(|s| s.action == action.as_str())
            .map(|s| s.body.as_slice())
    }
}

/// The script kinds apk knows, in the order it stores them in `scripts.tar`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptAction {
    /// `.pre-install`
    PreInstall,
    /// `.post-install`
    PostInstall,
    /// `.pre-deinstall`
    PreDeinstall,
    /// `.post-deinstall`
    PostDeinstall,
    /// `.pre-upgrade`
    PreUpgrade,
    /// `.post-upgrade`
    PostUpgrade,
    /// `.trigger`
    Trigger,
}

impl ScriptAction {
    /// Every action, in apk's order (the order of members per package in `scripts.tar`).
    pub const ALL: [ScriptAction; 7] = [
        ScriptAction::PreInstall,
        ScriptAction::PostInstall,
        ScriptAction::PreDeinstall,
        ScriptAction::PostDeinstall,
        ScriptAction::PreUpgrade,
        ScriptAction::PostUpgrade,
        ScriptAction::Trigger,
    ];

    /// The name as apk spells it (`post-install`).
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptAction::PreInstall => "pre-install",
            ScriptAction::PostInstall => "post-install",
            ScriptAction::PreDeinstall => "pre-deinstall",
            ScriptAction::PostDeinstall => "post-deinstall",
            ScriptAction::PreUpgrade => "pre-upgrade",
            ScriptAction::PostUpgrade => "post-upgrade",
            ScriptAction::Trigger => "trigger",
        }
    }

    /// The action named `s`; `None` for names apk ignores.
    pub fn parse(s: &str) -> Option<ScriptAction> {
        ScriptAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

mod installed;
mod scripts_tar;
mod triggers;

pub use installed::{name_order, q1_decode, q1_encode, read_installed, write_installed};
pub use scripts_tar::{read_scripts_tar, write_scripts_tar, ScriptMember};
pub use triggers::{read_triggers, write_triggers};

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::rootfs::RootDir;

/// `lib/apk/db/installed`, relative to the root.
pub const INSTALLED: &str = "lib/apk/db/installed";
/// `lib/apk/db/scripts.tar`, relative to the root.
pub const SCRIPTS_TAR: &str = "lib/apk/db/scripts.tar";
/// `lib/apk/db/triggers`, relative to the root.
pub const TRIGGERS: &str = "lib/apk/db/triggers";
/// `lib/apk/db/lock`, relative to the root.
pub const LOCK: &str = "lib/apk/db/lock";
/// `etc/apk/world`, relative to the root.
pub const WORLD: &str = "etc/apk/world";
/// `etc/apk/arch`, relative to the root.
pub const ARCH: &str = "etc/apk/arch";

/// Database files larger than this are refused when reading.
const MAX_DB_FILE: u64 = 1 << 30;

/// Errors reading or writing apk's database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A database file could not be read or written.
    #[error("cannot {action} `{path}` in the sysroot `{root}`")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file, relative to the root.
        path: String,
        /// The sysroot.
        root: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A text database file does not follow apk's format.
    #[error("`lib/apk/db/{file}` line {line}: {message}; the database is damaged or was written by another apk version")]
    Parse {
        /// `installed`.
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// `scripts.tar` is not a tar archive apk would read.
    #[error("`lib/apk/db/scripts.tar` at byte {offset}: {message}; remove it or restore it from a backup")]
    Tar {
        /// Offset of the offending header.
        offset: usize,
        /// What was wrong.
        message: String,
    },
}

/// The `world` file: one dependency per line sorted by name the way apk sorts it, a
/// later entry for the same name replacing an earlier one; an empty world is `"\n"`.
pub fn format_world(world: &[String]) -> String {
    let key = |entry: &str| -> String {
        let e = entry.strip_prefix('!').unwrap_or(entry);
        let end = e.find(['<', '>', '=', '~', '@']).unwrap_or(e.len());
        e[..end].to_string()
    };
    let mut entries: Vec<(String, &str)> = Vec::new();
    for entry in world.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let k = key(entry);
        match entries.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = entry,
            None => entries.push((k, entry)),
        }
    }
    entries.sort_by(|a, b| name_order(&a.0, &b.0));
    let mut out = entries
        .iter()
        .map(|(_, e)| *e)
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// Now, in seconds since the epoch: what apk stamps on scripts of packages without a
/// build time when no `SOURCE_DATE_EPOCH` is given.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes apk's database into `root` as `apk add --initdb` leaves it: `installed`,
/// `scripts.tar`, `triggers` and `lock` under `lib/apk/db`, `world` and `arch` under
/// `etc/apk`. `installed` must be in install order (it decides the order of
/// `scripts.tar` and `triggers`); each file is written under a temporary name and renamed.
/// Scripts of packages without a build time are dated now; see [`write_database_at`].
pub fn write_database(
    root: &Path,
    installed: &[InstalledPackage],
    world: &[String],
    arch: &str,
) -> Result<(), DbError> {
    write_database_at(root, installed, world, arch, None)
}

/// [`write_database`], dating scripts of packages without a build time at `epoch`
/// (the build's `SOURCE_DATE_EPOCH`, as apk does) instead of now.
pub fn write_database_at(
    root: &Path,
    installed: &[InstalledPackage],
    world: &[String],
    arch: &str,
    epoch: Option<u64>,
) -> Result<(), DbError> {
    let io_err = |path: &str, source| DbError::Io {
        action: "write",
        path: path.to_string(),
        root: root.to_path_buf(),
        source,
    };
    let dir = RootDir::open(root).map_err(|e| io_err(".", e))?;
    dir.mkdir_all("lib/apk/db", 0o755)
        .map_err(|e| io_err("lib/apk/db", e))?;
    dir.mkdir_all("etc/apk", 0o755)
        .map_err(|e| io_err("etc/apk", e))?;
    dir.touch(LOCK, 0o600).map_err(|e| io_err(LOCK, e))?;
    let files: [(&str, Vec<u8>); 5] = [
        (ARCH, format!("{arch}\n").into_bytes()),
        (WORLD, format_world(world).into_bytes()),
        (INSTALLED, write_installed(installed).into_bytes()),
        (
            SCRIPTS_TAR,
            write_scripts_tar(installed, epoch.unwrap_or_else(now)),
        ),
        (TRIGGERS, write_triggers(installed).into_bytes()),
    ];
    for (path, bytes) in files {
        dir.write_atomic(path, &bytes, 0o644)
            .map_err(|e| io_err(path, e))?;
    }
    Ok(())
}

/// Reads the database of `root` back: packages from `installed` with their scripts from
/// `scripts.tar` and globs from `triggers` attached. Missing files count as empty.
/// Packages with scripts or triggers come first, in the order those files list them
/// (apk's install order), so [`write_database`] reproduces all three files; the rest
/// follow in `installed` order.
pub fn read_database(root: &Path) -> Result<Vec<InstalledPackage>, DbError> {
    let dir = RootDir::open(root).map_err(|source| DbError::Io {
        action: "read",
        path: ".".into(),
        root: root.to_path_buf(),
        source,
    })?;
    let read = |path: &str| -> Result<Vec<u8>, DbError> {
        match dir.read(path, MAX_DB_FILE) {
            Ok(b) => Ok(b.unwrap_or_default()),
            Err(source) => Err(DbError::Io {
                action: "read",
                path: path.to_string(),
                root: root.to_path_buf(),
                source,
            }),
        }
    };
    let installed_text = read(INSTALLED)?;
    let mut pkgs = read_installed(&String::from_utf8_lossy(&installed_text))?;
    let by_checksum: HashMap<String, usize> = pkgs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.package.checksum.clone(), i))
        .collect();
    let mut order: Vec<usize> = Vec::new();
    let note = |i: usize, order: &mut Vec<usize>| {
        if !order.contains(&i) {
            order.push(i);
        }
    };
    for member in read_scripts_tar(&read(SCRIPTS_TAR)?)? {
        if let Some(&i) = by_checksum.get(&member.checksum) {
            note(i, &mut order);
            let pkg = &mut pkgs[i];
            pkg.scripts.retain(|s| s.action != member.action.as_str());
            pkg.scripts.push(Script {
                action: member.action.as_str().to_string(),
                body: member.body,
            });
        }
    }
    // A package with triggers but no scripts goes right after the previous line's
    // package, so the triggers file keeps its order too.
    let mut after: Option<usize> = None;
    for (checksum, globs) in read_triggers(&String::from_utf8_lossy(&read(TRIGGERS)?)) {
        if let Some(&i) = by_checksum.get(&checksum) {
            pkgs[i].triggers = globs;
            let pos = match order.iter().position(|&j| j == i) {
                Some(pos) => pos,
                None => {
                    let pos = after.map_or(0, |a| a + 1);
                    order.insert(pos, i);
                    pos
                }
            };
            after = Some(pos);
        }
    }
    for i in 0..pkgs.len() {
        note(i, &mut order);
    }
    let mut slots: Vec<Option<InstalledPackage>> = pkgs.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}
