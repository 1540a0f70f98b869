//! An index's names by text: the table that numbers them while the index is parsed,
//! kept with the index so that the resolver finds a name's number without building
//! another.
//!
//! It holds only numbers; a number's text is read from the index (its span in
//! [`super::ParsedIndex::names`]), so the table owns nothing that borrows the text and
//! moves with the index.

use std::hash::Hasher;

use hashbrown::HashTable;

use super::view::Span;

/// Names' numbers, keyed by their text.
#[derive(Clone, Default)]
pub(crate) struct NameLookup(HashTable<u32>);

/// The 32-bit hash of a name, which the parsed-index cache keeps with each name so
/// that a warm run builds this table without reading the names' text.
pub(crate) fn name_hash(text: &str) -> u32 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(text.as_bytes());
    h.finish() as u32
}

/// [`name_hash`] spread over 64 bits: the table takes its buckets from the low bits
/// and its tags from the top seven.
fn widen(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn hash(text: &str) -> u64 {
    widen(name_hash(text))
}

/// The text of name `id`, as `names` places it in `whole` (empty if it does not fit,
/// which a checked index never has).
fn text_of<'t>(whole: &'t str, names: &[Span], id: u32) -> &'t str {
    names
        .get(id as usize)
        .and_then(|s| whole.get(s.start as usize..s.end as usize))
        .unwrap_or_default()
}

impl NameLookup {
    /// Room for `names` names.
    pub fn with_capacity(names: usize) -> NameLookup {
        NameLookup(HashTable::with_capacity(names))
    }

    /// The table of names whose [`name_hash`]es are `hashes`, numbered as they stand,
    /// for names known to be distinct (as the cache keeps them): their text is not
    /// read. A hash that is not its name's only makes that name not found.
    pub fn of_hashes(hashes: &[u32]) -> NameLookup {
        let mut lookup = NameLookup::with_capacity(hashes.len());
        for (id, &h) in hashes.iter().enumerate() {
            lookup.0.insert_unique(widen(h), id as u32, |&other| {
                widen(hashes.get(other as usize).copied().unwrap_or_default())
            });
        }
        lookup
    }

    /// The number of the name at `span` of `whole`: the one it has, or the next, its
    /// span then added to `names`.
    pub fn number(&mut self, whole: &str, names: &mut Vec<Span>, span: Span) -> u32 {
        let text = whole
            .get(span.start as usize..span.end as usize)
            .unwrap_or_default();
        let h = hash(text);
        if let Some(&id) = self.0.find(h, |&id| text_of(whole, names, id) == text) {
            return id;
        }
        let id = names.len() as u32;
        self.0
            .insert_unique(h, id, |&other| hash(text_of(whole, names, other)));
        names.push(span);
        id
    }

    /// The number of `text`, if a name of the index has it.
    pub fn get(&self, whole: &str, names: &[Span], text: &str) -> Option<u32> {
        self.0
            .find(hash(text), |&id| text_of(whole, names, id) == text)
            .copied()
    }
}
