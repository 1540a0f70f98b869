//! Hand-built repositories, one resolver rule each, compared with what the real apk
//! 2.14.4 does with them (`fixtures/resolve/cases/*/expected`, recorded by
//! `fixtures/resolve/gen-expected.sh`). These need no shared data.

mod resolve_support;

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
    world: Vec<Dependency>,
    opts: ResolveOptions,
    /// apk's plan, or `Err(message)` when apk refused.
    expected: Result<Vec<String>, String>,
}

fn load(dir: &Path) -> Case {
    let read = |f: &str| std::fs::read_to_string(dir.join(f));
    let mut packages =
        parse_apkindex(&read("APKINDEX").expect("APKINDEX"), 0).expect("case index parses");
    let mut opts = ResolveOptions {
        arch: Some("x86_64".to_owned()),
        ..ResolveOptions::default()
    };
    if let Ok(second) = read("APKINDEX.2") {
        packages.extend(parse_apkindex(&second, 1).expect("second index parses"));
        let tag = read("repo2-tag").ok().map(|t| t.trim().to_owned());
        opts.repo_tags = vec![None, tag];
    }
    let world = read("world")
        .expect("world")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| Dependency::parse(l.trim()).expect("world entry parses"))
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
    let ours = resolve(&case.packages, &case.world, &case.opts);
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
        dirs.len() >= 50,
        "expected the recorded cases, found {}",
        dirs.len()
    );
    let failures: Vec<String> = dirs
        .iter()
        .map(|d| load(d))
        .filter_map(|c| check(&c).err())
        .collect();
    eprintln!(
        "{} of {} hand-built cases match apk",
        dirs.len() - failures.len(),
        dirs.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
