//! `lib/apk/db/installed`: apk's per-package records, written and read as apk 2.14 does.
//!
//! Layout per package (apk's `apk_db_write_fdb`): the index header fields
//! (`C P V A S I T U L o m t c k D p i`, optional ones only when set), then `r q s f`,
//! then each directory as `F:` with `M:` when its ACL is not `0:0:755`, each file as `R:`
//! with `a:` when not `0:0:644` and `Z:` when it has a checksum; a blank line ends it.
//! Packages are sorted by name the way apk sorts them for display.

use std::cmp::Ordering;
use std::fmt::Write as _;

use super::{Acl, DbError, DirRecord, FileRecord, InstallStatus, InstalledPackage};
use crate::index::{join, Dependency, Package, Provide};
use crate::version::Version;

const DEFAULT_DIR_ACL: Acl = Acl {
    uid: 0,
    gid: 0,
    mode: 0o755,
};
const DEFAULT_FILE_ACL: Acl = Acl {
    uid: 0,
    gid: 0,
    mode: 0o644,
};

/// apk's display order of names: case-insensitive first, then bytewise
/// (`strcasecmp(a, b) ?: strcmp(a, b)`).
pub fn name_order(a: &str, b: &str) -> Ordering {
    let fold = |s: &str| {
        s.bytes()
            .map(|c| c.to_ascii_lowercase())
            .collect::<Vec<u8>>()
    };
    fold(a).cmp(&fold(b)).then_with(|| a.cmp(b))
}

/// `Q1` + base64 of a SHA-1, as apk prints checksums.
pub fn q1_encode(sha1: &[u8; 20]) -> String {
    use base64::Engine as _;
    format!(
        "Q1{}",
        base64::engine::general_purpose::STANDARD.encode(sha1)
    )
}

/// The SHA-1 inside a `Q1...` checksum; `None` for anything else (3.0's `Q2`, garbage).
pub fn q1_decode(s: &str) -> Option<[u8; 20]> {
    use base64::Engine as _;
    let b64 = s.strip_prefix("Q1")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    bytes.try_into().ok()
}

fn push_list<T: std::fmt::Display>(out: &mut String, field: &str, items: &[T]) {
    if !items.is_empty() {
        let _ = writeln!(out, "{field}{}", join(items));
    }
}

fn push_acl(out: &mut String, field: char, acl: &Acl) {
    let _ = writeln!(out, "{field}:{}:{}:{:o}", acl.uid, acl.gid, acl.mode);
}

/// The index header apk writes for a package (`apk_pkg_write_index_header`).
pub fn write_index_header(out: &mut String, p: &Package) {
    let _ = writeln!(out, "C:{}\nP:{}\nV:{}", p.checksum, p.name, p.version);
    if !p.arch.is_empty() {
        let _ = writeln!(out, "A:{}", p.arch);
    }
    let _ = writeln!(
        out,
        "S:{}\nI:{}\nT:{}\nU:{}\nL:{}",
        p.size, p.installed_size, p.description, p.url, p.license
    );
    if !p.origin.is_empty() {
        let _ = writeln!(out, "o:{}", p.origin);
    }
    if !p.maintainer.is_empty() {
        let _ = writeln!(out, "m:{}", p.maintainer);
    }
    if p.build_time != 0 {
        let _ = writeln!(out, "t:{}", p.build_time);
    }
    if !p.commit.is_empty() {
        let _ = writeln!(out, "c:{}", p.commit);
    }
    if let Some(k) = p.provider_priority.filter(|&k| k != 0) {
        let _ = writeln!(out, "k:{k}");
    }
    push_list(out, "D:", &p.depends);
    push_list(out, "p:", &p.provides);
    push_list(out, "i:", &p.install_if);
}

/// One package's record, blank line included.
/// Writes one package. apk 2.14 writes the index header straight to the file but
/// collects `r:`/`q:`/`s:`/`f:` in a buffer that is only flushed with the first `F:`
/// line; a package without directories therefore hands those lines to the next package
/// (after its header), and the last package loses them. `pending` carries them over so
/// that the file is byte-identical to apk's (alpine-base's `r:` lands on
/// alpine-baselayout in a real 3.19 database).
fn write_package(out: &mut String, pending: &mut String, ipkg: &InstalledPackage) {
    let p = &ipkg.package;
    write_index_header(out, p);
    let extras = pending;
    push_list(extras, "r:", &p.replaces);
    if let Some(q) = p.replaces_priority.filter(|&q| q != 0) {
        let _ = writeln!(extras, "q:{q}");
    }
    let st = &ipkg.status;
    if let Some(tag) = &st.repository_tag {
        let _ = writeln!(extras, "s:{tag}");
    }
    if st.broken_files || st.broken_script || st.broken_xattr {
        extras.push_str("f:");
        if st.broken_files {
            extras.push('f');
        }
        if st.broken_script {
            extras.push('s');
        }
        if st.broken_xattr {
            extras.push('x');
        }
        extras.push('\n');
    }
    if !ipkg.dirs.is_empty() {
        out.push_str(extras);
        extras.clear();
    }
    for dir in &ipkg.dirs {
        let _ = writeln!(out, "F:{}", dir.path);
        if dir.acl != DEFAULT_DIR_ACL {
            push_acl(out, 'M', &dir.acl);
        }
        for file in &dir.files {
            let _ = writeln!(out, "R:{}", file.name);
            if file.acl != DEFAULT_FILE_ACL {
                push_acl(out, 'a', &file.acl);
            }
            if let Some(sum) = &file.sha1 {
                let _ = writeln!(out, "Z:{}", q1_encode(sum));
            }
        }
    }
    out.push('\n');
}

/// The whole `installed` file for `installed` (any order: apk sorts by name).
pub fn write_installed(installed: &[InstalledPackage]) -> String {
    let mut sorted: Vec<&InstalledPackage> = installed.iter().collect();
    sorted.sort_by(|a, b| {
        name_order(&a.package.name, &b.package.name).then_with(|| {
            crate::version::compare(a.package.version.as_str(), b.package.version.as_str())
        })
    });
    let mut out = String::with_capacity(installed.len() * 2048);
    let mut pending = String::new();
    for ipkg in sorted {
        write_package(&mut out, &mut pending, ipkg);
    }
    out
}

fn parse_acl(value: &str) -> Option<Acl> {
    let mut it = value.split(':');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    // A fourth part is the xattr checksum, which the shared model does not carry.
    Some(Acl { uid, gid, mode })
}

/// Parses an `installed` file. Scripts and triggers stay empty (they live in
/// `scripts.tar` and `triggers`; see [`super::read_database`]). Unknown fields are
/// skipped; ACL xattr checksums are dropped (the model has no place for them).
pub fn read_installed(text: &str) -> Result<Vec<InstalledPackage>, DbError> {
    let mut out = Vec::new();
    let mut cur: Option<InstalledPackage> = None;
    let bad = |line: usize, message: String| DbError::Parse {
        file: "installed",
        line,
        message,
    };
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        if line.is_empty() {
            if let Some(p) = cur.take() {
                out.push(p);
            }
            continue;
        }
        let Some((field, value)) = line.split_once(':').filter(|(f, _)| f.len() == 1) else {
            return Err(bad(lineno, format!("expected `X:value`, found `{line}`")));
        };
        let ipkg = cur.get_or_insert_with(|| InstalledPackage::new(Package::default()));
        let p = &mut ipkg.package;
        let num = |v: &str| -> Result<u64, DbError> {
            v.parse()
                .map_err(|_| bad(lineno, format!("`{field}:` expects a number, found `{v}`")))
        };
        let small = |v: &str| -> Result<u32, DbError> {
            v.parse()
                .map_err(|_| bad(lineno, format!("`{field}:` expects a number, found `{v}`")))
        };
        let deps = |v: &str| Dependency::parse_list(v).map_err(|e| bad(lineno, e.to_string()));
        match field {
            "C" => p.checksum = value.to_string(),
            "P" => p.name = value.to_string(),
            "V" => p.version = Version::new(value),
            "A" => p.arch = value.to_string(),
            "S" => p.size = num(value)?,
            "I" => p.installed_size = num(value)?,
            "T" => p.description = value.to_string(),
            "U" => p.url = value.to_string(),
            "L" => p.license = value.to_string(),
            "o" => p.origin = value.to_string(),
            "m" => p.maintainer = value.to_string(),
            "t" => p.build_time = num(value)?,
            "c" => p.commit = value.to_string(),
            "k" => p.provider_priority = Some(small(value)?),
            "D" => p.depends = deps(value)?,
            "p" => {
                p.provides = Provide::parse_list(value).map_err(|e| bad(lineno, e.to_string()))?
            }
            "i" => p.install_if = deps(value)?,
            "r" => p.replaces = deps(value)?,
            "q" => p.replaces_priority = Some(small(value)?),
            "s" => ipkg.status.repository_tag = Some(value.to_string()),
            "f" => {
                let st: &mut InstallStatus = &mut ipkg.status;
                st.broken_files = value.contains('f');
                st.broken_script = value.contains('s');
                st.broken_xattr = value.contains('x');
            }
            "F" => ipkg.dirs.push(DirRecord {
                path: value.to_string(),
                acl: DEFAULT_DIR_ACL,
                files: Vec::new(),
            }),
            "M" => {
                let acl = parse_acl(value)
                    .ok_or_else(|| bad(lineno, format!("invalid ACL `{value}`")))?;
                let dir = ipkg
                    .dirs
                    .last_mut()
                    .ok_or_else(|| bad(lineno, "`M:` before any `F:`".into()))?;
                dir.acl = acl;
            }
            "R" => {
                // apk puts files seen before any `F:` in the root directory.
                if ipkg.dirs.is_empty() {
                    ipkg.dirs.push(DirRecord {
                        path: String::new(),
                        acl: DEFAULT_DIR_ACL,
                        files: Vec::new(),
                    });
                }
                if let Some(dir) = ipkg.dirs.last_mut() {
                    dir.files.push(FileRecord {
                        name: value.to_string(),
                        acl: DEFAULT_FILE_ACL,
                        sha1: None,
                    });
                }
            }
            "a" | "Z" => {
                let file = ipkg
                    .dirs
                    .last_mut()
                    .and_then(|d| d.files.last_mut())
                    .ok_or_else(|| bad(lineno, format!("`{field}:` before any `R:`")))?;
                if field == "a" {
                    file.acl = parse_acl(value)
                        .ok_or_else(|| bad(lineno, format!("invalid ACL `{value}`")))?;
                } else {
                    file.sha1 = Some(q1_decode(value).ok_or_else(|| {
                        bad(lineno, format!("`Z:{value}` is not a `Q1` SHA-1 checksum, the only kind apk 2.14 reads"))
                    })?);
                }
            }
            _ => {}
        }
    }
    if let Some(p) = cur.take() {
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_case_insensitively_then_bytewise() {
        let mut names = vec!["b", "B", "a-b", "A", "a"];
        names.sort_by(|a, b| name_order(a, b));
        assert_eq!(names, ["A", "a", "a-b", "B", "b"]);
    }

    #[test]
    fn non_q1_file_checksums_are_refused() {
        let text = "C:Q1x\nP:a\nV:1\nF:etc\nR:x\nZ:Q2AAAA\n\n";
        assert!(matches!(
            read_installed(text),
            Err(DbError::Parse { line: 6, .. })
        ));
    }

    fn package(name: &str, replaces: &str, dirs: &[&str]) -> InstalledPackage {
        let mut ipkg = InstalledPackage::new(Package {
            name: name.into(),
            version: Version::new("1-r0"),
            checksum: "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            replaces: Dependency::parse_list(replaces).unwrap(),
            ..Package::default()
        });
        for d in dirs {
            ipkg.dirs.push(DirRecord {
                path: d.to_string(),
                acl: DEFAULT_DIR_ACL,
                files: Vec::new(),
            });
        }
        ipkg
    }

    #[test]
    fn replaces_of_a_package_without_directories_land_on_the_next_one_as_in_apk() {
        // apk 2.14 flushes `r:` with the first `F:`: alpine-base (no directories)
        // hands its `r:alpine-baselayout` to alpine-baselayout, and the last package loses it.
        let text = write_installed(&[
            package("a", "x", &[]),
            package("b", "y", &["etc"]),
            package("c", "z", &[]),
        ]);
        let sections: Vec<&str> = text.split("\n\n").collect();
        assert!(!sections[0].contains("r:"), "{text}");
        assert!(sections[1].ends_with("r:x\nr:y\nF:etc"), "{text}");
        assert!(!sections[2].contains("r:"), "{text}");
    }
}
