//! Updates in place against real apk 2.14 on copies of the same starting tree: add,
//! del, a world change adding a package whose pre-install script creates a user, one
//! removing it, and an upgrade between two generated versions whose scripts record their
//! arguments. After each step the trees and the database files are identical. A request
//! that changes nothing prints "up to date" and leaves every mtime alone.

use crate::update_support;

use std::path::Path;
use update_support::install_common::TestEntry;
use update_support::{apk, assert_same, copy_tree, manifest, shared_or_skip, tool};

#[test]
fn add_del_and_world_changes_match_apk() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let main = shared.join("alpine/v3.19/main");
    let main = main.to_str().unwrap();
    let keys = shared.join("alpine/keys/x86_64");
    let tmp = tempfile::tempdir().unwrap();
    let at = |s: &str| tmp.path().join(s);
    let base = at("base");
    tool(&[
        "-q",
        "--arch",
        "x86_64",
        "--repo",
        main,
        "--keys-dir",
        keys.to_str().unwrap(),
        "--no-cache",
        "--repositories-out",
        "/repo/v3.19/main",
        base.to_str().unwrap(),
        "alpine-base",
    ]);
    let ours = at("ours");
    let theirs = at("apk");
    copy_tree(&base, &ours);
    copy_tree(&base, &theirs);

    let steps: [(&str, &[&str], &[&str]); 4] = [
        ("add doas", &["add", "doas"], &["add"]),
        ("del doas", &["del", "doas"], &["del"]),
        // chrony's pre-install script creates the chrony user.
        ("world + chrony", &["add", "chrony"], &["set"]),
        ("world - chrony", &["del", "chrony"], &["set"]),
    ];
    for (step, apk_args, ours_form) in steps {
        apk(&shared, &theirs, &[], apk_args);
        let dir = ours.to_str().unwrap();
        match ours_form[0] {
            "set" => {
                let world = std::fs::read_to_string(theirs.join("etc/apk/world")).unwrap();
                let mut args = vec!["-q", "--arch", "x86_64", "--repo", main, "--no-cache", dir];
                args.extend(world.split_whitespace());
                tool(&args);
            }
            sub => {
                tool(&["-q", sub, "--repo", main, "--no-cache", dir, apk_args[1]]);
            }
        }
        assert_same(&shared, &theirs, &ours, step);
    }
    let passwd = std::fs::read_to_string(ours.join("etc/passwd")).unwrap();
    assert!(passwd.contains("chrony:"), "chrony's pre-install ran");

    // The same request again: up to date, nothing touched (mtimes included).
    let before = manifest(&shared, &ours, true);
    let out = tool(&[
        "del",
        "--repo",
        main,
        "--no-cache",
        ours.to_str().unwrap(),
        "chrony",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("is up to date"));
    assert_eq!(
        manifest(&shared, &ours, true),
        before,
        "up to date touches nothing"
    );
}

fn demo_v1() -> update_support::ScriptedPackage {
    demo(
        "1.0-r0",
        &[
            ("usr/share/demo/a", b"a1\n" as &[u8]),
            ("usr/share/demo/b", b"b1\n"),
            ("etc/demo.conf", b"setting=1\n"),
        ],
    )
}

fn demo_v2() -> update_support::ScriptedPackage {
    demo(
        "2.0-r0",
        &[
            ("usr/share/demo/a", b"a2\n" as &[u8]),
            ("usr/share/demo/c", b"c2\n"),
            ("etc/demo.conf", b"setting=2\n"),
        ],
    )
}

fn demo(version: &str, files: &[(&str, &[u8])]) -> update_support::ScriptedPackage {
    let mut entries = vec![
        TestEntry::dir("etc", 0o755),
        TestEntry::dir("usr", 0o755),
        TestEntry::dir("usr/share", 0o755),
        TestEntry::dir("usr/share/demo", 0o755),
    ];
    for (name, data) in files {
        entries.push(TestEntry::file(name.as_bytes(), data));
    }
    let record = |action: &str| {
        format!("#!/bin/sh\necho \"{action} $*\" >> /var/log/demo-scripts\nexit 0\n")
    };
    let actions = [
        "pre-install",
        "post-install",
        "pre-upgrade",
        "post-upgrade",
        "pre-deinstall",
        "post-deinstall",
    ];
    let bodies: Vec<(String, String)> =
        actions.iter().map(|a| (a.to_string(), record(a))).collect();
    let scripts: Vec<(&str, &str)> = bodies
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    update_support::scripted_package("demo", version, &entries, &scripts)
}

#[test]
fn upgrade_matches_apk_with_script_arguments_and_apk_new() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let main = shared.join("alpine/v3.19/main");
    let main = main.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let at = |s: &str| tmp.path().join(s);
    let gen = at("gen");
    let (v1, v2) = (demo_v1(), demo_v2());
    update_support::write_repo(&gen, &[&v1]);
    let keys = at("keys");
    std::fs::create_dir(&keys).unwrap();
    // The x86_64 folder names its keys (files holding `../NAME`) among all of them.
    for key in std::fs::read_dir(shared.join("alpine/keys/x86_64")).unwrap() {
        let name = key.unwrap().file_name();
        let real = shared.join("alpine/keys").join(&name);
        std::fs::copy(&real, keys.join(&name)).unwrap();
    }
    std::fs::copy(
        update_support::support::fixture_keys().join(update_support::support::TEST_KEY),
        keys.join(update_support::support::TEST_KEY),
    )
    .unwrap();

    let base = at("base");
    tool(&[
        "-q",
        "--arch",
        "x86_64",
        "--repo",
        main,
        "--repo",
        gen.to_str().unwrap(),
        "--keys-dir",
        keys.to_str().unwrap(),
        "--no-cache",
        "--repositories-out",
        "/repo/v3.19/main",
        "--repositories-out",
        "/gen",
        base.to_str().unwrap(),
        "alpine-base",
        "demo",
    ]);
    // The user's own setting: the upgrade must keep it and put the new one beside it.
    std::fs::write(base.join("etc/demo.conf"), "setting=mine\n").unwrap();
    let ours = at("ours");
    let theirs = at("apk");
    copy_tree(&base, &ours);
    copy_tree(&base, &theirs);

    update_support::write_repo(&gen, &[&v1, &v2]);
    let bind = [format!("{}:/gen:ro", gen.display())];
    apk(&shared, &theirs, &bind, &["upgrade"]);
    tool(&[
        "-q",
        "upgrade",
        "--repo",
        main,
        "--repo",
        gen.to_str().unwrap(),
        "--no-cache",
        ours.to_str().unwrap(),
    ]);
    assert_same(&shared, &theirs, &ours, "upgrade");
    let log = std::fs::read_to_string(ours.join("var/log/demo-scripts")).unwrap();
    assert_eq!(
        log,
        "pre-install 1.0-r0\npost-install 1.0-r0\npre-upgrade 2.0-r0 1.0-r0\npost-upgrade 2.0-r0 1.0-r0\n"
    );
    assert_eq!(read(&ours, "etc/demo.conf"), "setting=mine\n");
    assert_eq!(read(&ours, "etc/demo.conf.apk-new"), "setting=2\n");
    assert!(
        !ours.join("usr/share/demo/b").exists(),
        "a file v2 dropped is gone"
    );

    // Then removing it: pre/post-deinstall with the version, its files gone.
    apk(&shared, &theirs, &bind, &["del", "demo"]);
    tool(&[
        "-q",
        "del",
        "--repo",
        main,
        "--repo",
        gen.to_str().unwrap(),
        "--no-cache",
        ours.to_str().unwrap(),
        "demo",
    ]);
    assert_same(&shared, &theirs, &ours, "del demo");
    let log = std::fs::read_to_string(ours.join("var/log/demo-scripts")).unwrap();
    assert!(
        log.ends_with("pre-deinstall 2.0-r0\npost-deinstall 2.0-r0\n"),
        "{log}"
    );
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}

/// A tree sysroot-mk did not build: Alpine's minirootfs (its packages newer than those of
/// the test repository, so they stay as installed-only packages).
#[test]
fn a_minirootfs_is_updated_as_apk_updates_it() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let tarball = shared.join("alpine/minirootfs/alpine-minirootfs-3.19.4-x86_64.tar.gz");
    if !tarball.is_file() {
        eprintln!("skipped: the x86_64 minirootfs is absent");
        return;
    }
    let main = shared.join("alpine/v3.19/main");
    let main = main.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("apk"));
    for tree in [&ours, &theirs] {
        std::fs::create_dir(tree).unwrap();
        let st = std::process::Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(tree)
            .status()
            .unwrap();
        assert!(st.success());
        // The mirror it names is not reachable here; the test repository's path in the
        // oracle's chroot stands in for it.
        std::fs::write(tree.join("etc/apk/repositories"), "/repo/v3.19/main\n").unwrap();
    }
    for package in ["doas", "alpine-base"] {
        apk(&shared, &theirs, &[], &["add", package]);
        tool(&[
            "-q",
            "add",
            "--repo",
            main,
            "--no-cache",
            ours.to_str().unwrap(),
            package,
        ]);
        assert_same(&shared, &theirs, &ours, &format!("minirootfs + {package}"));
    }
}
