//! The resolver against the real v3.19 x86_64 indexes in `../shared/alpine`, compared
//! with what the real apk 2.14.4 installs (package set and order), as recorded by
//! `fixtures/resolve/gen-expected.sh` in `fixtures/resolve/expected/`.
//! Skipped (with a reason on stderr) when the data is absent.

use crate::resolve_support;
use crate::shared_data;

use resolve_support::lines;
use shared_data::{apkindex_text_or_skip, shared, v3_19_index};
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use sysroot_mk::index::{parse_apkindex, Dependency, Package, ParsedIndex};
use sysroot_mk::resolve::{resolve, resolve_indexes, Plan, ResolveError, ResolveOptions};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read_index(path: &Path, repo: usize) -> Option<Vec<Package>> {
    let text = apkindex_text_or_skip(path)?;
    Some(parse_apkindex(&text, repo).expect("index parses"))
}

/// The repositories of `requests.txt`, loaded once per test binary.
struct Repos {
    main: Vec<Package>,
    main_community: Vec<Package>,
    small: Vec<Package>,
}

fn repos() -> Option<&'static Repos> {
    static REPOS: OnceLock<Option<Repos>> = OnceLock::new();
    REPOS
        .get_or_init(|| {
            let main = read_index(&v3_19_index("main"), 0)?;
            let community = read_index(&v3_19_index("community"), 1)?;
            let small = read_index(&shared().join("v3.19/main/x86_64/APKINDEX.tar.gz"), 0)?;
            let mut main_community = main.clone();
            main_community.extend(community);
            Some(Repos {
                main,
                main_community,
                small,
            })
        })
        .as_ref()
}

/// One line of `requests.txt`.
struct Request {
    label: String,
    repos: String,
    words: Vec<String>,
}

fn requests() -> Vec<Request> {
    let text = std::fs::read_to_string(manifest_dir().join("fixtures/resolve/requests.txt"))
        .expect("requests.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace().map(str::to_owned);
            let label = words.next().expect("label");
            let repos = words.next().expect("repos");
            Request {
                label,
                repos,
                words: words.collect(),
            }
        })
        .collect()
}

/// apk's outcome: the install order, or `None` when apk refused.
fn expected(label: &str) -> Option<Vec<String>> {
    let path = manifest_dir().join(format!("fixtures/resolve/expected/{label}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if text.starts_with("ERROR") {
        return None;
    }
    Some(text.lines().map(str::to_owned).collect())
}

/// The world and options of a request.
fn world_and_options(req: &Request) -> (Vec<Dependency>, ResolveOptions) {
    let world: Vec<Dependency> = req
        .words
        .iter()
        .map(|w| Dependency::parse(w).expect("request parses"))
        .collect();
    let repo_tags = match req.repos.as_str() {
        "main,@community" => vec![None, Some("community".to_owned())],
        _ => vec![],
    };
    let opts = ResolveOptions {
        arch: Some("x86_64".to_owned()),
        repo_tags,
    };
    (world, opts)
}

/// The same indexes checked and read in place, as a build reads them.
struct Views {
    main: ParsedIndex,
    community: ParsedIndex,
    small: ParsedIndex,
}

fn views() -> Option<&'static Views> {
    static VIEWS: OnceLock<Option<Views>> = OnceLock::new();
    VIEWS
        .get_or_init(|| {
            let read = |path: &Path| {
                let text = apkindex_text_or_skip(path)?;
                Some(ParsedIndex::parse(text).expect("index parses"))
            };
            Some(Views {
                main: read(&v3_19_index("main"))?,
                community: read(&v3_19_index("community"))?,
                small: read(&shared().join("v3.19/main/x86_64/APKINDEX.tar.gz"))?,
            })
        })
        .as_ref()
}

fn ours_in_place(views: &Views, req: &Request) -> Result<Plan, ResolveError> {
    let sources: Vec<(&ParsedIndex, usize)> = match req.repos.as_str() {
        "main" => vec![(&views.main, 0)],
        "main,community" | "main,@community" => vec![(&views.main, 0), (&views.community, 1)],
        "small" => vec![(&views.small, 0)],
        other => panic!("unknown repos {other}"),
    };
    let (world, opts) = world_and_options(req);
    resolve_indexes(&sources, &world, &opts)
}

fn ours(repos: &Repos, req: &Request) -> Result<Vec<String>, ResolveError> {
    let (packages, repo_tags) = match req.repos.as_str() {
        "main" => (&repos.main, vec![]),
        "main,community" => (&repos.main_community, vec![]),
        // community as `@community /idx/v3.19/community` in the repositories file
        "main,@community" => (
            &repos.main_community,
            vec![None, Some("community".to_owned())],
        ),
        "small" => (&repos.small, vec![]),
        other => panic!("unknown repos {other}"),
    };
    let world: Vec<Dependency> = req
        .words
        .iter()
        .map(|w| Dependency::parse(w).expect("request parses"))
        .collect();
    let opts = ResolveOptions {
        arch: Some("x86_64".to_owned()),
        repo_tags,
    };
    resolve(packages, &world, &opts).map(|plan| lines(&plan))
}

/// Compares one request; `Err` describes the first difference.
fn compare(repos: &Repos, req: &Request) -> Result<(), String> {
    match (expected(&req.label), ours(repos, req)) {
        (Some(want), Ok(got)) if want == got => Ok(()),
        (None, Err(_)) => Ok(()),
        (Some(want), Ok(got)) => {
            let at = want
                .iter()
                .zip(&got)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(got.len()));
            Err(format!(
                "{}: apk installs {} packages, we plan {}; first difference at #{at}: apk {:?}, ours {:?}",
                req.label,
                want.len(),
                got.len(),
                want.get(at),
                got.get(at)
            ))
        }
        (Some(_), Err(e)) => Err(format!("{}: apk succeeds, we fail: {e}", req.label)),
        (None, Ok(got)) => Err(format!("{}: apk refuses, we plan {got:?}", req.label)),
    }
}

fn check(label: &str, count: usize) {
    let Some(repos) = repos() else { return };
    let req = requests()
        .into_iter()
        .find(|r| r.label == label)
        .unwrap_or_else(|| panic!("{label} not in requests.txt"));
    assert_eq!(
        expected(label).map(|e| e.len()),
        Some(count),
        "fixture of {label}"
    );
    if let Err(e) = compare(repos, &req) {
        panic!("{e}");
    }
}

#[test]
fn alpine_base_from_the_small_repository_matches_apk() {
    check("small-alpine-base", 25);
}

#[test]
fn alpine_base_from_main_matches_apk() {
    check("alpine-base", 25);
}

#[test]
fn gcc_matches_apk() {
    check("gcc", 14);
}

#[test]
fn build_base_matches_apk() {
    check("build-base", 24);
}

#[test]
fn gnome_from_main_and_community_matches_apk() {
    check("gnome", 518);
}

#[test]
fn every_recorded_request_matches_apk() {
    let Some(repos) = repos() else { return };
    let all = requests();
    let failures: Vec<String> = all.iter().filter_map(|r| compare(repos, r).err()).collect();
    eprintln!(
        "{} of {} recorded requests match apk",
        all.len() - failures.len(),
        all.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A build resolves over the indexes read in place and makes packages only of what it
/// plans: every request gives the very plan (every field of every package) or the very
/// error that resolving over fully parsed packages gives.
#[test]
fn every_recorded_request_plans_the_same_from_indexes_read_in_place() {
    let (Some(repos), Some(views)) = (repos(), views()) else {
        return;
    };
    let all = requests();
    assert!(all.len() > 20);
    for req in &all {
        let (world, opts) = world_and_options(req);
        let packages = match req.repos.as_str() {
            "main" => &repos.main,
            "small" => &repos.small,
            _ => &repos.main_community,
        };
        let owned = resolve(packages, &world, &opts);
        let in_place = ours_in_place(views, req);
        match (owned, in_place) {
            (Ok(a), Ok(b)) => assert!(a == b, "{}: the plans differ", req.label),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{}", req.label),
            (a, b) => panic!("{}: {:?} against {:?}", req.label, a.is_ok(), b.is_ok()),
        }
    }
}

#[test]
fn refused_request_names_the_culprit() {
    let Some(repos) = repos() else { return };
    let req = Request {
        label: "busybox-pin-missing".to_owned(),
        repos: "main".to_owned(),
        words: vec!["busybox=1.36.1-r15".to_owned()],
    };
    let err = ours(repos, &req)
        .expect_err("no such busybox version")
        .to_string();
    assert!(err.contains("busybox-1.36.1-r19"), "{err}");
    assert!(err.contains("world[busybox=1.36.1-r15]"), "{err}");
}

/// `expected/bulk-<which>.txt.gz` (from `gen-bulk.sh`): one request per line, against the
/// repositories `repos_of`. An unoptimised build checks every `debug_every`-th request
/// only (thousands of resolutions take minutes there); a release build checks all.
/// Skipped (with the reason) when the shared indexes are absent.
fn bulk(which: &str, repos_of: &str, debug_every: usize) {
    let Some(repos) = repos() else { return };
    let every = if cfg!(debug_assertions) {
        debug_every
    } else {
        1
    };
    let path = manifest_dir().join(format!("fixtures/resolve/expected/bulk-{which}.txt.gz"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut failures = Vec::new();
    let mut total = 0;
    for line in text.lines().step_by(every) {
        let (name, want) = line.split_once('\t').expect("REQUEST<TAB>PLAN");
        total += 1;
        let req = Request {
            label: format!("bulk {name}"),
            repos: repos_of.to_owned(),
            words: name.split(' ').map(str::to_owned).collect(),
        };
        let got = ours(repos, &req);
        let ok = match (want, &got) {
            ("ERROR", Err(_)) => true,
            ("ERROR", Ok(_)) | (_, Err(_)) => false,
            (want, Ok(got)) => want.split(' ').eq(got.iter().map(String::as_str)),
        };
        if !ok {
            failures.push(format!("{name}: apk {want}\n  ours {got:?}"));
        }
    }
    eprintln!(
        "{} of {total} requests of bulk-{which} match apk (checked one in {every})",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_main_package_alone_matches_apk() {
    bulk("main", "main", 25);
}

#[test]
fn random_four_package_requests_match_apk() {
    bulk("main-combos", "main", 5);
}

#[test]
fn every_tenth_community_package_alone_matches_apk() {
    bulk("main-community", "main,community", 10);
}

#[test]
fn random_four_community_package_requests_match_apk() {
    bulk("community-combos", "main,community", 5);
}
