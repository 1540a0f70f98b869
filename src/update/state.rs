//! What an existing root holds: its arch, world, repositories and apk's database, read
//! in the order apk keeps them in memory (installed file order, then the triggers file's).

use std::collections::HashMap;
use std::path::Path;

use super::UpdateError;
use crate::db::{self, InstalledPackage, Script};
use crate::rootfs::RootDir;

/// Database files larger than this are refused.
const MAX_FILE: u64 = 1 << 30;

/// A root's state as apk reads it when it opens the database.
#[derive(Debug)]
pub struct RootState {
    /// `etc/apk/arch`, trimmed.
    pub arch: String,
    /// `etc/apk/world` entries, in file order.
    pub world: Vec<String>,
    /// `etc/apk/repositories` lines (comments and blanks dropped).
    pub repositories: Vec<String>,
    /// Installed packages in `installed` order, scripts and triggers attached.
    pub installed: Vec<InstalledPackage>,
    /// Checksums (`C:`) of the packages with triggers, in the triggers file's order.
    pub trigger_order: Vec<String>,
}

/// Whether `root` holds an apk database (what an update needs).
pub fn has_database(root: &Path) -> bool {
    RootDir::open(root)
        .and_then(|r| r.lstat(db::INSTALLED))
        .is_ok_and(|st| st.is_some())
}

/// Reads `root`'s state.
pub fn read(root: &Path) -> Result<RootState, UpdateError> {
    let dir = RootDir::open(root).map_err(|source| UpdateError::Read {
        path: root.display().to_string(),
        source,
    })?;
    let read = |rel: &str| -> Result<Vec<u8>, UpdateError> {
        dir.read(rel, MAX_FILE)
            .map(Option::unwrap_or_default)
            .map_err(|source| UpdateError::Read {
                path: root.join(rel).display().to_string(),
                source,
            })
    };
    let text = |rel: &str| -> Result<String, UpdateError> {
        Ok(String::from_utf8_lossy(&read(rel)?).into_owned())
    };
    let arch = text(db::ARCH)?.trim().to_string();
    let world = text(db::WORLD)?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let repositories = text("etc/apk/repositories")?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let mut installed = db::read_installed(&text(db::INSTALLED)?)?;
    let by_checksum: HashMap<String, usize> = installed
        .iter()
        .enumerate()
        .map(|(i, p)| (p.package.checksum.clone(), i))
        .collect();
    for member in db::read_scripts_tar(&read(db::SCRIPTS_TAR)?)? {
        if let Some(&i) = by_checksum.get(&member.checksum) {
            let pkg = &mut installed[i];
            pkg.scripts.retain(|s| s.action != member.action.as_str());
            pkg.scripts.push(Script {
                action: member.action.as_str().to_string(),
                body: member.body,
            });
        }
    }
    let mut trigger_order = Vec::new();
    for (checksum, globs) in db::read_triggers(&text(db::TRIGGERS)?) {
        if let Some(&i) = by_checksum.get(&checksum) {
            installed[i].triggers = globs;
            trigger_order.push(checksum);
        }
    }
    Ok(RootState {
        arch,
        world,
        repositories,
        installed,
        trigger_order,
    })
}
