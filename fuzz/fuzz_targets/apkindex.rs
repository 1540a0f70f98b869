//! The APKINDEX parser on arbitrary text: no panic, and what it accepts is consistent
//! (every package has a name, and its atoms print back to what parses equal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysroot_mk::index::{parse_apkindex, Dependency, Provide};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(packages) = parse_apkindex(text, 3) else {
        return;
    };
    for p in &packages {
        assert_eq!(p.repo, 3);
        assert!(!p.name.is_empty(), "accepted a stanza without P:");
        for d in p.depends.iter().chain(&p.install_if) {
            assert_eq!(Dependency::parse(&d.to_string()).as_ref(), Ok(d));
        }
        for pr in &p.provides {
            assert_eq!(Provide::parse(&pr.to_string()).as_ref(), Ok(pr));
        }
    }
});
