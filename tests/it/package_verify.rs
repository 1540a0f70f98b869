//! The trust chain of a package: index `C:` -> control member -> `datahash` -> data member.

use crate::install_common;

use install_common::{build_apk, read_index, shared_alpine, TestEntry};
use sysroot_mk::package::{PackageError, VerifiedPackage};

/// `hello-2.12-r1` with `extra` `.PKGINFO` lines and `usr/hello` holding `text`.
fn hello(extra: &str, text: &[u8]) -> (sysroot_mk::index::Package, Vec<u8>) {
    build_apk(
        "hello",
        "2.12-r1",
        "hello",
        extra,
        &[
            TestEntry::dir("usr", 0o755),
            TestEntry::file(b"usr/hello", text),
        ],
    )
}

fn sample() -> (sysroot_mk::index::Package, Vec<u8>) {
    hello("triggers = /usr/share/hello/*\n", b"hello world\n")
}

/// Offset where the data member starts in a generated (unsigned) package.
fn data_start(bytes: &[u8]) -> usize {
    sysroot_mk::archive::first_member_len(bytes).expect("control member")
}

#[test]
fn every_real_package_verifies_against_its_index_entry() {
    let Some(shared) = shared_alpine() else {
        return;
    };
    let repo = shared.join("v3.19/main/x86_64");
    let index = read_index(&repo.join("APKINDEX.tar.gz"));
    assert_eq!(index.len(), 100);
    for pkg in &index {
        let verified = VerifiedPackage::open(pkg, &repo.join(pkg.file_name()))
            .unwrap_or_else(|e| panic!("{}: {e}", pkg.name_version()));
        assert_eq!(verified.info().name, pkg.name);
        assert_eq!(verified.info().build_time, pkg.build_time, "{}", pkg.name);
    }
    let busybox = index.iter().find(|p| p.name == "busybox").expect("busybox");
    let verified =
        VerifiedPackage::open(busybox, &repo.join(busybox.file_name())).expect("busybox");
    let actions: Vec<_> = verified
        .scripts()
        .iter()
        .map(|s| s.action.as_str())
        .collect();
    assert_eq!(actions, ["post-install", "post-upgrade", "trigger"]);
    assert!(!verified.info().triggers.is_empty());
}

#[test]
fn a_generated_package_verifies_and_exposes_pkginfo() {
    let (pkg, bytes) = sample();
    let verified = VerifiedPackage::from_bytes(&pkg, bytes).expect("verifies");
    assert_eq!(verified.info().triggers, ["/usr/share/hello/*"]);
    assert_eq!(verified.name_version(), "hello-2.12-r1");
}

#[test]
fn a_tampered_control_member_is_refused() {
    let (mut pkg, bytes) = sample();
    // Another package's control member under this entry's checksum.
    let (other, _) = build_apk("hello", "2.12-r2", "hello", "", &[]);
    pkg.checksum = other.checksum.clone();
    match VerifiedPackage::from_bytes(&pkg, bytes) {
        Err(e @ PackageError::ControlChecksum { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("`hello-2.12-r1`") && message.contains(&other.checksum),
                "{message}"
            );
        }
        other => panic!("expected a control checksum error, got {other:?}"),
    }
}

#[test]
fn a_tampered_data_member_is_refused() {
    let (pkg, bytes) = sample();
    let (_, evil) = hello("", b"pwned\n");
    // Keep the genuine control member, swap in another data member.
    let mut spliced = bytes[..data_start(&bytes)].to_vec();
    spliced.extend_from_slice(&evil[data_start(&evil)..]);
    match VerifiedPackage::from_bytes(&pkg, spliced) {
        Err(e @ PackageError::DataChecksum { .. }) => {
            assert!(e.to_string().contains("`hello-2.12-r1`"))
        }
        other => panic!("expected a data checksum error, got {other:?}"),
    }
}

#[test]
fn a_truncated_package_is_refused_at_every_length() {
    let (pkg, bytes) = sample();
    for len in 0..bytes.len() {
        let result = VerifiedPackage::from_bytes(&pkg, bytes[..len].to_vec());
        assert!(
            result.is_err(),
            "accepted a package cut at {len} of {} bytes",
            bytes.len()
        );
    }
}

#[test]
fn flipped_bytes_never_panic_and_never_verify() {
    let (pkg, bytes) = sample();
    for at in (0..bytes.len()).step_by(7) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x55;
        if let Ok(v) = VerifiedPackage::from_bytes(&pkg, damaged) {
            // Only bytes no digest covers may change (gzip header fields outside members
            // do not exist here, so nothing should pass).
            panic!("damaged byte {at} still verified as {}", v.name_version());
        }
    }
}

#[test]
fn a_package_named_differently_than_its_entry_is_refused() {
    let (mut pkg, bytes) = sample();
    pkg.name = "other".into();
    assert!(matches!(
        VerifiedPackage::from_bytes(&pkg, bytes),
        Err(PackageError::Identity { key: "pkgname", .. })
    ));
}

#[test]
fn an_entry_without_q1_checksum_cannot_be_verified() {
    let (mut pkg, bytes) = sample();
    pkg.checksum = String::new();
    assert!(matches!(
        VerifiedPackage::from_bytes(&pkg, bytes),
        Err(PackageError::NoChecksum { .. })
    ));
}

#[test]
fn a_stamp_spares_the_data_hash_only_while_the_file_is_unchanged() {
    use sysroot_mk::package::FileStamp;
    let (pkg, bytes) = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hello.apk");
    std::fs::write(&path, &bytes).unwrap();
    // Opens the file under `stamp` and reads its data member through to the verdict.
    let streamed = |stamp| {
        let (_, mut data) = VerifiedPackage::open_streaming(&pkg, &path, Some(stamp))?;
        std::io::copy(&mut data, &mut std::io::sink()).unwrap();
        data.finish()
    };
    let stamp = FileStamp::of(&std::fs::File::open(&path).unwrap()).unwrap();
    streamed(stamp).expect("unchanged file");

    // Rewritten in place with another data member (same size, so only the change time
    // tells): the stale stamp is ignored and the data member is hashed again.
    let (_, evil) = hello("", b"pwned world\n");
    let mut spliced = bytes[..data_start(&bytes)].to_vec();
    spliced.extend_from_slice(&evil[data_start(&evil)..]);
    spliced.resize(bytes.len(), 0);
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(&spliced).unwrap();
    }
    match streamed(stamp) {
        Err(PackageError::DataChecksum { .. }) => {}
        other => panic!("a changed file must be hashed again, got {other:?}"),
    }
    // Under its own fresh stamp the (wrong) data member is taken as verified: the stamp
    // is the caller's word that the file was hashed whole.
    let fresh = FileStamp::of(&std::fs::File::open(&path).unwrap()).unwrap();
    assert_ne!(fresh, stamp);
    assert!(streamed(fresh).is_ok());
}

/// A package opened for streaming, the data member's bytes as read, and the verdict of
/// [`DataStream::finish`](sysroot_mk::package::DataStream::finish).
type Streamed = (VerifiedPackage, Vec<u8>, Result<(), PackageError>);

/// Opens `bytes` as a file with [`VerifiedPackage::open_streaming`] and reads the data
/// member through.
fn stream(pkg: &sysroot_mk::index::Package, bytes: &[u8]) -> Result<Streamed, PackageError> {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.apk");
    std::fs::write(&path, bytes).unwrap();
    let (verified, mut data) = VerifiedPackage::open_streaming(pkg, &path, None)?;
    let mut read = Vec::new();
    let _ = data.read_to_end(&mut read);
    Ok((verified, read, data.finish()))
}

#[test]
fn a_streamed_package_hands_out_its_data_member_and_checks_it_at_the_end() {
    let (pkg, bytes) = sample();
    let (verified, read, finished) = stream(&pkg, &bytes).expect("control member verifies");
    finished.expect("data member verifies");
    assert_eq!(read, &bytes[data_start(&bytes)..]);
    assert!(
        verified.data_member().is_empty(),
        "the data member was held"
    );
    assert_eq!(verified.info().triggers, ["/usr/share/hello/*"]);

    // Another data member behind the genuine control member: refused only at the end.
    let (_, evil) = hello("", b"pwned\n");
    let mut spliced = bytes[..data_start(&bytes)].to_vec();
    spliced.extend_from_slice(&evil[data_start(&evil)..]);
    let (_, _, finished) = stream(&pkg, &spliced).expect("the control member is genuine");
    assert!(
        matches!(finished, Err(PackageError::DataChecksum { .. })),
        "{finished:?}"
    );
    // Cut anywhere, a package never verifies, and what the head checks refuse is said
    // in the words of the whole-file checks.
    for len in 0..bytes.len() {
        match stream(&pkg, &bytes[..len]) {
            Ok((_, _, finished)) => assert!(finished.is_err(), "accepted cut at {len}"),
            Err(err) => {
                let whole = VerifiedPackage::from_bytes(&pkg, bytes[..len].to_vec());
                assert_eq!(
                    whole.err().map(|e| e.to_string()),
                    Some(err.to_string()),
                    "cut at {len}"
                );
            }
        }
    }
}

#[test]
fn every_real_package_streams_as_it_verifies_whole() {
    let Some(shared) = shared_alpine() else {
        return;
    };
    let repo = shared.join("v3.19/main/x86_64");
    for pkg in &read_index(&repo.join("APKINDEX.tar.gz")) {
        let bytes = std::fs::read(repo.join(pkg.file_name())).unwrap();
        let whole = VerifiedPackage::from_bytes(pkg, bytes.clone()).unwrap();
        let (streamed, read, finished) = stream(pkg, &bytes).unwrap();
        finished.unwrap_or_else(|e| panic!("{}: {e}", pkg.name_version()));
        assert_eq!(read, whole.data_member(), "{}", pkg.name_version());
        assert_eq!(streamed.scripts().len(), whole.scripts().len());
        assert_eq!(streamed.info().datahash, whole.info().datahash);
    }
}
