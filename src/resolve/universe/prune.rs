//! The packages a resolution from an empty root can touch, so that the name table is
//! built of those alone.
//!
//! Building the table over all of main and community (25,000 packages, 150,000
//! atoms) costs more than solving: the solver reads a few thousand names of the 50,000.
//! It follows discovery: from a name to every package providing it; from a package to
//! its own names, provides and dependencies; from each name a package answers to, to
//! the names of the packages whose install_if mentions it. That closure, from the
//! world's names, is what is kept. A name only an install_if mentions has just its
//! state read, never its providers.
//!
//! Two things of the whole set still matter, and are taken from it:
//! - apk breaks ties by the order its name hash table is walked, which follows the
//!   order names were created while reading every index: a name's creation is (first
//!   source naming it, the order it is first met there), [`Pruned::creation_key`].
//! - Duplicates (the same `C:` twice) are merged into the first copy, and create
//!   their names in another order. A set that may hold one is not narrowed.
//!
//! Only a fresh root is narrowed: an update reads its installed packages' reverse
//! dependencies, which this closure does not follow.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::{Item, NameOf, Source};
use crate::index::{identity_hash, NameDirectory};

/// One source's names: their numbers, the order they are met in, and which packages
/// provide (or are triggered by) each.
struct Directory<'a> {
    source: &'a Source<'a>,
    /// For a source that does not number its names itself (owned packages): every
    /// name mentioned, by text, to its number, and per number the name.
    ids: FxHashMap<&'a str, u32>,
    texts: Vec<&'a str>,
    /// How many names the source numbers, in the order they are first met (apk's
    /// creation order, reading this source alone).
    count: usize,
    /// Per number, the packages (positions) answering to the name and those whose
    /// install_if mentions it; the packages' identities. An index keeps its own.
    names: Cow<'a, NameDirectory>,
}

/// How a package mentions a name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mention {
    Own,
    Depends,
    Provides,
    InstallIf,
}

/// An index whose names are numbered: read through its tables directly.
fn numbered<'a>(source: &Source<'a>) -> Option<&'a crate::index::ParsedIndex> {
    match *source {
        Source::Index(index, _) if index.name_count() > 0 => Some(index),
        _ => None,
    }
}

/// The names entry `e` of a numbered index mentions, in the universe's order: P, D, p, i.
fn each_numbered(
    index: &crate::index::ParsedIndex,
    e: &crate::index::RawEntry,
    mut f: impl FnMut(Mention, u32),
) {
    f(Mention::Own, e.name_id);
    for (kind, list) in [
        (Mention::Depends, e.depends),
        (Mention::Provides, e.provides),
        (Mention::InstallIf, e.install_if),
    ] {
        for a in index.atoms(list) {
            f(kind, a.name_id);
        }
    }
}

/// [`each_numbered`] for any package.
fn each_mention<'a>(item: &Item<'a>, mut f: impl FnMut(Mention, NameOf<'a>)) {
    f(Mention::Own, item.local_name);
    item.depends.for_each(|_, name| f(Mention::Depends, name));
    item.provides.for_each(|_, name| f(Mention::Provides, name));
    item.install_if
        .for_each(|_, name| f(Mention::InstallIf, name));
}

impl<'a> Directory<'a> {
    fn new(source: &'a Source<'a>) -> Directory<'a> {
        let mut ids: FxHashMap<&'a str, u32> = FxHashMap::default();
        let mut texts = Vec::new();
        let indexed = numbered(source).and_then(|index| Some((index.directory()?, index)));
        let (names, count) = match indexed {
            // An index numbers its names as it is parsed, in the order met, and keeps
            // its directory.
            Some((names, index)) => (Cow::Borrowed(names), index.name_count()),
            // Owned packages name theirs here, as they are met.
            None => {
                let mut providers = Vec::with_capacity(source.len() * 2);
                let mut triggered = Vec::new();
                let mut identities = Vec::with_capacity(source.len());
                let mut position = 0u32;
                source.for_each(|item: Item<'a>| {
                    identities.extend(identity_hash(item.record.checksum));
                    each_mention(&item, |kind, name| {
                        let next = ids.len() as u32;
                        let id = *ids.entry(name.text()).or_insert(next);
                        if id == next {
                            texts.push(name.text());
                        }
                        match kind {
                            Mention::Own | Mention::Provides => providers.push((id, position)),
                            Mention::InstallIf => triggered.push((id, position)),
                            Mention::Depends => {}
                        }
                    });
                    position += 1;
                });
                let count = ids.len();
                let names = NameDirectory::of_pairs(count, &providers, &triggered, identities);
                (Cow::Owned(names), count)
            }
        };
        Directory {
            source,
            names,
            count,
            ids,
            texts,
        }
    }

    /// Name `id` of this source.
    fn text(&self, id: u32) -> &'a str {
        match numbered(self.source) {
            Some(index) => index.name(id),
            None => self.texts.get(id as usize).copied().unwrap_or_default(),
        }
    }

    /// The names package `p` mentions, by number, in the order the universe creates
    /// them.
    fn each_name(&self, p: u32, mut f: impl FnMut(Mention, u32)) {
        if let Some(index) = numbered(self.source) {
            if let Some(e) = index.entries.get(p as usize) {
                each_numbered(index, e, f);
            }
            return;
        }
        if let Some(item) = self.source.item(p as usize) {
            each_mention(&item, |kind, name| {
                if let Some(&id) = self.ids.get(name.text()) {
                    f(kind, id);
                }
            });
        }
    }

    /// The number of `text` in this source, if a package of it mentions the name.
    fn number(&self, text: &str) -> Option<u32> {
        let id = match numbered(self.source) {
            Some(index) => index.name_number(text)?,
            None => *self.ids.get(text)?,
        };
        ((id as usize) < self.count).then_some(id)
    }
}

/// The packages to build the table of, per source, and the creation order of names.
pub(crate) struct Pruned<'a> {
    directories: Vec<Directory<'a>>,
    kept: Vec<Vec<u32>>,
    /// Per source and number, the creation key of a name the closure walked (it
    /// looked the name up in every source then), [`NOT_WALKED`] otherwise.
    walked: Vec<Vec<u64>>,
}

/// A name the closure did not walk.
const NOT_WALKED: u64 = u64::MAX;

/// The creation key of name `id` of source `s`, `s` being the first to name it.
fn key(s: usize, id: u32) -> u64 {
    (s as u64) << 32 | u64::from(id)
}

impl<'a> Pruned<'a> {
    /// Narrows `sources` (in repository order) to what a resolution of `world` from an
    /// empty root reads; `None` when they may hold duplicates, which only the whole
    /// set resolves exactly.
    pub fn new(sources: &'a [Source<'a>], world: &[&str]) -> Option<Pruned<'a>> {
        use rayon::prelude::*;
        // One source is read on this thread: no pool to start for it.
        let directories: Vec<Directory<'a>> = if sources.len() > 1 {
            sources.par_iter().map(Directory::new).collect()
        } else {
            sources.iter().map(Directory::new).collect()
        };
        if directories.iter().any(|d| d.names.duplicates()) {
            return None;
        }
        // A package in two sources.
        for (later, d) in directories.iter().enumerate().skip(1) {
            if directories[..later]
                .iter()
                .any(|e| d.names.shares_identity(&e.names))
            {
                return None;
            }
        }
        let mut keep: Vec<Vec<bool>> = sources.iter().map(|s| vec![false; s.len()]).collect();
        // Per source and number: queued once from that source; walked once in all, and
        // then its creation key (see `creation_key`) is known.
        let mut queued: Vec<Vec<bool>> = directories.iter().map(|d| vec![false; d.count]).collect();
        let mut walked: Vec<Vec<u64>> = directories
            .iter()
            .map(|d| vec![NOT_WALKED; d.count])
            .collect();
        let mut queue: Vec<(usize, u32)> = Vec::new();
        for name in world {
            if let Some((s, id)) = directories
                .iter()
                .enumerate()
                .find_map(|(s, d)| Some((s, d.number(name)?)))
            {
                queued[s][id as usize] = true;
                queue.push((s, id));
            }
        }
        let mut numbers: Vec<Option<u32>> = Vec::with_capacity(directories.len());
        while let Some((from, id)) = queue.pop() {
            if walked[from][id as usize] != NOT_WALKED {
                continue;
            }
            let text = directories[from].text(id);
            numbers.clear();
            numbers.extend(directories.iter().enumerate().map(|(s, d)| {
                if s == from {
                    Some(id)
                } else {
                    d.number(text)
                }
            }));
            let provided = directories
                .iter()
                .zip(&numbers)
                .any(|(d, id)| id.is_some_and(|id| !d.names.providers.get(id).is_empty()));
            let created = numbers
                .iter()
                .enumerate()
                .find_map(|(s, id)| Some(key(s, (*id)?)))
                .unwrap_or(NOT_WALKED);
            for (s, d) in directories.iter().enumerate() {
                let Some(id) = numbers[s] else { continue };
                walked[s][id as usize] = created;
                queued[s][id as usize] = true;
                let mut push = |n: u32, queue: &mut Vec<(usize, u32)>| {
                    if let Some(q) = queued[s].get_mut(n as usize) {
                        if !std::mem::replace(q, true) {
                            queue.push((s, n));
                        }
                    }
                };
                for &p in d.names.providers.get(id) {
                    if std::mem::replace(&mut keep[s][p as usize], true) {
                        continue;
                    }
                    // What discovery reads next: the package's names and dependencies
                    // (its install_if names only ever have their state read).
                    d.each_name(p, |kind, n| {
                        if kind != Mention::InstallIf {
                            push(n, &mut queue);
                        }
                    });
                }
                // Discovery walks, from each name a package answers to, the packages
                // whose install_if mentions it, and discovers their names.
                if !provided {
                    continue;
                }
                for &p in d.names.triggered.get(id) {
                    d.each_name(p, |kind, n| {
                        if matches!(kind, Mention::Own | Mention::Provides) {
                            push(n, &mut queue);
                        }
                    });
                }
            }
        }
        let kept = keep
            .iter()
            .map(|k| (0..k.len() as u32).filter(|&p| k[p as usize]).collect())
            .collect();
        Some(Pruned {
            directories,
            kept,
            walked,
        })
    }

    /// The sources narrowed, for [`super::Universe::build_installed`].
    pub fn sources<'s>(&'s self) -> Vec<Source<'s>>
    where
        'a: 's,
    {
        self.directories
            .iter()
            .zip(&self.kept)
            .map(|(d, kept)| Source::Only(d.source, kept))
            .collect()
    }

    /// How many packages are kept, of how many.
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        let kept = self.kept.iter().map(Vec::len).sum();
        let all = self.directories.iter().map(|d| d.source.len()).sum();
        (kept, all)
    }

    /// When apk would create the name `text` reading every source in order: first the
    /// source naming it first, then the order met there. `None` for a name no source
    /// mentions (a world entry nothing provides), created after all others. `local`,
    /// the name's number in a source that names it, finds a name the closure walked
    /// without looking it up in every source again (~9,000 look-ups for gnome).
    pub fn creation_key(&self, text: &str, local: Option<(usize, u32)>) -> Option<u64> {
        let walked = local.and_then(|(s, id)| self.walked.get(s)?.get(id as usize));
        if let Some(&created) = walked.filter(|&&k| k != NOT_WALKED) {
            return Some(created);
        }
        self.directories
            .iter()
            .enumerate()
            .find_map(|(s, d)| Some(key(s, d.number(text)?)))
    }
}
