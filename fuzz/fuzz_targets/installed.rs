//! The installed-database reader on arbitrary text: no panic, and what it reads writes
//! back to text that it reads again, with as many packages. (Not the same packages: the
//! writer sorts by name and, as apk 2.14 does, hands `r:`/`s:`/`f:` of a package without
//! directories to the next one.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysroot_mk::db::{read_installed, write_installed};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(packages) = read_installed(text) else {
        return;
    };
    let written = write_installed(&packages);
    match read_installed(&written) {
        Ok(again) => assert_eq!(again.len(), packages.len(), "{written:?}"),
        Err(e) => panic!("our own database text does not read back: {e}\n{written:?}"),
    }
});
