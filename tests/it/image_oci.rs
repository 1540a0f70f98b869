//! `--output oci`: a reproducible OCI layout that skopeo and umoci read, the same tree as
//! the directory build, and one image index for several arches.

use crate::image_support;

use image_support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A blob of a layout (or of a skopeo `dir:` copy) by digest.
fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    let layout = dir.join("blobs/sha256").join(hex);
    std::fs::read(if layout.is_file() {
        layout
    } else {
        dir.join(hex)
    })
    .unwrap()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Every file of a layout, by relative path.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = walk(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn aarch64_image_is_reproducible_says_arm64_and_unpacks_to_the_directory_build() {
    let ready = root()
        .and_then(|()| tools(&["skopeo", "umoci"]))
        .and_then(|()| repo("v3.13", "aarch64"));
    let Some((repo, keys)) = or_skip(ready) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, dir) = (
        tmp.path().join("a.oci"),
        tmp.path().join("b.oci"),
        tmp.path().join("dir"),
    );
    build(&["aarch64"], &repo, &[&keys], &a, &["--output", "oci"]);
    build(&["aarch64"], &repo, &[&keys], &b, &["--output", "oci"]);
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(
        fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
        fb.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(fa == fb, "two builds give the same layout");
    let index = json(&std::fs::read(a.join("index.json")).unwrap());
    let manifest = &index["manifests"][0];
    let digest = manifest["digest"].as_str().unwrap();
    eprintln!("manifest digest of both builds: {digest}");

    let inspect = run(Command::new("skopeo")
        .args(["--insecure-policy", "inspect"])
        .arg(format!("oci:{}:latest", a.display())));
    let inspect = json(inspect.as_bytes());
    assert_eq!(inspect["Architecture"], "arm64", "{inspect}");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Digest"], digest);
    let packages = inspect["Labels"]["sysroot-mk.packages"].as_str().unwrap();
    assert!(packages.contains("busybox-"), "{packages}");

    let config = json(&blob(
        &a,
        json(&blob(&a, digest))["config"]["digest"]
            .as_str()
            .unwrap(),
    ));
    let diff_id = config["rootfs"]["diff_ids"][0].as_str().unwrap();
    let layer = json(&blob(&a, digest))["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let uncompressed = gunzip(&blob(&a, &layer));
    let sha = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
        &uncompressed,
    ));
    assert_eq!(
        diff_id,
        format!("sha256:{}", hex::encode(sha)),
        "diff_id is the tar's digest"
    );

    build(&["aarch64"], &repo, &[&keys], &dir, &[]);
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", a.display()))
        .arg(&bundle));
    let diffs = differences(&tree(&dir), &tree(&bundle.join("rootfs")));
    assert!(diffs.is_empty(), "{diffs:#?}");
}

#[test]
fn two_arches_give_one_index_and_skopeo_picks_the_arm64_image() {
    let ready = tools(&["skopeo"])
        .and_then(|()| repo("v3.19", "x86_64"))
        .and_then(|x86| Ok((x86, repo("v3.13", "aarch64")?)));
    let Some(((x86_repo, x86_keys), (arm_repo, arm_keys))) = or_skip(ready) else {
        return;
    };
    // One repository path serving both arches, as a mirror does.
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::os::unix::fs::symlink(x86_repo.join("x86_64"), repo.join("x86_64")).unwrap();
    std::os::unix::fs::symlink(arm_repo.join("aarch64"), repo.join("aarch64")).unwrap();
    let image = tmp.path().join("multi.oci");
    build(
        &["x86_64", "aarch64"],
        &repo,
        &[&x86_keys, &arm_keys],
        &image,
        &["--output", "oci"],
    );

    let index = json(&std::fs::read(image.join("index.json")).unwrap());
    let tagged = &index["manifests"][0];
    assert_eq!(
        tagged["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        tagged["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let platforms = json(&blob(&image, tagged["digest"].as_str().unwrap()));
    let arches: Vec<&str> = platforms["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);

    let copy = tmp.path().join("arm64");
    run(Command::new("skopeo")
        .args(["--insecure-policy", "--override-arch", "arm64", "copy"])
        .arg(format!("oci:{}:latest", image.display()))
        .arg(format!("dir:{}", copy.display())));
    let manifest = json(&std::fs::read(copy.join("manifest.json")).unwrap());
    let config = json(&blob(&copy, manifest["config"]["digest"].as_str().unwrap()));
    assert_eq!(config["architecture"], "arm64");
    let layer = gunzip(&blob(
        &copy,
        manifest["layers"][0]["digest"].as_str().unwrap(),
    ));
    let mut archive = tar::Archive::new(&layer[..]);
    let busybox = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap() == Path::new("bin/busybox"))
        .map(|mut e| {
            let mut elf = [0u8; 20];
            std::io::Read::read_exact(&mut e, &mut elf).unwrap();
            elf
        })
        .expect("bin/busybox in the arm64 layer");
    assert_eq!(
        u16::from_le_bytes([busybox[18], busybox[19]]),
        183,
        "EM_AARCH64"
    );
}
