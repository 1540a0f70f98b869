//! Install order: apk's change-set walk (`generate_changeset` in solver.c), which is the
//! order `apk add` installs in.
//!
//! For each world entry (sorted by name), depth first: a package is listed after its
//! dependencies, then the install_if packages its arrival completes follow it. A name is
//! entered once, on first visit, so a dependency cycle is cut where the walk first
//! re-enters it (the package reached first is installed last of the cycle), exactly as
//! apk cuts it. The walk also checks every chosen package's dependencies against what
//! was chosen and marks violations as errors.

use super::solver::{Broken, Solver, WorldAtom};
use super::universe::{NameId, PkgId};

enum Frame {
    /// Visiting the dependencies of `pkg`; `waiting` when dependency `di` was entered
    /// and its outcome is still to be checked.
    Deps {
        pkg: PkgId,
        di: usize,
        waiting: bool,
    },
    /// Offering the install_if packages that mention `pkg`'s names (list `li`: 0 for
    /// its own name, then its provides), entry `ki` next.
    Triggers { pkg: PkgId, li: usize, ki: usize },
}

/// Fills `solver.changes` in install order.
pub(crate) fn generate(solver: &mut Solver<'_, '_>, world: &[WorldAtom<'_>]) {
    // Only the requirer counts are reused by apk's walk (for installed packages, of
    // which there are none here), so the solver's flags stay as they are.
    let mut stack: Vec<Frame> = Vec::new();
    for w in world {
        if let Some(pkg) = enter_name(solver, w.atom.name) {
            stack.push(Frame::Deps {
                pkg,
                di: 0,
                waiting: false,
            });
            run(solver, &mut stack);
        }
    }
}

/// Marks `name` visited; returns its chosen package when that still has to be listed.
fn enter_name(solver: &mut Solver<'_, '_>, name: NameId) -> Option<PkgId> {
    let u = solver.u;
    if solver.names[name as usize].in_changeset {
        return None;
    }
    solver.names[name as usize].in_changeset = true;
    let pkg = solver.names[name as usize].chosen_pkg?;
    if solver.pkgs[pkg as usize].in_changeset {
        return None;
    }
    solver.pkgs[pkg as usize].in_changeset = true;
    solver.names[u.pkg(pkg).name as usize].in_changeset = true;
    for p in u.provides(pkg) {
        solver.names[p.name as usize].in_changeset = true;
    }
    Some(pkg)
}

fn run(solver: &mut Solver<'_, '_>, stack: &mut Vec<Frame>) {
    let u = solver.u;
    while let Some(top) = stack.last_mut() {
        match top {
            Frame::Deps { pkg, di, waiting } => {
                let deps = u.depends(*pkg);
                if *waiting {
                    let dep_pkg = solver.names[deps[*di].name as usize].chosen_pkg;
                    if dep_pkg.is_some_and(|d| solver.pkgs[d as usize].error.is_some()) {
                        let parent = *pkg;
                        let dep_index = *di as u32;
                        solver.mark_broken(parent, Broken::Propagated { dep_index });
                    }
                    *waiting = false;
                    *di += 1;
                    continue;
                }
                if *di == deps.len() {
                    let pkg = *pkg;
                    solver.changes.push(pkg);
                    *top = Frame::Triggers { pkg, li: 0, ki: 0 };
                    continue;
                }
                let dep = &deps[*di];
                let (cp, cv) = solver.chosen(dep.name);
                if !u.is_provided(dep, cp, cv) {
                    let parent = *pkg;
                    let dep_index = *di as u32;
                    solver.mark_broken(parent, Broken::UnfulfilledDependency { dep_index });
                }
                *waiting = true;
                if let Some(child) = enter_name(solver, dep.name) {
                    stack.push(Frame::Deps {
                        pkg: child,
                        di: 0,
                        waiting: false,
                    });
                }
            }
            Frame::Triggers { pkg, li, ki } => {
                let provides = u.provides(*pkg);
                if *li > provides.len() {
                    stack.pop();
                    continue;
                }
                let list_name = if *li == 0 {
                    u.pkg(*pkg).name
                } else {
                    provides[*li - 1].name
                };
                let list = u.rinstall_if(list_name);
                if *ki == list.len() {
                    *li += 1;
                    *ki = 0;
                    continue;
                }
                let candidate = list[*ki];
                *ki += 1;
                if install_if_complete(solver, candidate) {
                    if let Some(child) = enter_name(solver, candidate) {
                        stack.push(Frame::Deps {
                            pkg: child,
                            di: 0,
                            waiting: false,
                        });
                    }
                }
            }
        }
    }
}

/// Whether the package chosen for `name` has all its install_if conditions among the
/// names already listed, each satisfied by what was chosen.
fn install_if_complete(solver: &Solver<'_, '_>, name: NameId) -> bool {
    let u = solver.u;
    let s = &solver.names[name as usize];
    let Some(pkg) = s.chosen_pkg else {
        return false;
    };
    if !s.seen || s.in_changeset {
        return false;
    }
    u.install_if(pkg).iter().all(|d| {
        let n = &solver.names[d.name as usize];
        n.in_changeset && u.is_provided(d, n.chosen_pkg, n.chosen_version)
    })
}
