//! An `.apk` file: its gzip members, the trust chain from the index entry to the data
//! (`C:` = SHA-1 of the compressed control member, `datahash` = SHA-256 of the compressed
//! data member), `.PKGINFO` and the scripts.
//!
//! The index signature was verified earlier, so the `C:` of a [`Package`] is trusted;
//! everything in the file is checked against it before it is parsed any further, which is
//! also why the package's own signature member is skipped, as apk skips it.
//!
//! A stanza that no signed index vouches for (a lockfile's, offline) is checked the
//! other way round by [`verify_signed_stanza`]: the package's own signature (over the
//! control member) must verify with a trusted key, and the stanza must say what the
//! signed `.PKGINFO` says, so a stanza cannot name a package nobody trusted signed, nor
//! describe a signed one differently.

use std::path::Path;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use crate::archive::{self, ArchiveError};
use crate::db::Script;
use crate::index::{Dependency, Op, Package};

mod stream;
pub use stream::DataStream;

/// The largest `.apk` file read from disk (the biggest Alpine packages are a few hundred MB).
pub const MAX_PACKAGE_FILE: u64 = 4 * 1024 * 1024 * 1024;
/// The largest inflated control member accepted (`.PKGINFO` plus scripts).
pub const MAX_CONTROL_MEMBER: u64 = 16 * 1024 * 1024;

/// Script actions apk knows; other dot files of the control member are ignored as apk does.
const SCRIPT_ACTIONS: [&str; 7] = [
    "pre-install",
    "post-install",
    "pre-deinstall",
    "post-deinstall",
    "pre-upgrade",
    "post-upgrade",
    "trigger",
];

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The file could not be read.
    #[error("cannot read package `{package}` from `{path}`")]
    Read {
        /// `name-version`.
        package: String,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The gzip members could not be split.
    #[error(
        "package `{package}` is not a valid .apk (truncated or corrupt?): {source}; fetch it again"
    )]
    Archive {
        /// `name-version`.
        package: String,
        /// What was wrong.
        #[source]
        source: ArchiveError,
    },
    /// The index entry carries no `Q1` checksum to verify against.
    #[error("package `{package}` has checksum `{checksum}` in the index; expected `Q1` + base64 of a SHA-1, so it cannot be verified")]
    NoChecksum {
        /// `name-version`.
        package: String,
        /// The `C:` field as found.
        checksum: String,
    },
    /// The control member does not match `C:`.
    #[error("package `{package}`: the control member's SHA-1 is `{found}` but the index says `{expected}`; the file is tampered, truncated or from another repository")]
    ControlChecksum {
        /// `name-version`.
        package: String,
        /// `C:` from the index.
        expected: String,
        /// What the file has.
        found: String,
    },
    /// The control member is not a readable tar or lacks `.PKGINFO`.
    #[error("package `{package}`: bad control member: {reason}")]
    Control {
        /// `name-version`.
        package: String,
        /// What was wrong.
        reason: String,
    },
    /// `.PKGINFO` names another package.
    #[error("package `{package}`: `.PKGINFO` says `{key} = {found}`, expected `{expected}`")]
    Identity {
        /// `name-version`.
        package: String,
        /// `pkgname` or `pkgver`.
        key: &'static str,
        /// From the index.
        expected: String,
        /// From `.PKGINFO`.
        found: String,
    },
    /// A package beyond the end of the plan was asked for (a caller's mistake).
    #[error("package #{index} was asked for, but the plan is shorter")]
    NotInPlan {
        /// Its position in the plan.
        index: usize,
    },
    /// The package carries no signature (needed when no signed index vouches for it).
    #[error("package `{package}` carries no signature, and no signed index vouches for it; build online (`--locked` without `--offline`), or pass `--allow-untrusted`")]
    Unsigned {
        /// `name-version`.
        package: String,
    },
    /// The package's own signature does not verify with a trusted key.
    #[error("package `{package}`: its own signature does not verify with a trusted key")]
    Signature {
        /// `name-version`.
        package: String,
        /// Why.
        #[source]
        source: Box<crate::trust::TrustError>,
    },
    /// A stanza field disagrees with the package's signed `.PKGINFO`.
    #[error("package `{package}`: the stanza says `{field}:{expected}`, but its signed `.PKGINFO` says `{found}`; the lockfile was changed")]
    Stanza {
        /// `name-version`.
        package: String,
        /// The index field letter.
        field: char,
        /// The stanza's value.
        expected: String,
        /// What `.PKGINFO` gives for it.
        found: String,
    },
    /// The data member does not match `datahash`.
    #[error("package `{package}`: the data member's SHA-256 is `{found}` but `.PKGINFO` says `{expected}`; the file is tampered or truncated")]
    DataChecksum {
        /// `name-version`.
        package: String,
        /// `datahash` from `.PKGINFO` (empty when missing).
        expected: String,
        /// What the file has.
        found: String,
    },
}

/// `.PKGINFO`, as written by abuild: `key = value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PkgInfo {
    /// `pkgname`
    pub name: String,
    /// `pkgver`
    pub version: String,
    /// `datahash`: hex SHA-256 of the compressed data member.
    pub datahash: String,
    /// `size`: installed size in bytes.
    pub size: u64,
    /// `builddate`
    pub build_time: u64,
    /// `triggers`: the trigger globs, split on spaces.
    pub triggers: Vec<String>,
    /// `replaces`: packages whose files this one may overwrite (the index may omit `r:`,
    /// apk records these from `.PKGINFO`).
    pub replaces: Vec<Dependency>,
    /// `replaces_priority`
    pub replaces_priority: Option<u32>,
    /// Every line in file order (`depend`, `provides`, `replaces`, ... repeat).
    pub fields: Vec<(String, String)>,
}

impl PkgInfo {
    /// Parses `.PKGINFO`; comment lines start with `#`, unknown keys are kept in `fields`.
    pub fn parse(text: &str) -> PkgInfo {
        let mut info = PkgInfo::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(" = ") else {
                continue;
            };
            match key {
                "pkgname" => info.name = value.to_owned(),
                "pkgver" => info.version = value.to_owned(),
                "datahash" => info.datahash = value.to_owned(),
                "size" => info.size = value.parse().unwrap_or(0),
                "builddate" => info.build_time = value.parse().unwrap_or(0),
                "triggers" => {
                    info.triggers = value
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "replaces" => info
                    .replaces
                    .extend(value.split_whitespace().filter_map(parse_atom)),
                "replaces_priority" => info.replaces_priority = value.parse().ok(),
                _ => {}
            }
            info.fields.push((key.to_owned(), value.to_owned()));
        }
        info
    }

    /// All values of `key`, in file order (`depend`, `provides`, `replaces`...).
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A package whose control and data members were checked against its index entry.
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    name_version: String,
    bytes: Vec<u8>,
    data_start: usize,
    info: PkgInfo,
    scripts: Vec<Script>,
}

/// What identifies the content of a file that nobody changed: device, inode, size and
/// change time. A write, truncation or replacement gives another stamp (the change time
/// cannot be set from user space, and since Linux 6.13 it is fine-grained once read),
/// so a file verified under a stamp is still verified while its stamp is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of an open file.
    pub fn of(file: &std::fs::File) -> std::io::Result<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        Ok(FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

impl VerifiedPackage {
    /// Reads and verifies the `.apk` at `path` against `expected` (its index entry). The
    /// installer reads packages with [`open_streaming`](Self::open_streaming) instead,
    /// which holds no data member and may trust a fetcher's stamp.
    pub fn open(expected: &Package, path: &Path) -> Result<VerifiedPackage, PackageError> {
        use std::io::Read;
        let read_err = |source| PackageError::Read {
            package: expected.name_version(),
            path: path.display().to_string(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_PACKAGE_FILE).read_to_end(&mut bytes))
            .map_err(read_err)?;
        VerifiedPackage::check(expected, bytes, true)
    }

    /// Verifies the bytes of an `.apk` against `expected` (its index entry).
    pub fn from_bytes(expected: &Package, bytes: Vec<u8>) -> Result<VerifiedPackage, PackageError> {
        VerifiedPackage::check(expected, bytes, true)
    }

    /// The checks of [`from_bytes`](Self::from_bytes); `hash_data` false skips only the
    /// data member's SHA-256, for bytes already known to match it.
    fn check(
        expected: &Package,
        bytes: Vec<u8>,
        hash_data: bool,
    ) -> Result<VerifiedPackage, PackageError> {
        let package = expected.name_version();
        let archive_err = |source| PackageError::Archive {
            package: package.clone(),
            source,
        };
        let signed = archive::split_signature(&bytes).map_err(archive_err)?;
        let control_start = bytes.len() - signed.rest.len();
        let (control_tar, control_len) =
            archive::read_first_member(signed.rest, MAX_CONTROL_MEMBER).map_err(archive_err)?;
        let control = &signed.rest[..control_len];

        let expected_digest =
            decode_q1(&expected.checksum).ok_or_else(|| PackageError::NoChecksum {
                package: package.clone(),
                checksum: expected.checksum.clone(),
            })?;
        let found: [u8; 20] = Sha1::digest(control).into();
        if found != expected_digest {
            return Err(PackageError::ControlChecksum {
                package,
                expected: expected.checksum.clone(),
                found: encode_q1(&found),
            });
        }

        let (info, scripts) = read_control(&package, &control_tar)?;
        for (key, want, got) in [
            ("pkgname", expected.name.as_str(), info.name.as_str()),
            ("pkgver", expected.version.as_str(), info.version.as_str()),
        ] {
            if want != got {
                return Err(PackageError::Identity {
                    package,
                    key,
                    expected: want.to_owned(),
                    found: got.to_owned(),
                });
            }
        }

        let data_start = control_start + control_len;
        let data = &bytes[data_start..];
        let found = if hash_data {
            hex::encode(Sha256::digest(data))
        } else {
            info.datahash.clone()
        };
        if info.datahash.is_empty() || !found.eq_ignore_ascii_case(&info.datahash) {
            return Err(PackageError::DataChecksum {
                package,
                expected: info.datahash.clone(),
                found,
            });
        }
        Ok(VerifiedPackage {
            name_version: package,
            bytes,
            data_start,
            info,
            scripts,
        })
    }

    /// `name-version`.
    pub fn name_version(&self) -> &str {
        &self.name_version
    }

    /// The parsed `.PKGINFO`.
    pub fn info(&self) -> &PkgInfo {
        &self.info
    }

    /// The scripts of the control member, in archive order.
    pub fn scripts(&self) -> &[Script] {
        &self.scripts
    }

    /// The compressed data member (a gzip member holding the file tree's tar); empty
    /// for a package opened with [`open_streaming`](Self::open_streaming), whose data
    /// member is read from its [`DataStream`].
    pub fn data_member(&self) -> &[u8] {
        self.bytes.get(self.data_start..).unwrap_or_default()
    }

    /// The whole `.apk` as read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The `.PKGINFO` and script actions (`pre-install`, `trigger`...) of the `.apk` file at
/// `path`, read without verifying anything: only for estimates made ahead of the real
/// work (how many scripts a build will run, so a progress bar knows its total), never
/// to act on. Reads the signature and control members only, as
/// [`VerifiedPackage::open_streaming`] reads them.
pub fn peek_control(path: &Path) -> Result<(PkgInfo, Vec<String>), PackageError> {
    use std::io::Read;
    let package = path.display().to_string();
    let read_err = |source| PackageError::Read {
        package: package.clone(),
        path: package.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut reader = std::io::BufReader::new(file.take(MAX_PACKAGE_FILE));
    let head = stream::read_head(&mut reader).map_err(read_err)?;
    let tar = archive::split_signature(&head)
        .and_then(|signed| archive::read_first_member(signed.rest, MAX_CONTROL_MEMBER))
        .map_err(|source| PackageError::Archive {
            package: package.clone(),
            source,
        })?
        .0;
    let (info, scripts) = read_control(&package, &tar)?;
    Ok((info, scripts.into_iter().map(|s| s.action).collect()))
}

/// Checks what no signed index vouches for: the package's own signature over its
/// control member must verify with a key of `keyring`, and every field of `expected`
/// (a lockfile's stanza) must be what the signed `.PKGINFO` says. The control member is
/// the one `C:` names: [`VerifiedPackage`] checks that separately. Returns the name of
/// the key that verified the signature.
pub fn verify_signed_stanza(
    expected: &Package,
    bytes: &[u8],
    info: &PkgInfo,
    keyring: &crate::trust::Keyring,
) -> Result<String, PackageError> {
    let package = expected.name_version();
    let archive_err = |source| PackageError::Archive {
        package: package.clone(),
        source,
    };
    let signed = archive::split_signature(bytes).map_err(archive_err)?;
    if signed.signature.is_none() {
        return Err(PackageError::Unsigned { package });
    }
    let control_len =
        archive::first_member_len_limited(signed.rest, MAX_CONTROL_MEMBER).map_err(archive_err)?;
    let control = archive::Signed {
        rest: &signed.rest[..control_len],
        ..signed
    };
    let key = keyring
        .verify_signed(&control)
        .map_err(|source| PackageError::Signature {
            package: package.clone(),
            source: Box::new(source),
        })?;
    check_stanza(expected, info)?;
    Ok(key.name.clone())
}

/// Compares a stanza with the `.PKGINFO` it was made from, as apk's index writer maps
/// them. Two liberties of real indexes are allowed: `A:` names the repository's arch
/// for `noarch` packages, and `r:` may be left out (apk reads `replaces` from the
/// package itself).
fn check_stanza(expected: &Package, info: &PkgInfo) -> Result<(), PackageError> {
    let one = |key: &str| info.values(key).next().unwrap_or("").to_string();
    let list = |key: &str| {
        info.values(key)
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let joined = |items: Vec<String>| items.join(" ");
    let number = |n: u64| if n == 0 { String::new() } else { n.to_string() };
    let priority = |p: Option<u32>| p.map(|p| p.to_string()).unwrap_or_default();
    let arch = one("arch");
    let mut checks = vec![
        ('P', expected.name.clone(), one("pkgname")),
        ('V', expected.version.to_string(), one("pkgver")),
        ('T', expected.description.clone(), one("pkgdesc")),
        ('U', expected.url.clone(), one("url")),
        ('L', expected.license.clone(), one("license")),
        ('o', expected.origin.clone(), one("origin")),
        ('m', expected.maintainer.clone(), one("maintainer")),
        ('t', number(expected.build_time), one("builddate")),
        ('c', expected.commit.clone(), one("commit")),
        ('I', expected.installed_size.to_string(), one("size")),
        (
            'k',
            priority(expected.provider_priority),
            one("provider_priority"),
        ),
        (
            'q',
            priority(expected.replaces_priority),
            one("replaces_priority"),
        ),
        (
            'D',
            joined(expected.depends.iter().map(ToString::to_string).collect()),
            list("depend"),
        ),
        (
            'p',
            joined(expected.provides.iter().map(ToString::to_string).collect()),
            list("provides"),
        ),
        (
            'i',
            joined(
                expected
                    .install_if
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
            list("install_if"),
        ),
    ];
    if arch != "noarch" {
        checks.push(('A', expected.arch.clone(), arch));
    }
    if !expected.replaces.is_empty() {
        checks.push((
            'r',
            joined(expected.replaces.iter().map(ToString::to_string).collect()),
            list("replaces"),
        ));
    }
    for (field, want, found) in checks {
        // `t:` and `I:` are numbers: `0` and absent are the same.
        let same = want == found
            || (matches!(field, 't' | 'I')
                && want.trim_start_matches('0') == found.trim_start_matches('0'));
        if !same {
            return Err(PackageError::Stanza {
                package: expected.name_version(),
                field,
                expected: want,
                found,
            });
        }
    }
    Ok(())
}

/// Decodes `Q1<base64 sha1>` into the digest, as leniently as apk (unused trailing
/// bits may be set).
pub fn decode_q1(checksum: &str) -> Option<[u8; 20]> {
    let b64 = checksum.strip_prefix("Q1")?;
    let raw = crate::index::LENIENT_BASE64.decode(b64).ok()?;
    raw.try_into().ok()
}

/// Encodes a SHA-1 digest as apk writes it: `Q1` + standard padded base64.
pub fn encode_q1(digest: &[u8; 20]) -> String {
    format!(
        "Q1{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// One `[!]name[op version]` atom of a `.PKGINFO` list (`None` when empty).
fn parse_atom(atom: &str) -> Option<Dependency> {
    let (conflict, atom) = match atom.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, atom),
    };
    const OPS: [(&str, Op); 7] = [
        ("><", Op::Checksum),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
        ("=", Op::Eq),
        ("~", Op::Fuzzy),
    ];
    let split = atom.find(['<', '>', '=', '~']);
    let (name, op, version) = match split {
        Some(at) => {
            let rest = &atom[at..];
            let (sym, op) = OPS.iter().find(|(sym, _)| rest.starts_with(sym))?;
            (&atom[..at], *op, &rest[sym.len()..])
        }
        None => (atom, Op::Any, ""),
    };
    if name.is_empty() {
        return None;
    }
    Some(Dependency {
        name: name.to_owned(),
        op,
        version: version.to_owned(),
        conflict,
        tag: None,
    })
}

/// `.PKGINFO` and scripts from the inflated control tar.
fn read_control(package: &str, tar_bytes: &[u8]) -> Result<(PkgInfo, Vec<Script>), PackageError> {
    let control_err = |reason: String| PackageError::Control {
        package: package.to_owned(),
        reason,
    };
    let mut info = None;
    let mut scripts = Vec::new();
    let mut archive = crate::archive::tar_archive(tar_bytes);
    let entries = archive
        .entries_with_seek()
        .map_err(|e| control_err(e.to_string()))?;
    for entry in entries {
        use std::io::Read;
        let mut entry = entry.map_err(|e| control_err(e.to_string()))?;
        let seen =
            crate::archive::apk_sees(entry.header()).map_err(|e| control_err(e.to_string()))?;
        if !seen || entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(dot_name) = path.strip_prefix('.') else {
            continue;
        };
        // The whole member was inflated under MAX_CONTROL_MEMBER, so entries are bounded too.
        let mut body = Vec::new();
        entry
            .read_to_end(&mut body)
            .map_err(|e| control_err(format!("`{path}`: {e}")))?;
        if path == ".PKGINFO" {
            let text = String::from_utf8(body)
                .map_err(|_| control_err("`.PKGINFO` is not UTF-8".into()))?;
            info = Some(PkgInfo::parse(&text));
        } else if SCRIPT_ACTIONS.contains(&dot_name) {
            scripts.push(Script {
                action: dot_name.to_owned(),
                body,
            });
        }
    }
    let info = info.ok_or_else(|| control_err("no `.PKGINFO`".into()))?;
    Ok((info, scripts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkginfo_keeps_repeated_keys_in_order() {
        let info = PkgInfo::parse(
            "# Generated by abuild\npkgname = busybox\npkgver = 1.36.1-r15\nsize = 950272\ntriggers = /bin /usr/bin\ndepend = so:libc.musl-x86_64.so.1\ndepend = /bin/sh\ndatahash = ab\n",
        );
        assert_eq!(info.name, "busybox");
        assert_eq!(info.size, 950272);
        assert_eq!(info.triggers, ["/bin", "/usr/bin"]);
        assert_eq!(
            info.values("depend").collect::<Vec<_>>(),
            ["so:libc.musl-x86_64.so.1", "/bin/sh"]
        );
    }

    #[test]
    fn replaces_atoms_keep_operator_and_version() {
        let info = PkgInfo::parse(
            "replaces = alpine-baselayout\nreplaces = !foo<=1.2-r0 bar\nreplaces_priority = 10\n",
        );
        let got: Vec<_> = info
            .replaces
            .iter()
            .map(|d| (d.name.as_str(), d.op, d.version.as_str(), d.conflict))
            .collect();
        assert_eq!(
            got,
            [
                ("alpine-baselayout", Op::Any, "", false),
                ("foo", Op::Le, "1.2-r0", true),
                ("bar", Op::Any, "", false)
            ]
        );
        assert_eq!(info.replaces_priority, Some(10));
    }

    #[test]
    fn q1_round_trips() {
        let digest = [7u8; 20];
        assert_eq!(decode_q1(&encode_q1(&digest)), Some(digest));
        assert_eq!(decode_q1("Q2AAAA"), None);
        assert_eq!(decode_q1("Q1!!"), None);
        // apk's leniency: the unused low bits of the last symbol are ignored.
        let canonical = encode_q1(&digest);
        let mut lenient = canonical.clone().into_bytes();
        let last = lenient.len() - 2;
        lenient[last] += 1;
        let lenient = String::from_utf8(lenient).unwrap();
        assert_ne!(lenient, canonical);
        assert_eq!(decode_q1(&lenient), Some(digest));
    }
}
