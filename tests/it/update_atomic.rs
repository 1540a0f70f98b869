//! An update killed at any moment leaves the sysroot either exactly as it was (mtimes
//! included) or as the finished update leaves it, never in between: the change is
//! applied in a staging copy and exchanged with the sysroot in one rename.

use crate::update_support;

use std::process::Command;
use std::time::Duration;
use update_support::{copy_tree, manifest, shared_or_skip, tool};

#[test]
fn killed_update_leaves_before_or_after() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let main = shared.join("alpine/v3.19/main");
    let main = main.to_str().unwrap();
    let keys = shared.join("alpine/keys/x86_64");
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    tool(&[
        "-q",
        "--arch",
        "x86_64",
        "--repo",
        main,
        "--keys-dir",
        keys.to_str().unwrap(),
        "--no-cache",
        pristine.to_str().unwrap(),
        "alpine-base",
    ]);
    let before = manifest(&shared, &pristine, true);
    let done = tmp.path().join("done");
    copy_tree(&pristine, &done);
    let started = std::time::Instant::now();
    tool(&[
        "-q",
        "add",
        "--repo",
        main,
        "--no-cache",
        done.to_str().unwrap(),
        "chrony",
    ]);
    // Kills spread over the whole update, the last ones past its usual end.
    let full = started.elapsed().as_millis() as u64;
    let after = manifest(&shared, &done, false);
    assert_ne!(manifest(&shared, &pristine, false), after);

    let mut outcomes = (0, 0);
    let delays: Vec<u64> = [0u64, 5, 15, 30, 45, 60, 75, 90, 110, 150]
        .iter()
        .map(|pct| full * pct / 100)
        .collect();
    for (i, delay_ms) in delays.iter().enumerate() {
        let dir = tmp.path().join(format!("run{i}"));
        copy_tree(&pristine, &dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"))
            .args(["-q", "add", "--repo", main, "--no-cache"])
            .arg(&dir)
            .arg("chrony")
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*delay_ms));
        let signal = if i % 2 == 0 { "KILL" } else { "TERM" };
        let _ = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status();
        let _ = child.wait();
        if manifest(&shared, &dir, true) == before {
            outcomes.0 += 1;
        } else {
            let now = manifest(&shared, &dir, false);
            let between: Vec<&str> = now
                .lines()
                .filter(|l| !after.lines().any(|a| a == *l))
                .take(5)
                .collect();
            assert!(
                now == after,
                "SIG{signal} after {delay_ms} ms left the sysroot between before and after; \
                 first lines unlike after: {between:?}"
            );
            outcomes.1 += 1;
        }
        // What a SIGKILL leaves (a staging sibling) goes with the next run; the sysroot
        // itself takes the update normally.
        tool(&[
            "-q",
            "add",
            "--repo",
            main,
            "--no-cache",
            dir.to_str().unwrap(),
            "chrony",
        ]);
        assert_eq!(manifest(&shared, &dir, false), after);
        let _ = std::fs::remove_dir_all(&dir);
    }
    eprintln!(
        "killed updates: {} left as before, {} as after",
        outcomes.0, outcomes.1
    );
}

/// While apk (or another update) holds `lib/apk/db/lock`, an update waits, touching
/// nothing; it goes on once the lock is released.
#[test]
fn an_update_waits_for_apks_lock() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let main = shared.join("alpine/v3.19/main");
    let main = main.to_str().unwrap();
    let keys = shared.join("alpine/keys/x86_64");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sysroot");
    tool(&[
        "-q",
        "--arch",
        "x86_64",
        "--repo",
        main,
        "--keys-dir",
        keys.to_str().unwrap(),
        "--no-cache",
        dir.to_str().unwrap(),
        "alpine-base",
    ]);
    let before = manifest(&shared, &dir, true);
    let lock = std::fs::File::open(dir.join("lib/apk/db/lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"))
        .args(["-q", "add", "--repo", main, "--no-cache"])
        .arg(&dir)
        .arg("doas")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the update waits for the lock"
    );
    assert_eq!(
        manifest(&shared, &dir, true),
        before,
        "nothing changed while locked"
    );
    drop(lock);
    assert!(child.wait().unwrap().success());
    assert!(dir.join("usr/bin/doas").exists());
}
