//! Propagation: requirements and conflicts flow down to providers, candidates that can
//! no longer work are disqualified, and what all remaining candidates of a name share
//! is applied before the name is decided (apk's `apply_constraint`, `reconsider_name`).

use super::{Broken, Disqualified, Solver};
use crate::resolve::universe::{Atom, NameId, PkgId};

impl<'a> Solver<'_, 'a> {
    // ----- constraints -------------------------------------------------------------

    pub(super) fn mark_error(&mut self, pkg: Option<PkgId>, why: Broken) {
        let Some(pkg) = pkg else { return };
        let s = &mut self.pkgs[pkg as usize];
        if s.error.is_some() {
            return;
        }
        s.error = Some(why);
        self.errors += 1;
    }

    pub(super) fn disqualify(&mut self, pkg: PkgId, why: Disqualified) {
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
    pub(crate) fn chosen(&self, name: NameId) -> (Option<PkgId>, Option<&'a str>) {
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
        let repos = self.pkg_repos(pkg);
        match parent {
            Some(parent) => {
                let allowed = self.pkgs[parent as usize].pinning_allowed;
                let upgrade = self.pkgs[parent as usize].upgrade_inheritable;
                let s = &mut self.pkgs[pkg as usize];
                s.pinning_allowed |= allowed;
                s.upgrade |= upgrade;
                s.upgrade_inheritable |= upgrade;
            }
            None => {
                let inherit = self.pinning_inherit;
                let preferred = repos & self.tags.repos_of_mask(inherit) != 0;
                let upgrade = self.upgrade_inherit;
                let s = &mut self.pkgs[pkg as usize];
                s.upgrade |= upgrade;
                s.upgrade_inheritable |= upgrade;
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

    pub(super) fn apply_constraint(&mut self, parent: Option<PkgId>, dep: &Atom<'a>) {
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

    pub(super) fn reconsider_name(&mut self, name: NameId) {
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
}
