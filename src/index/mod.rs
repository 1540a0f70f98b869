//! The parsed `APKINDEX`: one [`Package`] per stanza, with its dependencies,
//! provides and install_if conditions as typed atoms.
//!
//! [`parse_apkindex`] reads the text of an `APKINDEX` member; the atoms live in `dep`.

mod dep;
mod directory;
mod lookup;
mod parse;
mod view;

pub use dep::{join, DepMatch, DepRef, Dependency, Op, Provide};
pub(crate) use directory::{identity_hash, NameDirectory, PerId};
pub(crate) use lookup::{name_hash, NameLookup};
pub use parse::parse_apkindex;
pub(crate) use view::{AsciiBlocks, RawAtom, RawEntry, Span};
pub use view::{ParsedIndex, MAX_VIEW_TEXT};

/// Base64 as apk decodes `C:`: the standard alphabet with padding, but the unused low
/// bits of the last symbol need not be zero (`Q1...Z=` and `Q1...Y=` name the same
/// digest). What the digest must match is unchanged.
pub const LENIENT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

use crate::version::Version;

/// One package of a repository index (or of the installed database).
/// `Package::default()` is an empty entry that parsers fill in field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// What is wrong with an index, an atom or a provide.
///
/// Index errors carry the 1-based line number; quoted input is shortened and escaped so
/// that a hostile index cannot flood or garble the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// A dependency atom does not follow `[!]name[@tag][op version]`.
    #[error("dependency `{atom}` is malformed: {reason}; expected `[!]name[@tag][op version]`")]
    Dependency {
        /// The atom as found (shortened).
        atom: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A provide does not follow `name[=version]`.
    #[error("provide `{atom}` is malformed: {reason}; expected `name` or `name=version`")]
    Provide {
        /// The provide as found (shortened).
        atom: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A line that is neither blank nor `X:value`.
    #[error("APKINDEX line {line}: expected a `X:value` field, found `{found}`; the index is damaged, fetch it again")]
    NotAField {
        /// 1-based line number.
        line: usize,
        /// The line (shortened).
        found: String,
    },
    /// A field's value is unusable.
    #[error("APKINDEX line {line}: field `{field}:` {problem}, found `{value}`; the index is damaged, fetch it again")]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The field letter.
        field: char,
        /// What was expected.
        problem: &'static str,
        /// The value (shortened).
        value: String,
    },
    /// An atom list (`D:`, `p:`, `i:`, `r:`) holds a malformed atom.
    #[error("APKINDEX line {line}: field `{field}:`")]
    BadAtom {
        /// 1-based line number.
        line: usize,
        /// The field letter.
        field: char,
        /// The atom's error.
        source: Box<IndexError>,
    },
    /// The text is too large to be read for resolving.
    #[error("APKINDEX is {size} bytes, more than the {limit} bytes an index may have")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A package stanza lacks a mandatory field.
    #[error("APKINDEX package ending at line {line} has no `{field}:` field; the index is damaged, fetch it again")]
    MissingField {
        /// 1-based line number where the stanza ends.
        line: usize,
        /// The missing field letter.
        field: char,
    },
}

impl IndexError {
    /// The same error with its line number moved down by `lines` (for a chunk of a
    /// larger text).
    pub(crate) fn shifted(self, lines: usize) -> IndexError {
        match self {
            IndexError::NotAField { line, found } => IndexError::NotAField {
                line: line + lines,
                found,
            },
            IndexError::BadValue {
                line,
                field,
                problem,
                value,
            } => IndexError::BadValue {
                line: line + lines,
                field,
                problem,
                value,
            },
            IndexError::BadAtom {
                line,
                field,
                source,
            } => IndexError::BadAtom {
                line: line + lines,
                field,
                source,
            },
            IndexError::MissingField { line, field } => IndexError::MissingField {
                line: line + lines,
                field,
            },
            other @ (IndexError::Dependency { .. }
            | IndexError::Provide { .. }
            | IndexError::TooLarge { .. }) => other,
        }
    }
}

/// At most this many characters of hostile input are quoted in an error.
const SNIPPET_CHARS: usize = 80;

/// Shortens and escapes untrusted text for an error message.
fn snippet(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(SNIPPET_CHARS) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if s.chars().nth(SNIPPET_CHARS).is_some() {
        out.push('…');
    }
    out
}
