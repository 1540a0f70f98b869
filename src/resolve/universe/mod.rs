//! The name table the solver works on: every name any package answers to or refers to,
//! its providers, and the reverse edges (who depends on it, whose install_if mentions it).
//!
//! apk's solver is order-sensitive: when two names are equally good to decide next, or two
//! providers tie, the one met first wins. "First" follows apk's own data structures, so
//! this table reproduces them: providers in the order the indexes list them (duplicates of
//! one package, same `C:`, merged into the first), and the reverse edges in the order apk's
//! name hash table is walked when it builds them (see [`crate::apk_hash::bucket`]).
//!
//! For a fresh root the table may hold only the packages the request reaches
//! ([`prune`]); its ids then follow the order it met names in, and
//! [`Universe::set_creation_order`] gives back the order apk would have created them in.

use crate::apk_hash::bucket;
use std::cell::{Cell, OnceCell};
use std::ops::Range;

use rustc_hash::FxHashMap;

use crate::index::{DepRef, Dependency, Op, Package, ParsedIndex, RawEntry};

pub(crate) mod prune;

/// Index of a name in the [`Universe`] (the order the table created it in).
pub(crate) type NameId = u32;
/// Index of a (deduplicated) package in [`Universe::pkgs`], in index order.
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

/// A dependency, install_if condition or world entry with its name interned; kept
/// small (there are ~100,000 of them): the name and tag texts are in the universe
/// ([`Universe::dep_of`] gives the atom as written).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Atom<'a> {
    pub name: NameId,
    /// Index in the universe's tag texts, 0 for none.
    tag: u32,
    pub conflict: bool,
    op: Op,
    version: &'a str,
}

/// Where the packages come from: owned ones (tests, lockfiles, an update's installed
/// set) or the checked indexes of a build, read in place.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// Packages, each carrying its repository position.
    Packages(&'a [Package]),
    /// One index and its repository position.
    Index(&'a ParsedIndex, usize),
    /// Some packages of a source (positions in its order, ascending), as
    /// [`prune`] keeps them.
    Only(&'a Source<'a>, &'a [u32]),
}

/// What the resolver reads of a package, borrowed from wherever it lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub arch: &'a str,
    pub checksum: &'a str,
    pub provider_priority: Option<u32>,
    pub uninstallable: bool,
    pub repo: usize,
    origin: Origin<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    Owned(&'a Package),
    Indexed(&'a ParsedIndex, u32),
}

impl Record<'_> {
    /// The whole package (an index's is read again from its stanza); `None` when that
    /// stanza no longer reads, which only a damaged parsed form could cause.
    pub fn to_package(self) -> Option<Package> {
        match self.origin {
            Origin::Owned(p) => Some(p.clone()),
            Origin::Indexed(index, i) => index
                .package(i as usize, self.repo)
                .filter(|p| p.name == self.name && p.version.as_str() == self.version),
        }
    }

    /// `name-version`.
    pub fn name_version(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// One package of a source with its atom lists.
struct Item<'a> {
    record: Record<'a>,
    /// Its name, as [`AtomList::for_each`] gives atoms' names.
    local_name: NameOf<'a>,
    installed_size: u64,
    depends: AtomList<'a>,
    provides: AtomList<'a>,
    install_if: AtomList<'a>,
}

#[derive(Clone, Copy)]
enum AtomList<'a> {
    Deps(&'a [Dependency]),
    Provides(&'a [crate::index::Provide]),
    Raw(&'a ParsedIndex, &'a [crate::index::RawAtom]),
}

/// The name of an atom: its text, or its number in an index whose names are numbered
/// (one read from the cache), whose text is then read only when the name is interned
/// for the first time.
#[derive(Clone, Copy)]
enum NameOf<'a> {
    Text(&'a str),
    Local(&'a ParsedIndex, u32),
}

impl<'a> NameOf<'a> {
    fn text(self) -> &'a str {
        match self {
            NameOf::Text(text) => text,
            NameOf::Local(index, id) => index.name(id),
        }
    }
}

impl<'a> AtomList<'a> {
    /// Each atom with its name; the atom's own `name` is empty for an index's atoms.
    fn for_each(self, mut f: impl FnMut(DepRef<'a>, NameOf<'a>)) {
        match self {
            AtomList::Deps(deps) => deps.iter().for_each(|d| f(d.into(), NameOf::Text(&d.name))),
            AtomList::Provides(ps) => ps.iter().for_each(|p| {
                f(
                    DepRef {
                        name: &p.name,
                        op: if p.version.is_some() { Op::Eq } else { Op::Any },
                        version: p.version.as_ref().map_or("", |v| v.as_str()),
                        conflict: false,
                        tag: None,
                    },
                    NameOf::Text(&p.name),
                )
            }),
            AtomList::Raw(index, atoms) => {
                let numbered = index.name_count() > 0;
                atoms.iter().for_each(|a| {
                    let name = if numbered {
                        NameOf::Local(index, a.name_id)
                    } else {
                        NameOf::Text(index.str(a.name))
                    };
                    f(index.dep_unnamed(a), name)
                })
            }
        }
    }
}

impl<'a> Source<'a> {
    fn len(&self) -> usize {
        match self {
            Source::Packages(p) => p.len(),
            Source::Index(i, _) => i.len(),
            Source::Only(_, kept) => kept.len(),
        }
    }

    /// How many dependency and install_if atoms its packages have, about.
    fn atom_count(&self) -> usize {
        match self {
            Source::Packages(p) => p.iter().map(|p| p.depends.len() + p.install_if.len()).sum(),
            Source::Index(i, _) => i
                .entries
                .iter()
                .map(|e| {
                    (e.depends.end - e.depends.start + e.install_if.end - e.install_if.start)
                        as usize
                })
                .sum(),
            // A share of the whole by package count is near enough for sizing.
            Source::Only(inner, kept) => {
                inner.atom_count() * kept.len() / inner.len().max(1) + kept.len()
            }
        }
    }

    /// How many distinct names an index source numbers (0 for owned packages).
    fn local_names(&self) -> usize {
        match self {
            Source::Packages(_) => 0,
            Source::Index(i, _) => i.name_count(),
            Source::Only(inner, _) => inner.local_names(),
        }
    }

    fn max_repo(&self) -> Option<usize> {
        match self {
            Source::Packages(p) => p.iter().map(|p| p.repo).max(),
            Source::Index(i, repo) => (!i.is_empty()).then_some(*repo),
            Source::Only(inner, kept) => {
                let last = *kept.last()?;
                inner.item(last as usize).map(|item| item.record.repo)
            }
        }
    }

    /// Package `i` of the source, in its order.
    fn item(&self, i: usize) -> Option<Item<'a>> {
        match *self {
            Source::Packages(packages) => packages.get(i).map(owned_item),
            Source::Index(index, repo) => index
                .entries
                .get(i)
                .map(|e| indexed_item(index, repo, i, e)),
            Source::Only(inner, kept) => inner.item(*kept.get(i)? as usize),
        }
    }

    fn for_each(self, mut f: impl FnMut(Item<'a>)) {
        match self {
            Source::Packages(packages) => packages.iter().map(owned_item).for_each(f),
            Source::Index(index, repo) => {
                for (i, e) in index.entries.iter().enumerate() {
                    f(indexed_item(index, repo, i, e))
                }
            }
            Source::Only(inner, kept) => kept
                .iter()
                .filter_map(|&i| inner.item(i as usize))
                .for_each(f),
        }
    }
}

fn owned_item(p: &Package) -> Item<'_> {
    Item {
        record: Record {
            name: &p.name,
            version: p.version.as_str(),
            arch: &p.arch,
            checksum: &p.checksum,
            provider_priority: p.provider_priority,
            uninstallable: p.uninstallable,
            repo: p.repo,
            origin: Origin::Owned(p),
        },
        local_name: NameOf::Text(&p.name),
        installed_size: p.installed_size,
        depends: AtomList::Deps(&p.depends),
        provides: AtomList::Provides(&p.provides),
        install_if: AtomList::Deps(&p.install_if),
    }
}

fn indexed_item<'a>(index: &'a ParsedIndex, repo: usize, i: usize, e: &RawEntry) -> Item<'a> {
    Item {
        record: Record {
            name: index.str(e.name),
            version: index.str(e.version),
            arch: index.str(e.arch),
            checksum: index.str(e.checksum),
            provider_priority: e.provider_priority,
            uninstallable: e.uninstallable,
            repo,
            origin: Origin::Indexed(index, i as u32),
        },
        local_name: if index.name_count() > 0 {
            NameOf::Local(index, e.name_id)
        } else {
            NameOf::Text(index.str(e.name))
        },
        installed_size: e.installed_size,
        depends: AtomList::Raw(index, index.atoms(e.depends)),
        provides: AtomList::Raw(index, index.atoms(e.provides)),
        install_if: AtomList::Raw(index, index.atoms(e.install_if)),
    }
}

/// The highest repository position of `sources`.
pub(crate) fn max_repo(sources: &[Source<'_>]) -> Option<usize> {
    sources.iter().filter_map(Source::max_repo).max()
}

/// The first package (`name-version`, position) of `sources` above `limit`.
pub(crate) fn first_beyond(sources: &[Source<'_>], limit: usize) -> Option<(String, usize)> {
    for source in sources {
        match *source {
            Source::Packages(ps) => {
                if let Some(p) = ps.iter().find(|p| p.repo >= limit) {
                    return Some((p.name_version(), p.repo));
                }
            }
            Source::Index(index, repo) if repo >= limit => {
                let e = index.entries.first()?;
                return Some((
                    format!("{}-{}", index.str(e.name), index.str(e.version)),
                    repo,
                ));
            }
            Source::Index(..) => {}
            Source::Only(inner, _) => {
                if let Some(found) = first_beyond(std::slice::from_ref(inner), limit) {
                    return Some(found);
                }
            }
        }
    }
    None
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

/// A package after deduplication by identity.
#[derive(Debug)]
pub(crate) struct Pkg<'a> {
    /// The copy from the lowest repository.
    pub src: Record<'a>,
    pub name: NameId,
    /// Bit `repo + 1` for every repository listing this package (bit 0 is apk's cache).
    pub repos: u64,
    pub depends: Range<u32>,
    pub provides: Range<u32>,
    pub install_if: Range<u32>,
    /// Not uninstallable and of a compatible architecture.
    pub installable: bool,
    /// Installs nothing (`I:0`): apk lets such packages past repository pinning.
    pub empty: bool,
    /// Installed in the root being updated (apk's `pkg->ipkg`).
    pub installed: bool,
    /// For an installed package, the repository tag id it was installed under (`s:`).
    pub installed_tag: usize,
}

/// A compressed table of lists, one per name: `items[start[i]..start[i + 1]]`.
#[derive(Debug)]
struct PerName<T> {
    start: Vec<u32>,
    items: Vec<T>,
}

impl<T> Default for PerName<T> {
    fn default() -> Self {
        PerName {
            start: Vec::new(),
            items: Vec::new(),
        }
    }
}

impl<T: Copy> PerName<T> {
    /// Groups `entries` (name, item) by name, keeping their order within a name;
    /// `filler` only occupies slots until they are written.
    fn build(
        names: usize,
        filler: T,
        entries: impl Iterator<Item = (NameId, T)> + Clone,
    ) -> PerName<T> {
        let mut start = vec![0u32; names + 1];
        for (n, _) in entries.clone() {
            start[n as usize + 1] += 1;
        }
        for i in 0..names {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut items: Vec<T> = vec![filler; start[names] as usize];
        for (n, item) in entries {
            items[fill[n as usize] as usize] = item;
            fill[n as usize] += 1;
        }
        PerName { start, items }
    }

    fn get(&self, name: NameId) -> &[T] {
        let i = name as usize;
        if i + 1 >= self.start.len() {
            return &[];
        }
        &self.items[self.start[i] as usize..self.start[i + 1] as usize]
    }
}

/// The whole name table for one resolution.
///
/// Providers are indexed for every name up front; the reverse edges only on demand,
/// since one resolution touches a few thousand of the ~50,000 names of a full
/// main+community set.
#[derive(Debug, Default)]
pub(crate) struct Universe<'a> {
    texts: Vec<&'a str>,
    /// Tags of atoms (`name@tag`); the first entry stands for none.
    tags: Vec<&'a str>,
    index: FxHashMap<&'a str, NameId>,
    pub pkgs: Vec<Pkg<'a>>,
    atoms: Vec<Atom<'a>>,
    provides: Vec<Provides<'a>>,
    providers: PerName<Provider<'a>>,
    /// Packages with a dependency (conflicts included) on each name.
    depended_by: PerName<PkgId>,
    /// Packages with an install_if condition on each name.
    triggered_by: PerName<PkgId>,
    rdepends: Vec<OnceCell<Box<[NameId]>>>,
    rinstall_if: Vec<OnceCell<Box<[NameId]>>>,
    /// Each name's bucket in apk's hash table, computed on first use.
    buckets: Vec<Cell<u32>>,
    /// When the table holds only some of the packages ([`prune`]): per name, when apk
    /// would have created it reading all of them. Empty: the ids are that order.
    created: Vec<u64>,
    /// Per name, the source (position in the sources built from) and number there of
    /// the index name it was created from, [`NOT_LOCAL`] otherwise: what
    /// [`Universe::set_creation_order`] hands its key rather than only the text.
    first_local: Vec<(u32, u32)>,
    /// The position of the source being read while building.
    reading: u32,
}

/// A name not created from an index's numbered name.
const NOT_LOCAL: (u32, u32) = (u32::MAX, u32::MAX);

/// What the root being updated already holds, as the universe needs it.
#[derive(Debug, Default)]
pub(crate) struct Installed<'a> {
    /// The names of the root's world file, in file order.
    pub world_names: Vec<&'a str>,
    /// The installed packages, in apk's installed-list order.
    pub packages: &'a [Package],
    /// Per installed package, its repository tag id (0 = untagged).
    pub tags: Vec<usize>,
}

/// Marks a bucket not computed yet (real buckets are below 20,000).
const NO_BUCKET: u32 = u32::MAX;

/// Marks an index's name not interned yet.
const NO_NAME: NameId = NameId::MAX;

/// Repository positions this table can represent (bit 0 is reserved, as in apk).
pub(crate) const MAX_REPOS: usize = 63;

impl<'a> Universe<'a> {
    /// Builds the table from all repositories' packages, in repository order.
    ///
    /// `arch` (when given) marks packages of other architectures uninstallable;
    /// `noarch` and packages without `A:` fit every architecture.
    #[cfg(test)]
    pub fn build(packages: &'a [Package], arch: Option<&str>) -> Universe<'a> {
        Universe::build_installed(&Installed::default(), &[Source::Packages(packages)], arch)
    }

    /// [`Universe::build`] for a root that already holds packages: the names of its world
    /// file are created first, then its installed packages (apk reads both before any
    /// index), then the indexes. A repository copy of an installed package (same `C:`)
    /// merges into it, as apk merges them.
    pub fn build_installed(
        installed: &Installed<'a>,
        sources: &[Source<'a>],
        arch: Option<&str>,
    ) -> Universe<'a> {
        Universe::build_with(installed, sources, arch, true)
    }

    /// [`Universe::build`] of sources known to hold no package twice (no two with one
    /// `C:`, as [`prune::Pruned`] checks), which therefore skips looking for copies.
    pub fn build_distinct(sources: &[Source<'a>], arch: Option<&str>) -> Universe<'a> {
        Universe::build_with(&Installed::default(), sources, arch, false)
    }

    fn build_with(
        installed: &Installed<'a>,
        sources: &[Source<'a>],
        arch: Option<&str>,
        merge_copies: bool,
    ) -> Universe<'a> {
        let count: usize = sources.iter().map(Source::len).sum();
        // Sized up front: growing the largest tables by doubling briefly holds both
        // copies, at the moment the memory use peaks.
        let atoms: usize = sources.iter().map(Source::atom_count).sum();
        let mut u = Universe {
            texts: Vec::with_capacity(count * 5 / 2),
            tags: vec![""],
            pkgs: Vec::with_capacity(count),
            atoms: Vec::with_capacity(atoms + installed.packages.len() * 8),
            provides: Vec::with_capacity(count * 3 / 2),
            ..Universe::default()
        };
        u.index.reserve(count * 2);
        let mut copies: FxHashMap<ChecksumKey<'a>, PkgId> = FxHashMap::default();
        if merge_copies {
            copies.reserve(count);
        }
        let mut by_checksum = merge_copies.then_some(&mut copies);

        for name in &installed.world_names {
            u.intern(name);
        }
        let mut position = 0;
        let seed = Source::Packages(installed.packages);
        // Each index numbers its names: each is looked up in the table once per index,
        // not at each of its mentions; names are still created in the order met.
        let mut memo = Vec::new();
        for (reading, source) in std::iter::once(&seed).chain(sources).enumerate() {
            // The seed is not one of `sources`: it wraps to u32::MAX, never local.
            u.reading = (reading as u32).wrapping_sub(1);
            memo.clear();
            memo.resize(source.local_names(), NO_NAME);
            source.for_each(|item| {
                u.add(
                    item,
                    position,
                    installed,
                    by_checksum.as_deref_mut(),
                    arch,
                    &mut memo,
                );
                position += 1;
            });
        }
        let n = u.texts.len();
        let u_ref = &u;
        // apk registers a package under its own name first, then under each provide.
        let provider_entries = u_ref.pkgs.iter().enumerate().flat_map(move |(id, p)| {
            let own = (
                p.name,
                Provider {
                    pkg: id as PkgId,
                    version: Some(p.src.version),
                },
            );
            std::iter::once(own).chain(u_ref.provides(id as PkgId).iter().map(move |d| {
                (
                    d.name,
                    Provider {
                        pkg: id as PkgId,
                        version: d.version,
                    },
                )
            }))
        });
        let filler = Provider {
            pkg: 0,
            version: None,
        };
        let providers = PerName::build(n, filler, provider_entries);
        let depended_by = PerName::build(
            n,
            0,
            (0..u_ref.pkgs.len() as PkgId)
                .flat_map(move |id| u_ref.depends(id).iter().map(move |a| (a.name, id))),
        );
        let triggered_by = PerName::build(
            n,
            0,
            (0..u_ref.pkgs.len() as PkgId)
                .flat_map(move |id| u_ref.install_if(id).iter().map(move |a| (a.name, id))),
        );
        u.providers = providers;
        u.depended_by = depended_by;
        u.triggered_by = triggered_by;
        u
    }

    fn add(
        &mut self,
        item: Item<'a>,
        position: usize,
        installed: &Installed<'a>,
        by_checksum: Option<&mut FxHashMap<ChecksumKey<'a>, PkgId>>,
        arch: Option<&str>,
        memo: &mut [NameId],
    ) {
        let package = item.record;
        let is_installed = position < installed.packages.len();
        let bit = if is_installed {
            0
        } else {
            1u64 << (package.repo.min(MAX_REPOS - 1) + 1)
        };
        let duplicate = match &by_checksum {
            Some(copies) if !package.checksum.is_empty() => {
                copies.get(&ChecksumKey::of(package.checksum)).copied()
            }
            _ => None,
        };
        if let Some(existing) = duplicate {
            // apk creates names while it parses, even for a duplicate it then
            // drops; creation order decides ties in its name hash table.
            self.intern_in(memo, item.local_name);
            item.depends.for_each(|_, name| {
                self.intern_in(memo, name);
            });
            item.install_if.for_each(|_, name| {
                self.intern_in(memo, name);
            });
            item.provides.for_each(|_, name| {
                self.intern_in(memo, name);
            });
            let pkg = &mut self.pkgs[existing as usize];
            pkg.repos |= bit;
            if !pkg.installed && package.repo < pkg.src.repo {
                pkg.src = package;
            }
            return;
        }
        // Field order of an index stanza: P, D, p, i.
        let name = self.intern_in(memo, item.local_name);
        let depends = self.push_atoms(item.depends, memo);
        let provides_start = self.provides.len() as u32;
        item.provides.for_each(|p, name| {
            let provided = self.intern_in(memo, name);
            let version = (p.op == Op::Eq).then_some(p.version);
            self.provides.push(Provides {
                name: provided,
                version,
            });
        });
        let provides = provides_start..self.provides.len() as u32;
        let install_if = self.push_atoms(item.install_if, memo);
        let id = self.pkgs.len() as PkgId;
        if let Some(copies) = by_checksum {
            if !package.checksum.is_empty() {
                copies.insert(ChecksumKey::of(package.checksum), id);
            }
        }
        let installable = !package.uninstallable && arch_fits(package.arch, arch);
        self.pkgs.push(Pkg {
            src: package,
            name,
            repos: bit,
            depends,
            provides,
            install_if,
            installable,
            empty: item.installed_size == 0,
            installed: is_installed,
            installed_tag: if is_installed {
                installed.tags.get(position).copied().unwrap_or(0)
            } else {
                0
            },
        });
    }

    /// The id of `text`, creating the name if needed.
    fn intern(&mut self, text: &'a str) -> NameId {
        if let Some(&id) = self.index.get(text) {
            return id;
        }
        let id = self.texts.len() as NameId;
        self.texts.push(text);
        self.first_local.push(NOT_LOCAL);
        self.rdepends.push(OnceCell::new());
        self.rinstall_if.push(OnceCell::new());
        self.buckets.push(Cell::new(NO_BUCKET));
        self.index.insert(text, id);
        id
    }

    /// The id of `name`; `memo` maps the numbers of the names of the index being read
    /// to ids (or [`NO_NAME`]), so that each is looked up once.
    fn intern_in(&mut self, memo: &mut [NameId], name: NameOf<'a>) -> NameId {
        let slot = match name {
            NameOf::Local(_, local) => memo.get_mut(local as usize),
            NameOf::Text(_) => None,
        };
        let Some(slot) = slot else {
            return self.intern(name.text());
        };
        if *slot == NO_NAME {
            let before = self.texts.len();
            *slot = self.intern(name.text());
            if let (NameOf::Local(_, local), true) = (name, self.texts.len() > before) {
                self.first_local[*slot as usize] = (self.reading, local);
            }
        }
        *slot
    }

    /// Interns a dependency atom that is not part of a package (a world entry).
    pub fn atom(&mut self, dep: DepRef<'a>) -> Atom<'a> {
        let name = self.intern(dep.name);
        self.atom_named(name, dep)
    }

    /// The atom `dep`, its name interned as `name`.
    fn atom_named(&mut self, name: NameId, dep: DepRef<'a>) -> Atom<'a> {
        let tag = match dep.tag {
            None => 0,
            Some(tag) => {
                self.tags.push(tag);
                (self.tags.len() - 1) as u32
            }
        };
        Atom {
            name,
            tag,
            conflict: dep.conflict,
            op: dep.op,
            version: dep.version,
        }
    }

    /// The atom as written, for messages and matching.
    pub fn dep_of(&self, atom: &Atom<'a>) -> DepRef<'a> {
        DepRef {
            name: self.text(atom.name),
            op: atom.op,
            version: atom.version,
            conflict: atom.conflict,
            tag: (atom.tag != 0).then(|| self.tags.get(atom.tag as usize).copied().unwrap_or("")),
        }
    }

    /// How many names exist.
    pub fn name_count(&self) -> usize {
        self.texts.len()
    }

    /// The name as written.
    pub fn text(&self, name: NameId) -> &'a str {
        self.texts[name as usize]
    }

    /// The ways `name` can be satisfied, in apk's order (index order; a package's own
    /// name before its provides).
    pub fn providers(&self, name: NameId) -> &[Provider<'a>] {
        self.providers.get(name)
    }

    /// Names that have a provider depending on `name` (conflicts included), in the
    /// order apk's solver visits them.
    pub fn rdepends(&self, name: NameId) -> &[NameId] {
        self.rdepends[name as usize].get_or_init(|| self.reverse(self.depended_by.get(name)))
    }

    /// Names that have a provider whose install_if mentions `name`, in apk's order.
    pub fn rinstall_if(&self, name: NameId) -> &[NameId] {
        self.rinstall_if[name as usize].get_or_init(|| self.reverse(self.triggered_by.get(name)))
    }

    /// apk's dequeue priority: 0 when only packages of this name provide it, 1 when
    /// some other packages provide it too, 2 when only other packages do.
    pub fn priority(&self, name: NameId) -> u8 {
        let providers = self.providers(name);
        let other = providers
            .iter()
            .filter(|p| self.pkgs[p.pkg as usize].name != name)
            .count();
        if other == 0 {
            0
        } else if other != providers.len() {
            1
        } else {
            2
        }
    }

    /// The names answering to `pkgs` (own names and provides), each once, in the
    /// order of apk's name hash table: apk builds its reverse edges by walking that
    /// table, so this is the order its lists have.
    fn reverse(&self, pkgs: &[PkgId]) -> Box<[NameId]> {
        let mut names: Vec<NameId> = Vec::with_capacity(pkgs.len());
        for &p in pkgs {
            names.extend(self.names_of(p));
        }
        self.sort_walk_order(&mut names);
        names.into_boxed_slice()
    }

    /// Packages with a dependency (conflicts included) on `name`.
    pub fn depended_by(&self, name: NameId) -> &[PkgId] {
        self.depended_by.get(name)
    }

    /// The names a package answers to: its own, then its provides.
    pub fn names_of(&self, pkg: PkgId) -> impl Iterator<Item = NameId> + '_ {
        std::iter::once(self.pkgs[pkg as usize].name)
            .chain(self.provides(pkg).iter().map(|d| d.name))
    }

    /// Sorts `names` into apk's hash-table walk order and drops repeats.
    pub fn sort_walk_order(&self, names: &mut Vec<NameId>) {
        names.sort_unstable();
        names.dedup();
        names.sort_unstable_by_key(|&n| (self.bucket(n), std::cmp::Reverse(self.created(n))));
    }

    /// When `name` was created, relative to the others (see [`Universe::created`]).
    fn created(&self, name: NameId) -> u64 {
        self.created
            .get(name as usize)
            .copied()
            .unwrap_or(u64::from(name))
    }

    /// Replaces the creation order of the names by `key` (names it does not know
    /// come after all that it knows, in id order): for a table of some of the
    /// packages, whose ids follow the order it met names in, not apk's.
    /// `key` has the name's text and, for a name created from an index's numbered
    /// name, that source's position and the number.
    pub fn set_creation_order(&mut self, key: impl Fn(&str, Option<(usize, u32)>) -> Option<u64>) {
        // The order only ever breaks ties within a bucket: a name alone in its bucket
        // keeps any key, and is not looked up.
        let mut sharing = vec![0u8; crate::apk_hash::BUCKETS as usize];
        for name in 0..self.texts.len() as NameId {
            if let Some(n) = sharing.get_mut(self.bucket(name) as usize) {
                *n = n.saturating_add(1);
            }
        }
        let count = self.texts.len();
        self.created = (0..count as NameId)
            .map(|name| {
                let unknown = u64::MAX - (count - name as usize) as u64;
                if sharing
                    .get(self.bucket(name) as usize)
                    .is_none_or(|&n| n > 1)
                {
                    let local = match self.first_local.get(name as usize) {
                        Some(&(source, local)) if (source, local) != NOT_LOCAL => {
                            Some((source as usize, local))
                        }
                        _ => None,
                    };
                    key(self.text(name), local).unwrap_or(unknown)
                } else {
                    unknown
                }
            })
            .collect();
        // Walks already sorted followed the old order.
        self.rdepends.iter_mut().for_each(|c| drop(c.take()));
        self.rinstall_if.iter_mut().for_each(|c| drop(c.take()));
    }

    fn bucket(&self, name: NameId) -> u32 {
        let cell = &self.buckets[name as usize];
        if cell.get() == NO_BUCKET {
            cell.set(bucket(self.text(name)));
        }
        cell.get()
    }

    /// The package `id`.
    pub fn pkg(&self, id: PkgId) -> &Pkg<'a> {
        &self.pkgs[id as usize]
    }

    /// The `D:` atoms of package `id`.
    pub fn depends(&self, id: PkgId) -> &[Atom<'a>] {
        let r = &self.pkgs[id as usize].depends;
        &self.atoms[r.start as usize..r.end as usize]
    }

    /// The `i:` atoms of package `id`.
    pub fn install_if(&self, id: PkgId) -> &[Atom<'a>] {
        let r = &self.pkgs[id as usize].install_if;
        &self.atoms[r.start as usize..r.end as usize]
    }

    /// The `p:` entries of package `id`.
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
        match accept_of(&self.dep_of(atom)) {
            // apk compares identities without looking at the conflict flag.
            Accept::Checksum(sum) => {
                ChecksumKey::of(self.pkgs[pkg as usize].src.checksum) == ChecksumKey::of(sum)
            }
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

    fn push_atoms(&mut self, deps: AtomList<'a>, memo: &mut [NameId]) -> Range<u32> {
        let start = self.atoms.len() as u32;
        deps.for_each(|dep, name| {
            let name = self.intern_in(memo, name);
            let atom = self.atom_named(name, dep);
            self.atoms.push(atom);
        });
        start..self.atoms.len() as u32
    }
}

/// What identifies a package's `C:`: its digest, which apk compares after a lenient
/// base64 decode (the same digest may be spelt with different unused trailing bits);
/// the text itself when it is not a `Q1` SHA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ChecksumKey<'a> {
    Digest([u8; 20]),
    Text(&'a str),
}

impl<'a> ChecksumKey<'a> {
    /// The key of what `decode_q1` decodes (that decoder allocates, once per package).
    fn of(checksum: &'a str) -> ChecksumKey<'a> {
        use base64::Engine;
        let Some(b64) = checksum.strip_prefix("Q1") else {
            return ChecksumKey::Text(checksum);
        };
        if let Some(digest) = decode_sha1_b64(b64.as_bytes()) {
            return ChecksumKey::Digest(digest);
        }
        let mut digest = [0u8; 21];
        match crate::index::LENIENT_BASE64.decode_slice(b64, &mut digest) {
            Ok(20) => {
                let mut out = [0u8; 20];
                out.copy_from_slice(&digest[..20]);
                ChecksumKey::Digest(out)
            }
            _ => ChecksumKey::Text(checksum),
        }
    }
}

/// The common spelling of a SHA-1 in base64 (27 symbols and one `=`), decoded as the
/// lenient engine decodes it (the two unused bits of the last symbol ignored), a few
/// times faster; `None` for anything else, which the engine then reads.
fn decode_sha1_b64(b64: &[u8]) -> Option<[u8; 20]> {
    let (symbols, pad) = b64.split_at_checked(27)?;
    if pad != b"=" {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = [0u8; 20];
    // Six groups of four symbols give 18 bytes; the last three symbols give two.
    for (group, bytes) in symbols.chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        let mut v = 0u32;
        for &c in group {
            v = v << 6 | value(c)?;
        }
        bytes.copy_from_slice(&v.to_be_bytes()[1..]);
    }
    let tail = symbols.get(24..27)?;
    let v = (value(tail[0])? << 12 | value(tail[1])? << 6 | value(tail[2])?) >> 2;
    out[18..].copy_from_slice(&(v as u16).to_be_bytes());
    Some(out)
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

/// What `dep` accepts; derived on use rather than stored, which keeps the atoms of the
/// ~150,000 dependencies of a full index small.
pub(crate) fn accept_of<'a>(dep: &DepRef<'a>) -> Accept<'a> {
    let (mask, fuzzy) = match dep.op {
        Op::Any => return Accept::Any,
        Op::Checksum => return Accept::Checksum(dep.version),
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
        version: dep.version,
    }
}

#[cfg(test)]
mod tests;
