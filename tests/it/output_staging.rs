//! Atomic output: the sysroot appears at its destination only when complete.

use std::fs;
use std::path::Path;
use std::time::Duration;

use sysroot_mk::output::{self, OutputError, Staging, Summary};

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn staging_is_a_hidden_sibling_and_commit_renames_it_into_place() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    let staging = Staging::create(&dest, false).unwrap();
    assert_eq!(staging.path().parent(), Some(parent.path()));
    assert!(staging
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with(".out."));
    fs::write(staging.path().join("etc"), b"x").unwrap();
    assert!(!dest.exists(), "nothing at the destination before commit");
    staging.commit().unwrap();
    assert_eq!(entries(parent.path()), ["out"]);
    assert_eq!(fs::read(dest.join("etc")).unwrap(), b"x");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
        0o755
    );
}

#[test]
fn an_empty_destination_directory_is_replaced() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    fs::create_dir(&dest).unwrap();
    let staging = Staging::create(&dest, false).unwrap();
    fs::write(staging.path().join("new"), b"").unwrap();
    staging.commit().unwrap();
    assert_eq!(entries(&dest), ["new"]);
    assert_eq!(entries(parent.path()), ["out"]);
}

#[test]
fn a_non_empty_destination_is_refused_without_force() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("old"), b"").unwrap();
    let err = Staging::create(&dest, false).unwrap_err();
    assert!(matches!(err, OutputError::NotEmpty { .. }));
    // The fix is the error's hint, shown on its own line.
    let hint = sysroot_mk::report::Hinted::hint(&err);
    assert!(
        matches!(&hint, Some(sysroot_mk::report::Hint::Fix(fix)) if fix.contains("--force")),
        "{hint:?}"
    );
    assert_eq!(entries(parent.path()), ["out"], "no staging directory left");
}

#[test]
fn force_swaps_the_old_tree_out_and_removes_it() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    fs::create_dir_all(dest.join("old/deep")).unwrap();
    fs::create_dir_all(dest.join("lib/apk/db")).unwrap();
    fs::write(dest.join("lib/apk/db/installed"), b"").unwrap();
    let staging = Staging::create(&dest, true).unwrap();
    fs::write(staging.path().join("new"), b"").unwrap();
    staging.commit().unwrap();
    assert_eq!(entries(&dest), ["new"]);
    assert_eq!(entries(parent.path()), ["out"], "old tree removed");
}

#[test]
fn a_file_at_the_destination_is_refused_even_with_force() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    fs::write(&dest, b"").unwrap();
    assert!(matches!(
        Staging::create(&dest, true),
        Err(OutputError::NotADirectory { .. })
    ));
}

#[test]
fn dropping_an_uncommitted_build_removes_it() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    let staging = Staging::create(&dest, false).unwrap();
    fs::create_dir_all(staging.path().join("proc")).unwrap();
    fs::write(staging.path().join("file"), b"").unwrap();
    drop(staging);
    assert!(entries(parent.path()).is_empty());
}

/// Not a test on its own: the body of `sigterm_during_a_build_leaves_nothing`, run in a
/// child process of this test binary (it returns at once unless that test started it).
#[test]
fn signal_child_helper() {
    let Some(dest) = std::env::var_os("SYSROOT_MK_SIGNAL_CHILD_DEST") else {
        return;
    };
    output::handle_interrupts().unwrap();
    let staging = Staging::create(Path::new(&dest), false).unwrap();
    fs::create_dir_all(staging.path().join("usr/bin")).unwrap();
    fs::write(Path::new(&dest).with_extension("ready"), b"").unwrap();
    while !output::interrupted() {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The watcher thread removes the staging tree and exits the process.
    loop {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_during_a_build_leaves_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    let ready = dest.with_extension("ready");
    let mut child = crate::support::test_in_child(module_path!(), "signal_child_helper")
        .env("SYSROOT_MK_SIGNAL_CHILD_DEST", &dest)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the child to be mid-build (bounded so a broken child cannot hang CI).
    for _ in 0..3000 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ready.exists(), "child never started its build");
    assert_eq!(
        entries(parent.path()).len(),
        2,
        "staging dir and marker exist mid-build"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert_eq!(
        entries(parent.path()),
        ["out.ready"],
        "staging removed, no destination"
    );
}

#[test]
fn summary_reads_like_apks() {
    let s = Summary {
        packages: 25,
        installed_bytes: 10_715_136,
        downloaded_bytes: 0,
        elapsed: Duration::from_millis(210),
        errors: 0,
    };
    assert_eq!(s.apk_line(), "OK: 10 MiB in 25 packages");
    assert_eq!(s.to_string(), "OK: 10 MiB in 25 packages, 0.21 s");
    let s = Summary {
        errors: 2,
        downloaded_bytes: 3_654_813,
        ..s
    };
    assert_eq!(s.apk_line(), "2 errors; 10 MiB in 25 packages");
    assert_eq!(
        s.to_string(),
        "2 errors; 10 MiB in 25 packages, 3.5 MiB downloaded, 0.21 s"
    );
}

/// A default ACL holding group `r-x` and nothing for others, as
/// `setfacl -d -m u::rwx,g::rx,o::-` writes it (`system.posix_acl_default`).
fn default_acl_others_nothing() -> Vec<u8> {
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 7u16), (0x04, 5), (0x20, 0)] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(u32::MAX.to_le_bytes());
    }
    acl
}

#[test]
fn a_parents_default_acl_does_not_cut_the_modes_of_the_tree() {
    let parent = tempfile::tempdir().unwrap();
    let acl = default_acl_others_nothing();
    if let Err(e) = rustix::fs::setxattr(
        parent.path(),
        "system.posix_acl_default",
        &acl,
        rustix::fs::XattrFlags::empty(),
    ) {
        eprintln!("skipped: this filesystem takes no default ACL ({e})");
        return;
    }
    let dest = parent.path().join("out");
    let staging = Staging::create(&dest, false).unwrap();
    let names = rustix::fs::listxattr(staging.path(), &mut [0u8; 256][..]).unwrap();
    assert_eq!(names, 0, "the staging directory kept ACLs");
    // Files and directories come out as they do where no ACL is (through the umask).
    let plain = tempfile::tempdir().unwrap();
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let make = |dir: &Path| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(dir.join("file"))
            .unwrap();
        fs::DirBuilder::new()
            .mode(0o755)
            .create(dir.join("dir"))
            .unwrap();
        ["file", "dir"]
            .map(|name| fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o7777)
    };
    assert_eq!(make(staging.path()), make(plain.path()));
}
