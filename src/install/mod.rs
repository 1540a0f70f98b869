//! Extracting verified packages into the root, in parallel, never escaping it.
//!
//! Why the work is shaped this way: inflating is cheap (zlib-rs, ~500 MB/s) while every
//! inode costs 0.3-0.6 ms on ext4, so the filesystem writes are what runs in parallel.
//! A package's files are inflated straight into a scratch folder in the root as soon as
//! it is verified (`scratch`, `prefetch`), holding nothing inflated in memory. Each batch
//! is cut into chunks; a chunk is planned sequentially in plan order (apk's ownership,
//! conflict and directory rules: `merge`), then put in place in phases whose jobs are
//! independent: new directories (by depth), files moved from the scratch folder to their
//! final names and symlinks under temporary names, hard links, and renames of the
//! temporary names (later packages win). Phases run on short-lived threads (`workers`),
//! more than the cores, because they mostly wait in the kernel. All writes go through
//! [`RootDir`] (`openat2(RESOLVE_IN_ROOT)`), never through joined host paths.
//!
//! Batches exist because package scripts run between extractions: a `pre-install` script
//! must run before its package is extracted, and it may add users whose names the next
//! packages' files carry, which [`Installer::refresh_ids`] makes visible.
//!
//! ```text
//! let mut inst = Installer::new(root, InstallOptions::default())?;
//! inst.extract_batch(&[(&pkg, &verified), ...], reporter)?; // until a package with a script
//! /* run pre-install / post-install in the root */
//! inst.refresh_ids();
//! inst.extract_batch(&next_batch, reporter)?;
//! let installed: Vec<InstalledPackage> = inst.finish()?; // plan order, for the db writers
//! ```

mod background;
mod entries;
mod merge;
mod owners;
mod prefetch;
mod scratch;
mod workers;
mod write;

pub use background::StepBack;
pub(crate) use merge::is_protected;
pub use prefetch::Prefetch;

use std::path::{Path, PathBuf};

use crate::db::InstalledPackage;
use crate::index::Package;
use crate::package::VerifiedPackage;
use crate::report::Reporter;
use crate::rootfs::{Owner, RootDir};

use merge::{ChunkPlan, Found, PlanInput, State};
use owners::IdCache;

/// The largest `etc/passwd` or `etc/group` read for owner lookups.
const MAX_ID_FILE: u64 = 16 * 1024 * 1024;

/// Why extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The root directory could not be opened.
    #[error("cannot open the root directory `{path}`")]
    Root {
        /// The root.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A package outside the plan given to [`Prefetch::new`] was asked for.
    #[error("package #{index} of the plan was asked for, but the prefetched plan is shorter; pass the whole plan to `Prefetch::new`")]
    NotPrefetched {
        /// Its position in the plan.
        index: usize,
    },
    /// A package that failed verification was asked for (its error went to
    /// [`Prefetch::verified`]).
    #[error("package #{index} of the plan failed verification; it cannot be extracted")]
    Unverified {
        /// Its position in the plan.
        index: usize,
    },
    /// A package's data member, read as it was extracted into the scratch folder (from
    /// where nothing of it was moved into place), did not match its signed hash.
    #[error("the data of a package is not what its signature covers")]
    Data {
        /// The verification failure, naming the package.
        #[source]
        source: Box<crate::package::PackageError>,
    },
    /// The data member is not a readable tar (it matched its checksum, so the package
    /// itself is broken).
    #[error("package `{package}`: cannot read the data member")]
    Archive {
        /// `name-version`.
        package: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The data member inflates to more than allowed.
    #[error(
        "package `{package}`: the data member inflates to more than {limit} bytes; refusing it"
    )]
    TooLarge {
        /// `name-version`.
        package: String,
        /// The limit.
        limit: u64,
    },
    /// An entry that could escape the root, inject database lines or is otherwise unsafe.
    #[error("package `{package}`: refusing entry `{entry}`: {reason}")]
    UnsafeEntry {
        /// `name-version`.
        package: String,
        /// The entry name (escaped).
        entry: String,
        /// Why.
        reason: String,
    },
    /// A file owned by another package, without `replaces` or a common origin.
    #[error("package `{package}`: trying to overwrite `{path}` owned by `{owner}`; expected a `replaces` relation or the same origin (apk --force-overwrite allows it)")]
    Conflict {
        /// `name-version` of the newcomer.
        package: String,
        /// The path.
        path: String,
        /// `name-version` of the owner.
        owner: String,
    },
    /// A filesystem operation failed.
    #[error("package `{package}`: cannot {op} `{path}` in `{root}`")]
    Io {
        /// `name-version`.
        package: String,
        /// What was attempted.
        op: &'static str,
        /// The path inside the root.
        path: String,
        /// The root.
        root: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How the installer works.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Writer threads per phase (filesystem-bound, so more than the cores helps).
    pub jobs: usize,
    /// Installed bytes planned and put in place at once (a larger package goes alone):
    /// bounds the scratch folder of [`Installer::extract_batch`] and the plan in memory.
    pub memory_budget: u64,
    /// Overwrite files owned by another package with a warning instead of failing
    /// (apk's `--force-overwrite`).
    pub force_overwrite: bool,
    /// Give inodes their recorded owners (default: when running as root). Without it the
    /// database still records the owners, and the files belong to the caller.
    pub chown: bool,
    /// Let ext4 place the root's top-level subtrees in separate block groups while
    /// extracting (see [`Installer`]); the marks are removed by [`Installer::finish`].
    pub spread_directories: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        InstallOptions {
            jobs: (cores * 2).clamp(2, 16),
            memory_budget: 256 * 1024 * 1024,
            force_overwrite: false,
            // Root of a namespace that maps only the caller cannot give files to anyone else.
            chown: rustix::process::geteuid().is_root() && crate::userns::mapped_uids() > 1,
            spread_directories: true,
        }
    }
}

/// Extracts packages into a root in batches, keeping apk's bookkeeping across them.
///
/// While it works, the root and the top-level directories it creates carry ext4's
/// `FS_TOPDIR_FL` (`chattr +T`), so that the allocator (Orlov) puts each of their
/// subdirectories in a block group of its own instead of all next to the root. On ext4
/// without a journal the allocator checks every free inode of a group that was freed in
/// the last minutes before reusing it; where sysroots are rebuilt over and over (CI,
/// benchmarks), one crowded group made that scan about 80% of the build's CPU time. On
/// other filesystems setting the flag fails and nothing changes; [`Installer::finish`]
/// removes it again, so the tree ends as without it.
pub struct Installer {
    root: RootDir,
    root_path: PathBuf,
    opts: InstallOptions,
    /// Inflates the packages of a batch that were not prefetched.
    workers: workers::Workers,
    /// Places files, links and directories: the calling thread alone. Renames out of the
    /// scratch folder move between directories, which the kernel serializes on one lock
    /// per filesystem, and creations in one directory share that directory's lock; with
    /// two threads the second mostly spun on them (alpine-base, three sets of 20-30
    /// interleaved runs: 5-9% more CPU, 5-11% more wall time on tmpfs, 0-4% on ext4).
    placing: workers::Workers,
    ids: IdCache,
    state: State,
    /// Directories marked for spreading (`""` is the root), to unmark at the end.
    spread: std::sync::Mutex<Vec<String>>,
    /// What new inodes get by default (owner, umask), to skip chown/chmod that change nothing.
    fresh: write::Fresh,
    /// Where package files wait, written ahead, until planning moves them into place.
    scratch: std::sync::Arc<scratch::Scratch>,
}

/// A package's entries, its files written into the scratch folder.
struct Loaded {
    entries: Vec<entries::Entry>,
}

impl Installer {
    /// Opens `root` (an existing directory) for extraction.
    pub fn new(root: &Path, opts: InstallOptions) -> Result<Installer, InstallError> {
        let handle = RootDir::open(root).map_err(|source| InstallError::Root {
            path: root.display().to_string(),
            source,
        })?;
        let jobs = opts.jobs.max(1);
        let scratch = scratch::Scratch::create(&handle).map_err(|source| InstallError::Root {
            path: root.display().to_string(),
            source,
        })?;
        let installer = Installer {
            scratch: std::sync::Arc::new(scratch),
            root: handle,
            root_path: root.to_path_buf(),
            opts,
            workers: workers::Workers::new(jobs),
            placing: workers::Workers::new(1),
            ids: IdCache::default(),
            state: State::default(),
            spread: std::sync::Mutex::new(Vec::new()),
            fresh: write::Fresh::current(),
        };
        installer.spread_below("");
        Ok(installer)
    }

    /// Extracts `batch` (in plan order) into the root: parallel inside the batch, with
    /// conflicts and overwrites decided by plan order. Reports each package when it is
    /// in place.
    pub fn extract_batch(
        &mut self,
        batch: &[(&Package, &VerifiedPackage)],
        reporter: &dyn Reporter,
    ) -> Result<(), InstallError> {
        for (start, end) in self.chunks(batch) {
            let chunk = &batch[start..end];
            let slots: Vec<std::sync::Mutex<Option<Loaded>>> =
                chunk.iter().map(|_| Default::default()).collect();
            self.workers.run(chunk.len(), |i| {
                let (pkg, verified) = chunk[i];
                let mut member = verified.data_member();
                let loaded = prefetch::load(pkg, verified, &mut member, &self.scratch, true)?;
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(loaded);
                Ok(())
            })?;
            let loaded: Vec<Loaded> = slots
                .into_iter()
                .filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
                .collect();
            self.extract_chunk(chunk, loaded, reporter)?;
        }
        Ok(())
    }

    /// Forgets every owner name looked up so far: call it after a script ran that may have
    /// changed the target's `etc/passwd` or `etc/group` (apk does the same).
    pub fn refresh_ids(&mut self) {
        self.ids.reset();
    }

    /// Takes the packages already installed in the root (an update), in apk's installed
    /// order: they own their recorded files, so conflicts, `replaces` and `.apk-new`
    /// treat them as apk treats installed packages. They come first in [`Installer::finish`].
    pub fn seed(&mut self, installed: Vec<InstalledPackage>) {
        for pkg in installed {
            self.state.seed(pkg);
        }
    }

    /// How many packages the installer holds (seeded, extracted, released).
    pub fn count(&self) -> usize {
        self.state.packages.len()
    }

    /// Package `index` leaves the root (removed, or replaced by an upgrade): its record as
    /// it stands, listing only the files it still owns, which the caller deletes.
    pub fn release(&mut self, index: usize) -> InstalledPackage {
        self.state.release(index)
    }

    /// The record of package `index`.
    pub fn record_mut(&mut self, index: usize) -> &mut InstalledPackage {
        &mut self.state.packages[index].installed
    }

    /// Directories the caller removed: a later package creates them again.
    pub fn forget_dirs(&mut self, paths: &[String]) {
        for p in paths {
            self.state.forget_dir(p);
        }
    }

    /// The packages installed so far, in plan order.
    pub fn installed(&self) -> impl Iterator<Item = &InstalledPackage> {
        self.state.packages.iter().map(|p| &p.installed)
    }

    /// Reconciles the permissions of the directories this run created (lowest uid, then
    /// lowest gid, modes ANDed, as apk does at the end) and returns the records in plan order.
    pub fn finish(self) -> Result<Vec<InstalledPackage>, InstallError> {
        self.scratch
            .remove(&self.root)
            .map_err(|source| self.io_err("(scratch folder)", "remove", "", source))?;
        self.unspread()?;
        let dirs = self.state.reconciled_dirs();
        self.placing.run(dirs.len(), |i| {
            let (path, acl) = &dirs[i];
            self.root
                .set_owner_mode(path, self.owner(acl), acl.mode)
                .map_err(|source| {
                    self.io_err(
                        "(shared directories)",
                        "set the permissions of",
                        path,
                        source,
                    )
                })
        })?;
        Ok(self
            .state
            .packages
            .into_iter()
            .filter(|p| !p.gone)
            .map(|p| p.installed)
            .collect())
    }

    /// Prepares to verify `packages` (the whole plan, in order) against the `.apk` files
    /// `files` (same order) on background threads and write their files ahead into this
    /// installer's scratch folder, `budget` bytes (installed size) ahead at most.
    pub fn prefetch<'a>(
        &self,
        packages: &'a [Package],
        files: &'a [PathBuf],
        budget: u64,
    ) -> Prefetch<'a> {
        Prefetch::new(packages, files, budget, self.scratch.clone())
    }

    /// [`Installer::extract_batch`] for `batch = plan[first..first + batch.len()]`, taking
    /// the inflated tars from `prefetch` (made for the whole `plan`). Packages go in by
    /// runs of those already inflated: the first ones are placed while the later ones
    /// are still being read.
    pub fn extract_prefetched(
        &mut self,
        batch: &[(&Package, &VerifiedPackage)],
        first: usize,
        prefetch: &Prefetch<'_>,
        reporter: &dyn Reporter,
    ) -> Result<(), InstallError> {
        for (start, end) in self.chunks(batch) {
            // What is ready goes in while the rest is still inflated: the first package
            // is waited for, the ones after it join only if they are there already.
            let mut at = start;
            while at < end {
                let mut loaded = vec![prefetch.take(first + at)?];
                while at + loaded.len() < end {
                    match prefetch.try_take(first + at + loaded.len()) {
                        Some(next) => loaded.push(next?),
                        None => break,
                    }
                }
                let stop = at + loaded.len();
                self.extract_chunk(&batch[at..stop], loaded, reporter)?;
                at = stop;
            }
        }
        Ok(())
    }

    /// Cuts `batch` into runs whose installed size fits the memory budget.
    fn chunks(&self, batch: &[(&Package, &VerifiedPackage)]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < batch.len() {
            let mut end = start + 1;
            let mut budget = batch[start].1.info().size;
            while end < batch.len() {
                let size = batch[end].1.info().size;
                if budget.saturating_add(size) > self.opts.memory_budget {
                    break;
                }
                budget += size;
                end += 1;
            }
            out.push((start, end));
            start = end;
        }
        out
    }

    fn extract_chunk(
        &mut self,
        chunk: &[(&Package, &VerifiedPackage)],
        loaded: Vec<Loaded>,
        reporter: &dyn Reporter,
    ) -> Result<(), InstallError> {
        let mut plan = ChunkPlan::default();
        let mut planned: Vec<usize> = Vec::new();
        for (slot, ((pkg, verified), load)) in chunk.iter().zip(&loaded).enumerate() {
            if plan.must_flush_before(&load.entries) {
                self.write_plan(std::mem::take(&mut plan), chunk, &planned, reporter)?;
                planned.clear();
            }
            let mut installed = InstalledPackage {
                package: (*pkg).clone(),
                dirs: Vec::new(),
                scripts: Vec::new(),
                triggers: Vec::new(),
                status: Default::default(),
            };
            if opened(pkg) {
                // apk records `replaces` from `.PKGINFO`; the index usually carries no `r:`.
                installed.package.replaces = verified.info().replaces.clone();
                installed.package.replaces_priority = verified.info().replaces_priority;
                installed.scripts = verified.scripts().to_vec();
                installed.triggers = verified.info().triggers.clone();
            }
            let input = PlanInput {
                slot,
                installed,
                entries: &load.entries,
                force_overwrite: self.opts.force_overwrite,
            };
            let root = &self.root;
            let root_path = &self.root_path;
            let name = pkg.name_version();
            let mut read_ids =
                |kind: owners::IdKind| root.read_head(kind.path(), MAX_ID_FILE).ok().flatten();
            let mut lstat = |path: &str| {
                root.lstat(path)
                    .map(Found::of)
                    .map_err(|source| InstallError::Io {
                        package: name.clone(),
                        op: "inspect",
                        path: path.to_owned(),
                        root: root_path.display().to_string(),
                        source,
                    })
            };
            let warnings = self.state.plan_package(
                input,
                &mut plan,
                &mut self.ids,
                &mut read_ids,
                &mut lstat,
            )?;
            for w in warnings {
                reporter.warn(&w);
            }
            planned.push(slot);
        }
        self.write_plan(plan, chunk, &planned, reporter)
    }

    /// The owner to set on disk: the recorded one, unless ownership is not ours to change.
    fn owner(&self, acl: &crate::db::Acl) -> Owner {
        self.opts.chown.then_some((acl.uid, acl.gid))
    }

    fn io_err(
        &self,
        package: &str,
        op: &'static str,
        path: &str,
        source: std::io::Error,
    ) -> InstallError {
        InstallError::Io {
            package: package.to_owned(),
            op,
            path: path.to_owned(),
            root: self.root_path.display().to_string(),
            source,
        }
    }
}

/// apk does not open a package whose index entry says `I:0`: nothing of it is extracted,
/// and neither its scripts nor its triggers are recorded.
fn opened(pkg: &Package) -> bool {
    pkg.installed_size != 0
}
