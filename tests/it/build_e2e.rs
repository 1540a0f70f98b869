//! End-to-end builds with the real binary on the real Alpine 3.19 data: the sysroot
//! must be what apk 2.14 builds, and failures must leave nothing behind.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::http::TestServer;

const DB_FILES: &[&str] = &[
    "lib/apk/db/installed",
    "lib/apk/db/scripts.tar",
    "lib/apk/db/triggers",
    "etc/apk/world",
    "etc/apk/arch",
];

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"));
    cmd.env_remove("HTTPS_PROXY").env_remove("HTTP_PROXY");
    cmd
}

/// `sysroot-mk -q --arch x86_64 --keys-dir <x86_64 keys> --no-cache --repo REPO OUT PKGS...`
fn build(shared: &Path, repo: &str, out: &Path, packages: &[&str], extra: &[&str]) -> Output {
    bin()
        .args(["-q", "--arch", "x86_64", "--no-cache", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .args(["--repo", repo])
        .args(extra)
        .arg(out)
        .args(packages)
        .output()
        .unwrap()
}

/// [`build`] from the shared 100-package v3.19 main repository.
fn build_from_main(shared: &Path, out: &Path, packages: &[&str], extra: &[&str]) -> Output {
    let repo = shared.join("v3.19/main");
    build(shared, repo.to_str().unwrap(), out, packages, extra)
}

/// Where a build may write: `sysroot` in a new temporary folder (kept while the guard lives).
fn scratch_out() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sysroot");
    (tmp, out)
}

fn fixture_db(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/db")
        .join(name)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The shared data when present and we are root; otherwise `None`, after printing
/// `skipped:` and the reason (`why_root` when root is what is missing).
fn shared_as_root(why_root: &str) -> Option<PathBuf> {
    let shared = support::shared_or_skip()?;
    if !is_root() {
        eprintln!("skipped: {why_root}");
        return None;
    }
    Some(shared)
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The database files equal the ones apk 2.14.4 wrote for the same request
/// (recorded in `fixtures/db/<set>` by `fixtures/db/gen.sh`).
fn assert_database_matches_apk(root: &Path, set: &str) {
    for file in DB_FILES {
        let ours = std::fs::read(root.join(file)).unwrap();
        let apk = std::fs::read(fixture_db(set).join(file.rsplit('/').next().unwrap())).unwrap();
        assert!(ours == apk, "`{file}` differs from apk's for `{set}`");
    }
}

/// Nothing named after `out` is left in its parent: no sysroot, no staging directory.
fn assert_nothing_left(out: &Path) {
    assert!(
        !out.exists(),
        "`{}` exists after a failed build",
        out.display()
    );
    let name = out.file_name().unwrap().to_string_lossy().to_string();
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(&name))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn alpine_base_database_is_byte_identical_to_apk() {
    let Some(shared) = shared_as_root("the apk reference ran scripts as root; run as root") else {
        return;
    };
    let (_tmp, out) = scratch_out();
    let result = build_from_main(&shared, &out, &["alpine-base"], &[]);
    assert_ok(&result);
    assert_database_matches_apk(&out, "alpine-base");
    // What apk leaves to its caller is there too.
    assert_eq!(
        std::fs::read_to_string(out.join("etc/apk/repositories")).unwrap(),
        format!("{}\n", shared.join("v3.19/main").display())
    );
    assert!(out
        .join("etc/apk/keys/alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub")
        .is_file());
    assert!(out.join("etc/ssl/certs/ca-certificates.crt").is_file());
    // busybox's post-install and trigger ran: its applet and bbsuid links exist.
    assert!(out.join("bin/ls").is_symlink());
    assert!(out.join("usr/bin/passwd").is_symlink());
}

#[test]
fn all_co_installable_packages_match_apk_over_http() {
    let Some(shared) = shared_as_root("the apk reference ran scripts as root; run as root") else {
        return;
    };
    let world: Vec<String> = std::fs::read_to_string(fixture_db("all98").join("world"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let served = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(shared.join("v3.19"), served.path().join("v3.19")).unwrap();
    let server = TestServer::serve(served.path());
    let (_tmp, out) = scratch_out();
    let names: Vec<&str> = world.iter().map(String::as_str).collect();
    let url = format!("{}/v3.19/main", server.base);
    let result = build(&shared, &url, &out, &names, &[]);
    assert_ok(&result);
    assert_database_matches_apk(&out, "all98");
}

#[test]
fn simulate_prints_only_the_plan_and_writes_nothing() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let (_tmp, out) = scratch_out();
    let result = build_from_main(&shared, &out, &["alpine-base"], &["--simulate"]);
    assert_ok(&result);
    let plan = String::from_utf8(result.stdout).unwrap();
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(lines.len(), 25, "{plan}");
    assert_eq!(lines.first(), Some(&"alpine-baselayout-data-3.4.3-r2"));
    assert_eq!(lines.last(), Some(&"alpine-base-3.19.1-r0"));
    assert!(lines.contains(&"musl-1.2.4_git20230717-r4"));
    assert!(!out.exists());
}

#[test]
fn wrong_arch_keys_are_refused_and_leave_nothing() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let (_tmp, out) = scratch_out();
    let result = bin()
        .args(["--arch", "x86_64", "--no-cache", "--keys-dir"])
        .arg(shared.join("keys/aarch64"))
        .arg("--repo")
        .arg(shared.join("v3.19/main"))
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("6165ee59") && stderr.contains("--allow-untrusted"),
        "{stderr}"
    );
    assert_nothing_left(&out);
}

/// A copy of the v3.19 repository whose `.apk` files are links, except `name`,
/// which is a real copy passed through `damage`.
fn repo_with_damaged(
    shared: &Path,
    name: &str,
    damage: impl Fn(&mut Vec<u8>),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let arch_dir = dir.path().join("x86_64");
    std::fs::create_dir(&arch_dir).unwrap();
    for entry in std::fs::read_dir(shared.join("v3.19/main/x86_64")).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name().to_string_lossy().to_string();
        if file.starts_with(name) {
            let mut bytes = std::fs::read(entry.path()).unwrap();
            damage(&mut bytes);
            if !bytes.is_empty() {
                std::fs::write(arch_dir.join(&file), bytes).unwrap();
            }
        } else {
            std::os::unix::fs::symlink(entry.path(), arch_dir.join(&file)).unwrap();
        }
    }
    dir
}

fn assert_refused(shared: &Path, repo: &Path, expect: &[&str]) {
    let (_tmp, out) = scratch_out();
    let result = build(shared, repo.to_str().unwrap(), &out, &["alpine-base"], &[]);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    for needle in expect {
        assert!(stderr.contains(needle), "`{needle}` not in:\n{stderr}");
    }
    assert_nothing_left(&out);
}

#[test]
fn tampered_package_fails_the_build_and_leaves_nothing() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    // Flip a byte near the end: inside the data member, so only `datahash` catches it.
    let repo = repo_with_damaged(&shared, "zlib-1.3.1-r0.apk", |b| {
        let at = b.len() - 100;
        b[at] ^= 0xff;
    });
    assert_refused(&shared, repo.path(), &["zlib"]);
}

#[test]
fn truncated_package_fails_the_build_and_leaves_nothing() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let repo = repo_with_damaged(&shared, "busybox-1.36.1-r15.apk", |b| {
        b.truncate(b.len() / 2)
    });
    assert_refused(&shared, repo.path(), &["busybox"]);
}

#[test]
fn package_missing_from_the_repository_fails_and_names_it() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let repo = repo_with_damaged(&shared, "musl-1.2.4_git20230717-r4.apk", |b| b.clear());
    assert_refused(
        &shared,
        repo.path(),
        &["musl", "musl-1.2.4_git20230717-r4.apk"],
    );
}

#[test]
fn existing_non_empty_directory_is_kept_unless_forced() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let (_tmp, out) = scratch_out();
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("precious"), b"keep").unwrap();
    let result = build_from_main(&shared, &out, &["musl"], &[]);
    assert_eq!(result.status.code(), Some(1));
    assert_eq!(std::fs::read(out.join("precious")).unwrap(), b"keep");

    // `--force` replaces only a sysroot (issue 9): make it look like one.
    std::fs::create_dir_all(out.join("lib/apk/db")).unwrap();
    std::fs::write(out.join("lib/apk/db/installed"), b"").unwrap();
    let result = build_from_main(&shared, &out, &["musl"], &["--force"]);
    assert_ok(&result);
    assert!(!out.join("precious").exists());
    assert!(out.join("lib/ld-musl-x86_64.so.1").exists());
}

#[test]
fn usage_errors_exit_2() {
    let result = bin().arg("--arch").arg("x86_64").output().unwrap();
    assert_eq!(result.status.code(), Some(2));
    let result = bin()
        .args(["--arch", "sparc", "/tmp/never-created"])
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(2));
    assert!(!Path::new("/tmp/never-created").exists());
}

#[test]
fn doas_works_for_a_user_of_a_built_sysroot() {
    // Issue 4's acceptance on a sysroot this tool built: setuid doas elevates a user.
    let Some(shared) = shared_as_root("building with scripts and entering need root") else {
        return;
    };
    let (_tmp, out) = scratch_out();
    assert_ok(&build_from_main(
        &shared,
        &out,
        &["alpine-base", "doas"],
        &[],
    ));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("usr/bin/doas"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o7777, 0o4755);
    std::fs::write(out.join("etc/doas.conf"), "permit nopass :wheel\n").unwrap();
    let enter = |args: &[&str]| bin().arg("enter").args(args).output().unwrap();
    let added = enter(&[
        out.to_str().unwrap(),
        "--",
        "adduser",
        "-D",
        "-G",
        "wheel",
        "reborn",
    ]);
    assert_ok(&added);
    let result = enter(&[
        "--user",
        "reborn",
        out.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "id -u; doas id -u",
    ]);
    assert_ok(&result);
    assert_eq!(String::from_utf8_lossy(&result.stdout), "1000\n0\n");
}

/// Runs the binary with its stdout closed before it writes (`... | head` that has read
/// enough): it must exit 0 without a panic message.
fn assert_quiet_on_closed_stdout(args: &[&std::ffi::OsStr]) {
    let mut child = bin()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn closed_stdout_ends_simulate_and_binfmt_status_quietly() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let keys = shared.join("keys/x86_64");
    let repo = shared.join("v3.19/main");
    let args: Vec<&std::ffi::OsStr> = vec![
        "--arch".as_ref(),
        "x86_64".as_ref(),
        "--keys-dir".as_ref(),
        keys.as_os_str(),
        "--repo".as_ref(),
        repo.as_os_str(),
        "--simulate".as_ref(),
        "/tmp/sysroot-mk-never-created".as_ref(),
        "alpine-base".as_ref(),
    ];
    assert_quiet_on_closed_stdout(&args);
    if is_root() {
        assert_quiet_on_closed_stdout(&["binfmt".as_ref(), "status".as_ref()]);
    }
}
