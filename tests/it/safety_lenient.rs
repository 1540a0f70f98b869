//! apk's lenient `C:` decoding: an index whose checksums set the unused trailing bits
//! of the base64 loads, its packages verify, and a package whose bytes do not match
//! still fails.

use crate::support;

use support::*;
use sysroot_mk::archive::SignatureAlgorithm;
use sysroot_mk::fetch::{fetch_packages, FetchError, FetchOptions};
use sysroot_mk::package::VerifiedPackage;
use sysroot_mk::report::Silent;
use sysroot_mk::repository::{load_indexes, Repository};

/// `Q1...X=` with the two unused low bits of the last symbol set.
fn non_canonical(checksum: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = checksum.as_bytes().to_vec();
    let last = bytes.len() - 2;
    let value = ALPHABET.iter().position(|c| *c == bytes[last]).unwrap();
    assert_eq!(value & 3, 0, "canonical to begin with");
    bytes[last] = ALPHABET[value | 3];
    String::from_utf8(bytes).unwrap()
}

#[test]
fn non_canonical_checksums_load_and_verify_but_wrong_bytes_still_fail() {
    let mut good = FixturePackage::new("good", "1.0-r0", b"payload");
    good.checksum = non_canonical(&good.checksum);
    let mut bad = FixturePackage::new("bad", "1.0-r0", b"payload");
    bad.checksum = non_canonical(&bad.checksum);
    // Another package's bytes under `bad`'s name: the control member differs.
    bad.bytes = FixturePackage::new("bad", "1.0-r0", b"other payload").bytes;
    let dir = tempfile::tempdir().unwrap();
    write_repo(
        dir.path(),
        "x86_64",
        &[good.clone(), bad.clone()],
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha256),
    );
    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let repo = Repository::parse(dir.path().to_str().unwrap()).unwrap();
    let packages = load_indexes(
        std::slice::from_ref(&repo),
        "x86_64",
        &ring,
        &quick_index_options(),
        &Silent,
    )
    .expect("apk accepts non-canonical base64 in `C:`")
    .remove(0)
    .packages();
    assert_eq!(packages[0].checksum, good.checksum);

    let fetch = |p| {
        fetch_packages(
            std::slice::from_ref(p),
            std::slice::from_ref(&repo),
            "x86_64",
            &FetchOptions::default(),
            &Silent,
        )
    };
    let fetched = fetch(&packages[0]).unwrap();
    VerifiedPackage::open(&packages[0], &fetched[0].path).unwrap();
    let err = fetch(&packages[1]).unwrap_err();
    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    let path = dir.path().join("x86_64").join(bad.file_name());
    assert!(VerifiedPackage::open(&packages[1], &path).is_err());
}
