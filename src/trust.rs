//! Trust roots: pinned official keys, explicit keys, and RSA signature verification.
//!
//! Key material is accepted from two kinds of places:
//! - explicitly named by the user (`--keys-dir`, repeatable) and the target's own
//!   `etc/apk/keys`: any RSA public key there is trusted, and when `--keys-dir` is
//!   given nothing else is, so a wrong-arch keys folder really fails;
//! - anywhere else (the host's `/etc/apk/keys`, `/usr/share/apk/keys/<arch>`, a key
//!   fetched by name from a URL) only when the key matches one of the pins compiled in
//!   from `keys/pins.txt` and the pin lists the target arch.
//!
//! A pin is the SHA-256 of the key's DER `SubjectPublicKeyInfo`, so the PEM's
//! armour does not matter. The keyring remembers where each key came from and its
//! PEM bytes, because the sysroot's `etc/apk/keys` must receive the keys that
//! verified its indexes.

use crate::archive::{Signature, SignatureAlgorithm, Signed};
use crate::report::Reporter;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The pin file, compiled in so the trust roots travel with the binary.
const PINS: &str = include_str!("../keys/pins.txt");

/// Key files larger than this are not keys (a 16384-bit RSA PEM is under 3 KiB).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// One pinned official key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// SHA-256 of the key's DER `SubjectPublicKeyInfo`.
    pub digest: [u8; 32],
    /// The key's file name, as signatures name it.
    pub name: String,
    /// The Alpine arches whose repositories this key signs.
    pub arches: Vec<String>,
}

/// Why a key or a signature is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// An explicit keys folder cannot be read.
    #[error("cannot read keys folder `{}`; pass an existing folder of `*.rsa.pub` files to `--keys-dir`", path.display())]
    KeysDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Key material that does not parse.
    #[error("key `{name}` from `{origin}` is not an RSA public key in PEM form ({reason})")]
    BadKey {
        /// The key's file name.
        name: String,
        /// Where it came from (path or URL).
        origin: String,
        /// What the parser said.
        reason: String,
    },
    /// No key of that name is trusted.
    #[error("the signature is by `{key}`, which is not among the trusted keys ({})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownKey {
        /// The key name the signature carries.
        key: String,
        /// Names of the keys that are trusted.
        known: Vec<String>,
    },
    /// The named key is trusted but the signature does not verify with it.
    #[error("the signature by `{key}` does not verify with the trusted key from `{origin}`: the data was modified or signed by another key")]
    BadSignature {
        /// The key name.
        key: String,
        /// Where the trusted key came from.
        origin: String,
    },
    /// Key material found outside explicit folders does not match its pin.
    #[error("key `{name}` from `{origin}` does not match the pinned official key of that name (SHA-256 `{found}`); it is not used")]
    PinMismatch {
        /// The key's name.
        name: String,
        /// Where it came from.
        origin: String,
        /// The digest found, hex.
        found: String,
    },
    /// The archive carries no signature.
    #[error("it is not signed")]
    Unsigned,
}

/// Where a trusted key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A `--keys-dir` folder: trusted because the user named it.
    Explicit(PathBuf),
    /// The target's own `etc/apk/keys`.
    Target(PathBuf),
    /// Matched a pin; the path or URL it was read from.
    Pinned(String),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Explicit(p) | KeySource::Target(p) => write!(f, "{}", p.display()),
            KeySource::Pinned(origin) => f.write_str(origin),
        }
    }
}

/// A public key the keyring trusts, with the PEM bytes to install into the sysroot.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The key's file name (`alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub`).
    pub name: String,
    /// The PEM file content, byte for byte.
    pub pem: Vec<u8>,
    /// Where it came from.
    pub source: KeySource,
    key: RsaPublicKey,
}

impl PartialEq for TrustedKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.key == other.key
    }
}

impl TrustedKey {
    /// Parses a PEM public key (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub fn from_pem(name: &str, pem: &[u8], source: KeySource) -> Result<TrustedKey, TrustError> {
        let key = parse_pem(pem).map_err(|reason| TrustError::BadKey {
            name: name.to_string(),
            origin: source.to_string(),
            reason,
        })?;
        Ok(TrustedKey {
            name: name.to_string(),
            pem: pem.to_vec(),
            source,
            key,
        })
    }

    /// SHA-256 of the key's DER `SubjectPublicKeyInfo` (what pins hold).
    pub fn digest(&self) -> [u8; 32] {
        spki_digest(&self.key)
    }

    /// Checks `signature` over `signed_bytes` with this key.
    pub fn verify(&self, signature: &Signature, signed_bytes: &[u8]) -> Result<(), TrustError> {
        self.verify_message(signature, Message::Bytes(signed_bytes, None))
    }

    /// [`TrustedKey::verify`] of a [`Message`].
    fn verify_message(
        &self,
        signature: &Signature,
        message: Message<'_>,
    ) -> Result<(), TrustError> {
        let pkcs1 =
            |info: &[u8], digest: &[u8]| pkcs1v15_verify(&self.key, info, digest, &signature.bytes);
        let verified = match message {
            Message::Bytes(bytes, sha1) => {
                match self.ring_params(signature.algorithm, bytes.len()) {
                    // ring's modular exponentiation is about 15 times faster than the
                    // pure-Rust one, and an index's signature is checked before anything
                    // else can start.
                    Some(params) => ring::signature::RsaPublicKeyComponents {
                        n: self.key.n().to_bytes_be(),
                        e: self.key.e().to_bytes_be(),
                    }
                    .verify(params, bytes, &signature.bytes)
                    .is_ok(),
                    // Keys ring refuses to use (shorter than it allows for the digest, or
                    // with an exponent out of its range) are still keys apk accepts.
                    None => match signature.algorithm {
                        SignatureAlgorithm::Sha1 => pkcs1(
                            SHA1_DIGEST_INFO,
                            &sha1.copied().unwrap_or_else(|| Sha1::digest(bytes).into()),
                        ),
                        SignatureAlgorithm::Sha256 => {
                            pkcs1(SHA256_DIGEST_INFO, &Sha256::digest(bytes))
                        }
                    },
                }
            }
            Message::Digests(sha1, sha256) => match signature.algorithm {
                SignatureAlgorithm::Sha1 => pkcs1(SHA1_DIGEST_INFO, sha1),
                SignatureAlgorithm::Sha256 => {
                    sha256.is_some_and(|digest| pkcs1(SHA256_DIGEST_INFO, digest))
                }
            },
        };
        if verified {
            Ok(())
        } else {
            Err(TrustError::BadSignature {
                key: signature.key_name.clone(),
                origin: self.source.to_string(),
            })
        }
    }

    /// ring's parameters for `algorithm`, when ring verifies `len` signed bytes with this
    /// key: 1,024 (SHA-1) or 2,048 (SHA-256) to 8,192 bits, an odd exponent from 3 to
    /// 2^33 - 1, and for SHA-1 at most [`RING_SHA1_MAX`] bytes.
    fn ring_params(
        &self,
        algorithm: SignatureAlgorithm,
        len: usize,
    ) -> Option<&'static ring::signature::RsaParameters> {
        if algorithm == SignatureAlgorithm::Sha1 && len > RING_SHA1_MAX {
            return None;
        }
        let (params, min_bits) = match algorithm {
            SignatureAlgorithm::Sha1 => (
                &ring::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
                1024,
            ),
            SignatureAlgorithm::Sha256 => (&ring::signature::RSA_PKCS1_2048_8192_SHA256, 2048),
        };
        let bits = self.key.n().bits();
        let e = self.key.e().to_bytes_be();
        let e_fits = e.len() <= 8 && {
            let e = e.iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
            (3..1 << 33).contains(&e) && e % 2 == 1
        };
        ((min_bits..=8192).contains(&bits) && e_fits).then_some(params)
    }
}

/// What signatures are checked over.
#[derive(Clone, Copy)]
pub(crate) enum Message<'a> {
    /// The signed bytes, with their SHA-1 when the caller has it already (a SHA-1
    /// signature that ring would not check is then checked against it rather than
    /// hashing the bytes again).
    Bytes(&'a [u8], Option<&'a [u8; 20]>),
    /// Only the digests of bytes hashed as they were read: their SHA-1, and their
    /// SHA-256 when a signature is over that (without it such a signature fails).
    Digests(&'a [u8; 20], Option<&'a [u8; 32]>),
}

/// The most bytes ring checks a SHA-1 signature over. ring hashes what it verifies
/// itself, and its SHA-1 runs at a fifth of the speed of the `sha1` crate's (5.1 against
/// 1.1 ms for the 1.7 MB community index), which costs more than its faster RSA saves
/// against [`pkcs1v15_verify`] (0.1 against 0.56 ms for a 4,096-bit key) past roughly
/// 200 KB. Its SHA-256 is as fast.
const RING_SHA1_MAX: usize = 256 * 1024;

/// The DER `DigestInfo` prefixes of PKCS #1 v1.5 signatures (RFC 8017, 9.2, note 1).
const SHA1_DIGEST_INFO: &[u8] = &[
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];
const SHA256_DIGEST_INFO: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Whether `signature` is `key`'s PKCS #1 v1.5 signature of `digest` (RFC 8017, 8.2.2):
/// the signature, raised to the public exponent, must be exactly the encoding expected
/// for the digest (`00 01 FF.. 00 DigestInfo digest`), compared whole rather than
/// parsed. The `rsa` crate does the same through a Montgomery exponentiation whose
/// set-up costs ~1.4 ms per call for a 4,096-bit key, on the critical path of every run
/// that reads a large index; the public exponents of RSA keys (at most 2^33 - 1, as
/// the key parser enforces) take at most 33 plain squarings and multiplications.
fn pkcs1v15_verify(
    key: &RsaPublicKey,
    digest_info: &[u8],
    digest: &[u8],
    signature: &[u8],
) -> bool {
    let n = key.n();
    let k = n.bits().div_ceil(8);
    let t_len = digest_info.len() + digest.len();
    if signature.len() != k || k < t_len + 11 {
        return false;
    }
    let s = rsa::BigUint::from_bytes_be(signature);
    if &s >= n {
        return false;
    }
    let exponent = key.e().to_bytes_be();
    if exponent.len() > 8 {
        return false;
    }
    let mut m = rsa::BigUint::from(1u8);
    for byte in exponent {
        for bit in (0..8).rev() {
            m = (&m * &m) % n;
            if byte >> bit & 1 == 1 {
                m = (&m * &s) % n;
            }
        }
    }
    let image = m.to_bytes_be();
    let Some(pad) = k.checked_sub(image.len()) else {
        return false;
    };
    let expected = pkcs1v15_encoding(k, digest_info, digest);
    expected[..pad].iter().all(|&b| b == 0) && expected[pad..] == image[..]
}

/// EMSA-PKCS1-v1_5 (RFC 8017, 9.2): `00 01 FF.. 00 DigestInfo digest`, `k` bytes, for
/// `k` at least 11 more than the DigestInfo and digest together.
fn pkcs1v15_encoding(k: usize, digest_info: &[u8], digest: &[u8]) -> Vec<u8> {
    let t_len = digest_info.len() + digest.len();
    let mut em = vec![0xff; k];
    em[0] = 0x00;
    em[1] = 0x01;
    em[k - t_len - 1] = 0x00;
    em[k - t_len..k - digest.len()].copy_from_slice(digest_info);
    em[k - digest.len()..].copy_from_slice(digest);
    em
}

fn parse_pem(pem: &[u8]) -> Result<RsaPublicKey, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not UTF-8 text".to_string())?;
    RsaPublicKey::from_public_key_pem(text.trim())
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(text.trim()))
        .map_err(|e| e.to_string())
}

fn spki_digest(key: &RsaPublicKey) -> [u8; 32] {
    // Encoding a parsed RSA key cannot fail; an empty digest input would only make the
    // pin comparison fail, never succeed.
    let der = key
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default();
    Sha256::digest(der).into()
}

/// The pins compiled in from `keys/pins.txt`.
pub fn pins() -> &'static [Pin] {
    static PARSED: OnceLock<Vec<Pin>> = OnceLock::new();
    PARSED.get_or_init(|| parse_pins(PINS))
}

fn parse_pins(text: &str) -> Vec<Pin> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(digest), Some(name), Some(arches)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(digest) = <[u8; 32]>::try_from(hex::decode(digest).unwrap_or_default()) else {
            continue;
        };
        out.push(Pin {
            digest,
            name: name.to_string(),
            arches: arches
                .split(',')
                .filter(|a| *a != "-")
                .map(str::to_string)
                .collect(),
        });
    }
    out
}

/// The pin of the key named `name`, if it signs for `arch`.
pub fn pin_for(name: &str, arch: &str) -> Option<&'static Pin> {
    pins()
        .iter()
        .find(|p| p.name == name && p.arches.iter().any(|a| a == arch))
}

/// Where keys come from for one target.
#[derive(Debug, Clone, Default)]
pub struct KeyOptions {
    /// `--keys-dir` folders. When non-empty, only these and the target's
    /// `etc/apk/keys` are used.
    pub keys_dirs: Vec<PathBuf>,
    /// The target root, whose `etc/apk/keys` is trusted when it exists.
    pub target_root: Option<PathBuf>,
    /// Host folders searched for pinned keys when no `--keys-dir` is given
    /// (see [`KeyOptions::default_host_dirs`]).
    pub host_dirs: Vec<PathBuf>,
}

impl KeyOptions {
    /// The host folders apk and alpine-keys use: `/etc/apk/keys`,
    /// `/usr/share/apk/keys/<arch>`.
    pub fn default_host_dirs(arch: &str) -> Vec<PathBuf> {
        vec![
            PathBuf::from("/etc/apk/keys"),
            Path::new("/usr/share/apk/keys").join(arch),
        ]
    }
}

/// The public keys trusted for one target arch.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<TrustedKey>,
    arch: String,
    explicit: bool,
}

impl Keyring {
    /// An empty keyring for `arch` that may still accept pinned keys.
    pub fn new(arch: &str) -> Keyring {
        Keyring {
            keys: Vec::new(),
            arch: arch.to_string(),
            explicit: false,
        }
    }

    /// Builds the keyring for `arch` from `options` (see the module documentation).
    pub fn for_target(
        arch: &str,
        options: &KeyOptions,
        reporter: &dyn Reporter,
    ) -> Result<Keyring, TrustError> {
        let mut ring = Keyring::new(arch);
        ring.explicit = !options.keys_dirs.is_empty();
        for dir in &options.keys_dirs {
            for (name, pem) in read_key_files(dir, true)? {
                ring.add_or_warn(
                    TrustedKey::from_pem(&name, &pem, KeySource::Explicit(dir.join(&name))),
                    reporter,
                );
            }
        }
        if let Some(root) = &options.target_root {
            let dir = root.join("etc/apk/keys");
            for (name, pem) in read_key_files(&dir, false)? {
                ring.add_or_warn(
                    TrustedKey::from_pem(&name, &pem, KeySource::Target(dir.join(&name))),
                    reporter,
                );
            }
        }
        if !ring.explicit {
            for dir in &options.host_dirs {
                for (name, pem) in read_key_files(dir, false)? {
                    let origin = dir.join(&name).display().to_string();
                    match ring.add_pinned(&name, &pem, &origin) {
                        Ok(true) => reporter.info(&format!("using pinned key `{origin}`")),
                        Ok(false) => {}
                        Err(err) => reporter.info(&err.to_string()),
                    }
                }
            }
        }
        Ok(ring)
    }

    fn add_or_warn(&mut self, key: Result<TrustedKey, TrustError>, reporter: &dyn Reporter) {
        match key {
            Ok(key) => self.add(key),
            Err(err) => reporter.warn(&format!("ignoring {err}")),
        }
    }

    /// Adds a key (the first key of a name wins, as the first folder given wins in apk).
    pub fn add(&mut self, key: TrustedKey) {
        if self.get(&key.name).is_none() {
            self.keys.push(key);
        }
    }

    /// Adds key material found outside explicit folders: kept only when it matches a pin
    /// for this keyring's arch. Returns whether it was added; keys pinned for other
    /// arches are skipped (`Ok(false)`), keys matching no pin are an error.
    pub fn add_pinned(&mut self, name: &str, pem: &[u8], origin: &str) -> Result<bool, TrustError> {
        let key = TrustedKey::from_pem(name, pem, KeySource::Pinned(origin.to_string()))?;
        let digest = key.digest();
        let Some(pin) = pins().iter().find(|p| p.digest == digest) else {
            return Err(TrustError::PinMismatch {
                name: name.to_string(),
                origin: origin.to_string(),
                found: hex::encode(digest),
            });
        };
        if !pin.arches.contains(&self.arch) {
            return Ok(false);
        }
        let key = TrustedKey {
            name: name.to_string(),
            ..key
        };
        self.add(key);
        Ok(true)
    }

    /// Whether the user named the trusted keys (`--keys-dir`); then no pinned key may
    /// be added from elsewhere, e.g. fetched by name.
    pub fn is_explicit(&self) -> bool {
        self.explicit
    }

    /// The target arch.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// All trusted keys.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// The key of that file name.
    pub fn get(&self, name: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Verifies one signature; returns the key that verified it.
    pub fn verify(
        &self,
        signature: &Signature,
        signed_bytes: &[u8],
    ) -> Result<&TrustedKey, TrustError> {
        self.verify_message(signature, Message::Bytes(signed_bytes, None))
    }

    fn verify_message(
        &self,
        signature: &Signature,
        message: Message<'_>,
    ) -> Result<&TrustedKey, TrustError> {
        let key = self
            .get(&signature.key_name)
            .ok_or_else(|| TrustError::UnknownKey {
                key: signature.key_name.clone(),
                known: self.keys.iter().map(|k| k.name.clone()).collect(),
            })?;
        key.verify_message(signature, message)?;
        Ok(key)
    }

    /// Verifies a split archive as apk does: the first signature whose key is trusted
    /// decides. Returns the key that verified it.
    pub fn verify_signed(&self, signed: &Signed<'_>) -> Result<&TrustedKey, TrustError> {
        self.verify_signed_message(signed, Message::Bytes(signed.rest, None))
    }

    /// [`Keyring::verify_signed`] of `signed`'s signatures over `message`, which the
    /// caller made of `signed.rest` (a digest of other bytes would be verified in their
    /// place, so this is for this crate only).
    pub(crate) fn verify_signed_message(
        &self,
        signed: &Signed<'_>,
        message: Message<'_>,
    ) -> Result<&TrustedKey, TrustError> {
        let mut first_error = None;
        for signature in signed.signatures() {
            match self.verify_message(signature, message) {
                Ok(key) => return Ok(key),
                Err(err @ TrustError::BadSignature { .. }) => return Err(err),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        Err(first_error.unwrap_or(TrustError::Unsigned))
    }
}

/// Reads the key files of a folder: regular files (links followed), at most
/// [`MAX_KEY_FILE`] bytes each, sorted by name. A missing folder is an error only when
/// `required`.
fn read_key_files(dir: &Path, required: bool) -> Result<Vec<(String, Vec<u8>)>, TrustError> {
    let to_err = |source| TrustError::KeysDir {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new())
        }
        Err(err) => return Err(to_err(err)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(to_err)?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let path = entry.path();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let mut pem = read_small(&path).map_err(to_err)?;
        if let Some(target) = link_stub(&pem) {
            // Checkouts without symlink support (and some archives) turn the links of
            // alpine-keys' per-arch folders into files holding the link text; follow
            // those one level, relative to the folder, as the link would have been.
            pem = read_small(&dir.join(target)).map_err(to_err)?;
        }
        out.push((name, pem));
    }
    out.sort();
    Ok(out)
}

fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_KEY_FILE)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The relative path a key file holds instead of a key (a symlink stored as text).
fn link_stub(content: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(content).ok()?.trim_end_matches('\n');
    let plausible = !text.is_empty()
        && text.len() < 1024
        && !text.starts_with('/')
        && !text.contains('\n')
        && !text.contains("-----BEGIN")
        && text.ends_with(".pub");
    plausible.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::Pkcs1v15Sign;

    fn fixture_key(name: &str) -> (TrustedKey, rsa::RsaPrivateKey) {
        use rsa::pkcs8::DecodePrivateKey;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys");
        let public = std::fs::read(dir.join(format!("{name}.pub"))).expect("public key");
        let private = std::fs::read_to_string(dir.join(name)).expect("private key");
        let key =
            TrustedKey::from_pem(name, &public, KeySource::Explicit(dir.clone())).expect("parses");
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&private).expect("private key");
        (key, private)
    }

    #[test]
    fn both_verifiers_accept_good_signatures_and_refuse_changed_bytes() {
        // Small and large: a large SHA-1 payload goes to the `sha1` crate's hashing.
        let small = b"signed bytes of an index".to_vec();
        let large = vec![7u8; RING_SHA1_MAX + 1];
        for (name, ring_for_sha256) in [
            ("sysroot-mk-test@example.invalid-00000000.rsa", true),
            ("sysroot-mk-short-test@example.invalid-22222222.rsa", false),
        ] {
            let (key, private) = fixture_key(name);
            for data in [&small, &large] {
                for algorithm in [SignatureAlgorithm::Sha1, SignatureAlgorithm::Sha256] {
                    // RSA-1024 with SHA-256 is below ring's floor: the pure-Rust verifier
                    // runs; so it does for SHA-1 over more than ring hashes fast.
                    let by_ring = match algorithm {
                        SignatureAlgorithm::Sha1 => data.len() <= RING_SHA1_MAX,
                        SignatureAlgorithm::Sha256 => ring_for_sha256,
                    };
                    let params = key.ring_params(algorithm, data.len());
                    assert_eq!(params.is_some(), by_ring, "{name} {algorithm:?}");
                    let bytes = match algorithm {
                        SignatureAlgorithm::Sha1 => {
                            private.sign(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(data))
                        }
                        SignatureAlgorithm::Sha256 => {
                            private.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(data))
                        }
                    }
                    .expect("signs");
                    let signature = Signature {
                        key_name: name.to_string(),
                        algorithm,
                        bytes,
                    };
                    assert!(key.verify(&signature, data).is_ok(), "{name} {algorithm:?}");
                    let mut changed = data.clone();
                    changed[0] ^= 1;
                    assert!(matches!(
                        key.verify(&signature, &changed),
                        Err(TrustError::BadSignature { .. })
                    ));
                    // The same verdicts with the SHA-1 handed in (as the index loader
                    // does), and from the digests alone (a local index hashed as read).
                    let sha1_of = |b: &[u8]| -> [u8; 20] { Sha1::digest(b).into() };
                    let sha256_of = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
                    for (bytes, good) in [(data, true), (&changed, false)] {
                        let (sha1, sha256) = (sha1_of(bytes), sha256_of(bytes));
                        for (form, message) in [
                            ("bytes", Message::Bytes(bytes, Some(&sha1))),
                            ("digests", Message::Digests(&sha1, Some(&sha256))),
                        ] {
                            assert_eq!(
                                key.verify_message(&signature, message).is_ok(),
                                good,
                                "{name} {algorithm:?} {form}"
                            );
                        }
                    }
                    // Digests without the SHA-256 a SHA-256 signature is over: refused.
                    let without = Message::Digests(&sha1_of(data), None);
                    assert_eq!(
                        key.verify_message(&signature, without).is_ok(),
                        algorithm == SignatureAlgorithm::Sha1
                    );
                    let mut forged = signature.clone();
                    let last = forged.bytes.len() - 1;
                    forged.bytes[last] ^= 1;
                    assert!(key.verify(&forged, data).is_err(), "{name} {algorithm:?}");
                    forged.bytes.pop();
                    assert!(key.verify(&forged, data).is_err(), "{name} {algorithm:?}");
                }
            }
        }
    }

    /// The raw RSA signature of the encoded message `em` (k bytes): what a signer of
    /// any encoding would produce.
    fn raw_sign(private: &rsa::RsaPrivateKey, em: &[u8]) -> Vec<u8> {
        use rsa::traits::PrivateKeyParts;
        let k = private.n().bits().div_ceil(8);
        let s = rsa::BigUint::from_bytes_be(em).modpow(private.d(), private.n());
        let bytes = s.to_bytes_be();
        let mut out = vec![0; k - bytes.len()];
        out.extend_from_slice(&bytes);
        out
    }

    #[test]
    fn pkcs1_verification_takes_the_exact_encoding_and_nothing_else() {
        for name in [
            "sysroot-mk-test@example.invalid-00000000.rsa",
            "sysroot-mk-short-test@example.invalid-22222222.rsa",
        ] {
            let (key, private) = fixture_key(name);
            let public = &key.key;
            let k = public.n().bits().div_ceil(8);
            let sha1 = Sha1::digest(b"an index");
            let sha256 = Sha256::digest(b"an index");
            // What the rsa crate signs, this accepts, and the rsa crate signs the encoding
            // built here: the forgeries below differ from a good signature only in it.
            for (prefix, digest, signed) in [
                (
                    SHA1_DIGEST_INFO,
                    &sha1[..],
                    private.sign(Pkcs1v15Sign::new::<Sha1>(), &sha1),
                ),
                (
                    SHA256_DIGEST_INFO,
                    &sha256[..],
                    private.sign(Pkcs1v15Sign::new::<Sha256>(), &sha256),
                ),
            ] {
                let signed = signed.expect("signs");
                assert!(pkcs1v15_verify(public, prefix, digest, &signed), "{name}");
                assert_eq!(
                    raw_sign(&private, &pkcs1v15_encoding(k, prefix, digest)),
                    signed
                );
            }
            let good = raw_sign(&private, &pkcs1v15_encoding(k, SHA1_DIGEST_INFO, &sha1));
            let refused = |sig: &[u8], why: &str| {
                assert!(
                    !pkcs1v15_verify(public, SHA1_DIGEST_INFO, &sha1, sig),
                    "{name}: {why}"
                );
            };
            // Other digests, other algorithms.
            assert!(!pkcs1v15_verify(
                public,
                SHA1_DIGEST_INFO,
                &Sha1::digest(b"another"),
                &good
            ));
            let as_sha256 = raw_sign(&private, &pkcs1v15_encoding(k, SHA256_DIGEST_INFO, &sha256));
            refused(&as_sha256, "a SHA-256 signature as SHA-1");
            // Encodings that a parsing verifier might let through.
            let mut em = pkcs1v15_encoding(k, SHA1_DIGEST_INFO, &sha1);
            em[5] = 0xfe;
            refused(&raw_sign(&private, &em), "a padding byte that is not FF");
            let mut em = pkcs1v15_encoding(k, SHA1_DIGEST_INFO, &sha1);
            em[1] = 0x02;
            refused(&raw_sign(&private, &em), "block type 2");
            // DigestInfo and digest moved up, garbage after them (Bleichenbacher 2006).
            let t = SHA1_DIGEST_INFO.len() + sha1.len();
            let mut em = vec![0xff; k];
            em[0] = 0;
            em[1] = 1;
            em[10] = 0;
            em[11..11 + SHA1_DIGEST_INFO.len()].copy_from_slice(SHA1_DIGEST_INFO);
            em[11 + SHA1_DIGEST_INFO.len()..11 + t].copy_from_slice(&sha1);
            em[11 + t..].fill(0x42);
            refused(&raw_sign(&private, &em), "garbage after the digest");
            // DigestInfo without the NULL parameters.
            let short_prefix = [
                0x30, 0x1f, 0x30, 0x07, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x04, 0x14,
            ];
            refused(
                &raw_sign(&private, &pkcs1v15_encoding(k, &short_prefix, &sha1)),
                "no NULL",
            );
            // Representatives out of range and lengths other than the modulus's.
            refused(&public.n().to_bytes_be(), "s = n");
            refused(&vec![0xff; k], "s > n");
            refused(&vec![0; k], "s = 0");
            refused(&good[1..], "one byte short");
            let mut long = vec![0];
            long.extend_from_slice(&good);
            refused(&long, "one byte long");
            refused(&[], "empty");
            // s + n raised to e is s's image too: only the range check refuses it. Some
            // message's signature is small enough for s + n to fit in k bytes.
            let shifted = (0..64u32)
                .find_map(|i| {
                    let digest = Sha1::digest(i.to_le_bytes());
                    let sig = private.sign(Pkcs1v15Sign::new::<Sha1>(), &digest).ok()?;
                    let big = rsa::BigUint::from_bytes_be(&sig) + public.n();
                    let bytes = big.to_bytes_be();
                    (bytes.len() == k).then_some((digest, bytes))
                })
                .expect("a signature below 2^(8k) - n");
            assert!(
                !pkcs1v15_verify(public, SHA1_DIGEST_INFO, &shifted.0, &shifted.1),
                "{name}: s + n"
            );
            assert!(
                pkcs1v15_verify(public, SHA1_DIGEST_INFO, &sha1, &good),
                "{name}"
            );
        }
    }

    #[test]
    fn pins_cover_every_official_key_with_its_arches() {
        assert_eq!(pins().len(), 17);
        let key = "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub";
        assert!(pin_for(key, "x86_64").is_some());
        assert!(pin_for(key, "aarch64").is_none());
        assert!(pin_for(
            "alpine-devel@lists.alpinelinux.org-58199dcc.rsa.pub",
            "aarch64"
        )
        .is_some());
    }

    #[test]
    fn malformed_pin_lines_are_skipped() {
        let pins = parse_pins("# c\n\nzz name x86\n00 short x86\n");
        assert!(pins.is_empty());
        let good = format!("{} k.pub x86,aarch64\n", "ab".repeat(32));
        assert_eq!(parse_pins(&good)[0].arches, ["x86", "aarch64"]);
    }

    #[test]
    fn link_stubs_are_recognised() {
        assert_eq!(link_stub(b"../k.rsa.pub\n"), Some("../k.rsa.pub"));
        assert_eq!(link_stub(b"-----BEGIN PUBLIC KEY-----\nx.pub"), None);
        assert_eq!(link_stub(b"/etc/passwd.pub"), None);
    }

    #[test]
    fn garbage_pem_is_a_bad_key_error() {
        let err =
            TrustedKey::from_pem("k.pub", b"nonsense", KeySource::Pinned("x".into())).unwrap_err();
        assert!(err.to_string().contains("`k.pub`"), "{err}");
    }
}
