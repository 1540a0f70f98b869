//! Loading repository indexes: local and HTTP, trusted and not, cached and revalidated.

use crate::support;

use std::path::Path;
use support::http::{Fault, TestServer};
use support::*;
use sysroot_mk::archive::SignatureAlgorithm;
use sysroot_mk::report::Silent;
use sysroot_mk::repository::{
    load_indexes, IndexOptions, LoadedIndex, Repository, RepositoryError,
};
use sysroot_mk::trust::{KeySource, Keyring};

fn packages() -> Vec<FixturePackage> {
    vec![
        FixturePackage::new("alpha", "1.0-r0", b"alpha"),
        FixturePackage::new("beta", "2.1_rc1-r3", b"beta"),
    ]
}

fn repo(path: &Path) -> Repository {
    Repository::parse(path.to_str().unwrap()).unwrap()
}

/// Lays [`packages`] out at `root/x86_64`, signed by `signer`.
fn write_fixture_repo(root: &Path, signer: Signer<'_>) {
    write_repo(root, "x86_64", &packages(), signer);
}

/// A new folder serving the fixture repository (SHA-1 signed by the test key) at `below`.
fn served_fixture_repo(below: &str) -> (tempfile::TempDir, TestServer) {
    let served = tempfile::tempdir().unwrap();
    write_fixture_repo(
        &served.path().join(below),
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha1),
    );
    let server = TestServer::serve(served.path());
    (served, server)
}

/// Loads `repos` for `arch` with the default options, trusting only the keys in `keys`.
fn load_trusting(
    repos: &[Repository],
    arch: &str,
    keys: &Path,
) -> Result<Vec<LoadedIndex>, RepositoryError> {
    load_indexes(
        repos,
        arch,
        &keyring_of(&[keys], arch),
        &quick_index_options(),
        &Silent,
    )
}

/// Loads `repos` for x86_64 trusting only the fixture test key.
fn load_trusting_test_key(repos: &[Repository]) -> Result<Vec<LoadedIndex>, RepositoryError> {
    let keys = keys_dir(&[TEST_KEY]);
    load_trusting(repos, "x86_64", keys.path())
}

#[test]
fn trusted_local_index_loads_with_its_key() {
    let root = tempfile::tempdir().unwrap();
    write_fixture_repo(root.path(), Signer::Key(TEST_KEY, SignatureAlgorithm::Sha1));
    let keys = keys_dir(&[TEST_KEY]);
    let file_url = Repository::parse(&format!("file://{}", root.path().display())).unwrap();
    for r in [repo(root.path()), file_url] {
        let loaded = load_trusting(&[r], "x86_64", keys.path()).unwrap();
        assert_eq!(loaded.len(), 1);
        let index = &loaded[0];
        assert_eq!(index.description, "fixture repository");
        let names: Vec<_> = index.packages().iter().map(|p| p.name_version()).collect();
        assert_eq!(names, ["alpha-1.0-r0", "beta-2.1_rc1-r3"]);
        let key = index.key.as_ref().unwrap();
        assert_eq!(key.name, TEST_KEY);
        assert_eq!(key.pem, std::fs::read(keys.path().join(TEST_KEY)).unwrap());
    }
}

#[test]
fn repositories_keep_their_order_and_positions() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let signer = Signer::Key(TEST_KEY, SignatureAlgorithm::Sha256);
    write_repo(a.path(), "aarch64", &packages()[..1], signer);
    write_repo(b.path(), "aarch64", &packages()[1..], signer);
    let keys = keys_dir(&[TEST_KEY]);
    let loaded = load_trusting(&[repo(b.path()), repo(a.path())], "aarch64", keys.path()).unwrap();
    assert_eq!(loaded[0].packages()[0].name, "beta");
    assert_eq!(loaded[0].packages()[0].repo, 0);
    assert_eq!(loaded[1].packages()[0].name, "alpha");
    assert_eq!(loaded[1].packages()[0].repo, 1);
}

#[test]
fn untrusted_index_is_refused_naming_repository_key_and_fix() {
    let root = tempfile::tempdir().unwrap();
    write_fixture_repo(
        root.path(),
        Signer::Key(OTHER_KEY, SignatureAlgorithm::Sha256),
    );
    let err = load_trusting_test_key(&[repo(root.path())]).unwrap_err();
    assert!(matches!(err, RepositoryError::UntrustedKey { .. }), "{err}");
    let message = err.to_string();
    let url = format!("{}/x86_64/APKINDEX.tar.gz", root.path().display());
    for needle in [url.as_str(), OTHER_KEY] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
    // The fix is the error's hint, shown on its own line.
    let Some(sysroot_mk::report::Hint::Fix(fix)) = sysroot_mk::report::Hinted::hint(&err) else {
        panic!("no hint for: {message}");
    };
    for needle in [OTHER_KEY, "--keys-dir", "--allow-untrusted"] {
        assert!(fix.contains(needle), "{needle} missing from: {fix}");
    }
}

#[test]
fn untrusted_and_unsigned_indexes_load_with_a_warning_when_allowed() {
    let keys = keys_dir(&[TEST_KEY]);
    for signer in [
        Signer::Unsigned,
        Signer::Key(OTHER_KEY, SignatureAlgorithm::Sha1),
    ] {
        let root = tempfile::tempdir().unwrap();
        write_fixture_repo(root.path(), signer);
        let ring = keyring_of(&[keys.path()], "x86_64");
        let refused = load_indexes(
            &[repo(root.path())],
            "x86_64",
            &ring,
            &quick_index_options(),
            &Silent,
        );
        assert!(refused.is_err(), "{signer:?}");
        let recorder = Recorder::default();
        let allowed = IndexOptions {
            allow_untrusted: true,
            ..quick_index_options()
        };
        let loaded =
            load_indexes(&[repo(root.path())], "x86_64", &ring, &allowed, &recorder).unwrap();
        assert!(loaded[0].key.is_none());
        assert_eq!(loaded[0].packages().len(), 2);
        let warnings = recorder.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("--allow-untrusted"), "{warnings:?}");
        assert!(
            warnings[0].contains(&root.path().display().to_string()),
            "{warnings:?}"
        );
    }
}

#[test]
fn unsigned_index_error_says_so() {
    let root = tempfile::tempdir().unwrap();
    write_fixture_repo(root.path(), Signer::Unsigned);
    let err = load_trusting_test_key(&[repo(root.path())]).unwrap_err();
    assert!(matches!(err, RepositoryError::Unsigned { .. }), "{err}");
    assert!(err.to_string().contains("not signed"), "{err}");
}

#[test]
fn tampered_index_is_refused() {
    let root = tempfile::tempdir().unwrap();
    write_fixture_repo(
        root.path(),
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha256),
    );
    // Re-sign a different index body under the same signature member.
    let index = root.path().join("x86_64/APKINDEX.tar.gz");
    let good = std::fs::read(&index).unwrap();
    let sig_len = sysroot_mk::archive::first_member_len(&good).unwrap();
    let other = index_archive("P:evil\nV:6.6.6-r0\n\n", Signer::Unsigned);
    std::fs::write(&index, [&good[..sig_len], &other[..]].concat()).unwrap();
    let err = load_trusting_test_key(&[repo(root.path())]).unwrap_err();
    assert!(matches!(err, RepositoryError::BadSignature { .. }), "{err}");
}

#[test]
fn missing_index_names_the_repository() {
    let root = tempfile::tempdir().unwrap();
    let err = load_trusting_test_key(&[repo(root.path())]).unwrap_err();
    assert!(matches!(err, RepositoryError::Fetch { .. }), "{err}");
    assert!(
        err.to_string().contains(&root.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn http_index_is_cached_and_revalidated_with_its_etag() {
    let (served, server) = served_fixture_repo("main");
    let cache = tempfile::tempdir().unwrap();
    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let opts = IndexOptions {
        cache_dir: Some(cache.path().join("c")),
        ..quick_index_options()
    };
    let repos = [Repository::parse(&format!("{}/main", server.base)).unwrap()];
    let first = load_indexes(&repos, "x86_64", &ring, &opts, &Silent).unwrap();
    let recorder = Recorder::default();
    let second = load_indexes(&repos, "x86_64", &ring, &opts, &recorder).unwrap();
    assert_eq!(first[0].packages(), second[0].packages());
    let path = "/main/x86_64/APKINDEX.tar.gz";
    let log = server.requests(path);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].status, 200);
    assert!(log[1].if_none_match.is_some(), "{log:?}");
    assert_eq!(log[1].status, 304);
    assert!(cache.path().join("c/CACHEDIR.TAG").is_file());
    let infos = recorder.infos.lock().unwrap().join("\n");
    assert!(infos.contains("not modified"), "{infos}");

    // A changed index is fetched again and replaces the cached copy.
    write_repo(
        &served.path().join("main"),
        "x86_64",
        &packages()[..1],
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha1),
    );
    let third = load_indexes(&repos, "x86_64", &ring, &opts, &Silent).unwrap();
    assert_eq!(third[0].packages().len(), 1);
    assert_eq!(server.requests(path)[2].status, 200);
}

#[test]
fn without_a_cache_nothing_is_revalidated_or_written() {
    let (_served, server) = served_fixture_repo("");
    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let repos = [Repository::parse(&server.base).unwrap()];
    for _ in 0..2 {
        load_indexes(&repos, "x86_64", &ring, &quick_index_options(), &Silent).unwrap();
    }
    let log = server.requests("/x86_64/APKINDEX.tar.gz");
    assert!(
        log.iter()
            .all(|l| l.status == 200 && l.if_none_match.is_none()),
        "{log:?}"
    );
}

#[test]
fn transient_http_errors_are_retried() {
    let (_served, server) = served_fixture_repo("");
    let path = "/x86_64/APKINDEX.tar.gz";
    server.fail(
        path,
        &[Fault::Status(503), Fault::Truncate(100), Fault::Status(502)],
    );
    let repos = [Repository::parse(&server.base).unwrap()];
    let loaded = load_trusting_test_key(&repos).unwrap();
    assert_eq!(loaded[0].packages().len(), 2);
    let statuses: Vec<_> = server.requests(path).iter().map(|l| l.status).collect();
    assert_eq!(statuses, [503, 200, 502, 200]);
}

#[test]
fn permanent_http_errors_are_not_retried() {
    let served = tempfile::tempdir().unwrap();
    let server = TestServer::serve(served.path());
    let repos = [Repository::parse(&format!("{}/nothing", server.base)).unwrap()];
    let err = load_trusting_test_key(&repos).unwrap_err();
    assert!(err.to_string().contains("/nothing"), "{err}");
    assert_eq!(server.log().len(), 1);
}

#[test]
fn pinned_key_is_fetched_by_name_and_checked_against_its_pin() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let repos = [repo(&shared.join("v3.19/main"))];
    let ring = Keyring::new("x86_64");
    let cache = tempfile::tempdir().unwrap();
    let opts = IndexOptions {
        key_url: Some(format!("file://{}", shared.join("keys").display())),
        cache_dir: Some(cache.path().to_path_buf()),
        ..quick_index_options()
    };
    let loaded = load_indexes(&repos, "x86_64", &ring, &opts, &Silent).unwrap();
    let key = loaded[0].key.as_ref().unwrap();
    assert_eq!(key.name, ALPINE_X86_64_KEY);
    assert!(matches!(key.source, KeySource::Pinned(ref u) if u.starts_with("file://")));

    // A key server handing out another key under the official name is not believed.
    let fake = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_keys().join(TEST_KEY),
        fake.path().join(ALPINE_X86_64_KEY),
    )
    .unwrap();
    let opts = IndexOptions {
        key_url: Some(format!("file://{}", fake.path().display())),
        ..quick_index_options()
    };
    let err = load_indexes(&repos, "x86_64", &ring, &opts, &Silent).unwrap_err();
    assert!(matches!(err, RepositoryError::Key { .. }), "{err}");
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("pinned"), "{chain}");

    // An unreachable key source: refused, and a warning says why.
    let recorder = Recorder::default();
    let opts = IndexOptions {
        key_url: Some("file:///nonexistent-sysroot-mk-keys".to_string()),
        ..quick_index_options()
    };
    let err = load_indexes(&repos, "x86_64", &ring, &opts, &recorder).unwrap_err();
    assert!(matches!(err, RepositoryError::UntrustedKey { .. }), "{err}");
    let warnings = recorder.warnings();
    assert!(
        warnings.len() == 1 && warnings[0].contains("nonexistent-sysroot-mk-keys"),
        "{warnings:?}"
    );

    // With `--keys-dir`, keys are never fetched.
    let empty = tempfile::tempdir().unwrap();
    let opts = IndexOptions {
        key_url: Some(format!("file://{}", shared.join("keys").display())),
        ..quick_index_options()
    };
    let err = load_indexes(
        &repos,
        "x86_64",
        &keyring_of(&[empty.path()], "x86_64"),
        &opts,
        &Silent,
    )
    .unwrap_err();
    assert!(matches!(err, RepositoryError::UntrustedKey { .. }), "{err}");
}

#[test]
fn real_repositories_load_with_their_arch_keys() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let loaded = load_trusting(
        &[repo(&shared.join("v3.19/main"))],
        "x86_64",
        &shared.join("keys/x86_64"),
    )
    .unwrap();
    assert_eq!(loaded[0].packages().len(), 100);
    assert_eq!(loaded[0].key.as_ref().unwrap().name, ALPINE_X86_64_KEY);
    let loaded = load_trusting(
        &[repo(&shared.join("v3.13/main"))],
        "aarch64",
        &shared.join("keys/aarch64"),
    )
    .unwrap();
    assert_eq!(loaded[0].packages().len(), 65);
}

#[test]
fn real_repository_is_refused_with_wrong_arch_or_empty_keys() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let empty = tempfile::tempdir().unwrap();
    for dir in [shared.join("keys/aarch64"), empty.path().to_path_buf()] {
        let err = load_trusting(&[repo(&shared.join("v3.19/main"))], "x86_64", &dir).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(ALPINE_X86_64_KEY) && message.contains("v3.19/main"),
            "{message}"
        );
    }
}

#[test]
fn full_v3_19_indexes_load_as_two_repositories() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut repos = Vec::new();
    for name in ["main", "community"] {
        let dir = tmp.path().join(name).join("x86_64");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(
            shared.join(format!("indexes/v3.19-x86_64/{name}-APKINDEX.tar.gz")),
            dir.join("APKINDEX.tar.gz"),
        )
        .unwrap();
        repos.push(repo(&tmp.path().join(name)));
    }
    let ring = keyring_of(&[&shared.join("keys/x86_64")], "x86_64");
    let started = std::time::Instant::now();
    let loaded = load_indexes(&repos, "x86_64", &ring, &quick_index_options(), &Silent).unwrap();
    eprintln!(
        "loaded main+community in {:?} (debug build)",
        started.elapsed()
    );
    let counts: Vec<_> = loaded.iter().map(|l| l.packages().len()).collect();
    assert_eq!(counts, [5443, 17587]);
}

#[test]
fn allow_untrusted_never_fetches_keys() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let key_server = TestServer::serve(&shared.join("keys"));
    let opts = IndexOptions {
        key_url: Some(key_server.base.clone()),
        allow_untrusted: true,
        ..quick_index_options()
    };
    let repos = [repo(&shared.join("v3.19/main"))];
    let loaded = load_indexes(&repos, "x86_64", &Keyring::new("x86_64"), &opts, &Silent).unwrap();
    assert!(loaded[0].key.is_none());
    assert!(key_server.log().is_empty(), "{:?}", key_server.log());
}

#[test]
fn a_cached_index_serves_when_the_mirror_is_down() {
    let (_served, server) = served_fixture_repo("main");
    let repos = [Repository::parse(&format!("{}/main", server.base)).unwrap()];
    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let cache = tempfile::tempdir().unwrap();
    let opts = IndexOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..quick_index_options()
    };
    let first = load_indexes(&repos, "x86_64", &ring, &opts, &Silent).unwrap();
    drop(server);
    let recorder = Recorder::default();
    let again = load_indexes(&repos, "x86_64", &ring, &opts, &recorder).unwrap();
    assert_eq!(again[0].packages().len(), first[0].packages().len());
    let warnings = recorder.warnings();
    assert!(
        warnings.len() == 1 && warnings[0].contains("using the cached copy"),
        "{warnings:?}"
    );
}
