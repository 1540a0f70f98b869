//! The decision procedure of apk-tools 2.14 (`src/solver.c`), re-expressed.
//!
//! apk does not search: it propagates constraints down from the world, merges what all
//! remaining candidates of a name have in common, and then commits names one at a time
//! (the most constrained first), never backtracking. Which package wins therefore
//! depends on the exact propagation and visiting order, so this module keeps apk's
//! bookkeeping (per-name and per-package flags and counters, the two queues) and its
//! rules; only the data layout is ours. Install order comes from [`super::changeset`].
//!
//! Assumed environment: no cache, every repository available, no `--latest` flag. The
//! root may hold installed packages (an update): then an installed package that still
//! satisfies is kept unless upgrading ([`Solver::upgrade`], apk's `APK_SOLVERF_UPGRADE`,
//! inherited from the world down the dependencies as apk inherits it).

mod discover;
mod propagate;

use std::rc::Rc;

use super::list::IdList;
use super::universe::{Atom, NameId, PkgId, Provider, Universe};

/// Why a package stopped being a candidate (the first reason only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disqualified {
    /// Some requirement on one of its names excludes it (version or `!conflict`).
    ConflictingDependency,
    /// One of its own dependencies can no longer be met.
    DependencyUnsatisfiable { dep_index: u32 },
    /// All candidates of a required name provide a name this package also provides,
    /// and this package does not provide the required one.
    ProvidesTransitivity,
    /// Another package was chosen for a name this package provides.
    ConflictingProvides { name: NameId },
}

/// Why a chosen package is in error (the first reason only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    /// It was the best of its name but not installable or not allowed by pinning.
    NotSelectable,
    /// It and another chosen package both provide `name`.
    SameNameProvided { name: NameId },
    /// A dependency is not satisfied by what was chosen for its name.
    UnfulfilledDependency { dep_index: u32 },
    /// A package it depends on is in error.
    Propagated { dep_index: u32 },
}

#[derive(Debug, Default, Clone)]
pub(crate) struct NameState<'a> {
    pub chosen_pkg: Option<PkgId>,
    pub chosen_version: Option<&'a str>,
    pub requirers: u32,
    merge_depends: u32,
    merge_provides: u32,
    max_dep_chain: u32,
    pub seen: bool,
    pub locked: bool,
    pub in_changeset: bool,
    reevaluate_deps: bool,
    reevaluate_iif: bool,
    has_iif: bool,
    no_iif: bool,
    has_options: bool,
    reverse_deps_done: bool,
    has_virtual_provides: bool,
    /// Named on the command line (apk marks those names and decides them first).
    pub from_world: bool,
    /// [`Universe::priority`], kept here once discovered: the dequeue order reads it
    /// on every comparison.
    priority: u8,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct PkgState {
    conflicts: u32,
    max_dep_chain: u32,
    pinning_allowed: u32,
    pinning_preferred: u32,
    seen: bool,
    pub selectable: bool,
    pub tag_ok: bool,
    tag_preferred: bool,
    dependencies_used: bool,
    dependencies_merged: bool,
    pub in_changeset: bool,
    iif_triggered: bool,
    iif_failed: bool,
    /// apk's `APK_SOLVERF_UPGRADE` in the package's solver flags, and in the flags its
    /// dependencies inherit.
    upgrade: bool,
    upgrade_inheritable: bool,
    pub error: Option<Broken>,
    pub disqualified: Option<Disqualified>,
}

/// A world entry: its atom and the repository tag id it is pinned to (0 = none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorldAtom<'a> {
    pub atom: Atom<'a>,
    pub tag: usize,
}

/// The pinning setup: which repositories each tag id allows (tag 0 = untagged).
#[derive(Debug, Clone)]
pub(crate) struct Tags {
    pub allowed_repos: Vec<u64>,
}

impl Tags {
    fn repos_of_mask(&self, mask: u32) -> u64 {
        self.allowed_repos
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 32 && mask & (1 << i) != 0)
            .fold(0, |acc, (_, r)| acc | r)
    }
}

const DEFAULT_PINNING: u32 = 1;

/// Solver state for one resolution.
pub(crate) struct Solver<'u, 'a> {
    pub u: &'u Universe<'a>,
    pub names: Vec<NameState<'a>>,
    pub pkgs: Vec<PkgState>,
    dirty: IdList,
    unresolved: IdList,
    pub errors: u32,
    /// Required names for which no provider could be chosen, in decision order.
    pub missing: Vec<NameId>,
    /// Packages to install, dependencies first.
    pub changes: Vec<PkgId>,
    /// The whole change set (apk's `changeset->changes`): `(old, new)` per change,
    /// removals and kept packages included, in the order apk commits them.
    pub changeset: Vec<(Option<PkgId>, Option<PkgId>)>,
    /// `apk upgrade`: world entries carry the upgrade flag down to their dependencies.
    pub upgrade: bool,
    upgrade_inherit: bool,
    pub tags: Tags,
    default_repos: u64,
    pinning_inherit: u32,
    /// Per name, the discovered names depending on it in apk's order; filled on first
    /// use, after discovery (only discovered names matter to every user of the list).
    rdepends_cache: Vec<Option<Rc<[NameId]>>>,
}

impl<'u, 'a> Solver<'u, 'a> {
    /// A fresh state over `u`.
    pub fn new(u: &'u Universe<'a>, tags: Tags) -> Solver<'u, 'a> {
        let default_repos = tags.repos_of_mask(DEFAULT_PINNING);
        Solver {
            u,
            names: vec![NameState::default(); u.name_count()],
            pkgs: vec![PkgState::default(); u.pkgs.len()],
            dirty: IdList::new(u.name_count()),
            unresolved: IdList::new(u.name_count()),
            errors: 0,
            missing: Vec::new(),
            changes: Vec::new(),
            changeset: Vec::new(),
            upgrade: false,
            upgrade_inherit: false,
            tags,
            default_repos,
            pinning_inherit: 0,
            rdepends_cache: vec![None; u.name_count()],
        }
    }

    /// Decides every name reachable from `world` (sorted and deduplicated by the
    /// caller as apk does), then lists the packages to install in order.
    pub fn solve(&mut self, world: &[WorldAtom<'a>]) {
        for w in world {
            self.names[w.atom.name as usize].from_world = true;
        }
        for w in world {
            self.discover(w.atom.name);
        }
        self.upgrade_inherit = self.upgrade;
        for w in world {
            self.pinning_inherit = 1u32.checked_shl(w.tag as u32).unwrap_or(0);
            self.apply_constraint(None, &w.atom);
        }
        self.pinning_inherit = 0;
        self.upgrade_inherit = false;

        loop {
            while let Some(name) = self.dirty.pop_front() {
                self.reconsider_name(name);
            }
            let mut best: Option<NameId> = None;
            for n in self.unresolved.iter() {
                let s = &self.names[n as usize];
                if s.reverse_deps_done && s.requirers > 0 && !s.has_options {
                    best = Some(n);
                    break;
                }
                if best.is_none_or(|b| self.dequeue_before(n, b)) {
                    best = Some(n);
                }
            }
            let Some(name) = best else { break };
            self.select_package(name);
        }

        super::changeset::generate(self, world);
    }

    // ----- queues ------------------------------------------------------------------

    fn queue_dirty(&mut self, name: NameId) {
        let s = &self.names[name as usize];
        if self.dirty.contains(name) || s.locked || (s.requirers == 0 && !s.reevaluate_iif) {
            return;
        }
        self.dirty.push_back(name);
    }

    fn queue_unresolved(&mut self, name: NameId) {
        let s = &self.names[name as usize];
        if s.locked {
            return;
        }
        let want = s.requirers > 0 || s.has_iif;
        let queued = self.unresolved.contains(name);
        if want && !queued {
            self.unresolved.push_front(name);
        } else if !want && queued {
            self.unresolved.remove(name);
        }
    }

    /// The discovered names with a provider depending on `name`, in apk's order.
    fn rdepends(&mut self, name: NameId) -> Rc<[NameId]> {
        if let Some(list) = &self.rdepends_cache[name as usize] {
            return list.clone();
        }
        let u = self.u;
        let mut names: Vec<NameId> = Vec::new();
        for &p in u.depended_by(name) {
            names.extend(u.names_of(p).filter(|&n| self.names[n as usize].seen));
        }
        u.sort_walk_order(&mut names);
        let list: Rc<[NameId]> = names.into();
        self.rdepends_cache[name as usize] = Some(list.clone());
        list
    }

    fn reevaluate_reverse_deps(&mut self, name: NameId) {
        for &n in self.rdepends(name).iter() {
            if !self.names[n as usize].seen {
                continue;
            }
            self.names[n as usize].reevaluate_deps = true;
            self.queue_dirty(n);
        }
    }

    fn reevaluate_reverse_installif(&mut self, name: NameId) {
        for &n in self.u.rinstall_if(name) {
            let s = &self.names[n as usize];
            if !s.seen || s.no_iif {
                continue;
            }
            self.names[n as usize].reevaluate_iif = true;
            self.queue_dirty(n);
        }
    }

    fn reevaluate_reverse_installif_pkg(&mut self, pkg: PkgId) {
        let u = self.u;
        self.reevaluate_reverse_installif(u.pkg(pkg).name);
        for p in u.provides(pkg) {
            self.reevaluate_reverse_installif(p.name);
        }
    }

    fn name_requirers_changed(&mut self, name: NameId) {
        self.queue_unresolved(name);
        self.reevaluate_reverse_installif(name);
        self.queue_dirty(name);
    }

    // ----- decisions ---------------------------------------------------------------

    /// apk's provider preference. Positive when `a` is better than `b` (`None` = no
    /// provider chosen yet, which any provider beats).
    fn compare_providers(&self, a: Provider<'a>, b: Option<Provider<'a>>) -> i64 {
        let Some(b) = b else { return 1 };
        let (pa, pb) = (&self.pkgs[a.pkg as usize], &self.pkgs[b.pkg as usize]);
        let (ua, ub) = (self.u.pkg(a.pkg), self.u.pkg(b.pkg));
        let flag = |x: bool, y: bool| i64::from(x) - i64::from(y);

        let r = flag(pa.selectable, pb.selectable);
        if r != 0 {
            return r;
        }
        // Candidates that took part in the last merge of common dependencies first.
        let r = flag(pa.dependencies_used, pb.dependencies_used);
        if r != 0 {
            return r;
        }
        let r = i64::from(pb.conflicts) - i64::from(pa.conflicts);
        if r != 0 {
            return r;
        }
        let r = flag(pa.tag_ok, pb.tag_ok);
        if r != 0 {
            return r;
        }
        let r = flag(pa.tag_preferred, pb.tag_preferred);
        if r != 0 {
            return r;
        }
        let upgrading = pa.upgrade || pb.upgrade;
        let r = flag(ua.installed, ub.installed);
        if !upgrading && r != 0 {
            return r;
        }
        // Latest version of the requested name (no decision when one side is virtual).
        if let (Some(va), Some(vb)) = (a.version, b.version) {
            match crate::version::compare(va, vb) {
                std::cmp::Ordering::Less => return -1,
                std::cmp::Ordering::Greater => return 1,
                std::cmp::Ordering::Equal => {}
            }
        }
        // Latest version of the package's own name.
        if ua.name == ub.name {
            match crate::version::compare(ua.src.version, ub.src.version) {
                std::cmp::Ordering::Less => return -1,
                std::cmp::Ordering::Greater => return 1,
                std::cmp::Ordering::Equal => {}
            }
        }
        // Installed, when upgrading found nothing newer.
        let r = flag(ua.installed, ub.installed);
        if r != 0 {
            return r;
        }
        let prio = |p: &super::universe::Record<'_>| i64::from(p.provider_priority.unwrap_or(0));
        let r = prio(&ua.src) - prio(&ub.src);
        if r != 0 {
            return r;
        }
        let r = flag(pa.selectable, pb.selectable);
        if r != 0 {
            return r;
        }
        // Lowest repository (ffs: 1-based index of the lowest set bit, 0 for none).
        let ffs = |r: u64| {
            if r == 0 {
                0
            } else {
                i64::from(r.trailing_zeros()) + 1
            }
        };
        ffs(ub.repos) - ffs(ua.repos)
    }

    /// apk's order for deciding names: command-line names first, then names only real
    /// packages provide, then longer dependency chains, then required names.
    fn dequeue_before(&self, a: NameId, b: NameId) -> bool {
        let (sa, sb) = (&self.names[a as usize], &self.names[b as usize]);
        let flag = |x: bool, y: bool| i64::from(x) - i64::from(y);
        let mut r = -flag(sa.from_world, sb.from_world);
        if r == 0 {
            r = i64::from(sa.priority) - i64::from(sb.priority);
        }
        if r == 0 {
            r = -(i64::from(sa.max_dep_chain) - i64::from(sb.max_dep_chain));
        }
        if r == 0 {
            r = -flag(sa.requirers > 0, sb.requirers > 0);
        }
        r < 0
    }

    fn select_package(&mut self, name: NameId) {
        let u = self.u;
        let mut chosen: Option<Provider<'a>> = None;
        let s = &self.names[name as usize];
        let requirers = s.requirers;
        if requirers > 0 || s.has_iif {
            for &p in u.providers(name) {
                let ps = &self.pkgs[p.pkg as usize];
                // Without requirers only a triggered install_if may pull it in.
                if requirers == 0 && (!ps.iif_triggered || !ps.tag_ok) {
                    continue;
                }
                // A virtual provide is never picked on its own unless the package
                // has a provider_priority or its own name is required.
                let pkg = u.pkg(p.pkg);
                if p.version.is_none()
                    && self.names[pkg.name as usize].requirers == 0
                    && pkg.src.provider_priority.unwrap_or(0) == 0
                {
                    continue;
                }
                if self.compare_providers(p, chosen) > 0 {
                    chosen = Some(p);
                }
            }
        }

        let Some(chosen) = chosen else {
            self.assign_name(name, None, None);
            if requirers > 0 {
                self.errors += 1;
                self.missing.push(name);
            }
            return;
        };
        let pkg = chosen.pkg;
        let ps = &self.pkgs[pkg as usize];
        if !ps.selectable || !ps.tag_ok {
            self.mark_error(Some(pkg), Broken::NotSelectable);
        }
        let p = u.pkg(pkg);
        self.assign_name(p.name, Some(pkg), Some(p.src.version));
        for d in u.provides(pkg) {
            self.assign_name(d.name, Some(pkg), d.version);
        }
        for d in u.depends(pkg) {
            self.apply_constraint(Some(pkg), d);
        }
    }

    fn assign_name(&mut self, name: NameId, pkg: Option<PkgId>, version: Option<&'a str>) {
        let u = self.u;
        let s = &self.names[name as usize];
        if s.locked {
            // Two packages providing one name is fine only when both are virtual.
            if version.is_none() && s.chosen_version.is_none() {
                return;
            }
            let other = s.chosen_pkg;
            self.mark_error(pkg, Broken::SameNameProvided { name });
            self.mark_error(other, Broken::SameNameProvided { name });
            return;
        }
        let s = &mut self.names[name as usize];
        s.locked = true;
        s.chosen_pkg = pkg;
        s.chosen_version = version;
        self.unresolved.remove(name);
        self.dirty.remove(name);

        for p0 in u.providers(name) {
            if Some(p0.pkg) == pkg || (version.is_none() && p0.version.is_none()) {
                continue;
            }
            self.disqualify(p0.pkg, Disqualified::ConflictingProvides { name });
        }
        self.reevaluate_reverse_deps(name);
        match pkg {
            Some(pkg) => self.reevaluate_reverse_installif_pkg(pkg),
            None => self.reevaluate_reverse_installif(name),
        }
    }

    /// The repository tag id `pkg` is installed under (apk's `get_tag`): the first tag
    /// its pinning allows that carries one of its repositories; 0 when none does.
    pub fn pinned_tag(&self, pkg: PkgId) -> usize {
        let allowed = self.pkgs[pkg as usize].pinning_allowed;
        let repos = self.pkg_repos(pkg);
        self.tags
            .allowed_repos
            .iter()
            .enumerate()
            .take(32)
            .find(|(i, r)| allowed & (1 << i) != 0 && *r & repos != 0)
            .map_or(0, |(i, _)| i)
    }

    /// The repositories `pkg` counts as coming from (apk's `get_pkg_repos`): its own, and
    /// for an installed package those of the tag it was installed under.
    pub(crate) fn pkg_repos(&self, pkg: PkgId) -> u64 {
        let p = self.u.pkg(pkg);
        if p.installed {
            p.repos
                | self
                    .tags
                    .allowed_repos
                    .get(p.installed_tag)
                    .copied()
                    .unwrap_or(0)
        } else {
            p.repos
        }
    }

    /// Records `pkg` as in error (used by the change-set pass).
    pub(crate) fn mark_broken(&mut self, pkg: PkgId, why: Broken) {
        self.mark_error(Some(pkg), why);
    }
}
