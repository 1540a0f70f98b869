//! Which packages of an index answer to each of its numbered names (by their own name
//! or a provide), which packages' install_if conditions mention each, and what
//! identifies each package: what narrowing a resolution to the packages its world
//! reaches (`resolve::universe::prune`) walks.
//!
//! It depends on the index alone, so it is made once per index and kept with the
//! parsed form in the cache: a warm run reads it (~0.5 MB for community) rather than
//! walking every package and hashing every checksum again (~4 ms).

use super::view::ParsedIndex;

/// Lists of package positions by name number: `items[start[i]..start[i + 1]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PerId {
    pub start: Vec<u32>,
    pub items: Vec<u32>,
}

impl PerId {
    /// Groups `(number, package)` pairs by number, keeping their order within one.
    pub fn build(ids: usize, pairs: &[(u32, u32)]) -> PerId {
        let mut start = vec![0u32; ids + 1];
        for &(id, _) in pairs {
            start[id as usize + 1] += 1;
        }
        for i in 0..ids {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut items = vec![0; pairs.len()];
        for &(id, pkg) in pairs {
            items[fill[id as usize] as usize] = pkg;
            fill[id as usize] += 1;
        }
        PerId { start, items }
    }

    /// The packages listed for number `id` (none for a number beyond the table).
    pub fn get(&self, id: u32) -> &[u32] {
        let i = id as usize;
        match (self.start.get(i), self.start.get(i + 1)) {
            (Some(&a), Some(&b)) => self.items.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Whether the table reads as [`PerId::build`] makes them, for `ids` numbers and
    /// packages below `packages`: what one read back from bytes must hold.
    fn fits(&self, ids: usize, packages: usize) -> bool {
        self.start.len() == ids + 1
            && self.start.first() == Some(&0)
            && self.start.windows(2).all(|w| w[0] <= w[1])
            && self.start.last().copied() == Some(self.items.len() as u32)
            && self.items.iter().all(|&p| (p as usize) < packages)
    }
}

/// The directory of one index's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NameDirectory {
    /// Per name number, the packages answering to it: by their own name, then by a
    /// provide, in index order.
    pub providers: PerId,
    /// Per name number, the packages whose install_if mentions it.
    pub triggered: PerId,
    /// The hashes of the packages' identities ([`identity_hash`]), sorted.
    pub identities: Vec<u64>,
}

/// The part of a checksum that identifies a package for the resolver, which merges
/// two packages with one: two checksums that decode alike agree on it (the lenient
/// last base64 digit is left out), hashed. `None` for a package without one.
pub(crate) fn identity_hash(checksum: &str) -> Option<u64> {
    let b = checksum.as_bytes();
    (!b.is_empty()).then(|| xxhash_rust::xxh3::xxh3_64(&b[..b.len().min(28)]))
}

impl NameDirectory {
    /// The directory of `names` numbers from `(number, package)` pairs and the
    /// packages' identity hashes.
    pub fn of_pairs(
        names: usize,
        providers: &[(u32, u32)],
        triggered: &[(u32, u32)],
        mut identities: Vec<u64>,
    ) -> NameDirectory {
        identities.sort_unstable();
        NameDirectory {
            providers: PerId::build(names, providers),
            triggered: PerId::build(names, triggered),
            identities,
        }
    }

    /// The directory of a numbered index (an empty one for an index not numbered).
    pub fn of_index(index: &ParsedIndex) -> NameDirectory {
        let mut providers = Vec::with_capacity(index.entries.len() * 2);
        let mut triggered = Vec::new();
        let mut identities = Vec::with_capacity(index.entries.len());
        for (p, e) in index.entries.iter().enumerate() {
            let p = p as u32;
            providers.push((e.name_id, p));
            identities.extend(identity_hash(index.str(e.checksum)));
            for a in index.atoms(e.provides) {
                providers.push((a.name_id, p));
            }
            for a in index.atoms(e.install_if) {
                triggered.push((a.name_id, p));
            }
        }
        NameDirectory::of_pairs(index.name_count(), &providers, &triggered, identities)
    }

    /// Whether two packages of the index may be one (two of its identities hash
    /// alike: a hash collision only makes the resolver take the slower, exact path).
    pub fn duplicates(&self) -> bool {
        self.identities.windows(2).any(|w| w[0] == w[1])
    }

    /// Whether a package of this index and one of `other` may be one.
    pub fn shares_identity(&self, other: &NameDirectory) -> bool {
        let (mut a, mut b) = (self.identities.iter(), other.identities.iter());
        let (mut x, mut y) = (a.next(), b.next());
        while let (Some(i), Some(j)) = (x, y) {
            match i.cmp(j) {
                std::cmp::Ordering::Less => x = a.next(),
                std::cmp::Ordering::Greater => y = b.next(),
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// Whether a directory read back from bytes fits an index of `names` numbered
    /// names and `packages` packages (its lists then never point outside it).
    pub fn fits(&self, names: usize, packages: usize) -> bool {
        self.providers.fits(names, packages)
            && self.triggered.fits(names, packages)
            && self.identities.windows(2).all(|w| w[0] <= w[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_group_by_number_in_order_and_bad_tables_do_not_fit() {
        let t = PerId::build(3, &[(2, 7), (0, 1), (2, 3)]);
        assert_eq!(t.get(0), [1]);
        assert_eq!(t.get(1), [] as [u32; 0]);
        assert_eq!(t.get(2), [7, 3]);
        assert_eq!(t.get(3), [] as [u32; 0]);
        assert!(t.fits(3, 8));
        assert!(!t.fits(3, 7), "a package beyond the index");
        assert!(!t.fits(4, 8), "another count of names");
        let mut bad = t.clone();
        bad.start[1] = 3;
        assert!(!bad.fits(3, 8), "decreasing starts");
    }

    #[test]
    fn identities_ignore_the_lenient_digit_and_are_compared_sorted() {
        // Q1 + 27 digits identify; the 28th holds unused bits apk ignores.
        let a = identity_hash("Q1AAAAAAAAAAAAAAAAAAAAAAAAAAE=");
        assert_eq!(a, identity_hash("Q1AAAAAAAAAAAAAAAAAAAAAAAAAAF="));
        assert_ne!(a, identity_hash("Q1AAAAAAAAAAAAAAAAAAAAAAAAABE="));
        assert_eq!(identity_hash(""), None);
        let one = NameDirectory::of_pairs(0, &[], &[], vec![5, 1, 9]);
        assert_eq!(one.identities, [1, 5, 9]);
        assert!(!one.duplicates());
        assert!(NameDirectory::of_pairs(0, &[], &[], vec![4, 1, 4]).duplicates());
        let other = NameDirectory::of_pairs(0, &[], &[], vec![2, 9]);
        assert!(one.shares_identity(&other) && other.shares_identity(&one));
        let apart = NameDirectory::of_pairs(0, &[], &[], vec![0, 2, 6, 10]);
        assert!(!one.shares_identity(&apart));
    }
}
