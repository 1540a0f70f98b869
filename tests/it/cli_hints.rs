//! The command line's hints, repository selection, progress and permission errors
//! (issue 13): a `hint:` line only where it applies to what was typed, `--repos` with a
//! mirror whose optional repositories may be missing, the arches a branch publishes, a
//! progress bar whose totals come from the plan, `-v` naming URLs and cache hits, and
//! permission errors that say what is needed.

use crate::enter_support;
use crate::support;

use enter_support::{bin, is_root, namespaces_available, on_path, skip, stderr, stdout};
use std::path::Path;
use support::http::TestServer;
use support::{fixture_keys, write_repo, FixturePackage, Signer, TEST_KEY};
use sysroot_mk::archive::SignatureAlgorithm;

const SIGNER: Signer<'static> = Signer::Key(TEST_KEY, SignatureAlgorithm::Sha1);

/// Lays out `<root>/v3.19/<repo>/<arch>/` for each `(repo, arch, packages)`.
fn mirror(root: &Path, layout: &[(&str, &str, &[FixturePackage])]) {
    for (repo, arch, packages) in layout {
        write_repo(&root.join("v3.19").join(repo), arch, packages, SIGNER);
    }
}

fn package(name: &str) -> FixturePackage {
    FixturePackage::new(name, "1.0-r0", name.as_bytes())
}

/// `sysroot-mk plan --mirror URL --branch v3.19 --keys-dir FIXTURES --no-cache EXTRA...`
fn plan(server: &TestServer, extra: &[&str]) -> std::process::Output {
    bin()
        .args([
            "plan",
            "--mirror",
            &server.base,
            "--branch",
            "v3.19",
            "--no-cache",
        ])
        .arg("--keys-dir")
        .arg(fixture_keys())
        .args(extra)
        .output()
        .unwrap()
}

/// The `hint:` lines of a run.
fn hints(out: &std::process::Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter_map(|l| l.strip_prefix("hint: "))
        .map(str::to_string)
        .collect()
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_branch_without_community_is_a_warning_and_repos_picks_the_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let hello = [package("hello")];
    let shiny = [package("shiny")];
    mirror(
        tmp.path(),
        &[("main", "x86_64", &hello), ("testing", "x86_64", &shiny)],
    );
    let server = TestServer::serve(tmp.path());

    // The default `main,community`: community answers 404, which is only a warning.
    let out = plan(&server, &["--arch", "x86_64", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello-1.0-r0\n");
    let err = stderr(&out);
    assert!(
        err.contains("warning:") && err.contains("v3.19/community") && err.contains("going on"),
        "{err}"
    );

    // `--repos main,testing` reads testing, and not community.
    let out = plan(
        &server,
        &["--arch", "x86_64", "--repos", "main,testing", "shiny"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "shiny-1.0-r0\n");
    assert!(!stderr(&out).contains("community"), "{}", stderr(&out));
    assert!(
        server
            .requests("/v3.19/community/x86_64/APKINDEX.tar.gz")
            .len()
            == 1
    );

    // `main` missing is an error, even when the others are there.
    let out = plan(
        &server,
        &["--arch", "x86_64", "--repos", "testing,main", "hello"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::rename(
        tmp.path().join("v3.19/main"),
        tmp.path().join("v3.19/main-gone"),
    )
    .unwrap();
    let out = plan(
        &server,
        &["--arch", "x86_64", "--repos", "main,testing", "hello"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("v3.19/main"), "{}", stderr(&out));

    // `--repos` is for a mirror: with `--repo` it is refused rather than ignored.
    let out = plan(
        &server,
        &["--repo", &server.base, "--repos", "main", "hello"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A name that is not a repository's gets its own error and the fix.
    let out = plan(&server, &["--arch", "x86_64", "--repos", "main,../x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`../x` is not a repository name"));
    assert!(hints(&out).iter().any(|h| h.contains("--repo URL")));
}

#[test]
fn a_skipped_repository_is_left_out_of_the_sysroots_repositories() {
    let Some(alpine) = enter_support::alpine() else {
        return skip("../shared/alpine is missing");
    };
    if !is_root() {
        return skip("needs root for a build with owners");
    }
    // The shared data is a mirror whose v3.19 has `main` only.
    let server = TestServer::serve(&alpine);
    let tmp = tempfile::tempdir().unwrap();
    let sysroot = tmp.path().join("sysroot");
    let out = bin()
        .args(["build", "--mirror", &server.base, "--branch", "v3.19"])
        .args([
            "--arch",
            "x86_64",
            "--no-cache",
            "--no-scripts",
            "--keys-dir",
        ])
        .arg(alpine.join("keys/x86_64"))
        .arg(&sysroot)
        .arg("musl")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("v3.19/community")
            && err.contains("leaves it out of its `etc/apk/repositories`"),
        "{err}"
    );
    // The sysroot's own apk would fail on a repository without an index.
    assert_eq!(
        std::fs::read_to_string(sysroot.join("etc/apk/repositories")).unwrap(),
        format!("{}/v3.19/main\n", server.base)
    );
}

#[test]
fn no_index_for_the_arch_names_the_published_ones_and_the_close_one() {
    let tmp = tempfile::tempdir().unwrap();
    let hello = [package("hello")];
    mirror(
        tmp.path(),
        &[
            ("main", "x86_64", &hello),
            ("main", "aarch64", &hello),
            ("main", "ppc64le", &hello),
        ],
    );
    let server = TestServer::serve(tmp.path());
    // The README's own example.
    let out = plan(&server, &["--arch", "ppc64", "hello"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("has no index for `ppc64`; it publishes aarch64, ppc64le, x86_64"),
        "{err}"
    );
    let hints = hints(&out);
    assert_eq!(hints.len(), 1, "{err}");
    assert!(
        hints[0].contains("did you mean `--arch ppc64le`") && hints[0].contains("`--repo URL`"),
        "{err}"
    );
    // A missing arch is not the server's fault: no other mirror is suggested.
    assert!(!err.contains("--mirror"), "{err}");

    // An arch with no relative there still learns what is published, and of `--repo`.
    let out = plan(&server, &["--arch", "s390x", "hello"]);
    assert!(stderr(&out).contains("it publishes aarch64, ppc64le, x86_64"));
    assert!(!stderr(&out).contains("did you mean"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint: for an apk repository that publishes `s390x`"));

    // A branch the mirror does not have.
    let out = bin()
        .args([
            "plan",
            "--arch",
            "x86_64",
            "--no-cache",
            "--branch",
            "v9.99",
        ])
        .args(["--mirror", &server.base, "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is `v9.99` a branch of this mirror?"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: pass `--branch`"));
}

#[test]
fn another_mirror_is_suggested_only_when_a_mirror_was_used() {
    let port = closed_port();
    let nowhere = format!("http://127.0.0.1:{port}");
    let base = ["plan", "--arch", "x86_64", "--no-cache", "hello"];

    let out = bin()
        .args(base)
        .args(["--mirror", &nowhere])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let hints = hints(&out);
    assert!(
        hints.len() == 1 && hints[0].contains("try another mirror with `--mirror URL`"),
        "{}",
        stderr(&out)
    );
    // The message is what failed; what to do is on the hint line only.
    assert_eq!(
        stderr(&out).matches("--mirror").count(),
        1,
        "{}",
        stderr(&out)
    );

    let out = bin()
        .args(base)
        .args(["--repo", &format!("{nowhere}/main")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("--mirror"), "{}", stderr(&out));
    assert!(
        self::hints(&out)
            .iter()
            .any(|h| h.contains("check the URL, the network")),
        "{}",
        stderr(&out)
    );

    // A repository that is there but unsigned: the fix is a flag, not another mirror.
    let tmp = tempfile::tempdir().unwrap();
    write_repo(tmp.path(), "x86_64", &[package("hello")], Signer::Unsigned);
    let out = bin()
        .args(base)
        .arg("--repo")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        self::hints(&out),
        ["pass `--allow-untrusted` to use it anyway"],
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("mirror"), "{}", stderr(&out));

    // The default mirror is the library's: the help shows it from there.
    let help = stdout(&bin().args(["plan", "--help"]).output().unwrap());
    assert!(
        help.contains(sysroot_mk::repository::DEFAULT_MIRROR),
        "{help}"
    );
}

/// The shared v3.19 x86_64 repository served over HTTP, and its `--repo` and
/// `--keys-dir` arguments; `None` after saying why not.
fn served_alpine() -> Option<(TestServer, Vec<String>)> {
    let Some(alpine) = enter_support::alpine() else {
        skip("../shared/alpine is missing");
        return None;
    };
    let server = TestServer::serve(&alpine);
    let args = vec![
        "--repo".to_string(),
        format!("{}/v3.19/main", server.base),
        "--keys-dir".to_string(),
        alpine.join("keys/x86_64").display().to_string(),
    ];
    Some((server, args))
}

/// Every `A/B` byte count drawn on the progress bar, in order (`1.50 MiB/6.00 MiB`).
fn byte_frames(screen: &str) -> Vec<(String, String)> {
    let units = ["B", "KiB", "MiB", "GiB"];
    let words: Vec<&str> = screen
        .split(|c: char| c.is_whitespace() || c == '\u{1b}' || c == '[' || c == ']')
        .collect();
    let mut frames = Vec::new();
    for (i, word) in words.iter().enumerate() {
        // `{bytes}/{total_bytes}` renders as `N UNIT/M UNIT`: the middle word is `UNIT/M`.
        let Some((unit, total)) = word.split_once('/') else {
            continue;
        };
        let (Some(before), Some(after)) = (i.checked_sub(1).map(|j| words[j]), words.get(i + 1))
        else {
            continue;
        };
        if units.contains(&unit)
            && units.iter().any(|u| after.starts_with(u))
            && before.parse::<f64>().is_ok()
            && total.parse::<f64>().is_ok()
        {
            frames.push((
                format!("{before} {unit}"),
                format!(
                    "{total} {}",
                    after.trim_end_matches(|c: char| !c.is_alphabetic())
                ),
            ));
        }
    }
    frames
}

#[test]
fn on_a_terminal_the_bar_knows_its_totals_from_the_plan_and_ends_full() {
    if !is_root() || !on_path("script") {
        return skip("needs root for a build with owners and util-linux `script` for a terminal");
    }
    let Some((_server, repo)) = served_alpine() else {
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let mut line = format!(
        "{} --arch x86_64 --no-cache",
        env!("CARGO_BIN_EXE_sysroot-mk")
    );
    for arg in &repo {
        line.push_str(&format!(" '{arg}'"));
    }
    line.push_str(&format!(" '{}/out'", out_dir.path().display()));
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let screen = stdout(&out);
    assert!(out.status.success(), "{screen}");
    let frames = byte_frames(&screen);
    assert!(!frames.is_empty(), "no byte counts drawn: {screen:?}");
    // alpine-base's 25 packages: the total is there from the first frame and never moves.
    let total = &frames[0].1;
    assert!(total.ends_with("MiB"), "{frames:?}");
    assert!(frames.iter().all(|(_, t)| t == total), "{frames:?}");
    let (last, _) = frames.last().unwrap();
    assert_eq!(last, total, "{frames:?}");
    // The package count is fixed too, and ends complete.
    let installs = counts_of("install", &screen);
    assert!(!installs.is_empty(), "{screen:?}");
    assert!(installs.iter().all(|c| c.ends_with("/25")), "{installs:?}");
    assert_eq!(
        installs.last().map(String::as_str),
        Some("25/25"),
        "{screen:?}"
    );
    // The scripts have a phase of their own, whose total is there from its first frame:
    // alpine-base runs 5 (busybox's post-install and trigger, alpine-baselayout's pre-
    // and post-install, openrc's post-install); it ends complete.
    let scripts = counts_of("scripts", &screen);
    assert_eq!(
        scripts.first().map(String::as_str),
        Some("0/5"),
        "{scripts:?}"
    );
    assert!(scripts.iter().all(|c| c.ends_with("/5")), "{scripts:?}");
    assert_eq!(
        scripts.last().map(String::as_str),
        Some("5/5"),
        "{scripts:?}"
    );
}

/// Every `N/M` count drawn on the bar labelled `label` (`install`, `scripts`), in order.
fn counts_of(label: &str, screen: &str) -> Vec<String> {
    let words: Vec<&str> = screen
        .split(|c: char| c.is_whitespace() || c == '\u{1b}' || c == '[' || c == ']')
        .filter(|w| !w.is_empty())
        .collect();
    let mut current = "";
    let mut counts = Vec::new();
    for word in words {
        if word == "install" || word == "scripts" {
            current = word;
            continue;
        }
        let parts: Vec<&str> = word.split('/').collect();
        if current == label && parts.len() == 2 && parts.iter().all(|n| n.parse::<u32>().is_ok()) {
            counts.push(word.to_string());
            current = "";
        }
    }
    counts
}

#[test]
fn verbose_names_the_urls_and_the_cache_hits_and_binfmt_has_its_own_help() {
    let Some((server, repo)) = served_alpine() else {
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        bin()
            .args(["-v", args[0], "--arch", "x86_64"])
            .args(&repo)
            .arg("--cache-dir")
            .arg(cache.path())
            .args(&args[1..])
            .output()
            .unwrap()
    };
    let first = stderr(&run(&["plan", "musl"]));
    let index = format!("{}/v3.19/main/x86_64/APKINDEX.tar.gz", server.base);
    assert!(
        first.contains(&format!("fetching `{index}` (cache miss)")),
        "{first}"
    );
    let second = stderr(&run(&["plan", "musl"]));
    assert!(
        second.contains(&format!("fetching `{index}` (cache hit, revalidating)"))
            && second.contains("not modified; using the cached copy"),
        "{second}"
    );

    if is_root() {
        // A build fetches the package: its URL, then a cache hit on the next build.
        let build = |name: &str| {
            let dir = out_dir.path().join(name);
            run(&["build", "--no-scripts", dir.to_str().unwrap(), "musl"])
        };
        let first = build("a");
        assert!(first.status.success(), "{}", stderr(&first));
        let url = format!("fetching `{}/v3.19/main/x86_64/musl-1.2.4", server.base);
        assert!(stderr(&first).contains(&url), "{}", stderr(&first));
        assert!(stderr(&first).contains("cache miss: `musl-1.2.4"));
        let second = build("b");
        assert!(second.status.success(), "{}", stderr(&second));
        assert!(
            stderr(&second).contains("cache hit: `musl-1.2.4") && !stderr(&second).contains(&url),
            "{}",
            stderr(&second)
        );
    }

    let help = stdout(&bin().args(["binfmt", "status", "--help"]).output().unwrap());
    assert!(
        help.contains("adds nothing") && !help.contains("URLs fetched"),
        "{help}"
    );
    let help = stdout(&bin().args(["binfmt", "--help"]).output().unwrap());
    assert!(help.contains("adds nothing"), "{help}");
    let help = stdout(&bin().args(["build", "--help"]).output().unwrap());
    assert!(help.contains("URLs fetched"), "{help}");
}

#[test]
fn verbose_names_each_script_once() {
    let Some(alpine) = enter_support::alpine() else {
        return skip("../shared/alpine is missing");
    };
    if !is_root() {
        return skip("needs root to run scripts");
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["-v", "--arch", "x86_64", "--no-cache", "--repo"])
        .arg(alpine.join("v3.19/main"))
        .arg("--keys-dir")
        .arg(alpine.join("keys/x86_64"))
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let script = "busybox-1.36.1-r15.post-install";
    // Once when it starts; the script's own output lines are prefixed with its name.
    let mentions = err
        .lines()
        .filter(|l| l.contains(script) && !l.starts_with(&format!("{script}: ")))
        .count();
    assert_eq!(mentions, 1, "{err}");
}

#[test]
fn rootless_enter_as_a_user_the_map_lacks_says_what_is_needed() {
    if !is_root() || !namespaces_available() {
        return skip("needs root to run the tool as `nobody`, and namespaces");
    }
    let Some(dir) = enter_support::native_sysroot() else {
        return;
    };
    let status = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let out = {
        use std::os::unix::process::CommandExt;
        bin()
            .args(["enter", "--user", "daemon"])
            .arg(dir.path())
            .args(["--", "id", "-u"])
            .uid(65534)
            .gid(65534)
            .env("HOME", "/")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    if stderr(&out).contains("create the namespaces") {
        return skip("unprivileged user namespaces are disabled here");
    }
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`--user daemon` is uid 2") && err.contains("maps only one id"),
        "{err}"
    );
    assert!(!err.contains("os error 22"), "{err}");
    let hints = hints(&out);
    assert!(
        hints.len() == 1 && hints[0].contains("as root") && hints[0].contains("/etc/subuid"),
        "{err}"
    );
}
