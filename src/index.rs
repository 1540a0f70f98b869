//! The parsed `APKINDEX`: one [`Package`] per stanza, with its dependencies,
//! provides and install_if conditions as typed atoms.
//!
//! OWNER: index helper. The types below are the shared model; the parser is to be written.

use crate::version::Version;

/// A dependency operator, as apk spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// No version given: any version.
    Any,
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `~`: fuzzy, the version's components given must match as a prefix.
    Fuzzy,
    /// `><`: the package identity checksum (the version field holds `Q1...`).
    Checksum,
}

/// One dependency atom: `[!]name[@tag][op version]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dependency {
    /// `so:libc.musl-x86_64.so.1`, `cmd:busybox`, `pc:zlib`, `/bin/sh`, or a package name.
    pub name: String,
    /// The operator; [`Op::Any`] when no version was given.
    pub op: Op,
    /// The version (or checksum for [`Op::Checksum`]); empty for [`Op::Any`].
    pub version: String,
    /// `!name`: a conflict, not a requirement.
    pub conflict: bool,
    /// `name@tag`: only from repositories carrying that tag (world entries only).
    pub tag: Option<String>,
}

/// One `p:` entry: a name this package also answers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Provide {
    /// The provided name.
    pub name: String,
    /// `Some` for versioned provides (`so:libz.so.1=1.3.1`), which behave like real
    /// packages; `None` for virtual ones, chosen only with `k:` or when named.
    pub version: Option<Version>,
}

/// One package of a repository index (or of the installed database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `C:` as written (`Q1` + base64 of the SHA-1 of the control member).
    pub checksum: String,
    /// `P:`
    pub name: String,
    /// `V:`
    pub version: Version,
    /// `A:`
    pub arch: String,
    /// `S:` size of the `.apk` file in bytes.
    pub size: u64,
    /// `I:` installed size in bytes.
    pub installed_size: u64,
    /// `T:`
    pub description: String,
    /// `U:`
    pub url: String,
    /// `L:`
    pub license: String,
    /// `o:`
    pub origin: String,
    /// `m:`
    pub maintainer: String,
    /// `t:` build time, seconds since the epoch.
    pub build_time: u64,
    /// `c:` the aports commit.
    pub commit: String,
    /// `k:` provider priority.
    pub provider_priority: Option<u32>,
    /// `D:`
    pub depends: Vec<Dependency>,
    /// `p:`
    pub provides: Vec<Provide>,
    /// `i:`
    pub install_if: Vec<Dependency>,
    /// `r:`
    pub replaces: Vec<Dependency>,
    /// `q:` replaces priority.
    pub replaces_priority: Option<u32>,
    /// Which repository (position in the configured list) the package came from.
    pub repo: usize,
    /// An unknown upper-case field was present: apk refuses to install such a package.
    pub uninstallable: bool,
}

impl Package {
    /// `name-version`, as apk names the file and prints the package.
    pub fn name_version(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// The `.apk` file name inside the repository's arch directory.
    pub fn file_name(&self) -> String {
        format!("{}.apk", self.name_version())
    }
}
