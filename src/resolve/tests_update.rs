//! Resolution on a root that holds packages (`apk add`/`del`/`upgrade`), against what
//! apk 2.14 does on the same hand-built cases.

use super::*;
use crate::version::Version;

fn pkg(name: &str, version: &str, deps: &[&str]) -> Package {
    Package {
        checksum: format!("Q1{name}-{version}"),
        name: name.to_owned(),
        version: Version::new(version),
        arch: "x86_64".to_owned(),
        size: 1,
        installed_size: 1,
        origin: name.to_owned(),
        depends: deps.iter().map(|d| Dependency::parse(d).unwrap()).collect(),
        ..Package::default()
    }
}

fn world(entries: &[&str]) -> Vec<Dependency> {
    entries
        .iter()
        .map(|d| Dependency::parse(d).unwrap())
        .collect()
}

fn state(installed: Vec<Package>, world: &[&str], upgrade: bool) -> InstalledState {
    InstalledState {
        tags: vec![None; installed.len()],
        packages: installed,
        world_names: world.iter().map(|s| s.to_string()).collect(),
        upgrade,
    }
}

/// `(old name-version, new name-version)` of the changes that do something.
fn summary(changes: &[Change], st: &InstalledState) -> Vec<(Option<String>, Option<String>)> {
    changes
        .iter()
        .filter(|c| !c.is_noop(st))
        .map(|c| {
            (
                c.old.map(|o| st.packages[o].name_version()),
                c.new.as_ref().map(Package::name_version),
            )
        })
        .collect()
}

fn opts() -> ResolveOptions {
    ResolveOptions {
        repo_tags: vec![None],
        arch: Some("x86_64".into()),
    }
}

#[test]
fn an_installed_version_that_satisfies_stays_unless_upgrading() {
    let repo = vec![pkg("a", "1.0-r0", &[]), pkg("a", "2.0-r0", &[])];
    let st = state(vec![pkg("a", "1.0-r0", &[])], &["a"], false);
    let changes = resolve_update(&repo, &world(&["a"]), &opts(), &st).unwrap();
    assert!(summary(&changes, &st).is_empty(), "{changes:?}");

    let st = state(vec![pkg("a", "1.0-r0", &[])], &["a"], true);
    let changes = resolve_update(&repo, &world(&["a"]), &opts(), &st).unwrap();
    assert_eq!(
        summary(&changes, &st),
        [(Some("a-1.0-r0".into()), Some("a-2.0-r0".into()))]
    );
}

#[test]
fn an_installed_package_gone_from_the_repositories_stays() {
    let repo = vec![pkg("b", "1.0-r0", &[])];
    let st = state(vec![pkg("a", "0.9-r0", &[])], &["a"], false);
    let changes = resolve_update(&repo, &world(&["a", "b"]), &opts(), &st).unwrap();
    assert_eq!(summary(&changes, &st), [(None, Some("b-1.0-r0".into()))]);
}

#[test]
fn removing_purges_the_dependent_before_its_dependencies() {
    let repo = vec![pkg("app", "1-r0", &["lib"]), pkg("lib", "1-r0", &[])];
    let st = state(repo.clone(), &["app"], false);
    let changes = resolve_update(&repo, &world(&[]), &opts(), &st).unwrap();
    assert_eq!(
        summary(&changes, &st),
        [
            (Some("app-1-r0".into()), None),
            (Some("lib-1-r0".into()), None)
        ]
    );
}

#[test]
fn a_new_dependency_is_installed_before_the_upgrade_that_needs_it() {
    let repo = vec![
        pkg("app", "1-r0", &[]),
        pkg("app", "2-r0", &["lib"]),
        pkg("lib", "1-r0", &[]),
    ];
    let st = state(vec![pkg("app", "1-r0", &[])], &["app"], true);
    let changes = resolve_update(&repo, &world(&["app"]), &opts(), &st).unwrap();
    assert_eq!(
        summary(&changes, &st),
        [
            (None, Some("lib-1-r0".into())),
            (Some("app-1-r0".into()), Some("app-2-r0".into()))
        ]
    );
}

#[test]
fn a_very_long_dependency_chain_resolves() {
    // The change-set walk recurses along dependencies; a hostile index's chain must not
    // exhaust the stack.
    let n = 20_000;
    let repo: Vec<Package> = (0..n)
        .map(|i| {
            let name = format!("p{i}");
            let deps: Vec<String> = if i + 1 < n {
                vec![format!("p{}", i + 1)]
            } else {
                Vec::new()
            };
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            pkg(&name, "1-r0", &deps)
        })
        .collect();
    let plan = resolve(&repo, &world(&["p0"]), &opts()).unwrap();
    assert_eq!(plan.packages.len(), n);
    assert_eq!(plan.packages[0].name, format!("p{}", n - 1));
}
