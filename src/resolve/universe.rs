//! The name table the solver works on: every name any package answers to or refers to,
//! its providers, and the reverse edges (who depends on it, whose install_if mentions it).
//!
//! apk's solver is order-sensitive: when two names are equally good to decide next, or two
//! providers tie, the one met first wins. "First" follows apk's own data structures, so
//! this table reproduces them: providers in the order the indexes list them (duplicates of
//! one package, same `C:`, merged into the first), and the reverse edges in the order apk's
//! name hash table is walked when it builds them (see [`hash_walk_order`]).

use std::ops::Range;

use rustc_hash::FxHashMap;

use crate::index::{Dependency, Op, Package};

/// Index of a name in [`Universe::names`].
pub(crate) type NameId = u32;
/// Index of a (deduplicated) package in [`Universe::pkgs`].
pub(crate) type PkgId = u32;

/// Version comparison result bits, as apk combines them in a dependency's mask.
pub(crate) const VER_EQUAL: u8 = 1;
pub(crate) const VER_LESS: u8 = 2;
pub(crate) const VER_GREATER: u8 = 4;

/// What a dependency atom accepts of a provider.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Accept<'a> {
    /// No version: any provider, virtual or not.
    Any,
    /// `><Q1...`: exactly the package with that identity.
    Checksum(&'a str),
    /// A versioned constraint: the comparison result of provider version against
    /// `version` must hit `mask`; virtual providers never satisfy it.
    Version {
        mask: u8,
        fuzzy: bool,
        version: &'a str,
    },
}

/// A dependency, install_if condition or world entry with its name interned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Atom<'a> {
    pub name: NameId,
    pub conflict: bool,
    pub accept: Accept<'a>,
    /// The atom as written, for messages.
    pub source: &'a Dependency,
}

/// One way a name can be satisfied: a package, with the version it provides the name at
/// (`None` for a virtual provide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Provider<'a> {
    pub pkg: PkgId,
    pub version: Option<&'a str>,
}

/// One `p:` entry of a package, interned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Provides<'a> {
    pub name: NameId,
    pub version: Option<&'a str>,
}

/// A name and everything the solver needs to know about it statically.
#[derive(Debug, Default)]
pub(crate) struct Name<'a> {
    pub text: &'a str,
    pub providers: Vec<Provider<'a>>,
    /// Names that have a provider depending on this name (conflicts included).
    pub rdepends: Vec<NameId>,
    /// Names that have a provider whose install_if mentions this name.
    pub rinstall_if: Vec<NameId>,
    /// apk's dequeue priority: 0 when only packages of this name provide it, 1 when
    /// some other packages provide it too, 2 when only other packages do.
    pub priority: u8,
}

/// A package after deduplication by identity.
#[derive(Debug)]
pub(crate) struct Pkg<'a> {
    /// The copy from the lowest repository.
    pub src: &'a Package,
    pub name: NameId,
    /// Bit `repo + 1` for every repository listing this package (bit 0 is apk's cache).
    pub repos: u64,
    pub depends: Range<u32>,
    pub provides: Range<u32>,
    pub install_if: Range<u32>,
    /// Not uninstallable and of a compatible architecture.
    pub installable: bool,
}

/// The whole name table for one resolution.
#[derive(Debug, Default)]
pub(crate) struct Universe<'a> {
    pub names: Vec<Name<'a>>,
    pub pkgs: Vec<Pkg<'a>>,
    atoms: Vec<Atom<'a>>,
    provides: Vec<Provides<'a>>,
    index: FxHashMap<&'a str, NameId>,
}

/// Repository positions this table can represent (bit 0 is reserved, as in apk).
pub(crate) const MAX_REPOS: usize = 63;

impl<'a> Universe<'a> {
    /// Builds the table from all repositories' packages, in repository order.
    ///
    /// `arch` (when given) marks packages of other architectures uninstallable;
    /// `noarch` and packages without `A:` fit every architecture.
    pub fn build(packages: &'a [Package], arch: Option<&str>) -> Universe<'a> {
        let mut u = Universe {
            names: Vec::with_capacity(packages.len() * 2),
            pkgs: Vec::with_capacity(packages.len()),
            atoms: Vec::with_capacity(packages.len() * 4),
            provides: Vec::with_capacity(packages.len() * 2),
            index: FxHashMap::default(),
        };
        u.index.reserve(packages.len() * 2);
        let mut by_checksum: FxHashMap<&'a str, PkgId> = FxHashMap::default();
        by_checksum.reserve(packages.len());

        for package in packages {
            // apk creates names while it parses, in field order (P, D, p, i), even for a
            // duplicate it then drops; creation order decides the hash walk order.
            let name = u.intern(&package.name);
            let depends = u.push_atoms(&package.depends);
            let provides_start = u.provides.len() as u32;
            for p in &package.provides {
                let provided = u.intern(&p.name);
                let version = p.version.as_ref().map(|v| v.as_str());
                u.provides.push(Provides {
                    name: provided,
                    version,
                });
            }
            let provides = provides_start..u.provides.len() as u32;
            let install_if = u.push_atoms(&package.install_if);
            let bit = 1u64 << (package.repo.min(MAX_REPOS - 1) + 1);

            if !package.checksum.is_empty() {
                if let Some(&existing) = by_checksum.get(package.checksum.as_str()) {
                    let pkg = &mut u.pkgs[existing as usize];
                    pkg.repos |= bit;
                    if package.repo < pkg.src.repo {
                        pkg.src = package;
                    }
                    // The duplicate's atoms stay unused in the arrays; harmless.
                    continue;
                }
            }
            let id = u.pkgs.len() as PkgId;
            if !package.checksum.is_empty() {
                by_checksum.insert(&package.checksum, id);
            }
            let installable = !package.uninstallable && arch_fits(&package.arch, arch);
            u.pkgs.push(Pkg {
                src: package,
                name,
                repos: bit,
                depends,
                provides: provides.clone(),
                install_if,
                installable,
            });
            u.names[name as usize].providers.push(Provider {
                pkg: id,
                version: Some(package.version.as_str()),
            });
            for i in provides.clone() {
                let p = u.provides[i as usize];
                u.names[p.name as usize].providers.push(Provider {
                    pkg: id,
                    version: p.version,
                });
            }
        }
        u.link_reverse_edges();
        u
    }

    /// The id of `text`, creating the name if needed.
    pub fn intern(&mut self, text: &'a str) -> NameId {
        if let Some(&id) = self.index.get(text) {
            return id;
        }
        let id = self.names.len() as NameId;
        self.names.push(Name {
            text,
            ..Name::default()
        });
        self.index.insert(text, id);
        id
    }

    /// Interns a dependency atom that is not part of a package (a world entry).
    pub fn atom(&mut self, dep: &'a Dependency) -> Atom<'a> {
        let name = self.intern(&dep.name);
        Atom {
            name,
            conflict: dep.conflict,
            accept: accept_of(dep),
            source: dep,
        }
    }

    pub fn name(&self, id: NameId) -> &Name<'a> {
        &self.names[id as usize]
    }

    pub fn pkg(&self, id: PkgId) -> &Pkg<'a> {
        &self.pkgs[id as usize]
    }

    pub fn depends(&self, id: PkgId) -> &[Atom<'a>] {
        let r = &self.pkgs[id as usize].depends;
        &self.atoms[r.start as usize..r.end as usize]
    }

    pub fn install_if(&self, id: PkgId) -> &[Atom<'a>] {
        let r = &self.pkgs[id as usize].install_if;
        &self.atoms[r.start as usize..r.end as usize]
    }

    pub fn provides(&self, id: PkgId) -> &[Provides<'a>] {
        let r = &self.pkgs[id as usize].provides;
        &self.provides[r.start as usize..r.end as usize]
    }

    /// Whether the provider `(pkg, version)` satisfies `atom`, with apk's conflict logic:
    /// a conflict atom is satisfied by what the plain atom would reject, and by nothing.
    pub fn is_provided(&self, atom: &Atom<'_>, pkg: Option<PkgId>, version: Option<&str>) -> bool {
        let Some(pkg) = pkg else {
            return atom.conflict;
        };
        match atom.accept {
            // apk compares identities without looking at the conflict flag.
            Accept::Checksum(sum) => self.pkgs[pkg as usize].src.checksum == sum,
            Accept::Any => !atom.conflict,
            Accept::Version {
                mask,
                fuzzy,
                version: wanted,
            } => match version {
                None => atom.conflict,
                Some(have) => (compare_bits(have, wanted, fuzzy) & mask != 0) != atom.conflict,
            },
        }
    }

    /// `name-version` of a package, for messages.
    pub fn pkg_label(&self, id: PkgId) -> String {
        self.pkgs[id as usize].src.name_version()
    }

    fn push_atoms(&mut self, deps: &'a [Dependency]) -> Range<u32> {
        let start = self.atoms.len() as u32;
        for dep in deps {
            let atom = self.atom(dep);
            self.atoms.push(atom);
        }
        start..self.atoms.len() as u32
    }

    /// Fills `rdepends`, `rinstall_if` and `priority`, walking the names in apk's hash
    /// order so that the reverse edges come out in the order apk's solver visits them.
    fn link_reverse_edges(&mut self) {
        let order = hash_walk_order(&self.names);
        let mut last_dep: Vec<NameId> = vec![NameId::MAX; self.names.len()];
        let mut last_iif: Vec<NameId> = vec![NameId::MAX; self.names.len()];
        for &id in &order {
            let mut num_virtual = 0;
            let nproviders = self.names[id as usize].providers.len();
            for pi in 0..nproviders {
                let pkg = self.names[id as usize].providers[pi].pkg;
                let p = &self.pkgs[pkg as usize];
                num_virtual += usize::from(p.name != id);
                for a in p.depends.clone() {
                    let target = self.atoms[a as usize].name as usize;
                    if last_dep[target] != id {
                        last_dep[target] = id;
                        self.names[target].rdepends.push(id);
                    }
                }
                for a in p.install_if.clone() {
                    let target = self.atoms[a as usize].name as usize;
                    if last_iif[target] != id {
                        last_iif[target] = id;
                        self.names[target].rinstall_if.push(id);
                    }
                }
            }
            self.names[id as usize].priority = if num_virtual == 0 {
                0
            } else if num_virtual != nproviders {
                1
            } else {
                2
            };
        }
    }
}

/// Whether a package built for `pkg_arch` installs on `target` (any when `None`).
fn arch_fits(pkg_arch: &str, target: Option<&str>) -> bool {
    match target {
        None => true,
        Some(t) => pkg_arch.is_empty() || pkg_arch == "noarch" || pkg_arch == t,
    }
}

/// apk's comparison result as a mask bit.
pub(crate) fn compare_bits(a: &str, b: &str, fuzzy: bool) -> u8 {
    let ord = if fuzzy {
        crate::version::compare_fuzzy(a, b)
    } else {
        crate::version::compare(a, b)
    };
    match ord {
        std::cmp::Ordering::Less => VER_LESS,
        std::cmp::Ordering::Equal => VER_EQUAL,
        std::cmp::Ordering::Greater => VER_GREATER,
    }
}

fn accept_of(dep: &Dependency) -> Accept<'_> {
    let (mask, fuzzy) = match dep.op {
        Op::Any => return Accept::Any,
        Op::Checksum => return Accept::Checksum(&dep.version),
        Op::Eq => (VER_EQUAL, false),
        Op::Lt => (VER_LESS, false),
        Op::Le => (VER_LESS | VER_EQUAL, false),
        Op::Gt => (VER_GREATER, false),
        Op::Ge => (VER_GREATER | VER_EQUAL, false),
        Op::Fuzzy => (VER_EQUAL, true),
        Op::FuzzyLe => (VER_LESS | VER_EQUAL, true),
        Op::FuzzyGe => (VER_GREATER | VER_EQUAL, true),
    };
    Accept::Version {
        mask,
        fuzzy,
        version: &dep.version,
    }
}

/// apk 2.14 keeps names in a hash table of 20,000 buckets keyed by murmur3 (seed 5381),
/// each bucket a list with the newest name first, and builds the reverse edges while
/// walking it bucket by bucket. This returns the name ids in that walk order.
pub(crate) fn hash_walk_order(names: &[Name<'_>]) -> Vec<NameId> {
    const BUCKETS: u32 = 20_000;
    let mut keyed: Vec<(u32, NameId)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (murmur3_32(n.text.as_bytes(), 5381) % BUCKETS, i as NameId))
        .collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    keyed.into_iter().map(|(_, id)| id).collect()
}

/// MurmurHash3, x86 32-bit variant (little-endian blocks), as apk hashes names.
pub(crate) fn murmur3_32(key: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &b) in tail.iter().enumerate() {
            k ^= u32::from(b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= key.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_reference_vectors() {
        // Published test vectors of MurmurHash3_x86_32.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"test", 0), 0xba6b_d213);
        assert_eq!(murmur3_32(b"Hello, world!", 1234), 0xfaf6_cdb3);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
            0x2fa8_26cd
        );
    }

    #[test]
    fn hash_walk_puts_newer_names_first_within_a_bucket() {
        let names: Vec<Name<'_>> = ["a", "b", "a"]
            .iter()
            .map(|t| Name {
                text: t,
                ..Name::default()
            })
            .collect();
        let order = hash_walk_order(&names);
        let pos = |id: NameId| order.iter().position(|&x| x == id).unwrap_or(usize::MAX);
        // Same text, same bucket: the later-created one is walked first.
        assert!(pos(2) < pos(0));
    }
}
