//! `sysroot-mk cache list|clean|prune` on a cache a build filled, in a temporary folder.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use support::http::TestServer;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"));
    cmd.env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("XDG_CACHE_HOME");
    cmd
}

fn cache(dir: &Path, args: &[&str]) -> Output {
    let out = bin()
        .arg("cache")
        .arg("--cache-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `(size, path, what)` of each listed entry.
fn listed(dir: &Path) -> Vec<(u64, String, String)> {
    let out = cache(dir, &["list"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            (
                parts.next().unwrap().parse().unwrap(),
                parts.next().unwrap().to_string(),
                parts.next().unwrap().to_string(),
            )
        })
        .collect()
}

fn build(shared: &Path, dir: &Path, repo: &str, target: &Path, extra: &[&str]) -> Output {
    bin()
        .args(["--arch", "x86_64", "--no-scripts", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .arg("--cache-dir")
        .arg(dir)
        .args(["--repo", repo])
        .args(extra)
        .arg(target)
        .arg("musl")
        .output()
        .unwrap()
}

#[test]
fn list_prune_and_clean_a_cache() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let server = TestServer::serve(&shared.join("v3.19"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let repo = format!("{}/main", server.base);
    let out = build(&shared, &dir, &repo, &tmp.path().join("a"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One index (with its URL) and one package (with its name), sized as on disk.
    let entries = listed(&dir);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let index = &entries[0];
    assert!(index.1.starts_with("v1/index/"), "{entries:?}");
    assert_eq!(index.2, format!("index {repo}/x86_64/APKINDEX.tar.gz"));
    let package = &entries[1];
    assert!(package.1.starts_with("v1/packages/") && package.1.ends_with(".apk"));
    assert_eq!(package.2, "package musl-1.2.4_git20230717-r4");
    for (size, path, _) in &entries {
        assert_eq!(*size, std::fs::metadata(dir.join(path)).unwrap().len());
    }
    let original = entries;

    // What prune removes: an old layout, a package no index lists, a stale partial
    // download, and a planted symlink (removed, never followed).
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    std::fs::create_dir_all(dir.join("packages-v1")).unwrap();
    std::fs::write(dir.join("packages-v1/old.apk"), [0u8; 100]).unwrap();
    let bucket = dir.join("v1/packages");
    std::fs::write(bucket.join(format!("{}.apk", "0".repeat(40))), [1u8; 10]).unwrap();
    std::fs::write(bucket.join(format!("{}.partial", "1".repeat(40))), [2u8; 5]).unwrap();
    std::os::unix::fs::symlink(&victim, bucket.join(format!("{}.apk", "2".repeat(40)))).unwrap();
    let entries = listed(&dir);
    assert_eq!(entries.len(), 6, "{entries:?}");
    assert!(entries
        .iter()
        .any(|e| e.1 == "packages-v1" && e.0 == 100 && e.2.starts_with("old-layout")));

    // A temporary file a running build may be about to rename stays.
    let fresh = dir.join("v1/index/.tmp-1-0-fresh");
    std::fs::write(&fresh, b"x").unwrap();
    let out = cache(&dir, &["prune"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("removed 4 entries"), "{said}");
    assert!(fresh.is_file());
    std::fs::remove_file(&fresh).unwrap();
    assert_eq!(listed(&dir), original);
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(!dir.join("packages-v1").exists());
    // What stays is still a working cache.
    let out = build(&shared, &dir, &repo, &tmp.path().join("b"), &["--offline"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An index not refreshed for two days goes with `--max-age 1d`, and the package
    // only it listed with it.
    let index_path = dir.join(&original[0].1);
    let two_days = std::time::Duration::from_secs(2 * 86400);
    std::fs::File::options()
        .write(true)
        .open(&index_path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - two_days)
        .unwrap();
    let out = cache(&dir, &["prune", "--max-age", "3d"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("removed 0 entries"));
    let out = cache(&dir, &["prune", "--max-age", "1d"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("removed 2 entries"));
    assert!(listed(&dir).is_empty());

    // Clean empties it, but leaves the folder and its tag.
    let out = build(&shared, &dir, &repo, &tmp.path().join("c"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(dir.join("indexes-v1")).unwrap();
    assert_eq!(listed(&dir).len(), 3);
    let out = cache(&dir, &["clean"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("removed 3 entries"));
    assert!(listed(&dir).is_empty());
    assert!(dir.join("CACHEDIR.TAG").is_file());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["CACHEDIR.TAG"]);
}

#[test]
fn a_missing_cache_lists_nothing_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("none");
    assert!(listed(&dir).is_empty());
    let out = cache(&dir, &["prune"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("removed 0 entries"));
    assert!(!dir.exists());
}
