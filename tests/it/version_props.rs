//! Algebraic properties of apk's version order, over grammar-shaped and arbitrary strings.

use std::cmp::Ordering;

use proptest::prelude::*;
use sysroot_mk::version::{compare, compare_fuzzy, fuzzy_match, is_valid, Version};

/// Versions following `number{.number}{letter}{_suffix{number}}{-rN}`, leading zeros included.
fn valid_version() -> impl Strategy<Value = String> {
    let number = "[0-9]{1,4}|0[0-9]{1,3}";
    let suffix = prop_oneof![
        Just("alpha"),
        Just("beta"),
        Just("pre"),
        Just("rc"),
        Just("cvs"),
        Just("svn"),
        Just("git"),
        Just("hg"),
        Just("p"),
    ];
    (
        prop::collection::vec(number, 1..5),
        prop::option::of("[a-z]"),
        prop::collection::vec((suffix, prop::option::of("[0-9]{1,8}")), 0..3),
        prop::option::of("[0-9]{1,3}"),
    )
        .prop_map(|(numbers, letter, suffixes, rev)| {
            let mut s = numbers.join(".");
            s.extend(letter);
            for (name, n) in suffixes {
                s.push('_');
                s.push_str(name);
                s.extend(n);
            }
            if let Some(r) = rev {
                s.push_str("-r");
                s.push_str(&r);
            }
            s
        })
}

/// Strings assembled from grammar pieces, often broken: exercises apk's handling of
/// invalid versions, which must still be a consistent order.
fn piecewise_version() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "0",
        "00",
        "1",
        "01",
        "2",
        "10",
        "9",
        ".",
        "_",
        "-r",
        "-",
        "a",
        "z",
        "alpha",
        "rc",
        "p",
        "git",
        "pa",
        "X",
        "~",
        "\u{e9}",
        "\0",
        "99999999999999999",
        "999999999999999999",
    ]);
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

fn any_version() -> impl Strategy<Value = String> {
    prop_oneof![valid_version(), piecewise_version(), ".{0,12}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn grammar_versions_are_valid(v in valid_version()) {
        prop_assert!(is_valid(&v), "{v:?}");
    }

    #[test]
    fn compare_is_reflexive(a in any_version()) {
        prop_assert_eq!(compare(&a, &a), Ordering::Equal);
        prop_assert!(fuzzy_match(&a, &a));
    }

    #[test]
    fn compare_is_antisymmetric(a in any_version(), b in any_version()) {
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
        prop_assert_eq!(compare_fuzzy(&a, &b), compare_fuzzy(&b, &a).reverse());
    }

    #[test]
    fn compare_is_transitive(a in any_version(), b in any_version(), c in any_version()) {
        let mut v = [a, b, c];
        // Sorting puts any contradiction between neighbours and the ends.
        v.sort_by(|x, y| compare(x, y));
        prop_assert_ne!(compare(&v[0], &v[1]), Ordering::Greater);
        prop_assert_ne!(compare(&v[1], &v[2]), Ordering::Greater);
        prop_assert_ne!(compare(&v[0], &v[2]), Ordering::Greater, "{:?}", v);
        if compare(&v[0], &v[1]) == Ordering::Equal && compare(&v[1], &v[2]) == Ordering::Equal {
            prop_assert_eq!(compare(&v[0], &v[2]), Ordering::Equal);
        }
    }

    #[test]
    fn transitive_on_close_valid_versions(
        base in valid_version(),
        x in valid_version(),
        y in valid_version(),
    ) {
        // Shared prefixes make the interesting cases (diverging kinds) common.
        let a = base.clone();
        let b = format!("{base}.{x}");
        let c = format!("{base}{}", y.trim_start_matches(|c: char| c.is_ascii_digit()));
        for (p, q, r) in [(&a, &b, &c), (&b, &c, &a), (&c, &a, &b)] {
            if compare(p, q) != Ordering::Greater && compare(q, r) != Ordering::Greater {
                prop_assert_ne!(compare(p, r), Ordering::Greater, "{} {} {}", p, q, r);
            }
        }
    }

    #[test]
    fn equal_versions_match_fuzzily(a in any_version(), b in any_version()) {
        if compare(&a, &b) == Ordering::Equal {
            prop_assert!(fuzzy_match(&a, &b));
        }
    }

    #[test]
    fn extending_a_version_keeps_the_fuzzy_match(a in valid_version(), n in "[0-9]{1,3}") {
        let longer = format!("{a}.{n}");
        if !a.contains(['_', '-']) && !a.ends_with(|c: char| c.is_ascii_lowercase()) {
            prop_assert!(fuzzy_match(&longer, &a), "{longer} ~ {a}");
        }
    }

    #[test]
    fn version_ord_is_total_and_agrees_with_eq(a in any_version(), b in any_version()) {
        let (va, vb) = (Version::new(a.clone()), Version::new(b.clone()));
        prop_assert_eq!(va.cmp(&vb) == Ordering::Equal, va == vb);
        prop_assert_eq!(va.cmp(&vb), vb.cmp(&va).reverse());
        if compare(&a, &b) != Ordering::Equal {
            prop_assert_eq!(va.cmp(&vb), compare(&a, &b));
        }
    }

    #[test]
    fn sorting_arbitrary_versions_never_panics(v in prop::collection::vec(any_version(), 0..40)) {
        let mut versions: Vec<Version> = v.into_iter().map(Version::new).collect();
        versions.sort();
        for w in versions.windows(2) {
            prop_assert_ne!(w[0].apk_cmp(&w[1]), Ordering::Greater);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(a in any::<Vec<u8>>(), b in any::<Vec<u8>>()) {
        let (a, b) = (String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
        let _ = compare(&a, &b);
        let _ = compare_fuzzy(&a, &b);
        let _ = is_valid(&a);
    }
}
