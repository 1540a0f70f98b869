//! The bookkeeping apk does while it extracts, kept across batches: which package owns
//! which file (conflicts, `replaces`, same origin), the directory and file records of
//! each package in archive order, and which directories this run created (the only ones
//! whose permissions get reconciled at the end: lowest uid, then lowest gid, modes ANDed).
//!
//! Planning is sequential and cheap (no file contents are touched); it turns each package's
//! entries into write jobs whose order no longer matters, so the writes can run in parallel.

use std::collections::{HashMap, HashSet};

use crate::db::{Acl, DirRecord, FileRecord, InstalledPackage};
use crate::index::{Dependency, Op, Package};
use crate::rootfs::split;

use super::entries::{Entry, Kind};
use super::owners::{IdCache, IdKind};
use super::InstallError;

/// apk's default directory acl, used for the implicit record of top-level files.
const DEFAULT_DIR: Acl = Acl {
    uid: 0,
    gid: 0,
    mode: 0o755,
};

/// What the root holds at a path, as far as planning cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing.
    Nothing,
    /// A directory.
    Dir,
    /// Something else (file, symlink, device...).
    Other,
}

impl Found {
    /// Classifies what [`RootDir::lstat`](crate::rootfs::RootDir::lstat) found.
    pub(crate) fn of(st: Option<rustix::fs::Stat>) -> Found {
        match st {
            None => Found::Nothing,
            Some(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => Found::Dir,
            Some(_) => Found::Other,
        }
    }
}

/// A directory to create in this chunk.
#[derive(Debug)]
pub(crate) struct NewDir {
    pub path: String,
    pub acl: Acl,
    pub package: usize,
}

/// What a write job creates under its temporary name.
#[derive(Debug)]
pub(crate) enum What {
    /// The file `scratch` of the scratch folder, moved here.
    File { scratch: u64 },
    /// A symlink with this target.
    Symlink(String),
    /// A hard link to the temporary name `tmp` in `dir` (written by an earlier job).
    Hardlink { dir: String, tmp: String },
}

/// One non-directory entry to write under a temporary name, then rename or drop.
#[derive(Debug)]
pub(crate) struct Write {
    /// Index of the package within the chunk's buffers.
    pub slot: usize,
    pub dir: String,
    pub name: String,
    pub tmp: String,
    pub what: What,
    pub acl: Acl,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// The checksum recorded for this file (`Z:`).
    pub sha1: Option<[u8; 20]>,
    /// Checksums of the files earlier owners put at this path (earlier packages of the
    /// same chunk, whose files never reach the disk, add theirs to their predecessor's).
    /// In protected directories a file on disk matching one of them is replaced; anything
    /// else there is kept and the new file goes beside it as `.apk-new`, as apk does.
    pub previous: Vec<[u8; 20]>,
}

/// Everything one chunk will write.
#[derive(Debug, Default)]
pub(crate) struct ChunkPlan {
    pub dirs: Vec<NewDir>,
    pub writes: Vec<Write>,
    /// Path -> index in `writes` of the job that ends up at that path.
    pub finals: HashMap<String, usize>,
    /// Paths this chunk will create that are not directories.
    non_dirs: HashSet<String>,
    /// Contents of `etc/passwd` / `etc/group` written by this chunk, for id lookups of
    /// later packages of the chunk (apk reads them after each package is renamed in place).
    pub id_files: HashMap<IdKind, Vec<u8>>,
}

impl ChunkPlan {
    /// Whether `entries` need a path that this chunk creates as a non-directory (a symlink
    /// such as `var/run`) to exist already: then the chunk must be written first.
    pub(crate) fn must_flush_before(&self, entries: &[Entry]) -> bool {
        if self.non_dirs.is_empty() {
            return false;
        }
        entries.iter().any(|e| {
            let mut path = e.path.as_str();
            if e.kind != Kind::Dir {
                path = split(path).0;
            }
            loop {
                if path.is_empty() {
                    return false;
                }
                if self.non_dirs.contains(path) {
                    return true;
                }
                path = split(path).0;
            }
        })
    }
}

/// State of a directory path during this run.
#[derive(Debug, Clone, Copy)]
struct DirStatus {
    /// Created by this run: its permissions are reconciled at the end.
    update: bool,
}

/// Ownership of a committed file.
#[derive(Debug, Clone, Copy)]
struct Owner {
    package: usize,
    dir: usize,
}

/// A package's records while it is being installed.
#[derive(Debug)]
pub(crate) struct PkgRecord {
    pub installed: InstalledPackage,
    dir_index: HashMap<String, usize>,
    /// Released by an update (removed or replaced): no longer part of the result.
    pub gone: bool,
}

/// Bookkeeping across batches.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub packages: Vec<PkgRecord>,
    owners: HashMap<String, Owner>,
    dirs: HashMap<String, DirStatus>,
}

/// Inputs for planning one package.
pub(crate) struct PlanInput<'a> {
    pub slot: usize,
    pub installed: InstalledPackage,
    pub entries: &'a [Entry],
    pub force_overwrite: bool,
}

impl State {
    /// Plans one package (the next in plan order) into `chunk`. Returns warnings.
    pub(crate) fn plan_package(
        &mut self,
        input: PlanInput<'_>,
        chunk: &mut ChunkPlan,
        ids: &mut IdCache,
        read_ids: &mut dyn FnMut(IdKind) -> Option<Vec<u8>>,
        lstat: &mut dyn FnMut(&str) -> Result<Found, InstallError>,
    ) -> Result<Vec<String>, InstallError> {
        let index = self.packages.len();
        let pkg_name = input.installed.package.name_version();
        let mut record = PkgRecord {
            installed: input.installed,
            dir_index: HashMap::new(),
            gone: false,
        };
        let mut warnings = Vec::new();
        let mut seen: HashMap<&str, bool> = HashMap::new();
        let mut claimed: Vec<(String, usize)> = Vec::new();
        // Writes of this package by path, to find hard link targets' temporary names.
        let mut own_writes: HashMap<&str, usize> = HashMap::new();
        let mut id_files = Vec::new();

        let chunk_ids = chunk.id_files.clone();
        let mut lookup = |kind: IdKind, name: &str, numeric: u32| {
            let mut read = |k: IdKind| chunk_ids.get(&k).cloned().or_else(|| read_ids(k));
            ids.resolve(kind, name, numeric, &mut read)
        };
        let mut new_dirs = Vec::new();

        for entry in input.entries {
            let acl = Acl {
                uid: lookup(IdKind::User, &entry.uname, entry.uid),
                gid: lookup(IdKind::Group, &entry.gname, entry.gid),
                mode: entry.mode,
            };
            let is_dir = entry.kind == Kind::Dir;
            if let Some(was_dir) = seen.insert(entry.path.as_str(), is_dir) {
                if !(was_dir && is_dir) {
                    return Err(InstallError::UnsafeEntry {
                        package: pkg_name,
                        entry: entry.path.clone(),
                        reason: "a path listed twice, once not as a directory".into(),
                    });
                }
            }
            if is_dir {
                // A directory entry over another package's symlink (`var/run`) is fine for
                // apk; the writes below it resolve inside the root.
                let di = record.dir(&entry.path);
                record.installed.dirs[di].acl = acl;
                if !self.dirs.contains_key(&entry.path) {
                    let found = if chunk.non_dirs.contains(&entry.path) {
                        Found::Other
                    } else {
                        lstat(&entry.path)?
                    };
                    let update = found == Found::Nothing;
                    self.dirs.insert(entry.path.clone(), DirStatus { update });
                    if update {
                        new_dirs.push(NewDir {
                            path: entry.path.clone(),
                            acl,
                            package: index,
                        });
                    }
                }
                continue;
            }

            let (dir, name) = split(&entry.path);
            if name.starts_with(".keep_") && name.len() > 6 {
                continue;
            }
            let di = match record.dir_index.get(dir) {
                Some(&di) => di,
                None if dir.is_empty() => record.dir(""),
                None => {
                    return Err(InstallError::UnsafeEntry {
                        package: pkg_name,
                        entry: entry.path.clone(),
                        reason: format!(
                            "its directory `{dir}` is not a directory entry of the package"
                        ),
                    })
                }
            };

            let mut sha1 = entry.sha1;
            let what = match &entry.kind {
                Kind::File { scratch, .. } => What::File { scratch: *scratch },
                Kind::Symlink(target) => What::Symlink(target.clone()),
                Kind::Hardlink(target) => {
                    let (tdir, tname) = split(target);
                    let found = record.dir_index.get(tdir).and_then(|&tdi| {
                        record.installed.dirs[tdi]
                            .files
                            .iter()
                            .find(|f| f.name == tname)
                    });
                    let write = own_writes.get(target.as_str()).map(|&w| &chunk.writes[w]);
                    match (found, write) {
                        (Some(file), Some(w)) if matches!(w.what, What::File { .. }) => {
                            sha1 = file.sha1;
                            What::Hardlink {
                                dir: w.dir.clone(),
                                tmp: w.tmp.clone(),
                            }
                        }
                        _ => {
                            return Err(InstallError::UnsafeEntry {
                                package: pkg_name,
                                entry: entry.path.clone(),
                                reason: format!(
                                    "a hard link to `{target}`, which is not an earlier regular file of the package"
                                ),
                            })
                        }
                    }
                }
                Kind::Dir => continue,
            };

            let mut previous = Vec::new();
            if let Some(owner) = self.owners.get(&entry.path).copied() {
                let opkg = &self.packages[owner.package].installed.package;
                let pkg = &record.installed.package;
                let same =
                    opkg.name == pkg.name || (!pkg.origin.is_empty() && opkg.origin == pkg.origin);
                if !same {
                    let opkg_prio = replaces_priority(opkg, pkg);
                    let pkg_prio = replaces_priority(pkg, opkg);
                    if opkg_prio > pkg_prio {
                        continue;
                    }
                    if pkg_prio < 0 {
                        let owner_name = opkg.name_version();
                        if !input.force_overwrite {
                            return Err(InstallError::Conflict {
                                package: pkg_name,
                                path: entry.path.clone(),
                                owner: owner_name,
                            });
                        }
                        warnings.push(format!(
                            "`{pkg_name}` overwrites `{}` owned by `{owner_name}`",
                            entry.path
                        ));
                    }
                }
                // The file changes hands: the old owner no longer records it.
                let files = &mut self.packages[owner.package].installed.dirs[owner.dir].files;
                let recorded = files.iter().find(|f| f.name == name).and_then(|f| f.sha1);
                files.retain(|f| f.name != name);
                if let Some(&earlier) = chunk.finals.get(&entry.path) {
                    previous.clone_from(&chunk.writes[earlier].previous);
                }
                previous.extend(recorded);
            }

            if sha1.is_none() && !record.installed.status.broken_files {
                // apk 2.14 warns once and marks the package (`f:f`).
                record.installed.status.broken_files = true;
                warnings.push(format!(
                    "`{pkg_name}`: `{}` carries no checksum; the package is recorded as having broken files, as apk does",
                    entry.path
                ));
            }
            record.installed.dirs[di].files.push(FileRecord {
                name: name.to_owned(),
                acl,
                sha1,
            });
            claimed.push((entry.path.clone(), di));
            let write = chunk.writes.len();
            own_writes.insert(entry.path.as_str(), write);
            chunk.writes.push(Write {
                slot: input.slot,
                dir: dir.to_owned(),
                name: name.to_owned(),
                tmp: tmp_name(&record.installed.package.name, dir, name),
                what,
                acl,
                mtime: entry.mtime,
                xattrs: entry.xattrs.clone(),
                sha1,
                previous,
            });
            if let (
                Kind::File {
                    ids: Some(bytes), ..
                },
                Some(kind),
            ) = (&entry.kind, id_file(&entry.path))
            {
                id_files.push((kind, bytes.clone()));
            }
        }

        // Like apk's migration step after the whole package is extracted: claim the files.
        for (path, dir) in claimed {
            chunk.non_dirs.insert(path.clone());
            chunk.finals.insert(path.clone(), own_writes[path.as_str()]);
            self.owners.insert(
                path,
                Owner {
                    package: index,
                    dir,
                },
            );
        }
        chunk.id_files.extend(id_files);
        chunk.dirs.extend(new_dirs);
        self.packages.push(record);
        Ok(warnings)
    }

    /// Takes an installed package (an update's starting point) as the owner of the files
    /// and directories its record lists, as if this run had installed it.
    pub(crate) fn seed(&mut self, installed: InstalledPackage) {
        let index = self.packages.len();
        let mut dir_index = HashMap::new();
        for (di, d) in installed.dirs.iter().enumerate() {
            dir_index.insert(d.path.clone(), di);
            self.dirs
                .entry(d.path.clone())
                .or_insert(DirStatus { update: false });
            for f in &d.files {
                let path = if d.path.is_empty() {
                    f.name.clone()
                } else {
                    format!("{}/{}", d.path, f.name)
                };
                self.owners.insert(
                    path,
                    Owner {
                        package: index,
                        dir: di,
                    },
                );
            }
        }
        self.packages.push(PkgRecord {
            installed,
            dir_index,
            gone: false,
        });
    }

    /// Releases package `index`: it owns nothing any more and is left out of the result.
    /// Returns its record as it stands (files other packages took over are gone from it).
    pub(crate) fn release(&mut self, index: usize) -> InstalledPackage {
        let rec = &mut self.packages[index];
        rec.gone = true;
        let empty = InstalledPackage::new(rec.installed.package.clone());
        let taken = std::mem::replace(&mut rec.installed, empty);
        self.owners.retain(|_, o| o.package != index);
        taken
    }

    /// Forgets that `path` exists (an update removed the directory).
    pub(crate) fn forget_dir(&mut self, path: &str) {
        self.dirs.remove(path);
    }

    /// Directories this run created with the acl apk gives them at the end.
    pub(crate) fn reconciled_dirs(&self) -> Vec<(String, Acl)> {
        let mut result: HashMap<&str, Acl> = HashMap::new();
        let mut order = Vec::new();
        for pkg in self.packages.iter().filter(|p| !p.gone) {
            for dir in &pkg.installed.dirs {
                if !self.dirs.get(&dir.path).is_some_and(|s| s.update) {
                    continue;
                }
                let acl = dir.acl;
                match result.get_mut(dir.path.as_str()) {
                    None => {
                        order.push(dir.path.as_str());
                        result.insert(&dir.path, acl);
                    }
                    Some(cur) => {
                        if (acl.uid, acl.gid) < (cur.uid, cur.gid) {
                            *cur = acl;
                        } else if (acl.uid, acl.gid) == (cur.uid, cur.gid) {
                            cur.mode &= acl.mode;
                        }
                    }
                }
            }
        }
        order
            .into_iter()
            .map(|p| (p.to_owned(), result[p]))
            .collect()
    }
}

impl PkgRecord {
    /// The index of the package's record for directory `path`, created on first use.
    fn dir(&mut self, path: &str) -> usize {
        if let Some(&i) = self.dir_index.get(path) {
            return i;
        }
        let i = self.installed.dirs.len();
        self.installed.dirs.push(DirRecord {
            path: path.to_owned(),
            acl: DEFAULT_DIR,
            files: Vec::new(),
        });
        self.dir_index.insert(path.to_owned(), i);
        i
    }
}

fn id_file(path: &str) -> Option<IdKind> {
    match path {
        "etc/passwd" => Some(IdKind::User),
        "etc/group" => Some(IdKind::Group),
        _ => None,
    }
}

/// Whether files in directory `dir` are protected the way apk's built-in
/// `+etc @etc/init.d !etc/apk` protects them on a new root: all of `etc` (those three
/// modes differ only for `apk audit`; none of them is "not protected").
pub(crate) fn is_protected(dir: &str) -> bool {
    dir == "etc" || dir.starts_with("etc/")
}

/// `replaces_priority` of `by` when one of its `replaces` matches `pkg`, else -1.
fn replaces_priority(by: &Package, pkg: &Package) -> i64 {
    if by.replaces.iter().any(|dep| materializes(dep, pkg)) {
        i64::from(by.replaces_priority.unwrap_or(0))
    } else {
        -1
    }
}

/// Whether `dep` names `pkg` itself (not a provider) and its version matches.
fn materializes(dep: &Dependency, pkg: &Package) -> bool {
    if dep.conflict || dep.name != pkg.name {
        return false;
    }
    match dep.op {
        Op::Checksum => pkg.checksum == dep.version,
        _ => dep.matches(&pkg.version),
    }
}

/// apk's temporary name: `dir/.apk.` + hex of the first 24 bytes of
/// SHA-256(package name, NUL, `dir/name`), unique per package and path.
fn tmp_name(package: &str, dir: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(package.as_bytes());
    h.update([0]);
    h.update(dir.as_bytes());
    h.update(b"/");
    h.update(name.as_bytes());
    let digest = h.finalize();
    format!(".apk.{}", hex::encode(&digest[..24]))
}
