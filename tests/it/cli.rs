//! The command line behaves like the tools people know: global flags anywhere, the bare
//! build form never swallowing a subcommand, `plan` for plans, arch aliases and
//! suggestions, completions and a man page, and a success line that says what is next.

use crate::enter_support;

use enter_support::*;
use std::path::Path;
use std::process::Command;

/// The shared x86_64 repository arguments, or why not.
fn local_repo() -> Result<Vec<String>, String> {
    let alpine = alpine().ok_or("../shared/alpine is missing")?;
    Ok(vec![
        "--repo".into(),
        alpine.join("v3.19/main").display().to_string(),
        "--keys-dir".into(),
        alpine.join("keys/x86_64").display().to_string(),
        "--no-cache".into(),
    ])
}

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    bin().current_dir(dir).args(args).output().unwrap()
}

/// `sysroot-mk --arch x86_64 <local repo> EXTRA ./out` as root in a new temporary
/// directory: the directory and the build's stderr, or why not.
fn build_out(extra: &[&str]) -> Option<(tempfile::TempDir, String)> {
    let repo = or_skip(local_repo())?;
    if !is_root() {
        skip("needs root for a build with owners");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["--arch", "x86_64"];
    args.extend(repo.iter().map(String::as_str));
    args.extend(extra);
    args.push("./out");
    let out = run_in(tmp.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    Some((tmp, stderr(&out)))
}

#[test]
fn global_flags_before_a_subcommand_keep_the_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_in(tmp.path(), &["-q", "enter", "missing-dir"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`missing-dir` is not a directory"),
        "{}",
        stderr(&out)
    );
    let out = run_in(tmp.path(), &["-v", "binfmt", "status", "aarch64"]);
    assert!(
        !stderr(&out).contains("the build needs"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing built"
    );
}

#[test]
fn a_build_flag_before_enter_is_refused_and_never_builds_a_folder_named_enter() {
    let Some(repo) = or_skip(local_repo()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["--arch", "x86_64"];
    args.extend(repo.iter().map(String::as_str));
    args.extend(["enter", "./a64", "--", "uname", "-m"]);
    let out = run_in(tmp.path(), &args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'enter --arch' exists"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("enter").exists());
}

#[test]
fn simulate_with_a_package_where_dir_goes_points_at_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_in(tmp.path(), &["--arch", "x86_64", "--simulate", "gcc"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("`--simulate` reads `gcc` as DIR"), "{err}");
    assert!(err.contains("sysroot-mk plan [--arch ARCH] gcc"), "{err}");
}

#[test]
fn plan_needs_no_dir_and_the_arch_defaults_to_the_hosts() {
    let Some(repo) = or_skip(local_repo()) else {
        return;
    };
    if sysroot_mk::arch::Arch::host().map(|a| a.name()) != Some("x86_64") {
        return skip("the shared repository is x86_64 and this host is not");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["plan"];
    args.extend(repo.iter().map(String::as_str));
    args.push("alpine-base");
    let out = run_in(tmp.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = stdout(&out);
    assert!(plan.lines().any(|l| l.starts_with("busybox-1.")), "{plan}");
    assert_eq!(plan.lines().count(), 25, "{plan}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn arch_aliases_get_a_note_and_typos_a_suggestion() {
    let Some(repo) = or_skip(local_repo()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["plan", "--arch", "amd64"];
    args.extend(repo.iter().map(String::as_str));
    let out = run_in(tmp.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`amd64` is called `x86_64` in Alpine"),
        "{}",
        stderr(&out)
    );

    let out = run_in(tmp.path(), &["--arch", "aarch46", "./x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown architecture `aarch46` (did you mean `aarch64`?)"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn enter_takes_a_command_without_dashes() {
    if !is_root() || !namespaces_available() {
        return skip("needs root and namespaces to enter a root filesystem");
    }
    let Some(tarball) = minirootfs("x86_64") else {
        return skip("../shared/alpine/minirootfs is missing");
    };
    let dir = tempfile::tempdir().unwrap();
    extract(&tarball, dir.path(), &[]);
    let out = bin()
        .arg("enter")
        .arg(dir.path())
        .args(["id", "-u"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0");
}

#[test]
fn completions_parse_and_the_man_page_renders_the_options() {
    let out = bin().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let check = Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&out.stdout)?;
            child.wait()
        });
    match check {
        Ok(status) => assert!(status.success(), "bash -n rejects the completions"),
        Err(_) => skip("bash is missing"),
    }
    let page = bin().arg("man").output().unwrap();
    assert!(page.status.success());
    let text = String::from_utf8_lossy(&page.stdout);
    assert!(text.contains(".TH sysroot-mk"), "{text}");
    if on_path("man") {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("sysroot-mk.1");
        std::fs::write(&file, &page.stdout).unwrap();
        let rendered = Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let rendered = String::from_utf8_lossy(&rendered.stdout);
        assert!(rendered.contains("--quiet"), "{rendered}");
    }
}

#[test]
fn a_finished_build_says_how_to_enter_it() {
    let Some((_tmp, err)) = build_out(&["--no-scripts"]) else {
        return;
    };
    assert!(
        err.contains("enter it with: sysroot-mk enter ./out (it first runs the 5 package scripts left pending)"),
        "{err}"
    );
}

#[test]
fn repositories_out_sets_the_sysroots_repositories_file() {
    let Some((tmp, _)) = build_out(&[
        "--no-scripts",
        "--repositories-out",
        "https://dl-cdn.alpinelinux.org/alpine/v3.19/main",
        "--repositories-out",
        "@community https://dl-cdn.alpinelinux.org/alpine/v3.19/community",
    ]) else {
        return;
    };
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/etc/apk/repositories")).unwrap(),
        "https://dl-cdn.alpinelinux.org/alpine/v3.19/main\n@community https://dl-cdn.alpinelinux.org/alpine/v3.19/community\n"
    );
}

#[test]
fn relative_links_resolve_inside_the_sysroot_from_the_host() {
    let Some((tmp, _)) = build_out(&["--relative-links"]) else {
        return;
    };
    let root = tmp.path().join("out");
    assert_eq!(
        std::fs::read_link(root.join("bin/ls")).unwrap(),
        Path::new("busybox")
    );
    let mut stack = vec![root.clone()];
    let mut links = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_symlink() {
                links += 1;
                let target = std::fs::read_link(entry.path()).unwrap();
                assert!(target.is_relative(), "{}", entry.path().display());
            }
        }
    }
    let record = std::fs::read_to_string(root.join("lib/apk/sysroot-mk.relative-links")).unwrap();
    assert!(record.contains("bin/ls\t/bin/busybox\n"), "{record}");
    assert!(links > 300, "{links} links");
    let musl = std::fs::canonicalize(root.join("lib/libc.musl-x86_64.so.1")).unwrap();
    assert!(
        musl.starts_with(std::fs::canonicalize(&root).unwrap()),
        "{}",
        musl.display()
    );
}

#[test]
fn on_a_terminal_the_scripts_have_a_progress_line() {
    let Some(repo) = or_skip(local_repo()) else {
        return;
    };
    if !is_root() || !on_path("script") {
        return skip("needs root for scripts and util-linux `script` for a terminal");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut line = format!("{} --arch x86_64", env!("CARGO_BIN_EXE_sysroot-mk"));
    for arg in &repo {
        line.push_str(&format!(" '{arg}'"));
    }
    line.push_str(" ./out");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let screen = stdout(&out);
    assert!(
        screen.contains("scripts") && screen.contains("busybox-1.36.1-r15.trigger"),
        "{screen}"
    );
}

#[test]
fn every_common_arch_alias_gets_its_note() {
    let Some(repo) = or_skip(local_repo()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for (alias, alpine) in [
        ("arm64", "aarch64"),
        ("i386", "x86"),
        ("i686", "x86"),
        ("armv6", "armhf"),
        ("ppc64el", "ppc64le"),
    ] {
        let mut args = vec!["plan", "--arch", alias];
        args.extend(repo.iter().map(String::as_str));
        // The shared repository is x86_64 only: the plan fails, after the note.
        let out = run_in(tmp.path(), &args);
        let err = stderr(&out);
        assert!(
            err.contains(&format!("`{alias}` is called `{alpine}` in Alpine")),
            "{alias}: {err}"
        );
        assert!(!err.contains("unknown architecture"), "{alias}: {err}");
    }
}

#[test]
fn a_plan_that_fails_says_planning_not_building() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-repo");
    let missing = missing.to_str().unwrap();
    for args in [
        vec!["plan", "--arch", "x86_64", "--repo", missing, "musl"],
        // The old spelling, where it is unambiguous: DIR is named, no package follows.
        vec!["--arch", "x86_64", "--repo", missing, "--simulate", "./t"],
    ] {
        let out = run_in(tmp.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("planning `"), "{args:?}: {err}");
        assert!(!err.contains("building `"), "{args:?}: {err}");
        assert!(!tmp.path().join("t").exists());
    }
}

#[test]
fn binfmt_register_without_root_says_root_is_needed() {
    if !is_root() {
        return skip("needs root to run the tool as `nobody`");
    }
    let out = {
        use std::os::unix::process::CommandExt;
        bin()
            .args(["binfmt", "register", "aarch64"])
            .uid(65534)
            .gid(65534)
            .env("HOME", "/")
            .output()
            .unwrap()
    };
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("needs root"), "{err}");
    assert!(!err.contains("Permission denied (os error"), "{err}");
}
