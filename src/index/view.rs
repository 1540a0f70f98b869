//! An `APKINDEX` read for resolving: the text kept whole in one buffer, and per package
//! only the byte ranges of what the resolver looks at.
//!
//! Reading an index into [`Package`]s allocates a dozen strings per package and one per
//! atom (~200,000 for main+community), which costs more than inflating it and doubles
//! the memory. A resolution only ever needs the few hundred packages it picks as
//! [`Package`]s: [`ParsedIndex::package`] reads those again from their own stanza.
//! The tables hold offsets rather than references, so the form owns its text (it
//! moves freely) and can be written to and read back from the cache as it is.
//!
//! Every distinct name of the index is numbered ([`ParsedIndex::names`]): the resolver
//! looks each name up once per index, not at each of its ~150,000 mentions, and finds
//! what a request reaches without reading the rest (`resolve::universe::prune`).
//!
//! The text is checked exactly as [`parse_apkindex`](super::parse_apkindex) checks it,
//! with the same errors: both share the field and atom validation.

use std::ops::Range;

use super::directory::NameDirectory;
use super::lookup::NameLookup;

use super::parse::check_scalar;
use super::{dep::split_atoms, snippet, DepRef, IndexError, Op, Package};

/// A byte range of the text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// Where `part`, a slice of `text` (whose length fits in u32), lies in it; an empty
    /// part (which may be a literal `""`) is the empty span.
    fn of(text: &str, part: &str) -> Span {
        if part.is_empty() {
            return Span::default();
        }
        let start = (part.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
        debug_assert!(start + part.len() <= text.len());
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// What the resolver needs of one package.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RawEntry {
    /// The stanza's lines, to read the whole [`Package`] again.
    pub stanza: Span,
    pub name: Span,
    /// Position of the name in [`ParsedIndex::names`], when numbered.
    pub name_id: u32,
    pub version: Span,
    pub arch: Span,
    pub checksum: Span,
    pub installed_size: u64,
    /// `k:`, when present.
    pub provider_priority: Option<u32>,
    pub uninstallable: bool,
    /// Ranges of [`ParsedIndex::atoms`].
    pub depends: Span,
    pub provides: Span,
    pub install_if: Span,
}

/// One atom of `D:`, `i:` or `p:`; the tag's span is empty when there is none (an
/// empty tag is refused when read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawAtom {
    pub name: Span,
    /// Position of the name in [`ParsedIndex::names`], when numbered.
    pub name_id: u32,
    pub version: Span,
    pub tag: Span,
    pub op: Op,
    pub conflict: bool,
}

/// A checked `APKINDEX` text with the tables the resolver reads.
#[derive(Clone, Default)]
pub struct ParsedIndex {
    pub(crate) text: String,
    pub(crate) entries: Vec<RawEntry>,
    pub(crate) atoms: Vec<RawAtom>,
    /// The distinct names of the index (package names, and those of its atoms), once
    /// numbered (empty otherwise), in the order met: each package's name, then those of
    /// its dependencies, provides and install_if.
    pub(crate) names: Vec<Span>,
    /// The numbers of [`ParsedIndex::names`] by text (empty when not numbered).
    pub(crate) lookup: NameLookup,
    /// What packages answer to each numbered name, made on first use (or read back
    /// with the form from the cache).
    pub(crate) directory: std::sync::OnceLock<NameDirectory>,
}

/// Two forms are equal when they read the same: same text, same tables, each name
/// the same text (whether numbered, and where a name's span points, do not matter).
impl PartialEq for ParsedIndex {
    fn eq(&self, other: &ParsedIndex) -> bool {
        let unnamed_entry = |e: &RawEntry| RawEntry {
            name: Span::default(),
            name_id: 0,
            ..*e
        };
        let unnamed_atom = |a: &RawAtom| RawAtom {
            name: Span::default(),
            name_id: 0,
            ..*a
        };
        self.text == other.text
            && self.entries.len() == other.entries.len()
            && self.atoms.len() == other.atoms.len()
            && self.entries.iter().zip(&other.entries).all(|(a, b)| {
                unnamed_entry(a) == unnamed_entry(b) && self.str(a.name) == other.str(b.name)
            })
            && self.atoms.iter().zip(&other.atoms).all(|(a, b)| {
                unnamed_atom(a) == unnamed_atom(b) && self.str(a.name) == other.str(b.name)
            })
    }
}

impl Eq for ParsedIndex {}

impl std::fmt::Debug for ParsedIndex {
    /// Sizes only: the text runs to megabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedIndex")
            .field("text_bytes", &self.text.len())
            .field("packages", &self.entries.len())
            .field("atoms", &self.atoms.len())
            .field("names", &self.names.len())
            .finish()
    }
}

/// Largest text the 32-bit offsets can address.
pub const MAX_VIEW_TEXT: usize = u32::MAX as usize;

impl ParsedIndex {
    /// Checks `text` as [`parse_apkindex`](super::parse_apkindex) does and records where
    /// each package's fields are.
    pub fn parse(text: String) -> Result<ParsedIndex, IndexError> {
        if text.len() > MAX_VIEW_TEXT {
            return Err(IndexError::TooLarge {
                size: text.len() as u64,
                limit: MAX_VIEW_TEXT as u64,
            });
        }
        // A large text is read in two halves, one per core: the largest index is read
        // last, when the others are done, so the second core would idle. More pieces
        // would hold more tables twice while merging, when the memory use peaks.
        let (entries, atoms, (names, lookup)) = if text.len() >= HALVES_MIN_BYTES {
            read_halves(&text)?
        } else {
            let mut out = Tables::default();
            read_chunk(&text, &text, &mut out)?;
            let numbered = number(&text, &mut out.entries, &mut out.atoms);
            (out.entries, out.atoms, numbered)
        };
        Ok(ParsedIndex {
            text,
            entries,
            atoms,
            names,
            lookup,
            directory: std::sync::OnceLock::new(),
        })
    }

    /// The directory of the index's names; `None` when they are not numbered.
    pub(crate) fn directory(&self) -> Option<&NameDirectory> {
        (self.name_count() > 0)
            .then(|| self.directory.get_or_init(|| NameDirectory::of_index(self)))
    }

    /// Numbers the distinct names of the index ([`ParsedIndex::names`], and each
    /// entry's and atom's `name_id`), if they are not numbered yet.
    pub fn number_names(&mut self) {
        if self.names.is_empty() {
            (self.names, self.lookup) = number(&self.text, &mut self.entries, &mut self.atoms);
            self.directory = std::sync::OnceLock::new();
        }
    }

    /// How many packages the index lists.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `APKINDEX` text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every package, as [`parse_apkindex`](super::parse_apkindex) reads them.
    pub fn packages(&self, repo: usize) -> Vec<Package> {
        // The text was checked when this form was made (or read back from the cache,
        // which checks it again): it parses.
        super::parse_apkindex(&self.text, repo).unwrap_or_default()
    }

    /// Package `i` (index order) in full, read again from its stanza.
    pub fn package(&self, i: usize, repo: usize) -> Option<Package> {
        let entry = self.entries.get(i)?;
        let stanza = self.text.get(entry.stanza.range())?;
        super::parse::parse_one(stanza, repo)
    }

    /// The text of `span` (empty if it does not fit, which a checked form never has).
    pub(crate) fn str(&self, span: Span) -> &str {
        self.text.get(span.range()).unwrap_or_default()
    }

    /// Name `id` of [`ParsedIndex::names`] (empty if there is none, which a checked
    /// numbered form never has).
    pub(crate) fn name(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .map_or("", |&span| self.str(span))
    }

    /// The number of the name `text`, if the index names it (and is numbered).
    pub(crate) fn name_number(&self, text: &str) -> Option<u32> {
        self.lookup.get(&self.text, &self.names, text)
    }

    /// How many distinct names the index has (0 when not numbered).
    pub(crate) fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The atoms of `span`.
    pub(crate) fn atoms(&self, span: Span) -> &[RawAtom] {
        self.atoms.get(span.range()).unwrap_or_default()
    }

    /// An atom with its parts.
    #[cfg(test)]
    pub(crate) fn dep(&self, atom: &RawAtom) -> DepRef<'_> {
        DepRef {
            name: self.str(atom.name),
            op: atom.op,
            version: self.str(atom.version),
            conflict: atom.conflict,
            tag: (atom.tag.end > atom.tag.start).then(|| self.str(atom.tag)),
        }
    }

    /// An atom with its parts but its name (left empty), which reads no text for the
    /// many atoms without a version.
    pub(crate) fn dep_unnamed(&self, atom: &RawAtom) -> DepRef<'_> {
        DepRef {
            name: "",
            op: atom.op,
            version: self.str(atom.version),
            conflict: atom.conflict,
            tag: (atom.tag.end > atom.tag.start).then(|| self.str(atom.tag)),
        }
    }

    /// Checks that every span lies within the text on character boundaries, every
    /// atom range within the atoms and, when numbered, every name number within the
    /// names: what a form read back from bytes must hold before use (it then reads as
    /// a freshly parsed one would, never out of bounds).
    #[cfg(test)]
    pub(crate) fn spans_fit(&self) -> bool {
        self.spans_fit_with(&AsciiBlocks::of(&self.text))
    }

    /// [`ParsedIndex::spans_fit`] with the text's [`AsciiBlocks`] at hand: an offset in
    /// an all-ASCII block is a character boundary without reading the text there
    /// (~500,000 offsets all over community's 7.6 MB took ~2 ms to read).
    pub(crate) fn spans_fit_with(&self, ascii: &AsciiBlocks) -> bool {
        let text = self.text.as_bytes();
        let boundary = |at: u32| {
            let at = at as usize;
            if at >= text.len() {
                return at == text.len();
            }
            ascii.is_ascii(at) || text.get(at).is_some_and(|&b| (b as i8) >= -0x40)
        };
        let text_ok = |s: Span| s.start <= s.end && boundary(s.start) && boundary(s.end);
        let atoms_ok = |s: Span| s.start <= s.end && (s.end as usize) <= self.atoms.len();
        let numbered = !self.names.is_empty();
        // A mention that is the numbered name's own span (as a cache entry has them)
        // was checked with `names`: reading its bytes again, all over the text, took
        // ~2 ms for community.
        let name_ok = |name: Span, id: u32| match self.names.get(id as usize) {
            Some(&named) => named == name || text_ok(name),
            None => !numbered && text_ok(name),
        };
        // Both halves read all over the text: one core each.
        let (packages, atoms) = rayon::join(
            || {
                self.names.iter().all(|&s| text_ok(s))
                    && self.entries.iter().all(|e| {
                        name_ok(e.name, e.name_id)
                            && [e.stanza, e.version, e.arch, e.checksum]
                                .into_iter()
                                .all(text_ok)
                            && [e.depends, e.provides, e.install_if]
                                .into_iter()
                                .all(atoms_ok)
                    })
            },
            || {
                self.atoms
                    .iter()
                    .all(|a| name_ok(a.name, a.name_id) && text_ok(a.version) && text_ok(a.tag))
            },
        );
        packages && atoms
    }
}

/// Which 4 KiB blocks of a text hold only ASCII, where every offset is a character
/// boundary.
pub(crate) struct AsciiBlocks(Vec<bool>);

/// The bytes of a block of [`AsciiBlocks`], as a shift.
const ASCII_BLOCK_SHIFT: u32 = 12;

impl AsciiBlocks {
    /// The blocks of `text`.
    pub fn of(text: &str) -> AsciiBlocks {
        AsciiBlocks(
            text.as_bytes()
                .chunks(1 << ASCII_BLOCK_SHIFT)
                .map(<[u8]>::is_ascii)
                .collect(),
        )
    }

    /// Whether offset `at` lies in an all-ASCII block.
    fn is_ascii(&self, at: usize) -> bool {
        self.0
            .get(at >> ASCII_BLOCK_SHIFT)
            .copied()
            .unwrap_or(false)
    }
}

/// `name_id` of a form whose names are not numbered.
pub(crate) const NOT_NUMBERED: u32 = u32::MAX;

/// Texts from this size on are read in two halves.
const HALVES_MIN_BYTES: usize = 1 << 20;

/// Reads `text` in two halves in parallel, cut at a blank line, and joins their tables
/// (the second half's atom ranges moved after the first's); the first error in the
/// text is the one returned, with its line number in the whole text.
/// Tables of both halves merged, and the names numbered.
type Read = (Vec<RawEntry>, Vec<RawAtom>, (Vec<Span>, NameLookup));

fn read_halves(text: &str) -> Result<Read, IndexError> {
    let bytes = text.as_bytes();
    let middle = text.len() / 2;
    // Just after a newline followed by a blank line: a package never spans the cut.
    let cut = bytes[middle..]
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(text.len(), |i| middle + i + 1);
    let (first, second) = text.split_at(cut);
    let read = |chunk, whole: bool| {
        let mut out = Tables::default();
        if whole {
            // The first half's tables receive the second's: sized for both up front
            // (capacity never written is never touched), not grown by copying.
            out.entries.reserve(text.len() / 400 + 1);
            out.atoms.reserve(text.len() / 60 + 1);
        }
        read_chunk(text, chunk, &mut out)?;
        // Each half numbers its own names (hashing every mention is the larger part
        // of the work); the second's are then renumbered, one lookup per name.
        let numbered = number(text, &mut out.entries, &mut out.atoms);
        Ok((out, numbered))
    };
    let (a, b) = rayon::join(|| read(first, true), || read(second, false));
    let (mut a, (mut names, mut lookup)) = a?;
    let (b, (names_b, _)) =
        b.map_err(|e: IndexError| e.shifted(first.bytes().filter(|&c| c == b'\n').count()))?;
    let renumber: Vec<u32> = names_b
        .iter()
        .map(|&span| lookup.number(text, &mut names, span))
        .collect();
    let renumbered = |id: u32| renumber.get(id as usize).copied().unwrap_or(id);
    let offset = a.atoms.len() as u32;
    let shift = |s: Span| Span {
        start: s.start + offset,
        end: s.end + offset,
    };
    a.entries.extend(b.entries.iter().map(|e| RawEntry {
        name_id: renumbered(e.name_id),
        depends: shift(e.depends),
        provides: shift(e.provides),
        install_if: shift(e.install_if),
        ..*e
    }));
    drop(b.entries);
    a.atoms.extend(b.atoms.iter().map(|atom| RawAtom {
        name_id: renumbered(atom.name_id),
        ..*atom
    }));
    Ok((a.entries, a.atoms, (names, lookup)))
}

/// Numbers the names of `entries` and `atoms` (spans of `text`) in the order met: each
/// distinct name gets the next number, and the span of its first mention in the
/// names returned, with the table of their numbers by text.
fn number(text: &str, entries: &mut [RawEntry], atoms: &mut [RawAtom]) -> (Vec<Span>, NameLookup) {
    // Real indexes have about two distinct names per package.
    let mut lookup = NameLookup::with_capacity(entries.len() * 2 + 1);
    let mut names = Vec::new();
    let mut id_of = |span: Span| lookup.number(text, &mut names, span);
    // In the order the resolver meets them: each package's name, then its
    // dependencies, provides and install_if (so a number is also the order apk
    // creates the name in, reading this index alone).
    let mut numbered = vec![false; atoms.len()];
    for e in entries.iter_mut() {
        e.name_id = id_of(e.name);
        for list in [e.depends, e.provides, e.install_if] {
            for i in list.range() {
                if let (Some(a), Some(done)) = (atoms.get_mut(i), numbered.get_mut(i)) {
                    a.name_id = id_of(a.name);
                    *done = true;
                }
            }
        }
    }
    // Atoms of no package (which a parsed text never has) still get a number.
    for (a, done) in atoms.iter_mut().zip(&numbered) {
        if !done {
            a.name_id = id_of(a.name);
        }
    }
    (names, lookup)
}

#[derive(Default)]
struct Tables {
    entries: Vec<RawEntry>,
    atoms: Vec<RawAtom>,
}

/// One package being read; its atoms wait here so that each list is one range.
#[derive(Default)]
struct Pending {
    entry: RawEntry,
    first_line: Option<usize>,
    last_line_end: usize,
    has_name: bool,
    has_version: bool,
    depends: Vec<RawAtom>,
    provides: Vec<RawAtom>,
    install_if: Vec<RawAtom>,
}

/// Reads the packages of `chunk` (a run of whole packages of `text`) into `out`; line
/// numbers in errors count from the chunk's start.
fn read_chunk(text: &str, chunk: &str, out: &mut Tables) -> Result<(), IndexError> {
    out.entries.reserve(chunk.len() / 400 + 1);
    out.atoms.reserve(chunk.len() / 60 + 1);
    let mut p = Pending::default();
    let mut line_no = 0;
    for line in chunk.split('\n') {
        line_no += 1;
        if line.len() < 2 {
            if p.first_line.is_some() {
                finish(text, &mut p, line_no, out)?;
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
        let start = line.as_ptr() as usize - text.as_ptr() as usize;
        p.first_line.get_or_insert(start);
        p.last_line_end = start + line.len();
        add(text, &mut p, bytes[0], &line[2..], line_no)?;
    }
    if p.first_line.is_some() {
        finish(text, &mut p, line_no, out)?;
    }
    Ok(())
}

fn add(text: &str, p: &mut Pending, field: u8, value: &str, line: usize) -> Result<(), IndexError> {
    let atoms = |source: IndexError| IndexError::BadAtom {
        line,
        field: char::from(field),
        source: Box::new(source),
    };
    let span = |part: &str| Span::of(text, part);
    let dep_atom = |d: DepRef<'_>| RawAtom {
        name: span(d.name),
        name_id: NOT_NUMBERED,
        version: span(d.version),
        tag: d.tag.map_or_else(Span::default, span),
        op: d.op,
        conflict: d.conflict,
    };
    let scalar = check_scalar(field, value, line)?;
    let e = &mut p.entry;
    match field {
        b'C' => e.checksum = span(value),
        b'P' => {
            e.name = span(value);
            p.has_name = true;
        }
        b'V' => {
            e.version = span(value);
            p.has_version = true;
        }
        b'A' => e.arch = span(value),
        b'I' => e.installed_size = scalar,
        b'k' => e.provider_priority = Some(scalar as u32),
        b'D' | b'i' | b'r' => {
            for atom in split_atoms(value) {
                let dep = DepRef::parse(atom).map_err(atoms)?;
                match field {
                    b'D' => p.depends.push(dep_atom(dep)),
                    b'i' => p.install_if.push(dep_atom(dep)),
                    // Replaces take no part in resolving: only checked.
                    _ => {}
                }
            }
        }
        b'p' => {
            for atom in split_atoms(value) {
                let (name, version) = DepRef::parse_provide(atom).map_err(atoms)?;
                p.provides.push(RawAtom {
                    name: span(name),
                    name_id: NOT_NUMBERED,
                    version: version.map_or_else(Span::default, span),
                    tag: Span::default(),
                    op: if version.is_some() { Op::Eq } else { Op::Any },
                    conflict: false,
                });
            }
        }
        c if super::parse::is_known_field(c) || c.is_ascii_lowercase() => {}
        _ => e.uninstallable = true,
    }
    Ok(())
}

fn finish(text: &str, p: &mut Pending, line: usize, out: &mut Tables) -> Result<(), IndexError> {
    if !p.has_name {
        return Err(IndexError::MissingField { line, field: 'P' });
    }
    if !p.has_version {
        return Err(IndexError::MissingField { line, field: 'V' });
    }
    let start = p.first_line.unwrap_or(0);
    let end = (p.last_line_end + 1).min(text.len());
    let mut push = |list: &mut Vec<RawAtom>| {
        let from = out.atoms.len() as u32;
        out.atoms.append(list);
        Span {
            start: from,
            end: out.atoms.len() as u32,
        }
    };
    let mut entry = p.entry;
    // Field order of the resolver's tables: D, p, i.
    entry.depends = push(&mut p.depends);
    entry.provides = push(&mut p.provides);
    entry.install_if = push(&mut p.install_if);
    entry.stanza = Span {
        start: start as u32,
        end: end as u32,
    };
    out.entries.push(entry);
    p.entry = RawEntry::default();
    p.first_line = None;
    p.has_name = false;
    p.has_version = false;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAE=\nP:a\nV:1.0-r0\nA:x86_64\nI:10\nk:5\n\
D:b>=1 !c so:libc.musl-x86_64.so.1\np:cmd:a=1.0-r0 virt\ni:d e=2\nr:old\nT:text\n\n\
P:b\nV:2\nX:new\nD:x\nD:y\n\nP:c\nV:3";

    #[test]
    fn every_package_reads_back_as_the_owned_parser_reads_it() {
        let view = ParsedIndex::parse(TEXT.to_owned()).unwrap();
        let owned = super::super::parse_apkindex(TEXT, 4).unwrap();
        assert_eq!(view.len(), owned.len());
        for (i, p) in owned.iter().enumerate() {
            assert_eq!(view.package(i, 4).as_ref(), Some(p));
            let e = &view.entries[i];
            assert_eq!(view.str(e.name), p.name);
            assert_eq!(view.str(e.version), p.version.as_str());
            assert_eq!(view.str(e.checksum), p.checksum);
            assert_eq!(e.provider_priority, p.provider_priority);
            assert_eq!(e.uninstallable, p.uninstallable);
            let deps: Vec<_> = view
                .atoms(e.depends)
                .iter()
                .map(|a| view.dep(a).to_owned())
                .collect();
            assert_eq!(deps, p.depends);
            let iif: Vec<_> = view
                .atoms(e.install_if)
                .iter()
                .map(|a| view.dep(a).to_owned())
                .collect();
            assert_eq!(iif, p.install_if);
            let provides: Vec<_> = view
                .atoms(e.provides)
                .iter()
                .map(|a| {
                    (
                        view.str(a.name),
                        (a.op == Op::Eq).then(|| view.str(a.version)),
                    )
                })
                .collect();
            let want: Vec<_> = p
                .provides
                .iter()
                .map(|p| (p.name.as_str(), p.version.as_ref().map(|v| v.as_str())))
                .collect();
            assert_eq!(provides, want);
        }
        assert!(view.spans_fit());
        assert_eq!(view.packages(4), owned);
    }

    #[test]
    fn errors_are_those_of_the_owned_parser() {
        for bad in [
            "P:a\nV:x y\n",
            "P:a\n",
            "V:1\n",
            "P:a\nV:1\nD:b>=\n",
            "P:a\nV:1\np:b>1\n",
            "P:a\nV:1\nS:12x\n",
            "P:a\nV:1\nnot a field\n",
            "P:/etc\nV:1\n",
            "P:a\nV:1\nC:Q1short\n",
            "P:a\nV:1\nk:99999999999\n",
        ] {
            let owned = super::super::parse_apkindex(bad, 0).unwrap_err();
            let view = ParsedIndex::parse(bad.to_owned()).unwrap_err();
            assert_eq!(view, owned, "{bad:?}");
        }
    }

    #[test]
    fn a_large_text_reads_as_the_parallel_owned_parser_reads_it() {
        let mut text = String::new();
        for i in 0..6000 {
            text.push_str(&format!(
                "P:p{i}\nV:1.{i}-r0\nT:{}\nD:so:libc.musl-x86_64.so.1 d{i}>=1\np:cmd:p{i}=1\n\n",
                "x".repeat(200)
            ));
        }
        assert!(
            text.len() > 1 << 20,
            "large enough for the owned parser's chunks"
        );
        let view = ParsedIndex::parse(text.clone()).unwrap();
        assert_eq!(
            view.packages(1),
            super::super::parse_apkindex(&text, 1).unwrap()
        );
        // The first error of the text, whichever chunk of the owned parser holds it.
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        lines[6 * 4321 + 1] = "V:1.0-bad".to_owned();
        lines[6 * 5000] = "garbage".to_owned();
        let broken = lines.join("\n");
        let owned = super::super::parse_apkindex(&broken, 0).unwrap_err();
        assert_eq!(ParsedIndex::parse(broken).unwrap_err(), owned);
        assert!(matches!(owned, IndexError::BadValue { line, .. } if line == 6 * 4321 + 2));
        // An error in each half: the first half's is the one reported.
        lines[6 * 1000 + 1] = "V:also-bad".to_owned();
        let broken = lines.join("\n");
        let err = ParsedIndex::parse(broken.clone()).unwrap_err();
        assert_eq!(err, super::super::parse_apkindex(&broken, 0).unwrap_err());
        assert!(matches!(err, IndexError::BadValue { line, .. } if line == 6 * 1000 + 2));
    }

    /// Each package's name, version and atoms as read through the tables.
    fn described(view: &ParsedIndex) -> Vec<String> {
        view.entries
            .iter()
            .map(|e| {
                let mut out = format!("{}-{}", view.str(e.name), view.str(e.version));
                for list in [e.depends, e.provides, e.install_if] {
                    out.push('|');
                    for a in view.atoms(list) {
                        out.push_str(&format!(" {}", view.dep(a).to_owned()));
                    }
                }
                out
            })
            .collect()
    }

    #[test]
    fn halves_read_as_one_pass_reads() {
        let mut text = String::new();
        for i in 0..6000 {
            // Names shared across the halves, names new in the second, versions, tags.
            text.push_str(&format!(
                "P:p{i}\nV:1.{i}-r0\nT:{}\nD:so:libc.musl-x86_64.so.1 d{}>=1 !c{i}@edge\n\
                 p:cmd:p{i}=1 v{}\ni:p{} x\n\n",
                "x".repeat(150),
                i % 700,
                i / 3,
                (i + 1) % 6000
            ));
        }
        assert!(text.len() >= HALVES_MIN_BYTES);
        let halves = ParsedIndex::parse(text.clone()).unwrap();
        let mut one = Tables::default();
        read_chunk(&text, &text, &mut one).unwrap();
        let one = ParsedIndex {
            text: text.clone(),
            entries: one.entries,
            atoms: one.atoms,
            ..ParsedIndex::default()
        };
        assert_eq!(described(&halves), described(&one));
        assert!(halves.spans_fit());
        // Each half numbered its names; merged, the numbers are those of one pass.
        let mut numbered = one.clone();
        numbered.number_names();
        let names = |v: &ParsedIndex| -> Vec<String> {
            v.names.iter().map(|&n| v.str(n).to_owned()).collect()
        };
        assert_eq!(names(&halves), names(&numbered));
        let mut seen = std::collections::HashSet::new();
        assert!(halves.names.iter().all(|&n| seen.insert(halves.str(n))));
        for e in &halves.entries {
            assert_eq!(halves.name(e.name_id), halves.str(e.name));
        }
        for a in &halves.atoms {
            assert_eq!(halves.name(a.name_id), halves.str(a.name));
        }
    }

    #[test]
    fn numbering_gives_each_distinct_name_one_number() {
        let mut view = ParsedIndex::parse(TEXT.to_owned()).unwrap();
        let mut plain = view.clone();
        plain.names.clear();
        plain.entries.iter_mut().for_each(|e| e.name_id = 0);
        plain.atoms.iter_mut().for_each(|a| a.name_id = 0);
        assert_eq!(view, plain, "numbering changes how nothing reads");
        let mut other = view.clone();
        other.atoms[0].name = other.entries[2].name;
        assert_ne!(other, plain, "a different name read the same");
        let mut seen = std::collections::HashSet::new();
        assert!(view.names.iter().all(|&n| seen.insert(view.str(n))));
        // a b c so:libc.musl-x86_64.so.1 cmd:a virt d e x y
        assert_eq!(view.name_count(), 10);
        // Numbered in the order met: each package's name, then D, p, i.
        let mut met: Vec<&str> = Vec::new();
        for e in &view.entries {
            let atoms = [e.depends, e.provides, e.install_if].map(|l| view.atoms(l));
            for name in std::iter::once(view.str(e.name)).chain(
                atoms
                    .iter()
                    .flat_map(|l| l.iter().map(|a| view.str(a.name))),
            ) {
                if !met.contains(&name) {
                    met.push(name);
                }
            }
        }
        let numbered: Vec<&str> = view.names.iter().map(|&n| view.str(n)).collect();
        assert_eq!(numbered, met);
        for e in &view.entries {
            assert_eq!(view.name(e.name_id), view.str(e.name));
        }
        for a in &view.atoms {
            assert_eq!(view.name(a.name_id), view.str(a.name));
        }
        assert!(view.spans_fit());
        view.atoms[0].name_id = 10;
        assert!(!view.spans_fit(), "a number beyond the names was accepted");
    }
}
