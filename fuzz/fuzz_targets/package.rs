//! The package reader on arbitrary bytes: the gzip-member splitter, the streaming
//! control checksum and the full verification path. No panic; and the streaming
//! checksum agrees with the in-memory split, so a `C:` computed one way never fails
//! the other. The index entry is built from the input itself (its checksum, then the
//! name and version its `.PKGINFO` claims) so that the fuzzer reaches past each gate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysroot_mk::archive;
use sysroot_mk::index::Package;
use sysroot_mk::package::{encode_q1, PackageError, VerifiedPackage};

fuzz_target!(|data: &[u8]| {
    let _ = archive::first_member_len_limited(data, 1 << 20);
    let _ = archive::read_first_member(data, 1 << 20);
    let _ = archive::split_signature(data);
    let mut expected = Package {
        name: "fuzz".to_owned(),
        version: "1".into(),
        ..Package::default()
    };
    match archive::control_checksum(data) {
        Ok(digest) => expected.checksum = encode_q1(&digest),
        Err(_) => expected.checksum = "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
    }
    let streamed = archive::control_checksum(data).is_ok();
    // Name, then version: at most two identity mismatches to take over.
    for _ in 0..3 {
        match VerifiedPackage::from_bytes(&expected, data.to_vec()) {
            Err(PackageError::ControlChecksum { .. }) if streamed => {
                panic!("the streaming checksum and the in-memory split disagree")
            }
            Err(PackageError::Identity { key, found, .. }) => match key {
                "pkgname" => expected.name = found,
                _ => expected.version = found.as_str().into(),
            },
            Ok(pkg) => {
                assert!(pkg.data_member().len() <= pkg.bytes().len());
                assert_eq!(pkg.info().name, expected.name);
                return;
            }
            Err(_) => return,
        }
    }
});
