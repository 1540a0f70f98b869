//! The atoms of a real `lib/apk/db/installed` written by apk 2.14.4 (for `alpine-base`,
//! `fixtures/index/installed-alpine-base`): the parser reads it, and `Display` writes every
//! `D:`, `p:`, `i:` and `r:` line back byte for byte.

use sysroot_mk::index::{join, parse_apkindex, Package};

const INSTALLED: &str = include_str!("../../fixtures/index/installed-alpine-base");

fn stanza_lines(pkg: &Package, field: &str) -> String {
    let header = format!("P:{}\n", pkg.name);
    let start = INSTALLED.find(&header).expect("package in fixture");
    let end = INSTALLED[start..]
        .find("\n\n")
        .map_or(INSTALLED.len(), |e| start + e);
    INSTALLED[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix(field))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn installed_database_parses_to_the_25_packages() {
    let pkgs = parse_apkindex(INSTALLED, 0).expect("installed parses");
    assert_eq!(pkgs.len(), 25);
    assert!(pkgs
        .iter()
        .all(|p| !p.uninstallable && p.checksum.starts_with("Q1")));
    let names: Vec<_> = pkgs.iter().map(|p| p.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "apk writes the database sorted by name");
}

#[test]
fn atom_lines_print_exactly_as_apk_wrote_them() {
    let pkgs = parse_apkindex(INSTALLED, 0).expect("installed parses");
    let mut compared = 0;
    for pkg in &pkgs {
        for (field, written) in [
            ("D:", join(&pkg.depends)),
            ("p:", join(&pkg.provides)),
            ("i:", join(&pkg.install_if)),
            ("r:", join(&pkg.replaces)),
        ] {
            assert_eq!(written, stanza_lines(pkg, field), "{field} of {}", pkg.name);
            compared += usize::from(!written.is_empty());
        }
    }
    // 20 D:, 17 p:, 1 i:, 18 r: lines in the fixture.
    assert_eq!(compared, 56);
}

#[test]
fn provider_priorities_and_replaces_are_read() {
    let pkgs = parse_apkindex(INSTALLED, 0).expect("installed parses");
    let prio: Vec<_> = pkgs
        .iter()
        .filter_map(|p| p.provider_priority.map(|k| (p.name.as_str(), k)))
        .collect();
    assert_eq!(prio.len(), 3, "{prio:?}");
    assert!(prio.contains(&("busybox-binsh", 100)), "{prio:?}");
    let busybox = pkgs.iter().find(|p| p.name == "busybox").expect("busybox");
    assert_eq!(join(&busybox.replaces), "busybox-initscripts");
}
