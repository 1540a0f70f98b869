//! Package scripts and triggers run as apk runs them: on apk's own `--no-scripts` tree
//! they must produce exactly apk's with-scripts tree (busybox's 293 applet links from
//! post-install and 8 bbsuid links from its trigger). Needs root and ../shared.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sysroot_mk::db::{self, ScriptAction};
use sysroot_mk::report::Reporter;
use sysroot_mk::scripts::{self, ScriptOutcome};

#[derive(Default)]
struct Recorder {
    info: Mutex<Vec<String>>,
    warn: Mutex<Vec<String>>,
}
impl Reporter for Recorder {
    fn info(&self, m: &str) {
        self.info.lock().unwrap().push(m.to_string());
    }
    fn warn(&self, m: &str) {
        self.warn.lock().unwrap().push(m.to_string());
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `shared/` next to the project (CI) or two levels up (worktrees at wt/<name>).
fn shared() -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("SYSROOT_MK_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([here.join("../shared"), here.join("../../shared")])
        .find(|p| p.join("alpine/v3.19/main").is_dir() && p.join("tools/oracle").is_dir())
}

fn oracle(shared: &Path, target: &Path, extra: &[&str]) {
    let status = Command::new(shared.join("tools/oracle/oracle-bootstrap.sh"))
        .args(extra)
        .arg("-q")
        .arg(target)
        .arg("alpine-base")
        .status()
        .unwrap();
    assert!(status.success(), "oracle-bootstrap.sh failed");
}

fn manifest(shared: &Path, tree: &Path, out: &Path) {
    let tsv = Command::new("python3")
        .arg(shared.join("tools/oracle/manifest.py"))
        .arg(tree)
        .output()
        .unwrap();
    assert!(tsv.status.success());
    fs::write(out, tsv.stdout).unwrap();
}

#[test]
fn busybox_scripts_and_trigger_reproduce_apks_tree() {
    if !is_root() {
        eprintln!("skipped: running scripts needs root");
        return;
    }
    let Some(shared) = shared() else {
        eprintln!("skipped: ../shared (alpine data and oracle) not found");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (work, reference) = (tmp.path().join("work"), tmp.path().join("ref"));
    oracle(&shared, &work, &["--no-scripts"]);
    oracle(&shared, &reference, &[]);
    let mounts_before = fs::read_to_string("/proc/self/mountinfo").unwrap();

    // Scripts and triggers come back in install order from scripts.tar.
    let mut pkgs = db::read_database(&work).unwrap();
    let rec = Recorder::default();
    for pkg in pkgs.iter_mut() {
        for action in [ScriptAction::PreInstall, ScriptAction::PostInstall] {
            let out = scripts::run_script(&work, pkg, action, &rec).unwrap();
            assert!(!out.failed(), "{} {action:?}: {out:?}", pkg.package.name);
        }
    }
    let triggers = scripts::run_triggers(&work, &mut pkgs, &rec).unwrap();
    assert_eq!(triggers.len(), 1);
    assert!(matches!(triggers[0], (ref n, ScriptOutcome::Succeeded { .. }) if n == "busybox"));
    scripts::reconcile_exec_dir(&work, &pkgs).unwrap();
    let world = vec!["alpine-base".to_string()];
    db::write_database(&work, &pkgs, &world, "x86_64").unwrap();

    assert_eq!(
        fs::read_to_string("/proc/self/mountinfo").unwrap(),
        mounts_before,
        "no mount left behind"
    );
    assert!(!work.join("proc/self").exists(), "proc unmounted");
    assert_eq!(
        fs::read_dir(work.join(scripts::EXEC_DIR)).unwrap().count(),
        0,
        "scripts removed after running"
    );
    let executed: Vec<String> = rec
        .info
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.starts_with("Executing "))
        .cloned()
        .collect();
    assert_eq!(
        executed,
        [
            "Executing busybox-1.36.1-r15.post-install",
            "Executing alpine-baselayout-3.4.3-r2.pre-install",
            "Executing alpine-baselayout-3.4.3-r2.post-install",
            "Executing openrc-0.52.1-r2.post-install",
            "Executing busybox-1.36.1-r15.trigger",
        ]
    );

    let (a, b) = (tmp.path().join("ref.tsv"), tmp.path().join("work.tsv"));
    manifest(&shared, &reference, &a);
    manifest(&shared, &work, &b);
    let diff = Command::new("python3")
        .arg(shared.join("tools/oracle/manifest-diff.py"))
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "trees differ:\n{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let links = fs::read_to_string(&b)
        .unwrap()
        .lines()
        .filter(|l| {
            l.contains("\tl\t")
                && l.ends_with("-\t-")
                && (l.contains("/bin/busybox\t") || l.contains("/bin/bbsuid\t"))
        })
        .count();
    assert!(links >= 301, "busybox and bbsuid links present ({links})");
    for f in [
        db::INSTALLED,
        db::SCRIPTS_TAR,
        db::TRIGGERS,
        db::WORLD,
        db::ARCH,
    ] {
        assert!(
            fs::read(work.join(f)).unwrap() == fs::read(reference.join(f)).unwrap(),
            "`{f}` differs from apk's"
        );
    }
}

#[test]
fn a_script_that_cannot_start_fails_like_apk_and_marks_the_package() {
    if !is_root() {
        eprintln!("skipped: running scripts needs root");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    sysroot_mk::layout::init_skeleton(root.path()).unwrap();
    let text = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/db/alpine-base/installed"
    ))
    .unwrap();
    let mut pkg = db::read_installed(&text)
        .unwrap()
        .into_iter()
        .find(|p| p.package.name == "openrc")
        .unwrap();
    pkg.scripts.push(db::Script {
        action: "post-install".into(),
        body: b"#!/bin/sh\nexit 0\n".to_vec(),
    });
    let rec = Recorder::default();
    let out = scripts::run_script(root.path(), &mut pkg, ScriptAction::PostInstall, &rec).unwrap();
    // No /bin/sh in this root: execve fails in the child, which exits 127 as apk's does.
    assert_eq!(
        out,
        ScriptOutcome::Failed {
            status: "exited with error 127".into(),
            output: vec![]
        }
    );
    assert!(pkg.status.broken_script);
    assert!(rec.warn.lock().unwrap()[0]
        .contains("`openrc-0.52.1-r2.post-install`: script exited with error 127"));
    assert!(!root
        .path()
        .join("lib/apk/exec/openrc-0.52.1-r2.post-install")
        .exists());
    assert_eq!(
        scripts::run_script(root.path(), &mut pkg, ScriptAction::PreInstall, &rec).unwrap(),
        ScriptOutcome::Absent
    );
}

#[test]
fn trigger_arguments_are_the_matching_directories() {
    let text = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/db/alpine-base/installed"
    ))
    .unwrap();
    let pkgs = db::read_installed(&text).unwrap();
    let globs: Vec<String> = [
        "/bin",
        "/usr/bin",
        "/sbin",
        "/usr/sbin",
        "/lib/modules/*",
        "relative",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        scripts::trigger_arguments(&pkgs, &globs),
        // apk's order: its directory table's buckets.
        ["/sbin", "/bin", "/usr/sbin", "/usr/bin"]
    );
}
