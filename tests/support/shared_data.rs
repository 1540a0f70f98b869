//! Finding `../shared/alpine` and reading the `APKINDEX` text out of its signed indexes,
//! for the real-data tests and the index bench.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

/// `../shared/alpine` next to the checkout; a worktree under `/work/wt/<name>` finds it
/// one level further up.
pub fn shared() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let near = here.join("../shared/alpine");
    let far = here.join("../../shared/alpine");
    if !near.exists() && far.exists() {
        far
    } else {
        near
    }
}

/// The full v3.19 x86_64 index of `repo` (`main` or `community`).
pub fn v3_19_index(repo: &str) -> PathBuf {
    shared().join(format!("indexes/v3.19-x86_64/{repo}-APKINDEX.tar.gz"))
}

/// The `APKINDEX` member's text of the signed index at `path`.
pub fn apkindex_text(path: &Path) -> String {
    // The signature member and the index member are separate gzip members of one tar
    // stream; the signature entry is simply skipped.
    tar_member(path, "APKINDEX")
        .unwrap_or_else(|| panic!("{} has no APKINDEX member", path.display()))
}

/// The text of `member` in a gzip'd tar, read whole; `None` when absent.
pub fn tar_member(path: &Path, member: &str) -> Option<String> {
    let file = std::fs::File::open(path).expect("open tarball");
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(file));
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let name = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        if name.trim_start_matches("./") == member {
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("member is UTF-8");
            return Some(text);
        }
    }
    None
}

/// [`apkindex_text`], or `None` (after saying why) when the index is absent.
pub fn apkindex_text_or_skip(path: &Path) -> Option<String> {
    if !path.exists() {
        eprintln!("skipped: {} is absent", path.display());
        return None;
    }
    Some(apkindex_text(path))
}
