//! apk's rules for what several packages do to one tree: file conflicts (origin,
//! `replaces`, `replaces_priority`), shared directories (lowest uid, then gid, modes ANDed),
//! owner names resolved through the target's own `etc/passwd` / `etc/group`, hard links.

use crate::install_common;

use std::os::unix::fs::MetadataExt;

use install_common::{build_apk, is_root, TestEntry};
use sysroot_mk::db::InstalledPackage;
use sysroot_mk::index::Package;
use sysroot_mk::install::{InstallError, InstallOptions, Installer};
use sysroot_mk::package::VerifiedPackage;
use sysroot_mk::report::Silent;

/// A package to generate: name, origin, extra `.PKGINFO` lines, entries.
struct Spec<'a>(&'a str, &'a str, &'a str, Vec<TestEntry>);

fn generate(specs: Vec<Spec<'_>>) -> Vec<(Package, VerifiedPackage)> {
    specs
        .into_iter()
        .map(|Spec(name, origin, extra, entries)| {
            let (pkg, bytes) = build_apk(name, "1.0-r0", origin, extra, &entries);
            let verified = VerifiedPackage::from_bytes(&pkg, bytes).expect("verifies");
            (pkg, verified)
        })
        .collect()
}

/// Installs `batches` (each a list of packages extracted together) into a fresh root.
fn install(
    batches: Vec<Vec<Spec<'_>>>,
) -> (
    tempfile::TempDir,
    Result<Vec<InstalledPackage>, InstallError>,
) {
    let root = tempfile::tempdir().expect("tempdir");
    let result = (|| {
        let mut installer = Installer::new(root.path(), InstallOptions::default())?;
        for batch in batches {
            let pkgs = generate(batch);
            let refs: Vec<_> = pkgs.iter().map(|(p, v)| (p, v)).collect();
            installer.extract_batch(&refs, &Silent)?;
        }
        installer.finish()
    })();
    (root, result)
}

/// Extracts the packages of `pkgs` at the positions `which` as one batch; `what` names
/// the batch if that fails.
fn extract(
    installer: &mut Installer,
    pkgs: &[(Package, VerifiedPackage)],
    which: &[usize],
    what: &str,
) {
    let batch: Vec<_> = which.iter().map(|&i| (&pkgs[i].0, &pkgs[i].1)).collect();
    installer.extract_batch(&batch, &Silent).expect(what);
}

/// Installs one package into `root`, which a test has prepared, and finishes.
fn install_one_into(
    root: &std::path::Path,
    pkg: &Package,
    verified: &VerifiedPackage,
) -> Vec<InstalledPackage> {
    let mut installer = Installer::new(root, InstallOptions::default()).expect("open");
    installer
        .extract_batch(&[(pkg, verified)], &Silent)
        .expect("extract");
    installer.finish().expect("finish")
}

/// Installs the two packages `pair` makes twice: extracted together in one batch, and
/// one batch after the other.
fn together_and_apart<'a>(
    pair: impl Fn() -> (Spec<'a>, Spec<'a>),
) -> Vec<(
    tempfile::TempDir,
    Result<Vec<InstalledPackage>, InstallError>,
)> {
    let (a, b) = pair();
    let together = install(vec![vec![a, b]]);
    let (a, b) = pair();
    let apart = install(vec![vec![a], vec![b]]);
    vec![together, apart]
}

/// The installed package called `name`.
fn named<'a>(installed: &'a [InstalledPackage], name: &str) -> &'a InstalledPackage {
    installed
        .iter()
        .find(|p| p.package.name == name)
        .expect(name)
}

/// What the root's `etc/f` holds.
fn etc_f(root: &tempfile::TempDir) -> Vec<u8> {
    std::fs::read(root.path().join("etc/f")).expect("etc/f")
}

fn files_of(installed: &[InstalledPackage], name: &str) -> Vec<String> {
    named(installed, name)
        .dirs
        .iter()
        .flat_map(|d| {
            d.files.iter().map(move |f| {
                if d.path.is_empty() {
                    f.name.clone()
                } else {
                    format!("{}/{}", d.path, f.name)
                }
            })
        })
        .collect()
}

fn etc(file: &str, data: &[u8]) -> Vec<TestEntry> {
    vec![
        TestEntry::dir("etc", 0o755),
        TestEntry::file(format!("etc/{file}").as_bytes(), data),
    ]
}

#[test]
fn a_file_owned_by_another_package_is_a_conflict() {
    for (_root, result) in together_and_apart(|| {
        (
            Spec("a", "a", "", etc("f", b"a")),
            Spec("b", "b", "", etc("f", b"b")),
        )
    }) {
        match result {
            Err(e @ InstallError::Conflict { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("`b-1.0-r0`")
                        && message.contains("`etc/f`")
                        && message.contains("`a-1.0-r0`"),
                    "{message}"
                );
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
}

#[test]
fn the_same_origin_may_overwrite_and_takes_the_file() {
    for (root, result) in together_and_apart(|| {
        (
            Spec("a", "src", "", etc("f", b"a")),
            Spec("b", "src", "", etc("f", b"b")),
        )
    }) {
        let installed = result.expect("same origin installs");
        assert_eq!(etc_f(&root), b"b");
        assert_eq!(files_of(&installed, "a"), Vec::<String>::new());
        assert_eq!(files_of(&installed, "b"), ["etc/f"]);
    }
}

#[test]
fn replaces_lets_the_later_package_win() {
    let (root, result) = install(vec![vec![
        Spec("old", "old", "", etc("f", b"old")),
        Spec("new", "new", "replaces = old\n", etc("f", b"new")),
    ]]);
    let installed = result.expect("replaces installs");
    assert_eq!(etc_f(&root), b"new");
    assert_eq!(files_of(&installed, "new"), ["etc/f"]);
    let new = named(&installed, "new");
    assert_eq!(
        new.package.replaces[0].name, "old",
        "`replaces` recorded from .PKGINFO"
    );
}

#[test]
fn a_higher_replaces_priority_of_the_owner_keeps_its_file() {
    let (root, result) = install(vec![
        vec![Spec(
            "keeper",
            "keeper",
            "replaces = late\nreplaces_priority = 10\n",
            etc("f", b"keeper"),
        )],
        vec![Spec(
            "late",
            "late",
            "replaces = keeper\n",
            etc("f", b"late"),
        )],
    ]);
    let installed = result.expect("installs");
    assert_eq!(etc_f(&root), b"keeper");
    assert_eq!(files_of(&installed, "keeper"), ["etc/f"]);
    assert_eq!(files_of(&installed, "late"), Vec::<String>::new());
}

#[test]
fn shared_directories_take_the_lowest_owner_and_the_and_of_modes() {
    if !is_root() {
        eprintln!("skipped: needs root (chown)");
        return;
    }
    // One batch each: name, mode, uid, gid of its `srv`.
    let (root, result) = install(
        [
            ("a", 0o775, 10, 10),
            ("b", 0o755, 5, 20),
            ("c", 0o1751, 5, 20),
            ("d", 0o700, 5, 30),
        ]
        .into_iter()
        .map(|(name, mode, uid, gid)| {
            let srv = TestEntry::dir("srv", mode).owned("", uid, "", gid);
            vec![Spec(name, name, "", vec![srv])]
        })
        .collect(),
    );
    let installed = result.expect("installs");
    let meta = std::fs::metadata(root.path().join("srv")).expect("srv");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (5, 20, 0o751)
    );
    // Each package still records its own view of the directory.
    let acl = |name: &str| named(&installed, name).dirs[0].acl;
    assert_eq!((acl("a").uid, acl("a").mode), (10, 0o775));
    assert_eq!((acl("d").gid, acl("d").mode), (30, 0o700));
}

#[test]
fn directories_that_existed_before_are_left_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(root.path().join("tmp")).expect("tmp");
    std::fs::set_permissions(
        root.path().join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .expect("chmod");
    let pkgs = generate(vec![Spec("a", "a", "", vec![TestEntry::dir("tmp", 0o755)])]);
    let installed = install_one_into(root.path(), &pkgs[0].0, &pkgs[0].1);
    assert_eq!(
        std::fs::metadata(root.path().join("tmp"))
            .expect("tmp")
            .mode()
            & 0o7777,
        0o1777
    );
    assert_eq!(installed[0].dirs[0].acl.mode, 0o755);
}

#[test]
fn owner_names_resolve_through_the_target_passwd_with_apk_caching() {
    if !is_root() {
        eprintln!("skipped: needs root (chown)");
        return;
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nchrony:x:123:0::/:/sbin/nologin\n".to_vec();
    let group = b"root:x:0:\nchrony:x:456:\n".to_vec();
    let owned = |name: &str| {
        vec![
            TestEntry::dir("var", 0o755),
            TestEntry::file(format!("var/{name}").as_bytes(), b"x")
                .owned("chrony", 77, "chrony", 88),
        ]
    };
    let root = tempfile::tempdir().expect("tempdir");
    let pkgs = generate(vec![
        Spec(
            "base",
            "base",
            "",
            vec![
                TestEntry::dir("etc", 0o755),
                TestEntry::file(b"etc/passwd", &passwd),
                TestEntry::file(b"etc/group", &group),
            ],
        ),
        Spec("one", "one", "", owned("one")),
        Spec("two", "two", "", owned("two")),
        Spec("three", "three", "", owned("three")),
    ]);
    let mut installer = Installer::new(root.path(), InstallOptions::default()).expect("open");
    // `base` and `one` in one batch: `one` sees the passwd `base` ships.
    extract(&mut installer, &pkgs, &[0, 1], "batch 1");
    // A "script" changes the ids; without a refresh apk keeps what it looked up.
    std::fs::write(
        root.path().join("etc/passwd"),
        b"chrony:x:321:0::/:/sbin/nologin\n",
    )
    .expect("passwd");
    std::fs::write(root.path().join("etc/group"), b"chrony:x:654:\n").expect("group");
    extract(&mut installer, &pkgs, &[2], "batch 2");
    installer.refresh_ids();
    extract(&mut installer, &pkgs, &[3], "batch 3");
    let installed = installer.finish().expect("finish");

    let owner = |name: &str| {
        let m = std::fs::metadata(root.path().join("var").join(name)).expect("file");
        (m.uid(), m.gid())
    };
    assert_eq!(owner("one"), (123, 456));
    assert_eq!(owner("two"), (123, 456));
    assert_eq!(owner("three"), (321, 654));
    let acl = installed[3].dirs[0].files[0].acl;
    assert_eq!(
        (acl.uid, acl.gid),
        (321, 654),
        "the record holds the mapped ids"
    );
}

#[test]
fn unknown_names_fall_back_to_the_numeric_ids() {
    if !is_root() {
        eprintln!("skipped: needs root (chown)");
        return;
    }
    let (root, result) = install(vec![vec![Spec(
        "a",
        "a",
        "",
        vec![TestEntry::file(b"f", b"x")
            .owned("nobody-here", 77, "nogroup-here", 88)
            .mode(0o4750)],
    )]]);
    let installed = result.expect("installs");
    let m = std::fs::metadata(root.path().join("f")).expect("f");
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (77, 88, 0o4750),
        "setuid survives chown"
    );
    assert_eq!(
        installed[0].dirs[0].path, "",
        "top-level files get the root's record"
    );
}

#[test]
fn hard_links_share_the_inode_and_take_the_target_checksum() {
    let (root, result) = install(vec![vec![Spec(
        "a",
        "a",
        "",
        vec![
            TestEntry::dir("bin", 0o755),
            TestEntry::file(b"bin/ntpd", b"binary"),
            TestEntry::hardlink("bin/ntpctl", "bin/ntpd"),
            TestEntry::symlink("bin/sh", "/bin/ntpd"),
        ],
    )]]);
    let installed = result.expect("installs");
    let (a, b) = (
        std::fs::metadata(root.path().join("bin/ntpd")).expect("ntpd"),
        std::fs::metadata(root.path().join("bin/ntpctl")).expect("ntpctl"),
    );
    assert_eq!(a.ino(), b.ino());
    let files = &installed[0].dirs[0].files;
    assert_eq!(files[1].sha1, files[0].sha1);
    assert!(files[0].sha1.is_some());
    use sha1::Digest;
    let link_sum: [u8; 20] = sha1::Sha1::digest(b"/bin/ntpd").into();
    assert_eq!(
        files[2].sha1,
        Some(link_sum),
        "symlinks record the hash of their target"
    );
    assert_eq!(
        std::fs::read_link(root.path().join("bin/sh")).expect("sh"),
        std::path::Path::new("/bin/ntpd")
    );
}

#[test]
fn keep_files_are_neither_written_nor_recorded() {
    let (root, result) = install(vec![vec![Spec(
        "a",
        "a",
        "",
        vec![
            TestEntry::dir("var", 0o755),
            TestEntry::file(b"var/.keep_a-0", b""),
        ],
    )]]);
    let installed = result.expect("installs");
    assert!(!root.path().join("var/.keep_a-0").exists());
    assert!(installed[0].dirs[0].files.is_empty());
}

#[test]
fn files_behind_a_symlink_from_the_same_batch_land_where_it_points() {
    // alpine-baselayout ships `var/run -> /run`; a later package of the same batch ships
    // `var/run/x`: the symlink must exist (inside the root) before `x` is written.
    let (root, result) = install(vec![vec![
        Spec(
            "layout",
            "layout",
            "",
            vec![
                TestEntry::dir("run", 0o755),
                TestEntry::dir("var", 0o755),
                TestEntry::symlink("var/run", "/run"),
            ],
        ),
        Spec(
            "daemon",
            "daemon",
            "",
            vec![
                TestEntry::dir("var", 0o755),
                TestEntry::dir("var/run", 0o755),
                TestEntry::file(b"var/run/daemon.pid", b"42"),
            ],
        ),
    ]]);
    let installed = result.expect("installs");
    assert_eq!(
        std::fs::read(root.path().join("run/daemon.pid")).expect("run/daemon.pid"),
        b"42"
    );
    assert!(std::fs::symlink_metadata(root.path().join("var/run"))
        .expect("var/run")
        .file_type()
        .is_symlink());
    assert_eq!(files_of(&installed, "daemon"), ["var/run/daemon.pid"]);
}

#[test]
fn a_file_in_etc_left_by_a_script_is_kept_and_the_new_one_goes_to_apk_new() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    std::fs::create_dir_all(root.path().join("usr")).expect("usr");
    for dir in ["etc", "usr"] {
        std::fs::write(root.path().join(dir).join("conf"), b"made by a script\n").expect("write");
    }
    std::fs::write(root.path().join("etc/same"), b"same\n").expect("write");
    let pkgs = generate(vec![Spec(
        "a",
        "a",
        "",
        vec![
            TestEntry::dir("etc", 0o755),
            TestEntry::file(b"etc/conf", b"from the package\n"),
            TestEntry::file(b"etc/same", b"same\n"),
            TestEntry::dir("usr", 0o755),
            TestEntry::file(b"usr/conf", b"from the package\n"),
        ],
    )]);
    let installed = install_one_into(root.path(), &pkgs[0].0, &pkgs[0].1);
    let read = |p: &str| std::fs::read(root.path().join(p)).ok();
    assert_eq!(
        read("etc/conf").as_deref(),
        Some(&b"made by a script\n"[..])
    );
    assert_eq!(
        read("etc/conf.apk-new").as_deref(),
        Some(&b"from the package\n"[..])
    );
    assert_eq!(
        read("etc/same.apk-new"),
        None,
        "identical files are not duplicated"
    );
    assert_eq!(
        read("usr/conf").as_deref(),
        Some(&b"from the package\n"[..]),
        "only etc is protected"
    );
    assert_eq!(
        files_of(&installed, "a"),
        ["etc/conf", "etc/same", "usr/conf"]
    );
}

#[test]
fn an_edited_file_in_etc_survives_a_replacing_package() {
    let root = tempfile::tempdir().expect("tempdir");
    let pkgs = generate(vec![
        Spec("a", "src", "", etc("conf", b"a\n")),
        Spec("b", "src", "", etc("conf", b"b\n")),
        Spec("c", "src", "", etc("other", b"a\n")),
        Spec("d", "src", "", etc("other", b"d\n")),
    ]);
    let mut installer = Installer::new(root.path(), InstallOptions::default()).expect("open");
    extract(&mut installer, &pkgs, &[0, 2], "batch 1");
    // A script edits etc/conf; etc/other stays the owner's file.
    std::fs::write(root.path().join("etc/conf"), b"edited\n").expect("edit");
    extract(&mut installer, &pkgs, &[1, 3], "batch 2");
    installer.finish().expect("finish");
    let read = |p: &str| std::fs::read(root.path().join(p)).ok();
    assert_eq!(read("etc/conf").as_deref(), Some(&b"edited\n"[..]));
    assert_eq!(read("etc/conf.apk-new").as_deref(), Some(&b"b\n"[..]));
    assert_eq!(
        read("etc/other").as_deref(),
        Some(&b"d\n"[..]),
        "unmodified files are replaced"
    );
    assert_eq!(read("etc/other.apk-new"), None);
}

#[test]
fn a_package_with_zero_installed_size_is_not_opened() {
    let root = tempfile::tempdir().expect("tempdir");
    let (mut pkg, bytes) = build_apk(
        "meta",
        "1.0-r0",
        "meta",
        "triggers = /usr/bin\n",
        &[
            TestEntry::dir("usr", 0o755),
            TestEntry::file(b"usr/ghost", b"x"),
        ],
    );
    let verified = VerifiedPackage::from_bytes(&pkg, bytes).expect("verifies");
    pkg.installed_size = 0;
    let installed = install_one_into(root.path(), &pkg, &verified);
    assert!(!root.path().join("usr").exists());
    assert!(
        installed[0].dirs.is_empty()
            && installed[0].triggers.is_empty()
            && installed[0].scripts.is_empty()
    );
}

#[test]
fn a_file_without_checksum_marks_the_package_broken_as_apk_does() {
    let mut bare = TestEntry::file(b"f", b"x");
    bare.checksum = false;
    let (_root, result) = install(vec![
        vec![Spec("old", "old", "", vec![bare])],
        vec![Spec("new", "new", "", vec![TestEntry::file(b"g", b"x")])],
    ]);
    let installed = result.expect("installs");
    assert!(installed[0].status.broken_files);
    assert_eq!(installed[0].dirs[0].files[0].sha1, None);
    assert!(!installed[1].status.broken_files);
}
