//! The keyring: which keys are trusted and what their signatures prove.

use crate::support;

use support::*;
use sysroot_mk::archive::{split_signature, SignatureAlgorithm};
use sysroot_mk::report::Silent;
use sysroot_mk::trust::{pins, KeyOptions, KeySource, Keyring, TrustError};

/// Why a keyring trusting only the test key refuses the signed `archive`.
fn refusal_with_test_key(archive: &[u8]) -> TrustError {
    let dir = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[dir.path()], "x86_64");
    ring.verify_signed(&split_signature(archive).unwrap())
        .unwrap_err()
}

#[test]
fn sha1_and_sha256_signatures_verify_with_an_explicit_key() {
    let dir = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[dir.path()], "x86_64");
    for algorithm in [SignatureAlgorithm::Sha1, SignatureAlgorithm::Sha256] {
        let archive = index_archive("P:a\nV:1\n", Signer::Key(TEST_KEY, algorithm));
        let signed = split_signature(&archive).unwrap();
        assert_eq!(signed.signature.as_ref().unwrap().algorithm, algorithm);
        let key = ring.verify_signed(&signed).unwrap();
        assert_eq!(key.name, TEST_KEY);
        assert_eq!(key.pem, std::fs::read(dir.path().join(TEST_KEY)).unwrap());
        assert_eq!(key.source, KeySource::Explicit(dir.path().join(TEST_KEY)));
    }
}

#[test]
fn signature_by_an_unknown_key_names_that_key() {
    let archive = index_archive(
        "P:a\nV:1\n",
        Signer::Key(OTHER_KEY, SignatureAlgorithm::Sha256),
    );
    let err = refusal_with_test_key(&archive);
    assert!(matches!(err, TrustError::UnknownKey { ref key, .. } if key == OTHER_KEY));
    assert!(err.to_string().contains(OTHER_KEY), "{err}");
}

#[test]
fn signature_made_by_another_key_under_a_trusted_name_is_refused() {
    let archive = index_archive("P:a\nV:1\n", Signer::Posing(OTHER_KEY, TEST_KEY));
    let err = refusal_with_test_key(&archive);
    assert!(matches!(err, TrustError::BadSignature { .. }), "{err}");
}

#[test]
fn tampered_bytes_fail_verification() {
    let mut archive = index_archive(
        "P:a\nV:1\n",
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha1),
    );
    let last = archive.len() - 10;
    archive[last] ^= 0x40;
    let err = refusal_with_test_key(&archive);
    assert!(matches!(err, TrustError::BadSignature { .. }), "{err}");
}

#[test]
fn unsigned_archive_is_reported_as_unsigned() {
    let archive = index_archive("P:a\nV:1\n", Signer::Unsigned);
    let err = refusal_with_test_key(&archive);
    assert!(matches!(err, TrustError::Unsigned));
}

#[test]
fn missing_explicit_keys_dir_is_an_error_naming_it() {
    let options = KeyOptions {
        keys_dirs: vec!["/nonexistent/keys".into()],
        ..KeyOptions::default()
    };
    let err = Keyring::for_target("x86_64", &options, &Silent).unwrap_err();
    assert!(err.to_string().contains("`/nonexistent/keys`"), "{err}");
    assert!(err.to_string().contains("--keys-dir"), "{err}");
}

#[test]
fn target_keys_are_trusted_alongside_explicit_ones() {
    let root = tempfile::tempdir().unwrap();
    let target_keys = root.path().join("etc/apk/keys");
    std::fs::create_dir_all(&target_keys).unwrap();
    std::fs::copy(fixture_keys().join(OTHER_KEY), target_keys.join(OTHER_KEY)).unwrap();
    let dir = keys_dir(&[TEST_KEY]);
    let options = KeyOptions {
        keys_dirs: vec![dir.path().to_path_buf()],
        target_root: Some(root.path().to_path_buf()),
        ..KeyOptions::default()
    };
    let ring = Keyring::for_target("x86_64", &options, &Silent).unwrap();
    let names: Vec<_> = ring.keys().iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, [TEST_KEY, OTHER_KEY]);
    assert!(matches!(
        ring.get(OTHER_KEY).unwrap().source,
        KeySource::Target(_)
    ));
}

#[test]
fn unpinned_key_in_a_host_folder_is_not_trusted() {
    let host = keys_dir(&[TEST_KEY]);
    let recorder = Recorder::default();
    let options = KeyOptions {
        host_dirs: vec![host.path().to_path_buf()],
        ..KeyOptions::default()
    };
    let ring = Keyring::for_target("x86_64", &options, &recorder).unwrap();
    assert!(ring.keys().is_empty());
    let infos = recorder.infos.lock().unwrap().join("\n");
    assert!(
        infos.contains(TEST_KEY) && infos.contains("pinned"),
        "{infos}"
    );
}

#[test]
fn host_keys_matching_pins_are_trusted_only_for_their_arches() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let options = KeyOptions {
        host_dirs: vec![shared.join("keys")],
        ..KeyOptions::default()
    };
    for arch in ["x86_64", "aarch64", "riscv64"] {
        let ring = Keyring::for_target(arch, &options, &Silent).unwrap();
        let mut names: Vec<_> = ring.keys().iter().map(|k| k.name.clone()).collect();
        names.sort();
        let mut expect: Vec<_> = std::fs::read_dir(shared.join("keys").join(arch))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        expect.sort();
        assert_eq!(names, expect, "{arch}");
        assert!(ring
            .keys()
            .iter()
            .all(|k| matches!(k.source, KeySource::Pinned(_))));
    }
}

#[test]
fn explicit_keys_dir_disables_pinned_host_keys() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let dir = keys_dir(&[TEST_KEY]);
    let options = KeyOptions {
        keys_dirs: vec![dir.path().to_path_buf()],
        host_dirs: vec![shared.join("keys/x86_64")],
        ..KeyOptions::default()
    };
    let ring = Keyring::for_target("x86_64", &options, &Silent).unwrap();
    assert!(ring.is_explicit());
    assert!(ring.get(ALPINE_X86_64_KEY).is_none());
}

#[test]
fn every_official_key_matches_its_pin() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let mut ring = Keyring::new("x86_64");
    let mut matched = 0;
    for pin in pins() {
        let pem = std::fs::read(shared.join("keys").join(&pin.name)).unwrap();
        for arch in &pin.arches {
            let mut ring_for_arch = Keyring::new(arch);
            assert!(ring_for_arch.add_pinned(&pin.name, &pem, "shared").unwrap());
        }
        matched += 1;
        let _ = ring.add_pinned(&pin.name, &pem, "shared").unwrap();
    }
    assert_eq!(matched, 17);
    assert_eq!(ring.keys().len(), 3, "three keys sign x86_64");
}

fn real_index(shared: &std::path::Path, rel: &str) -> Vec<u8> {
    std::fs::read(shared.join(rel)).unwrap()
}

#[test]
fn real_indexes_verify_with_their_arch_keys() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let x86_64 = keyring_of(&[&shared.join("keys/x86_64")], "x86_64");
    for rel in [
        "v3.19/main/x86_64/APKINDEX.tar.gz",
        "indexes/v3.19-x86_64/main-APKINDEX.tar.gz",
        "indexes/v3.19-x86_64/community-APKINDEX.tar.gz",
    ] {
        let bytes = real_index(&shared, rel);
        let key = x86_64
            .verify_signed(&split_signature(&bytes).unwrap())
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(key.name, ALPINE_X86_64_KEY, "{rel}");
    }
    let aarch64 = keyring_of(&[&shared.join("keys/aarch64")], "aarch64");
    let bytes = real_index(&shared, "v3.13/main/aarch64/APKINDEX.tar.gz");
    let key = aarch64
        .verify_signed(&split_signature(&bytes).unwrap())
        .unwrap();
    assert_eq!(
        key.name,
        "alpine-devel@lists.alpinelinux.org-58199dcc.rsa.pub"
    );
}

#[test]
fn a_real_index_changed_in_one_byte_or_with_one_signature_bit_flipped_is_refused() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    // Large SHA-1 indexes, which sysroot-mk verifies itself rather than through ring.
    let ring = keyring_of(&[&shared.join("keys/x86_64")], "x86_64");
    for rel in [
        "indexes/v3.19-x86_64/main-APKINDEX.tar.gz",
        "indexes/v3.19-x86_64/community-APKINDEX.tar.gz",
    ] {
        let bytes = real_index(&shared, rel);
        let signed = split_signature(&bytes).unwrap();
        assert!(ring.verify_signed(&signed).is_ok(), "{rel}");
        let mut body = signed.rest.to_vec();
        let middle = body.len() / 2;
        body[middle] ^= 0x01;
        let changed = sysroot_mk::archive::Signed {
            rest: &body,
            ..signed.clone()
        };
        let err = ring.verify_signed(&changed).unwrap_err();
        assert!(
            matches!(err, TrustError::BadSignature { .. }),
            "{rel}: {err}"
        );
        let mut forged = signed.clone();
        let signature = forged.signature.as_mut().unwrap();
        signature.bytes[100] ^= 0x01;
        let err = ring.verify_signed(&forged).unwrap_err();
        assert!(
            matches!(err, TrustError::BadSignature { .. }),
            "{rel}: {err}"
        );
    }
}

#[test]
fn real_indexes_are_refused_with_an_empty_or_wrong_arch_keys_dir() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let empty = tempfile::tempdir().unwrap();
    let x86_64_index = real_index(&shared, "v3.19/main/x86_64/APKINDEX.tar.gz");
    let aarch64_index = real_index(&shared, "v3.13/main/aarch64/APKINDEX.tar.gz");
    for (dir, bytes) in [
        (empty.path().to_path_buf(), &x86_64_index),
        (shared.join("keys/aarch64"), &x86_64_index),
        (shared.join("keys/x86_64"), &aarch64_index),
    ] {
        let ring = keyring_of(&[&dir], "x86_64");
        let err = ring
            .verify_signed(&split_signature(bytes).unwrap())
            .unwrap_err();
        assert!(matches!(err, TrustError::UnknownKey { .. }), "{err}");
    }
}
