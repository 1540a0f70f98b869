//! Extracting the real alpine-base set (v3.19, x86_64) without scripts and comparing the
//! tree and the file records with what real apk 2.14 leaves (the oracle).

use crate::install_common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use install_common::{is_root, read_index, shared_alpine};

use sysroot_mk::db::{Acl, InstalledPackage};
use sysroot_mk::install::{InstallOptions, Installer};
use sysroot_mk::package::{encode_q1, VerifiedPackage};
use sysroot_mk::report::Silent;

/// apk's install order for `alpine-base` (from `apk add` output).
const ALPINE_BASE: &str = include_str!("../../fixtures/install/alpine-base-v3.19-x86_64.plan");
/// apk's install order for the 98 co-installable packages of the test repository.
const CO_INSTALLABLE: &str =
    include_str!("../../fixtures/install/co-installable-v3.19-x86_64.plan");
/// apk's install order for `alpine-base chrony dhcpcd`.
const WITH_USERS: &str =
    include_str!("../../fixtures/install/alpine-base-chrony-dhcpcd-v3.19-x86_64.plan");

/// Paths apk creates itself (`--initdb` skeleton, database, device nodes): the db and
/// layout modules write those, not the installer.
const NOT_OURS: [&str; 9] = [
    "lib/apk/db",
    "lib/apk/db/*",
    "etc/apk/arch",
    "etc/apk/world",
    "var/cache/apk",
    "var/cache/misc",
    "dev/*",
    "lib/apk",
    "var/cache",
];

fn oracle_tools() -> Option<PathBuf> {
    let Some(dir) = install_common::shared().map(|s| s.join("tools/oracle")) else {
        eprintln!("skipped: ../shared/tools/oracle is absent");
        return None;
    };
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 is missing (manifest.py)");
        return None;
    }
    Some(dir.to_path_buf())
}

/// Verifies the packages of `plan` and extracts them as one batch into `root`.
fn install_plan(
    shared: &Path,
    plan: &str,
    root: &Path,
    opts: InstallOptions,
) -> Vec<InstalledPackage> {
    install_with(shared, plan, root, opts, false)
}

/// Verifies the packages of `plan` and extracts them into `root`; with `scripts`, in
/// batches cut around each package's pre-/post-install script, run as apk runs them
/// (chroot, `lib/apk/exec`, `/proc` mounted), then the triggers.
fn install_with(
    shared: &Path,
    plan: &str,
    root: &Path,
    opts: InstallOptions,
    scripts: bool,
) -> Vec<InstalledPackage> {
    let repo = shared.join("v3.19/main/x86_64");
    let index: HashMap<String, _> = read_index(&repo.join("APKINDEX.tar.gz"))
        .into_iter()
        .map(|p| (p.name_version(), p))
        .collect();
    let plan: Vec<_> = plan.lines().map(|nv| &index[nv]).collect();
    let verified: Vec<_> = plan
        .iter()
        .map(|p| VerifiedPackage::open(p, &repo.join(p.file_name())).expect("verify"))
        .collect();
    let mut installer = Installer::new(root, opts).expect("open root");
    let mut batch = Vec::new();
    let has = |v: &VerifiedPackage, action: &str| v.scripts().iter().any(|s| s.action == action);
    // Extracts what the batch holds so far, then runs the script, as apk orders them.
    let mut cut_and_run = |batch: &mut Vec<_>, pkg, v, action| {
        installer
            .extract_batch(&std::mem::take(batch), &Silent)
            .expect("extract");
        run_script(root, pkg, v, action, &[]);
        installer.refresh_ids();
    };
    for (pkg, v) in plan.iter().copied().zip(&verified) {
        if scripts && has(v, "pre-install") {
            cut_and_run(&mut batch, pkg, v, "pre-install");
        }
        batch.push((pkg, v));
        if scripts && has(v, "post-install") {
            cut_and_run(&mut batch, pkg, v, "post-install");
        }
    }
    installer.extract_batch(&batch, &Silent).expect("extract");
    if scripts {
        for (pkg, v) in plan.iter().copied().zip(&verified) {
            if has(v, "trigger") {
                // apk passes the watched directories that changed; all of them did here.
                let dirs: Vec<&str> = v
                    .info()
                    .triggers
                    .iter()
                    .map(String::as_str)
                    .filter(|g| !g.contains('*'))
                    .collect();
                run_script(root, pkg, v, "trigger", &dirs);
            }
        }
    }
    installer.finish().expect("finish")
}

/// Runs one script of `v` inside `root` the way apk 2.14 does.
fn run_script(
    root: &Path,
    pkg: &sysroot_mk::index::Package,
    v: &VerifiedPackage,
    action: &str,
    extra: &[&str],
) {
    use std::os::unix::fs::PermissionsExt;
    let body = &v
        .scripts()
        .iter()
        .find(|s| s.action == action)
        .expect("script")
        .body;
    let exec = root.join("lib/apk/exec");
    std::fs::create_dir_all(&exec).expect("lib/apk/exec");
    let name = format!("{}.{action}", pkg.name_version());
    std::fs::write(exec.join(&name), body).expect("write script");
    std::fs::set_permissions(exec.join(&name), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let status = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t proc proc "$1/proc" && root="$1" && shift && exec chroot "$root" "$@""#)
        .arg("sh")
        .arg(root)
        .arg(format!("/lib/apk/exec/{name}"))
        .arg(action)
        .arg(pkg.version.as_str())
        .args(extra)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .status()
        .expect("run unshare");
    assert!(status.success(), "{name} failed: {status}");
    std::fs::remove_file(exec.join(&name)).expect("remove script");
}

/// apk's `TAG:uid:gid:mode` line for `acl`, which it leaves out for root's `default_mode`.
fn acl_line(tag: char, acl: &Acl, default_mode: u32) -> Option<String> {
    ((acl.uid, acl.gid, acl.mode) != (0, 0, default_mode))
        .then(|| format!("{tag}:{}:{}:{:o}", acl.uid, acl.gid, acl.mode))
}

/// The per-package file section of `installed` (F/M/R/a/Z lines), as apk writes it.
fn file_lines(pkg: &InstalledPackage) -> Vec<String> {
    let mut out = Vec::new();
    for dir in &pkg.dirs {
        out.push(format!("F:{}", dir.path));
        out.extend(acl_line('M', &dir.acl, 0o755));
        for file in &dir.files {
            out.push(format!("R:{}", file.name));
            out.extend(acl_line('a', &file.acl, 0o644));
            if let Some(sha1) = &file.sha1 {
                out.push(format!("Z:{}", encode_q1(sha1)));
            }
        }
    }
    out
}

/// The same lines out of apk's `installed`, per package name.
fn oracle_file_lines(installed: &str) -> HashMap<String, Vec<String>> {
    let mut result = HashMap::new();
    for stanza in installed.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let name = stanza
            .lines()
            .find_map(|l| l.strip_prefix("P:"))
            .unwrap_or_default();
        let lines = stanza
            .lines()
            .filter(|l| matches!(l.get(..2), Some("F:" | "M:" | "R:" | "a:" | "Z:")))
            .map(str::to_owned)
            .collect();
        result.insert(name.to_owned(), lines);
    }
    result
}

/// The directories `apk add --initdb` makes before any package (DESIGN 3). They exist
/// when packages arrive, so apk (and the installer) leave their permissions alone.
fn skeleton(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (dir, mode) in [
        ("etc", 0o755),
        ("etc/apk", 0o755),
        ("lib", 0o755),
        ("lib/apk", 0o755),
        ("lib/apk/db", 0o755),
        ("var", 0o755),
        ("var/cache", 0o755),
        ("var/cache/apk", 0o755),
        ("var/cache/misc", 0o755),
        ("tmp", 0o1777),
        ("proc", 0o555),
        ("dev", 0o755),
    ] {
        let path = root.join(dir);
        std::fs::create_dir(&path).expect("skeleton dir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    // Scripts write to /dev/null; without the node they would create a file there.
    for (name, minor) in [("null", 3), ("zero", 5)] {
        let dev = rustix::fs::makedev(1, minor);
        let mode = rustix::fs::Mode::from_raw_mode(0o666);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("dev").join(name),
            rustix::fs::FileType::CharacterDevice,
            mode,
            dev,
        )
        .expect("mknod");
    }
}

fn manifest(tools: &Path, root: &Path, out: &Path) {
    let tsv = Command::new("python3")
        .arg(tools.join("manifest.py"))
        .arg("--mtime")
        .arg(root)
        .output()
        .expect("manifest.py");
    assert!(
        tsv.status.success(),
        "manifest.py {}: {}",
        root.display(),
        String::from_utf8_lossy(&tsv.stderr)
    );
    std::fs::write(out, tsv.stdout).expect("write manifest");
}

#[test]
fn alpine_base_without_scripts_matches_apk() {
    assert_matches_apk(ALPINE_BASE, &["alpine-base"], false);
}

#[test]
fn chrony_and_dhcpcd_with_scripts_match_apk() {
    // Their files belong to users that only their pre-install scripts create.
    assert_matches_apk(WITH_USERS, &["alpine-base", "chrony", "dhcpcd"], true);
}

/// The package names of [`CO_INSTALLABLE`] (its lines are `name-version`).
fn co_installable_names() -> Vec<&'static str> {
    CO_INSTALLABLE
        .lines()
        .map(|nv| nv.rsplitn(3, '-').nth(2).unwrap_or(nv))
        .collect()
}

#[test]
fn all_co_installable_packages_without_scripts_match_apk() {
    let names = co_installable_names();
    assert_matches_apk(CO_INSTALLABLE, &names, false);
}

#[test]
fn all_co_installable_packages_with_scripts_match_apk() {
    let names = co_installable_names();
    assert_matches_apk(CO_INSTALLABLE, &names, true);
}

/// Builds `request` with the apk oracle and `plan` with the installer (both with or both
/// without scripts), then compares the file records and the trees.
fn assert_matches_apk(plan: &str, request: &[&str], scripts: bool) {
    let Some(shared) = shared_alpine() else {
        return;
    };
    if !is_root() {
        eprintln!("skipped: needs root (ownership, chroot for the oracle)");
        return;
    }
    let Some(tools) = oracle_tools() else { return };
    let started = std::time::SystemTime::now();
    let work = tempfile::tempdir().expect("tempdir");
    let reference = work.path().join("apk");
    let ours = work.path().join("ours");
    std::fs::create_dir(&ours).expect("mkdir");

    let status = Command::new(tools.join("oracle-bootstrap.sh"))
        .args(if scripts {
            &["-q"][..]
        } else {
            &["--no-scripts", "-q"][..]
        })
        .arg(&reference)
        .args(request)
        .status()
        .expect("run oracle-bootstrap.sh");
    if !status.success() {
        eprintln!("skipped: the apk oracle could not run ({status})");
        return;
    }

    skeleton(&ours);
    let installed = install_with(&shared, plan, &ours, InstallOptions::default(), scripts);

    // The records: every package's F/M/R/a/Z lines equal apk's, in apk's order.
    let apk_db =
        std::fs::read_to_string(reference.join("lib/apk/db/installed")).expect("oracle db");
    let expected = oracle_file_lines(&apk_db);
    assert_eq!(installed.len(), plan.lines().count());
    for pkg in &installed {
        let want = &expected[&pkg.package.name];
        assert_eq!(
            &file_lines(pkg),
            want,
            "file records of {}",
            pkg.package.name
        );
    }

    // The tree: no difference outside what apk's database and skeleton code creates.
    let (a, b) = (work.path().join("apk.tsv"), work.path().join("ours.tsv"));
    manifest(&tools, &reference, &a);
    manifest(&tools, &ours, &b);
    let mut diff = Command::new("python3");
    diff.arg(tools.join("manifest-diff.py"));
    for glob in NOT_OURS {
        diff.args(["--exclude", glob]);
    }
    // Directories and links get the time of the install, in both trees.
    diff.args(["--ignore", "mtime"]);
    let out = diff.arg(&a).arg(&b).output().expect("manifest-diff.py");
    assert!(
        out.status.success(),
        "tree differs from apk's:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Regular files (hard links included) carry the header's mtime, as with apk.
    let file_mtimes = |tsv: &Path| -> HashMap<String, String> {
        let text = std::fs::read_to_string(tsv).expect("manifest");
        text.lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|f| {
                f.len() > 10
                    && f[1] == "f"
                    && !f[0].starts_with("lib/apk/db/")
                    && f[0] != "etc/apk/arch"
                    && f[0] != "etc/apk/world"
            })
            .map(|f| (f[0].to_owned(), f[10].to_owned()))
            .collect()
    };
    let (want, got) = (file_mtimes(&a), file_mtimes(&b));
    assert!(want.len() > 200, "only {} files in apk's tree", want.len());
    // Files that scripts rewrote (etc/passwd...) carry the time of the run instead.
    let run_started = started
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let differing: Vec<_> = want
        .iter()
        .filter(|(_, t)| t.parse::<u64>().is_ok_and(|t| t < run_started))
        .filter(|(path, t)| got.get(*path) != Some(*t))
        .collect();
    assert!(
        differing.is_empty(),
        "mtimes of regular files differ from apk's: {differing:?}"
    );
}

#[test]
fn regular_files_keep_the_package_mtime_and_setuid_survives_chown() {
    let Some(shared) = shared_alpine() else {
        return;
    };
    if !is_root() {
        eprintln!("skipped: needs root (chown)");
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let installed = install_plan(
        &shared,
        ALPINE_BASE,
        work.path(),
        InstallOptions {
            jobs: 3,
            ..Default::default()
        },
    );
    use std::os::unix::fs::MetadataExt;
    let bbsuid = std::fs::symlink_metadata(work.path().join("bin/bbsuid")).expect("bin/bbsuid");
    assert_eq!(bbsuid.mode() & 0o7777, 0o4111);
    let busybox = installed
        .iter()
        .find(|p| p.package.name == "busybox")
        .expect("busybox");
    let motd = std::fs::symlink_metadata(work.path().join("bin/busybox")).expect("bin/busybox");
    assert_eq!(motd.mtime() as u64, busybox.package.build_time);
    // `var/run -> /run` is a symlink inside the root, not followed out of it.
    assert_eq!(
        std::fs::read_link(work.path().join("var/run")).expect("var/run"),
        Path::new("/run")
    );
    // No temporary names left behind.
    let leftovers = walk(work.path())
        .into_iter()
        .filter(|p| p.contains("/.apk."))
        .count();
    assert_eq!(leftovers, 0);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        out.push(path.display().to_string());
        if entry.file_type().expect("type").is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

/// Not a check: prints how long verifying and extracting take (`cargo test --release
/// --test install_alpine measure -- --ignored --nocapture`), for comparing with apk.
#[test]
#[ignore]
fn measure_extraction() {
    let Some(shared) = shared_alpine() else {
        return;
    };
    let target = std::env::var_os("MEASURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    for (label, plan) in [
        ("alpine-base", ALPINE_BASE),
        ("co-installable", CO_INSTALLABLE),
    ] {
        for jobs in [1, 2, 4, 8] {
            let work = tempfile::tempdir_in(&target).expect("tempdir");
            let started = std::time::Instant::now();
            install_plan(
                &shared,
                plan,
                work.path(),
                InstallOptions {
                    jobs,
                    ..Default::default()
                },
            );
            eprintln!("{label}: {jobs} writer threads: {:?}", started.elapsed());
        }
    }
}

/// Not a check: extracts alpine-base (all 98 with `$INSTALL_ALL`) into `$INSTALL_TARGET`
/// (created), as a candidate for
/// `bench-apk.sh --candidate 'env INSTALL_TARGET={target} <test binary> --ignored extract_into'`.
#[test]
#[ignore]
fn extract_into_env_target() {
    let Some(shared) = shared_alpine() else {
        return;
    };
    let Some(target) = std::env::var_os("INSTALL_TARGET").map(PathBuf::from) else {
        eprintln!("skipped: INSTALL_TARGET is not set");
        return;
    };
    std::fs::create_dir_all(&target).expect("create target");
    let started = std::time::Instant::now();
    let mut opts = InstallOptions::default();
    if let Some(jobs) = std::env::var("INSTALL_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
    {
        opts.jobs = jobs;
    }
    let plan = if std::env::var_os("INSTALL_ALL").is_some() {
        CO_INSTALLABLE
    } else {
        ALPINE_BASE
    };
    install_plan(&shared, plan, &target, opts);
    eprintln!(
        "extracted {} packages in {:?}",
        plan.lines().count(),
        started.elapsed()
    );
}
