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

fn hash(text: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(text.as_bytes());
    h.finish()
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

    /// The table of `names` (spans of `whole`), numbered as they stand; a text named
    /// twice keeps its first number.
    pub fn of_names(whole: &str, names: &[Span]) -> NameLookup {
        let mut lookup = NameLookup::with_capacity(names.len());
        for id in 0..names.len() as u32 {
            let text = text_of(whole, names, id);
            let h = hash(text);
            if lookup
                .0
                .find(h, |&other| text_of(whole, names, other) == text)
                .is_none()
            {
                lookup
                    .0
                    .insert_unique(h, id, |&other| hash(text_of(whole, names, other)));
            }
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
