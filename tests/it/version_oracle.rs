//! `version::compare` and `version::is_valid` against verdicts of the real apk 2.14.4
//! (`apk version -t A B` and `apk version -c S`), recorded in `fixtures/version/`
//! (see its README for how they were made), plus a readable table of real cases.

use std::cmp::Ordering;

use sysroot_mk::version::{compare, is_valid};

const PAIRS: &str = include_str!("../../fixtures/version/apk-compare.tsv");
const VALIDITY: &str = include_str!("../../fixtures/version/apk-validate.tsv");

fn ordering(op: &str) -> Ordering {
    match op {
        "<" => Ordering::Less,
        "=" => Ordering::Equal,
        ">" => Ordering::Greater,
        other => panic!("unexpected verdict {other:?} in fixture"),
    }
}

#[test]
fn compare_agrees_with_apk_on_every_recorded_pair() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in PAIRS.lines() {
        let mut cols = line.split('\t');
        let (a, b, op) = (cols.next(), cols.next(), cols.next());
        let (Some(a), Some(b), Some(op)) = (a, b, op) else {
            panic!("bad fixture line {line:?}")
        };
        if compare(a, b) != ordering(op) {
            wrong.push(format!("{a} {op} {b}, got {:?}", compare(a, b)));
        }
        checked += 1;
    }
    assert!(checked > 10_000, "fixture holds {checked} pairs");
    assert!(
        wrong.is_empty(),
        "{} of {checked} differ from apk:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn is_valid_agrees_with_apk_on_every_recorded_string() {
    let mut checked = 0;
    for line in VALIDITY.lines() {
        let (s, valid) = line.rsplit_once('\t').expect("string TAB 0|1");
        assert_eq!(is_valid(s), valid == "1", "apk says {s:?} valid={valid}");
        checked += 1;
    }
    assert!(checked > 10_000, "fixture holds {checked} strings");
}

/// Cases from the v3.19 indexes and apk's documented rules, each confirmed with
/// `apk version -t`.
#[test]
fn real_world_table() {
    use Ordering::*;
    let table = [
        ("1.36.1-r15", "1.36.1-r19", Less),
        ("1.2.4_git20230717-r4", "1.2.4-r4", Greater),
        ("1.2.4_git20230717-r4", "1.2.5_rc1", Less),
        ("3.11.8-r0", "3.11.10-r0", Less),
        ("6.6.32-r0", "6.6.4-r0", Greater),
        ("2.4.0_rc1-r0", "2.4.0-r0", Less),
        ("1.0.2u-r0", "1.0.2t-r9", Greater),
        ("0.9.8zh", "0.9.8z", Greater),
        ("1.2.3_p1", "1.2.3-r5", Greater),
        ("1.2.3_p1", "1.2.3a", Less),
        ("2023.01.01", "2023.1.1", Less),
        ("1.001", "1.0_alpha", Less),
        ("1.0.1", "1.01", Less),
        ("01", "1", Equal),
        ("1.0", "1", Greater),
        ("1_alpha_beta", "1_alpha", Less),
        ("1-foo", "1.9", Greater),
        ("1_foo", "1", Less),
        ("", "0", Equal),
    ];
    for (a, b, expected) in table {
        assert_eq!(compare(a, b), expected, "{a} vs {b}");
    }
}
