//! The decision procedure of apk-tools 2.14 (`src/solver.c`), re-expressed.
//!
//! apk does not search: it propagates constraints down from the world, merges what all
//! remaining candidates of a name have in common, and then commits names one at a time
//! (the most constrained first), never backtracking. Which package wins therefore
//! depends on the exact propagation and visiting order, so this module keeps apk's
//! bookkeeping (per-name and per-package flags and counters, the two queues) and its
//! rules; only the data layout is ours. Install order comes from [`super::changeset`].
//!
//! Assumed environment, as for a sysroot built from nothing: no installed packages, no
//! cache, every repository available, no `--upgrade`/`--latest` flags.

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
        for w in world {
            self.pinning_inherit = 1u32.checked_shl(w.tag as u32).unwrap_or(0);
            self.apply_constraint(None, &w.atom);
        }
        self.pinning_inherit = 0;

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

    // ----- discovery ---------------------------------------------------------------

    /// Marks `root` and everything its providers depend on (and the install_if
    /// packages that could trigger from them) as part of the problem, computing the
    /// dependency chain lengths used to order decisions. Iterative: chains can be deep.
    fn discover(&mut self, root: NameId) {
        enum Frame {
            /// Walking providers; `dep` is the next dependency of provider `pi` when
            /// that package is being discovered here, `pending` when its name was
            /// pushed and its chain length is still to be taken.
            Providers {
                name: NameId,
                pi: usize,
                dep: Option<usize>,
                pending: bool,
            },
            /// Walking the names whose install_if mention provider `pi`'s names;
            /// list `li` 0 is the package's own name, `li` >= 1 its provides.
            Reverse {
                name: NameId,
                pi: usize,
                li: usize,
                ki: usize,
            },
        }
        let u = self.u;
        if self.names[root as usize].seen {
            return;
        }
        self.begin_name(root);
        let mut stack = vec![Frame::Providers {
            name: root,
            pi: 0,
            dep: None,
            pending: false,
        }];
        while let Some(top) = stack.last_mut() {
            match top {
                Frame::Providers {
                    name,
                    pi,
                    dep,
                    pending,
                } => {
                    let providers = u.providers(*name);
                    if *pi == providers.len() {
                        *top = Frame::Reverse {
                            name: *name,
                            pi: 0,
                            li: 0,
                            ki: 0,
                        };
                        continue;
                    }
                    let pkg = providers[*pi].pkg;
                    let Some(d) = *dep else {
                        if !self.pkgs[pkg as usize].seen {
                            self.begin_pkg(pkg);
                            *dep = Some(0);
                        } else {
                            self.finish_provider(*name, pkg);
                            *pi += 1;
                        }
                        continue;
                    };
                    let deps = u.depends(pkg);
                    if *pending {
                        let chain = self.names[deps[d].name as usize].max_dep_chain + 1;
                        let ps = &mut self.pkgs[pkg as usize];
                        ps.max_dep_chain = ps.max_dep_chain.max(chain);
                        *pending = false;
                        *dep = Some(d + 1);
                        continue;
                    }
                    if d == deps.len() {
                        self.finish_provider(*name, pkg);
                        *pi += 1;
                        *dep = None;
                        continue;
                    }
                    let child = deps[d].name;
                    *pending = true;
                    if !self.names[child as usize].seen {
                        self.begin_name(child);
                        stack.push(Frame::Providers {
                            name: child,
                            pi: 0,
                            dep: None,
                            pending: false,
                        });
                    }
                }
                Frame::Reverse { name, pi, li, ki } => {
                    let providers = u.providers(*name);
                    if *pi == providers.len() {
                        stack.pop();
                        continue;
                    }
                    let pkg = providers[*pi].pkg;
                    let provides = u.provides(pkg);
                    if *li > provides.len() {
                        *pi += 1;
                        *li = 0;
                        *ki = 0;
                        continue;
                    }
                    let list_name = if *li == 0 {
                        u.pkg(pkg).name
                    } else {
                        provides[*li - 1].name
                    };
                    // A provided name already discovered has had its triggers walked.
                    if *li > 0 && *ki == 0 && self.names[list_name as usize].seen {
                        *li += 1;
                        continue;
                    }
                    let list = u.rinstall_if(list_name);
                    if *ki == list.len() {
                        *li += 1;
                        *ki = 0;
                        continue;
                    }
                    let next = list[*ki];
                    *ki += 1;
                    if !self.names[next as usize].seen {
                        self.begin_name(next);
                        stack.push(Frame::Providers {
                            name: next,
                            pi: 0,
                            dep: None,
                            pending: false,
                        });
                    }
                }
            }
        }
    }

    fn begin_name(&mut self, name: NameId) {
        let priority = self.u.priority(name);
        let s = &mut self.names[name as usize];
        s.seen = true;
        s.no_iif = true;
        s.priority = priority;
    }

    fn begin_pkg(&mut self, pkg: PkgId) {
        let p = self.u.pkg(pkg);
        let tag_preferred = p.empty || p.repos & self.default_repos != 0;
        let s = &mut self.pkgs[pkg as usize];
        s.seen = true;
        s.pinning_allowed = DEFAULT_PINNING;
        s.pinning_preferred = DEFAULT_PINNING;
        s.selectable = p.installable;
        s.iif_failed = p.install_if.is_empty();
        s.tag_preferred = tag_preferred;
        s.tag_ok = tag_preferred;
    }

    fn finish_provider(&mut self, name: NameId, pkg: PkgId) {
        let (failed, chain) = {
            let p = &self.pkgs[pkg as usize];
            (p.iif_failed, p.max_dep_chain)
        };
        let s = &mut self.names[name as usize];
        s.no_iif &= failed;
        s.max_dep_chain = s.max_dep_chain.max(chain);
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

    // ----- constraints -------------------------------------------------------------

    fn mark_error(&mut self, pkg: Option<PkgId>, why: Broken) {
        let Some(pkg) = pkg else { return };
        let s = &mut self.pkgs[pkg as usize];
        if s.error.is_some() {
            return;
        }
        s.error = Some(why);
        self.errors += 1;
    }

    fn disqualify(&mut self, pkg: PkgId, why: Disqualified) {
        let u = self.u;
        let s = &mut self.pkgs[pkg as usize];
        s.selectable = false;
        s.disqualified.get_or_insert(why);
        self.reevaluate_reverse_deps(u.pkg(pkg).name);
        for p in u.provides(pkg) {
            self.reevaluate_reverse_deps(p.name);
        }
        self.reevaluate_reverse_installif_pkg(pkg);
    }

    /// The chosen provider of a decided name (`None` pkg for "nothing").
    pub fn chosen(&self, name: NameId) -> (Option<PkgId>, Option<&'a str>) {
        let s = &self.names[name as usize];
        (s.chosen_pkg, s.chosen_version)
    }

    fn dependency_satisfiable(&self, dep: &Atom<'a>) -> bool {
        let s = &self.names[dep.name as usize];
        if s.locked {
            return self.u.is_provided(dep, s.chosen_pkg, s.chosen_version);
        }
        if s.requirers == 0 && self.u.is_provided(dep, None, None) {
            return true;
        }
        self.u.providers(dep.name).iter().any(|p| {
            self.pkgs[p.pkg as usize].selectable && self.u.is_provided(dep, Some(p.pkg), p.version)
        })
    }

    fn inherit_pinning(&mut self, pkg: PkgId, parent: Option<PkgId>) {
        let repos = self.u.pkg(pkg).repos;
        match parent {
            Some(parent) => {
                let allowed = self.pkgs[parent as usize].pinning_allowed;
                self.pkgs[pkg as usize].pinning_allowed |= allowed;
            }
            None => {
                let inherit = self.pinning_inherit;
                let preferred = repos & self.tags.repos_of_mask(inherit) != 0;
                let s = &mut self.pkgs[pkg as usize];
                s.pinning_allowed |= inherit;
                s.pinning_preferred = inherit;
                s.tag_preferred = preferred;
            }
        }
        let ok = repos
            & self
                .tags
                .repos_of_mask(self.pkgs[pkg as usize].pinning_allowed)
            != 0;
        self.pkgs[pkg as usize].tag_ok |= ok;
    }

    fn apply_constraint(&mut self, parent: Option<PkgId>, dep: &Atom<'a>) {
        let u = self.u;
        let name = dep.name;
        if !dep.conflict {
            self.names[name as usize].requirers += 1;
            if self.names[name as usize].requirers == 1 {
                self.name_requirers_changed(name);
            }
        }
        for p in u.providers(name) {
            let provided = u.is_provided(dep, Some(p.pkg), p.version);
            let s = &mut self.pkgs[p.pkg as usize];
            s.conflicts += u32::from(!provided);
            if s.selectable && s.conflicts > 0 {
                self.disqualify(p.pkg, Disqualified::ConflictingDependency);
            }
            if provided {
                self.inherit_pinning(p.pkg, parent);
            }
        }
    }

    /// Everything providing `name` must also provide `must_provide`: disqualify the
    /// providers of `name` that do not.
    fn exclude_non_providers(&mut self, name: NameId, must_provide: NameId, skip_virtuals: bool) {
        if name == must_provide {
            return;
        }
        let u = self.u;
        for p in u.providers(name) {
            if u.pkg(p.pkg).name == must_provide
                || !self.pkgs[p.pkg as usize].selectable
                || (skip_virtuals && p.version.is_none())
            {
                continue;
            }
            let exempt = u
                .provides(p.pkg)
                .iter()
                .any(|d| d.name == must_provide || (skip_virtuals && d.version.is_none()));
            if !exempt {
                self.disqualify(p.pkg, Disqualified::ProvidesTransitivity);
            }
        }
    }

    /// apk's merge counter: advances only when every earlier candidate advanced it.
    fn merge_index(counter: &mut u32, num_options: u32) -> bool {
        if *counter != num_options {
            return false;
        }
        *counter = num_options + 1;
        true
    }

    fn merge_index_complete(counter: &mut u32, num_options: u32) -> bool {
        let all = *counter == num_options;
        *counter = 0;
        all
    }

    fn reconsider_name(&mut self, name: NameId) {
        let u = self.u;
        let (reevaluate_deps, reevaluate_iif) = {
            let s = &mut self.names[name as usize];
            let r = (s.reevaluate_deps, s.reevaluate_iif);
            s.reevaluate_deps = false;
            s.reevaluate_iif = false;
            r
        };
        let requirers = self.names[name as usize].requirers;
        let mut first_candidate: Option<PkgId> = None;
        let (mut num_options, mut num_tag_not_ok) = (0u32, 0u32);
        let (mut has_iif, mut no_iif) = (false, true);

        for p in u.providers(name) {
            let pkg = p.pkg;
            self.pkgs[pkg as usize].dependencies_merged = false;
            if reevaluate_deps {
                if !self.pkgs[pkg as usize].selectable {
                    continue;
                }
                let broken = u
                    .depends(pkg)
                    .iter()
                    .position(|d| !self.dependency_satisfiable(d));
                if let Some(i) = broken {
                    self.disqualify(
                        pkg,
                        Disqualified::DependencyUnsatisfiable {
                            dep_index: i as u32,
                        },
                    );
                }
            }
            if !self.pkgs[pkg as usize].selectable {
                continue;
            }
            if reevaluate_iif {
                let s = &self.pkgs[pkg as usize];
                if !s.iif_triggered && !s.iif_failed {
                    let (mut triggered, mut failed) = (true, false);
                    for d in u.install_if(pkg) {
                        let n = &self.names[d.name as usize];
                        if !n.locked {
                            triggered = false;
                            failed = false;
                            break;
                        }
                        if !u.is_provided(d, n.chosen_pkg, n.chosen_version) {
                            triggered = false;
                            failed = true;
                            break;
                        }
                    }
                    let s = &mut self.pkgs[pkg as usize];
                    s.iif_triggered = triggered;
                    s.iif_failed = failed;
                }
                if self.pkgs[pkg as usize].iif_triggered {
                    for d in u.install_if(pkg) {
                        let parent = self.names[d.name as usize].chosen_pkg;
                        self.inherit_pinning(pkg, parent);
                    }
                }
            }
            let s = &self.pkgs[pkg as usize];
            has_iif |= s.iif_triggered;
            no_iif &= s.iif_failed;

            if requirers == 0 {
                continue;
            }
            self.pkgs[pkg as usize].dependencies_merged = true;
            first_candidate.get_or_insert(pkg);
            for d in u.depends(pkg) {
                if !d.conflict {
                    Self::merge_index(&mut self.names[d.name as usize].merge_depends, num_options);
                }
            }
            let own = &mut self.names[u.pkg(pkg).name as usize];
            if Self::merge_index(&mut own.merge_provides, num_options) {
                own.has_virtual_provides |= p.version.is_none();
            }
            for d in u.provides(pkg) {
                let n = &mut self.names[d.name as usize];
                if Self::merge_index(&mut n.merge_provides, num_options) {
                    n.has_virtual_provides |= d.version.is_none();
                }
            }
            num_tag_not_ok += u32::from(!self.pkgs[pkg as usize].tag_ok);
            num_options += 1;
        }
        {
            let s = &mut self.names[name as usize];
            s.has_options = num_options > 1 || num_tag_not_ok > 0;
            s.has_iif = has_iif;
            s.no_iif = no_iif;
        }
        self.queue_unresolved(name);

        if let Some(pkg) = first_candidate {
            for p in u.providers(name) {
                let s = &mut self.pkgs[p.pkg as usize];
                s.dependencies_used = s.dependencies_merged;
            }
            if num_options == 1 {
                for d in u.depends(pkg) {
                    if Self::merge_index_complete(
                        &mut self.names[d.name as usize].merge_depends,
                        num_options,
                    ) {
                        self.apply_constraint(Some(pkg), d);
                    }
                }
            } else {
                for d in u.depends(pkg) {
                    let n0 = d.name;
                    if Self::merge_index_complete(
                        &mut self.names[n0 as usize].merge_depends,
                        num_options,
                    ) && self.names[n0 as usize].requirers == 0
                    {
                        // Every candidate needs n0: it is required whatever is chosen.
                        self.names[n0 as usize].requirers += 1;
                        self.name_requirers_changed(n0);
                        for p in u.providers(n0) {
                            self.inherit_pinning(p.pkg, Some(pkg));
                        }
                    }
                }
            }
            let own = u.pkg(pkg).name;
            let s = &mut self.names[own as usize];
            if Self::merge_index_complete(&mut s.merge_provides, num_options) {
                let skip = s.has_virtual_provides;
                self.exclude_non_providers(own, name, skip);
            }
            for d in u.provides(pkg) {
                let s = &mut self.names[d.name as usize];
                if Self::merge_index_complete(&mut s.merge_provides, num_options) {
                    let skip = s.has_virtual_provides;
                    self.exclude_non_providers(d.name, name, skip);
                }
            }
            self.names[own as usize].has_virtual_provides = false;
            for d in u.provides(pkg) {
                self.names[d.name as usize].has_virtual_provides = false;
            }
        }

        let done = self.rdepends(name).iter().all(|&n| {
            let s = &self.names[n as usize];
            !s.seen || s.locked
        });
        self.names[name as usize].reverse_deps_done = done;
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
            match crate::version::compare(ua.src.version.as_str(), ub.src.version.as_str()) {
                std::cmp::Ordering::Less => return -1,
                std::cmp::Ordering::Greater => return 1,
                std::cmp::Ordering::Equal => {}
            }
        }
        let prio = |p: &crate::index::Package| i64::from(p.provider_priority.unwrap_or(0));
        let r = prio(ua.src) - prio(ub.src);
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
        self.assign_name(p.name, Some(pkg), Some(p.src.version.as_str()));
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
        let repos = self.u.pkg(pkg).repos;
        self.tags
            .allowed_repos
            .iter()
            .enumerate()
            .take(32)
            .find(|(i, r)| allowed & (1 << i) != 0 && *r & repos != 0)
            .map_or(0, |(i, _)| i)
    }

    /// Records `pkg` as in error (used by the change-set pass).
    pub(crate) fn mark_broken(&mut self, pkg: PkgId, why: Broken) {
        self.mark_error(Some(pkg), why);
    }
}
