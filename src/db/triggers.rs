//! `lib/apk/db/triggers`: one line per package with triggers, `<C> <glob> <glob>...`,
//! in install order (the order apk's trigger list grows in).

use super::InstalledPackage;

/// The `triggers` file for `installed` in install order.
pub fn write_triggers(installed: &[InstalledPackage]) -> String {
    let mut out = String::new();
    for ipkg in installed.iter().filter(|p| !p.triggers.is_empty()) {
        out.push_str(&ipkg.package.checksum);
        for glob in &ipkg.triggers {
            out.push(' ');
            out.push_str(glob);
        }
        out.push('\n');
    }
    out
}

/// Reads a `triggers` file into `(checksum, globs)` pairs, in file order.
pub fn read_triggers(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let checksum = parts.next().filter(|c| !c.is_empty())?;
            let globs = parts
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect();
            Some((checksum.to_string(), globs))
        })
        .collect()
}
