//! The parsed-index cache on the real v3.19 indexes: a warm run plans exactly what a cold
//! one does, a damaged entry is parsed around, and a warm entry never stands in for a
//! signature the keyring does not accept. Skipped when `../shared` is absent.

use crate::shared_data::v3_19_index;
use crate::support::{keyring_of, quick_index_options, shared_or_skip, Recorder};

use std::path::{Path, PathBuf};
use sysroot_mk::index::{Dependency, ParsedIndex};
use sysroot_mk::repository::{load_indexes, IndexOptions, LoadedIndex, Repository};
use sysroot_mk::resolve::{resolve_indexes, Plan, ResolveOptions};

const HIT: &str = "using the parsed form the cache holds";

/// main and community laid out as local repositories under `root`.
fn repositories(root: &Path) -> Vec<Repository> {
    ["main", "community"]
        .iter()
        .map(|name| {
            let dir = root.join(name).join("x86_64");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(v3_19_index(name), dir.join("APKINDEX.tar.gz")).unwrap();
            Repository::parse(&root.join(name).display().to_string()).unwrap()
        })
        .collect()
}

/// A temporary folder with main and community as local repositories and the path of
/// a cache folder in it (not made); `None` without `../shared`'s indexes.
fn main_and_community() -> Option<(tempfile::TempDir, Vec<Repository>, PathBuf)> {
    shared_or_skip()?;
    if !v3_19_index("community").exists() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repos = repositories(&tmp.path().join("repos"));
    let cache = tmp.path().join("cache");
    Some((tmp, repos, cache))
}

fn load(repos: &[Repository], cache: Option<&Path>, recorder: &Recorder) -> Vec<LoadedIndex> {
    try_load(repos, cache, recorder).unwrap()
}

/// [`load`] with the Alpine key, its error kept.
fn try_load(
    repos: &[Repository],
    cache: Option<&Path>,
    recorder: &Recorder,
) -> Result<Vec<LoadedIndex>, sysroot_mk::repository::RepositoryError> {
    let shared = shared_or_skip().unwrap();
    let ring = keyring_of(&[&shared.join("keys/x86_64")], "x86_64");
    let options = IndexOptions {
        cache_dir: cache.map(Path::to_path_buf),
        ..quick_index_options()
    };
    load_indexes(repos, "x86_64", &ring, &options, recorder)
}

fn plan(indexes: &[LoadedIndex], what: &str) -> Plan {
    let sources: Vec<(&ParsedIndex, usize)> = indexes.iter().map(|i| (&i.index, i.repo)).collect();
    let world = [Dependency::parse(what).unwrap()];
    let opts = ResolveOptions {
        arch: Some("x86_64".to_owned()),
        repo_tags: vec![],
    };
    resolve_indexes(&sources, &world, &opts).unwrap()
}

fn hits(recorder: &Recorder) -> usize {
    recorder.infos().iter().filter(|m| m.contains(HIT)).count()
}

fn parsed_entries(cache: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("v1/parsed"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn a_warm_run_plans_exactly_what_a_cold_run_does() {
    let Some((_tmp, repos, cache)) = main_and_community() else {
        return;
    };

    let cold = load(&repos, None, &Recorder::default());
    assert!(!cache.exists());
    let first = Recorder::default();
    let filling = load(&repos, Some(&cache), &first);
    assert_eq!(hits(&first), 0);
    assert_eq!(parsed_entries(&cache).len(), 2, "both indexes are kept");
    let second = Recorder::default();
    let warm = load(&repos, Some(&cache), &second);
    assert_eq!(hits(&second), 2, "{:?}", second.infos());

    for (c, w) in cold.iter().zip(filling.iter().chain(&warm)) {
        assert_eq!(c.index, w.index);
        assert_eq!(c.description, w.description);
    }
    for what in ["gnome", "gcc", "alpine-base"] {
        let want = plan(&cold, what);
        assert!(want.packages.len() > 10);
        assert_eq!(plan(&warm, what), want, "{what}");
    }
    // A warm run takes each index's name table and directory from the entry, not
    // from its text: packages across both indexes plan alike either way.
    let sample: Vec<String> = cold
        .iter()
        .flat_map(|i| i.packages().into_iter().step_by(61).map(|p| p.name))
        .collect();
    assert!(sample.len() > 300, "{}", sample.len());
    for what in &sample {
        let world = [Dependency::parse(what).unwrap()];
        let opts = ResolveOptions {
            arch: Some("x86_64".to_owned()),
            repo_tags: vec![],
        };
        let of = |l: &[LoadedIndex]| {
            let s: Vec<(&ParsedIndex, usize)> = l.iter().map(|i| (&i.index, i.repo)).collect();
            resolve_indexes(&s, &world, &opts).map(|p| p.packages)
        };
        assert_eq!(
            of(&warm).map_err(|e| e.to_string()),
            of(&cold).map_err(|e| e.to_string()),
            "{what}"
        );
    }
    assert_eq!(cold[0].packages(), warm[0].packages());
}

#[test]
fn a_damaged_parsed_entry_is_parsed_around() {
    let Some((_tmp, repos, cache)) = main_and_community() else {
        return;
    };
    let cold = load(&repos, None, &Recorder::default());
    load(&repos, Some(&cache), &Recorder::default());
    // One byte of each entry's text changed in place (same size): `P:gnome` becomes
    // `P:gnomf` where it occurs, or any byte past the header otherwise.
    for entry in parsed_entries(&cache) {
        let mut bytes = std::fs::read(&entry).unwrap();
        let at = bytes
            .windows(8)
            .position(|w| w == b"\nP:gnome")
            .map_or(4096, |i| i + 7);
        bytes[at] ^= 0x03;
        std::fs::remove_file(&entry).unwrap();
        std::fs::write(&entry, &bytes).unwrap();
    }
    let recorder = Recorder::default();
    let again = load(&repos, Some(&cache), &recorder);
    assert_eq!(hits(&recorder), 0, "a damaged entry was used");
    for (c, a) in cold.iter().zip(&again) {
        assert_eq!(c.index, a.index);
    }
    assert_eq!(plan(&again, "gnome"), plan(&cold, "gnome"));
    // The entries were written anew: the next run uses them.
    let recorder = Recorder::default();
    load(&repos, Some(&cache), &recorder);
    assert_eq!(hits(&recorder), 2);
}

#[test]
fn a_warm_entry_does_not_stand_in_for_the_signature() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    if !v3_19_index("community").exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repos = repositories(&tmp.path().join("repos"));
    let cache = tmp.path().join("cache");
    load(&repos, Some(&cache), &Recorder::default());
    assert_eq!(parsed_entries(&cache).len(), 2);
    // A keyring without the Alpine key: the warm cache changes nothing.
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(
        crate::support::fixture_keys().join(crate::support::TEST_KEY),
        other.path().join(crate::support::TEST_KEY),
    )
    .unwrap();
    let ring = keyring_of(&[other.path()], "x86_64");
    let options = IndexOptions {
        cache_dir: Some(cache.clone()),
        ..quick_index_options()
    };
    let Err(err) = load_indexes(&repos, "x86_64", &ring, &options, &Recorder::default()) else {
        panic!("an index signed by an untrusted key was accepted");
    };
    assert!(err.to_string().contains("alpine-devel"), "{err}");
    let _ = shared;
}

#[test]
fn a_changed_archive_is_refused_even_with_an_entry_under_its_own_digest() {
    use sha1::Digest;
    let Some((tmp, repos, cache)) = main_and_community() else {
        return;
    };
    load(&repos, Some(&cache), &Recorder::default());
    let archive = tmp.path().join("repos/community/x86_64/APKINDEX.tar.gz");
    let genuine = std::fs::read(&archive).unwrap();
    let rest_at = genuine.len()
        - sysroot_mk::archive::split_signature(&genuine)
            .unwrap()
            .rest
            .len();
    let name = |bytes: &[u8]| hex::encode(sha1::Sha1::digest(&bytes[rest_at..]));
    let entry = cache.join("v1/parsed").join(name(&genuine));
    assert!(
        entry.exists(),
        "the entry is named by the signed part's SHA-1"
    );
    // The last byte changed (the gzip trailer: no parse of the text would notice before
    // the signature), and the genuine entry planted under the changed bytes' name: a
    // warm run hashes the file as it reads it and must refuse it on its signature.
    let mut changed = genuine.clone();
    *changed.last_mut().unwrap() ^= 0x40;
    std::fs::write(&archive, &changed).unwrap();
    std::fs::copy(&entry, cache.join("v1/parsed").join(name(&changed))).unwrap();
    let Err(err) = try_load(&repos, Some(&cache), &Recorder::default()) else {
        panic!("a changed index was accepted through the cache");
    };
    assert!(
        matches!(
            err,
            sysroot_mk::repository::RepositoryError::BadSignature { .. }
        ),
        "{err}"
    );
    // Put back, the same run order loads both from the cache again.
    std::fs::write(&archive, &genuine).unwrap();
    let recorder = Recorder::default();
    load(&repos, Some(&cache), &recorder);
    assert_eq!(hits(&recorder), 2);
}

#[test]
fn a_sha256_signed_local_index_is_taken_warm_and_a_forged_signer_is_not() {
    use crate::support::{fixture_keys, index_archive, Signer, TEST_KEY};
    use sysroot_mk::archive::SignatureAlgorithm;
    // Large enough to be kept (small indexes parse faster than an entry is read).
    let text: String = (0..3000)
        .map(|i| {
            format!(
                "C:Q1{:0>26}E=\nP:p{i}\nV:1.{i}-r0\nA:x86_64\nS:1\nI:1\nD:p{}\nT:{}\n\n",
                i,
                (i + 1) % 3000,
                "x".repeat(60)
            )
        })
        .collect();
    assert!(text.len() > sysroot_mk::cache::PARSED_MIN_TEXT);
    for (signer, good) in [
        (Signer::Key(TEST_KEY, SignatureAlgorithm::Sha256), true),
        (Signer::Key(TEST_KEY, SignatureAlgorithm::Sha1), true),
        // Made with another fixture key's private half, naming the trusted one.
        (Signer::Posing(crate::support::OTHER_KEY, TEST_KEY), false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo/x86_64");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("APKINDEX.tar.gz"), index_archive(&text, signer)).unwrap();
        let repos = [Repository::parse(&tmp.path().join("repo").display().to_string()).unwrap()];
        let ring = keyring_of(&[&fixture_keys()], "x86_64");
        let options = IndexOptions {
            cache_dir: Some(tmp.path().join("cache")),
            ..quick_index_options()
        };
        let run = |recorder: &Recorder| load_indexes(&repos, "x86_64", &ring, &options, recorder);
        let cold = Recorder::default();
        let first = run(&cold);
        if !good {
            assert!(first.is_err(), "{signer:?} was accepted");
            // Not kept, and the next run (the warm path first) refuses it too.
            assert!(parsed_entries(&tmp.path().join("cache")).is_empty());
            assert!(run(&Recorder::default()).is_err());
            continue;
        }
        let first = first.unwrap();
        assert_eq!(hits(&cold), 0);
        let warm = Recorder::default();
        let second = run(&warm).unwrap();
        assert_eq!(hits(&warm), 1, "{signer:?}: {:?}", warm.infos());
        assert_eq!(first[0].index, second[0].index);
        assert_eq!(plan(&second, "p7"), plan(&first, "p7"));
    }
}
