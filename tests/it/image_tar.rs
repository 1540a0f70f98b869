//! `--output tar`: headers carry owners, setuid bits and device nodes even from a rootless
//! build without subordinate ids, and `SOURCE_DATE_EPOCH` makes archives bit for bit equal.

use crate::image_support;

use image_support::*;
use std::path::Path;

/// The `a:` record of `bin/bbsuid` in a sysroot's `installed`: (uid, gid, mode).
fn recorded_bbsuid(root: &Path) -> (u32, u32, u32) {
    let installed = sysroot_mk::db::read_database(root).unwrap();
    installed
        .iter()
        .flat_map(|p| &p.dirs)
        .filter(|d| d.path == "bin")
        .flat_map(|d| &d.files)
        .find(|f| f.name == "bbsuid")
        .map(|f| (f.acl.uid, f.acl.gid, f.acl.mode))
        .expect("busybox-suid records bin/bbsuid")
}

#[test]
fn rootless_without_subordinate_ids_tar_has_root_owned_setuid_bbsuid_and_both_outputs_equal_root_ones(
) {
    let Some((repo, keys)) = or_skip(root().and_then(|()| repo("v3.19", "x86_64"))) else {
        return;
    };
    let Some(ids) = or_skip(test_user()) else {
        return;
    };
    let (tmp, work, exe) = user_workspace(ids.0, ids.1);
    let archive = work.join("rootless.tar.gz");
    let args: Vec<&std::ffi::OsStr> = vec![
        "--arch".as_ref(),
        "x86_64".as_ref(),
        "--no-cache".as_ref(),
        "--repo".as_ref(),
        repo.as_os_str(),
        "--keys-dir".as_ref(),
        keys.as_os_str(),
        "--output".as_ref(),
        "tar".as_ref(),
        archive.as_os_str(),
        "alpine-base".as_ref(),
    ];
    let out = as_user_without_subids(&exe, ids, &args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if err.contains("cannot create a user namespace") {
        return eprintln!("skipped: user namespaces are not available to unprivileged users");
    }
    let out = succeeded(out, "the rootless build");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no subordinate ids"),
        "{err}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["rootless.tar.gz"], "only the archive is left");

    let reference = tmp.path().join("root");
    build(&["x86_64"], &repo, &[&keys], &reference, &[]);
    let (uid, gid, mode) = recorded_bbsuid(&reference);
    assert_eq!((uid, gid), (0, 0));
    assert_ne!(
        mode & 0o4000,
        0,
        "bbsuid is setuid in the database: {mode:o}"
    );

    let headers = tar_headers(&gunzip(&std::fs::read(&archive).unwrap()));
    let (kind, h_uid, h_gid, h_mode, _) = headers["bin/bbsuid"].clone();
    assert_eq!(kind, b'0');
    assert_eq!(
        (h_uid, h_gid, h_mode),
        (0, 0, mode),
        "bin/bbsuid: {h_mode:o}"
    );
    assert_eq!(
        headers["etc/shadow"].2, 42,
        "etc/shadow belongs to group shadow"
    );
    let null = &headers["dev/null"];
    assert_eq!(
        (null.0, null.1, null.3),
        (b'3', 0, 0o666),
        "dev/null is a device"
    );

    // The same build as root, archived: the same bytes.
    let root_archive = tmp.path().join("root.tar.gz");
    build(
        &["x86_64"],
        &repo,
        &[&keys],
        &root_archive,
        &["--output", "tar"],
    );
    let root_headers = tar_headers(&gunzip(&std::fs::read(&root_archive).unwrap()));
    let diffs: Vec<String> = root_headers
        .iter()
        .filter(|(path, header)| headers.get(*path) != Some(header))
        .map(|(path, header)| format!("{path}: root {header:?}, rootless {:?}", headers.get(path)))
        .chain(
            headers
                .keys()
                .filter(|p| !root_headers.contains_key(*p))
                .map(|p| format!("only rootless: {p}")),
        )
        .take(20)
        .collect();
    assert!(diffs.is_empty(), "{diffs:#?}");
    assert!(
        std::fs::read(&root_archive).unwrap() == std::fs::read(&archive).unwrap(),
        "the rootless archive equals the root one"
    );

    // And as an OCI image: the same manifest digest as root's.
    let image = work.join("rootless.oci");
    let mut oci_args = args.clone();
    oci_args[8] = "oci".as_ref();
    oci_args[9] = image.as_os_str();
    succeeded(
        as_user_without_subids(&exe, ids, &oci_args),
        "the rootless OCI build",
    );
    let root_image = tmp.path().join("root.oci");
    build(
        &["x86_64"],
        &repo,
        &[&keys],
        &root_image,
        &["--output", "oci"],
    );
    let index = |dir: &Path| std::fs::read(dir.join("index.json")).unwrap();
    assert!(
        index(&image) == index(&root_image),
        "the rootless image equals the root one"
    );
}

#[test]
fn two_builds_with_an_epoch_give_identical_archives_sorted_and_clamped() {
    let Some((repo, keys)) = or_skip(repo("v3.19", "x86_64")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut sums = Vec::new();
    for name in ["a.tar.gz", "b.tar.gz", "c.tar.zst", "d.tar.zst"] {
        let path = tmp.path().join(name);
        build(&["x86_64"], &repo, &[&keys], &path, &["--output", "tar"]);
        sums.push(std::fs::read(&path).unwrap());
    }
    assert!(sums[0] == sums[1], "two .tar.gz builds differ");
    assert!(sums[2] == sums[3], "two .tar.zst builds differ");
    assert_eq!(&sums[0][..2], b"\x1f\x8b");
    assert_eq!(&sums[0][4..8], &[0, 0, 0, 0], "gzip header mtime 0");
    assert_eq!(sums[0][3] & 0x08, 0, "no file name in the gzip header");
    assert_eq!(&sums[2][..4], b"\x28\xb5\x2f\xfd", "zstd magic");

    let tar = gunzip(&sums[0]);
    let mut archive = tar::Archive::new(&tar[..]);
    let mut paths = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        assert!(entry.header().mtime().unwrap() <= EPOCH.parse().unwrap());
        paths.push(entry.path().unwrap().display().to_string());
    }
    let mut sorted = paths.clone();
    sorted.sort_by(|a, b| a.trim_end_matches('/').cmp(b.trim_end_matches('/')));
    assert_eq!(paths, sorted, "entries sorted by path");
    assert!(paths.len() > 700, "{} entries", paths.len());
}

#[test]
fn stdout_gets_the_uncompressed_archive_and_existing_files_need_force() {
    let Some((repo, keys)) = or_skip(repo("v3.19", "x86_64")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("x.tar");
    build(&["x86_64"], &repo, &[&keys], &file, &["--output", "tar"]);
    let out = build(
        &["x86_64"],
        &repo,
        &[&keys],
        Path::new("-"),
        &["--output", "tar"],
    );
    assert!(
        out.stdout == std::fs::read(&file).unwrap(),
        "stdout equals x.tar"
    );

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sysroot-mk"));
    cmd.args([
        "--arch",
        "x86_64",
        "--no-cache",
        "--output",
        "tar",
        "--repo",
    ])
    .arg(&repo)
    .arg("--keys-dir")
    .arg(&keys)
    .arg(&file);
    let again = cmd.output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    build(
        &["x86_64"],
        &repo,
        &[&keys],
        &file,
        &["--output", "tar", "--force"],
    );
}

#[test]
fn reproducible_without_an_epoch_clamps_to_the_newest_package() {
    let Some((repo, keys)) = or_skip(repo("v3.19", "x86_64")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut archives = Vec::new();
    for name in ["a.tar", "b.tar"] {
        let path = tmp.path().join(name);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sysroot-mk"));
        cmd.args([
            "--arch",
            "x86_64",
            "--no-cache",
            "--reproducible",
            "--output",
            "tar",
        ])
        .arg("--repo")
        .arg(&repo)
        .arg("--keys-dir")
        .arg(&keys)
        .arg(&path)
        .env_remove("SOURCE_DATE_EPOCH");
        succeeded(cmd.output().unwrap(), "the build");
        archives.push(std::fs::read(&path).unwrap());
    }
    assert!(
        archives[0] == archives[1],
        "two --reproducible builds differ"
    );
    let mut installed = String::new();
    let mut latest = 0;
    for entry in tar::Archive::new(&archives[0][..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        latest = latest.max(entry.header().mtime().unwrap());
        if entry.path().unwrap() == Path::new(sysroot_mk::db::INSTALLED) {
            std::io::Read::read_to_string(&mut entry, &mut installed).unwrap();
        }
    }
    let newest = sysroot_mk::db::read_installed(&installed)
        .unwrap()
        .iter()
        .map(|p| p.package.build_time)
        .max()
        .unwrap();
    // Files written by the build (apk's database) are clamped to exactly that time.
    assert_eq!(latest, newest);
}

#[test]
fn directory_builds_with_an_epoch_are_identical_mtimes_included() {
    let Some((repo, keys)) = or_skip(repo("v3.19", "x86_64")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut trees = Vec::new();
    for name in ["a", "b"] {
        let dir = tmp.path().join(name);
        build(&["x86_64"], &repo, &[&keys], &dir, &[]);
        let mut times = std::collections::BTreeMap::new();
        for path in tree(&dir).keys() {
            let md = std::fs::symlink_metadata(dir.join(path)).unwrap();
            times.insert(path.clone(), std::os::unix::fs::MetadataExt::mtime(&md));
        }
        assert!(times.values().all(|&t| t <= EPOCH.parse().unwrap()));
        trees.push((tree(&dir), times));
    }
    let diffs = differences(&trees[0].0, &trees[1].0);
    assert!(diffs.is_empty(), "{diffs:#?}");
    assert_eq!(trees[0].1, trees[1].1, "mtimes");
}

#[test]
fn sigterm_while_archiving_leaves_nothing_behind() {
    let Some((repo, keys)) = or_skip(repo("v3.19", "x86_64")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("x.tar.gz");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sysroot-mk"))
        .args([
            "-q",
            "--arch",
            "x86_64",
            "--no-cache",
            "--output",
            "tar",
            "--repo",
        ])
        .arg(&repo)
        .arg("--keys-dir")
        .arg(&keys)
        .arg(&archive)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The archive grows inside the output's staging directory while the tree is read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let growing = loop {
        let partial = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path().join("archive"))
            .find(|p| p.metadata().is_ok_and(|m| m.len() > 0));
        if partial.is_some() || std::time::Instant::now() > deadline {
            break partial.is_some();
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    if !growing {
        let _ = child.kill();
        let _ = child.wait();
        return eprintln!("skipped: the archive was written too fast to interrupt");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
