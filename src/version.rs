//! apk version strings: `number{.number}{letter}{_suffix{number}}{-rN}` and their ordering.
//!
//! OWNER: index helper. The API below is shared; comparison is to be written.

use std::cmp::Ordering;
use std::fmt;

/// A package version as the index spells it. Ordered the way apk orders versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// Wraps a version string; validity is checked with [`is_valid`].
    pub fn new(s: impl Into<String>) -> Version {
        Version(s.into())
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Compares two version strings as apk does.
pub fn compare(a: &str, b: &str) -> Ordering {
    a.cmp(b)
}

/// Whether `s` follows apk's version grammar.
pub fn is_valid(s: &str) -> bool {
    !s.is_empty()
}
