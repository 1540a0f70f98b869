//! The skeleton `apk add --initdb` lays out, and the files apk leaves to the caller.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use sha2::Digest;
use sysroot_mk::{db, layout, report::Reporter};

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);
impl Reporter for Recorder {
    fn warn(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

/// path -> "type mode uid gid size sha256 target", the columns of the oracle's manifest.py.
fn manifest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
        let rel = if rel.is_empty() { ".".to_string() } else { rel };
        let ft = md.file_type();
        let (kind, size, sum, target) = if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            ("d", "-".to_string(), "-".to_string(), "-".to_string())
        } else if ft.is_char_device() {
            let (ma, mi) = (libc::major(md.rdev()), libc::minor(md.rdev()));
            ("c", "-".into(), "-".into(), format!("{ma}:{mi}"))
        } else {
            let bytes = fs::read(&p).unwrap();
            (
                "f",
                bytes.len().to_string(),
                hex::encode(sha2::Sha256::digest(&bytes)),
                "-".into(),
            )
        };
        out.insert(
            rel,
            format!(
                "{kind}\t{:04o}\t{}\t{}\t{size}\t{sum}\t{target}",
                md.mode() & 0o7777,
                md.uid(),
                md.gid()
            ),
        );
    }
    out
}

fn oracle_manifest() -> BTreeMap<String, String> {
    let text = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/db/empty/manifest.tsv"
    ))
    .unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_string(), cols[1..8].join("\t"))
        })
        .collect()
}

#[test]
fn skeleton_with_empty_database_matches_apk_initdb() {
    let root = tempfile::tempdir().unwrap();
    let nodes = layout::init_skeleton(root.path()).unwrap();
    db::write_database(root.path(), &[], &[], "x86_64").unwrap();
    let mut want = oracle_manifest();
    let mut got = manifest(root.path());
    if nodes == layout::DeviceNodes::Skipped {
        eprintln!("not root: comparing without device nodes and ownership");
        want.retain(|p, _| !p.starts_with("dev/"));
        let strip = |m: &mut BTreeMap<String, String>| {
            for v in m.values_mut() {
                let mut c: Vec<&str> = v.split('\t').collect();
                c[2] = "-";
                c[3] = "-";
                *v = c.join("\t");
            }
        };
        strip(&mut want);
        strip(&mut got);
    }
    assert_eq!(got, want);
}

#[test]
fn skeleton_keeps_what_exists() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("tmp")).unwrap();
    fs::write(root.path().join("tmp/keep"), b"x").unwrap();
    layout::init_skeleton(root.path()).unwrap();
    layout::init_skeleton(root.path()).unwrap();
    assert_eq!(fs::read(root.path().join("tmp/keep")).unwrap(), b"x");
}

#[test]
fn keys_never_replace_a_packaged_key() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("etc/apk/keys")).unwrap();
    fs::write(root.path().join("etc/apk/keys/a.rsa.pub"), b"from package").unwrap();
    let written = layout::install_keys(
        root.path(),
        &[
            ("a.rsa.pub".into(), b"given".to_vec()),
            ("b.rsa.pub".into(), b"given b".to_vec()),
        ],
    )
    .unwrap();
    assert_eq!(written, ["b.rsa.pub"]);
    assert_eq!(
        fs::read(root.path().join("etc/apk/keys/a.rsa.pub")).unwrap(),
        b"from package"
    );
    assert_eq!(
        fs::read(root.path().join("etc/apk/keys/b.rsa.pub")).unwrap(),
        b"given b"
    );
    let bad = layout::install_keys(root.path(), &[("../x".into(), vec![])]);
    assert!(matches!(
        bad,
        Err(layout::LayoutError::InvalidKeyName { .. })
    ));
}

#[test]
fn repositories_file_lists_the_given_lines() {
    let root = tempfile::tempdir().unwrap();
    layout::write_repositories(
        root.path(),
        &[
            "https://dl-cdn.alpinelinux.org/alpine/v3.19/main".into(),
            "@edge /x".into(),
        ],
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(root.path().join(layout::REPOSITORIES)).unwrap(),
        "https://dl-cdn.alpinelinux.org/alpine/v3.19/main\n@edge /x\n"
    );
}

#[test]
fn packaged_ca_bundle_is_kept_and_missing_one_is_copied_from_the_host() {
    let host = tempfile::tempdir().unwrap();
    let host_bundle = host.path().join("bundle.pem");
    fs::write(&host_bundle, b"HOST CERTS").unwrap();

    let packaged = tempfile::tempdir().unwrap();
    fs::create_dir_all(packaged.path().join("etc/ssl/certs")).unwrap();
    fs::write(packaged.path().join(layout::CA_BUNDLE), b"ALPINE CERTS").unwrap();
    let rec = Recorder::default();
    assert_eq!(
        layout::ensure_ca_bundle(packaged.path(), Some(&host_bundle), &rec).unwrap(),
        layout::CaBundle::FromPackage
    );
    assert_eq!(
        fs::read(packaged.path().join(layout::CA_BUNDLE)).unwrap(),
        b"ALPINE CERTS"
    );
    assert!(rec.0.lock().unwrap().is_empty());

    let bare = tempfile::tempdir().unwrap();
    let got = layout::ensure_ca_bundle(bare.path(), Some(&host_bundle), &rec).unwrap();
    assert_eq!(got, layout::CaBundle::CopiedFromHost(host_bundle.clone()));
    assert_eq!(
        fs::read(bare.path().join(layout::CA_BUNDLE)).unwrap(),
        b"HOST CERTS"
    );
    assert!(rec.0.lock().unwrap()[0].contains("copied the host's"));
}

#[test]
fn absolute_symlinks_in_the_sysroot_do_not_lead_to_the_host() {
    let outside = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("etc")).unwrap();
    // A package could ship `etc/ssl -> /abs/host/path`; inside the root that means root/abs/...
    std::os::unix::fs::symlink(outside.path(), root.path().join("etc/ssl")).unwrap();
    let host_bundle = root.path().join("hostbundle");
    fs::write(&host_bundle, b"CERTS").unwrap();
    let _ = layout::ensure_ca_bundle(root.path(), Some(&host_bundle), &Recorder::default());
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside the root"
    );
}
