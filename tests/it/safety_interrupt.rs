//! Interruption at any moment: SIGINT, SIGTERM and SIGHUP leave no staging directory and
//! no partial cache entry, exit 128 + N with one line saying what was cleaned; SIGKILL
//! leaves at most a staging directory that the next build removes. A clean build after
//! the loop equals one made before it.

use crate::support;

use sha1::{Digest, Sha1};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::http::TestServer;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"));
    cmd.env_remove("HTTPS_PROXY").env_remove("HTTP_PROXY");
    cmd
}

/// `sysroot-mk -q --arch x86_64 --keys-dir K --repo REPO [cache] OUT alpine-base`.
fn build_command(shared: &Path, repo: &str, cache: Option<&Path>, out: &Path) -> Command {
    let mut cmd = bin();
    cmd.args(["-q", "--arch", "x86_64", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .args(["--repo", repo]);
    match cache {
        Some(dir) => cmd.arg("--cache-dir").arg(dir),
        None => cmd.arg("--no-cache"),
    };
    cmd.arg(out).arg("alpine-base");
    cmd
}

/// Path, type, mode, owner, size, link target and content digest of every entry.
fn manifest(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let extra = if md.is_dir() {
                stack.push(path.clone());
                String::new()
            } else if md.file_type().is_symlink() {
                std::fs::read_link(&path).unwrap().display().to_string()
            } else if md.is_file() {
                hex::encode(Sha1::digest(std::fs::read(&path).unwrap()))
            } else {
                String::new()
            };
            out.push(format!(
                "{rel} {:o} {}:{} {} {extra}",
                md.mode(),
                md.uid(),
                md.gid(),
                if md.is_dir() { 0 } else { md.len() }
            ));
        }
    }
    out.sort();
    out
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Partial or temporary files anywhere in a cache.
fn partial_cache_files(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![cache.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            } else if name.ends_with(".partial") || name.starts_with(".tmp-") {
                found.push(entry.path());
            }
        }
    }
    found
}

#[test]
fn signals_at_every_phase_leave_nothing_and_the_next_build_is_clean() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let local = shared.join("v3.19/main");
    let local = local.to_str().unwrap();
    let server = TestServer::serve(&shared.join("v3.19"));
    let remote = format!("{}/main", server.base);
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    let started = std::time::Instant::now();
    let status = build_command(&shared, local, None, &reference)
        .status()
        .unwrap();
    assert!(status.success());
    // The delays spread over the build's whole duration on this machine, and a little
    // beyond, so that every phase, the commit and the exit are hit.
    let step = (started.elapsed() * 6 / 5 / 40).max(Duration::from_millis(10));
    let expected = manifest(&reference);

    let parent = tmp.path().join("loop");
    std::fs::create_dir(&parent).unwrap();
    let out = parent.join("sysroot");
    let signals = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGKILL];
    let (mut signalled, mut finished, mut early) = (0, 0, 0);
    for i in 0..40u64 {
        let sig = signals[i as usize % signals.len()];
        // Every third build goes over HTTP through a fresh cache, for the download phase.
        let cache = (i % 3 == 2).then(|| tmp.path().join(format!("cache-{i}")));
        let repo = if cache.is_some() {
            remote.as_str()
        } else {
            local
        };
        let delay = step * i as u32;
        let child = build_command(&shared, repo, cache.as_deref(), &out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        std::thread::sleep(delay);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, sig) };
        let result = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        let what = format!(
            "#{i}: signal {sig} after {delay:?}: {:?} {stderr:?}",
            result.status
        );
        let own_staging = format!(".sysroot.sysroot-mk-{pid}-");
        if result.status.code() == Some(0) {
            finished += 1;
            assert!(out.join("lib/apk/db/installed").is_file(), "{what}");
        } else if sig == libc::SIGKILL {
            assert_eq!(result.status.signal(), Some(libc::SIGKILL), "{what}");
        } else if result.status.signal() == Some(sig) {
            // Before the handlers exist (process start-up): nothing was made yet.
            early += 1;
            assert!(stderr.is_empty(), "{what}");
        } else {
            signalled += 1;
            assert_eq!(result.status.code(), Some(128 + sig), "{what}");
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{what}");
            assert!(lines[0].starts_with("interrupted by SIG"), "{what}");
            // A signal right after the commit keeps the finished sysroot and says so.
            if lines[0].ends_with("it is kept") {
                assert!(out.join("lib/apk/db/installed").is_file(), "{what}");
            } else {
                assert!(!out.exists(), "{what}");
            }
        }
        if sig != libc::SIGKILL {
            let left: Vec<String> = names(&parent)
                .into_iter()
                .filter(|n| n.starts_with(&own_staging))
                .collect();
            assert!(left.is_empty(), "{what}: left {left:?}");
            if let Some(cache) = &cache {
                let partial = partial_cache_files(cache);
                assert!(partial.is_empty(), "{what}: left {partial:?}");
            }
        }
        if out.exists() {
            // Only ever a directory this test's builds made.
            std::fs::remove_dir_all(&out).unwrap();
        }
    }
    eprintln!("{signalled} interrupted with cleanup, {finished} finished first, {early} before the handlers");
    assert!(signalled >= 15, "the delays cover the build's phases");

    let status = build_command(&shared, local, None, &out).status().unwrap();
    assert!(status.success());
    assert_eq!(
        names(&parent),
        ["sysroot"],
        "stale staging directories removed"
    );
    assert!(
        manifest(&out) == expected,
        "the clean build equals the reference"
    );
}
