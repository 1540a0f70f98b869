//! Turning a failed resolution into reasons a person can act on.
//!
//! apk prints "unable to select packages" followed by terse `breaks:`/`satisfies:` lists.
//! This module reads the same final solver state and says, per failed name or package,
//! what was asked (by the request or by which package), what exists, and why each
//! candidate was rejected.

use std::collections::HashSet;
use std::fmt;

use super::solver::{Broken, Disqualified, Solver, WorldAtom};
use super::universe::{Atom, NameId, PkgId};

/// How many candidates a message lists before summarising the rest.
const MAX_LISTED: usize = 8;

/// The kind of a [`Problem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Nothing in any repository has this name or provides it.
    NoSuchName,
    /// Only packages providing it virtually (no version, no priority) exist: one must be
    /// named explicitly.
    VirtualName,
    /// A selected package cannot be installed as required.
    Package,
}

/// One reason the request cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What failed: a name (`so:libfoo.so.1`) or a package (`foo-1.0-r0`).
    pub subject: String,
    /// What kind of failure.
    pub kind: ProblemKind,
    /// One line each: who required it, and why candidates were rejected.
    pub details: Vec<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ProblemKind::NoSuchName => "no such package: no repository has or provides it",
            ProblemKind::VirtualName => "virtual name: its providers give it no version and no provider_priority, so none is chosen automatically; request one of them by name",
            ProblemKind::Package => "cannot be installed",
        };
        write!(f, "`{}`: {what}", self.subject)?;
        for d in &self.details {
            write!(f, "\n    {d}")?;
        }
        Ok(())
    }
}

/// The problems, one per paragraph.
pub(crate) fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads the failed state of `s` into problems: failed names first (those of the
/// request before others), then packages in error in install order.
pub(crate) fn problems(
    s: &Solver<'_, '_>,
    world: &[WorldAtom<'_>],
    arch: Option<&str>,
    tag_names: &[String],
) -> Vec<Problem> {
    let cx = Context {
        s,
        world,
        arch,
        tag_names,
    };
    let mut out = Vec::new();
    let mut done: HashSet<NameId> = HashSet::new();
    let missing: HashSet<NameId> = s.missing.iter().copied().collect();
    for w in world {
        if !w.atom.conflict && missing.contains(&w.atom.name) && done.insert(w.atom.name) {
            out.push(cx.missing_name(w.atom.name));
        }
    }
    for &n in &s.missing {
        if done.insert(n) {
            out.push(cx.missing_name(n));
        }
    }
    let in_plan: HashSet<PkgId> = s.changes.iter().copied().collect();
    let broken = s
        .changes
        .iter()
        .copied()
        .chain((0..s.pkgs.len() as PkgId).filter(|p| !in_plan.contains(p)))
        .filter(|&p| s.pkgs[p as usize].error.is_some());
    let mut reported = HashSet::new();
    for p in broken {
        reported.insert(p);
        out.push(cx.broken_package(p));
    }
    // As apk, also name every package of the change set that breaks a requirement on
    // it, though the solver flagged the requirer (`core-4.0` for `mid-1[core<4.0]`).
    for &p in &s.changes {
        if !reported.contains(&p) && !cx.requirements_of(p).0.is_empty() {
            out.push(cx.broken_package(p));
        }
    }
    if out.is_empty() {
        out.push(Problem {
            subject: "request".to_owned(),
            kind: ProblemKind::Package,
            details: vec![format!(
                "the solver found {} inconsistencies but no single broken constraint; \
                 please report this request",
                s.errors
            )],
        });
    }
    out
}

struct Context<'c, 's, 'u, 'a> {
    s: &'c Solver<'u, 'a>,
    world: &'c [WorldAtom<'s>],
    arch: Option<&'c str>,
    tag_names: &'c [String],
}

impl Context<'_, '_, '_, '_> {
    fn label(&self, p: PkgId) -> String {
        self.s.u.pkg_label(p)
    }

    /// Requirements on `name`: world entries, then dependencies of the packages chosen
    /// for the names that depend on it. Each as `who[atom]` with the atom.
    fn requirements(&self, name: NameId) -> Vec<(String, Atom<'_>)> {
        let u = self.s.u;
        let mut out = Vec::new();
        for w in self.world {
            if w.atom.name == name {
                out.push((format!("world[{}]", u.dep_of(&w.atom)), w.atom));
            }
        }
        let mut seen = HashSet::new();
        for &n in u.rdepends(name) {
            let Some(p) = self.s.names[n as usize].chosen_pkg else {
                continue;
            };
            if !seen.insert(p) {
                continue;
            }
            for d in u.depends(p) {
                if d.name == name {
                    out.push((format!("{}[{}]", self.label(p), u.dep_of(d)), *d));
                }
            }
        }
        out
    }

    fn required_by_line(&self, name: NameId) -> Option<String> {
        let reqs: Vec<String> = self
            .requirements(name)
            .into_iter()
            .filter(|(_, a)| !a.conflict)
            .map(|(who, _)| who)
            .collect();
        (!reqs.is_empty()).then(|| format!("required by: {}", reqs.join(" ")))
    }

    fn missing_name(&self, name: NameId) -> Problem {
        let u = self.s.u;
        let providers = u.providers(name);
        let mut details: Vec<String> = self.required_by_line(name).into_iter().collect();
        // A required name ends up without a provider only when it has none, or when
        // all of them provide it virtually without a provider_priority (the solver
        // never picks such a provider on its own).
        let kind = if providers.is_empty() {
            ProblemKind::NoSuchName
        } else {
            let names: Vec<String> = providers
                .iter()
                .map(|p| u.text(u.pkg(p.pkg).name).to_owned())
                .collect();
            details.push(format!("provided by: {}", list(&names)));
            ProblemKind::VirtualName
        };
        Problem {
            subject: u.text(name).to_owned(),
            kind,
            details,
        }
    }

    fn not_installable(&self, pkg: PkgId) -> Option<String> {
        let src = &self.s.u.pkg(pkg).src;
        if src.uninstallable {
            return Some(
                "it is marked uninstallable: its index entry has a field this resolver \
                 does not know (a newer package format)"
                    .to_owned(),
            );
        }
        if !self.s.u.pkg(pkg).installable {
            return Some(format!(
                "it is built for architecture `{}`, not `{}`",
                src.arch,
                self.arch.unwrap_or("?")
            ));
        }
        None
    }

    /// When pinning keeps `pkg` out: the tags of the repositories that have it.
    fn pinning(&self, pkg: PkgId) -> Option<String> {
        let ps = &self.s.pkgs[pkg as usize];
        if ps.tag_ok {
            return None;
        }
        let p = self.s.u.pkg(pkg);
        let tags: Vec<String> = self
            .tag_names
            .iter()
            .zip(&self.s.tags.allowed_repos)
            .skip(1)
            .filter(|(_, repos)| *repos & p.repos != 0)
            .map(|(t, _)| format!("`{}@{t}`", p.src.name))
            .collect();
        Some(if tags.is_empty() {
            "it is not in any repository allowed for this request".to_owned()
        } else {
            format!(
                "it is only in tagged repositories; request it as {}",
                tags.join(" or ")
            )
        })
    }

    fn disqualified(&self, pkg: PkgId, why: Disqualified) -> String {
        let u = self.s.u;
        match why {
            Disqualified::ConflictingDependency => {
                "it is excluded by a conflicting requirement on one of its names".to_owned()
            }
            Disqualified::DependencyUnsatisfiable { dep_index } => {
                let dep = &u.depends(pkg)[dep_index as usize];
                format!("its dependency `{}` cannot be satisfied", u.dep_of(dep))
            }
            Disqualified::ProvidesTransitivity => {
                "it does not provide a name that every other candidate of a required name provides"
                    .to_owned()
            }
            Disqualified::ConflictingProvides { name } => {
                let taken = self.s.names[name as usize]
                    .chosen_pkg
                    .map(|p| format!("`{}`", self.label(p)))
                    .unwrap_or_else(|| "nothing".to_owned());
                format!(
                    "it provides `{}`, for which {taken} was selected",
                    u.text(name)
                )
            }
        }
    }

    fn broken_package(&self, pkg: PkgId) -> Problem {
        let u = self.s.u;
        let (breaks, satisfies) = self.requirements_of(pkg);
        let shared = self.shared_names(pkg);
        let mut details = Vec::new();
        let mut breaks_said = false;
        match self.s.pkgs[pkg as usize].error {
            Some(Broken::NotSelectable) => {
                let state = &self.s.pkgs[pkg as usize];
                let why = if let Some(why) = self.not_installable(pkg) {
                    why
                } else if !breaks.is_empty() {
                    breaks_said = true;
                    // Name the alternatives, so a pin on a version that is not
                    // there (`busybox=1.36.1-r15`) shows what is.
                    let own = u.pkg(pkg).name;
                    let others: Vec<String> = u
                        .providers(own)
                        .iter()
                        .filter(|p| u.pkg(p.pkg).name == own)
                        .map(|p| self.label(p.pkg))
                        .collect();
                    format!(
                        "it does not satisfy {} (`{}` versions available: {})",
                        breaks.join(" "),
                        u.text(own),
                        list(&others)
                    )
                } else if !shared.is_empty() {
                    String::new()
                } else if let Some(d) = state.disqualified {
                    self.disqualified(pkg, d)
                } else {
                    self.pinning(pkg)
                        .unwrap_or_else(|| "it is no longer eligible".to_owned())
                };
                if !why.is_empty() {
                    details.push(format!("it is the best candidate, but {why}"));
                }
            }
            Some(Broken::UnfulfilledDependency { dep_index }) => {
                let dep = &u.depends(pkg)[dep_index as usize];
                let got = match self.s.names[dep.name as usize].chosen_pkg {
                    Some(p) => {
                        format!("`{}` is selected for `{}`", self.label(p), u.text(dep.name))
                    }
                    None => format!("nothing can be selected for `{}`", u.text(dep.name)),
                };
                details.push(format!("requires `{}`, but {got}", u.dep_of(dep)));
            }
            Some(Broken::Propagated { dep_index }) => {
                let dep = &u.depends(pkg)[dep_index as usize];
                let by = self.s.names[dep.name as usize]
                    .chosen_pkg
                    .map(|p| format!("`{}`", self.label(p)))
                    .unwrap_or_else(|| "nothing".to_owned());
                details.push(format!(
                    "requires `{}`, provided by {by}, which cannot be installed",
                    u.dep_of(dep)
                ));
            }
            // Shared names are listed below for every kind of failure.
            Some(Broken::SameNameProvided { .. }) | None => {}
        }
        details.extend(shared);
        if !breaks.is_empty() && !breaks_said {
            details.push(format!("conflicts with: {}", breaks.join(" ")));
        }
        if !satisfies.is_empty() {
            details.push(format!("required by: {}", list(&satisfies)));
        }
        Problem {
            subject: self.label(pkg),
            kind: ProblemKind::Package,
            details,
        }
    }

    /// The requirements on `pkg`'s names that it breaks, and those it satisfies.
    fn requirements_of(&self, pkg: PkgId) -> (Vec<String>, Vec<String>) {
        let u = self.s.u;
        let (mut breaks, mut satisfies) = (Vec::new(), Vec::new());
        let own = std::iter::once((u.pkg(pkg).name, Some(u.pkg(pkg).src.version)))
            .chain(u.provides(pkg).iter().map(|d| (d.name, d.version)));
        for (name, version) in own {
            for (who, atom) in self.requirements(name) {
                if u.is_provided(&atom, Some(pkg), version) {
                    if !atom.conflict {
                        satisfies.push(who);
                    }
                } else {
                    breaks.push(who);
                }
            }
        }
        (breaks, satisfies)
    }

    /// Versioned names `pkg` provides that another selected package provides too.
    fn shared_names(&self, pkg: PkgId) -> Vec<String> {
        let u = self.s.u;
        let selected: HashSet<PkgId> = self
            .s
            .changes
            .iter()
            .copied()
            .chain(self.s.names.iter().filter_map(|n| n.chosen_pkg))
            .collect();
        let mut names = vec![(u.pkg(pkg).name, true)];
        names.extend(
            u.provides(pkg)
                .iter()
                .map(|d| (d.name, d.version.is_some())),
        );
        let mut out = Vec::new();
        for (name, versioned) in names {
            let mut others: Vec<String> = u
                .providers(name)
                .iter()
                .filter(|p| p.pkg != pkg && selected.contains(&p.pkg))
                .filter(|p| versioned || p.version.is_some())
                .map(|p| format!("`{}`", self.label(p.pkg)))
                .collect();
            others.dedup();
            if !others.is_empty() {
                out.push(format!(
                    "provides `{}`, as does the selected {}; only one package may provide a \
                     versioned name",
                    u.text(name),
                    others.join(", ")
                ));
            }
        }
        out
    }
}

fn list(items: &[String]) -> String {
    if items.len() <= MAX_LISTED {
        return items.join(" ");
    }
    format!(
        "{} ... and {} more",
        items[..MAX_LISTED].join(" "),
        items.len() - MAX_LISTED
    )
}
