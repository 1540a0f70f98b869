//! Taking a package's files out of the root as apk's purge does: a protected file the
//! user changed stays, directories go once no package records them or anything below.

use std::collections::HashSet;

use crate::db::InstalledPackage;
use crate::rootfs::{split, RootDir};

/// Deletes the files `record` still owns and the directories it leaves unowned;
/// `remaining` are the packages that stay. Returns the directories it touched (apk's
/// "modified", which fires triggers) and those it removed.
pub fn purge(
    root: &RootDir,
    record: &InstalledPackage,
    remaining: &[&InstalledPackage],
) -> std::io::Result<(Vec<String>, Vec<String>)> {
    let mut touched = Vec::new();
    for d in &record.dirs {
        touched.push(d.path.clone());
        let protected = crate::install::is_protected(&d.path);
        for f in &d.files {
            let path = if d.path.is_empty() {
                f.name.clone()
            } else {
                format!("{}/{}", d.path, f.name)
            };
            if protected {
                // A changed (or unverifiable) configuration file is the user's.
                let current = root.dir(&d.path).and_then(|dir| dir.sha1(&f.name));
                let unchanged =
                    matches!((f.sha1, current), (Some(want), Ok(Some(Some(have)))) if want == have);
                if !unchanged {
                    continue;
                }
            }
            match root.remove(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    // A directory stays while a remaining package records it or something below it.
    let mut kept: HashSet<&str> = HashSet::new();
    for pkg in remaining {
        for d in &pkg.dirs {
            let mut p = d.path.as_str();
            while kept.insert(p) && !p.is_empty() {
                p = split(p).0;
            }
        }
    }
    let mut candidates: Vec<&str> = Vec::new();
    for d in &record.dirs {
        let mut p = d.path.as_str();
        while !p.is_empty() {
            if !candidates.contains(&p) {
                candidates.push(p);
            }
            p = split(p).0;
        }
    }
    candidates.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    let mut removed = Vec::new();
    for p in candidates {
        if kept.contains(p) {
            continue;
        }
        // Not empty (files nobody owns): it stays, as with apk.
        if root.remove_dir(p).is_ok() {
            removed.push(p.to_string());
            touched.push(p.to_string());
        }
    }
    Ok((touched, removed))
}
