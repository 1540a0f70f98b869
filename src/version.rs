//! apk version strings: `number{.number}{letter}{_suffix{number}}{-rN}` and their ordering.
//!
//! The comparison reproduces apk-tools 2.14 exactly, including how it orders strings that
//! break the grammar (a repository may publish them, and the resolver must rank them as apk
//! would). A version is read as a sequence of tokens; each token has a kind (what the
//! grammar expects at that point) and a value. Two versions compare token by token: equal
//! kinds compare by value, different kinds by a fixed rank of the kinds. That makes the
//! order a total preorder over all strings, valid or not, which the property tests check.

use std::cmp::Ordering;
use std::fmt;

/// A package version as the index spells it. Ordered the way apk orders versions.
///
/// `Ord` is apk's order ([`compare`]) refined by the bytes of the string, so that it
/// stays a total order consistent with `Eq` and `Hash` (which compare the text): `1` and
/// `01` are the same version to apk but different `Version`s. Use [`compare`] or
/// [`Version::apk_cmp`] when apk's equality is what matters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
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

    /// Whether this version follows apk's grammar (see [`is_valid`]).
    pub fn is_valid(&self) -> bool {
        is_valid(&self.0)
    }

    /// apk's comparison, without the tie-break on the text that `Ord` adds.
    pub fn apk_cmp(&self, other: &Version) -> Ordering {
        compare(&self.0, &other.0)
    }

    /// apk's `~` match: `self` equals `pattern` on the components both spell
    /// (`3.11.8-r0` matches `3.11`; see [`fuzzy_match`]).
    pub fn fuzzy_matches(&self, pattern: &Version) -> bool {
        fuzzy_match(&self.0, &pattern.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Version {
    fn from(s: &str) -> Version {
        Version(s.to_owned())
    }
}

impl From<String> for Version {
    fn from(s: String) -> Version {
        Version(s)
    }
}

impl AsRef<str> for Version {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        compare(&self.0, &other.0).then_with(|| self.0.as_bytes().cmp(other.0.as_bytes()))
    }
}

/// Compares two version strings as apk does.
///
/// Never fails: strings outside the grammar are ordered as apk orders them (the valid
/// prefix counts, and a broken tail ranks above any valid continuation).
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_impl(a.as_bytes(), b.as_bytes(), false)
}

/// apk's fuzzy comparison (the `~` operator): like [`compare`], but once one of the two
/// versions runs out of components (or breaks the grammar) the two are equal.
pub fn compare_fuzzy(a: &str, b: &str) -> Ordering {
    compare_impl(a.as_bytes(), b.as_bytes(), true)
}

/// Whether `version` satisfies `~pattern`: equal on every component both spell.
///
/// As in apk the test is symmetric: `3.11` also matches `~3.11.2`.
pub fn fuzzy_match(version: &str, pattern: &str) -> bool {
    compare_fuzzy(version, pattern) == Ordering::Equal
}

/// Whether `s` follows apk's version grammar.
///
/// This is apk 2.14's own check, which is more permissive than the documented grammar:
/// it accepts the empty string and a bare letter (both read as `0`). Callers that need a
/// real version (a package's `V:`) also require it to be non-empty.
pub fn is_valid(s: &str) -> bool {
    let mut t = Tokens::new(s.as_bytes());
    while !t.kind.is_terminal() {
        t.value();
    }
    t.kind == Kind::End
}

/// What the grammar expects next. The declaration order is apk's: it decides which
/// transitions are legal (components may only move forward, with a few loops) and how
/// two versions rank when they diverge in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Invalid,
    /// After a `.`: a number where leading zeros are significant.
    DigitOrZero,
    Digit,
    Letter,
    Suffix,
    SuffixNumber,
    Revision,
    End,
}

impl Kind {
    fn is_terminal(self) -> bool {
        matches!(self, Kind::Invalid | Kind::End)
    }
}

/// Suffixes that sort before the bare version, lowest first.
const PRE_SUFFIXES: [&[u8]; 4] = [b"alpha", b"beta", b"pre", b"rc"];
/// Suffixes that sort after the bare version, lowest first.
const POST_SUFFIXES: [&[u8]; 5] = [b"cvs", b"svn", b"git", b"hg", b"p"];

/// A number of this many digits or more makes the version invalid (apk keeps values in
/// 64 bits and refuses rather than overflows).
const MAX_DIGITS: usize = 18;

/// A cursor over a version string: `kind` is the kind of the token at `rest`.
#[derive(Clone)]
struct Tokens<'a> {
    rest: &'a [u8],
    kind: Kind,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a [u8]) -> Tokens<'a> {
        Tokens {
            rest: s,
            kind: Kind::Digit,
        }
    }

    fn advance(&mut self, n: usize) {
        self.rest = &self.rest[n.min(self.rest.len())..];
    }

    /// Reads the value of the current token and moves on to the next one.
    fn value(&mut self) -> i64 {
        if self.rest.is_empty() {
            self.kind = Kind::End;
            return 0;
        }
        let mut fixed_next = None;
        let (value, len) = match self.kind {
            Kind::DigitOrZero if self.rest[0] == b'0' => {
                // A run of leading zeros after a dot counts as a negative number: the
                // longer the run, the smaller (`1.001 < 1.01 < 1.1`). The last zero of
                // the run is left to be read as the start of the next number.
                let zeros = self.rest.iter().take_while(|&&c| c == b'0').count();
                fixed_next = Some(Kind::Digit);
                (-(zeros as i64 - 1), zeros - 1)
            }
            Kind::DigitOrZero | Kind::Digit | Kind::SuffixNumber | Kind::Revision => {
                let digits = self.rest.iter().take_while(|c| c.is_ascii_digit()).count();
                if digits >= MAX_DIGITS {
                    self.kind = Kind::Invalid;
                    return -1;
                }
                let value = self.rest[..digits]
                    .iter()
                    .fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
                (value, digits)
            }
            Kind::Letter => (i64::from(self.rest[0]), 1),
            Kind::Suffix => match suffix_value(self.rest) {
                Some(found) => found,
                None => {
                    self.kind = Kind::Invalid;
                    return -1;
                }
            },
            Kind::Invalid | Kind::End => {
                self.kind = Kind::Invalid;
                return -1;
            }
        };
        self.advance(len);
        if self.rest.is_empty() {
            self.kind = Kind::End;
        } else if let Some(next) = fixed_next {
            self.kind = next;
        } else {
            self.step();
        }
        value
    }

    /// Decides the kind of the next token from the separator (or character class) at
    /// `rest`, consuming a separator.
    fn step(&mut self) {
        let next = match self.rest.first() {
            None | Some(0) => Kind::End,
            Some(c)
                if matches!(self.kind, Kind::Digit | Kind::DigitOrZero)
                    && c.is_ascii_lowercase() =>
            {
                Kind::Letter
            }
            Some(c) if self.kind == Kind::Letter && c.is_ascii_digit() => Kind::Digit,
            Some(c) if self.kind == Kind::Suffix && c.is_ascii_digit() => Kind::SuffixNumber,
            Some(&c) => {
                let next = match c {
                    b'.' => Kind::DigitOrZero,
                    b'_' => Kind::Suffix,
                    b'-' if self.rest.get(1) == Some(&b'r') => {
                        self.advance(1);
                        Kind::Revision
                    }
                    _ => Kind::Invalid,
                };
                self.advance(1);
                next
            }
        };
        let backwards_allowed = matches!(
            (self.kind, next),
            (Kind::Digit, Kind::DigitOrZero)
                | (Kind::SuffixNumber, Kind::Suffix)
                | (Kind::Letter, Kind::Digit)
        );
        self.kind = if next < self.kind && !backwards_allowed {
            Kind::Invalid
        } else {
            next
        };
    }
}

/// The value and length of the suffix name at the start of `s`: pre-release suffixes are
/// negative, post-release ones non-negative. Like apk, a known name followed by other
/// letters still matches (the letters then make the version invalid).
fn suffix_value(s: &[u8]) -> Option<(i64, usize)> {
    if let Some(i) = PRE_SUFFIXES.iter().position(|p| s.starts_with(p)) {
        return Some((i as i64 - PRE_SUFFIXES.len() as i64, PRE_SUFFIXES[i].len()));
    }
    POST_SUFFIXES
        .iter()
        .position(|p| s.starts_with(p))
        .map(|i| (i as i64, POST_SUFFIXES[i].len()))
}

fn compare_impl(a: &[u8], b: &[u8], fuzzy: bool) -> Ordering {
    let mut ta = Tokens::new(a);
    let mut tb = Tokens::new(b);
    let (mut av, mut bv) = (0i64, 0i64);
    while ta.kind == tb.kind && !ta.kind.is_terminal() && av == bv {
        av = ta.value();
        bv = tb.value();
    }
    match av.cmp(&bv) {
        Ordering::Equal => {}
        unequal => return unequal,
    }
    if ta.kind == tb.kind || fuzzy {
        return Ordering::Equal;
    }
    // Diverging kinds: a pre-release suffix (or a broken one) ranks lowest; otherwise
    // the version that goes on with a later kind of component is the smaller one
    // (`1.0-r1 < 1.0.1`, `1.0 < 1.0a`).
    if ta.kind == Kind::Suffix && ta.clone().value() < 0 {
        return Ordering::Less;
    }
    if tb.kind == Kind::Suffix && tb.clone().value() < 0 {
        return Ordering::Greater;
    }
    tb.kind.cmp(&ta.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_examples_order_as_apk() {
        let ordered = [
            "1.001",
            "1.0_alpha",
            "1.0_alpha1",
            "1.0_beta",
            "1.0_pre2",
            "1.0_rc1",
            "1.0",
            "1.0-r1",
            "1.0_cvs",
            "1.0_svn",
            "1.0_git20230101",
            "1.0_hg",
            "1.0_p1",
            "1.0a",
            "1.0.1",
            "1.01",
            "1.1",
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(
                compare(w[1], w[0]),
                Ordering::Greater,
                "{} > {}",
                w[1],
                w[0]
            );
        }
    }

    #[test]
    fn leading_zero_of_first_component_is_numeric() {
        assert_eq!(compare("01", "1"), Ordering::Equal);
        assert_ne!(Version::new("01"), Version::new("1"));
        assert_ne!(Version::new("01").cmp(&Version::new("1")), Ordering::Equal);
    }

    #[test]
    fn validity_follows_apk() {
        for v in [
            "1",
            "1.2.3",
            "1.2a",
            "1.2_rc1_p2",
            "1.0-r0",
            "2.0_git20240101-r10",
            "1.2-r",
            "",
            "a",
        ] {
            assert!(is_valid(v), "{v:?} should be valid");
        }
        for v in [
            "1-",
            "1_foo",
            "1a.2",
            "1.2-r1.3",
            "1-r1a",
            "x1!",
            "123456789012345678",
        ] {
            assert!(!is_valid(v), "{v:?} should be invalid");
        }
    }

    #[test]
    fn broken_tail_ranks_above_valid_continuations() {
        assert_eq!(compare("1-foo", "1"), Ordering::Greater);
        assert_eq!(compare("1-foo", "1.9"), Ordering::Greater);
        assert_eq!(compare("1-foo", "1-bar"), Ordering::Equal);
        assert_eq!(compare("1_foo", "1"), Ordering::Less);
    }

    #[test]
    fn fuzzy_matches_prefix_components() {
        assert!(fuzzy_match("3.11.8-r0", "3.11"));
        assert!(fuzzy_match("3.11", "3.11.8"));
        assert!(!fuzzy_match("3.1", "3.11"));
        assert!(!fuzzy_match("3.12.0", "3.11"));
    }
}
