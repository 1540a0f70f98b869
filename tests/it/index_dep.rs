//! Dependency atoms and provides: parsing, apk's serialisation, and matching semantics.

use proptest::prelude::*;
use sysroot_mk::index::{parse_apkindex, DepMatch, Dependency, IndexError, Op, Package, Provide};
use sysroot_mk::version::Version;

fn dep(s: &str) -> Dependency {
    Dependency::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn every_operator_parses_and_prints_as_apk_writes_it() {
    // (atom, op, name, version, printed)
    let cases = [
        ("musl", Op::Any, "musl", "", "musl"),
        (
            "so:libc.musl-x86_64.so.1",
            Op::Any,
            "so:libc.musl-x86_64.so.1",
            "",
            "so:libc.musl-x86_64.so.1",
        ),
        ("/bin/sh", Op::Any, "/bin/sh", "", "/bin/sh"),
        (
            "busybox=1.36.1-r19",
            Op::Eq,
            "busybox",
            "1.36.1-r19",
            "busybox=1.36.1-r19",
        ),
        (
            "lua5.1-bit32<26",
            Op::Lt,
            "lua5.1-bit32",
            "26",
            "lua5.1-bit32<26",
        ),
        ("a<=2", Op::Le, "a", "2", "a<=2"),
        ("a=<2", Op::Le, "a", "2", "a<=2"),
        ("a>2", Op::Gt, "a", "2", "a>2"),
        ("a>=2.0_rc1", Op::Ge, "a", "2.0_rc1", "a>=2.0_rc1"),
        ("a=>2", Op::Ge, "a", "2", "a>=2"),
        ("python3~3.11", Op::Fuzzy, "python3", "3.11", "python3~3.11"),
        (
            "python3=~3.11",
            Op::Fuzzy,
            "python3",
            "3.11",
            "python3~3.11",
        ),
        (
            "python3~=3.11",
            Op::Fuzzy,
            "python3",
            "3.11",
            "python3~3.11",
        ),
        ("a<~3", Op::FuzzyLe, "a", "3", "a<~3"),
        ("a>~3", Op::FuzzyGe, "a", "3", "a>~3"),
        (
            "busybox><Q1RWLMZH10kdz0zUmHb2dljdFhLlQ=",
            Op::Checksum,
            "busybox",
            "Q1RWLMZH10kdz0zUmHb2dljdFhLlQ=",
            "busybox><Q1RWLMZH10kdz0zUmHb2dljdFhLlQ=",
        ),
    ];
    for (atom, op, name, version, printed) in cases {
        let d = dep(atom);
        assert_eq!(
            (d.op, d.name.as_str(), d.version.as_str()),
            (op, name, version),
            "{atom}"
        );
        assert!(!d.conflict && d.tag.is_none(), "{atom}");
        assert_eq!(d.to_string(), printed, "{atom}");
        assert_eq!(dep(printed), d, "{printed} reparses");
    }
}

#[test]
fn conflicts_and_tags_parse_and_print() {
    let d = dep("!openssl-dev");
    assert!(d.conflict);
    assert_eq!((d.name.as_str(), d.op), ("openssl-dev", Op::Any));
    assert_eq!(d.to_string(), "!openssl-dev");

    let d = dep("!foo@edge<2");
    assert!(d.conflict);
    assert_eq!(d.tag.as_deref(), Some("edge"));
    assert_eq!(
        (d.name.as_str(), d.op, d.version.as_str()),
        ("foo", Op::Lt, "2")
    );
    assert_eq!(d.to_string(), "!foo@edge<2");

    assert_eq!(dep("foo@testing").to_string(), "foo@testing");
    assert_eq!(Dependency::any("bar"), dep("bar"));
}

#[test]
fn malformed_atoms_are_refused_with_the_atom_named() {
    for atom in [
        "",
        "!",
        "=1.0",
        "@tag",
        "foo=",
        "foo<>=1",
        "foo=1_bar",
        "foo>=1.0-",
        "foo@",
        "foo@>1",
        "foo bar",
        "foo\n",
        "foo\u{0}",
        "foo\t=1",
    ] {
        match Dependency::parse(atom) {
            Err(e @ IndexError::Dependency { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("dependency `"), "{msg}");
                assert!(
                    !msg.contains('\n') && !msg.contains('\0'),
                    "{msg:?} is escaped"
                );
            }
            other => panic!("{atom:?} gave {other:?}"),
        }
    }
}

#[test]
fn lists_split_on_spaces_and_newlines_only() {
    let list = Dependency::parse_list("  a  b>=1\nc ").expect("list parses");
    let names: Vec<_> = list.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(
        Dependency::parse_list("a\tb").is_err(),
        "a tab is not a separator in apk"
    );
    assert_eq!(Dependency::parse_list("").expect("empty list"), []);
}

#[test]
fn provides_are_virtual_or_versioned() {
    let p = Provide::parse("so:libz.so.1=1.3.1").expect("versioned provide");
    assert_eq!(p.name, "so:libz.so.1");
    assert_eq!(p.version, Some(Version::new("1.3.1")));
    assert_eq!(p.to_string(), "so:libz.so.1=1.3.1");

    let p = Provide::parse("/bin/sh").expect("virtual provide");
    assert_eq!((p.name.as_str(), p.version.as_ref()), ("/bin/sh", None));
    assert_eq!(p.to_string(), "/bin/sh");

    for bad in ["!x", "x>1", "x~1", "x@tag", "x=", ""] {
        assert!(Provide::parse(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn version_constraints_follow_apk_semantics() {
    // (atom, version, in range)
    let cases = [
        ("a", "anything", true),
        ("a=1.0", "1.0", true),
        ("a=1.0", "1.0-r0", false),
        ("a=1", "01", true),
        ("a<1.2", "1.2_rc1", true),
        ("a<1.2", "1.2", false),
        ("a<=1.2", "1.2", true),
        ("a>1.2", "1.2_p1", true),
        ("a>1.2", "1.2", false),
        ("a>=1.2", "1.2", true),
        ("a>=1.2", "1.1.9", false),
        ("python3~3.11", "3.11.8-r0", true),
        ("python3~3.11", "3.11", true),
        ("python3~3.11", "3.1", false),
        ("python3~3.11", "3.12.0-r0", false),
        ("a<~3.11", "3.10", true),
        ("a<~3.11", "3.11.9", true),
        ("a<~3.11", "3.12", false),
        ("a>~3.11", "3.11.0", true),
        ("a>~3.11", "3.10.9", false),
        ("a><Q1RWLMZH10kdz0zUmHb2dljdFhLlQ=", "1.0", false),
    ];
    for (atom, version, expected) in cases {
        assert_eq!(
            dep(atom).matches(&Version::new(version)),
            expected,
            "{version} in {atom}"
        );
    }
    // The conflict flag does not change the range, only `analyze`'s verdict.
    assert!(dep("!a<2").matches(&Version::new("1")));
}

fn packages() -> Vec<Package> {
    let text = "\
C:Q1RWLMZH10kdz0zUmHb2dljdFhLlQ=
P:busybox
V:1.36.1-r19
p:cmd:busybox=1.36.1-r19

C:Q1+WZJ4SWywL1Ke28aqx7pOO4aj7U=
P:busybox-binsh
V:1.36.1-r19
k:100
p:/bin/sh cmd:sh=1.36.1-r19
";
    parse_apkindex(text, 0).expect("fixture parses")
}

#[test]
fn packages_match_by_name_provides_and_checksum() {
    let pkgs = packages();
    let (busybox, binsh) = (&pkgs[0], &pkgs[1]);
    assert!(dep("busybox>=1.36").matches_package(busybox));
    assert!(!dep("busybox>=1.37").matches_package(busybox));
    assert!(dep("cmd:busybox=1.36.1-r19").matches_package(busybox));
    assert!(dep("/bin/sh").matches_package(binsh));
    assert!(
        !dep("/bin/sh>=1").matches_package(binsh),
        "a virtual provide has no version"
    );
    assert!(dep("cmd:sh~1.36").matches_package(binsh));
    assert!(dep("busybox><Q1RWLMZH10kdz0zUmHb2dljdFhLlQ=").matches_package(busybox));
    assert!(!dep("busybox><Q1+WZJ4SWywL1Ke28aqx7pOO4aj7U=").matches_package(busybox));
    assert!(
        !dep("busybox").matches_package(binsh),
        "another name is no match"
    );
}

#[test]
fn analyze_applies_conflicts_as_apk_does() {
    let pkgs = packages();
    let (busybox, binsh) = (&pkgs[0], &pkgs[1]);
    assert_eq!(dep("busybox").analyze(busybox), DepMatch::Satisfies);
    assert_eq!(dep("busybox<1").analyze(busybox), DepMatch::Conflicts);
    assert_eq!(dep("!busybox").analyze(busybox), DepMatch::Conflicts);
    assert_eq!(dep("!busybox<1").analyze(busybox), DepMatch::Satisfies);
    assert_eq!(dep("!/bin/sh").analyze(binsh), DepMatch::Conflicts);
    assert_eq!(dep("!/bin/sh>1").analyze(binsh), DepMatch::Satisfies);
    assert_eq!(dep("zlib").analyze(busybox), DepMatch::Irrelevant);
}

fn atom() -> impl Strategy<Value = Dependency> {
    let name = "[a-z0-9][a-z0-9._+:/-]{0,20}";
    let op = prop::sample::select(vec![
        Op::Any,
        Op::Eq,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::Fuzzy,
        Op::FuzzyLe,
        Op::FuzzyGe,
        Op::Checksum,
    ]);
    let version = "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}[a-z]?(_(rc|p|git)[0-9]{0,8})?(-r[0-9]{1,2})?";
    (
        name,
        op,
        version,
        any::<bool>(),
        prop::option::of("[a-z]{1,8}"),
    )
        .prop_map(|(name, op, version, conflict, tag)| Dependency {
            name,
            op,
            version: match op {
                Op::Any => String::new(),
                Op::Checksum => "Q1RWLMZH10kdz0zUmHb2dljdFhLlQ=".to_owned(),
                _ => version,
            },
            conflict,
            tag,
        })
}

proptest! {
    #[test]
    fn display_then_parse_round_trips(d in atom()) {
        let printed = d.to_string();
        prop_assert_eq!(Dependency::parse(&printed).expect("reparses"), d);
    }

    #[test]
    fn provide_display_then_parse_round_trips(
        name in "[a-z0-9][a-z0-9._+:/-]{0,20}",
        version in prop::option::of("[0-9]{1,3}(\\.[0-9]{1,3}){0,2}(-r[0-9])?"),
    ) {
        let p = Provide { name, version: version.map(Version::new) };
        prop_assert_eq!(Provide::parse(&p.to_string()).expect("reparses"), p);
    }

    #[test]
    fn arbitrary_atoms_never_panic(s in "\\PC{0,30}|[!a-z@<>=~._0-9-]{0,16}") {
        if let Ok(d) = Dependency::parse(&s) {
            // Whatever parses prints back to something that parses to the same atom.
            prop_assert_eq!(Dependency::parse(&d.to_string()).expect("reparses"), d);
        }
        let _ = Provide::parse(&s);
    }
}
