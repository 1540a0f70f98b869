//! The write phases of one planned chunk. Each phase's jobs are independent of each
//! other, so they run on the installer's workers; the phases run in order because each
//! needs the previous one's results: directories (parents first, by depth); files moved
//! from the scratch folder to their final names, and symlinks (and files that hard links
//! point at) under temporary names; hard links to those temporary names; then renames of
//! the temporary names to the final ones (or removal of what a later package of the chunk
//! replaced).

use crate::index::Package;
use crate::package::VerifiedPackage;
use crate::report::Reporter;
use crate::rootfs::{split, Dir};
use std::os::fd::AsFd as _;

use super::merge::{ChunkPlan, What, Write};
use super::{InstallError, Installer};

impl Installer {
    pub(super) fn write_plan(
        &self,
        plan: ChunkPlan,
        chunk: &[(&Package, &VerifiedPackage)],
        planned: &[usize],
        reporter: &dyn Reporter,
    ) -> Result<(), InstallError> {
        let pkg_name = |slot: usize| chunk[slot].0.name_version();
        let by_index = |index: usize| self.state.packages[index].installed.package.name_version();
        {
            // Directories by depth, so that parents exist before their children.
            let mut depths: Vec<usize> = plan
                .dirs
                .iter()
                .map(|d| d.path.matches('/').count())
                .collect();
            depths.sort_unstable();
            depths.dedup();
            for depth in depths {
                let level = |d: &&super::merge::NewDir| d.path.matches('/').count() == depth;
                // One handle per parent for the level, not an open per directory.
                let parents = self
                    .root
                    .open_dirs(plan.dirs.iter().filter(level).map(|d| split(&d.path).0));
                self.placing.each(
                    &plan.dirs,
                    |_, d| level(&d),
                    |_, d| {
                        let owner = self.owner(&d.acl);
                        let (parent, name) = split(&d.path);
                        match parents.get(parent) {
                            Some(parent) => parent.mkdir(name, owner, d.acl.mode),
                            // Says why the parent cannot be opened.
                            None => self.root.mkdir(&d.path, owner, d.acl.mode),
                        }
                        .map_err(|source| {
                            self.io_err(&by_index(d.package), "create directory", &d.path, source)
                        })
                    },
                )?;
                if depth == 0 {
                    for d in &plan.dirs {
                        if !d.path.contains('/') {
                            self.spread_below(&d.path);
                        }
                    }
                }
            }
            // One handle per directory for all the writes below.
            let dirs = self
                .root
                .open_dirs(plan.writes.iter().map(|w| w.dir.as_str()));
            // The group a new inode gets in each directory (a setgid one passes its own on),
            // so that chown is only called when it changes something.
            let groups: std::collections::HashMap<&str, u32> = dirs
                .iter()
                .filter_map(|(dir, fd)| {
                    let st = rustix::fs::fstat(fd).ok()?;
                    let setgid = st.st_mode & libc::S_ISGID != 0;
                    Some((
                        dir.as_str(),
                        if setgid { st.st_gid } else { self.fresh.gid },
                    ))
                })
                .collect();
            let parent = |dir: &str, package: &str, path: &str| {
                dirs.get(dir).ok_or_else(|| {
                    let source = std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("directory `{dir}` is missing"),
                    );
                    self.io_err(package, "write", path, source)
                })
            };
            let is_link = |w: &&Write| matches!(w.what, What::Hardlink { .. });
            // Files hard links point at go through their temporary name (the links are
            // made to it); every other file moves from the scratch folder to its final
            // name at once, or stays there when a later package of the chunk replaces it.
            let linked: std::collections::HashSet<(&str, &str)> = plan
                .writes
                .iter()
                .filter_map(|w| match &w.what {
                    What::Hardlink { dir, tmp } => Some((dir.as_str(), tmp.as_str())),
                    _ => None,
                })
                .collect();
            let direct = |w: &Write| {
                matches!(w.what, What::File { .. })
                    && !linked.contains(&(w.dir.as_str(), w.tmp.as_str()))
            };
            let write = |(i, w): (usize, &Write)| {
                let package = pkg_name(w.slot);
                let path = join(&w.dir, &w.name);
                let into = parent(&w.dir, &package, &path)?;
                // The owner a new inode in this directory gets anyway: no chown needed then.
                let given = groups.get(w.dir.as_str()).map(|&gid| (self.fresh.uid, gid));
                let owner = self.owner(&w.acl).filter(|o| Some(*o) != given);
                let result = match &w.what {
                    What::File { scratch } => {
                        let name = if !direct(w) {
                            w.tmp.clone()
                        } else if plan.finals.get(&path) != Some(&i) {
                            return Ok(());
                        } else {
                            match self
                                .protected_target(into, w)
                                .map_err(|source| self.io_err(&package, "inspect", &path, source))?
                            {
                                Some(name) => name,
                                None => return Ok(()),
                            }
                        };
                        // Written ahead with its mode and mtime, it has the owner new files
                        // get in the scratch folder (a setgid directory's group does not
                        // pass on to it: without chown the file keeps the caller's group).
                        into.adopt(
                            &name,
                            self.scratch.dir(),
                            super::scratch::Scratch::file_name(*scratch),
                            self.owner(&w.acl).filter(|&o| o != self.scratch.given()),
                            w.acl.mode,
                            &w.xattrs,
                        )
                    }
                    What::Symlink(target) => into.symlink(&w.tmp, target, owner),
                    What::Hardlink { dir, tmp } => {
                        let from = parent(dir, &package, &path)?;
                        into.hardlink(&w.tmp, from, tmp, self.owner(&w.acl), w.acl.mode, w.mtime)
                    }
                };
                result.map_err(|source| self.io_err(&package, "write", &path, source))
            };
            self.placing
                .each(&plan.writes, |_, w| !is_link(&w), |i, w| write((i, w)))?;
            self.placing
                .each(&plan.writes, |_, w| is_link(&w), |i, w| write((i, w)))?;
            self.placing.each(
                &plan.writes,
                |_, w| !direct(w),
                |i, w| {
                    let package = pkg_name(w.slot);
                    let path = join(&w.dir, &w.name);
                    let into = parent(&w.dir, &package, &path)?;
                    if plan.finals.get(&path) != Some(&i) {
                        return into.remove(&w.tmp).map_err(|source| {
                            self.io_err(&package, "remove the replaced", &path, source)
                        });
                    }
                    let target = self
                        .protected_target(into, w)
                        .map_err(|source| self.io_err(&package, "inspect", &path, source))?;
                    match target {
                        Some(name) => into.rename(&w.tmp, &name).map_err(|source| {
                            self.io_err(&package, "rename into place", &path, source)
                        }),
                        None => into.remove(&w.tmp).map_err(|source| {
                            self.io_err(&package, "remove the duplicate", &path, source)
                        }),
                    }
                },
            )?;
        }
        for &slot in planned {
            reporter.package_installed(&chunk[slot].0.name);
        }
        Ok(())
    }

    /// Marks directory `path` (`""`: the root) so that ext4 spreads its new subdirectories
    /// over block groups (see [`Installer`]); remembers it for [`Installer::unspread`].
    /// Filesystems without the flag refuse it, which is fine: nothing was changed.
    pub(super) fn spread_below(&self, path: &str) {
        if !self.opts.spread_directories {
            return;
        }
        let marked = self
            .root
            .dir(path)
            .and_then(|dir| set_topdir(dir.as_fd(), true));
        if marked.is_ok() {
            self.spread
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(path.to_owned());
        }
    }

    /// Removes the marks [`Installer::spread_below`] set, so the tree ends as without them.
    pub(super) fn unspread(&self) -> Result<(), InstallError> {
        let marked = std::mem::take(&mut *self.spread.lock().unwrap_or_else(|e| e.into_inner()));
        for path in marked {
            self.root
                .dir(&path)
                .and_then(|dir| set_topdir(dir.as_fd(), false))
                .map_err(|source| {
                    self.io_err("(shared directories)", "reset the flags of", &path, source)
                })?;
        }
        Ok(())
    }

    /// Where the new file goes, or `None` to drop it. Like apk's migration step: in a
    /// protected directory (`etc`), a file already on disk that is not the previous
    /// owner's unmodified file (created by a script, or edited) is kept, and the new one
    /// is written beside it as `name.apk-new`, unless both are identical.
    fn protected_target(&self, dir: &Dir, w: &Write) -> std::io::Result<Option<String>> {
        if !super::merge::is_protected(&w.dir) {
            return Ok(Some(w.name.clone()));
        }
        let on_disk = match dir.sha1(&w.name)? {
            None => return Ok(Some(w.name.clone())),
            Some(sum) => sum,
        };
        if on_disk.is_some_and(|sum| w.previous.contains(&sum)) {
            return Ok(Some(w.name.clone()));
        }
        if on_disk.is_some() && w.sha1 == on_disk {
            return Ok(None);
        }
        Ok(Some(format!("{}.apk-new", w.name)))
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Sets or clears `FS_TOPDIR_FL` on the directory `dir` (a handle from `RootDir::dir`,
/// which cannot take ioctls itself), keeping its other flags.
fn set_topdir(dir: std::os::fd::BorrowedFd<'_>, on: bool) -> std::io::Result<()> {
    use rustix::fs::{IFlags, Mode, OFlags};
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let flags = rustix::fs::ioctl_getflags(&fd)?;
    let wanted = if on {
        flags | IFlags::TOPDIR
    } else {
        flags - IFlags::TOPDIR
    };
    if wanted != flags {
        rustix::fs::ioctl_setflags(&fd, wanted)?;
    }
    Ok(())
}

/// What a new inode gets without being told: the process's ids.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fresh {
    pub uid: u32,
    pub gid: u32,
}

impl Fresh {
    /// The current process's (read once, before the writer threads create anything).
    pub(super) fn current() -> Fresh {
        Fresh {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        }
    }
}
