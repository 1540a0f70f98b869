//! Every build completes its scripts: rootless (with and without subordinate ids),
//! deferred (`--no-scripts`, no qemu) and then run by `enter`, natively and emulated.

use crate::enter_support;
use crate::tree_support;

use enter_support::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tree_support::{as_user, differences, tree, user_command, user_workspace, Entry};

const PENDING: &str = "lib/apk/sysroot-mk.pending";

/// `tree` with owners passed through `owner` (host ids as a user namespace saw them).
fn tree_seen(root: &Path, owner: &dyn Fn(u32, u32) -> (u32, u32)) -> BTreeMap<String, Entry> {
    tree(root)
        .into_iter()
        .map(|(path, (kind, mode, uid, gid, content))| {
            let (uid, gid) = owner(uid, gid);
            (path, (kind, mode, uid, gid, content))
        })
        .collect()
}

/// The shared repositories and keys, or why not.
fn repo(version: &str, arch: &str) -> Result<(PathBuf, PathBuf), String> {
    if !is_root() {
        return Err("needs root (ownership, test users)".into());
    }
    let alpine = alpine().ok_or("../shared/alpine is missing")?;
    let repo = alpine.join(format!("{version}/main"));
    if !repo.join(arch).is_dir() {
        return Err(format!(
            "no {version} packages for {arch} in ../shared/alpine"
        ));
    }
    Ok((repo, alpine.join(format!("keys/{arch}"))))
}

/// Whether this host can run `arch`'s scripts under a private binfmt_misc instance.
fn can_emulate(arch: &str) -> Result<(), String> {
    if !private_binfmt() {
        return Err("kernel without private binfmt_misc instances (Linux >= 6.7)".into());
    }
    let a = sysroot_mk::arch::Arch::from_name(arch).ok_or("unknown arch")?;
    sysroot_mk::binfmt::find_qemu(a, None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `sysroot-mk --arch ARCH --repo REPO --keys-dir KEYS --no-cache EXTRA OUT alpine-base`.
fn build_command(arch: &str, repo: &Path, keys: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.args(["--arch", arch, "--no-cache"])
        .arg("--repo")
        .arg(repo)
        .arg("--keys-dir")
        .arg(keys)
        .args(extra)
        .arg(out)
        .arg("alpine-base");
    cmd
}

fn succeeded(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        stderr(&out)
    );
    out
}

fn build(arch: &str, repo: &Path, keys: &Path, out: &Path, extra: &[&str]) -> Output {
    succeeded(
        build_command(arch, repo, keys, out, extra)
            .output()
            .unwrap(),
        "the build",
    )
}

#[test]
fn no_scripts_build_then_one_enter_gives_the_tree_of_a_build_with_scripts() {
    let Some((repo, keys)) = or_skip(repo("v3.19", "x86_64")) else {
        return;
    };
    if !namespaces_available() {
        return skip("mount/pid namespaces are not available here");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (with, later) = (tmp.path().join("with"), tmp.path().join("later"));
    build("x86_64", &repo, &keys, &with, &[]);
    let out = build("x86_64", &repo, &keys, &later, &["--no-scripts", "-v"]);
    assert!(
        stderr(&out).contains(&format!(
            "sysroot-mk enter --run-pending {}",
            later.display()
        )),
        "{}",
        stderr(&out)
    );
    let pending = std::fs::read_to_string(later.join(PENDING)).unwrap();
    assert!(pending.contains("busybox\tpost-install\t"), "{pending}");
    assert!(
        pending.contains("busybox\ttrigger\t/sbin\t/bin"),
        "{pending}"
    );
    assert!(
        !later.join("bin/ls").exists(),
        "scripts did not run at build time"
    );

    let entered = succeeded(
        bin()
            .arg("enter")
            .arg(&later)
            .args(["--", "/bin/ls", "/bin/ls"])
            .output()
            .unwrap(),
        "enter",
    );
    assert!(
        stderr(&entered).contains("package scripts of"),
        "enter says it runs the pending scripts: {}",
        stderr(&entered)
    );
    assert_eq!(stdout(&entered).trim(), "/bin/ls");
    assert!(!later.join(PENDING).exists(), "pending scripts run once");
    let again = succeeded(
        bin()
            .arg("enter")
            .arg(&later)
            .args(["--", "/bin/true"])
            .output()
            .unwrap(),
        "enter",
    );
    assert!(!stderr(&again).contains("pending"), "{}", stderr(&again));

    let diffs = differences(&tree(&with), &tree(&later));
    // Directory mtimes are the time of the install and differ; `tree` ignores them.
    assert!(diffs.is_empty(), "{diffs:#?}");
    for db in ["lib/apk/db/installed", "lib/apk/db/triggers"] {
        assert_eq!(
            std::fs::read(with.join(db)).unwrap(),
            std::fs::read(later.join(db)).unwrap(),
            "{db}"
        );
    }
}

#[test]
fn foreign_no_scripts_build_then_run_pending_equals_a_build_with_emulated_scripts() {
    let Some((repo, keys)) = or_skip(repo("v3.13", "aarch64")) else {
        return;
    };
    if or_skip(can_emulate("aarch64")).is_none() {
        return;
    }
    let _host = host_lock();
    let before = host_state();
    let tmp = tempfile::tempdir().unwrap();
    let (with, later) = (tmp.path().join("with"), tmp.path().join("later"));
    build("aarch64", &repo, &keys, &with, &[]);
    assert!(
        with.join("bin/ls").is_symlink(),
        "busybox links made under qemu"
    );
    build("aarch64", &repo, &keys, &later, &["--no-scripts"]);
    let out = succeeded(
        bin()
            .args(["enter", "--run-pending"])
            .arg(&later)
            .output()
            .unwrap(),
        "enter --run-pending",
    );
    assert_eq!(stdout(&out), "", "--run-pending runs no command");
    let diffs = differences(&tree(&with), &tree(&later));
    assert!(diffs.is_empty(), "{diffs:#?}");
    assert_eq!(
        host_state(),
        before,
        "host binfmt_misc and mounts unchanged"
    );
    assert_usable_aarch64_sysroot(&with, &repo);
}

/// What a user does with a fresh aarch64 sysroot: list the applets, run a setuid-root
/// program as another user, and `apk add` from the repository bound inside (its
/// scripts, which add the `sshd` user, run under qemu too).
fn assert_usable_aarch64_sysroot(dir: &Path, repo: &Path) {
    let enter = |extra: &[&str], command: &[&str]| {
        bin()
            .arg("enter")
            .args(extra)
            .arg(dir)
            .arg("--")
            .args(command)
            .output()
            .unwrap()
    };
    let ls = succeeded(enter(&[], &["ls", "/bin"]), "enter ls /bin");
    for applet in ["busybox", "ls", "sh", "mount", "su"] {
        assert!(
            stdout(&ls).split_whitespace().any(|w| w == applet),
            "{applet} in {}",
            stdout(&ls)
        );
    }
    let euid = dir.join("usr/local/bin/euid");
    if build_euid_program(&euid).is_some() {
        std::os::unix::fs::chown(&euid, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&euid, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let out = succeeded(
            enter(
                &["--user", "nobody"],
                &["sh", "-c", "id -u; /usr/local/bin/euid"],
            ),
            "the setuid program",
        );
        assert_eq!(stdout(&out), "65534\n0\n");
        std::fs::remove_file(&euid).unwrap();
    } else {
        skip("aarch64-linux-gnu-gcc is missing: no setuid check");
    }
    let bind = format!("{}:/repo:ro", repo.display());
    let out = succeeded(
        enter(
            &["--bind", &bind],
            &[
                "apk",
                "add",
                "--no-cache",
                "--repository",
                "/repo",
                "openssh",
            ],
        ),
        "apk add openssh",
    );
    assert!(
        stdout(&out).contains("Installing openssh-server"),
        "{}",
        stdout(&out)
    );
    let passwd = std::fs::read_to_string(dir.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains("\nsshd:"),
        "openssh-server's pre-install ran: {passwd}"
    );
}

#[test]
fn foreign_build_without_qemu_records_scripts_and_names_the_command() {
    let Some((repo, keys)) = or_skip(repo("v3.13", "aarch64")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("a64");
    // No qemu on this PATH (and no host handler in the way: the build may not fall back
    // to one it cannot find either).
    let out = build_command("aarch64", &repo, &keys, &out_dir, &[])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    if stderr(&out).contains("through the host's binfmt_misc entry") {
        return skip("the host has an aarch64 handler registered");
    }
    let out = succeeded(out, "the build");
    let err = stderr(&out);
    assert!(err.contains("qemu-user-static"), "{err}");
    assert!(err.contains("sysroot-mk enter --run-pending"), "{err}");
    assert!(out_dir.join(PENDING).is_file());
}

/// A test user's ids and subordinate ranges (first id, count).
struct TestUser {
    uid: u32,
    gid: u32,
    sub_uid: (u32, u32),
    sub_gid: (u32, u32),
}

/// A test user with subordinate ids (useradd gives new users a range), created once.
fn builder_user() -> Result<TestUser, String> {
    const NAME: &str = "srmk-rootless";
    if !on_path("newuidmap") || !on_path("useradd") {
        return Err("newuidmap or useradd is missing (apt-get install uidmap)".into());
    }
    let _ = Command::new("useradd")
        .args(["-m", "-s", "/bin/sh", NAME])
        .output();
    let user = nix::unistd::User::from_name(NAME)
        .ok()
        .flatten()
        .ok_or("cannot create the test user")?;
    let range = |file: &str| -> Option<(u32, u32)> {
        let text = std::fs::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 3 && f[0] == NAME)
                .then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))?
        })
    };
    let (Some(sub_uid), Some(sub_gid)) = (range("/etc/subuid"), range("/etc/subgid")) else {
        return Err("useradd gave the test user no subordinate ids".into());
    };
    Ok(TestUser {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        sub_uid,
        sub_gid,
    })
}

/// The test user's build of alpine-base for `arch`, not yet started.
fn user_build_command(
    exe: &Path,
    ids: (u32, u32),
    path: &str,
    arch: &str,
    repo: &Path,
    keys: &Path,
    out: &Path,
) -> Command {
    let args: Vec<&std::ffi::OsStr> = vec![
        "--arch".as_ref(),
        arch.as_ref(),
        "--no-cache".as_ref(),
        "--repo".as_ref(),
        repo.as_os_str(),
        "--keys-dir".as_ref(),
        keys.as_os_str(),
        out.as_os_str(),
        "alpine-base".as_ref(),
    ];
    user_command(exe, ids, path, &[], &args)
}

fn user_build(
    exe: &Path,
    ids: (u32, u32),
    path: &str,
    arch: &str,
    repo: &Path,
    keys: &Path,
    out: &Path,
) -> Output {
    user_build_command(exe, ids, path, arch, repo, keys, out)
        .output()
        .unwrap()
}

#[test]
fn sigterm_to_a_rootless_builds_parent_reaches_the_build_which_cleans_up() {
    let Some((repo, keys)) = or_skip(repo("v3.13", "aarch64")) else {
        return;
    };
    // Scripts under qemu keep the build running long enough to be interrupted.
    if or_skip(can_emulate("aarch64")).is_none() {
        return;
    }
    let Some(TestUser { uid, gid, .. }) = or_skip(builder_user()) else {
        return;
    };
    let (_tmp, work, exe) = user_workspace(uid, gid);
    let mut build = user_build_command(
        &exe,
        (uid, gid),
        "/usr/sbin:/usr/bin:/sbin:/bin",
        "aarch64",
        &repo,
        &keys,
        &work.join("a64"),
    );
    let child = build
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    // The parent: it writes the id maps and waits; the build runs in its child.
    let parent = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(parent, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        return skip("the build finished before the signal arrived");
    }
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

fn rootless_equals_root(version: &str, arch: &str) {
    let Some((repo, keys)) = or_skip(repo(version, arch)) else {
        return;
    };
    let Some(TestUser {
        uid,
        gid,
        sub_uid,
        sub_gid,
    }) = or_skip(builder_user())
    else {
        return;
    };
    let (tmp, work, exe) = user_workspace(uid, gid);
    let (rootless, reference) = (work.join("rootless"), tmp.path().join("root"));
    let out = user_build(
        &exe,
        (uid, gid),
        "/usr/sbin:/usr/bin:/sbin:/bin",
        arch,
        &repo,
        &keys,
        &rootless,
    );
    if stderr(&out).contains("cannot create a user namespace") {
        return skip("user namespaces are not available to unprivileged users here");
    }
    let out = succeeded(out, "the rootless build");
    assert!(
        !stderr(&out).contains("no subordinate ids"),
        "{}",
        stderr(&out)
    );
    build(arch, &repo, &keys, &reference, &[]);

    // Host ids as the namespace saw them: the user is 0, the ranges are 1...
    let inside = |id: u32, own: u32, (start, count): (u32, u32)| {
        if id == own {
            0
        } else if (start..start + count).contains(&id) {
            id - start + 1
        } else {
            u32::MAX
        }
    };
    let seen = |u: u32, g: u32| (inside(u, uid, sub_uid), inside(g, gid, sub_gid));
    // A user namespace cannot make device nodes: the root build's are its only extra
    // entries.
    let mut expected = tree(&reference);
    expected.retain(|_, (kind, ..)| *kind != 'c');
    let diffs = differences(&expected, &tree_seen(&rootless, &seen));
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn rootless_x86_64_build_with_subordinate_ids_equals_the_root_build_through_the_mapping() {
    rootless_equals_root("v3.19", "x86_64");
}

#[test]
fn rootless_aarch64_build_with_subordinate_ids_equals_the_root_build_through_the_mapping() {
    if or_skip(can_emulate("aarch64")).is_none() {
        return;
    }
    rootless_equals_root("v3.13", "aarch64");
}

#[test]
fn rootless_build_without_subordinate_ids_says_what_it_could_not_apply_and_enter_works() {
    let Some((repo, keys)) = or_skip(repo("v3.19", "x86_64")) else {
        return;
    };
    let Some(TestUser { uid, gid, .. }) = or_skip(builder_user()) else {
        return;
    };
    if !namespaces_available() {
        return skip("mount/pid namespaces are not available here");
    }
    let (tmp, work, exe) = user_workspace(uid, gid);
    let out_dir = work.join("single");
    // Without newuidmap on PATH only the user's own id can be mapped.
    let out = user_build(
        &exe,
        (uid, gid),
        "/nonexistent",
        "x86_64",
        &repo,
        &keys,
        &out_dir,
    );
    let out = succeeded(out, "the rootless build");
    let err = stderr(&out);
    assert!(err.contains("no subordinate ids"), "{err}");
    assert_eq!(
        err.matches("no subordinate ids").count(),
        1,
        "said once: {err}"
    );
    assert!(out_dir.join("bin/ls").is_symlink(), "scripts ran");
    let reference = tmp.path().join("root");
    build("x86_64", &repo, &keys, &reference, &[]);
    assert_eq!(
        std::fs::read(out_dir.join("lib/apk/db/installed")).unwrap(),
        std::fs::read(reference.join("lib/apk/db/installed")).unwrap(),
        "owners recorded in the database as for root"
    );
    let shadow = std::fs::symlink_metadata(out_dir.join("etc/shadow")).unwrap();
    assert_eq!(
        (shadow.uid(), shadow.gid()),
        (uid, gid),
        "files are the user's"
    );

    let args: Vec<&std::ffi::OsStr> = vec![
        "enter".as_ref(),
        out_dir.as_os_str(),
        "--".as_ref(),
        "/bin/busybox".as_ref(),
        "id".as_ref(),
        "-u".as_ref(),
    ];
    let entered = succeeded(
        as_user(&exe, (uid, gid), "/nonexistent", &[], &args),
        "enter",
    );
    assert_eq!(stdout(&entered).trim(), "0");
}

#[test]
fn pending_scripts_read_back_from_a_sysroot_run_as_the_sessions_root_not_the_hosts() {
    let Some((repo, keys)) = or_skip(repo("v3.19", "x86_64")) else {
        return;
    };
    if !namespaces_available() {
        return skip("mount/pid namespaces are not available here");
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("planted");
    build("x86_64", &repo, &keys, &dir, &["--no-scripts"]);
    // Someone who was root inside rewrote a recorded script: what it does must stay inside.
    let mut db = sysroot_mk::db::read_database(&dir).unwrap();
    let pkg = db
        .iter_mut()
        .find(|p| p.package.name == "alpine-baselayout")
        .unwrap();
    let body = b"#!/bin/sh\ncat /proc/self/uid_map > /uid_map\n".to_vec();
    pkg.scripts.retain(|s| s.action != "post-install");
    pkg.scripts.push(sysroot_mk::db::Script {
        action: "post-install".into(),
        body,
    });
    let world = vec!["alpine-base".to_string()];
    sysroot_mk::db::write_database(&dir, &db, &world, "x86_64").unwrap();
    let out = succeeded(
        bin()
            .args(["enter", "--run-pending"])
            .arg(&dir)
            .output()
            .unwrap(),
        "enter --run-pending",
    );
    let map = std::fs::read_to_string(dir.join("uid_map"))
        .unwrap_or_else(|e| panic!("the planted script did not run ({e}): {}", stderr(&out)));
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"0"), "{map}");
    assert_ne!(
        fields.get(1),
        Some(&"0"),
        "root inside must not be host root: {map}"
    );
}
