//! What a session must not get from the caller or the host (issue 8): inherited
//! descriptors, init's handles, writable kernel knobs, the caller's terminal and
//! session, identities that do not switch, and files that are not what they claim.

use crate::enter_support;

use enter_support::*;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Compiles a static program for the host from C source, if gcc is there.
fn host_program(out: &Path, source: &str) -> Option<()> {
    if !on_path("gcc") {
        return None;
    }
    let src = out.with_extension("c");
    std::fs::write(&src, source).unwrap();
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(&src)
        .stderr(Stdio::null())
        .status()
        .ok()?;
    std::fs::remove_file(&src).unwrap();
    status.success().then_some(())
}

#[test]
fn a_descriptor_the_caller_left_open_does_not_reach_the_command() {
    let Some(dir) = native_sysroot() else { return };
    add_builder(dir.path());
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("shadow");
    std::fs::write(&secret, "root:secret-hash:19000::::::\n").unwrap();
    let file = std::fs::File::open(&secret).unwrap();
    let raw = file.as_raw_fd();
    for user in ["builder", "root"] {
        let mut cmd = enter_command(dir.path(), &["--user", user], &["sh", "-c", "cat <&7"]);
        // SAFETY: only dup2 between fork and exec: fd 7 open, not close-on-exec, as a
        // shell's `exec 7<file` leaves it.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        assert!(
            !stdout(&out).contains("secret-hash"),
            "{user}: the host file leaked"
        );
        assert!(!out.status.success(), "{user}: fd 7 was open inside");
        assert!(stderr(&out).contains("7"), "{user}: {}", stderr(&out));
    }
}

#[test]
fn init_holds_nothing_that_leads_out_of_the_sysroot() {
    let Some(dir) = native_sysroot() else { return };
    let script = "for f in /proc/1/fd/*; do echo \"$f $(readlink $f)\"; done; \
                  ls /proc/1/fd/3/../../.. 2>/dev/null && echo ESCAPED; true";
    let null = [
        "/proc/1/fd/0 /dev/null",
        "/proc/1/fd/1 /dev/null",
        "/proc/1/fd/2 /dev/null",
    ];
    // With the identity map init's descriptors are readable from inside; with the default
    // range init changed credentials and is no longer dumpable, so they may not be.
    for extra in [&["--userns", "identity"][..], &[][..]] {
        let out = enter(dir.path(), extra, &["sh", "-c", script]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let targets: Vec<&str> = text.lines().collect();
        let unreadable = targets == ["/proc/1/fd/* "];
        assert!(
            targets == null || (extra.is_empty() && unreadable),
            "{extra:?}: init keeps descriptors of the tool or the caller: {text}"
        );
    }
}

#[test]
fn kernel_knobs_are_read_only_and_host_internals_masked() {
    // Native (no user namespace for root today) and foreign (user namespace, private
    // binfmt_misc under /proc/sys that must still be registered).
    for arch in [native_arch(), "aarch64"] {
        let Some(dir) = or_skip(sysroot(arch)) else {
            continue;
        };
        // kernel/domainname belongs to the session's own UTS namespace: writing it
        // would be harmless even if the protection failed.
        let script = "uname -m; \
            echo probe > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable; \
            wc -c < /proc/timer_list; \
            ls /proc/acpi | wc -l; \
            awk '$5 == \"/proc/sys\" || $5 == \"/sys\" || $5 == \"/proc/sys/fs/binfmt_misc\" \
              { split($6, o, \",\"); print $5, o[1] }' /proc/self/mountinfo | sort";
        let out = enter(dir.path(), &[], &["sh", "-c", script]);
        assert!(out.status.success(), "{arch}: {}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        let machine = sysroot_mk::arch::Arch::from_name(arch)
            .unwrap()
            .info()
            .uname;
        assert_eq!(lines[0], machine, "{arch}: {text}");
        assert!(
            !text.contains("sys-writable"),
            "{arch}: /proc/sys is writable: {text}"
        );
        assert_eq!(
            lines[1].trim(),
            "0",
            "{arch}: /proc/timer_list is not masked: {text}"
        );
        assert_eq!(
            lines[2].trim(),
            "0",
            "{arch}: /proc/acpi is not masked: {text}"
        );
        for mount in &lines[3..] {
            assert!(
                mount.ends_with(" ro"),
                "{arch}: {mount} is writable: {text}"
            );
        }
        assert!(lines[3..].contains(&"/sys ro"), "{arch}: {text}");
    }
}

#[test]
fn users_whose_ids_do_not_switch_or_that_hide_root_are_refused() {
    let Some(dir) = native_sysroot() else { return };
    let passwd = dir.path().join("etc/passwd");
    let mut text = std::fs::read_to_string(&passwd).unwrap();
    text.push_str("ghost:x:4294967295:100::/:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n");
    std::fs::write(&passwd, text).unwrap();
    for spec in ["ghost", "4294967295"] {
        let out = enter(dir.path(), &["--user", spec], &["id", "-u"]);
        assert_eq!(out.status.code(), Some(1), "{spec}: {}", stdout(&out));
        assert!(stdout(&out).is_empty(), "{spec} ran: {}", stdout(&out));
        assert!(stderr(&out).contains("4294967295"), "{}", stderr(&out));
    }
    let out = enter(dir.path(), &["--user", "toor"], &["id", "-u"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--user root"), "{}", stderr(&out));
    for spec in ["root", "0"] {
        let out = enter(dir.path(), &["--user", spec], &["id", "-u"]);
        assert_eq!(stdout(&out), "0\n", "{spec}: {}", stderr(&out));
    }
}

#[test]
fn a_fifo_as_etc_apk_arch_is_never_opened() {
    let Some(dir) = native_sysroot() else { return };
    let arch = dir.path().join("etc/apk/arch");
    std::fs::remove_file(&arch).unwrap();
    nix::unistd::mkfifo(&arch, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // A writer blocks in open() until somebody opens the FIFO for reading.
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(format!("echo x86_64 > {}", arch.display()))
        .spawn()
        .unwrap();
    let out = enter(dir.path(), &[], &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    // Had the tool opened it, the writer would have gone on and ended by now.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let still_blocked = writer.try_wait().unwrap().is_none();
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(still_blocked, "the FIFO was opened for reading");
}

#[test]
fn the_command_leads_a_session_of_its_own_and_cannot_push_keystrokes_to_the_caller() {
    let Some(dir) = native_sysroot() else { return };
    // Field 6 of stat is the session; a session led outside the pid namespace reads 0.
    let out = enter(
        dir.path(),
        &[],
        &["sh", "-c", "cut -d' ' -f6 /proc/$$/stat"],
    );
    assert_eq!(stdout(&out), "2\n", "{}", stderr(&out));

    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").unwrap_or_default();
    if legacy.trim() != "1" {
        return skip("TIOCSTI is disabled on this kernel (dev.tty.legacy_tiocsti=0)");
    }
    let inject = dir.path().join("usr/local/bin/inject");
    let source = "#include <stdio.h>\n#include <sys/ioctl.h>\nint main(void){char c='X';\
        for(int fd=0;fd<3;fd++) if(ioctl(fd,TIOCSTI,&c)==0){puts(\"injected\");return 0;}\
        puts(\"refused\");return 1;}\n";
    if host_program(&inject, source).is_none() {
        return skip("no gcc with a static libc for the TIOCSTI probe");
    }
    // The caller's terminal is a pty of this test, its controlling terminal: stdin is
    // not a terminal (so no session pty), stderr is. TIOCSTI needs the terminal to be
    // the caller's own controlling one, or CAP_SYS_ADMIN on the host.
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    // A plain user, and root (whose CAP_SYS_ADMIN would pass the check for any terminal
    // if root inside were root outside).
    for extra in [&["--user", "nobody"][..], &[][..]] {
        let mut cmd = enter_command(dir.path(), extra, &["/usr/local/bin/inject"]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(slave.try_clone().unwrap());
        let ctty = slave.as_raw_fd();
        // SAFETY: only syscalls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid()?;
                if libc::ioctl(ctty, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        if extra.is_empty() && stderr(&out).contains("identity map") {
            return skip("no id-mapped mounts here: root inside is host root");
        }
        assert_eq!(stdout(&out), "refused\n", "{extra:?}: {}", stderr(&out));
    }
}

#[test]
fn on_a_terminal_the_session_gets_a_pty_of_its_own() {
    let Some(dir) = native_sysroot() else { return };
    if !on_path("script") {
        return skip("util-linux `script` is missing");
    }
    let inner = "t=$(tty) && echo \"TTY=$t\" && test -e \"$t\" && echo exists; \
                 stty rows 30 cols 100 && stty -a | grep -q 'rows 30' && echo stty-ok; \
                 echo \"PATH=$PATH\"; exit 5";
    let tool = env!("CARGO_BIN_EXE_sysroot-mk");
    let line = format!(
        "{tool} enter {} -- sh -c '{}'",
        dir.path().display(),
        inner.replace('\'', "'\\''")
    );
    // `script`'s stdin stays open and silent: at its end `script` would type an EOF
    // into the terminal, whose echo (`^@`) could land in the middle of the output.
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("PATH", "/host/only:/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let silent = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(silent);
    let text = stdout(&out).replace('\r', "");
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(text.contains("TTY=/dev/pts/"), "{text}");
    assert!(text.contains("\nexists\n"), "{text}");
    assert!(text.contains("\nstty-ok\n"), "{text}");
    assert!(
        text.contains("\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{text}"
    );
}

#[test]
fn qemu_variables_never_reach_the_session_from_the_caller() {
    let Some(dir) = native_sysroot() else { return };
    let out = enter_command(dir.path(), &[], &["sh", "-c", "env | grep -c '^QEMU_'"])
        .env("QEMU_LD_PREFIX", "/tmp/fake")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "0\n", "{}", stderr(&out));
    for spec in ["QEMU_LD_PREFIX=/tmp/fake", "QEMU_STRACE"] {
        let out = enter_command(dir.path(), &["--env", spec], &["true"])
            .env("QEMU_STRACE", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{spec}");
        assert!(stderr(&out).contains("QEMU_"), "{}", stderr(&out));
    }
}

#[test]
fn mount_points_of_a_killed_run_are_removed_by_the_next_run() {
    use std::io::{BufRead, BufReader};
    let Some(dir) = native_sysroot() else { return };
    let host = tempfile::tempdir().unwrap();
    let bind = format!("{}:/srv/made/deep", host.path().display());
    let mut child = enter_command(
        dir.path(),
        &["--bind", &bind],
        &["sh", "-c", "echo ready; exec sleep 30"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    child.kill().unwrap();
    child.wait().unwrap();
    // EOF once the session is gone with its mounts.
    assert!(lines.map_while(Result::ok).next().is_none());
    assert!(
        dir.path().join("srv/made/deep").is_dir(),
        "nothing to clean up: test is void"
    );
    let out = enter(dir.path(), &[], &["true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !dir.path().join("srv/made").exists(),
        "the killed run's mount point stayed"
    );
    assert!(
        dir.path().join("srv").is_dir(),
        "the sysroot's own srv went away"
    );
    assert!(!dir.path().join(".sysroot-mk-mount-points").exists());
}

#[test]
fn the_session_pty_follows_the_caller_s_window_size() {
    use std::io::Read;
    let Some(dir) = native_sysroot() else { return };
    let size = |rows, cols| libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size(40, 120)), None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let script = "stty size; trap 'stty size; exit 3' WINCH; echo ready; \
                  while :; do sleep 0.1; done";
    let mut cmd = enter_command(dir.path(), &[], &["sh", "-c", script]);
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // SAFETY: only syscalls between fork and exec: the pty as controlling terminal.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    // A generous deadline so that a regression fails instead of hanging.
    let mut read_until = |master: &mut std::fs::File, seen: &mut String, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !seen.contains(what) {
            let mut fd = libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut fd, 1, 200) };
            assert!(
                std::time::Instant::now() < deadline,
                "no `{what}` in: {seen}"
            );
            if ready <= 0 {
                continue;
            }
            let n = master.read(&mut buf).unwrap_or(0);
            assert!(n > 0, "no `{what}` in: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    read_until(&mut master, &mut seen, "ready");
    assert!(seen.contains("40 120"), "{seen}");
    // Resizing the caller's terminal signals the tool, which resizes the session's.
    // SAFETY: TIOCSWINSZ with a winsize.
    assert_eq!(
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size(50, 160)) },
        0
    );
    let resized = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_until(&mut master, &mut seen, "50 160")
    }));
    if resized.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the session's pty kept its size: {seen}");
    }
    assert_eq!(child.wait().unwrap().code(), Some(3), "{seen}");
}

#[test]
fn ctrl_c_reaches_a_command_in_its_own_session_without_a_session_pty() {
    use std::io::Read;
    let Some(dir) = native_sysroot() else { return };
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    // stdin is not a terminal (no session pty): the command leads a session of its own,
    // so the terminal's SIGINT reaches only the tool, which must pass it down.
    let mut cmd = enter_command(dir.path(), &[], &["sh", "-c", "echo ready; exec sleep 30"]);
    cmd.stdin(Stdio::null())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    let ctty = slave.as_raw_fd();
    // SAFETY: only syscalls between fork and exec: the pty as controlling terminal.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            if libc::ioctl(ctty, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    drop(slave);
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("ready") {
        let n = master.read(&mut buf).unwrap();
        assert!(n > 0, "no output: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    std::io::Write::write_all(&mut master, b"\x03").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(128 + 2));
}
