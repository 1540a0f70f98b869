//! The cache as the binary uses it: an unusable default cache is a warning, and two
//! builds sharing one cache directory at the same time both succeed.

use crate::support;

use std::process::{Command, Stdio};
use support::http::TestServer;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"));
    cmd.env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("XDG_CACHE_HOME");
    cmd
}

#[test]
fn a_missing_home_warns_once_and_builds_without_a_cache() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let server = TestServer::serve(&shared.join("v3.19"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sysroot");
    // Inside the test's own folder, so that nothing outside it is ever created.
    let home = tmp.path().join("missing-home");
    let result = bin()
        .env("HOME", &home)
        .args(["--arch", "x86_64", "--no-scripts", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .args(["--repo", &format!("{}/main", server.base)])
        .arg(&out)
        .arg("musl")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("cache")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].starts_with("warning: "), "{stderr}");
    assert!(!home.exists(), "a missing home is not created");
}

#[test]
fn two_builds_sharing_one_cache_at_once_both_succeed() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let server = TestServer::serve(&shared.join("v3.19"));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            bin()
                .args(["-q", "--arch", "x86_64", "--no-scripts", "--keys-dir"])
                .arg(shared.join("keys/x86_64"))
                .args(["--repo", &format!("{}/main", server.base)])
                .arg("--cache-dir")
                .arg(&cache)
                .arg(tmp.path().join(name))
                .arg("alpine-base")
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let result = child.wait_with_output().unwrap();
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    for name in ["a", "b"] {
        assert!(tmp.path().join(name).join("lib/apk/db/installed").is_file());
    }
    let leftovers: Vec<_> = std::fs::read_dir(cache.join("v1/packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".apk"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
