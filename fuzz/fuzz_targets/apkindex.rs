//! The APKINDEX parser on arbitrary text: no panic, and what it accepts is consistent
//! (every package has a name, and its atoms print back to what parses equal). The
//! reader a build resolves with ([`ParsedIndex`]) accepts and refuses exactly the same
//! texts, with the same error, and reads every package back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sysroot_mk::index::{parse_apkindex, Dependency, ParsedIndex, Provide};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let view = ParsedIndex::parse(text.to_owned());
    let packages = match (parse_apkindex(text, 3), view) {
        (Ok(packages), Ok(view)) => {
            assert_eq!(view.len(), packages.len());
            for (i, p) in packages.iter().enumerate() {
                assert_eq!(view.package(i, 3).as_ref(), Some(p));
            }
            packages
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            return;
        }
        (a, b) => panic!("the readers disagree: {:?} against {:?}", a.err(), b.err()),
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
