//! Dependency atoms (`[!]name[@tag][op version]`) and provides (`name[=version]`): parsing,
//! matching against packages, and serialising them as apk 2.14 writes them.

use std::fmt;
use std::str::FromStr;

use super::{snippet, IndexError, Package};
use crate::version::{self, Version};

/// A dependency operator, as apk spells them.
///
/// apk reads an operator as any run of `<`, `>`, `=`, `~` and ORs their meanings, so
/// `=~`, `~=` and `~` are the same operator, as are `=<` and `<=`. Runs that mean none of
/// the variants below (`<>=`) are refused.
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
    /// `<~`: lower than the version, or a fuzzy match of it.
    FuzzyLe,
    /// `>~`: greater than the version, or a fuzzy match of it.
    FuzzyGe,
    /// `><`: the package identity checksum (the version field holds `Q1...`).
    Checksum,
}

const LESS: u8 = 1;
const EQUAL: u8 = 2;
const GREATER: u8 = 4;
const FUZZY: u8 = 8;

impl Op {
    /// The operator as apk writes it (empty for [`Op::Any`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Any => "",
            Op::Eq => "=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Fuzzy => "~",
            Op::FuzzyLe => "<~",
            Op::FuzzyGe => ">~",
            Op::Checksum => "><",
        }
    }

    /// Reads a run of operator characters; `None` when the run means no known operator.
    fn from_chars(run: &[u8]) -> Option<Op> {
        let mut mask = 0;
        for c in run {
            mask |= match c {
                b'<' => LESS,
                b'>' => GREATER,
                b'=' => EQUAL,
                b'~' => EQUAL | FUZZY,
                _ => return None,
            };
        }
        Some(match mask {
            LESS => Op::Lt,
            m if m == LESS | EQUAL => Op::Le,
            EQUAL => Op::Eq,
            GREATER => Op::Gt,
            m if m == GREATER | EQUAL => Op::Ge,
            m if m == EQUAL | FUZZY => Op::Fuzzy,
            m if m == LESS | EQUAL | FUZZY => Op::FuzzyLe,
            m if m == GREATER | EQUAL | FUZZY => Op::FuzzyGe,
            m if m == LESS | GREATER => Op::Checksum,
            _ => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_op_char(c: u8) -> bool {
    matches!(c, b'<' | b'>' | b'=' | b'~')
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

/// A dependency atom borrowed from the text it was read from: what the resolver works
/// on, so that reading an index copies no atom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DepRef<'a> {
    /// The name (see [`Dependency::name`]).
    pub name: &'a str,
    /// The operator.
    pub op: Op,
    /// The version or checksum; empty for [`Op::Any`].
    pub version: &'a str,
    /// `!name`.
    pub conflict: bool,
    /// `name@tag`.
    pub tag: Option<&'a str>,
}

impl<'a> DepRef<'a> {
    /// Parses one atom as [`Dependency::parse`] does, with the same errors, borrowing
    /// its parts from `atom`.
    pub fn parse(atom: &'a str) -> Result<DepRef<'a>, IndexError> {
        let fail = |reason: &'static str| IndexError::Dependency {
            atom: snippet(atom),
            reason,
        };
        let (conflict, body) = match atom.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, atom),
        };
        let bytes = body.as_bytes();
        // One pass finds the operator and refuses separators and control characters.
        let mut op_start = None;
        for (i, &c) in bytes.iter().enumerate() {
            if c.is_ascii_control() || c == b' ' {
                return Err(fail("it contains whitespace or a control character"));
            }
            if op_start.is_none() && is_op_char(c) {
                op_start = Some(i);
            }
        }
        let (name_tag, op, version) = match op_start {
            None => (body, Op::Any, ""),
            Some(start) => {
                let len = bytes[start..]
                    .iter()
                    .take_while(|&&c| is_op_char(c))
                    .count();
                let op = Op::from_chars(&bytes[start..start + len])
                    .ok_or_else(|| fail("its operator is not one of `= < <= > >= ~ <~ >~ ><`"))?;
                // Operator characters are ASCII, so these are char boundaries.
                let version = &body[start + len..];
                if version.is_empty() {
                    return Err(fail("the operator is not followed by a version"));
                }
                if op != Op::Checksum && !version::is_valid(version) {
                    return Err(fail("its version does not follow apk's version grammar"));
                }
                (&body[..start], op, version)
            }
        };
        let (name, tag) = match name_tag.split_once('@') {
            Some((name, tag)) => {
                if tag.is_empty() {
                    return Err(fail("the `@` is not followed by a repository tag"));
                }
                (name, Some(tag))
            }
            None => (name_tag, None),
        };
        if name.is_empty() {
            return Err(fail("the name is empty"));
        }
        Ok(DepRef {
            name,
            op,
            version,
            conflict,
            tag,
        })
    }

    /// Parses one provide as [`Provide::parse`] does, with the same errors: the name and
    /// the version (`None` for a virtual provide).
    pub fn parse_provide(atom: &'a str) -> Result<(&'a str, Option<&'a str>), IndexError> {
        let dep = DepRef::parse(atom)?;
        let fail = |reason: &'static str| IndexError::Provide {
            atom: snippet(atom),
            reason,
        };
        if dep.conflict {
            return Err(fail("a provide cannot be a conflict (`!`)"));
        }
        if dep.tag.is_some() {
            return Err(fail("a provide cannot carry a repository tag"));
        }
        match dep.op {
            Op::Any => Ok((dep.name, None)),
            Op::Eq => Ok((dep.name, Some(dep.version))),
            _ => Err(fail("only `=` may give a provide's version")),
        }
    }

    /// The owned atom.
    pub fn to_owned(self) -> Dependency {
        Dependency {
            name: self.name.to_owned(),
            op: self.op,
            version: self.version.to_owned(),
            conflict: self.conflict,
            tag: self.tag.map(str::to_owned),
        }
    }
}

impl<'a> From<&'a Dependency> for DepRef<'a> {
    fn from(dep: &'a Dependency) -> DepRef<'a> {
        DepRef {
            name: &dep.name,
            op: dep.op,
            version: &dep.version,
            conflict: dep.conflict,
            tag: dep.tag.as_deref(),
        }
    }
}

impl fmt::Display for DepRef<'_> {
    /// As [`Dependency`] displays.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conflict {
            f.write_str("!")?;
        }
        f.write_str(self.name)?;
        if let Some(tag) = self.tag {
            write!(f, "@{tag}")?;
        }
        if self.op != Op::Any {
            write!(f, "{}{}", self.op, self.version)?;
        }
        Ok(())
    }
}

/// How a package relates to a dependency atom (apk's `apk_dep_analyze`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DepMatch {
    /// The package neither is nor provides the atom's name.
    Irrelevant,
    /// The package fulfils the atom (for a conflict: it does not fall under it).
    Satisfies,
    /// The package has the name but breaks the atom.
    Conflicts,
}

impl Dependency {
    /// A plain requirement on `name`, any version.
    pub fn any(name: impl Into<String>) -> Dependency {
        Dependency {
            name: name.into(),
            op: Op::Any,
            version: String::new(),
            conflict: false,
            tag: None,
        }
    }

    /// Parses one atom, `[!]name[@tag][op version]`.
    ///
    /// Stricter than apk where apk would accept nonsense: an empty name, tag or version,
    /// whitespace or control characters, and operator runs without meaning are errors.
    pub fn parse(atom: &str) -> Result<Dependency, IndexError> {
        DepRef::parse(atom).map(DepRef::to_owned)
    }

    /// Parses a space-separated list of atoms, as in `D:`, `i:` and `r:` lines.
    pub fn parse_list(list: &str) -> Result<Vec<Dependency>, IndexError> {
        split_atoms(list).map(Dependency::parse).collect()
    }

    /// Whether `version` falls within the atom's version constraint. The conflict flag is
    /// not applied (see [`Dependency::analyze`] for that); [`Op::Checksum`] atoms need the
    /// package ([`Dependency::matches_package`]) and match no bare version.
    pub fn matches(&self, version: &Version) -> bool {
        let v = version.as_str();
        let d = self.version.as_str();
        use std::cmp::Ordering::*;
        match self.op {
            Op::Any => true,
            Op::Eq => version::compare(v, d) == Equal,
            Op::Lt => version::compare(v, d) == Less,
            Op::Le => version::compare(v, d) != Greater,
            Op::Gt => version::compare(v, d) == Greater,
            Op::Ge => version::compare(v, d) != Less,
            Op::Fuzzy => version::compare_fuzzy(v, d) == Equal,
            Op::FuzzyLe => version::compare_fuzzy(v, d) != Greater,
            Op::FuzzyGe => version::compare_fuzzy(v, d) != Less,
            Op::Checksum => false,
        }
    }

    /// Whether `pkg`, by its own name or one of its provides, falls within the atom's
    /// constraint (conflict flag not applied). A virtual provide matches only atoms
    /// without a version; a checksum atom matches the package's `C:`.
    pub fn matches_package(&self, pkg: &Package) -> bool {
        if pkg.name == self.name {
            return match self.op {
                Op::Checksum => pkg.checksum == self.version,
                _ => self.matches(&pkg.version),
            };
        }
        match pkg.provides.iter().find(|p| p.name == self.name) {
            None => false,
            Some(provide) => match (self.op, &provide.version) {
                (Op::Any, _) => true,
                (Op::Checksum, _) => pkg.checksum == self.version,
                (_, None) => false,
                (_, Some(v)) => self.matches(v),
            },
        }
    }

    /// How `pkg` relates to this atom, conflict flag included, exactly as apk decides it
    /// (its own name first, then the first provide of that name).
    pub fn analyze(&self, pkg: &Package) -> DepMatch {
        let provide = pkg.provides.iter().find(|p| p.name == self.name);
        if pkg.name != self.name && provide.is_none() {
            return DepMatch::Irrelevant;
        }
        let in_range = self.matches_package(pkg);
        // apk does not invert checksum atoms for conflicts.
        let satisfies = if self.op == Op::Checksum {
            in_range
        } else {
            in_range != self.conflict
        };
        if satisfies {
            DepMatch::Satisfies
        } else {
            DepMatch::Conflicts
        }
    }
}

impl fmt::Display for Dependency {
    /// `[!]name[@tag][op version]`, as apk 2.14 writes atoms in `lib/apk/db/installed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conflict {
            f.write_str("!")?;
        }
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, "@{tag}")?;
        }
        if self.op != Op::Any {
            write!(f, "{}{}", self.op, self.version)?;
        }
        Ok(())
    }
}

impl FromStr for Dependency {
    type Err = IndexError;

    fn from_str(s: &str) -> Result<Dependency, IndexError> {
        Dependency::parse(s)
    }
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

impl Provide {
    /// Parses one provide, `name` or `name=version`.
    ///
    /// apk reads provides with its dependency parser and ignores operators other than
    /// `=`; those, conflicts and tags are refused here since no index has a use for them.
    pub fn parse(atom: &str) -> Result<Provide, IndexError> {
        let (name, version) = DepRef::parse_provide(atom)?;
        Ok(Provide {
            name: name.to_owned(),
            version: version.map(Version::new),
        })
    }

    /// Parses a space-separated list of provides, as in a `p:` line.
    pub fn parse_list(list: &str) -> Result<Vec<Provide>, IndexError> {
        split_atoms(list).map(Provide::parse).collect()
    }
}

impl fmt::Display for Provide {
    /// `name` or `name=version`, as apk 2.14 writes provides in `lib/apk/db/installed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(v) = &self.version {
            write!(f, "={v}")?;
        }
        Ok(())
    }
}

impl FromStr for Provide {
    type Err = IndexError;

    fn from_str(s: &str) -> Result<Provide, IndexError> {
        Provide::parse(s)
    }
}

/// Splits a list on runs of spaces and newlines, apk's only separators in atom lists.
pub(super) fn split_atoms(list: &str) -> Atoms<'_> {
    Atoms { rest: list }
}

/// The atoms of a list; a byte scan, since both separators are ASCII.
pub(super) struct Atoms<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Atoms<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let is_sep = |c: &u8| *c == b' ' || *c == b'\n';
        let bytes = self.rest.as_bytes();
        let start = bytes.iter().position(|c| !is_sep(c))?;
        let len = bytes[start..]
            .iter()
            .position(is_sep)
            .unwrap_or(bytes.len() - start);
        // Both ends touch an ASCII separator or the ends of the list: char boundaries.
        let atom = &self.rest[start..start + len];
        self.rest = &self.rest[start + len..];
        Some(atom)
    }
}

/// Joins atoms with single spaces, as apk writes `D:`, `p:`, `i:` and `r:` lines.
pub fn join<T: fmt::Display>(items: &[T]) -> String {
    use fmt::Write;
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{item}");
    }
    out
}
