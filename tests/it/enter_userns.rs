//! Root inside is not root outside (issue 8, finding 1): `enter` run by root maps the
//! session to an unprivileged range of host ids and shows the sysroot through an
//! id-mapped mount; and whatever the map, qemu runs setuid programs behind sysroot-mk's
//! guard, which drops the caller's `QEMU_*` variables (`QEMU_LD_PREFIX`, `QEMU_STRACE`,
//! `QEMU_LOG_FILENAME`) on a secure execution, so not even `--userns identity` hands a
//! user inside a loader of their choosing running as root.

use crate::enter_support;

use enter_support::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The stand-in for a hostile dynamic loader: reads a root-only host file and creates a
/// file in a host directory, and says what it got.
const FAKE_LOADER: &str = r#"#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
int main(void) {
    char buf[64];
    int fd = open("/host/secret/shadow", O_RDONLY);
    int n = fd >= 0 ? (int)read(fd, buf, sizeof buf - 1) : -1;
    if (n > 0) { buf[n] = 0; printf("read:%s", buf); } else printf("secret-denied\n");
    int c = open("/host/drop/owned", O_CREAT | O_WRONLY, 0644);
    printf(c >= 0 ? "created\n" : "create-denied\n");
    printf("fake-loader-euid=%d\n", (int)geteuid());
    return 0;
}
"#;

struct Attack {
    dir: tempfile::TempDir,
    secret: tempfile::TempDir,
    drop: tempfile::TempDir,
}

/// An aarch64 sysroot with `builder`, a setuid-root static program (`euid`), a setuid-root
/// copy of the dynamic busybox (`/usr/local/suid/busybox`) and the fake loader in builder's home; a
/// root-only host file and a world-writable host directory to bind in.
fn attack() -> Result<Attack, String> {
    if !is_root() {
        return Err("needs root (the finding is about root running enter)".into());
    }
    let dir = aarch64_with_setuid_program()?;
    let root = dir.path();
    add_builder(root);
    // Named `busybox`, so that it takes the applet from its first argument.
    let suidbox = root.join("usr/local/suid/busybox");
    std::fs::create_dir_all(suidbox.parent().unwrap()).unwrap();
    std::fs::copy(root.join("bin/busybox"), &suidbox).unwrap();
    make_setuid_root(&suidbox);
    let fake = root.join("home/builder/fake/lib");
    std::fs::create_dir_all(&fake).unwrap();
    let loader = fake.join("ld-musl-aarch64.so.1");
    build_aarch64_program(&loader, FAKE_LOADER).ok_or("cannot build the fake loader")?;
    std::os::unix::fs::chown(&loader, Some(1000), Some(1000)).unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("shadow"), "root:host-secret:1::::::\n").unwrap();
    std::fs::set_permissions(
        secret.path().join("shadow"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let drop = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        drop.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    Ok(Attack { dir, secret, drop })
}

/// What builder runs: the setuid programs with qemu's variables set, then (last, so that
/// its file cannot pre-empt the setuid run's) the same variables on programs of builder's
/// own, where they must still work.
const SCRIPT: &str = "\
    QEMU_LD_PREFIX=/home/builder/fake /usr/local/suid/busybox echo real-loader; \
    echo euid=$(QEMU_LD_PREFIX=/home/builder/fake /usr/local/bin/euid); \
    QEMU_STRACE=1 QEMU_LOG_FILENAME=/host/drop/suid-log /usr/local/bin/euid >/dev/null; \
    QEMU_STRACE=1 QEMU_LOG_FILENAME=/host/drop/user-log /bin/true; \
    QEMU_LD_PREFIX=/home/builder/fake /bin/busybox true";

/// Runs the attack as `builder` with `extra` options; stdout and stderr.
fn run_attack(a: &Attack, extra: &[&str]) -> (String, String) {
    let secret = format!("{}:/host/secret:ro", a.secret.path().display());
    let drop = format!("{}:/host/drop", a.drop.path().display());
    let mut args = vec!["--user", "builder", "--bind", &secret, "--bind", &drop];
    args.extend_from_slice(extra);
    let out = enter(a.dir.path(), &args, &["sh", "-c", SCRIPT]);
    (stdout(&out), stderr(&out))
}

fn owner(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.uid())
}

/// What must hold under every id map.
fn assert_qemu_ignores_the_caller_for_setuid(a: &Attack, out: &str, err: &str) {
    // The fake loader works (it ran for builder's own busybox, as builder) ...
    assert!(
        out.contains("fake-loader-euid=1000\n"),
        "the fake loader never ran, the test proves nothing: {out} {err}"
    );
    // ... but not for the setuid busybox, which ran with the sysroot's real loader.
    assert!(out.starts_with("real-loader\n"), "{out} {err}");
    assert!(!out.contains("fake-loader-euid=0"), "{out} {err}");
    assert!(
        !out.contains("host-secret"),
        "read a root-only host file: {out}"
    );
    assert_ne!(
        owner(&a.drop.path().join("owned")),
        Some(0),
        "created a root-owned file outside the sysroot: {out}"
    );
    // setuid still works: the static setuid-root program says euid 0.
    assert!(out.contains("euid=0\n"), "{out} {err}");
    // QEMU_STRACE and QEMU_LOG_FILENAME did nothing for the setuid program ...
    assert!(
        !a.drop.path().join("suid-log").exists(),
        "qemu wrote a log where a setuid program's caller told it to: {err}"
    );
    // ... and still work for builder's own programs.
    let log = std::fs::read_to_string(a.drop.path().join("user-log")).unwrap_or_default();
    assert!(
        log.contains("exit_group("),
        "QEMU_STRACE stopped working: {log:?} {err}"
    );
}

#[test]
fn a_setuid_program_with_the_caller_s_loader_is_root_only_inside() {
    let Some(a) = or_skip(attack()) else { return };
    let (out, err) = run_attack(&a, &[]);
    if err.contains("identity map") {
        return skip(&format!("no id-mapped mounts here: {err}"));
    }
    assert_qemu_ignores_the_caller_for_setuid(&a, &out, &err);
}

#[test]
fn under_the_identity_map_the_guard_keeps_the_caller_s_loader_out() {
    let Some(a) = or_skip(attack()) else { return };
    let (out, err) = run_attack(&a, &["--userns", "identity"]);
    // Root inside is host root here: only the guard stands between builder and the host.
    assert_qemu_ignores_the_caller_for_setuid(&a, &out, &err);
}

#[test]
fn root_inside_sees_the_sysroot_as_its_own_through_a_non_identity_map() {
    let Some(dir) = native_sysroot() else { return };
    let script = "id -u; stat -c %u /etc/passwd; cat /proc/self/uid_map; touch /etc/made-inside";
    let out = enter(dir.path(), &[], &["sh", "-c", script]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["0", "0"], "{text}");
    let map: Vec<&str> = lines[2].split_whitespace().collect();
    if err.contains("identity map") {
        // The fallback must say so.
        assert_eq!(map, ["0", "0", "4294967295"], "{text}");
        return;
    }
    assert_eq!(map[0], "0", "{text}");
    assert_ne!(map[1], "0", "root inside is host root: {text}");
    assert_eq!(map[2], "65536", "{text}");
    // What root inside creates in the sysroot belongs to root there.
    assert_eq!(owner(&dir.path().join("etc/made-inside")), Some(0));
}

#[test]
fn without_id_mapped_mounts_the_identity_fallback_is_announced() {
    if !is_root() || !namespaces_available() || !on_path("unshare") {
        return skip("needs root, mount namespaces and util-linux `unshare`");
    }
    let Some(tarball) = minirootfs(native_arch()) else {
        return skip("../shared/alpine/minirootfs is missing");
    };
    let dir = tempfile::tempdir().unwrap();
    // ramfs has no id-mapped mounts; mounted in a mount namespace of the test's own.
    let script = format!(
        "mount -t ramfs none {d} && tar -xzf {t} -C {d} && \
         exec {tool} enter {d} -- sh -c 'id -u; cat /proc/self/uid_map'",
        d = dir.path().display(),
        t = tarball.display(),
        tool = env!("CARGO_BIN_EXE_sysroot-mk"),
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning:")
            && err.contains("identity map")
            && err.contains("root on the host"),
        "{err}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "{text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "{text}"
    );
}

#[test]
fn execute_only_programs_run_when_setuid_and_argv0_survives_the_guard() {
    let Some(dir) = or_skip(aarch64_with_setuid_program()) else {
        return;
    };
    let bin = dir.path().join("usr/local/bin");
    add_builder(dir.path());
    // bbsuid's mode: qemu, behind the guard, still reads it as the root it runs as.
    std::fs::copy(bin.join("euid"), bin.join("euid-x")).unwrap();
    make_setuid_root(&bin.join("euid-x"));
    std::fs::set_permissions(
        bin.join("euid-x"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4111),
    )
    .unwrap();
    // Not setuid: builder may execute but not read it, and qemu runs as builder.
    std::fs::copy(bin.join("euid"), bin.join("plain-x")).unwrap();
    std::fs::set_permissions(
        bin.join("plain-x"),
        std::os::unix::fs::PermissionsExt::from_mode(0o111),
    )
    .unwrap();
    // busybox picks its applet by argv[0]: `echo` only if argv[0] reaches it.
    let script = "/usr/local/bin/euid-x; /usr/local/bin/plain-x; echo status=$?; \
                  exec -a echo /bin/busybox argv0-kept";
    let out = enter(dir.path(), &["--user", "builder"], &["sh", "-c", script]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(text, "0\nstatus=126\nargv0-kept\n", "{err}");
    // The limitation says what it is instead of a silent failure.
    assert!(
        err.contains("/usr/local/bin/plain-x") && err.contains("execute-only"),
        "{err}"
    );
}

#[test]
fn qemu_s_built_in_loader_prefix_is_off_for_setuid_programs() {
    let Some(a) = or_skip(attack()) else { return };
    // qemu looks in /etc/qemu-binfmt/<arch> of the sysroot before anything else: a tree
    // that whoever may write there controls.
    let prefix = a.dir.path().join("etc/qemu-binfmt/aarch64/lib");
    std::fs::create_dir_all(&prefix).unwrap();
    std::fs::copy(
        a.dir
            .path()
            .join("home/builder/fake/lib/ld-musl-aarch64.so.1"),
        prefix.join("ld-musl-aarch64.so.1"),
    )
    .unwrap();
    let suid = enter(
        a.dir.path(),
        &["--user", "builder"],
        &["/usr/local/suid/busybox", "echo", "real-loader"],
    );
    assert_eq!(stdout(&suid), "real-loader\n", "{}", stderr(&suid));
    // The same prefix still serves builder's own programs: the fake loader works.
    let own = enter(
        a.dir.path(),
        &["--user", "builder"],
        &["/bin/busybox", "true"],
    );
    assert!(
        stdout(&own).contains("fake-loader-euid=1000"),
        "{}",
        stderr(&own)
    );
}

/// Execs `euid` as `/proc/self/fd/10`, a descriptor that closes on exec: after the exec
/// that path names nothing (or, had fd 10 been reused, something else).
const EXEC_BY_FD: &str = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
extern char **environ;
int main(void) {
    int fd = open("/usr/local/bin/euid", O_PATH | O_CLOEXEC);
    if (fd < 0 || dup3(fd, 10, O_CLOEXEC) != 10) { perror("open"); return 1; }
    close(fd);
    char *argv[] = { "euid", 0 };
    execve("/proc/self/fd/10", argv, environ);
    perror("execve");
    return 1;
}
"#;

#[test]
fn qemu_gets_the_binary_the_kernel_opened_not_a_path() {
    let Some(dir) = or_skip(aarch64_with_setuid_program()) else {
        return;
    };
    add_builder(dir.path());
    let program = dir.path().join("usr/local/bin/exec-by-fd");
    build_aarch64_program(&program, EXEC_BY_FD).unwrap();
    // A path could name another file by the time qemu opened it; this one names none.
    let out = enter(
        dir.path(),
        &["--user", "builder"],
        &["/usr/local/bin/exec-by-fd"],
    );
    assert_eq!(stdout(&out), "0\n", "{}", stderr(&out));
}
