//! `.PKGINFO` on arbitrary text: no panic, and every kept line is a `key = value` pair.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysroot_mk::package::PkgInfo;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let info = PkgInfo::parse(&text);
    assert!(info.fields.len() <= text.lines().count());
    let names: Vec<&str> = info.values("pkgname").collect();
    assert_eq!(names.last().copied().unwrap_or(""), info.name);
    assert_eq!(info.triggers.iter().filter(|t| t.is_empty()).count(), 0);
});
