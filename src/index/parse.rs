//! The `APKINDEX` text reader: `X:value` lines, a blank line between packages.
//!
//! One pass over the text, no backtracking, work linear in its size: every line is
//! looked at once, and atoms are split on single bytes. Large indexes are cut at blank
//! lines (which always end a package) into chunks parsed in parallel with rayon: the
//! work is dominated by allocating the packages' strings, which glibc serves from
//! per-thread arenas, so it spreads over the cores without contention. Field semantics follow apk 2.14
//! (later scalar fields overwrite earlier ones, atom lists accumulate, unknown lowercase
//! fields are ignored, unknown others make the package uninstallable), but where apk
//! silently drops what it cannot read, this reader refuses the index and names the line.

use base64::Engine;
use rayon::prelude::*;

use super::dep::split_atoms;
use super::{snippet, Dependency, IndexError, Package, Provide};
use crate::version::{self, Version};

/// Parses the text of an `APKINDEX` member into its packages, in index order.
///
/// `repo` is recorded in every package ([`Package::repo`]). `P:` and `V:` are required
/// (`V:` must be a valid apk version); `C:`, when present, must be a `Q1` SHA-1
/// identity or a hex digest. Fields apk keeps for the installed database only (`F M R Z
/// a s f`) are ignored, as apk ignores them in repository indexes.
pub fn parse_apkindex(text: &str, repo: usize) -> Result<Vec<Package>, IndexError> {
    if text.len() < PARALLEL_MIN_BYTES {
        return parse_chunk(text, repo);
    }
    let chunks = split_at_blank_lines(text, CHUNK_BYTES);
    let parsed: Vec<_> = chunks
        .par_iter()
        .map(|&(_, chunk)| parse_chunk(chunk, repo))
        .collect();
    let mut packages = Vec::with_capacity(parsed.iter().flatten().map(Vec::len).sum());
    for (result, &(start, _)) in parsed.into_iter().zip(&chunks) {
        match result {
            Ok(chunk) => packages.extend(chunk),
            Err(e) => {
                let lines_before = text.as_bytes()[..start]
                    .iter()
                    .filter(|&&c| c == b'\n')
                    .count();
                return Err(e.shifted(lines_before));
            }
        }
    }
    Ok(packages)
}

/// Below this size one thread is as fast as splitting the work.
const PARALLEL_MIN_BYTES: usize = 1 << 20;
/// Chunks small enough for the threads to share the work evenly.
const CHUNK_BYTES: usize = 256 << 10;

/// Cuts `text` into pieces of about `size` bytes, each ending just after a newline that
/// is followed by an empty line, with their byte offsets. A package never spans two
/// pieces, and each piece's line numbers continue the previous piece's.
fn split_at_blank_lines(text: &str, size: usize) -> Vec<(usize, &str)> {
    let bytes = text.as_bytes();
    let mut chunks = Vec::with_capacity(text.len() / size + 1);
    let mut start = 0;
    while start < bytes.len() {
        let target = start + size;
        let end = if target >= bytes.len() {
            bytes.len()
        } else {
            bytes[target..]
                .windows(2)
                .position(|w| w == b"\n\n")
                .map_or(bytes.len(), |i| target + i + 1)
        };
        // `end` follows a '\n' (or is the end), so it is a char boundary.
        chunks.push((start, &text[start..end]));
        start = end;
    }
    chunks
}

/// Parses a run of whole packages; line numbers in errors count from its start.
fn parse_chunk(text: &str, repo: usize) -> Result<Vec<Package>, IndexError> {
    // Real indexes spend about 420 bytes per package.
    let mut packages = Vec::with_capacity(text.len() / 400 + 1);
    let mut stanza: Option<Stanza> = None;
    let mut line_no = 0;
    for line in text.split('\n') {
        line_no += 1;
        // apk ends a package on any line shorter than a field (`X:`), not only on "".
        if line.len() < 2 {
            if let Some(done) = stanza.take() {
                packages.push(done.finish(line_no)?);
            }
            continue;
        }
        let bytes = line.as_bytes();
        if bytes[1] != b':' {
            return Err(IndexError::NotAField {
                line: line_no,
                found: snippet(line),
            });
        }
        // bytes[1] is ASCII, so bytes[0] is a whole (ASCII) character and 2 a boundary.
        let field = bytes[0];
        let value = &line[2..];
        stanza
            .get_or_insert_with(|| Stanza::new(repo))
            .add(field, value, line_no)?;
    }
    if let Some(done) = stanza.take() {
        packages.push(done.finish(line_no)?);
    }
    Ok(packages)
}

/// A package being read, and which mandatory fields it has had.
struct Stanza {
    pkg: Package,
    has_name: bool,
    has_version: bool,
}

impl Stanza {
    fn new(repo: usize) -> Stanza {
        Stanza {
            pkg: Package {
                repo,
                ..Package::default()
            },
            has_name: false,
            has_version: false,
        }
    }

    fn add(&mut self, field: u8, value: &str, line: usize) -> Result<(), IndexError> {
        let field_char = char::from(field);
        let atoms = |source: IndexError| IndexError::BadAtom {
            line,
            field: field_char,
            source: Box::new(source),
        };
        let number = check_scalar(field, value, line)?;
        let pkg = &mut self.pkg;
        match field {
            b'C' => pkg.checksum = value.to_owned(),
            b'P' => {
                pkg.name = value.to_owned();
                self.has_name = true;
            }
            b'V' => {
                pkg.version = Version::new(value);
                self.has_version = true;
            }
            b'A' => pkg.arch = value.to_owned(),
            b'S' => pkg.size = number,
            b'I' => pkg.installed_size = number,
            b'T' => pkg.description = value.to_owned(),
            b'U' => pkg.url = value.to_owned(),
            b'L' => pkg.license = value.to_owned(),
            b'o' => pkg.origin = value.to_owned(),
            b'm' => pkg.maintainer = value.to_owned(),
            b't' => pkg.build_time = number,
            b'c' => pkg.commit = value.to_owned(),
            // check_scalar refused anything above 32 bits.
            b'k' => pkg.provider_priority = Some(number as u32),
            b'q' => pkg.replaces_priority = Some(number as u32),
            b'D' => push_atoms(&mut pkg.depends, value, Dependency::parse).map_err(atoms)?,
            b'i' => push_atoms(&mut pkg.install_if, value, Dependency::parse).map_err(atoms)?,
            b'r' => push_atoms(&mut pkg.replaces, value, Dependency::parse).map_err(atoms)?,
            b'p' => push_atoms(&mut pkg.provides, value, Provide::parse).map_err(atoms)?,
            // Installed-database fields: apk skips them when reading a repository.
            b'F' | b'M' | b'R' | b'Z' | b'a' | b's' | b'f' => {}
            // Newer index features: lowercase ones are safe to ignore, anything else
            // changes what installing means, so apk refuses such a package.
            c if c.is_ascii_lowercase() => {}
            _ => pkg.uninstallable = true,
        }
        Ok(())
    }

    fn finish(self, line: usize) -> Result<Package, IndexError> {
        if !self.has_name {
            return Err(IndexError::MissingField { line, field: 'P' });
        }
        if !self.has_version {
            return Err(IndexError::MissingField { line, field: 'V' });
        }
        Ok(self.pkg)
    }
}

/// Checks the value of a scalar field (`C P V S I t k q`) and returns its number (0
/// for the others); shared by both readers so that they refuse the same indexes.
pub(super) fn check_scalar(field: u8, value: &str, line: usize) -> Result<u64, IndexError> {
    let bad = |problem: &'static str| IndexError::BadValue {
        line,
        field: char::from(field),
        problem,
        value: snippet(value),
    };
    match field {
        b'C' if !is_checksum(value) => Err(bad(
            "must be `Q1` and the base64 of a SHA-1, or a hex digest",
        )),
        b'P' if !is_package_name(value) => Err(bad(
            "must be a package name of letters, digits and `+ - . _`, not starting with `.` or `-`",
        )),
        b'V' if value.is_empty() || !version::is_valid(value) => Err(bad("must be an apk version")),
        b'S' | b'I' | b't' => number(value).ok_or_else(|| bad("must be a decimal number")),
        b'k' | b'q' => small_number(value)
            .map(u64::from)
            .ok_or_else(|| bad("must be a 32-bit decimal number")),
        _ => Ok(0),
    }
}

/// Upper-case fields that do not make a package uninstallable: those both readers know,
/// and the installed-database ones apk skips in repository indexes.
pub(super) fn is_known_field(field: u8) -> bool {
    matches!(
        field,
        b'C' | b'P'
            | b'V'
            | b'A'
            | b'S'
            | b'I'
            | b'T'
            | b'U'
            | b'L'
            | b'D'
            | b'F'
            | b'M'
            | b'R'
            | b'Z'
    )
}

/// The one package of `stanza` (its lines, without blank ones).
pub(super) fn parse_one(stanza: &str, repo: usize) -> Option<Package> {
    parse_chunk(stanza, repo).ok()?.into_iter().next()
}

fn push_atoms<T>(
    into: &mut Vec<T>,
    list: &str,
    parse: impl Fn(&str) -> Result<T, IndexError>,
) -> Result<(), IndexError> {
    into.reserve(list.bytes().filter(|&c| c == b' ').count() + 1);
    for atom in split_atoms(list) {
        into.push(parse(atom)?);
    }
    Ok(())
}

/// The names every real index uses: the package's file name is built from it, so a
/// `/` or a leading `.` must never get through.
fn is_package_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && !matches!(bytes[0], b'.' | b'-')
        && bytes
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.' | b'_'))
}

/// A non-empty run of ASCII digits that fits in 64 bits.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn small_number(s: &str) -> Option<u32> {
    number(s).and_then(|n| u32::try_from(n).ok())
}

/// `Q1` + base64 of 20 bytes (SHA-1), decoded as leniently as apk does, or an MD5/SHA-1
/// digest in hex, which is what old indexes carried.
fn is_checksum(s: &str) -> bool {
    if let Some(b64) = s.strip_prefix("Q1") {
        let mut out = [0u8; 21];
        return b64.len() == 28
            && matches!(super::LENIENT_BASE64.decode_slice(b64, &mut out), Ok(20));
    }
    matches!(s.len(), 32 | 40) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_with_nonzero_trailing_bits_are_accepted_as_apk_does() {
        // `=`-padded SHA-1: the last symbol carries 4 bits of the digest and 2 unused
        // ones; `E` (000100) is canonical, `F`, `G` and `H` set the unused bits.
        for last in ['E', 'F', 'G', 'H'] {
            let c = format!("Q1{}{last}=", "A".repeat(26));
            assert!(is_checksum(&c), "{c}");
        }
        assert!(
            !is_checksum(&format!("Q1{}E", "A".repeat(26))),
            "padding is still needed"
        );
        assert!(!is_checksum(&format!("Q1{}!E=", "A".repeat(25))));
    }

    /// A text above the parallel threshold: `n` packages of 6 lines each (5 fields and
    /// a blank line), package `i` starting on line `6 * i + 1`.
    fn big_index(n: usize) -> String {
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                "P:pkg{i}\nV:1.{i}-r0\nT:{}\nD:so:libc.musl-x86_64.so.1 dep{i}>=1\np:cmd:pkg{i}=1.{i}-r0\n\n",
                "x".repeat(300)
            ));
        }
        assert!(text.len() > PARALLEL_MIN_BYTES);
        text
    }

    #[test]
    fn parallel_parse_equals_a_single_pass() {
        let text = big_index(5000);
        let parallel = parse_apkindex(&text, 2).expect("parses");
        assert_eq!(parallel.len(), 5000);
        assert_eq!(parallel, parse_chunk(&text, 2).expect("parses"));
        assert!(parallel
            .iter()
            .enumerate()
            .all(|(i, p)| p.name == format!("pkg{i}")));
    }

    #[test]
    fn parallel_errors_carry_the_global_line_number() {
        let text = big_index(5000);
        // Break package 4321's `V:` line (line 6 * 4321 + 2) and a later one.
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        lines[6 * 4321 + 1] = "V:1.0-bad".to_owned();
        lines[6 * 4900] = "garbage".to_owned();
        let broken = lines.join("\n");
        let err = parse_apkindex(&broken, 0).expect_err("refused");
        assert!(
            matches!(err, IndexError::BadValue { line, field: 'V', .. } if line == 6 * 4321 + 2),
            "{err}"
        );
    }

    #[test]
    fn chunks_cover_the_text_and_end_before_blank_lines() {
        let text = big_index(5000);
        let chunks = split_at_blank_lines(&text, CHUNK_BYTES);
        assert!(chunks.len() > 4);
        let joined: String = chunks.iter().map(|(_, c)| *c).collect();
        assert_eq!(joined, text);
        for &(start, chunk) in &chunks[1..] {
            assert!(chunk.starts_with('\n') && text[..start].ends_with('\n'));
        }
    }
}
