//! Parsed indexes: an index's text with its resolver tables, so that a run over an
//! index read before skips inflating and checking it.
//!
//! An entry is named after the SHA-1 of the signed part of the `APKINDEX.tar.gz` and
//! used only once those bytes passed signature verification in this run, under this
//! run's keyring: the parsed form never stands in for an unverified index. Entries are
//! written whole (temporary file, rename) and checked whole when read: a fixed header
//! with the length of every part (which must add up to the file's size), a 64-bit
//! checksum of the parts, then the text (valid UTF-8) and tables whose every offset
//! must fall within the text and every name number within the names. Anything else is
//! a miss, and the index is parsed as if the entry were not there. The checksum is not
//! a seal: whoever can write the cache folder can write a well-formed entry that
//! describes another index text; the checks make any entry safe to read, not true.
//!
//! Layout, little-endian: magic (16 bytes), description length (u32), text length
//! (u64), entries (u32), atoms (u32), names (u32), provider and trigger list items
//! (u32 each), identities (u32), checksum (u64); then the description, the entries,
//! the atoms and the names in fixed-size records, the name directory
//! ([`crate::index::NameDirectory`]: the list starts and items of providers, those of
//! triggers, the identity hashes), and the text last, so that it is read straight into
//! its own buffer. The checksum is XXH3 over the table parts and, apart, over the text
//! (the two are read and checked at once), each part preceded by its length,
//! combined: it is there to catch damage (a torn or flipped entry), not forgery (trust
//! comes from the signature checked before every use), and it hashes ~12 MB in well
//! under a millisecond.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Bucket, Cache, CacheError};
use crate::index::{
    name_hash, AsciiBlocks, NameDirectory, NameLookup, Op, ParsedIndex, PerId, RawAtom, RawEntry,
    Span,
};

/// Bucket of parsed indexes.
pub const PARSED_BUCKET: &str = "parsed";

/// v3 numbered the names of an index in the order they are met, which the resolver
/// takes as their creation order; v4 sums with XXH3 rather than FxHash (its sum of a
/// part read in pieces is that of the part read whole) and keeps the name directory.
/// An older entry is a miss, replaced when next parsed.
const MAGIC: &[u8; 16] = b"srmk parsed v4\n\0";
const HEADER: usize = 16 + 4 + 8 + 4 + 4 + 4 + 3 * 4 + 8;
const ENTRY: usize = 4 * 8 + 4 + 8 + 4 + 1 + 3 * 8;
const ATOM: usize = 4 + 2 * 8 + 2;
const NAME: usize = 8 + 4;
/// Largest entry read (the largest index text, with its tables, fits well within).
const MAX_ENTRY: u64 = 2 << 30;
/// Texts smaller than this parse faster than their entry is read: not kept.
pub const PARSED_MIN_TEXT: usize = 256 << 10;

/// Operators by their code in an entry.
const OPS: [Op; 10] = [
    Op::Any,
    Op::Eq,
    Op::Lt,
    Op::Le,
    Op::Gt,
    Op::Ge,
    Op::Fuzzy,
    Op::FuzzyLe,
    Op::FuzzyGe,
    Op::Checksum,
];

/// Where parsed indexes are read from and written to: the cache folder, opened only
/// when an entry is looked up or kept (a build of small local indexes never creates it).
#[derive(Debug)]
pub struct ParsedStore {
    root: PathBuf,
    writable: bool,
}

impl ParsedStore {
    /// The store of the cache at `root`; `writable` is false for `--offline`, which
    /// reads entries but never writes.
    pub fn new(root: &Path, writable: bool) -> ParsedStore {
        ParsedStore {
            root: root.to_path_buf(),
            writable,
        }
    }

    /// The entry name of the index whose signed part (what follows the signature
    /// member of its `APKINDEX.tar.gz`, all its text comes from) has the SHA-1
    /// `signed_sha1`, the digest apk's signature covers. A collision would already pass
    /// that signature, so the name is as strong as the trust in the entry's index; the
    /// digest is computed once for both (a SHA-256 of the whole archive was ~2 ms of a
    /// warm run's critical path).
    pub fn key(signed_sha1: &[u8; 20]) -> String {
        hex::encode(signed_sha1)
    }

    fn existing_bucket(&self) -> Option<Bucket> {
        Cache::open_existing(&self.root)
            .ok()??
            .existing_bucket(PARSED_BUCKET)
            .ok()?
    }

    /// The description and parsed form kept under `key`; `None` when absent or not
    /// whole (which the caller treats alike: it parses). A hit is marked used now, for
    /// `cache prune --max-age`.
    pub fn read(&self, key: &str) -> Option<(String, ParsedIndex)> {
        self.read_open(self.open(key)?)
    }

    /// The entry kept under `key`, opened but not read: a miss is known at the cost of
    /// an open. [`ParsedStore::read_open`] reads it.
    pub fn open(&self, key: &str) -> Option<std::fs::File> {
        self.existing_bucket()?.open(key).ok()?
    }

    /// [`ParsedStore::read`] of an entry [`ParsedStore::open`] opened.
    pub fn read_open(&self, file: std::fs::File) -> Option<(String, ParsedIndex)> {
        let hit = read_entry(&file)?;
        if self.writable {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
        Some(hit)
    }

    /// Keeps `index` under `key`, numbering its names first (texts under
    /// [`PARSED_MIN_TEXT`] are not worth it).
    pub fn write(
        &self,
        key: &str,
        description: &str,
        index: &mut ParsedIndex,
    ) -> Result<(), CacheError> {
        if !self.writable || index.text.len() < PARSED_MIN_TEXT {
            return Ok(());
        }
        index.number_names();
        let none;
        let directory = match index.directory() {
            Some(directory) => directory,
            // An index without names (nor packages).
            None => {
                none = NameDirectory::of_pairs(0, &[], &[], Vec::new());
                &none
            }
        };
        let bucket = Cache::open(&self.root)?.bucket_dir(PARSED_BUCKET)?;
        bucket.write_atomic(key, &encode(description, index, directory))
    }
}

/// The description of a parsed entry, read from its header alone (for listings).
pub fn description_of(bucket: &Bucket, name: &str) -> Option<String> {
    let mut file = bucket.open(name).ok()??;
    let mut head = [0u8; HEADER];
    file.read_exact(&mut head).ok()?;
    let h = Header::parse(&head)?;
    let mut description = vec![0u8; h.description.min(4096)];
    file.read_exact(&mut description).ok()?;
    String::from_utf8(description).ok()
}

struct Header {
    description: usize,
    text: usize,
    entries: usize,
    atoms: usize,
    names: usize,
    /// Items of the provider lists, of the trigger lists, identities.
    providers: usize,
    triggered: usize,
    identities: usize,
    sum: u64,
}

impl Header {
    fn parse(head: &[u8; HEADER]) -> Option<Header> {
        if &head[..16] != MAGIC {
            return None;
        }
        let text = u64_at(head, 20);
        Some(Header {
            description: u32_at(head, 16) as usize,
            text: usize::try_from(text).ok()?,
            entries: u32_at(head, 28) as usize,
            atoms: u32_at(head, 32) as usize,
            names: u32_at(head, 36) as usize,
            providers: u32_at(head, 40) as usize,
            triggered: u32_at(head, 44) as usize,
            identities: u32_at(head, 48) as usize,
            sum: u64_at(head, 52),
        })
    }

    /// The size of the name directory: two lists with a start per name (and one
    /// more), their items, the identities; `None` on overflow.
    fn directory(&self) -> Option<usize> {
        let starts = self.names.checked_add(1)?.checked_mul(2 * 4)?;
        starts
            .checked_add(self.providers.checked_add(self.triggered)?.checked_mul(4)?)?
            .checked_add(self.identities.checked_mul(8)?)
    }

    /// The size of the description and tables, `None` on overflow.
    fn tables(&self) -> Option<usize> {
        self.description
            .checked_add(self.entries.checked_mul(ENTRY)?)?
            .checked_add(self.atoms.checked_mul(ATOM)?)?
            .checked_add(self.names.checked_mul(NAME)?)?
            .checked_add(self.directory()?)
    }

    /// The size of the whole entry, `None` on overflow.
    fn total(&self) -> Option<u64> {
        (HEADER as u64)
            .checked_add(self.tables()? as u64)?
            .checked_add(self.text as u64)
    }
}

/// An index's entry; its names must be numbered (the directory follows them).
fn encode(description: &str, index: &ParsedIndex, directory: &NameDirectory) -> Vec<u8> {
    let h = Header {
        description: description.len(),
        text: index.text.len(),
        entries: index.entries.len(),
        atoms: index.atoms.len(),
        names: index.names.len(),
        providers: directory.providers.items.len(),
        triggered: directory.triggered.items.len(),
        identities: directory.identities.len(),
        sum: 0,
    };
    let mut out = Vec::with_capacity(HEADER + h.tables().unwrap_or(0) + h.text);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(h.description as u32).to_le_bytes());
    out.extend_from_slice(&(h.text as u64).to_le_bytes());
    for count in [
        h.entries,
        h.atoms,
        h.names,
        h.providers,
        h.triggered,
        h.identities,
    ] {
        out.extend_from_slice(&(count as u32).to_le_bytes());
    }
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(description.as_bytes());
    let entries_at = out.len();
    let span = |out: &mut Vec<u8>, s: Span| {
        out.extend_from_slice(&s.start.to_le_bytes());
        out.extend_from_slice(&s.end.to_le_bytes());
    };
    for e in &index.entries {
        for s in [e.stanza, e.version, e.arch, e.checksum] {
            span(&mut out, s);
        }
        out.extend_from_slice(&e.name_id.to_le_bytes());
        out.extend_from_slice(&e.installed_size.to_le_bytes());
        out.extend_from_slice(&e.provider_priority.unwrap_or(0).to_le_bytes());
        out.push(u8::from(e.provider_priority.is_some()) | u8::from(e.uninstallable) << 1);
        for s in [e.depends, e.provides, e.install_if] {
            span(&mut out, s);
        }
    }
    let atoms_at = out.len();
    for a in &index.atoms {
        out.extend_from_slice(&a.name_id.to_le_bytes());
        span(&mut out, a.version);
        span(&mut out, a.tag);
        out.push(OPS.iter().position(|&op| op == a.op).unwrap_or(0) as u8);
        out.push(u8::from(a.conflict));
    }
    let mut parts = vec![entries_at, atoms_at, out.len()];
    for &n in &index.names {
        span(&mut out, n);
        out.extend_from_slice(&name_hash(index.str(n)).to_le_bytes());
    }
    for list in [&directory.providers, &directory.triggered] {
        for part in [&list.start, &list.items] {
            parts.push(out.len());
            part.iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
    }
    parts.push(out.len());
    for id in &directory.identities {
        out.extend_from_slice(&id.to_le_bytes());
    }
    parts.push(out.len());
    out.extend_from_slice(index.text.as_bytes());
    seal(&mut out, &parts);
    out
}

/// Writes the checksum of an encoded entry into its header; `parts` are where each
/// table part after the description starts, and last where the text starts.
fn seal(entry: &mut [u8], parts: &[usize]) {
    let text_at = parts.last().copied().unwrap_or(HEADER);
    let mut tables = Sum::default();
    let mut from = HEADER;
    for &to in parts {
        let part = &entry[from..to];
        tables.start(part.len());
        tables.add(part);
        from = to;
    }
    let mut text = Sum::default();
    text.start(entry.len() - text_at);
    text.add(&entry[text_at..]);
    let sum = entry_sum(tables.finish(), text.finish());
    entry[HEADER - 8..HEADER].copy_from_slice(&sum.to_le_bytes());
}

/// The checksum of an entry's parts, each hashed with its length first; a part may be
/// added in pieces (the same sum as whole), so that tables are checked as they are
/// read and decoded a piece at a time.
#[derive(Default)]
struct Sum(xxhash_rust::xxh3::Xxh3);

impl Sum {
    fn start(&mut self, len: usize) {
        self.0.update(&(len as u64).to_le_bytes());
    }

    fn add(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    fn finish(&self) -> u64 {
        self.0.digest()
    }
}

/// Reads exactly `len` bytes at `offset` of `file`, into memory that is neither zeroed
/// first nor faulted in a small page at a time ([`crate::hugepages`]).
fn read_at(file: &std::fs::File, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf: Vec<u8> = crate::hugepages::vec_with_capacity(len)?;
    while buf.len() < len {
        let at = offset.checked_add(buf.len() as u64)?;
        let want = len - buf.len();
        let (filled, _) =
            rustix::io::pread(file, &mut buf.spare_capacity_mut()[..want], at).ok()?;
        if filled.is_empty() {
            return None;
        }
        let read = filled.len();
        // SAFETY: pread initialised the first `read` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + read) };
    }
    Some(buf)
}

/// The checksum of an entry: that of its tables and that of its text, taken apart so
/// that each is read and checked on its own core.
fn entry_sum(tables: u64, text: u64) -> u64 {
    tables ^ text.rotate_left(29)
}

/// Reads and checks a whole entry from `file`.
fn read_entry(file: &std::fs::File) -> Option<(String, ParsedIndex)> {
    use std::os::unix::fs::FileExt;
    let size = file.metadata().ok()?.len();
    if size > MAX_ENTRY {
        return None;
    }
    let mut head = [0u8; HEADER];
    file.read_exact_at(&mut head, 0).ok()?;
    let h = Header::parse(&head)?;
    // Every part's length must add up to the file's: no allocation exceeds the file.
    if h.total()? != size {
        return None;
    }
    let tables_len = h.tables()?;
    let entries_at = (HEADER + h.description) as u64;
    let atoms_at = entries_at + (h.entries * ENTRY) as u64;
    let names_at = atoms_at + (h.atoms * ATOM) as u64;
    // Reading, checking and decoding take ~10 ms for community, on the critical path
    // of a warm run: the tables and the text are read and checked on both cores.
    let (tables, text) = rayon::join(
        || {
            // An entry's or atom's name is the numbered name it refers to: the two
            // cannot disagree, and a number beyond the names is a miss. The names
            // are read first for that, and summed last, in file order.
            let names_raw = read_at(file, names_at, h.names * NAME)?;
            let names: Vec<Span> = names_raw
                .chunks_exact(NAME)
                .map(|b| span_at(b, 0))
                .collect();
            // Made from the kept hashes while the other core reads the text.
            let hashes: Vec<u32> = names_raw.chunks_exact(NAME).map(|b| u32_at(b, 8)).collect();
            let lookup = NameLookup::of_hashes(&hashes);
            let name = |id: u32| names.get(id as usize).copied();
            let mut sum = Sum::default();
            let description = read_at(file, HEADER as u64, h.description)?;
            sum.start(description.len());
            sum.add(&description);
            let mut records = Records::new(file, &mut sum);
            let entries =
                records.decode(entries_at, h.entries, ENTRY, |b| decode_entry(b, name))?;
            let atoms = records.decode(atoms_at, h.atoms, ATOM, |b| decode_atom(b, name))?;
            records.sum.start(names_raw.len());
            records.sum.add(&names_raw);
            let mut at = names_at + names_raw.len() as u64;
            let mut list = |count: usize| {
                let starts = records.decode(at, h.names + 1, 4, |b| Some(u32_at(b, 0)))?;
                at += starts.len() as u64 * 4;
                let items = records.decode(at, count, 4, |b| Some(u32_at(b, 0)))?;
                at += items.len() as u64 * 4;
                Some(PerId {
                    start: starts,
                    items,
                })
            };
            let providers = list(h.providers)?;
            let triggered = list(h.triggered)?;
            let identities = records.decode(at, h.identities, 8, |b| Some(u64_at(b, 0)))?;
            let directory = NameDirectory {
                providers,
                triggered,
                identities,
            };
            // Lists that would name a package or a name the index lacks are a miss.
            if !directory.fits(h.names, h.entries) {
                return None;
            }
            let description = String::from_utf8(description).ok()?;
            Some((
                description,
                entries,
                atoms,
                (names, lookup),
                directory,
                sum.finish(),
            ))
        },
        || {
            let text = read_at(file, HEADER as u64 + tables_len as u64, h.text)?;
            let mut sum = Sum::default();
            sum.start(text.len());
            sum.add(&text);
            let text = String::from_utf8(text).ok()?;
            let ascii = AsciiBlocks::of(&text);
            Some((text, ascii, sum.finish()))
        },
    );
    let (description, entries, atoms, (names, lookup), directory, tables_sum) = tables?;
    let (text, ascii, text_sum) = text?;
    if entry_sum(tables_sum, text_sum) != h.sum {
        return None;
    }
    let index = ParsedIndex {
        text,
        entries,
        atoms,
        names,
        lookup,
        directory: directory.into(),
    };
    // Numbered when written: an entry without names cannot be used as one.
    if index.names.is_empty() && !index.entries.is_empty() {
        return None;
    }
    if !index.spans_fit_with(&ascii) {
        return None;
    }
    Some((description, index))
}

/// Fixed-size records read from an entry a piece at a time into one small buffer, each
/// piece summed and decoded before the next is read: the tables are never held twice,
/// raw and decoded (~4 MB of community's that only cost page faults).
struct Records<'f, 's> {
    file: &'f std::fs::File,
    sum: &'s mut Sum,
    piece: Vec<u8>,
}

/// Bytes read and decoded at a time.
const PIECE: usize = 64 << 10;

impl<'f, 's> Records<'f, 's> {
    fn new(file: &'f std::fs::File, sum: &'s mut Sum) -> Records<'f, 's> {
        Records {
            file,
            sum,
            piece: vec![0; PIECE],
        }
    }

    /// The `count` records of `size` bytes at `offset`, decoded; `None` if one does not
    /// decode or the file ends early.
    fn decode<T>(
        &mut self,
        offset: u64,
        count: usize,
        size: usize,
        decode: impl Fn(&[u8]) -> Option<T>,
    ) -> Option<Vec<T>> {
        use std::os::unix::fs::FileExt;
        let mut out = crate::hugepages::vec_with_capacity(count)?;
        self.sum.start(count.checked_mul(size)?);
        let per_piece = PIECE / size;
        let mut at = offset;
        while out.len() < count {
            let bytes = &mut self.piece[..(count - out.len()).min(per_piece) * size];
            self.file.read_exact_at(bytes, at).ok()?;
            at += bytes.len() as u64;
            self.sum.add(bytes);
            for record in bytes.chunks_exact(size) {
                out.push(decode(record)?);
            }
        }
        Some(out)
    }
}

/// The u32 at `at` (0 past the end, which the fixed record sizes rule out).
fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn span_at(b: &[u8], at: usize) -> Span {
    Span {
        start: u32_at(b, at),
        end: u32_at(b, at + 4),
    }
}

/// One entry record (exactly [`ENTRY`] bytes, as `chunks_exact` hands them); `None`
/// for a name number `name` does not know.
fn decode_entry(b: &[u8], name: impl Fn(u32) -> Option<Span>) -> Option<RawEntry> {
    let flags = b.get(48).copied().unwrap_or(0);
    let name_id = u32_at(b, 32);
    Some(RawEntry {
        stanza: span_at(b, 0),
        version: span_at(b, 8),
        arch: span_at(b, 16),
        checksum: span_at(b, 24),
        name: name(name_id)?,
        name_id,
        installed_size: u64_at(b, 36),
        provider_priority: (flags & 1 != 0).then(|| u32_at(b, 44)),
        uninstallable: flags & 2 != 0,
        depends: span_at(b, 49),
        provides: span_at(b, 57),
        install_if: span_at(b, 65),
    })
}

/// One atom record (exactly [`ATOM`] bytes); `None` for an unknown operator or name
/// number.
fn decode_atom(b: &[u8], name: impl Fn(u32) -> Option<Span>) -> Option<RawAtom> {
    let name_id = u32_at(b, 0);
    Some(RawAtom {
        name: name(name_id)?,
        name_id,
        version: span_at(b, 4),
        tag: span_at(b, 12),
        op: *OPS.get(*b.get(20)? as usize)?,
        conflict: *b.get(21)? != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ParsedIndex {
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(&format!(
                "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAE=\nP:p{i}\nV:1.{i}-r0\nA:x86_64\nI:{i}\nk:{i}\n\
                 D:so:libc.musl-x86_64.so.1 !q{i} d{i}>=1 e@tag<~2\np:cmd:p{i}=1 v{i}\ni:a b>~3\nT:{}\n\n",
                "x".repeat(60)
            ));
        }
        ParsedIndex::parse(text).unwrap()
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = ParsedStore::new(&dir.path().join("c"), true);
        let mut index = sample();
        assert!(index.text.len() >= PARSED_MIN_TEXT);
        store.write("k", "v3.19 desc", &mut index).unwrap();
        let (description, back) = store.read("k").expect("hit");
        assert_eq!(description, "v3.19 desc");
        assert_eq!(back, index);
        // The directory and the name table come back from the entry, not remade.
        assert!(back.directory.get().is_some());
        assert_eq!(back.directory(), index.directory());
        for name in [
            "p0",
            "p2999",
            "cmd:p17",
            "so:libc.musl-x86_64.so.1",
            "e",
            "b",
        ] {
            let number = index.name_number(name);
            assert!(number.is_some(), "{name}");
            assert_eq!(back.name_number(name), number, "{name}");
        }
        assert_eq!(back.name_number("p3000"), None);
        let bucket = Cache::open_existing(&dir.path().join("c"))
            .unwrap()
            .unwrap()
            .existing_bucket(PARSED_BUCKET)
            .unwrap()
            .unwrap();
        assert_eq!(description_of(&bucket, "k").as_deref(), Some("v3.19 desc"));
    }

    #[test]
    fn damaged_entries_are_misses_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        let store = ParsedStore::new(&root, true);
        let mut index = sample();
        store.write("k", "d", &mut index).unwrap();
        let path = root.join("v1").join(PARSED_BUCKET).join("k");
        let whole = std::fs::read(&path).unwrap();
        let put = |bytes: &[u8]| {
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, bytes).unwrap();
        };
        // One flipped bit in the text: only the checksum can tell.
        let mut flipped = whole.clone();
        let last = whole.len() - 100;
        flipped[last] ^= 0x01;
        put(&flipped);
        assert!(store.read("k").is_none(), "a flipped bit was accepted");
        // Truncated anywhere, or grown.
        for cut in [0, 10, HEADER, HEADER + 50, whole.len() / 2, whole.len() - 1] {
            put(&whole[..cut]);
            assert!(store.read("k").is_none(), "cut at {cut}");
        }
        let mut longer = whole.clone();
        longer.push(0);
        put(&longer);
        assert!(store.read("k").is_none());
        // A hostile header: huge counts.
        let mut huge = whole.clone();
        huge[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        put(&huge);
        assert!(store.read("k").is_none());
        // Hostile tables with a valid checksum: each must be refused by the bounds
        // checks, never read out of bounds or taken as another name.
        let entries_at = HEADER + 1;
        let atoms_at = entries_at + index.entries.len() * ENTRY;
        let names_at = atoms_at + index.atoms.len() * ATOM;
        let directory = index.directory().expect("numbered").clone();
        let starts_at = names_at + index.names.len() * NAME;
        let provider_items_at = starts_at + (index.names.len() + 1) * 4;
        let trigger_starts_at = provider_items_at + directory.providers.items.len() * 4;
        let trigger_items_at = trigger_starts_at + (index.names.len() + 1) * 4;
        let identities_at = trigger_items_at + directory.triggered.items.len() * 4;
        let text_at = identities_at + directory.identities.len() * 8;
        let parts = [
            entries_at,
            atoms_at,
            names_at,
            starts_at,
            provider_items_at,
            trigger_starts_at,
            trigger_items_at,
            identities_at,
            text_at,
        ];
        let resum = |bytes: &mut Vec<u8>| seal(bytes, &parts);
        let names = index.names.len() as u32;
        let packages = index.entries.len() as u32;
        let hostile: [(&str, usize, u32); 9] = [
            (
                "an entry's version beyond the text",
                entries_at + 12,
                u32::MAX,
            ),
            (
                "an entry's name number beyond the names",
                entries_at + 32,
                names,
            ),
            ("an atom's name number beyond the names", atoms_at, names),
            ("an atom's version beyond the text", atoms_at + 8, u32::MAX),
            ("a name beyond the text", names_at + 4, u32::MAX),
            ("an atom list beyond the atoms", entries_at + 53, u32::MAX),
            (
                "a provider beyond the packages",
                provider_items_at,
                packages,
            ),
            ("a provider list running backwards", starts_at + 4, u32::MAX),
            ("a trigger beyond the packages", trigger_items_at, packages),
        ];
        for (what, at, value) in hostile {
            let mut bad = whole.clone();
            bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
            resum(&mut bad);
            put(&bad);
            assert!(store.read("k").is_none(), "{what} was accepted");
        }
        let mut bad_op = whole.clone();
        bad_op[atoms_at + 20] = OPS.len() as u8;
        resum(&mut bad_op);
        put(&bad_op);
        assert!(
            store.read("k").is_none(),
            "an unknown operator was accepted"
        );
        // The same rewriting with a value in bounds is read: the checks above, not
        // the rewriting, made those misses.
        let mut fine = whole.clone();
        fine[atoms_at..atoms_at + 4].copy_from_slice(&(names - 1).to_le_bytes());
        resum(&mut fine);
        put(&fine);
        assert!(
            store.read("k").is_some(),
            "an in-bounds rewrite was refused"
        );
        put(&whole);
        assert_eq!(store.read("k").map(|(_, i)| i), Some(index));
    }

    #[test]
    fn entries_are_listed_kept_by_prune_and_aged_out() {
        use super::super::manage::{self, EntryKind};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        let store = ParsedStore::new(&root, true);
        store.write("k", "v3.19.1-643", &mut sample()).unwrap();
        let listed = manage::list(&root).unwrap();
        let parsed: Vec<_> = listed
            .iter()
            .filter(|e| e.kind == EntryKind::Parsed)
            .collect();
        assert_eq!(parsed.len(), 1, "{listed:?}");
        assert_eq!(parsed[0].what.as_deref(), Some("parsed index v3.19.1-643"));
        let now = std::time::SystemTime::now();
        // Without an age limit an entry a build can use stays.
        assert_eq!(manage::prune(&root, None, now).unwrap().entries, 0);
        assert!(store.read("k").is_some());
        // Not used within a day, seen two days from now: it goes.
        let later = now + std::time::Duration::from_secs(2 * 86400);
        let day = Some(std::time::Duration::from_secs(86400));
        assert_eq!(manage::prune(&root, day, later).unwrap().entries, 1);
        assert!(store.read("k").is_none());
        store.write("k", "d", &mut sample()).unwrap();
        assert_eq!(manage::clean(&root).unwrap().entries, 1);
        assert!(store.read("k").is_none());
    }

    #[test]
    fn small_texts_and_read_only_stores_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("c");
        let mut small = ParsedIndex::parse("P:a\nV:1\n".to_owned()).unwrap();
        ParsedStore::new(&root, true)
            .write("k", "", &mut small)
            .unwrap();
        ParsedStore::new(&root, false)
            .write("k", "", &mut sample())
            .unwrap();
        assert!(!root.exists());
    }
}
