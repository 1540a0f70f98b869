//! `sysroot-mk enter` on real Alpine root filesystems: every arch, exit statuses,
//! namespaces, mounts, environment, signals, and the host left exactly as found.

use crate::enter_support;

use enter_support::*;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use sysroot_mk::arch::Arch;

/// Starts `sh -c script` inside `dir` and hands back its stdout, line by line.
fn spawn_shell(dir: &Path, script: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = enter_command(dir, &[], &["sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

#[test]
fn every_minirootfs_prints_its_machine_and_exit_status_leaving_the_host_untouched() {
    let Some(alpine) = alpine() else {
        return skip("../shared/alpine is missing");
    };
    if !is_root() {
        return skip("needs root");
    }
    let mut tarballs: Vec<PathBuf> = std::fs::read_dir(alpine.join("minirootfs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    tarballs.sort();
    let _lock = host_lock();
    let before = host_state();
    let mut entered = 0;
    for tarball in &tarballs {
        let file = tarball.file_name().unwrap().to_string_lossy();
        let arch = file
            .trim_end_matches(".tar.gz")
            .rsplit('-')
            .next()
            .unwrap()
            .to_string();
        if let Err(why) = can_enter(&arch) {
            skip(&format!("{file}: {why}"));
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        extract(tarball, dir.path(), &[]);
        let had_resolv_conf = dir.path().join("etc/resolv.conf").exists();

        let out = enter(dir.path(), &[], &["uname", "-m"]);
        let expected = Arch::from_name(&arch).unwrap().info().uname;
        assert_eq!(stdout(&out).trim(), expected, "{file}: {}", stderr(&out));
        assert!(out.status.success(), "{file}");

        let out = enter(dir.path(), &[], &["sh", "-c", "exit 7"]);
        assert_eq!(out.status.code(), Some(7), "{file}: {}", stderr(&out));

        assert_eq!(
            dir.path().join("etc/resolv.conf").exists(),
            had_resolv_conf,
            "{file}: resolv.conf left behind"
        );
        entered += 1;
    }
    let after = host_state();
    assert_eq!(before.0, after.0, "the host's mountinfo changed");
    assert_eq!(
        before.1, after.1,
        "the host's /proc/sys/fs/binfmt_misc listing changed"
    );
    assert_eq!(before.2, after.2, "the host's binfmt_misc entries changed");
    if entered == 0 {
        skip("no minirootfs could be entered");
    }
}

#[test]
fn setuid_program_runs_as_root_under_private_binfmt() {
    let Some(dir) = or_skip(aarch64_with_setuid_program()) else {
        return;
    };
    let out = enter(
        dir.path(),
        &["--user", "nobody"],
        &["sh", "-c", "id -u; /usr/local/bin/euid"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "65534\n0\n", "{}", stderr(&out));
}

#[test]
fn f_only_host_handler_warns_and_setuid_fails() {
    let Some(dir) = or_skip(aarch64_with_setuid_program()) else {
        return;
    };
    let qemu = sysroot_mk::binfmt::find_qemu(Arch::from_name("aarch64").unwrap(), None).unwrap();
    let _lock = host_lock();
    let name = format!("sysroot-mk-test-{}", std::process::id());
    let reg = sysroot_mk::binfmt::Registration {
        name: name.clone(),
        ..sysroot_mk::binfmt::Registration::for_arch(
            Arch::from_name("aarch64").unwrap(),
            &qemu,
            sysroot_mk::binfmt::Flags::parse("F").unwrap(),
        )
    };
    let handler = HostHandler::register(&name, &String::from_utf8(reg.line().unwrap()).unwrap());
    let out = enter(
        dir.path(),
        &["--binfmt", "host", "--user", "nobody"],
        &["/usr/local/bin/euid"],
    );
    drop(handler);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "65534\n");
    let err = stderr(&out);
    assert!(
        err.contains("warning:") && err.contains("without C") && err.contains(&name),
        "{err}"
    );
    assert!(!run(&["binfmt", "status"])
        .stdout
        .windows(name.len())
        .any(|w| w == name.as_bytes()));
}

#[test]
fn doas_gives_root_to_a_wheel_user() {
    let Some(alpine) = alpine() else {
        return skip("../shared/alpine is missing");
    };
    let rootfs = alpine.join("minirootfs/alpine-minirootfs-3.19.4-x86_64.tar.gz");
    let apk = alpine.join("v3.19/main/x86_64/doas-6.8.2-r6.apk");
    if let Err(why) = can_enter("x86_64") {
        return skip(&why);
    }
    if !rootfs.is_file() || !apk.is_file() {
        return skip("the 3.19 x86_64 minirootfs or doas apk is missing");
    }
    // An x86_64 sysroot with doas installed by hand (the .apk is a tar.gz stream).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    extract(&rootfs, root, &[]);
    extract(&apk, root, &["usr/bin/doas", "etc/doas.d"]);
    let doas = root.join("usr/bin/doas");
    // The package ships it -rwsr-xr-x root:root; make sure whatever tar did.
    std::os::unix::fs::chown(&doas, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&doas, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let conf = root.join("etc/doas.conf");
    std::fs::write(&conf, "permit nopass :wheel\n").unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    let append = |file: &str, line: &str| {
        let path = root.join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(line);
        std::fs::write(path, text).unwrap();
    };
    append(
        "etc/passwd",
        "reborn:x:1000:1000:reborn:/home/reborn:/bin/sh\n",
    );
    append("etc/group", "reborn:x:1000:\n");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    let group = group.replace("wheel:x:10:root\n", "wheel:x:10:root,reborn\n");
    std::fs::write(root.join("etc/group"), group).unwrap();
    std::fs::create_dir_all(root.join("home/reborn")).unwrap();

    let out = enter(
        root,
        &["--user", "reborn"],
        &["sh", "-c", "id -u; id -G; echo $HOME; pwd; doas id -u"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = "1000\n1000 10\n/home/reborn\n/home/reborn\n0\n";
    assert_eq!(stdout(&out), expected, "{}", stderr(&out));
}

#[test]
fn command_runs_under_a_reaping_init_in_its_own_namespaces() {
    let Some(dir) = native_sysroot() else { return };
    let script = "echo $$; hostname; cat /proc/1/comm; ls /proc | grep -c '^[0-9]'";
    let out = enter(
        dir.path(),
        &["--hostname", "inside-test"],
        &["sh", "-c", script],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "2", "the command is init's child: {text}");
    assert_eq!(lines[1], "inside-test");
    assert_eq!(lines[2], "sysroot-mk");
    // init, the shell, ls, grep: nothing of the host's process table.
    assert!(lines[3].parse::<u32>().unwrap() <= 5, "{text}");
}

#[test]
fn mounts_inside_are_the_sysroot_own_and_resolv_conf_is_the_host_s() {
    let Some(dir) = native_sysroot() else { return };
    let script = "cut -d' ' -f5 /proc/self/mountinfo | sort | tr '\\n' ' '; echo; ls /dev/pts/ptmx /dev/null /dev/shm; test -d /sys/class && echo sys; cat /etc/resolv.conf";
    let out = enter(dir.path(), &[], &["sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let points: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    for expected in [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/null",
        "/run",
    ] {
        assert!(points.contains(&expected), "{expected} not mounted: {text}");
    }
    assert!(
        !points
            .iter()
            .any(|p| p.starts_with("/work") || p.starts_with("/tmp")),
        "host mounts visible: {text}"
    );
    assert!(
        text.contains("/dev/pts/ptmx") && text.contains("\nsys\n"),
        "{text}"
    );
    if let Ok(host) = std::fs::read_to_string("/etc/resolv.conf") {
        assert!(text.ends_with(&host), "{text}");
    }
}

#[test]
fn binds_are_visible_writable_or_read_only_and_leave_no_mount_point() {
    let Some(dir) = native_sysroot() else { return };
    let work = tempfile::tempdir().unwrap();
    // Binds are not id-mapped: root inside is an unprivileged host id there (SECURITY.md),
    // so the directory must let anyone write.
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    std::fs::write(work.path().join("input"), "from host\n").unwrap();
    let ro = tempfile::tempdir().unwrap();
    let rw = format!("{}:/work/src", work.path().display());
    let ro_spec = format!("{}:/srv/ro:ro", ro.path().display());
    let script = "cat /work/src/input; echo out > /work/src/output; touch /srv/ro/x 2>/dev/null && echo writable || echo read-only";
    let out = enter(
        dir.path(),
        &["--bind", &rw, "--bind", &ro_spec],
        &["sh", "-c", script],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from host\nread-only\n");
    assert_eq!(
        std::fs::read_to_string(work.path().join("output")).unwrap(),
        "out\n"
    );
    if is_root() {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(work.path().join("output")).unwrap().uid();
        assert_ne!(owner, 0, "root inside created a file owned by host root");
    }
    assert!(
        !dir.path().join("work").exists(),
        "the created mount point stayed"
    );
    assert!(
        !dir.path().join("srv/ro").exists(),
        "the created mount point stayed"
    );
    assert!(
        dir.path().join("srv").exists(),
        "the sysroot's own srv went away"
    );
}

#[test]
fn environment_is_clean_but_keeps_term_and_takes_env() {
    let Some(dir) = native_sysroot() else { return };
    let out = enter_command(
        dir.path(),
        &["--env", "FOO=bar baz", "--env", "PASSED"],
        &["env"],
    )
    .env("TERM", "xterm-test")
    .env("SECRET_TOKEN", "leak")
    .env("PASSED", "yes")
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    for line in [
        "TERM=xterm-test",
        "FOO=bar baz",
        "PASSED=yes",
        "HOME=/root",
        "USER=root",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing: {env}");
    }
    assert!(!env.contains("SECRET_TOKEN"), "{env}");
}

#[test]
fn sigterm_to_the_tool_reaches_the_command() {
    let Some(dir) = native_sysroot() else { return };
    let (mut child, mut lines) = spawn_shell(
        dir.path(),
        "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 1; done",
    );
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    assert_eq!(child.wait().unwrap().code(), Some(42));
}

#[test]
fn death_by_signal_exits_128_plus_n() {
    let Some(dir) = native_sysroot() else { return };
    let out = enter(dir.path(), &[], &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(out.status.code(), Some(128 + 9));
}

#[test]
fn missing_command_exits_127_with_its_name() {
    let Some(dir) = native_sysroot() else { return };
    let out = enter(dir.path(), &[], &["no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("`no-such-command`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_qemu_names_the_debian_package() {
    let Some(foreign) = Arch::all().find(|a| !Arch::host().is_some_and(|h| a.runs_natively_on(h)))
    else {
        return skip("every arch is native here");
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc/apk")).unwrap();
    std::fs::write(dir.path().join("etc/apk/arch"), format!("{foreign}\n")).unwrap();
    let err = fails_without_qemu(&mut enter_command(
        dir.path(),
        &["--binfmt", "private"],
        &["true"],
    ));
    // Either qemu is missing (the message names the package) or the kernel lacks private instances.
    assert!(
        err.contains("qemu-user-static") || err.contains("6.7"),
        "{err}"
    );
}

#[test]
fn a_tree_of_no_known_arch_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = enter(dir.path(), &[], &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--arch"), "{}", stderr(&out));
}

#[test]
fn rootless_user_enters_a_sysroot_they_own() {
    let Some(dir) = or_skip(sysroot("aarch64")) else {
        return;
    };
    // The whole tree (and the temporary directory above it) belongs to `nobody` now.
    let status = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let out = {
        use std::os::unix::process::CommandExt;
        bin()
            .arg("enter")
            .arg(dir.path())
            .args([
                "--",
                "sh",
                "-c",
                "id -u; uname -m; cat /proc/self/uid_map; touch /etc/owned && echo wrote",
            ])
            .uid(65534)
            .gid(65534)
            .env("HOME", "/")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    if stderr(&out).contains("create the namespaces") {
        return skip("unprivileged user namespaces are disabled here");
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "{text}");
    assert_eq!(lines[1], "aarch64", "{text}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>()[..2],
        ["0", "65534"],
        "{text}"
    );
    assert_eq!(lines[3], "wrote");
    assert!(dir.path().join("etc/owned").exists());
}

#[test]
fn host_mode_without_a_handler_is_refused_with_the_fix() {
    let Some(dir) = or_skip(sysroot("riscv64")) else {
        return;
    };
    let _lock = host_lock();
    let riscv64 = Arch::from_name("riscv64").unwrap();
    if !sysroot_mk::binfmt::with_host_table(move |t| t.handlers_for(riscv64))
        .unwrap()
        .is_empty()
    {
        return skip("the host has a riscv64 handler");
    }
    let out = enter(dir.path(), &["--binfmt", "host"], &["true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no binfmt_misc handler for `riscv64`")
            && err.contains("binfmt register riscv64"),
        "{err}"
    );
}

#[test]
fn login_shell_reads_the_profile_and_commands_from_stdin() {
    let Some(dir) = native_sysroot() else { return };
    let mut child = bin()
        .arg("enter")
        .arg(dir.path())
        .env("PATH", "/host/only/bin:/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo \"$PATH\"; exit 3\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    // Alpine's /etc/profile sets its own PATH: the shell was a login shell.
    assert!(
        stdout(&out)
            .trim_end()
            .ends_with("/usr/sbin:/usr/bin:/sbin:/bin"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("/host/only"), "{}", stdout(&out));
}

#[test]
fn killing_the_tool_takes_the_session_down_and_leaves_no_mount() {
    let Some(dir) = or_skip(sysroot("aarch64")) else {
        return;
    };
    let _lock = host_lock();
    let before = host_state();
    let (mut child, mut lines) = spawn_shell(dir.path(), "echo ready; sleep 3; echo survived");
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    child.kill().unwrap();
    child.wait().unwrap();
    // EOF comes once every process holding the pipe (init, the shell) is gone.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.is_empty(), "the session outlived the tool: {rest:?}");
    assert_eq!(host_state(), before);
}

#[test]
fn ctrl_c_on_the_terminal_reaches_the_command_which_keeps_its_tty() {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let Some(dir) = native_sysroot() else { return };
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut cmd = bin();
    cmd.arg("enter")
        .arg(dir.path())
        .args([
            "--",
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo tty-ready; exec sleep 30",
        ])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // SAFETY: only syscalls between fork and exec: a new session with the pty as its terminal.
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
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("tty-ready") {
        let n = master.read(&mut buf).unwrap();
        assert!(n > 0, "no output: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    // The terminal's interrupt key: SIGINT to the foreground process group.
    std::io::Write::write_all(&mut master, b"\x03").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(128 + 2));
}

#[test]
fn a_dangling_resolv_conf_symlink_is_kept_with_a_warning() {
    let Some(dir) = native_sysroot() else { return };
    if !Path::new("/etc/resolv.conf").is_file() {
        return skip("the host has no /etc/resolv.conf");
    }
    let link = dir.path().join("etc/resolv.conf");
    std::os::unix::fs::symlink("/run/systemd/resolve/stub-resolv.conf", &link).unwrap();
    let out = enter(dir.path(), &[], &["sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning:") && stderr(&out).contains("resolv.conf"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/run/systemd/resolve/stub-resolv.conf")
    );
}
