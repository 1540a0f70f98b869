//! Hand-built repositories, one resolver rule each, compared with what the real apk
//! 2.14.4 does with them (`fixtures/resolve/cases/*/expected`, recorded by
//! `fixtures/resolve/gen-expected.sh`). These need no shared data.

use crate::resolve_support;

use resolve_support::lines;
use std::path::{Path, PathBuf};

use sysroot_mk::index::{parse_apkindex, Dependency, Package};
use sysroot_mk::resolve::{resolve, ResolveError, ResolveOptions};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/resolve/cases")
}

struct Case {
    name: String,
    packages: Vec<Package>,
    /// The requests, or why one of them is not a valid world entry.
    world: Result<Vec<Dependency>, String>,
    opts: ResolveOptions,
    /// apk's plan, or `Err(message)` when apk refused.
    expected: Result<Vec<String>, String>,
    /// `known-difference`: why sysroot-mk does not (yet) do what apk does here.
    known_difference: Option<String>,
}

fn load(dir: &Path) -> Case {
    let read = |f: &str| std::fs::read_to_string(dir.join(f));
    let mut packages = Vec::new();
    let mut opts = ResolveOptions {
        arch: Some("x86_64".to_owned()),
        ..ResolveOptions::default()
    };
    // Repository N (1-based) is APKINDEX, APKINDEX.2, APKINDEX.3; repoN-tag tags it.
    for n in 1..=3usize {
        let file = if n == 1 {
            "APKINDEX".to_owned()
        } else {
            format!("APKINDEX.{n}")
        };
        let Ok(text) = read(&file) else {
            assert!(n > 1, "{}: no APKINDEX", dir.display());
            continue;
        };
        packages.extend(parse_apkindex(&text, n - 1).expect("case index parses"));
        let tag = read(&format!("repo{n}-tag"))
            .ok()
            .map(|t| t.trim().to_owned());
        opts.repo_tags.resize(n, None);
        opts.repo_tags[n - 1] = tag;
    }
    let world = read("world")
        .expect("world")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| Dependency::parse(l.trim()).map_err(|e| e.to_string()))
        .collect();
    let expected = read("expected").expect("expected (run gen-expected.sh)");
    let expected = match expected.strip_prefix("ERROR\n") {
        Some(message) => Err(message.to_owned()),
        None => Ok(expected.lines().map(str::to_owned).collect()),
    };
    Case {
        name: dir
            .file_name()
            .expect("case name")
            .to_string_lossy()
            .into_owned(),
        packages,
        world,
        opts,
        expected,
        known_difference: read("known-difference").ok(),
    }
}

/// The subjects of apk's error report: `  b-1-r0:` and `  nosuch (no such package):`.
fn apk_subjects(message: &str) -> Vec<String> {
    message
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .map(|l| {
            let l = l.trim().trim_end_matches(':');
            l.split(" (").next().unwrap_or(l).to_owned()
        })
        .collect()
}

fn check(case: &Case) -> Result<(), String> {
    let world = match &case.world {
        Ok(world) => world,
        // apk refuses such a request before resolving, and so do we.
        Err(ours) => {
            return match &case.expected {
                Err(message) if message.contains("is not a valid world dependency") => Ok(()),
                _ => Err(format!(
                    "{}: apk accepts the request, we refuse it: {ours}",
                    case.name
                )),
            }
        }
    };
    let ours = resolve(&case.packages, world, &case.opts);
    match (&case.expected, ours) {
        (Ok(want), Ok(plan)) => {
            let got = lines(&plan);
            if *want == got {
                Ok(())
            } else {
                Err(format!(
                    "{}: apk installs {want:?}, we plan {got:?}",
                    case.name
                ))
            }
        }
        (Ok(want), Err(e)) => Err(format!(
            "{}: apk installs {want:?}, we fail: {e}",
            case.name
        )),
        (Err(_), Ok(plan)) => Err(format!(
            "{}: apk refuses, we plan {:?}",
            case.name,
            plan.packages
                .iter()
                .map(Package::name_version)
                .collect::<Vec<_>>()
        )),
        (Err(message), Err(e)) => {
            let text = e.to_string();
            let tag_refusal = message.contains("missing repository tags");
            if tag_refusal != matches!(e, ResolveError::UnknownTag { .. }) {
                return Err(format!(
                    "{}: apk says {message:?}, we say {text:?}",
                    case.name
                ));
            }
            // Our explanation names at least what apk's names.
            match apk_subjects(message)
                .into_iter()
                .find(|s| !text.contains(s.as_str()))
            {
                Some(missing) => Err(format!(
                    "{}: apk blames `{missing}`, our message does not mention it:\n{text}",
                    case.name
                )),
                None => Ok(()),
            }
        }
    }
}

#[test]
fn every_hand_built_case_matches_apk() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("cases dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 100,
        "expected the recorded cases, found {}",
        dirs.len()
    );
    let cases: Vec<Case> = dirs.iter().map(|d| load(d)).collect();
    let mut failures = Vec::new();
    let mut known = Vec::new();
    for case in &cases {
        match (check(case), &case.known_difference) {
            (Ok(()), None) => {}
            (Err(e), None) => failures.push(e),
            // A known difference is reported every run, and must go once it is fixed.
            (Err(e), Some(why)) => known.push(format!("{e}\n    known difference: {}", why.trim())),
            (Ok(()), Some(_)) => failures.push(format!(
                "{}: now matches apk; delete its `known-difference` file",
                case.name
            )),
        }
    }
    eprintln!(
        "{} of {} hand-built cases match apk; {} known differences",
        cases.len() - failures.len() - known.len(),
        cases.len(),
        known.len()
    );
    for k in &known {
        eprintln!("KNOWN DIFFERENCE {k}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
