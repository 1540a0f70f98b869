//! Helpers of the foreign-arch script tests: what they need to run, the host handler the
//! apk oracle needs, small signed repositories cut from a minirootfs, and the comparison
//! of two trees and their apk databases.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::enter_support::{bin, is_root, on_path, private_binfmt, run, stderr, stdout};
use crate::install_common::{gzip, tar_of, TestEntry};
use crate::support::{private_key, TEST_KEY};
use rsa::Pkcs1v15Sign;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use sysroot_mk::arch::Arch;
use sysroot_mk::db;

/// Where the host's binfmt_misc table is mounted, when it is.
const HOST_BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// `../shared` next to the checkout.
fn shared() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"));
    dir.join("alpine").is_dir().then_some(dir)
}

/// The shared folder when everything a comparison with apk under qemu for `arch` needs
/// is here, or why not.
pub fn prerequisites(arch: &str) -> Result<PathBuf, String> {
    if !is_root() {
        return Err("needs root (the apk oracle chroots, owners are kept)".into());
    }
    let shared = shared().ok_or("../shared is absent")?;
    if !shared.join("tools/oracle/oracle-bootstrap.sh").is_file() {
        return Err("the apk oracle (../shared/tools/oracle) is absent".into());
    }
    if !on_path("python3") {
        return Err("python3 is not installed".into());
    }
    let qemu = format!("qemu-{}-static", Arch::from_name(arch).unwrap().info().qemu);
    if !on_path(&qemu) {
        return Err(format!("{qemu} is not installed"));
    }
    if !private_binfmt() {
        return Err("the kernel has no private binfmt_misc instances (Linux >= 6.7)".into());
    }
    Ok(shared)
}

/// `Ok` when the host has no handler of its own for `arch`: the oracle's handler must be
/// the test's own, as replacing and then removing one the host relies on would break
/// the host. Ask under the host lock, where no other test's temporary handler shows.
pub fn no_host_handler(arch: &str) -> Result<(), String> {
    let status = stdout(&run(&["binfmt", "status"]));
    let line = status.lines().find(|l| l.starts_with(&format!("{arch}: ")));
    if !line.is_some_and(|l| l.contains("no handler")) {
        return Err(format!(
            "the host has its own {arch} handler; not touching it"
        ));
    }
    Ok(())
}

/// What sysroot-mk must leave as it found it: the host's binfmt_misc entries and this
/// process's mounts.
#[derive(Debug, PartialEq, Eq)]
pub struct HostState {
    binfmt: String,
    mountinfo: String,
}

/// The host's state now.
pub fn host_state() -> HostState {
    let binfmt = if Path::new(HOST_BINFMT).join("register").exists() {
        let mut names: Vec<String> = std::fs::read_dir(HOST_BINFMT)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.join("\n")
    } else {
        "not mounted".into()
    };
    HostState {
        binfmt,
        mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
    }
}

/// A host handler for qemu (flag `F`, never `C`) while the apk oracle runs: apk chroots
/// without namespaces, so only the host's table can send its scripts to qemu. Dropping
/// it removes the entry, and the binfmt_misc mount when it was made for it, even when
/// the oracle failed.
pub struct OracleHandler {
    arch: String,
    mounted_here: bool,
}

impl OracleHandler {
    /// Registers qemu for `arch` on the host.
    pub fn register(arch: &str) -> OracleHandler {
        let mounted_here = !Path::new(HOST_BINFMT).join("register").exists();
        if mounted_here {
            nix::mount::mount(
                Some("binfmt_misc"),
                HOST_BINFMT,
                Some("binfmt_misc"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .expect("mount the host's binfmt_misc");
        }
        let handler = OracleHandler {
            arch: arch.into(),
            mounted_here,
        };
        let out = run(&["binfmt", "register", arch, "--flags", "F"]);
        assert!(out.status.success(), "binfmt register: {}", stderr(&out));
        handler
    }
}

impl Drop for OracleHandler {
    fn drop(&mut self) {
        let out = run(&["binfmt", "unregister", &self.arch]);
        if !out.status.success() {
            eprintln!("binfmt unregister {}: {}", self.arch, stderr(&out));
        }
        if self.mounted_here {
            if let Err(e) = nix::mount::umount(HOST_BINFMT) {
                eprintln!("umount {HOST_BINFMT}: {e}");
            }
        }
    }
}

/// Runs `cmd` to completion, failing the test with its stderr when it fails.
fn timed(what: &str, cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out: Output = cmd.stdin(Stdio::null()).output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    took
}

/// Builds `out` with sysroot-mk; how long it took.
pub fn build(arch: &str, repo: &Path, keys: &Path, out: &Path, packages: &[&str]) -> Duration {
    let mut cmd = bin();
    cmd.args(["--arch", arch, "--no-cache", "-q", "--repo"])
        .arg(repo)
        .arg("--keys-dir")
        .arg(keys)
        .arg(out)
        .args(packages);
    timed("sysroot-mk", &mut cmd)
}

/// Builds `reference` with real apk (`oracle-bootstrap.sh`, `options` before the target);
/// how long it took.
pub fn oracle<S: AsRef<OsStr>>(
    shared: &Path,
    arch: &str,
    options: &[S],
    reference: &Path,
    packages: &[&str],
) -> Duration {
    let mut cmd = Command::new(shared.join("tools/oracle/oracle-bootstrap.sh"));
    cmd.args(["-q", "--arch", arch])
        .args(options)
        .arg(reference)
        .args(packages);
    timed("oracle-bootstrap.sh", &mut cmd)
}

/// `sysroot-mk enter DIR -- COMMAND`'s stdout.
pub fn enter(dir: &Path, command: &[&str]) -> String {
    let out = bin()
        .arg("enter")
        .arg(dir)
        .arg("--")
        .args(command)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "enter {command:?}: {}", stderr(&out));
    stdout(&out)
}

/// Writes the manifest of `tree` to `tsv`.
fn manifest(shared: &Path, tree: &Path, tsv: &Path) {
    let out = Command::new("python3")
        .arg(shared.join("tools/oracle/manifest.py"))
        .arg(tree)
        .output()
        .unwrap();
    assert!(out.status.success(), "manifest.py: {}", stderr(&out));
    std::fs::write(tsv, out.stdout).unwrap();
}

/// Fails the test with manifest-diff's report unless `candidate` holds what `reference`
/// holds, but for the paths matching `exclude` (`scratch` gets the manifests). The
/// repositories file names a different path, and the keys are where each tool was told
/// to find them.
pub fn assert_same_tree(
    shared: &Path,
    reference: &Path,
    candidate: &Path,
    scratch: &Path,
    exclude: &[&str],
) {
    let (a, b) = (scratch.join("reference.tsv"), scratch.join("candidate.tsv"));
    manifest(shared, reference, &a);
    manifest(shared, candidate, &b);
    let out = Command::new("python3")
        .arg(shared.join("tools/oracle/manifest-diff.py"))
        .args([
            "--exclude",
            "etc/apk/repositories",
            "--exclude",
            "etc/apk/keys*",
        ])
        .args(exclude.iter().flat_map(|glob| ["--exclude", glob]))
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the tree differs from apk's:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Fails the test unless apk's five database files are byte-identical in both trees.
pub fn assert_same_database(reference: &Path, candidate: &Path) {
    for file in [
        db::INSTALLED,
        db::SCRIPTS_TAR,
        db::TRIGGERS,
        db::WORLD,
        db::ARCH,
    ] {
        let (a, b) = (reference.join(file), candidate.join(file));
        let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        if a != b {
            panic!(
                "`{file}` differs from apk's:\n--- apk\n{}\n--- sysroot-mk\n{}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            );
        }
    }
}

/// A file or symlink of the minirootfs.
struct Member {
    data: Vec<u8>,
    link: Option<String>,
}

/// Reads the members the test packages need out of the minirootfs tarball, by path
/// (without `./`).
fn read_minirootfs(tarball: &Path) -> BTreeMap<String, Member> {
    let wanted = |p: &str| {
        p.starts_with("lib/ld-musl-")
            || p.starts_with("lib/libc.musl-")
            || [
                "bin/busybox",
                "etc/passwd",
                "etc/group",
                "etc/shadow",
                CA_BUNDLE,
            ]
            .contains(&p)
    };
    let file = std::fs::File::open(tarball).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut members = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_string();
        if !wanted(&path) {
            continue;
        }
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        members.insert(path, Member { data, link });
    }
    members
}

/// One package of a test repository.
struct TestPackage {
    name: &'static str,
    depends: &'static [&'static str],
    triggers: &'static str,
    /// `(".pre-install", body)`, ...
    scripts: Vec<(&'static str, &'static str)>,
    entries: Vec<TestEntry>,
}

const VERSION: &str = "1.0-r0";
/// Shipped by `baselayout-data`: without a package that installs it, sysroot-mk copies
/// the host's bundle into the tree (apk does not), which is no concern of these tests.
const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";
const PACKAGER: &str = "Test <t@example.invalid>";
const BUILD_TIME: u64 = 1_700_000_000;

/// The busybox trigger writes its arguments where the comparison sees them.
pub const TRIGGER_LOG: &str = "etc/busybox-trigger.args";
/// The busybox post-install writes `uname -m` here: proof that it ran under emulation.
pub const MACHINE_FILE: &str = "etc/script-machine";
/// A file of `base-users` owned by the user and group its pre-install adds.
pub const TESTER_FILE: &str = "var/lib/tester/hello";
/// The ids the pre-install gives `tester` and `shadow`; the tar headers say 1234.
pub const TESTER_IDS: (u32, u32) = (100, 42);

const POST_INSTALL: &str =
    "#!/bin/busybox sh\n/bin/busybox --install -s\n/bin/busybox uname -m > /etc/script-machine\n";
const TRIGGER: &str = "#!/bin/busybox sh\necho \"$@\" >> /etc/busybox-trigger.args\n";
// `/bin/sh` exists only if busybox's post-install ran first.
const PRE_INSTALL: &str =
    "#!/bin/sh\naddgroup -S -g 42 shadow\nadduser -S -D -H -u 100 -G shadow tester\n";

/// A file entry copied from the minirootfs.
fn copied(members: &BTreeMap<String, Member>, path: &str, mode: u32) -> TestEntry {
    TestEntry::file(path.as_bytes(), &members[path].data).mode(mode)
}

/// `baselayout-data`, `musl`, `busybox` (post-install and trigger) and `base-users`
/// (a pre-install that adds a user and a group, and files owned by them).
fn test_packages(members: &BTreeMap<String, Member>) -> Vec<TestPackage> {
    let find = |prefix: &str| {
        members
            .keys()
            .find(|p| p.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in the minirootfs"))
            .clone()
    };
    let (loader, libc) = (find("lib/ld-musl-"), find("lib/libc.musl-"));
    let libc_target = members[&libc].link.clone().expect("libc is a symlink");
    // Without its `shadow` line, so that the pre-install's addgroup creates it.
    let group: String = String::from_utf8_lossy(&members["etc/group"].data)
        .lines()
        .filter(|l| !l.starts_with("shadow:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let tester = |e: TestEntry| e.owned("tester", 1234, "shadow", 1234);
    vec![
        TestPackage {
            name: "baselayout-data",
            depends: &[],
            triggers: "",
            scripts: vec![],
            entries: vec![
                TestEntry::dir("etc/", 0o755),
                copied(members, "etc/passwd", 0o644),
                TestEntry::file(b"etc/group", group.as_bytes()),
                copied(members, "etc/shadow", 0o640).owned("root", 0, "shadow", 42),
                TestEntry::dir("etc/ssl/", 0o755),
                TestEntry::dir("etc/ssl/certs/", 0o755),
                copied(members, CA_BUNDLE, 0o644),
            ],
        },
        TestPackage {
            name: "musl",
            depends: &[],
            triggers: "",
            scripts: vec![],
            entries: vec![
                TestEntry::dir("lib/", 0o755),
                copied(members, &loader, 0o755),
                TestEntry::symlink(&libc, &libc_target),
            ],
        },
        TestPackage {
            name: "busybox",
            depends: &["musl"],
            triggers: "/bin /sbin /usr/bin /usr/sbin",
            scripts: vec![(".post-install", POST_INSTALL), (".trigger", TRIGGER)],
            entries: vec![
                TestEntry::dir("bin/", 0o755),
                copied(members, "bin/busybox", 0o755),
                TestEntry::dir("sbin/", 0o755),
                TestEntry::dir("usr/", 0o755),
                TestEntry::dir("usr/bin/", 0o755),
                TestEntry::dir("usr/sbin/", 0o755),
            ],
        },
        TestPackage {
            name: "base-users",
            depends: &["busybox", "baselayout-data"],
            triggers: "",
            scripts: vec![(".pre-install", PRE_INSTALL)],
            entries: vec![
                TestEntry::dir("var/", 0o755),
                TestEntry::dir("var/lib/", 0o755),
                tester(TestEntry::dir("var/lib/tester/", 0o750)),
                tester(TestEntry::file(TESTER_FILE.as_bytes(), b"hello\n").mode(0o640)),
            ],
        },
    ]
}

/// A member of a control, signature or index tar: no checksum record, type `0`.
/// (`support::cut_tar` writes the old type `\0`, which apk 2.14 does not take for a file:
/// it rejects an index signed that way as `BAD signature`.)
fn plain_member(name: &str, body: &[u8], mode: u32) -> TestEntry {
    TestEntry {
        checksum: false,
        ..TestEntry::file(name.as_bytes(), body).mode(mode)
    }
}

/// The gzip member holding the test key's RSA-SHA1 signature of `signed`.
fn signature_member(signed: &[u8]) -> Vec<u8> {
    let signature = private_key(TEST_KEY)
        .sign(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(signed))
        .unwrap();
    let name = format!(".SIGN.RSA.{TEST_KEY}");
    gzip(&tar_of(&[plain_member(&name, &signature, 0o644)]))
}

/// A signed `APKINDEX.tar.gz` holding `text`.
fn signed_index(text: &str) -> Vec<u8> {
    let mut body = tar_of(&[
        plain_member("DESCRIPTION", b"foreign-arch test repository", 0o644),
        plain_member("APKINDEX", text.as_bytes(), 0o644),
    ]);
    body.extend_from_slice(&[0u8; 1024]);
    let body = gzip(&body);
    [signature_member(&body), body].concat()
}

/// The `.apk` of `pkg` for `arch`, and its index stanza.
fn apk_of(pkg: &TestPackage, arch: &str) -> (Vec<u8>, String) {
    let mut data_tar = tar_of(&pkg.entries);
    data_tar.extend_from_slice(&[0u8; 1024]);
    let data = gzip(&data_tar);
    let installed: usize = pkg.entries.iter().map(|e| e.data.len()).sum();
    let name = pkg.name;
    let mut pkginfo = format!(
        "pkgname = {name}\npkgver = {VERSION}\npkgdesc = {name} for tests\nurl = https://example.invalid\n\
         builddate = {BUILD_TIME}\npackager = {PACKAGER}\nsize = {installed}\narch = {arch}\norigin = {name}\n\
         maintainer = {PACKAGER}\nlicense = MIT\n"
    );
    for dep in pkg.depends {
        pkginfo += &format!("depend = {dep}\n");
    }
    if !pkg.triggers.is_empty() {
        pkginfo += &format!("triggers = {}\n", pkg.triggers);
    }
    pkginfo += &format!("datahash = {}\n", hex::encode(Sha256::digest(&data)));
    let mut control = vec![plain_member(".PKGINFO", pkginfo.as_bytes(), 0o644)];
    for (script, body) in &pkg.scripts {
        control.push(plain_member(script, body.as_bytes(), 0o755));
    }
    let control = gzip(&tar_of(&control));
    let checksum = sysroot_mk::package::encode_q1(&Sha1::digest(&control).into());
    let apk = [signature_member(&control), control, data].concat();
    let depends = if pkg.depends.is_empty() {
        String::new()
    } else {
        format!("D:{}\n", pkg.depends.join(" "))
    };
    let stanza = format!(
        "C:{checksum}\nP:{name}\nV:{VERSION}\nA:{arch}\nS:{}\nI:{installed}\nT:{name} for tests\n\
         U:https://example.invalid\nL:MIT\no:{name}\nm:{PACKAGER}\nt:{BUILD_TIME}\n{depends}",
        apk.len()
    );
    (apk, stanza)
}

/// Lays out a repository at `repo/<arch>/` (signed with the test key) of packages cut
/// from the minirootfs `tarball`.
pub fn write_test_repo(tarball: &Path, arch: &str, repo: &Path) {
    let members = read_minirootfs(tarball);
    let dir = repo.join(arch);
    std::fs::create_dir_all(&dir).unwrap();
    let mut index = String::new();
    for pkg in test_packages(&members) {
        let (apk, stanza) = apk_of(&pkg, arch);
        std::fs::write(dir.join(format!("{}-{VERSION}.apk", pkg.name)), apk).unwrap();
        index += &stanza;
        index += "\n";
    }
    std::fs::write(dir.join("APKINDEX.tar.gz"), signed_index(&index)).unwrap();
}
