//! Version comparison on arbitrary strings: no panic, and apk's order is a total
//! preorder (reflexive, antisymmetric, transitive), which the resolver's sorting needs.
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use sysroot_mk::version::{compare, fuzzy_match, is_valid, Version};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Up to three versions, separated by NUL.
    let mut parts = text.splitn(3, '\0');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let c = parts.next().unwrap_or("");
    let _ = is_valid(a);
    let _ = fuzzy_match(a, b);
    assert_eq!(compare(a, a), Ordering::Equal);
    let ab = compare(a, b);
    assert_eq!(ab, compare(b, a).reverse(), "{a:?} vs {b:?}");
    let bc = compare(b, c);
    if ab != Ordering::Greater && bc != Ordering::Greater {
        assert_ne!(compare(a, c), Ordering::Greater, "{a:?} <= {b:?} <= {c:?}");
    }
    // `Ord` refines apk's order and agrees with `Eq`.
    let (va, vb) = (Version::from(a), Version::from(b));
    assert_eq!(va.cmp(&vb) == Ordering::Equal, va == vb);
    if ab != Ordering::Equal {
        assert_eq!(va.cmp(&vb), ab);
    }
});
