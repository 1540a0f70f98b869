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
        origin: name.to_owned(),
        ..Package::default()
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
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
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

/// One entry of a generated package's data tar; names are raw bytes so tests can build
/// the hostile ones the `tar` crate would refuse to write.
#[derive(Debug, Clone)]
pub struct TestEntry {
    pub name: Vec<u8>,
    /// Tar type flag: b'0' file, b'5' dir, b'2' symlink, b'1' hard link, b'3' char device.
    pub kind: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub uname: String,
    pub gname: String,
    pub data: Vec<u8>,
    pub link: Vec<u8>,
    /// Whether the PAX `APK-TOOLS.checksum.SHA1` record is written (files and symlinks).
    pub checksum: bool,
}

impl TestEntry {
    fn new(name: &[u8], kind: u8, mode: u32) -> TestEntry {
        TestEntry {
            name: name.to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            data: Vec::new(),
            link: Vec::new(),
            checksum: true,
        }
    }

    /// A directory.
    pub fn dir(name: &str, mode: u32) -> TestEntry {
        TestEntry::new(name.as_bytes(), b'5', mode)
    }

    /// A regular file.
    pub fn file(name: &[u8], data: &[u8]) -> TestEntry {
        TestEntry {
            data: data.to_vec(),
            ..TestEntry::new(name, b'0', 0o644)
        }
    }

    /// A symlink.
    pub fn symlink(name: &str, target: &str) -> TestEntry {
        TestEntry {
            link: target.as_bytes().to_vec(),
            ..TestEntry::new(name.as_bytes(), b'2', 0o777)
        }
    }

    /// A hard link to `target`.
    pub fn hardlink(name: &str, target: &str) -> TestEntry {
        TestEntry {
            link: target.as_bytes().to_vec(),
            ..TestEntry::new(name.as_bytes(), b'1', 0o644)
        }
    }

    /// Sets the owner names and numeric fallbacks.
    pub fn owned(mut self, uname: &str, uid: u32, gname: &str, gid: u32) -> TestEntry {
        self.uname = uname.into();
        self.uid = uid;
        self.gname = gname.into();
        self.gid = gid;
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: u32) -> TestEntry {
        self.mode = mode;
        self
    }
}

fn octal(field: &mut [u8], value: u64) {
    let s = format!("{:0width$o}", value, width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
}

fn header(out: &mut Vec<u8>, name: &[u8], kind: u8, e: &TestEntry, size: usize, link: &[u8]) {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(e.mode));
    octal(&mut h[108..116], u64::from(e.uid));
    octal(&mut h[116..124], u64::from(e.gid));
    octal(&mut h[124..136], size as u64);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let un = e.uname.len().min(31);
    h[265..265 + un].copy_from_slice(&e.uname.as_bytes()[..un]);
    let gn = e.gname.len().min(31);
    h[297..297 + gn].copy_from_slice(&e.gname.as_bytes()[..gn]);
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{:06o}\0 ", sum);
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
}

fn pad(out: &mut Vec<u8>) {
    while out.len() % 512 != 0 {
        out.push(0);
    }
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3;
    let mut len = body_len + 1;
    while format!("{len}").len() + body_len != len {
        len += 1;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// A tar stream of `entries` with apk's PAX checksum records (no end-of-archive blocks).
pub fn tar_of(entries: &[TestEntry]) -> Vec<u8> {
    use sha1::Digest;
    let mut out = Vec::new();
    for e in entries {
        let checksum = match e.kind {
            _ if !e.checksum => None,
            b'0' => Some(sha1::Sha1::digest(&e.data)),
            b'2' => Some(sha1::Sha1::digest(&e.link)),
            _ => None,
        };
        if let Some(sum) = checksum {
            let pax = pax_record("APK-TOOLS.checksum.SHA1", hex::encode(sum).as_bytes());
            header(&mut out, b"PaxHeader", b'x', e, pax.len(), b"");
            out.extend_from_slice(&pax);
            pad(&mut out);
        }
        let size = if e.kind == b'0' { e.data.len() } else { 0 };
        header(&mut out, &e.name, e.kind, e, size, &e.link);
        if e.kind == b'0' {
            out.extend_from_slice(&e.data);
            pad(&mut out);
        }
    }
    out
}

/// One gzip member.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// A generated, unsigned `.apk` and the index entry that trusts it. `pkginfo_extra` lines
/// are appended to `.PKGINFO` (e.g. `replaces = x`).
pub fn build_apk(
    name: &str,
    version: &str,
    origin: &str,
    pkginfo_extra: &str,
    entries: &[TestEntry],
) -> (Package, Vec<u8>) {
    use sha2::Digest;
    let mut data_tar = tar_of(entries);
    data_tar.extend_from_slice(&[0u8; 1024]);
    let data = gzip(&data_tar);
    let datahash = hex::encode(sha2::Sha256::digest(&data));
    let pkginfo = format!(
        "pkgname = {name}\npkgver = {version}\norigin = {origin}\nsize = {}\ndatahash = {datahash}\n{pkginfo_extra}",
        data_tar.len()
    );
    let control = gzip(&tar_of(&[TestEntry::file(b".PKGINFO", pkginfo.as_bytes())]));
    let checksum = sysroot_mk::package::encode_q1(&sha1::Sha1::digest(&control).into());
    let mut pkg = package(name, version, &checksum);
    pkg.origin = origin.to_owned();
    pkg.installed_size = data_tar.len() as u64;
    let mut apk = control;
    apk.extend_from_slice(&data);
    (pkg, apk)
}
