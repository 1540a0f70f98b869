//! Hand-built repositories, one rule each. Expected outcomes follow apk 2.14 (several
//! were checked against the real apk; the real-data comparisons live in
//! `tests/it/resolve_real.rs`).

use super::explain::render;
use super::*;
use crate::index::{Op, Provide};
use crate::version::Version;

/// A package builder: `pkg("foo", "1.0-r0")`, then `.dep("bar>=1")` etc.
#[derive(Clone)]
struct P(Package);

fn pkg(name: &str, version: &str) -> P {
    P(Package {
        checksum: format!("Q1{name}-{version}"),
        name: name.to_owned(),
        version: Version::new(version),
        arch: "x86_64".to_owned(),
        size: 1,
        installed_size: 1,
        description: String::new(),
        url: String::new(),
        license: String::new(),
        origin: name.to_owned(),
        ..Package::default()
    })
}

fn dep(s: &str) -> Dependency {
    Dependency::parse(s).unwrap_or_else(|e| panic!("bad atom {s}: {e}"))
}

impl P {
    fn dep(mut self, d: &str) -> P {
        self.0.depends.push(dep(d));
        self
    }
    fn provides(mut self, p: &str) -> P {
        self.0
            .provides
            .push(Provide::parse(p).unwrap_or_else(|e| panic!("bad provide {p}: {e}")));
        self
    }
    fn iif(mut self, d: &str) -> P {
        self.0.install_if.push(dep(d));
        self
    }
    fn prio(mut self, k: u32) -> P {
        self.0.provider_priority = Some(k);
        self
    }
    fn repo(mut self, r: usize) -> P {
        self.0.repo = r;
        self
    }
    fn arch(mut self, a: &str) -> P {
        self.0.arch = a.to_owned();
        self
    }
    fn uninstallable(mut self) -> P {
        self.0.uninstallable = true;
        self
    }
    fn checksum(mut self, c: &str) -> P {
        self.0.checksum = c.to_owned();
        self
    }
}

fn repo(pkgs: &[P]) -> Vec<Package> {
    pkgs.iter().map(|p| p.0.clone()).collect()
}

fn world(items: &[&str]) -> Vec<Dependency> {
    items.iter().map(|s| dep(s)).collect()
}

fn plan_with(pkgs: &[P], w: &[&str], opts: &ResolveOptions) -> Result<Vec<String>, ResolveError> {
    resolve(&repo(pkgs), &world(w), opts)
        .map(|p| p.packages.iter().map(|p| p.name_version()).collect())
}

fn plan(pkgs: &[P], w: &[&str]) -> Vec<String> {
    plan_with(pkgs, w, &ResolveOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn fails(pkgs: &[P], w: &[&str]) -> Vec<Problem> {
    match plan_with(pkgs, w, &ResolveOptions::default()) {
        Ok(p) => panic!("expected failure, got plan {p:?}"),
        Err(ResolveError::Unsatisfiable { problems }) => problems,
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn dependencies_install_before_dependents() {
    let r = [
        pkg("app", "1-r0").dep("lib").dep("/bin/sh"),
        pkg("lib", "1-r0").dep("so:libc.musl-x86_64.so.1"),
        pkg("musl", "1.2-r0").provides("so:libc.musl-x86_64.so.1=1"),
        pkg("busybox-binsh", "1.36-r0")
            .provides("/bin/sh")
            .prio(100),
    ];
    assert_eq!(
        plan(&r, &["app"]),
        [
            "musl-1.2-r0",
            "lib-1-r0",
            "busybox-binsh-1.36-r0",
            "app-1-r0"
        ]
    );
}

#[test]
fn highest_version_wins() {
    let r = [
        pkg("foo", "1.0-r0"),
        pkg("foo", "1.10-r0"),
        pkg("foo", "1.9-r3"),
    ];
    assert_eq!(plan(&r, &["foo"]), ["foo-1.10-r0"]);
}

#[test]
fn version_constraints_restrict_candidates() {
    let r = [
        pkg("foo", "1.0-r0"),
        pkg("foo", "2.0-r0"),
        pkg("foo", "3.0-r0"),
    ];
    assert_eq!(plan(&r, &["foo<3"]), ["foo-2.0-r0"]);
    assert_eq!(plan(&r, &["foo<=1.0-r0"]), ["foo-1.0-r0"]);
    assert_eq!(plan(&r, &["foo~2"]), ["foo-2.0-r0"]);
    assert_eq!(plan(&r, &["foo>1"]), ["foo-3.0-r0"]);
}

#[test]
fn world_pin_selects_exact_version() {
    let r = [
        pkg("busybox", "1.36.1-r15"),
        pkg("busybox", "1.36.1-r20"),
        pkg("tool", "1-r0").dep("busybox"),
    ];
    assert_eq!(
        plan(&r, &["busybox=1.36.1-r15", "tool"]),
        ["busybox-1.36.1-r15", "tool-1-r0"]
    );
}

#[test]
fn constraint_from_a_dependency_applies() {
    let r = [
        pkg("foo", "1.0-r0"),
        pkg("foo", "2.0-r0"),
        pkg("app", "1-r0").dep("foo<2"),
    ];
    assert_eq!(plan(&r, &["app"]), ["foo-1.0-r0", "app-1-r0"]);
}

#[test]
fn checksum_atom_selects_identity() {
    let r = [
        pkg("foo", "1.0-r0").checksum("Q1aaaa"),
        pkg("foo", "2.0-r0").checksum("Q1bbbb"),
    ];
    assert_eq!(plan(&r, &["foo><Q1aaaa"]), ["foo-1.0-r0"]);
}

// `...AAAAAAAAAAAAAAAAAAAAAAAAA=` and `...B=` spell the same SHA-1: the last symbol's
// two unused bits differ. apk compares the decoded digests.
const CANONICAL: &str = "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const NONCANONICAL: &str = "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAB=";

#[test]
fn checksum_atom_compares_digests() {
    let r = [
        pkg("foo", "1.0-r0").checksum(NONCANONICAL),
        pkg("foo", "2.0-r0").checksum("Q1bbbb"),
    ];
    let want = format!("foo><{CANONICAL}");
    assert_eq!(plan(&r, &[want.as_str()]), ["foo-1.0-r0"]);
}

#[test]
fn one_digest_spelt_two_ways_is_one_package() {
    let r = [
        pkg("foo", "1-r0").checksum(NONCANONICAL).repo(1),
        pkg("foo", "1-r0").checksum(CANONICAL).repo(0),
    ];
    let packages = repo(&r);
    let u = super::universe::Universe::build(&packages, None);
    assert_eq!(u.pkgs.len(), 1, "deduplicated by digest");
    let p = resolve(&repo(&r), &world(&["foo"]), &ResolveOptions::default()).unwrap();
    assert_eq!(
        p.packages[0].checksum, CANONICAL,
        "the copy of the first repository"
    );
}

#[test]
fn versioned_provide_behaves_like_a_package() {
    let r = [
        pkg("libfoo1", "1.0-r0").provides("so:libfoo.so.1=1.0"),
        pkg("app", "1-r0").dep("so:libfoo.so.1"),
    ];
    assert_eq!(plan(&r, &["app"]), ["libfoo1-1.0-r0", "app-1-r0"]);
    // Also requestable directly.
    assert_eq!(plan(&r, &["so:libfoo.so.1"]), ["libfoo1-1.0-r0"]);
}

#[test]
fn higher_provided_version_wins_over_package_version() {
    let r = [
        pkg("a", "9-r0").provides("cmd:x=1"),
        pkg("b", "1-r0").provides("cmd:x=2"),
    ];
    assert_eq!(plan(&r, &["cmd:x"]), ["b-1-r0"]);
}

#[test]
fn virtual_name_without_priority_is_not_chosen() {
    let r = [
        pkg("impl-a", "1-r0").provides("virt"),
        pkg("impl-b", "1-r0").provides("virt"),
    ];
    let problems = fails(&r, &["virt"]);
    assert_eq!(problems[0].subject, "virt");
    assert_eq!(problems[0].kind, ProblemKind::VirtualName);
    assert!(problems[0].details.iter().any(|d| d.contains("impl-a")));
}

#[test]
fn virtual_name_with_priority_picks_highest_priority() {
    let r = [
        pkg("impl-a", "1-r0").provides("virt").prio(10),
        pkg("impl-b", "1-r0").provides("virt").prio(100),
        pkg("impl-c", "1-r0").provides("virt"),
    ];
    assert_eq!(plan(&r, &["virt"]), ["impl-b-1-r0"]);
}

#[test]
fn virtual_name_is_satisfied_by_a_requested_provider() {
    let r = [
        pkg("impl-a", "1-r0").provides("virt"),
        pkg("impl-b", "1-r0").provides("virt"),
        pkg("app", "1-r0").dep("virt"),
    ];
    assert_eq!(plan(&r, &["app", "impl-b"]), ["impl-b-1-r0", "app-1-r0"]);
}

#[test]
fn two_virtual_providers_may_coexist() {
    let r = [
        pkg("impl-a", "1-r0").provides("virt"),
        pkg("impl-b", "1-r0").provides("virt"),
    ];
    assert_eq!(
        plan(&r, &["impl-a", "impl-b"]),
        ["impl-a-1-r0", "impl-b-1-r0"]
    );
}

#[test]
fn two_versioned_providers_of_one_name_conflict() {
    let r = [
        pkg("impl-a", "1-r0").provides("so:x=1"),
        pkg("impl-b", "1-r0").provides("so:x=1"),
    ];
    let problems = fails(&r, &["impl-a", "impl-b"]);
    assert!(problems
        .iter()
        .any(|p| p.kind == ProblemKind::Package && p.details.iter().any(|d| d.contains("so:x"))));
}

#[test]
fn conflict_atom_excludes_a_package() {
    let r = [
        pkg("a", "1-r0").dep("!b"),
        pkg("b", "1-r0"),
        pkg("c", "1-r0").dep("b"),
    ];
    assert_eq!(plan(&r, &["a"]), ["a-1-r0"]);
    let problems = fails(&r, &["a", "c"]);
    let text = render(&problems);
    assert!(text.contains("b-1-r0"), "{text}");
    assert!(text.contains("a-1-r0[!b]"), "{text}");
}

#[test]
fn versioned_conflict_excludes_only_matching_versions() {
    let r = [
        pkg("a", "1-r0").dep("!b<2"),
        pkg("b", "1-r0"),
        pkg("b", "2-r0"),
    ];
    // apk walks conflict atoms too, so `b` is listed while visiting `a`.
    assert_eq!(plan(&r, &["a", "b"]), ["b-2-r0", "a-1-r0"]);
}

#[test]
fn conflicting_version_requirements_are_explained() {
    let r = [
        pkg("a", "1-r0").dep("c<2"),
        pkg("b", "1-r0").dep("c>=2"),
        pkg("c", "1-r0"),
        pkg("c", "2-r0"),
    ];
    let problems = fails(&r, &["a", "b"]);
    let text = render(&problems);
    assert!(text.contains("a-1-r0[c<2]"), "{text}");
    assert!(text.contains("b-1-r0[c>=2]"), "{text}");
}

#[test]
fn missing_name_is_reported_with_its_requirer() {
    let r = [pkg("app", "1-r0").dep("libmissing")];
    let problems = fails(&r, &["app"]);
    let missing = problems
        .iter()
        .find(|p| p.subject == "libmissing")
        .unwrap_or_else(|| panic!("{problems:?}"));
    assert_eq!(missing.kind, ProblemKind::NoSuchName);
    assert!(missing.details[0].contains("app-1-r0[libmissing]"));
    let top = fails(&r, &["nosuch"]);
    assert_eq!(top[0].kind, ProblemKind::NoSuchName);
    assert!(top[0].details[0].contains("world[nosuch]"));
}

#[test]
fn unsatisfiable_version_names_the_request() {
    let r = [pkg("foo", "1.0-r0"), pkg("foo", "2.0-r0")];
    let problems = fails(&r, &["foo>5"]);
    let text = render(&problems);
    assert!(text.contains("`foo-2.0-r0`: cannot be installed"), "{text}");
    assert!(text.contains("does not satisfy world[foo>5]"), "{text}");
}

#[test]
fn install_if_pulls_in_when_all_conditions_hold() {
    let r = [
        pkg("foo", "1-r0"),
        pkg("bar", "1-r0"),
        pkg("foo-bar", "1-r0").iif("foo").iif("bar"),
        pkg("docs", "1-r0"),
        pkg("foo-doc", "1-r0").iif("foo").iif("docs"),
    ];
    assert_eq!(plan(&r, &["foo"]), ["foo-1-r0"]);
    assert_eq!(
        plan(&r, &["foo", "bar"]),
        ["bar-1-r0", "foo-1-r0", "foo-bar-1-r0"]
    );
}

#[test]
fn install_if_is_iterated() {
    let r = [
        pkg("a", "1-r0"),
        pkg("b", "1-r0").iif("a"),
        pkg("c", "1-r0").iif("b"),
    ];
    assert_eq!(plan(&r, &["a"]), ["a-1-r0", "b-1-r0", "c-1-r0"]);
}

#[test]
fn install_if_with_version_condition() {
    let r = [
        pkg("a", "1-r0"),
        pkg("a", "2-r0"),
        pkg("a-new", "1-r0").iif("a>=2"),
    ];
    assert_eq!(plan(&r, &["a"]), ["a-2-r0", "a-new-1-r0"]);
    assert_eq!(plan(&r, &["a<2"]), ["a-1-r0"]);
}

#[test]
fn earlier_repository_wins_a_tie() {
    let r = [
        pkg("foo", "1-r0").checksum("Q1first").repo(1),
        pkg("foo", "1-r0").checksum("Q1second").repo(0),
    ];
    let p = resolve(&repo(&r), &world(&["foo"]), &ResolveOptions::default()).unwrap();
    assert_eq!(p.packages[0].checksum, "Q1second");
}

#[test]
fn duplicate_identity_across_repositories_is_one_package() {
    let r = [
        pkg("foo", "1-r0").checksum("Q1same").repo(1),
        pkg("foo", "1-r0").checksum("Q1same").repo(0),
    ];
    let p = resolve(&repo(&r), &world(&["foo"]), &ResolveOptions::default()).unwrap();
    assert_eq!(p.packages.len(), 1);
    assert_eq!(p.packages[0].repo, 0);
}

#[test]
fn newer_version_beats_repository_order() {
    let r = [pkg("foo", "1-r0").repo(0), pkg("foo", "2-r0").repo(1)];
    assert_eq!(plan(&r, &["foo"]), ["foo-2-r0"]);
}

#[test]
fn tagged_repository_needs_a_tagged_request() {
    let r = [
        pkg("foo", "1-r0").repo(0),
        pkg("foo", "2-r0").repo(1),
        pkg("edgeonly", "1-r0").repo(1),
    ];
    let opts = ResolveOptions {
        repo_tags: vec![None, Some("edge".to_owned())],
        ..ResolveOptions::default()
    };
    assert_eq!(plan_with(&r, &["foo"], &opts).unwrap(), ["foo-1-r0"]);
    assert_eq!(plan_with(&r, &["foo@edge"], &opts).unwrap(), ["foo-2-r0"]);
    let err = plan_with(&r, &["edgeonly"], &opts).unwrap_err().to_string();
    assert!(err.contains("edgeonly@edge"), "{err}");
    assert_eq!(
        plan_with(&r, &["edgeonly@edge"], &opts).unwrap(),
        ["edgeonly-1-r0"]
    );
}

#[test]
fn tag_pin_extends_to_dependencies() {
    let r = [
        pkg("app", "2-r0").dep("lib").repo(1),
        pkg("lib", "1-r0").repo(0),
        pkg("lib", "2-r0").repo(1),
    ];
    let opts = ResolveOptions {
        repo_tags: vec![None, Some("@testing".to_owned())],
        ..ResolveOptions::default()
    };
    assert_eq!(
        plan_with(&r, &["app@testing"], &opts).unwrap(),
        ["lib-1-r0", "app-2-r0"]
    );
}

#[test]
fn unknown_tag_is_refused() {
    let r = [pkg("foo", "1-r0")];
    let err = plan_with(&r, &["foo@nope"], &ResolveOptions::default()).unwrap_err();
    assert!(
        matches!(err, ResolveError::UnknownTag { ref tag, .. } if tag == "nope"),
        "{err}"
    );
}

#[test]
fn uninstallable_package_is_never_chosen() {
    let r = [pkg("foo", "1-r0"), pkg("foo", "2-r0").uninstallable()];
    assert_eq!(plan(&r, &["foo"]), ["foo-1-r0"]);
    let only = [pkg("bar", "2-r0").uninstallable()];
    let text = render(&fails(&only, &["bar"]));
    assert!(text.contains("uninstallable"), "{text}");
}

#[test]
fn wrong_arch_package_is_never_chosen() {
    let r = [
        pkg("foo", "1-r0"),
        pkg("foo", "2-r0").arch("aarch64"),
        pkg("data", "1-r0").arch("noarch"),
    ];
    let opts = ResolveOptions {
        arch: Some("x86_64".to_owned()),
        ..ResolveOptions::default()
    };
    assert_eq!(
        plan_with(&r, &["foo", "data"], &opts).unwrap(),
        ["data-1-r0", "foo-1-r0"]
    );
}

#[test]
fn world_is_processed_in_name_order_and_deduplicated() {
    let r = [
        pkg("b", "1-r0"),
        pkg("A", "1-r0"),
        pkg("c", "1-r0"),
        pkg("c", "2-r0"),
    ];
    // Later entries for a name replace earlier ones; order is case-insensitive by name.
    assert_eq!(
        plan(&r, &["c", "b", "A", "c=1-r0"]),
        ["A-1-r0", "b-1-r0", "c-1-r0"]
    );
}

#[test]
fn dependency_cycle_is_cut_where_first_reentered() {
    let r = [
        pkg("a", "1-r0").dep("b"),
        pkg("b", "1-r0").dep("c"),
        pkg("c", "1-r0").dep("a"),
    ];
    assert_eq!(plan(&r, &["a"]), ["c-1-r0", "b-1-r0", "a-1-r0"]);
    assert_eq!(plan(&r, &["b"]), ["a-1-r0", "c-1-r0", "b-1-r0"]);
}

#[test]
fn provider_of_common_dependency_is_forced() {
    // Both candidates for `x` need `common`: it is required before `x` is decided.
    let r = [
        pkg("x1", "1-r0").provides("x=1").dep("common"),
        pkg("x2", "1-r0").provides("x=2").dep("common"),
        pkg("common", "1-r0"),
    ];
    assert_eq!(plan(&r, &["x"]), ["common-1-r0", "x2-1-r0"]);
}

#[test]
fn fewer_conflicts_is_preferred_over_newer_version() {
    let r = [
        pkg("foo", "1-r0"),
        pkg("foo", "2-r0").dep("bar"),
        pkg("bar", "1-r0"),
        pkg("app", "1-r0").dep("!bar"),
    ];
    assert_eq!(plan(&r, &["app", "foo"]), ["app-1-r0", "foo-1-r0"]);
}

#[test]
fn op_spellings_map_to_apk_masks() {
    assert!(matches!(
        universe::accept_of(&(&dep("a>~1")).into()),
        universe::Accept::Version { mask, fuzzy: true, .. } if mask == universe::VER_GREATER | universe::VER_EQUAL
    ));
    assert_eq!(dep("a=1").op, Op::Eq);
}

#[test]
fn resolution_is_deterministic() {
    let r = [
        pkg("impl-a", "1-r0").provides("virt").prio(5),
        pkg("impl-b", "1-r0").provides("virt").prio(5),
        pkg("app", "1-r0").dep("virt").dep("x"),
        pkg("x", "1-r0"),
    ];
    let first = plan(&r, &["app"]);
    for _ in 0..5 {
        assert_eq!(plan(&r, &["app"]), first);
    }
    // Equal priority and version: the first listed provider stays.
    assert_eq!(first, ["impl-a-1-r0", "x-1-r0", "app-1-r0"]);
}

#[test]
fn very_long_dependency_chain_resolves_without_recursion() {
    // Discovery and the install-order walk are iterative: a hostile index with a
    // chain this deep must not overflow the stack.
    const N: usize = 5_000;
    let r: Vec<P> = (0..N)
        .map(|i| {
            let p = pkg(&format!("p{i}"), "1-r0");
            if i + 1 < N {
                p.dep(&format!("p{}", i + 1))
            } else {
                p
            }
        })
        .collect();
    let got = plan(&r, &["p0"]);
    assert_eq!(got.len(), N);
    assert_eq!(got[0], format!("p{}-1-r0", N - 1));
    assert_eq!(got[N - 1], "p0-1-r0");
}
