//! Hostile packages: every way out of the root, or into the database, is refused with an
//! error naming the package and the entry, and nothing appears outside the root.

use crate::install_common;

use std::path::Path;

use install_common::{build_apk, TestEntry};
use sysroot_mk::install::{InstallError, InstallOptions, Installer};
use sysroot_mk::package::VerifiedPackage;
use sysroot_mk::report::Silent;

/// A temporary directory holding `root/` and `outside/`.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("root")).expect("root");
        std::fs::create_dir(dir.path().join("outside")).expect("outside");
        Sandbox { dir }
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    fn outside(&self) -> std::path::PathBuf {
        self.dir.path().join("outside")
    }

    /// Installs each package list as one batch, in order; returns the first error.
    fn install(&self, batches: &[Vec<TestEntry>]) -> Result<(), InstallError> {
        let mut installer = Installer::new(&self.root(), InstallOptions::default())?;
        for (i, entries) in batches.iter().enumerate() {
            let (pkg, bytes) = build_apk(
                &format!("evil{i}"),
                "1.0-r0",
                &format!("evil{i}"),
                "",
                entries,
            );
            let verified =
                VerifiedPackage::from_bytes(&pkg, bytes).expect("generated package verifies");
            installer.extract_batch(&[(&pkg, &verified)], &Silent)?;
        }
        installer.finish().map(|_| ())
    }

    /// Everything under the sandbox except the root itself (must stay `outside/`, empty).
    fn assert_nothing_outside(&self) {
        let names: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("read sandbox")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["outside", "root"]);
        assert_eq!(
            std::fs::read_dir(self.outside()).expect("outside").count(),
            0,
            "something was written outside the root"
        );
    }
}

fn expect_unsafe(result: Result<(), InstallError>, entry_part: &str) -> String {
    match result {
        Err(e @ InstallError::UnsafeEntry { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("evil"),
                "message names no package: {message}"
            );
            assert!(
                message.contains(entry_part),
                "message names no entry: {message}"
            );
            message
        }
        other => panic!("expected an unsafe entry error, got {other:?}"),
    }
}

#[test]
fn path_traversal_is_refused() {
    let sandbox = Sandbox::new();
    let result = sandbox.install(&[vec![TestEntry::file(b"../outside/x", b"pwned")]]);
    expect_unsafe(result, "../outside/x");
    sandbox.assert_nothing_outside();
}

#[test]
fn traversal_in_the_middle_of_a_path_is_refused() {
    let sandbox = Sandbox::new();
    let result = sandbox.install(&[vec![
        TestEntry::dir("usr", 0o755),
        TestEntry::file(b"usr/../../outside/x", b"pwned"),
    ]]);
    expect_unsafe(result, "usr/../../outside/x");
    sandbox.assert_nothing_outside();
}

#[test]
fn absolute_paths_are_refused() {
    let sandbox = Sandbox::new();
    let target = format!("{}/x", sandbox.outside().display());
    let result = sandbox.install(&[vec![TestEntry::file(target.as_bytes(), b"pwned")]]);
    expect_unsafe(result, "absolute");
    sandbox.assert_nothing_outside();
}

#[test]
fn a_newline_in_a_name_cannot_inject_database_lines() {
    let sandbox = Sandbox::new();
    let result = sandbox.install(&[vec![TestEntry::file(b"motd\nR:etc/shadow", b"x")]]);
    let message = expect_unsafe(result, "control character");
    assert!(
        message.contains("motd\\nR:etc/shadow"),
        "the entry is shown escaped: {message}"
    );
    assert!(!sandbox.root().join("motd").exists());
}

#[test]
fn writing_through_a_symlink_of_the_same_package_is_refused() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside().display().to_string();
    // Without a directory entry: the file's directory is not one of the package's.
    let result = sandbox.install(&[vec![
        TestEntry::symlink("esc", &outside),
        TestEntry::file(b"esc/x", b"pwned"),
    ]]);
    expect_unsafe(result, "esc/x");
    // With a directory entry over the symlink: a path listed twice.
    let sandbox2 = Sandbox::new();
    let result = sandbox2.install(&[vec![
        TestEntry::symlink("esc", "../../outside"),
        TestEntry::dir("esc", 0o755),
        TestEntry::file(b"esc/x", b"pwned"),
    ]]);
    expect_unsafe(result, "esc");
    sandbox.assert_nothing_outside();
    sandbox2.assert_nothing_outside();
}

#[test]
fn a_symlink_left_by_an_earlier_package_resolves_inside_the_root() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside().display().to_string();
    // Like alpine-baselayout's `var/run -> /run`: absolute targets mean the root's paths.
    let result = sandbox.install(&[
        vec![
            TestEntry::symlink("esc", &outside),
            TestEntry::symlink("up", "../../../../../.."),
        ],
        vec![
            TestEntry::dir("esc", 0o755),
            TestEntry::file(b"esc/x", b"contained"),
        ],
    ]);
    // `<root><outside>` does not exist inside the root, so the write fails there.
    assert!(
        matches!(result, Err(InstallError::Io { .. })),
        "got {result:?}"
    );
    sandbox.assert_nothing_outside();

    let sandbox = Sandbox::new();
    let result = sandbox.install(&[
        vec![
            TestEntry::dir("run", 0o755),
            TestEntry::symlink("var-run", "/run"),
        ],
        vec![
            TestEntry::dir("var-run", 0o755),
            TestEntry::file(b"var-run/pid", b"1"),
        ],
    ]);
    result.expect("a symlinked directory inside the root is usable");
    assert_eq!(
        std::fs::read(sandbox.root().join("run/pid")).expect("run/pid"),
        b"1"
    );
    sandbox.assert_nothing_outside();
}

#[test]
fn device_nodes_are_refused() {
    let sandbox = Sandbox::new();
    let mut node = TestEntry::file(b"dev-sda", b"");
    node.kind = b'3';
    expect_unsafe(sandbox.install(&[vec![node]]), "device node");
}

#[test]
fn a_hard_link_to_something_outside_the_package_is_refused() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.root().join("secret"), b"s").expect("write");
    let result = sandbox.install(&[vec![TestEntry::hardlink("copy", "secret")]]);
    expect_unsafe(result, "copy");
    assert!(!Path::new(&sandbox.root().join("copy")).exists());
}
