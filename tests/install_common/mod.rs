//! Helpers shared by the install and package integration tests: locating the shared Alpine
//! data, reading index entries the simple way, building hostile packages.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use sysroot_mk::index::{Dependency, Op, Package};
use sysroot_mk::version::Version;

/// `../shared` next to the checkout (or next to the worktrees folder, `/work/wt/<name>`).
pub fn shared() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    [manifest.join("../shared"), manifest.join("../../shared")]
        .into_iter()
        .find(|d| d.join("alpine").is_dir())
}

/// `../shared/alpine`, or `None` (with a skip line) when absent.
pub fn shared_alpine() -> Option<PathBuf> {
    match shared().map(|s| s.join("alpine")) {
        Some(dir) if dir.join("v3.19/main/x86_64/APKINDEX.tar.gz").is_file() => Some(dir),
        _ => {
            eprintln!("skipped: ../shared/alpine is absent");
            None
        }
    }
}

/// Whether we run as root (ownership and the oracle need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A package with only the fields these tests need.
pub fn package(name: &str, version: &str, checksum: &str) -> Package {
    Package {
        checksum: checksum.to_owned(),
        name: name.to_owned(),
        version: Version::new(version),
        arch: "x86_64".into(),
        size: 0,
        installed_size: 0,
        description: String::new(),
        url: String::new(),
        license: String::new(),
        origin: name.to_owned(),
        maintainer: String::new(),
        build_time: 0,
        commit: String::new(),
        provider_priority: None,
        depends: Vec::new(),
        provides: Vec::new(),
        install_if: Vec::new(),
        replaces: Vec::new(),
        replaces_priority: None,
        repo: 0,
        uninstallable: false,
    }
}

/// Reads `APKINDEX` out of an `APKINDEX.tar.gz` (signature not checked: the trust module
/// does that) and returns its packages with the fields installing needs.
pub fn read_index(path: &Path) -> Vec<Package> {
    let bytes = std::fs::read(path).expect("read index");
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(&bytes[..]));
    let mut text = String::new();
    for entry in archive.entries().expect("index tar") {
        let mut entry = entry.expect("index entry");
        if entry.path_bytes().as_ref() == b"APKINDEX" {
            entry.read_to_string(&mut text).expect("APKINDEX text");
        }
    }
    text.split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|stanza| {
            let mut p = package("", "", "");
            for line in stanza.lines() {
                let Some((key, value)) = line.split_once(':') else { continue };
                match key {
                    "C" => p.checksum = value.into(),
                    "P" => p.name = value.into(),
                    "V" => p.version = Version::new(value),
                    "o" => p.origin = value.into(),
                    "S" => p.size = value.parse().unwrap_or(0),
                    "I" => p.installed_size = value.parse().unwrap_or(0),
                    "t" => p.build_time = value.parse().unwrap_or(0),
                    "r" => p.replaces = value.split(' ').map(unversioned).collect(),
                    "q" => p.replaces_priority = value.parse().ok(),
                    _ => {}
                }
            }
            p
        })
        .collect()
}

/// A dependency atom on a bare name (enough for `r:` in these indexes).
pub fn unversioned(name: &str) -> Dependency {
    Dependency {
        name: name.to_owned(),
        op: Op::Any,
        version: String::new(),
        conflict: false,
        tag: None,
    }
}
