//! The parser against the real, signed v3.19 x86_64 indexes in `../shared/alpine`.
//! Skipped (with a reason on stderr) when that data is absent.

use crate::shared_data;

use shared_data::{apkindex_text_or_skip, shared, tar_member, v3_19_index};
use std::path::PathBuf;

use sysroot_mk::index::{join, parse_apkindex, Op, Package};
use sysroot_mk::version;

/// The `APKINDEX` text of the v3.19 `repo`, or `None` (after saying why) when absent.
fn index_text(repo: &str) -> Option<String> {
    apkindex_text_or_skip(&v3_19_index(repo))
}

/// The packages of the v3.19 `repo` as repository `position`, or `None` (after saying
/// why) when absent.
fn parsed(repo: &str, position: usize) -> Option<Vec<Package>> {
    let text = index_text(repo)?;
    Some(parse_apkindex(&text, position).unwrap_or_else(|e| panic!("{repo} parses: {e}")))
}

fn find<'a>(pkgs: &'a [Package], name: &str) -> &'a Package {
    pkgs.iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} not in index"))
}

#[test]
fn main_index_parses_all_5443_packages() {
    let Some(pkgs) = parsed("main", 0) else {
        return;
    };
    assert_eq!(pkgs.len(), 5443);
    assert!(pkgs.iter().all(|p| p.repo == 0 && !p.uninstallable));

    let musl = find(&pkgs, "musl");
    assert_eq!(musl.version.as_str(), "1.2.4_git20230717-r4");
    assert_eq!(musl.name_version(), "musl-1.2.4_git20230717-r4");
    assert_eq!(musl.arch, "x86_64");
    assert_eq!(musl.origin, "musl");
    assert_eq!(musl.license, "MIT");
    assert!(musl.checksum.starts_with("Q1") && musl.checksum.len() == 30);
    assert!(musl.size > 0 && musl.installed_size > musl.size);
    assert!(musl.depends.is_empty());
    assert!(musl
        .provides
        .iter()
        .any(|p| p.name == "so:libc.musl-x86_64.so.1" && p.version.is_some()));

    let busybox = find(&pkgs, "busybox");
    assert_eq!(busybox.version.as_str(), "1.36.1-r19");
    assert_eq!(join(&busybox.depends), "so:libc.musl-x86_64.so.1");
    assert_eq!(join(&busybox.provides), "cmd:busybox=1.36.1-r19");
    assert_eq!(busybox.build_time, 1718173692);
    assert_eq!(busybox.commit, "84b15ba0364ddb1906bebfc33b9e6dee72f9b606");
    assert_eq!(busybox.url, "https://busybox.net/");
    assert_eq!(
        busybox.description,
        "Size optimized toolbox of many common UNIX utilities"
    );
    assert_eq!(
        busybox.maintainer,
        "Sören Tempel <soeren+alpine@soeren-tempel.net>"
    );

    let binsh = find(&pkgs, "busybox-binsh");
    assert!(binsh.provides.iter().any(|p| p.name == "/bin/sh"));
    assert_eq!(binsh.provider_priority, Some(100));
    assert_eq!(join(&binsh.depends), "busybox=1.36.1-r19");
    assert_eq!(binsh.checksum, "Q1+WZJ4SWywL1Ke28aqx7pOO4aj7U=");
}

#[test]
fn community_index_parses_all_17587_packages() {
    let Some(pkgs) = parsed("community", 1) else {
        return;
    };
    assert_eq!(pkgs.len(), 17587);
    assert!(pkgs.iter().all(|p| p.repo == 1 && !p.uninstallable));

    // Fuzzy (`~`) and `<` atoms exist in community and survive a round trip.
    let fuzzy = pkgs
        .iter()
        .flat_map(|p| &p.depends)
        .find(|d| d.op == Op::Fuzzy)
        .expect("some `~` dependency");
    assert_eq!(
        fuzzy.to_string(),
        format!("{}~{}", fuzzy.name, fuzzy.version)
    );
    let less = pkgs
        .iter()
        .flat_map(|p| &p.depends)
        .find(|d| d.op == Op::Lt)
        .expect("some `<` dependency");
    assert_eq!(less.to_string(), format!("{}<{}", less.name, less.version));
}

/// Every `D:`, `p:` and `i:` line, re-serialised from the parsed atoms, is the line the
/// index carried: the writer of `lib/apk/db/installed` can rely on `Display`.
#[test]
fn atom_lists_reserialise_to_the_index_lines() {
    for repo in ["main", "community"] {
        let Some(text) = index_text(repo) else { return };
        let pkgs = parse_apkindex(&text, 0).expect("index parses");
        let mut lines = text.split('\n').filter(|l| l.starts_with("P:"));
        let mut stanzas = text.split("\n\n").filter(|s| !s.trim().is_empty());
        for pkg in &pkgs {
            let stanza = stanzas.next().expect("one stanza per package");
            assert_eq!(lines.next(), Some(format!("P:{}", pkg.name).as_str()));
            for (field, written) in [
                ("D:", join(&pkg.depends)),
                ("p:", join(&pkg.provides)),
                ("i:", join(&pkg.install_if)),
            ] {
                let original = stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .unwrap_or("");
                assert_eq!(written, original, "{field} of {}", pkg.name);
            }
        }
    }
}

/// Every package version in the real indexes is valid, and sorting them all with apk's
/// order is consistent (no contradiction detected by the sort).
#[test]
fn real_versions_are_valid_and_sort_consistently() {
    let mut all = Vec::new();
    for repo in ["main", "community"] {
        let Some(pkgs) = parsed(repo, 0) else { return };
        all.extend(pkgs);
    }
    assert!(all.iter().all(|p| version::is_valid(p.version.as_str())));
    let mut versions: Vec<_> = all.iter().map(|p| p.version.clone()).collect();
    versions.sort();
    for w in versions.windows(2) {
        assert_ne!(
            version::compare(w[0].as_str(), w[1].as_str()),
            std::cmp::Ordering::Greater,
            "{} sorted before {}",
            w[0],
            w[1]
        );
    }
}

#[test]
fn small_repository_indexes_parse() {
    for (path, count, arch) in [
        ("v3.19/main/x86_64/APKINDEX.tar.gz", 100, "x86_64"),
        ("v3.13/main/aarch64/APKINDEX.tar.gz", 65, "aarch64"),
    ] {
        let path = shared().join(path);
        let Some(text) = apkindex_text_or_skip(&path) else {
            continue;
        };
        let pkgs = parse_apkindex(&text, 0).expect("index parses");
        assert_eq!(pkgs.len(), count, "{}", path.display());
        assert!(pkgs.iter().all(|p| p.arch == arch && !p.uninstallable));
    }
}

/// The `lib/apk/db/installed` of every official minirootfs (written by apk 2.12 and
/// 2.14 for nine arches) parses, and its atom lines print back byte for byte.
#[test]
fn minirootfs_installed_databases_round_trip() {
    let dir = shared().join("minirootfs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    };
    let mut tarballs: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    tarballs.sort();
    assert!(tarballs.len() >= 9, "{tarballs:?}");
    for tarball in &tarballs {
        let text = tar_member(tarball, "lib/apk/db/installed").expect("installed database");
        let pkgs = parse_apkindex(&text, 0).expect("installed parses");
        assert!(
            pkgs.len() >= 10,
            "{}: {} packages",
            tarball.display(),
            pkgs.len()
        );
        let stanzas: Vec<&str> = text
            .split("\n\n")
            .filter(|s| !s.trim().is_empty())
            .collect();
        assert_eq!(stanzas.len(), pkgs.len());
        for (pkg, stanza) in pkgs.iter().zip(stanzas) {
            for (field, written) in [
                ("D:", join(&pkg.depends)),
                ("p:", join(&pkg.provides)),
                ("i:", join(&pkg.install_if)),
                ("r:", join(&pkg.replaces)),
            ] {
                let original = stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .unwrap_or("");
                assert_eq!(
                    written,
                    original,
                    "{field} of {} in {}",
                    pkg.name,
                    tarball.display()
                );
            }
        }
    }
}

#[test]
fn libdeflate_inflates_the_real_indexes_whole_as_the_stream_does() {
    use std::io::Read;
    for repo in ["main", "community"] {
        let path = v3_19_index(repo);
        if !path.exists() {
            eprintln!("skipped: {} is absent", path.display());
            return;
        }
        let bytes = std::fs::read(&path).unwrap();
        let signed = sysroot_mk::archive::split_signature(&bytes).unwrap();
        // Taken by the fast path (not left to the fallback), and the same bytes.
        let whole = sysroot_mk::inflate::gzip_members(signed.rest, 64 << 20)
            .unwrap_or_else(|| panic!("libdeflate left the {repo} index to streaming"));
        let mut streamed = Vec::new();
        flate2::read::MultiGzDecoder::new(signed.rest)
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(whole.len(), streamed.len(), "{repo}");
        assert!(
            whole == streamed,
            "{repo}: libdeflate and the stream differ"
        );
    }
}
