//! `parse_apkindex` on small hand-written indexes: field semantics, errors that name the
//! line, and hostile input that must never panic.

use proptest::prelude::*;
use sysroot_mk::index::{join, parse_apkindex, IndexError, Op};

const FULL: &str = "\
C:Q1RWLMZH10kdz0zUmHb2dljdFhLlQ=
P:busybox-binsh
V:1.36.1-r19
A:x86_64
S:1538
I:8192
T:busybox ash /bin/sh
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1718173692
c:84b15ba0364ddb1906bebfc33b9e6dee72f9b606
k:100
D:busybox=1.36.1-r19
p:/bin/sh cmd:sh=1.36.1-r19
i:busybox !foo
r:busybox-initscripts
q:5

";

#[test]
fn every_field_lands_in_the_package() {
    let pkgs = parse_apkindex(FULL, 3).expect("parses");
    assert_eq!(pkgs.len(), 1);
    let p = &pkgs[0];
    assert_eq!(p.checksum, "Q1RWLMZH10kdz0zUmHb2dljdFhLlQ=");
    assert_eq!(p.name, "busybox-binsh");
    assert_eq!(p.version.as_str(), "1.36.1-r19");
    assert_eq!(p.arch, "x86_64");
    assert_eq!((p.size, p.installed_size), (1538, 8192));
    assert_eq!(p.description, "busybox ash /bin/sh");
    assert_eq!(p.url, "https://busybox.net/");
    assert_eq!(p.license, "GPL-2.0-only");
    assert_eq!(p.origin, "busybox");
    assert_eq!(
        p.maintainer,
        "Sören Tempel <soeren+alpine@soeren-tempel.net>"
    );
    assert_eq!(p.build_time, 1718173692);
    assert_eq!(p.commit, "84b15ba0364ddb1906bebfc33b9e6dee72f9b606");
    assert_eq!(p.provider_priority, Some(100));
    assert_eq!(join(&p.depends), "busybox=1.36.1-r19");
    assert_eq!(p.depends[0].op, Op::Eq);
    assert_eq!(join(&p.provides), "/bin/sh cmd:sh=1.36.1-r19");
    assert_eq!(join(&p.install_if), "busybox !foo");
    assert_eq!(join(&p.replaces), "busybox-initscripts");
    assert_eq!(p.replaces_priority, Some(5));
    assert_eq!(p.repo, 3);
    assert!(!p.uninstallable);
    assert_eq!(p.file_name(), "busybox-binsh-1.36.1-r19.apk");
}

#[test]
fn optional_fields_default_to_empty() {
    let pkgs = parse_apkindex("P:a\nV:1\n", 0).expect("parses");
    let p = &pkgs[0];
    assert_eq!((p.checksum.as_str(), p.arch.as_str(), p.size), ("", "", 0));
    assert_eq!((p.provider_priority, p.replaces_priority), (None, None));
    assert!(p.depends.is_empty() && p.provides.is_empty() && p.install_if.is_empty());
}

#[test]
fn unknown_uppercase_field_makes_a_package_uninstallable() {
    let pkgs =
        parse_apkindex("P:a\nV:1\nX:new\n\nP:b\nV:1\nx:ignored\ng:3.0-field\n", 0).expect("parses");
    assert!(pkgs[0].uninstallable);
    assert!(
        !pkgs[1].uninstallable,
        "unknown lowercase fields are ignored"
    );
}

#[test]
fn installed_database_fields_are_skipped() {
    let text = "P:a\nV:1\nF:usr/bin\nM:0:0:755\nR:a\na:0:0:755\nZ:Q1abc\ns:tag\nf:f\n";
    let pkgs = parse_apkindex(text, 0).expect("parses");
    assert_eq!(pkgs.len(), 1);
    assert!(!pkgs[0].uninstallable);
}

#[test]
fn lists_accumulate_and_scalars_overwrite() {
    let pkgs = parse_apkindex("P:a\nV:1\nV:2\nD:b\nD:c d\np:e=1\np:f\n", 0).expect("parses");
    let p = &pkgs[0];
    assert_eq!(p.version.as_str(), "2");
    assert_eq!(join(&p.depends), "b c d");
    assert_eq!(join(&p.provides), "e=1 f");
}

#[test]
fn stanzas_split_on_short_lines_and_the_last_needs_no_blank() {
    // apk ends a package on any line under two bytes, not only an empty one.
    let pkgs = parse_apkindex("\n\nP:a\nV:1\nx\nP:b\nV:2", 0).expect("parses");
    let names: Vec<_> = pkgs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(parse_apkindex("", 0).expect("empty index"), []);
    assert_eq!(parse_apkindex("\n\n\n", 0).expect("blank index"), []);
}

fn error(text: &str) -> IndexError {
    parse_apkindex(text, 0).expect_err("must be refused")
}

#[test]
fn malformed_lines_are_refused_with_their_number() {
    assert!(matches!(
        error("P:a\nV:1\nnot a field\n"),
        IndexError::NotAField { line: 3, .. }
    ));
    assert!(matches!(
        error("P:a\nV:1\nS:12k\n"),
        IndexError::BadValue {
            line: 3,
            field: 'S',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nV:1\nI:\n"),
        IndexError::BadValue {
            line: 3,
            field: 'I',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nV:1\nt:-5\n"),
        IndexError::BadValue {
            line: 3,
            field: 't',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nV:1\nk:4294967296\n"),
        IndexError::BadValue {
            line: 3,
            field: 'k',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nS:99999999999999999999\n"),
        IndexError::BadValue {
            line: 2,
            field: 'S',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nV:1.0-foo\n"),
        IndexError::BadValue {
            line: 2,
            field: 'V',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nV:\n"),
        IndexError::BadValue {
            line: 2,
            field: 'V',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nV:1\r\n"),
        IndexError::BadValue {
            line: 2,
            field: 'V',
            ..
        }
    ));
    assert!(matches!(
        error("P:\nV:1\n"),
        IndexError::BadValue {
            line: 1,
            field: 'P',
            ..
        }
    ));
    assert!(matches!(
        error("C:Q1short\nP:a\nV:1\n"),
        IndexError::BadValue {
            line: 1,
            field: 'C',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nV:1\nD:b c>=\n"),
        IndexError::BadAtom {
            line: 3,
            field: 'D',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nV:1\np:x>1\n"),
        IndexError::BadAtom {
            line: 3,
            field: 'p',
            ..
        }
    ));
    assert!(matches!(
        error("P:a\nV:1\ni:!\n"),
        IndexError::BadAtom {
            line: 3,
            field: 'i',
            ..
        }
    ));
}

#[test]
fn names_that_would_escape_the_repository_are_refused() {
    for name in [
        "../../etc/passwd",
        "a/b",
        ".hidden",
        "-rf",
        "a b",
        "a@b",
        "caf\u{e9}",
    ] {
        let text = format!("P:{name}\nV:1\n");
        assert!(
            matches!(
                error(&text),
                IndexError::BadValue {
                    line: 1,
                    field: 'P',
                    ..
                }
            ),
            "{name:?} accepted"
        );
    }
    for name in ["R", "R-dev", "py3-foo", "gtk+3.0", "font_x", "7zip"] {
        let text = format!("P:{name}\nV:1\n");
        assert_eq!(parse_apkindex(&text, 0).expect("accepted")[0].name, name);
    }
}

#[test]
fn stanzas_without_name_or_version_are_refused() {
    assert_eq!(
        error("V:1\n\nP:b\nV:1\n"),
        IndexError::MissingField {
            line: 2,
            field: 'P'
        }
    );
    assert_eq!(
        error("P:a\nV:1\n\nP:b\nT:x\n"),
        IndexError::MissingField {
            line: 6,
            field: 'V'
        }
    );
}

#[test]
fn checksums_may_be_old_hex_digests() {
    let md5 = "C:0123456789abcdef0123456789abcdef\nP:a\nV:1\n";
    assert_eq!(parse_apkindex(md5, 0).expect("md5").len(), 1);
}

#[test]
fn messages_name_the_line_and_quote_hostile_text_safely() {
    let long = format!("P:a\nV:1\nS:{}\u{1b}[2J\n", "9".repeat(10_000));
    let msg = error(&long).to_string();
    assert!(msg.starts_with("APKINDEX line 3: field `S:`"), "{msg}");
    assert!(msg.len() < 400, "message is bounded: {} bytes", msg.len());
    let msg = error("P:a\nV:1\n\u{7}bell\n").to_string();
    assert!(
        msg.contains("line 3") && msg.contains("\\u{7}") && !msg.contains('\u{7}'),
        "{msg}"
    );
}

/// Lines built from real field letters and value fragments: mostly well-formed, so the
/// parser gets deep into stanzas before something breaks.
fn index_like() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec![
        "C:", "P:", "V:", "A:", "S:", "I:", "T:", "D:", "p:", "i:", "r:", "k:", "q:", "t:", "X:",
        "x:", "F:", "", ":", "P", "é:",
    ]);
    let value = prop_oneof![
        "[a-z0-9.:/_-]{0,12}",
        "[0-9]{1,25}",
        "[a-z]{1,5}([<>=~]{1,3}[0-9a-z._-]{0,6})?( [!a-z]{1,5}[<>=~]{0,2}[0-9.]{0,4}){0,3}",
        "Q1[A-Za-z0-9+/]{27}=",
        "\\PC{0,10}",
    ];
    prop::collection::vec((field, value), 0..40).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(f, v)| {
                if f.is_empty() {
                    String::new()
                } else {
                    format!("{f}{v}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_apkindex(&text, 0);
    }

    #[test]
    fn random_index_lines_never_panic_and_errors_point_inside(text in index_like()) {
        let lines = text.split('\n').count();
        match parse_apkindex(&text, 7) {
            Ok(pkgs) => {
                for p in &pkgs {
                    prop_assert!(!p.name.is_empty() && p.repo == 7);
                    prop_assert!(p.version.is_valid());
                }
            }
            Err(e) => {
                let line = match &e {
                    IndexError::NotAField { line, .. }
                    | IndexError::BadValue { line, .. }
                    | IndexError::BadAtom { line, .. }
                    | IndexError::MissingField { line, .. } => *line,
                    other => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
                };
                prop_assert!((1..=lines + 1).contains(&line), "line {} of {}", line, lines);
            }
        }
    }
}
