//! Test helpers: signed fixture indexes and packages built with the test keys in
//! `fixtures/keys`, a reporter that records what it is told, a small HTTP server
//! ([`http`]), running a test in a process of its own, and the helpers of each group of
//! tests in a submodule of their own.
#![allow(dead_code)]

pub mod enter;
pub mod foreign;
pub mod http;
pub mod image;
pub mod install;
pub mod resolve;
pub mod shared_data;
pub mod tls;
pub mod tree;
pub mod update;

use flate2::write::GzEncoder;
use flate2::Compression;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use sysroot_mk::archive::SignatureAlgorithm;
use sysroot_mk::report::{Reporter, Silent};
use sysroot_mk::repository::IndexOptions;
use sysroot_mk::transport::TransportOptions;
use sysroot_mk::trust::{KeyOptions, Keyring};

/// The key fixture indexes are signed with.
pub const TEST_KEY: &str = "sysroot-mk-test@example.invalid-00000000.rsa.pub";
/// A second key, never in the keyring unless a test puts it there.
pub const OTHER_KEY: &str = "sysroot-mk-other-test@example.invalid-11111111.rsa.pub";
/// The key of the v3.19 x86_64 indexes.
pub const ALPINE_X86_64_KEY: &str = "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub";

/// `../shared/alpine`, found next to the repository or one level up (worktrees).
pub fn shared_alpine() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        root.join("../shared/alpine"),
        root.join("../../shared/alpine"),
    ]
    .into_iter()
    .find(|p| p.join("README.md").is_file())
}

/// Options of an x86_64 build of `packages` into `dir` (a directory, scripts run) from
/// the local repositories `repos`, trusting `keys_dirs`; tests change what they test.
pub fn build_options(
    dir: PathBuf,
    packages: &[&str],
    repos: &[&Path],
    keys_dirs: Vec<PathBuf>,
) -> sysroot_mk::build::BuildOptions {
    sysroot_mk::build::BuildOptions {
        keys_dirs,
        ..sysroot_mk::build::BuildOptions::new(
            sysroot_mk::arch::Arch::resolve("x86_64").unwrap().0,
            dir,
            packages.iter().map(|p| p.to_string()).collect(),
            sysroot_mk::build::RepoSelection::Explicit {
                repos: repos.iter().map(|r| r.display().to_string()).collect(),
                repositories_file: None,
            },
        )
    }
}

/// The shared data, or prints the skip reason.
pub fn shared_or_skip() -> Option<PathBuf> {
    let found = shared_alpine();
    if found.is_none() {
        eprintln!("skipped: ../shared/alpine is absent");
    }
    found
}

/// This test binary, told to run only the test `name` of the module whose
/// `module_path!()` is `module`: a test that needs a process of its own (signal
/// handlers, a working directory, `HOME`) runs its body there. The first path segment
/// is the crate, which libtest's test names leave out.
pub fn test_in_child(module: &str, name: &str) -> std::process::Command {
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    let full = if module.is_empty() {
        name.to_string()
    } else {
        format!("{module}::{name}")
    };
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", &full, "--nocapture", "--test-threads=1"]);
    cmd
}

/// Runs `body`, the test `name` of the module whose `module_path!()` is `module`, in a
/// process of its own: for a test that changes process-wide state other tests read
/// (the environment: proxies, `SSL_CERT_FILE`). The calling test re-runs itself there and
/// passes when that run does; its output is passed on, so a `skipped:` line shows.
pub fn in_own_process(module: &str, name: &str, body: impl FnOnce()) {
    const MARK: &str = "SYSROOT_MK_TEST_OWN_PROCESS";
    if std::env::var_os(MARK).is_some_and(|v| v == name) {
        body();
        return;
    }
    let out = test_in_child(module, name)
        .env(MARK, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    // A filter that matched nothing would pass without running the body.
    assert!(
        stdout.contains("running 1 test"),
        "`{name}` did not run in its own process: {stdout}"
    );
    assert!(
        out.status.success(),
        "`{name}` in its own process: {stdout}{stderr}"
    );
}

/// `fixtures/keys`.
pub fn fixture_keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys")
}

/// A keyring for `arch` that trusts exactly the keys in `dirs` (`--keys-dir`).
pub fn keyring_of(dirs: &[&Path], arch: &str) -> Keyring {
    let options = KeyOptions {
        keys_dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
        ..KeyOptions::default()
    };
    Keyring::for_target(arch, &options, &Silent).unwrap()
}

/// Transport options that retry without waiting, so retry tests stay quick.
pub fn quick_transport() -> TransportOptions {
    TransportOptions {
        backoff: std::time::Duration::from_millis(1),
        ..TransportOptions::default()
    }
}

/// Index options that never fetch keys and retry without waiting.
pub fn quick_index_options() -> IndexOptions {
    IndexOptions {
        key_url: None,
        transport: quick_transport(),
        ..IndexOptions::default()
    }
}

/// A temporary folder holding copies of the named public keys (the fixture folder
/// also holds the private halves, which a keyring must not be pointed at).
pub fn keys_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(fixture_keys().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// The private half of a fixture key, by its public file name.
pub fn private_key(public_name: &str) -> RsaPrivateKey {
    let path = fixture_keys().join(public_name.trim_end_matches(".pub"));
    let pem = std::fs::read_to_string(path).unwrap();
    RsaPrivateKey::from_pkcs8_pem(&pem).unwrap()
}

/// A tar stream of `files`, without the end-of-archive blocks (as abuild cuts it).
pub fn cut_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    let mut out = builder.into_inner().unwrap();
    out.truncate(out.len() - 1024);
    out
}

/// One gzip member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A signature member over `rest`, made with the fixture key `signer` (its private
/// half) and named `name` (usually the signer's own name).
pub fn signature_member(
    rest: &[u8],
    signer: &str,
    name: &str,
    algorithm: SignatureAlgorithm,
) -> Vec<u8> {
    let key = private_key(signer);
    let (entry, sig) = match algorithm {
        SignatureAlgorithm::Sha1 => (
            format!(".SIGN.RSA.{name}"),
            key.sign(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(rest))
                .unwrap(),
        ),
        SignatureAlgorithm::Sha256 => (
            format!(".SIGN.RSA256.{name}"),
            key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(rest))
                .unwrap(),
        ),
    };
    gzip(&cut_tar(&[(&entry, &sig)]))
}

/// How a fixture archive is signed.
#[derive(Clone, Copy, Debug)]
pub enum Signer<'a> {
    /// Not at all.
    Unsigned,
    /// With the fixture key of that name, under its own name.
    Key(&'a str, SignatureAlgorithm),
    /// With the private half of `.0` but naming `.1` (a forged name).
    Posing(&'a str, &'a str),
}

/// Prepends the signature member `signer` asks for.
pub fn sign(rest: Vec<u8>, signer: Signer<'_>) -> Vec<u8> {
    match signer {
        Signer::Unsigned => rest,
        Signer::Key(key, algorithm) => {
            [signature_member(&rest, key, key, algorithm), rest].concat()
        }
        Signer::Posing(key, name) => [
            signature_member(&rest, key, name, SignatureAlgorithm::Sha256),
            rest,
        ]
        .concat(),
    }
}

/// A signed `APKINDEX.tar.gz` holding `text`.
pub fn index_archive(text: &str, signer: Signer<'_>) -> Vec<u8> {
    let body = gzip(&cut_tar(&[
        ("DESCRIPTION", b"fixture repository"),
        ("APKINDEX", text.as_bytes()),
    ]));
    sign(body, signer)
}

/// A fixture `.apk` with its index stanza.
#[derive(Clone)]
pub struct FixturePackage {
    /// `P:`
    pub name: String,
    /// `V:`
    pub version: String,
    /// The `.apk` bytes.
    pub bytes: Vec<u8>,
    /// `C:` (`Q1` + base64 of the SHA-1 of the control member).
    pub checksum: String,
    /// Extra index lines (`D:...`).
    pub extra: String,
}

impl FixturePackage {
    /// Builds a package with one data file of `payload` bytes.
    pub fn new(name: &str, version: &str, payload: &[u8]) -> FixturePackage {
        use base64::Engine;
        let data = gzip(&tar_with_end(&[(&format!("usr/share/{name}"), payload)]));
        let datahash = hex::encode(Sha256::digest(&data));
        let pkginfo = format!(
            "pkgname = {name}\npkgver = {version}\narch = x86_64\nsize = {}\ndatahash = {datahash}\n",
            payload.len()
        );
        let control = gzip(&cut_tar(&[(".PKGINFO", pkginfo.as_bytes())]));
        let checksum = format!(
            "Q1{}",
            base64::engine::general_purpose::STANDARD.encode(Sha1::digest(&control))
        );
        let rest = [control, data].concat();
        let bytes = sign(rest, Signer::Key(TEST_KEY, SignatureAlgorithm::Sha1));
        FixturePackage {
            name: name.to_string(),
            version: version.to_string(),
            bytes,
            checksum,
            extra: String::new(),
        }
    }

    /// The index stanza.
    pub fn stanza(&self) -> String {
        format!(
            "C:{}\nP:{}\nV:{}\nA:x86_64\nS:{}\nI:{}\nT:fixture\nU:https://example.invalid\nL:MIT\no:{}\nm:Test <t@example.invalid>\nt:1700000000\nc:0000000000000000000000000000000000000000\n{}\n",
            self.checksum,
            self.name,
            self.version,
            self.bytes.len(),
            self.bytes.len(),
            self.name,
            self.extra
        )
    }

    /// `name-version.apk`
    pub fn file_name(&self) -> String {
        format!("{}-{}.apk", self.name, self.version)
    }
}

fn tar_with_end(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = cut_tar(files);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The index text of `packages`.
pub fn index_text(packages: &[FixturePackage]) -> String {
    packages.iter().map(|p| p.stanza() + "\n").collect()
}

/// Lays a repository out at `root/<arch>/`: the signed index and the packages.
pub fn write_repo(root: &Path, arch: &str, packages: &[FixturePackage], signer: Signer<'_>) {
    let dir = root.join(arch);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("APKINDEX.tar.gz"),
        index_archive(&index_text(packages), signer),
    )
    .unwrap();
    for p in packages {
        std::fs::write(dir.join(p.file_name()), &p.bytes).unwrap();
    }
}

/// A reporter that keeps what it is told.
#[derive(Default)]
pub struct Recorder {
    /// Warnings, in order.
    pub warnings: Mutex<Vec<String>>,
    /// Info lines.
    pub infos: Mutex<Vec<String>>,
    /// Names whose downloads finished.
    pub finished: Mutex<Vec<String>>,
    /// Total progress bytes.
    pub bytes: Mutex<u64>,
}

impl Reporter for Recorder {
    fn info(&self, message: &str) {
        self.infos.lock().unwrap().push(message.to_string());
    }
    fn warn(&self, message: &str) {
        self.warnings.lock().unwrap().push(message.to_string());
    }
    fn download_progress(&self, _name: &str, bytes: u64) {
        *self.bytes.lock().unwrap() += bytes;
    }
    fn download_finished(&self, name: &str) {
        self.finished.lock().unwrap().push(name.to_string());
    }
}

impl Recorder {
    /// The informational messages so far.
    pub fn infos(&self) -> Vec<String> {
        self.infos.lock().unwrap().clone()
    }

    /// The warnings so far.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap().clone()
    }
}

/// `len` incompressible bytes (a fixed xorshift stream), for packages that must be big
/// on the wire.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
