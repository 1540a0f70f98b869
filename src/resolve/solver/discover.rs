//! Discovery: which names and packages take part, and how long their dependency
//! chains are (apk's `discover_name`), before any constraint is applied.

use super::{Solver, DEFAULT_PINNING};
use crate::resolve::universe::{NameId, PkgId};

impl Solver<'_, '_> {
    // ----- discovery ---------------------------------------------------------------

    /// Marks `root` and everything its providers depend on (and the install_if
    /// packages that could trigger from them) as part of the problem, computing the
    /// dependency chain lengths used to order decisions. Iterative: chains can be deep.
    pub(super) fn discover(&mut self, root: NameId) {
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
        let tag_preferred = p.empty || self.pkg_repos(pkg) & self.default_repos != 0;
        let s = &mut self.pkgs[pkg as usize];
        s.seen = true;
        s.pinning_allowed = DEFAULT_PINNING;
        s.pinning_preferred = DEFAULT_PINNING;
        s.selectable = p.installable;
        s.iif_failed = p.install_if.is_empty();
        s.tag_preferred = tag_preferred;
        // An installed package stays allowed whatever its pinning (apk's `ipkg` test).
        s.tag_ok = tag_preferred || p.installed;
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
}
