//! Helpers for the update tests: the tool and apk's oracle run on copies of one tree,
//! manifests compared, and a signed repository of generated packages with scripts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) use crate::install_common;
pub(crate) use crate::support;

use install_common::{tar_of, TestEntry};
use support::TEST_KEY;

/// `../shared` with the Alpine data and the oracle, or `None` with a skip line; also
/// skips without root (the oracle chroots, scripts run as root).
pub fn shared_or_skip() -> Option<PathBuf> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the apk oracle and package scripts need root");
        return None;
    }
    let shared = install_common::shared()?;
    if !shared.join("tools/oracle/apk-chroot.sh").is_file()
        || !shared
            .join("alpine/v3.19/main/x86_64/APKINDEX.tar.gz")
            .is_file()
    {
        eprintln!("skipped: ../shared (alpine v3.19/main and the oracle) is absent");
        return None;
    }
    Some(shared)
}

/// Runs the tool; panics with its output when it fails.
pub fn tool(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sysroot-mk {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `apk --root /target ARGS` in the oracle chroot on `root`, with extra binds.
pub fn apk(shared: &Path, root: &Path, binds: &[String], args: &[&str]) {
    let mut cmd = Command::new(shared.join("tools/oracle/apk-chroot.sh"));
    cmd.arg("-b").arg(format!("{}:/target", root.display()));
    for b in binds {
        cmd.arg("-b").arg(b);
    }
    cmd.args(["--", "/sbin/apk", "--root", "/target", "--no-cache"]);
    cmd.args(args);
    let out = cmd.output().unwrap();
    eprintln!(
        "apk {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "apk {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The canonical manifest of `tree` (with mtimes when asked).
pub fn manifest(shared: &Path, tree: &Path, mtime: bool) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg(shared.join("tools/oracle/manifest.py"));
    if mtime {
        cmd.arg("--mtime");
    }
    let out = cmd.arg(tree).output().unwrap();
    assert!(out.status.success(), "manifest.py failed");
    String::from_utf8(out.stdout).unwrap()
}

/// `cp -a from to`.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Asserts that the two trees hold the same files (manifest-diff finds 0 differences)
/// and byte-identical database files.
pub fn assert_same(shared: &Path, expected: &Path, actual: &Path, step: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("apk.tsv"), dir.path().join("ours.tsv"));
    std::fs::write(&a, manifest(shared, expected, false)).unwrap();
    std::fs::write(&b, manifest(shared, actual, false)).unwrap();
    let diff = Command::new("python3")
        .arg(shared.join("tools/oracle/manifest-diff.py"))
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        text.contains(": 0 differences"),
        "{step}: the tree differs from apk's:\n{text}"
    );
    for f in [
        "lib/apk/db/installed",
        "lib/apk/db/scripts.tar",
        "lib/apk/db/triggers",
        "etc/apk/world",
    ] {
        assert!(
            std::fs::read(expected.join(f)).unwrap() == std::fs::read(actual.join(f)).unwrap(),
            "{step}: `{f}` differs from apk's"
        );
    }
}

/// A generated package with scripts, signed with the test key.
pub struct ScriptedPackage {
    pub name: String,
    pub version: String,
    pub bytes: Vec<u8>,
    pub checksum: String,
    pub installed_size: usize,
}

/// Builds `name-version` with `entries` as data and one script per `(action, body)`.
pub fn scripted_package(
    name: &str,
    version: &str,
    entries: &[TestEntry],
    scripts: &[(&str, &str)],
) -> ScriptedPackage {
    scripted_package_with(name, version, entries, scripts, "")
}

/// [`scripted_package`] with `pkginfo` (`key = value` lines) added to its `.PKGINFO`
/// (`triggers = /dir/*`, say).
pub fn scripted_package_with(
    name: &str,
    version: &str,
    entries: &[TestEntry],
    scripts: &[(&str, &str)],
    pkginfo: &str,
) -> ScriptedPackage {
    use base64::Engine;
    use sha1::Digest;
    let mut data_tar = tar_of(entries);
    data_tar.extend_from_slice(&[0u8; 1024]);
    let data = support::gzip(&data_tar);
    let datahash = hex::encode(sha2::Sha256::digest(&data));
    let size: usize = entries.iter().map(|e| e.data.len()).sum();
    let pkginfo = format!(
        "pkgname = {name}\npkgver = {version}\npkgdesc = test\nurl = https://example.invalid\nbuilddate = 1700000000\nsize = {size}\narch = x86_64\norigin = {name}\nlicense = MIT\ndatahash = {datahash}\n{pkginfo}"
    );
    let mut control: Vec<(String, Vec<u8>)> = vec![(".PKGINFO".into(), pkginfo.into_bytes())];
    for (action, body) in scripts {
        control.push((format!(".{action}"), body.as_bytes().to_vec()));
    }
    let refs: Vec<(&str, &[u8])> = control
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let control = support::gzip(&apk_tar(&refs));
    let checksum = format!(
        "Q1{}",
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&control))
    );
    let mut bytes = signed(control);
    bytes.extend_from_slice(&data);
    ScriptedPackage {
        name: name.into(),
        version: version.into(),
        bytes,
        checksum,
        installed_size: size,
    }
}

/// Writes a signed repository of `packages` at `root/x86_64`.
pub fn write_repo(root: &Path, packages: &[&ScriptedPackage]) {
    let dir = root.join("x86_64");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for p in packages {
        text.push_str(&format!(
            "C:{}\nP:{}\nV:{}\nA:x86_64\nS:{}\nI:{}\nT:test\nU:https://example.invalid\nL:MIT\no:{}\nt:1700000000\n\n",
            p.checksum,
            p.name,
            p.version,
            p.bytes.len(),
            p.installed_size,
            p.name
        ));
        std::fs::write(dir.join(format!("{}-{}.apk", p.name, p.version)), &p.bytes).unwrap();
    }
    let body = support::gzip(&apk_tar(&[
        ("DESCRIPTION", b"update test repository" as &[u8]),
        ("APKINDEX", text.as_bytes()),
    ]));
    std::fs::write(dir.join("APKINDEX.tar.gz"), signed(body)).unwrap();
}

/// `rest` with a signature member of the test key in front, in a tar apk reads.
fn signed(rest: Vec<u8>) -> Vec<u8> {
    use rsa::Pkcs1v15Sign;
    use sha1::Digest;
    let key = support::private_key(TEST_KEY);
    let sig = key
        .sign(
            Pkcs1v15Sign::new::<sha1::Sha1>(),
            &sha1::Sha1::digest(&rest),
        )
        .unwrap();
    let name = format!(".SIGN.RSA.{TEST_KEY}");
    [support::gzip(&apk_tar(&[(&name, &sig)])), rest].concat()
}

/// A tar without end blocks whose headers apk's parser takes: type `0` for regular
/// files (the shared fixture helper writes the old `\0`, which apk skips, so apk never
/// sees its signature).
fn apk_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    let mut out = builder.into_inner().unwrap();
    out.truncate(out.len() - 1024);
    out
}
