//! Lockfile stanzas and package signatures against the real Alpine data in
//! `../shared/alpine` (skipped, with a reason, when absent).

use crate::shared_data;
use crate::support;

use shared_data::{apkindex_text_or_skip, v3_19_index};
use sysroot_mk::index::parse_apkindex;
use sysroot_mk::lock::stanza;
use sysroot_mk::package::{verify_signed_stanza, VerifiedPackage};

#[test]
fn every_stanza_of_the_full_v3_19_indexes_survives_a_lockfile() {
    for repo in ["main", "community"] {
        let Some(text) = apkindex_text_or_skip(&v3_19_index(repo)) else {
            return;
        };
        let packages = parse_apkindex(&text, 3).unwrap();
        assert!(packages.len() > 5000);
        for package in &packages {
            let again = parse_apkindex(&stanza(package), 3).unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!(&again[0], package, "{}", stanza(package));
        }
    }
}

/// Every package of a shared repository carries a signature by its arch's key, and its
/// index stanza says what its signed `.PKGINFO` says.
fn check_repository(repo: &std::path::Path, arch: &str) {
    let keys = repo
        .ancestors()
        .find_map(|p| Some(p.join("keys").join(arch)).filter(|k| k.is_dir()))
        .unwrap();
    let keyring = support::keyring_of(&[&keys], arch);
    let dir = repo.join(arch);
    let index = shared_data::apkindex_text(&dir.join("APKINDEX.tar.gz"));
    let packages = parse_apkindex(&index, 0).unwrap();
    let mut checked = 0;
    for package in &packages {
        let Ok(bytes) = std::fs::read(dir.join(package.file_name())) else {
            continue;
        };
        let verified = VerifiedPackage::from_bytes(package, bytes).unwrap();
        let key = verify_signed_stanza(package, verified.bytes(), verified.info(), &keyring)
            .unwrap_or_else(|e| panic!("{}: {e}", package.name_version()));
        assert!(key.starts_with("alpine-devel@"));
        checked += 1;
    }
    assert!(checked > 20, "only {checked} packages in {}", dir.display());
}

#[test]
fn real_packages_verify_by_their_own_signature_and_match_their_stanzas() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    check_repository(&shared.join("v3.19/main"), "x86_64");
    check_repository(&shared.join("v3.13/main"), "aarch64");
}

#[test]
fn a_package_signed_by_an_untrusted_key_or_changed_in_its_stanza_is_refused() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let dir = shared.join("v3.19/main/x86_64");
    let index = shared_data::apkindex_text(&dir.join("APKINDEX.tar.gz"));
    let packages = parse_apkindex(&index, 0).unwrap();
    let busybox = packages.iter().find(|p| p.name == "busybox").unwrap();
    let bytes = std::fs::read(dir.join(busybox.file_name())).unwrap();
    let verified = VerifiedPackage::from_bytes(busybox, bytes).unwrap();
    // A keyring without the key that signed it.
    let other = support::keys_dir(&[support::TEST_KEY]);
    let untrusted = support::keyring_of(&[other.path()], "x86_64");
    let err =
        verify_signed_stanza(busybox, verified.bytes(), verified.info(), &untrusted).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not verify with a trusted key"),
        "{err}"
    );
    let trusted = support::keyring_of(&[&shared.join("keys/x86_64")], "x86_64");
    for change in [
        |p: &mut sysroot_mk::index::Package| p.license.push_str(" OR MIT"),
        |p: &mut sysroot_mk::index::Package| p.depends.clear(),
        |p: &mut sysroot_mk::index::Package| p.installed_size += 1,
        |p: &mut sysroot_mk::index::Package| p.commit = "0".repeat(40),
    ] {
        let mut changed = busybox.clone();
        change(&mut changed);
        let err = verify_signed_stanza(&changed, verified.bytes(), verified.info(), &trusted)
            .unwrap_err();
        assert!(err.to_string().contains("signed `.PKGINFO` says"), "{err}");
    }
}
