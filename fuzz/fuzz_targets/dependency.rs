//! Dependency atoms, provides and their lists on arbitrary text: no panic, and what
//! parses prints back to text that parses equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysroot_mk::index::{Dependency, Provide};
use sysroot_mk::version::Version;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Dependency::parse(text) {
        let printed = d.to_string();
        assert_eq!(Dependency::parse(&printed).as_ref(), Ok(&d), "{printed:?}");
        let _ = d.matches(&Version::from(text));
    }
    if let Ok(p) = Provide::parse(text) {
        let printed = p.to_string();
        assert_eq!(Provide::parse(&printed).as_ref(), Ok(&p), "{printed:?}");
    }
    if let Ok(list) = Dependency::parse_list(text) {
        let printed = sysroot_mk::index::join(&list);
        assert_eq!(
            Dependency::parse_list(&printed).as_ref(),
            Ok(&list),
            "{printed:?}"
        );
    }
    if let Ok(list) = Provide::parse_list(text) {
        let printed = sysroot_mk::index::join(&list);
        assert_eq!(
            Provide::parse_list(&printed).as_ref(),
            Ok(&list),
            "{printed:?}"
        );
    }
});
