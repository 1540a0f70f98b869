//! `sysroot-mk binfmt status|register|unregister` against the host's real table, every
//! change undone and the host's state compared before and after.

use crate::enter_support;

use enter_support::*;
use std::path::Path;
use sysroot_mk::arch::Arch;
use sysroot_mk::binfmt::{self, HOST_MOUNT};

/// Undoes a test's host registration of `arch`, and the host mount the tool made for it.
struct Restore {
    arch: &'static str,
    mounted_before: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = run(&["binfmt", "unregister", self.arch]);
        if !self.mounted_before && Path::new(HOST_MOUNT).join("register").exists() {
            let _ = nix::mount::umount(HOST_MOUNT);
        }
    }
}

/// Root, qemu for `arch`, and no handler of the host's own for it (which a test must
/// not replace), or why not.
fn may_register(arch: &'static str) -> Result<Restore, String> {
    if !is_root() {
        return Err("needs root".into());
    }
    if !namespaces_available() {
        return Err("mount namespaces are not available here".into());
    }
    let a = Arch::from_name(arch).unwrap();
    if Arch::host().is_some_and(|h| a.runs_natively_on(h)) {
        return Err(format!("{arch} is native here"));
    }
    binfmt::find_qemu(a, None).map_err(|e| e.to_string())?;
    let existing =
        binfmt::with_host_table(move |t| t.handlers_for(a)).map_err(|e| e.to_string())?;
    if !existing.is_empty() {
        return Err(format!(
            "the host has its own {arch} handler; not touching it"
        ));
    }
    Ok(Restore {
        arch,
        mounted_before: Path::new(HOST_MOUNT).join("register").exists(),
    })
}

#[test]
fn status_tells_for_each_arch_whether_setuid_works() {
    if !is_root() || !namespaces_available() {
        return skip(
            "needs root and mount namespaces to read the host's table when it is not mounted",
        );
    }
    let out = run(&["binfmt", "status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("binfmt_misc: "), "{text}");
    for name in Arch::names() {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name}: "))),
            "{name} missing: {text}"
        );
    }
    if let Some(host) = Arch::host() {
        assert!(text.contains(&format!("{host}: native")), "{text}");
    }
}

#[test]
fn register_replace_and_unregister_leave_the_host_as_found() {
    let _lock = host_lock();
    let Some(restore) = or_skip(may_register("riscv64")) else {
        return;
    };
    let before = host_state();

    let out = run(&["binfmt", "register", "riscv64", "--flags", "OF"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = stdout(&run(&["binfmt", "status", "riscv64"]));
    assert!(
        status.contains("qemu-riscv64: enabled") && status.contains("flags OF"),
        "{status}"
    );
    assert!(
        status.contains("riscv64: `qemu-riscv64` lacks C"),
        "{status}"
    );

    // Registering again replaces the entry (through a temporary one that must not stay).
    let out = run(&["binfmt", "register", "riscv64", "--flags", "OCF"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("gain root"), "{}", stderr(&out));
    let status = stdout(&run(&["binfmt", "status", "riscv64"]));
    assert!(
        status.contains("riscv64: `qemu-riscv64`, setuid works"),
        "{status}"
    );
    assert!(!status.contains("sysroot-mk-swap"), "{status}");

    let out = run(&["binfmt", "unregister", "riscv64"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("removed `qemu-riscv64`"));
    drop(restore);
    assert_eq!(host_state(), before);
}

#[test]
fn replacing_a_handler_loses_no_concurrent_exec() {
    let _lock = host_lock();
    let Some(restore) = or_skip(may_register("aarch64")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("euid");
    if build_euid_program(&program).is_none() {
        return skip("aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu) is missing");
    }
    let before = host_state();
    let out = run(&["binfmt", "register", "aarch64", "--flags", "OF"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Two threads exec the aarch64 program through the host's handler while it is
    // replaced over and over, until 200 execs have overlapped the swaps.
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (stop, runs, failures) = (
        AtomicBool::new(false),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let mut swaps = 0;
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    if !std::process::Command::new(&program)
                        .output()
                        .is_ok_and(|o| o.status.success())
                    {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    runs.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let flags = ["OCF", "OF", "POF", "POCF"];
        while runs.load(Ordering::Relaxed) < 200 {
            let out = run(&[
                "binfmt",
                "register",
                "aarch64",
                "--flags",
                flags[swaps % flags.len()],
            ]);
            swaps += 1;
            if !out.status.success() {
                stop.store(true, Ordering::Relaxed);
                panic!("{}", stderr(&out));
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let (runs, failures) = (runs.into_inner(), failures.into_inner());
    drop(restore);
    eprintln!("{runs} execs during {swaps} swaps, {failures} failed");
    assert_eq!(
        failures, 0,
        "{failures} of {runs} execs failed during the swaps"
    );
    assert!(runs > 0);
    assert_eq!(host_state(), before);
}

#[test]
fn register_without_qemu_names_the_package_and_touches_nothing() {
    let _lock = host_lock();
    let before = is_root().then(host_state);
    let err = fails_without_qemu(bin().args(["binfmt", "register", "s390x"]));
    // Without root the mount is refused first; either way the message says what to do.
    assert!(
        err.contains("qemu-user-static") || err.contains("as root"),
        "{err}"
    );
    if let Some(before) = before {
        assert_eq!(
            host_state(),
            before,
            "a failed registration changed the host"
        );
    }
}

#[test]
fn unknown_flags_and_arches_are_refused() {
    let out = run(&["binfmt", "register", "aarch64", "--flags", "XZ"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`X`"), "{}", stderr(&out));
    let out = run(&["binfmt", "status", "sparc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("sparc"), "{}", stderr(&out));
}

#[test]
fn enter_global_registers_qemu_with_c_and_keeps_it_until_unregistered() {
    let _lock = host_lock();
    let Some(restore) = or_skip(may_register("aarch64")) else {
        return;
    };
    let Some(tarball) = minirootfs("aarch64") else {
        return skip("../shared/alpine/minirootfs is missing");
    };
    let dir = tempfile::tempdir().unwrap();
    extract(&tarball, dir.path(), &[]);
    let program = dir.path().join("usr/local/bin/euid");
    if build_euid_program(&program).is_none() {
        return skip("aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu) is missing");
    }
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    let before = host_state();

    let out = bin()
        .args(["enter", "--binfmt", "global", "--user", "nobody"])
        .arg(dir.path())
        .args([
            "--",
            "env",
            "QEMU_STRACE=1",
            "QEMU_LOG_FILENAME=/tmp/qemu-log",
        ])
        .arg("/usr/local/bin/euid")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0\n");
    // The global entry's guard kept the caller's variables from the setuid program's qemu.
    assert!(
        !dir.path().join("tmp/qemu-log").exists(),
        "qemu wrote a log where a setuid program's caller told it to"
    );
    // Through the guard where this build has one, else qemu with the caller's QEMU_*.
    let err = stderr(&out);
    assert!(
        err.contains("can now gain root") || err.contains("through sysroot-mk's guard"),
        "{err}"
    );
    let status = stdout(&run(&["binfmt", "status", "aarch64"]));
    assert!(
        status.contains("aarch64: `qemu-aarch64`, setuid works"),
        "{status}"
    );

    drop(restore);
    assert_eq!(host_state(), before);
}

#[test]
fn a_disabled_handler_is_shown_and_unregistered() {
    let _lock = host_lock();
    let Some(_restore) = or_skip(may_register("riscv64")) else {
        return;
    };
    let before = host_state();
    let qemu = binfmt::find_qemu(Arch::from_name("riscv64").unwrap(), None).unwrap();
    let name = format!("sysroot-mk-test-off-{}", std::process::id());
    let reg = binfmt::Registration {
        name: name.clone(),
        ..binfmt::Registration::for_arch(
            Arch::from_name("riscv64").unwrap(),
            &qemu,
            binfmt::Flags::parse("F").unwrap(),
        )
    };
    let handler = HostHandler::register(&name, &String::from_utf8(reg.line().unwrap()).unwrap());
    handler.set_enabled(false);
    let out = run(&["binfmt", "status", "riscv64"]);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("riscv64: ") && l.contains("disabled") && l.contains(&name)),
        "{text}"
    );
    let out = run(&["binfmt", "unregister", "riscv64"]);
    assert!(stdout(&out).contains(&name), "{}", stderr(&out));
    let out = run(&["binfmt", "status"]);
    assert!(!stdout(&out).contains(&name), "{}", stdout(&out));
    drop(handler);
    assert_eq!(host_state(), before);
}

#[test]
fn status_without_qemu_says_enter_cannot_run_the_arch() {
    if !is_root() || !namespaces_available() {
        return skip("needs root and mount namespaces to read the host's table");
    }
    let out = bin()
        .args(["binfmt", "status", "riscv64"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let text = stdout(&out);
    let line = text.lines().find(|l| l.starts_with("riscv64: ")).unwrap();
    if line.contains('`') {
        return skip("the host has a riscv64 handler");
    }
    assert!(line.contains("qemu-user-static"), "{text}");
    assert!(!line.contains("private one"), "{text}");
}

#[test]
fn register_as_a_plain_user_says_it_needs_root() {
    use std::os::unix::process::CommandExt;
    if !is_root() || !namespaces_available() {
        return skip("needs root to run the tool as another user, with the table mounted");
    }
    for action in ["register", "unregister"] {
        let mut cmd = bin();
        cmd.args(["binfmt", action, "riscv64"]);
        // SAFETY: only syscalls between fork and exec: the host's table mounted where the
        // tool looks (in a mount namespace of this child alone), then a plain user.
        unsafe {
            cmd.pre_exec(|| {
                use nix::mount::{mount, MsFlags};
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
                let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
                mount(None::<&str>, "/", None::<&str>, private, None::<&str>)?;
                let _ = mount(
                    Some("binfmt_misc"),
                    HOST_MOUNT,
                    Some("binfmt_misc"),
                    MsFlags::empty(),
                    None::<&str>,
                );
                nix::unistd::setgroups(&[])?;
                nix::unistd::setgid(nix::unistd::Gid::from_raw(65534))?;
                nix::unistd::setuid(nix::unistd::Uid::from_raw(65534))?;
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("needs root") && !err.contains("Permission denied"),
            "{action}: {err}"
        );
    }
}
