//! The change set: apk's `generate_changeset` (solver.c), which decides what is
//! installed, kept, upgraded and removed, and in which order `apk` commits it.
//!
//! From each world entry (sorted by name), depth first: a package is listed after its
//! dependencies, then the install_if packages its arrival completes follow it. A name is
//! entered once, so a dependency cycle is cut where the walk first re-enters it, exactly as
//! apk cuts it. Installed packages take part as in apk: one no longer required (nothing
//! installed or chosen depends on it) is removed, together with the installed packages
//! that depend on it; a removal is listed where the walk meets it, which is why removals
//! can precede installs. The walk also checks every chosen package's dependencies against
//! what was chosen and marks violations as errors.
//!
//! The walk recurses as apk's does; its depth is bounded by the longest dependency chain.

use super::solver::{Broken, Solver, WorldAtom};
use super::universe::{Atom, NameId, PkgId};

struct Walk<'s, 'u, 'a> {
    s: &'s mut Solver<'u, 'a>,
    /// Per name, the installed package of that name.
    installed_pkg: Vec<Option<PkgId>>,
    /// Per name, the installed package's name that answers to it (own name or a
    /// versioned provide).
    installed_name: Vec<Option<NameId>>,
    /// Per name, how many installed-or-chosen packages depend on it (apk resets the
    /// solver's counter and reuses it; this walk keeps its own).
    requirers: Vec<i64>,
}

/// Fills `solver.changeset` (and `solver.changes`, the new packages) in commit order.
pub(crate) fn generate(solver: &mut Solver<'_, '_>, world: &[WorldAtom<'_>]) {
    let u = solver.u;
    let names = u.name_count();
    let mut w = Walk {
        s: solver,
        installed_pkg: vec![None; names],
        installed_name: vec![None; names],
        requirers: vec![0; names],
    };
    let installed: Vec<PkgId> = (0..u.pkgs.len() as PkgId)
        .filter(|&p| u.pkg(p).installed)
        .collect();
    for &p in &installed {
        let name = u.pkg(p).name;
        w.installed_pkg[name as usize] = Some(p);
        w.installed_name[name as usize] = Some(name);
        for d in u.provides(p) {
            if d.version.is_some() {
                w.installed_name[d.name as usize] = Some(name);
            }
        }
    }
    for &p in &installed {
        w.track_deps_added(p);
    }
    for &p in &installed {
        w.check_removal_by_deps(p);
    }
    for atom in world {
        w.gen_dep(None, 0, &atom.atom);
    }
    for &p in &installed {
        w.gen_name_change(u.pkg(p).name);
    }
    let changes: Vec<PkgId> = w.s.changeset.iter().filter_map(|c| c.1).collect();
    w.s.changes = changes;
}

impl Walk<'_, '_, '_> {
    fn chosen(&self, name: NameId) -> Option<PkgId> {
        self.s.names[name as usize].chosen_pkg
    }

    fn in_changeset(&self, name: NameId) -> bool {
        self.s.names[name as usize].in_changeset
    }

    fn gen_dep(&mut self, parent: Option<PkgId>, dep_index: u32, dep: &Atom<'_>) {
        let (cp, cv) = self.s.chosen(dep.name);
        if !self.s.u.is_provided(dep, cp, cv) {
            if let Some(parent) = parent {
                self.s
                    .mark_broken(parent, Broken::UnfulfilledDependency { dep_index });
            }
        }
        self.gen_name_change(dep.name);
        if let (Some(parent), Some(child)) = (parent, cp) {
            if self.s.pkgs[child as usize].error.is_some() {
                self.s.mark_broken(parent, Broken::Propagated { dep_index });
            }
        }
    }

    fn gen_name_change(&mut self, name: NameId) {
        let u = self.s.u;
        if self.in_changeset(name) {
            return;
        }
        self.remove_orphan(name);
        let Some(pkg) = self.chosen(name) else { return };
        if self.s.pkgs[pkg as usize].in_changeset {
            return;
        }
        self.s.pkgs[pkg as usize].in_changeset = true;
        self.remove_orphan(u.pkg(pkg).name);
        for d in u.provides(pkg) {
            self.remove_orphan(d.name);
        }
        let old = self.installed_pkg[u.pkg(pkg).name as usize];
        if let Some(old) = old {
            self.by_reverse_iif(old, Walk::check_removal_by_iif);
        }
        for (i, d) in u.depends(pkg).iter().enumerate() {
            self.gen_dep(Some(pkg), i as u32, d);
        }
        self.s.changeset.push((old, Some(pkg)));
        self.by_reverse_iif(pkg, Walk::check_install_by_iif);
        self.track_deps_added(pkg);
        if let Some(old) = old {
            self.track_deps_removed(old);
        }
    }

    /// The name is settled: a package of another name that provided it before, or an
    /// installed provider whose own name ends up without a package, goes.
    fn remove_orphan(&mut self, name: NameId) {
        let u = self.s.u;
        if self.in_changeset(name) {
            return;
        }
        self.s.names[name as usize].in_changeset = true;
        if let Some(old) = self.installed_pkg[name as usize] {
            if self.chosen(name).is_none_or(|c| u.pkg(c).name != name) {
                self.gen_name_remove(old);
            }
        }
        for p in u.providers(name) {
            let name0 = u.pkg(p.pkg).name;
            if self.installed_pkg[name0 as usize] == Some(p.pkg) && self.chosen(name0).is_none() {
                self.gen_name_remove(p.pkg);
            }
        }
    }

    fn gen_name_remove(&mut self, pkg: PkgId) {
        let u = self.s.u;
        let name = u.pkg(pkg).name;
        if self.s.pkgs[pkg as usize].in_changeset
            || self.chosen(name).is_some_and(|c| u.pkg(c).name == name)
        {
            return;
        }
        self.s.names[name as usize].in_changeset = true;
        self.s.pkgs[pkg as usize].in_changeset = true;
        // Installed packages whose dependencies this package satisfied go too.
        let own = std::iter::once(name).chain(u.provides(pkg).iter().map(|d| d.name));
        let names: Vec<NameId> = own.collect();
        for n in names {
            for &name0 in u.rdepends(n) {
                for p0 in u.providers(name0) {
                    if !u.pkg(p0.pkg).installed {
                        continue;
                    }
                    for d0 in u.depends(p0.pkg) {
                        if self.satisfies(d0, pkg) {
                            self.gen_name_remove(p0.pkg);
                        }
                    }
                }
            }
        }
        self.by_reverse_iif(pkg, Walk::check_removal_by_iif);
        self.s.changeset.push((Some(pkg), None));
        self.track_deps_removed(pkg);
    }

    /// apk's `apk_dep_analyze(dep, pkg) == APK_DEP_SATISFIES`.
    fn satisfies(&self, dep: &Atom<'_>, pkg: PkgId) -> bool {
        let u = self.s.u;
        let p = u.pkg(pkg);
        if dep.name == p.name {
            return u.is_provided(dep, Some(pkg), Some(p.src.version));
        }
        match u.provides(pkg).iter().find(|d| d.name == dep.name) {
            Some(d) => u.is_provided(dep, Some(pkg), d.version),
            None => false,
        }
    }

    fn by_reverse_iif(&mut self, pkg: PkgId, check: fn(&mut Self, NameId)) {
        let u = self.s.u;
        for &n in u.rinstall_if(u.pkg(pkg).name) {
            check(self, n);
        }
        for d in u.provides(pkg) {
            for &n in u.rinstall_if(d.name) {
                check(self, n);
            }
        }
    }

    fn check_install_by_iif(&mut self, name: NameId) {
        let u = self.s.u;
        let Some(pkg) = self.chosen(name) else { return };
        let s = &self.s.names[name as usize];
        if !s.seen || s.in_changeset {
            return;
        }
        let complete = u.install_if(pkg).iter().all(|d| {
            let (cp, cv) = self.s.chosen(d.name);
            self.in_changeset(d.name) && u.is_provided(d, cp, cv)
        });
        if complete {
            self.gen_name_change(name);
        }
    }

    fn check_removal_by_iif(&mut self, name: NameId) {
        let u = self.s.u;
        let Some(pkg) = self.installed_pkg[name as usize] else {
            return;
        };
        if self.in_changeset(name) || self.chosen(name).is_some() {
            return;
        }
        if u.install_if(pkg)
            .iter()
            .any(|d| self.in_changeset(d.name) && self.chosen(d.name).is_none())
        {
            self.check_removal_by_deps(pkg);
        }
    }

    fn check_removal_by_deps(&mut self, pkg: PkgId) {
        let name = self.s.u.pkg(pkg).name;
        if self.requirers[name as usize] == 0 && self.chosen(name).is_none() {
            self.gen_name_remove(pkg);
        }
    }

    fn track_deps_added(&mut self, pkg: PkgId) {
        for d in self.s.u.depends(pkg) {
            if d.conflict {
                continue;
            }
            if let Some(n) = self.installed_name[d.name as usize] {
                self.requirers[n as usize] += 1;
            }
        }
    }

    fn track_deps_removed(&mut self, pkg: PkgId) {
        for d in self.s.u.depends(pkg) {
            if d.conflict {
                continue;
            }
            let Some(n) = self.installed_name[d.name as usize] else {
                continue;
            };
            self.requirers[n as usize] -= 1;
            if self.requirers[n as usize] > 0 {
                continue;
            }
            if let Some(old) = self.installed_pkg[d.name as usize] {
                self.gen_name_remove(old);
            }
        }
    }
}
