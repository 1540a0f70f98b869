//! The resolver: world + indexes -> the ordered install plan apk would choose.
//!
//! [`resolve`] reproduces apk-tools 2.14's `apk add` on an empty root: the same package
//! set and the same install order (dependencies first; `(i/N) Installing` order). apk's
//! solver never backtracks and breaks ties by the order it meets things in, so matching
//! it takes its exact rules *and* its visiting order; the submodules say how:
//!
//! - `universe`: the name table (providers, reverse edges in apk's hash-table order);
//! - `solver`: propagation and decisions, with apk's provider preference;
//! - `changeset`: the install order walk (and its dependency checks);
//! - `explain`: what went wrong, when nothing can be chosen.
//!
//! One deliberate difference: a package marked uninstallable by the index (an unknown
//! upper-case field) or built for another architecture is never selected (apk 3's rule);
//! apk 2.14 would select it and fail later.

mod changeset;
mod explain;
mod list;
mod solver;
mod universe;

pub use explain::{Problem, ProblemKind};

use crate::index::{Dependency, Package, ParsedIndex};
use solver::{Solver, Tags, WorldAtom};
use universe::prune::Pruned;
use universe::{PkgId, Source, Universe, MAX_REPOS};

/// How to resolve, besides the packages and the request.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// The tag of each repository, by position (`Some("edge")` for an `@edge` line, with
    /// or without the `@`). Packages only found in tagged repositories are eligible only
    /// for world entries naming that tag (`name@edge`) and their dependencies. Positions
    /// past the end of the list are untagged.
    pub repo_tags: Vec<Option<String>>,
    /// The target architecture. When given, packages whose `A:` is neither it nor
    /// `noarch` are never selected.
    pub arch: Option<String>,
}

/// The install plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Packages to install, in install order (dependencies first). A package listed by
    /// several repositories (same `C:`) appears once, as the copy of the lowest
    /// repository position.
    pub packages: Vec<Package>,
    /// For each package of [`Plan::packages`], the repository tag it is pinned to
    /// (without `@`), `None` for the untagged repositories. apk records it in the
    /// installed database (`s:`) and shows it (`Installing foo@edge (1.0-r0)`).
    pub pinned_tags: Vec<Option<String>>,
}

/// Why a request cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A world entry is pinned to a tag that no repository carries.
    #[error(
        "the request `{request}` asks for repository tag `@{tag}`, but no repository is tagged \
         `@{tag}`; tag one (`@{tag} URL` in the repositories file) or drop `@{tag}` from the request"
    )]
    UnknownTag {
        /// The world entry as written.
        request: String,
        /// The tag, without `@`.
        tag: String,
    },
    /// A package claims a repository position beyond what the resolver can represent.
    #[error(
        "package `{package}` comes from repository position {repo}, but at most {max} \
         repositories are supported; use fewer repositories"
    )]
    TooManyRepositories {
        /// `name-version` of the package.
        package: String,
        /// Its repository position.
        repo: usize,
        /// The limit.
        max: usize,
    },
    /// A planned package's index entry did not read back whole (a damaged parsed form).
    #[error(
        "the index entry of `{package}` cannot be read again; run `sysroot-mk cache clean` \
         or pass `--no-cache`"
    )]
    Unreadable {
        /// `name-version` of the package.
        package: String,
    },
    /// No consistent choice exists; each problem names a request or package and why.
    #[error("unable to select packages:\n{}", explain::render(.problems))]
    Unsatisfiable {
        /// What failed, world entries first.
        problems: Vec<Problem>,
    },
}

/// Resolves `world` against `packages` as `apk add` on an empty root would.
///
/// `packages` is every repository's index concatenated in repository order, each
/// index in its own order, with [`Package::repo`] the repository's position. Positions
/// follow the repositories *file* (`etc/apk/repositories`, first line = 0, preferred
/// on ties). Note that apk itself loads repeated `--repository` options in reverse
/// order, so `apk --repository A --repository B` ranks B first; a caller imitating
/// that spelling must number accordingly. Order matters beyond ties: apk visits
/// names in an order derived from the order it first read them.
///
/// `world` is the request (`apk add` arguments, or `etc/apk/world`); a later entry for a
/// name replaces an earlier one. The plan lists each package once, dependencies first.
pub fn resolve(
    packages: &[Package],
    world: &[Dependency],
    opts: &ResolveOptions,
) -> Result<Plan, ResolveError> {
    plan_of(solve(
        &[Source::Packages(packages)],
        world,
        opts,
        &InstalledState::default(),
    )?)
}

/// [`resolve`] over checked indexes read in place, each with its repository position
/// (what [`Package::repo`] would hold), in repository order: what a build uses, since
/// it makes [`Package`]s only of the packages planned.
pub fn resolve_indexes(
    indexes: &[(&ParsedIndex, usize)],
    world: &[Dependency],
    opts: &ResolveOptions,
) -> Result<Plan, ResolveError> {
    let sources: Vec<Source<'_>> = indexes
        .iter()
        .map(|&(index, repo)| Source::Index(index, repo))
        .collect();
    plan_of(solve(&sources, world, opts, &InstalledState::default())?)
}

fn plan_of(
    (changes, pinned_tags): (Vec<Change>, Vec<Option<String>>),
) -> Result<Plan, ResolveError> {
    Ok(Plan {
        packages: changes.into_iter().filter_map(|c| c.new).collect(),
        pinned_tags,
    })
}

/// What a root already holds, for [`resolve_update`].
#[derive(Debug, Clone, Default)]
pub struct InstalledState {
    /// The installed packages in apk's installed-list order (that of `lib/apk/db/installed`).
    pub packages: Vec<Package>,
    /// Per installed package, the repository tag it was installed under (`s:`).
    pub tags: Vec<Option<String>>,
    /// The names of the root's `etc/apk/world`, in file order (apk reads them first).
    pub world_names: Vec<String>,
    /// `apk upgrade`: prefer the newest version over the installed one.
    pub upgrade: bool,
}

/// One step of an update, as apk commits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The installed package it replaces or removes: its position in
    /// [`InstalledState::packages`].
    pub old: Option<usize>,
    /// The package installed or kept; `None` for a removal.
    pub new: Option<Package>,
    /// The repository tag the new package is pinned to (without `@`).
    pub new_tag: Option<String>,
}

impl Change {
    /// Whether the change keeps the installed package as it is (same package, same tag).
    pub fn is_noop(&self, installed: &InstalledState) -> bool {
        match (self.old, &self.new) {
            (Some(old), Some(new)) => {
                installed.packages[old].checksum == new.checksum
                    && installed.tags[old] == self.new_tag
            }
            _ => false,
        }
    }
}

/// Resolves `world` for a root holding `installed`, as `apk add`/`del`/`upgrade` would:
/// every change in apk's commit order, kept packages included (see [`Change::is_noop`]).
pub fn resolve_update(
    packages: &[Package],
    world: &[Dependency],
    opts: &ResolveOptions,
    installed: &InstalledState,
) -> Result<Vec<Change>, ResolveError> {
    Ok(solve(&[Source::Packages(packages)], world, opts, installed)?.0)
}

/// Planned packages read again on one thread at most; more are read on all cores.
const PARALLEL_READS: usize = 100;

/// Stack for the change-set walk, which recurses as deep as the longest dependency chain
/// (two frames per link): reserved, not committed, so only a hostile index uses it.
const SOLVE_STACK: usize = 1 << 30;

type Solved = Result<(Vec<Change>, Vec<Option<String>>), ResolveError>;

fn solve(
    packages: &[Source<'_>],
    world: &[Dependency],
    opts: &ResolveOptions,
    installed: &InstalledState,
) -> Solved {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("sysroot-mk-resolve".into())
            .stack_size(SOLVE_STACK)
            .spawn_scoped(scope, || solve_here(packages, world, opts, installed, true));
        match worker {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had: this one's stack serves ordinary indexes.
            Err(_) => solve_here(packages, world, opts, installed, true),
        }
    })
}

/// `narrow`: build the name table of the packages the world reaches only, where that
/// resolves alike (a fresh root).
fn solve_here(
    packages: &[Source<'_>],
    world_in: &[Dependency],
    opts: &ResolveOptions,
    installed: &InstalledState,
    narrow: bool,
) -> Solved {
    if let Some((package, repo)) = universe::first_beyond(packages, MAX_REPOS) {
        return Err(ResolveError::TooManyRepositories {
            package,
            repo,
            max: MAX_REPOS,
        });
    }
    let tags = repository_tags(packages, opts);
    let world = world_in_apk_order(world_in);
    let mut tag_of = Vec::with_capacity(world.len());
    for dep in &world {
        tag_of.push(world_tag(dep, &tags)?);
    }
    // A tag no repository carries any more counts as untagged.
    let tag_id = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| tags.names.iter().position(|n| n == t))
            .unwrap_or(0)
    };
    let seed = universe::Installed {
        world_names: installed.world_names.iter().map(String::as_str).collect(),
        packages: &installed.packages,
        tags: installed.tags.iter().map(tag_id).collect(),
    };
    // A fresh root needs only what its world reaches (see `universe::prune`).
    let fresh = installed.packages.is_empty() && installed.world_names.is_empty();
    let pruned = if fresh && narrow {
        let names: Vec<&str> = world.iter().map(|d| d.name.as_str()).collect();
        Pruned::new(packages, &names)
    } else {
        None
    };
    let narrowed = pruned.as_ref().map(Pruned::sources);
    let mut u = match &narrowed {
        Some(sources) => Universe::build_distinct(sources, opts.arch.as_deref()),
        None => Universe::build_installed(&seed, packages, opts.arch.as_deref()),
    };
    let atoms: Vec<_> = world.iter().map(|d| u.atom(d.into())).collect();
    if let Some(pruned) = &pruned {
        u.set_creation_order(|text, local| pruned.creation_key(text, local));
    }
    let world_atoms: Vec<WorldAtom<'_>> = atoms
        .into_iter()
        .zip(tag_of)
        .map(|(atom, tag)| WorldAtom { atom, tag })
        .collect();

    let mut solver = Solver::new(
        &u,
        Tags {
            allowed_repos: tags.allowed_repos,
        },
    );
    solver.upgrade = installed.upgrade;
    solver.solve(&world_atoms);
    if solver.errors > 0 {
        // The explanation walks reverse dependencies the narrowed table lacks.
        if pruned.is_some() {
            return solve_here(packages, world_in, opts, installed, false);
        }
        return Err(ResolveError::Unsatisfiable {
            problems: explain::problems(&solver, &world_atoms, opts.arch.as_deref(), &tags.names),
        });
    }
    let position: std::collections::HashMap<&str, usize> = installed
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.checksum.as_str(), i))
        .collect();
    let tag_name = |p: PkgId| match solver.pinned_tag(p) {
        0 => None,
        id => Some(tags.names[id].clone()),
    };
    // Each planned package is read again out of its index text (518 for gnome, ~4 ms):
    // on both cores, idle now.
    let records: Vec<Option<universe::Record<'_>>> = solver
        .changeset
        .iter()
        .map(|&(_, new)| new.map(|n| u.pkg(n).src))
        .collect();
    let read_one = |record: Option<universe::Record<'_>>| record.map(universe::Record::to_package);
    // A few dozen (alpine-base: 25, ~0.2 ms) are read on this thread: starting the
    // pool for them would cost more than it saves.
    let read: Vec<Option<Option<Package>>> = if records.len() > PARALLEL_READS {
        use rayon::prelude::*;
        records.into_par_iter().map(read_one).collect()
    } else {
        records.into_iter().map(read_one).collect()
    };
    let mut changes = Vec::with_capacity(solver.changeset.len());
    for (&(old, new), package) in solver.changeset.iter().zip(read) {
        let new_package = match (new, package) {
            (Some(n), Some(package)) => Some(package.ok_or_else(|| ResolveError::Unreadable {
                package: u.pkg_label(n),
            })?),
            _ => None,
        };
        changes.push(Change {
            old: old.and_then(|o| position.get(u.pkg(o).src.checksum).copied()),
            new: new_package,
            new_tag: new.and_then(tag_name),
        });
    }
    let pinned = solver.changes.iter().map(|&p| tag_name(p)).collect();
    Ok((changes, pinned))
}

/// Repository tag ids as apk numbers them: 0 for untagged, then each tag in order of
/// first appearance; and the repositories each allows (bit `position + 1`).
struct RepoTags {
    names: Vec<String>,
    allowed_repos: Vec<u64>,
}

fn repository_tags(packages: &[Source<'_>], opts: &ResolveOptions) -> RepoTags {
    let mut t = RepoTags {
        names: vec![String::new()],
        allowed_repos: vec![0],
    };
    let repos = universe::max_repo(packages)
        .map_or(0, |r| r + 1)
        .max(opts.repo_tags.len())
        .min(MAX_REPOS);
    for pos in 0..repos {
        let tag = opts
            .repo_tags
            .get(pos)
            .and_then(|t| t.as_deref())
            .map(|t| t.trim_start_matches('@'))
            .filter(|t| !t.is_empty());
        let id = match tag {
            None => 0,
            Some(tag) => match t.names.iter().position(|n| n == tag) {
                Some(id) => id,
                None => {
                    t.names.push(tag.to_owned());
                    t.allowed_repos.push(0);
                    t.names.len() - 1
                }
            },
        };
        t.allowed_repos[id] |= 1u64 << (pos + 1);
    }
    t
}

/// The tag id a world entry is pinned to.
fn world_tag(dep: &Dependency, tags: &RepoTags) -> Result<usize, ResolveError> {
    let Some(tag) = dep.tag.as_deref() else {
        return Ok(0);
    };
    let tag = tag.trim_start_matches('@');
    match tags.names.iter().position(|n| n == tag) {
        // apk refuses to commit when a tag allows no repository (and supports 16).
        Some(id) if id < 16 && tags.allowed_repos[id] != 0 => Ok(id),
        _ => Err(ResolveError::UnknownTag {
            request: dep.to_string(),
            tag: tag.to_owned(),
        }),
    }
}

/// The world as apk's solver sees it: a later entry for a name replaces an earlier one
/// in place, then entries are sorted by name, case-insensitively first.
fn world_in_apk_order(world: &[Dependency]) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::with_capacity(world.len());
    let mut slot_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for dep in world {
        match slot_of.get(dep.name.as_str()) {
            Some(&i) => out[i] = dep.clone(),
            None => {
                slot_of.insert(&dep.name, out.len());
                out.push(dep.clone());
            }
        }
    }
    out.sort_by(|a, b| {
        let fold = |s: &str| {
            s.bytes()
                .map(|c| c.to_ascii_lowercase())
                .collect::<Vec<u8>>()
        };
        fold(&a.name)
            .cmp(&fold(&b.name))
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_prune;
#[cfg(test)]
mod tests_update;
