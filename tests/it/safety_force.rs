//! `--force` replaces sysroots only: never `/`, a mount point, the current directory, a
//! home directory or a directory that is not a sysroot, and never deletes across a mount.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sysroot_mk::output::{OutputError, Staging};

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn make_sysroot(dir: &Path) {
    fs::create_dir_all(dir.join("lib/apk/db")).unwrap();
    fs::write(dir.join("lib/apk/db/installed"), b"P:x\n").unwrap();
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A bind mount made by a test, unmounted when dropped (lazily, so a failing test
/// cannot leave it behind busy).
struct Bind(PathBuf);

impl Bind {
    fn new(source: &Path, target: &Path) -> Bind {
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(source)
            .arg(target)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount --bind failed");
        Bind(target.to_path_buf())
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn force_refuses_a_directory_that_is_not_a_sysroot() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("data");
    fs::create_dir_all(dest.join("docs")).unwrap();
    fs::write(dest.join("docs/thesis.tex"), b"precious").unwrap();
    let err = Staging::create(&dest, true).unwrap_err();
    assert!(matches!(err, OutputError::NotASysroot { .. }), "{err}");
    assert!(err.to_string().contains("not a sysroot"), "{err}");
    assert_eq!(
        entries(parent.path()),
        ["data"],
        "no staging directory left"
    );
    assert_eq!(fs::read(dest.join("docs/thesis.tex")).unwrap(), b"precious");
}

#[test]
fn force_replaces_a_sysroot() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    make_sysroot(&dest);
    let staging = Staging::create(&dest, true).unwrap();
    fs::write(staging.path().join("new"), b"").unwrap();
    staging.commit().unwrap();
    assert_eq!(entries(&dest), ["new"]);
    assert_eq!(entries(parent.path()), ["out"]);
}

#[test]
fn root_is_refused_with_a_message_about_root() {
    let err = Staging::create(Path::new("/"), true).unwrap_err();
    assert!(matches!(err, OutputError::Root), "{err}");
    assert!(!err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn a_symlink_destination_is_not_followed() {
    let parent = tempfile::tempdir().unwrap();
    let target = parent.path().join("target");
    make_sysroot(&target);
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = Staging::create(&link, true).unwrap_err();
    assert!(matches!(err, OutputError::Symlink { .. }), "{err}");
    assert_eq!(entries(parent.path()), ["link", "target"]);
    assert!(target.join("lib/apk/db/installed").is_file());
}

/// Not a test on its own: runs `Staging::create(ARG, force)` in a child process whose
/// current directory and `HOME` the calling test chose, and prints the error.
#[test]
fn create_child_helper() {
    let Some(dest) = std::env::var_os("SYSROOT_MK_FORCE_CHILD_DEST") else {
        return;
    };
    match Staging::create(Path::new(&dest), true) {
        Ok(_) => println!("RESULT ok"),
        Err(err) => println!("RESULT {err:?}"),
    }
}

fn create_in_child(dest: &Path, cwd: &Path, home: &Path) -> String {
    let out = crate::support::test_in_child(module_path!(), "create_child_helper")
        .env("SYSROOT_MK_FORCE_CHILD_DEST", dest)
        .env("HOME", home)
        .current_dir(cwd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("child printed no result: {stdout}"))
        .to_string()
}

#[test]
fn the_current_directory_and_its_ancestors_are_refused() {
    let parent = tempfile::tempdir().unwrap();
    let here = parent.path().join("sysroot");
    make_sysroot(&here);
    fs::create_dir(here.join("sub")).unwrap();
    let home = parent.path().join("nohome");
    for (dest, cwd) in [
        (".", &here),
        ("..", &here.join("sub")),
        (".", &here.join("sub")),
    ] {
        let result = create_in_child(Path::new(dest), cwd, &home);
        assert!(
            result.starts_with("CurrentDirectory"),
            "{dest} in {cwd:?}: {result}"
        );
    }
    assert_eq!(entries(parent.path()), ["sysroot"]);
    assert_eq!(entries(&here), ["lib", "sub"]);
}

#[test]
fn home_directories_and_their_ancestors_are_refused() {
    let parent = tempfile::tempdir().unwrap();
    let home = parent.path().join("users/me");
    make_sysroot(&home);
    let elsewhere = parent.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    for dest in [&home, &parent.path().join("users")] {
        let result = create_in_child(dest, &elsewhere, &home);
        assert!(result.starts_with("Home"), "{dest:?}: {result}");
    }
    assert!(home.join("lib/apk/db/installed").is_file());
    assert_eq!(entries(parent.path()), ["elsewhere", "users"]);
}

#[test]
fn a_mount_point_is_refused_even_when_it_holds_a_sysroot() {
    if !is_root() {
        eprintln!("skipped: bind mounts need root");
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    make_sysroot(&dest);
    let _bind = Bind::new(&dest, &dest);
    let err = Staging::create(&dest, true).unwrap_err();
    assert!(matches!(err, OutputError::MountPoint { .. }), "{err}");
    assert!(dest.join("lib/apk/db/installed").is_file());
    assert_eq!(entries(parent.path()), ["out"]);
}

#[test]
fn a_host_directory_bind_mounted_inside_an_old_sysroot_survives() {
    if !is_root() {
        eprintln!("skipped: bind mounts need root");
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let host = parent.path().join("host");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("keep"), b"host data").unwrap();
    let dest = parent.path().join("out");
    make_sysroot(&dest);
    fs::create_dir(dest.join("mnt")).unwrap();
    {
        let _bind = Bind::new(&host, &dest.join("mnt"));
        let err = Staging::create(&dest, true).unwrap_err();
        assert!(matches!(err, OutputError::MountInside { .. }), "{err}");
        assert_eq!(fs::read(dest.join("mnt/keep")).unwrap(), b"host data");
    }
    // The mount appears only after the checks: removal itself stops at it.
    let staging = Staging::create(&dest, true).unwrap();
    fs::create_dir(staging.path().join("mnt")).unwrap();
    {
        let _bind = Bind::new(&host, &staging.path().join("mnt"));
        drop(staging);
        assert_eq!(fs::read(host.join("keep")).unwrap(), b"host data");
    }
    assert_eq!(fs::read(host.join("keep")).unwrap(), b"host data");
}

#[test]
fn a_staging_directory_left_by_a_killed_build_is_removed_by_the_next() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    let stale = parent.path().join(".out.sysroot-mk-999999-0");
    fs::create_dir_all(stale.join("etc")).unwrap();
    let unrelated = parent.path().join(".out.sysroot-mk-notes");
    fs::create_dir(&unrelated).unwrap();
    let live = Staging::create(&dest, false).unwrap();
    assert!(!stale.exists(), "an unlocked staging directory is stale");
    assert!(
        unrelated.exists(),
        "a name not of the staging pattern is kept"
    );
    // A second build beside a running one leaves the running one's staging alone.
    let second = Staging::create(&dest, false).unwrap();
    assert!(live.path().is_dir());
    drop(second);
    drop(live);
    assert_eq!(entries(parent.path()), [".out.sysroot-mk-notes"]);
}
