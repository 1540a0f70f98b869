//! Helpers of the image tests: the shared Alpine data, builds with a fixed epoch, a test
//! user without subordinate ids, and trees compared entry by entry.
#![allow(dead_code)]

use crate::tree_support;
pub use tree_support::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The epoch of every reproducible build here.
pub const EPOCH: &str = "1700000000";

/// `../shared` beside the checkout.
pub fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"))
}

/// The repository and keys of `version`/`arch`, or why a test cannot run.
pub fn repo(version: &str, arch: &str) -> Result<(PathBuf, PathBuf), String> {
    let alpine = shared().join("alpine");
    let repo = alpine.join(format!("{version}/main"));
    if !repo.join(arch).is_dir() {
        return Err(format!("no {version}/main/{arch} in ../shared/alpine"));
    }
    Ok((repo, alpine.join(format!("keys/{arch}"))))
}

/// `Ok` when the tests run as root, else why not.
pub fn root() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("needs root (owners of the reference tree, test users)".into())
    }
}

/// `Ok` when every tool is on PATH, else which is missing.
pub fn tools(names: &[&str]) -> Result<(), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        if !std::env::split_paths(&path).any(|d| d.join(name).is_file()) {
            return Err(format!("`{name}` is not installed"));
        }
    }
    Ok(())
}

/// Prints why a test does not run; `None` then.
pub fn or_skip<T>(found: Result<T, String>) -> Option<T> {
    found.map_err(|why| eprintln!("skipped: {why}")).ok()
}

/// `sysroot-mk --arch ARCH... --repo REPO --keys-dir KEYS --no-cache EXTRA OUT alpine-base`
/// with `SOURCE_DATE_EPOCH` set; fails the test when the build fails.
pub fn build(arches: &[&str], repo: &Path, keys: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"));
    for arch in arches {
        cmd.args(["--arch", arch]);
    }
    cmd.arg("--no-cache").arg("--repo").arg(repo);
    for k in keys {
        cmd.arg("--keys-dir").arg(k);
    }
    cmd.args(extra)
        .arg(out)
        .arg("alpine-base")
        .env("SOURCE_DATE_EPOCH", EPOCH);
    succeeded(cmd.output().unwrap(), "the build")
}

/// The output, after checking the command succeeded.
pub fn succeeded(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command and returns its stdout, failing the test when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = succeeded(cmd.output().unwrap(), &format!("{cmd:?}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test user (uid, gid), created once with `useradd -m`.
pub fn test_user() -> Result<(u32, u32), String> {
    const NAME: &str = "srmk-image";
    tools(&["useradd"])?;
    let _ = Command::new("useradd")
        .args(["-m", "-s", "/bin/sh", NAME])
        .output();
    let user = nix::unistd::User::from_name(NAME)
        .ok()
        .flatten()
        .ok_or("cannot create the test user")?;
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

/// Runs `exe` as the test user with `PATH=/nonexistent`: no `newuidmap`, so no
/// subordinate ids, only the user's own id in the namespace.
pub fn as_user_without_subids(exe: &Path, ids: (u32, u32), args: &[&std::ffi::OsStr]) -> Output {
    as_user(
        exe,
        ids,
        "/nonexistent",
        &[("SOURCE_DATE_EPOCH", EPOCH)],
        args,
    )
}

/// Headers of a tar stream: path -> (entry type byte, uid, gid, mode, link name).
pub fn tar_headers(bytes: &[u8]) -> BTreeMap<String, (u8, u64, u64, u32, String)> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let path = entry.path().unwrap().display().to_string();
        let value = (
            h.entry_type().as_byte(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mode().unwrap(),
            link,
        );
        out.insert(path.trim_end_matches('/').to_string(), value);
    }
    out
}

/// A gzip stream inflated.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}
