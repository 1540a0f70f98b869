//! Package scripts of foreign arches, run by sysroot-mk through qemu in a private
//! binfmt_misc instance, must leave the tree and the database real apk leaves when it
//! runs them through a host qemu handler: aarch64 `alpine-base` from the real v3.13
//! packages, and small repositories cut from the riscv64 and s390x (big-endian)
//! minirootfs. The host's binfmt table and mounts must not change across sysroot-mk's
//! run. Needs root, ../shared, python3, qemu-user-static and Linux >= 6.7.

use crate::enter_support;
use crate::foreign_support;
use crate::support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use enter_support::{host_lock, or_skip};
use foreign_support::*;

/// Prints the timings the issue asks for.
fn report_times(arch: &str, ours: Duration, apk: Duration) {
    eprintln!(
        "{arch}: sysroot-mk {:.1}s, apk under a host handler {:.1}s (ratio {:.2})",
        ours.as_secs_f64(),
        apk.as_secs_f64(),
        ours.as_secs_f64() / apk.as_secs_f64()
    );
}

/// Builds `out` with sysroot-mk and fails the test if the host's binfmt table or this
/// process's mounts differ afterwards; how long the build took.
fn build_leaving_host_alone(
    arch: &str,
    repo: &Path,
    keys: &Path,
    out: &Path,
    packages: &[&str],
) -> Duration {
    let before = host_state();
    let took = build(arch, repo, keys, out, packages);
    assert_eq!(
        host_state(),
        before,
        "sysroot-mk changed the host's binfmt table or mounts"
    );
    took
}

#[test]
fn aarch64_alpine_base_equals_apk_running_its_scripts_under_qemu() {
    let Some(shared) = or_skip(prerequisites("aarch64")) else {
        return;
    };
    let (repo, keys) = (
        shared.join("alpine/v3.13/main"),
        shared.join("alpine/keys/aarch64"),
    );
    if !repo.join("aarch64/APKINDEX.tar.gz").is_file() || !keys.is_dir() {
        return enter_support::skip("../shared/alpine/v3.13/main (aarch64) is absent");
    }
    let _host = host_lock();
    if or_skip(no_host_handler("aarch64")).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (out, reference) = (tmp.path().join("out"), tmp.path().join("ref"));

    let ours = build_leaving_host_alone("aarch64", &repo, &keys, &out, &["alpine-base"]);
    let bin = enter(&out, &["ls", "/bin"]);
    for applet in ["ls", "sh", "mount"] {
        assert!(
            bin.lines().any(|l| l == applet),
            "no `{applet}` in /bin:\n{bin}"
        );
    }
    // Only now: sysroot-mk must not have found a host handler to use.
    let apk = {
        let _handler = OracleHandler::register("aarch64");
        let options = [
            "--chroot-keys-dir",
            "/usr/share/apk/keys/aarch64",
            "-X",
            "/repo/v3.13/main",
        ];
        oracle(&shared, "aarch64", &options, &reference, &["alpine-base"])
    };
    report_times("aarch64", ours, apk);

    assert_same_tree(&shared, &reference, &out, tmp.path(), &[]);
    assert_same_database(&reference, &out);
}

/// The generated repository of `arch` built by sysroot-mk and by apk: same tree, same
/// database, the busybox trigger got apk's arguments in apk's order (that of its hash
/// table of directories), and the scripts visibly ran under emulation (`uname -m` says
/// `machine`).
fn scripts_match_apk_on(arch: &str, machine: &str) {
    let Some(shared) = or_skip(prerequisites(arch)) else {
        return;
    };
    let tarball = shared.join(format!(
        "alpine/minirootfs/alpine-minirootfs-3.20.3-{arch}.tar.gz"
    ));
    if !tarball.is_file() {
        return enter_support::skip(&format!("{} is absent", tarball.display()));
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, out, reference) = (
        tmp.path().join("repo"),
        tmp.path().join("out"),
        tmp.path().join("ref"),
    );
    write_test_repo(&tarball, arch, &repo);
    let keys = support::keys_dir(&[support::TEST_KEY]);
    let packages = ["busybox", "base-users"];
    let _host = host_lock();
    if or_skip(no_host_handler(arch)).is_none() {
        return;
    }

    let ours = build_leaving_host_alone(arch, &repo, keys.path(), &out, &packages);
    let apk = {
        let _handler = OracleHandler::register(arch);
        let options = [
            "--keys-dir".into(),
            keys.path().display().to_string(),
            "--bind".into(),
            format!("{}:/foreign-repo:ro", repo.display()),
            "-X".into(),
            "/foreign-repo".into(),
        ];
        oracle(&shared, arch, &options, &reference, &packages)
    };
    report_times(arch, ours, apk);

    assert_same_tree(&shared, &reference, &out, tmp.path(), &[TRIGGER_LOG]);
    assert_same_database(&reference, &out);
    let logged = |tree: &Path| std::fs::read_to_string(tree.join(TRIGGER_LOG)).unwrap();
    assert_eq!(logged(&out), logged(&reference), "trigger arguments");
    let ran = std::fs::read_to_string(out.join(MACHINE_FILE)).unwrap();
    assert_eq!(ran.trim(), machine, "the post-install ran under emulation");
    let owner = std::fs::symlink_metadata(out.join(TESTER_FILE)).unwrap();
    assert_eq!(
        (owner.uid(), owner.gid()),
        TESTER_IDS,
        "owner names looked up after the pre-install added them"
    );
}

#[test]
fn riscv64_scripts_equal_apks() {
    scripts_match_apk_on("riscv64", "riscv64");
}

#[test]
fn s390x_scripts_equal_apks() {
    scripts_match_apk_on("s390x", "s390x");
}
