//! apk's database under `lib/apk/db`: the model of an installed package and the
//! writers of `installed`, `scripts.tar` and `triggers`, byte for byte as apk 2.14.
//!
//! OWNER: db helper. The model types are shared with `install`; the writers are to be written.

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
}
