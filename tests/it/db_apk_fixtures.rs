//! apk's database files, as the real apk 2.14 wrote them (fixtures/db, made by
//! fixtures/db/gen.sh), read and written back byte for byte.

use std::fs;
use std::path::{Path, PathBuf};

use sysroot_mk::db;

const SETS: [&str; 4] = ["alpine-base", "alpine-base-doas", "all98", "empty"];
const FILES: [(&str, &str); 5] = [
    ("installed", db::INSTALLED),
    ("scripts.tar", db::SCRIPTS_TAR),
    ("triggers", db::TRIGGERS),
    ("world", db::WORLD),
    ("arch", db::ARCH),
];

fn fixture(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/db")
        .join(set)
}

/// A sysroot holding only the fixture's database files, where apk keeps them.
fn root_with_fixture(set: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for (name, rel) in FILES {
        let dst = root.path().join(rel);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(fixture(set).join(name), dst).unwrap();
    }
    root
}

fn world_of(set: &str) -> Vec<String> {
    fs::read_to_string(fixture(set).join("world"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn installed_is_written_back_byte_identical() {
    for set in SETS {
        let text = fs::read_to_string(fixture(set).join("installed")).unwrap();
        let pkgs = db::read_installed(&text).unwrap();
        assert_eq!(db::write_installed(&pkgs), text, "set {set}");
    }
}

#[test]
fn whole_database_round_trips_byte_identical() {
    for set in SETS {
        let src = root_with_fixture(set);
        let pkgs = db::read_database(src.path()).unwrap();
        let out = tempfile::tempdir().unwrap();
        db::write_database(out.path(), &pkgs, &world_of(set), "x86_64").unwrap();
        for (name, rel) in FILES {
            let want = fs::read(fixture(set).join(name)).unwrap();
            let got = fs::read(out.path().join(rel)).unwrap();
            assert!(
                got == want,
                "set {set}: `{rel}` differs from apk's ({} vs {} bytes)",
                got.len(),
                want.len()
            );
        }
    }
}

#[test]
fn database_files_have_apks_modes() {
    use std::os::unix::fs::PermissionsExt;
    let out = tempfile::tempdir().unwrap();
    db::write_database(out.path(), &[], &[], "x86_64").unwrap();
    for (rel, mode) in [
        (db::INSTALLED, 0o644),
        (db::SCRIPTS_TAR, 0o644),
        (db::TRIGGERS, 0o644),
        (db::WORLD, 0o644),
        (db::ARCH, 0o644),
        (db::LOCK, 0o600),
    ] {
        let m = fs::metadata(out.path().join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(m, mode, "{rel}");
    }
    assert!(fs::read_dir(out.path().join("lib/apk/db"))
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".new")));
}

#[test]
fn scripts_follow_install_order_and_apks_action_order() {
    let src = root_with_fixture("alpine-base");
    let pkgs = db::read_database(src.path()).unwrap();
    let with_scripts: Vec<&str> = pkgs
        .iter()
        .filter(|p| !p.scripts.is_empty())
        .map(|p| p.package.name.as_str())
        .collect();
    assert_eq!(with_scripts, ["busybox", "alpine-baselayout", "openrc"]);
    let busybox = &pkgs[0];
    assert_eq!(
        busybox.triggers,
        ["/bin", "/usr/bin", "/sbin", "/usr/sbin", "/lib/modules/*"]
    );
    assert!(busybox
        .script(db::ScriptAction::PostInstall)
        .unwrap()
        .starts_with(b"#!/bin/busybox sh"));
}

#[test]
fn world_is_sorted_like_apk() {
    let world = db::format_world(&["doas".into(), "alpine-base".into()]);
    assert_eq!(
        world.as_bytes(),
        fs::read(fixture("alpine-base-doas").join("world")).unwrap()
    );
    assert_eq!(db::format_world(&[]), "\n");
    assert_eq!(
        db::format_world(&["b".into(), "B>1".into(), "a@edge".into(), "b=2".into()]),
        "a@edge\nB>1\nb=2\n"
    );
}

#[test]
fn failed_scripts_are_recorded_as_apk_flags_them() {
    let text = fs::read_to_string(fixture("alpine-base").join("installed")).unwrap();
    let mut pkgs = db::read_installed(&text).unwrap();
    let openrc = pkgs
        .iter_mut()
        .find(|p| p.package.name == "openrc")
        .unwrap();
    openrc.status.broken_script = true;
    let out = db::write_installed(&pkgs);
    let stanza = out
        .split("\n\n")
        .find(|s| s.contains("\nP:openrc\n"))
        .unwrap();
    let fields: Vec<&str> = stanza.lines().map(|l| &l[..2]).collect();
    let f = fields.iter().position(|&l| l == "f:").unwrap();
    assert!(
        !["F:", "M:", "R:", "a:", "Z:"].contains(&fields[f - 1]),
        "f: comes before the file records"
    );
    assert_eq!(fields[f + 1], "F:");
    assert!(stanza.contains("\nf:s\n"));
    assert_eq!(db::read_installed(&out).unwrap(), pkgs);
}

#[test]
fn packages_with_triggers_but_no_scripts_keep_their_place() {
    let src = root_with_fixture("alpine-base");
    let mut pkgs = db::read_database(src.path()).unwrap();
    let musl = pkgs.iter().position(|p| p.package.name == "musl").unwrap();
    let mut musl = pkgs.remove(musl);
    assert!(musl.scripts.is_empty());
    musl.triggers = vec!["/usr/lib".into()];
    pkgs.insert(0, musl); // its trigger line now precedes busybox's
    let a = tempfile::tempdir().unwrap();
    db::write_database(a.path(), &pkgs, &["alpine-base".into()], "x86_64").unwrap();
    let again = db::read_database(a.path()).unwrap();
    let b = tempfile::tempdir().unwrap();
    db::write_database(b.path(), &again, &["alpine-base".into()], "x86_64").unwrap();
    for rel in [db::INSTALLED, db::SCRIPTS_TAR, db::TRIGGERS] {
        assert_eq!(
            fs::read(a.path().join(rel)).unwrap(),
            fs::read(b.path().join(rel)).unwrap(),
            "{rel}"
        );
    }
    let triggers = fs::read_to_string(a.path().join(db::TRIGGERS)).unwrap();
    assert_eq!(triggers.lines().count(), 2);
    assert!(triggers.lines().next().unwrap().ends_with(" /usr/lib"));
}
