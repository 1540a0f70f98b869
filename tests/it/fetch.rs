//! Fetching planned packages: in place from local repositories, through the verified
//! content-addressed cache over HTTP, resumed, retried, and refused when damaged.

use crate::support;

use std::path::{Path, PathBuf};
use support::http::{Fault, TestServer};
use support::*;
use sysroot_mk::archive::SignatureAlgorithm;
use sysroot_mk::fetch::{
    cache_key, fetch_packages, FetchError, FetchOptions, FetchedPackage, Origin,
};
use sysroot_mk::index::Package;
use sysroot_mk::package::FileStamp;
use sysroot_mk::report::{Reporter, Silent};
use sysroot_mk::repository::{load_indexes, IndexOptions, Repository};
use sysroot_mk::trust::Keyring;

/// Three packages of different sizes, built once (signing is slow in debug builds).
fn fixtures() -> Vec<FixturePackage> {
    static BUILT: std::sync::OnceLock<Vec<FixturePackage>> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_fixtures).clone()
}

fn build_fixtures() -> Vec<FixturePackage> {
    vec![
        FixturePackage::new("small", "1.0-r0", b"s"),
        FixturePackage::new("large", "2.0-r1", &noise(300_000, 1)),
        FixturePackage::new("medium", "3.0-r0", &noise(20_000, 2)),
    ]
}

/// Writes the repository and loads its index (the packages as the resolver sees them).
fn repo_with(dir: &Path, packages: &[FixturePackage], url: &str) -> (Repository, Vec<Package>) {
    write_repo(
        dir,
        "x86_64",
        packages,
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha256),
    );
    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let repo = Repository::parse(url).unwrap();
    let packages = load_one(&repo, &ring, &quick_index_options());
    (repo, packages)
}

/// The packages of the one repository `repo`, as loaded for x86_64.
fn load_one(repo: &Repository, ring: &Keyring, options: &IndexOptions) -> Vec<Package> {
    load_indexes(std::slice::from_ref(repo), "x86_64", ring, options, &Silent)
        .unwrap()
        .remove(0)
        .packages()
}

fn options(cache: Option<&Path>) -> FetchOptions {
    FetchOptions {
        cache_dir: cache.map(Path::to_path_buf),
        transport: quick_transport(),
        ..FetchOptions::default()
    }
}

/// Fetches `packages` from the one repository `repo` for x86_64.
fn fetch(
    packages: &[Package],
    repo: &Repository,
    options: &FetchOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<FetchedPackage>, FetchError> {
    fetch_packages(
        packages,
        std::slice::from_ref(repo),
        "x86_64",
        options,
        reporter,
    )
}

/// Where the largest fixture package is served (the one big enough to cut short).
const LARGE: &str = "/x86_64/large-2.0-r1.apk";

/// The fixture repository served over HTTP, its index loaded.
struct Served {
    server: TestServer,
    dir: tempfile::TempDir,
    repo: Repository,
    packages: Vec<Package>,
}

fn served() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::serve(dir.path());
    let (repo, packages) = repo_with(dir.path(), &fixtures(), &server.base);
    Served {
        server,
        dir,
        repo,
        packages,
    }
}

impl Served {
    /// Fetches every package through the cache at `cache`.
    fn fetch_cached(
        &self,
        cache: &Path,
        reporter: &dyn Reporter,
    ) -> Result<Vec<FetchedPackage>, FetchError> {
        fetch(&self.packages, &self.repo, &options(Some(cache)), reporter)
    }

    /// The bytes of the largest package, as served.
    fn large_apk(&self) -> Vec<u8> {
        std::fs::read(self.file(&LARGE[1..])).unwrap()
    }

    /// A served file, by its path below the served folder.
    fn file(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }
}

/// The cache bucket packages land in, and the cache name of `package` in it.
fn bucket_and_key(cache: &Path, package: &Package) -> (PathBuf, String) {
    (
        cache.join("v1/packages"),
        cache_key(&package.checksum).unwrap(),
    )
}

/// Leaves `bytes` in `cache` as the partial download of `package` (as an interrupted run
/// would); returns the bucket and the package's cache name.
fn leave_partial(cache: &Path, package: &Package, bytes: &[u8]) -> (PathBuf, String) {
    let (bucket, key) = bucket_and_key(cache, package);
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::write(bucket.join(format!("{key}.partial")), bytes).unwrap();
    (bucket, key)
}

#[test]
fn local_packages_are_used_in_place_and_in_plan_order() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, packages) = repo_with(dir.path(), &fixtures(), dir.path().to_str().unwrap());
    let fetched = fetch(&packages, &repo, &options(None), &Silent).unwrap();
    let names: Vec<_> = fetched.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["small-1.0-r0", "large-2.0-r1", "medium-3.0-r0"]);
    for f in &fetched {
        assert_eq!(f.origin, Origin::LocalRepository);
        assert_eq!(
            f.path,
            dir.path().join("x86_64").join(format!("{}.apk", f.name))
        );
    }
}

#[test]
fn missing_local_package_names_package_repository_and_url() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, packages) = repo_with(dir.path(), &fixtures(), dir.path().to_str().unwrap());
    std::fs::remove_file(dir.path().join("x86_64/medium-3.0-r0.apk")).unwrap();
    let err = fetch(&packages, &repo, &options(None), &Silent).unwrap_err();
    assert!(matches!(err, FetchError::Missing { .. }), "{err}");
    let message = err.to_string();
    let url = format!("{}/x86_64/medium-3.0-r0.apk", dir.path().display());
    assert!(
        message.contains("`medium-3.0-r0`") && message.contains(&url),
        "{message}"
    );
}

#[test]
fn local_package_that_is_not_the_indexed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, packages) = repo_with(dir.path(), &fixtures(), dir.path().to_str().unwrap());
    let other = FixturePackage::new("small", "1.0-r0", b"different content");
    std::fs::write(dir.path().join("x86_64/small-1.0-r0.apk"), &other.bytes).unwrap();
    let err = fetch(&packages, &repo, &options(None), &Silent).unwrap_err();
    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains(&packages[0].checksum), "{err}");
}

#[test]
fn http_packages_land_in_the_cache_and_are_reused() {
    let s = served();
    let cache = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let first = s.fetch_cached(cache.path(), &recorder).unwrap();
    for (f, p) in first.iter().zip(&s.packages) {
        assert_eq!(f.origin, Origin::Downloaded);
        let (bucket, key) = bucket_and_key(cache.path(), p);
        assert_eq!(f.path, bucket.join(format!("{key}.apk")));
        assert_eq!(std::fs::metadata(&f.path).unwrap().len(), p.size);
        // Verified once: the stamp handed to the installer is the file's as it now is.
        let now = FileStamp::of(&std::fs::File::open(&f.path).unwrap()).unwrap();
        assert_eq!(f.verified, Some(now), "the installer would hash it again");
    }
    let total: u64 = s.packages.iter().map(|p| p.size).sum();
    assert_eq!(*recorder.bytes.lock().unwrap(), total);
    assert_eq!(recorder.finished.lock().unwrap().len(), 3);
    let leftovers: Vec<_> = std::fs::read_dir(cache.path().join("v1/packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".apk"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let requests = s.server.log().len();
    let second = s.fetch_cached(cache.path(), &Silent).unwrap();
    assert!(second.iter().all(|f| f.origin == Origin::Cache));
    assert_eq!(
        s.server.log().len(),
        requests,
        "a cache hit makes no request"
    );
}

#[test]
fn no_cache_neither_reads_nor_writes_the_cache() {
    let s = served();
    let cache = tempfile::tempdir().unwrap();
    s.fetch_cached(cache.path(), &Silent).unwrap();
    let before = s.server.log().len();
    let temp = tempfile::tempdir().unwrap();
    let opts = FetchOptions {
        temp_dir: Some(temp.path().to_path_buf()),
        ..options(None)
    };
    let fetched = fetch(&s.packages, &s.repo, &opts, &Silent).unwrap();
    assert_eq!(
        s.server.log().len(),
        before + 3,
        "every package is downloaded again"
    );
    for f in &fetched {
        assert_eq!(f.origin, Origin::Downloaded);
        assert!(f.path.starts_with(temp.path()) && f.path.is_file());
    }
    let folder = fetched[0].path.parent().unwrap().to_path_buf();
    drop(fetched);
    assert!(
        !folder.exists(),
        "the temporary folder goes with the last handle"
    );
}

#[test]
fn packages_are_fetched_largest_first() {
    let s = served();
    let opts = FetchOptions {
        jobs: 1,
        ..options(None)
    };
    fetch(&s.packages, &s.repo, &opts, &Silent).unwrap();
    let order: Vec<_> = s
        .server
        .log()
        .into_iter()
        .map(|l| l.path)
        .filter(|p| p.ends_with(".apk"))
        .collect();
    assert_eq!(
        order,
        [
            "/x86_64/large-2.0-r1.apk",
            "/x86_64/medium-3.0-r0.apk",
            "/x86_64/small-1.0-r0.apk"
        ]
    );
}

#[test]
fn truncated_download_is_resumed_with_a_range_request() {
    let s = served();
    s.server
        .fail(LARGE, &[Fault::Truncate(100_000), Fault::Status(503)]);
    let cache = tempfile::tempdir().unwrap();
    let fetched = s.fetch_cached(cache.path(), &Silent).unwrap();
    let log = s.server.requests(LARGE);
    let seen: Vec<_> = log.iter().map(|l| (l.status, l.range.clone())).collect();
    assert_eq!(
        seen,
        [
            (200, None),
            (503, Some("bytes=100000-".to_string())),
            (206, Some("bytes=100000-".to_string())),
        ]
    );
    assert_eq!(std::fs::read(&fetched[1].path).unwrap(), s.large_apk());
}

#[test]
fn partial_file_left_by_an_earlier_run_is_resumed() {
    let s = served();
    let cache = tempfile::tempdir().unwrap();
    let whole = s.large_apk();
    let (bucket, key) = leave_partial(cache.path(), &s.packages[1], &whole[..5000]);
    let recorder = Recorder::default();
    s.fetch_cached(cache.path(), &recorder).unwrap();
    let log = s.server.requests(LARGE);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].range.as_deref(), Some("bytes=5000-"));
    assert_eq!(
        std::fs::read(bucket.join(format!("{key}.apk"))).unwrap(),
        whole
    );
}

#[test]
fn server_ignoring_range_gets_the_whole_file_written_once() {
    let s = served();
    let cache = tempfile::tempdir().unwrap();
    let whole = s.large_apk();
    let (bucket, key) = leave_partial(cache.path(), &s.packages[1], &whole[..5000]);
    s.server.fail(LARGE, &[Fault::IgnoreRange]);
    s.fetch_cached(cache.path(), &Silent).unwrap();
    let log = s.server.requests(LARGE);
    assert_eq!((log.len(), log[0].status), (1, 200));
    assert_eq!(
        std::fs::read(bucket.join(format!("{key}.apk"))).unwrap(),
        whole
    );
}

#[test]
fn stale_partial_file_is_discarded_and_downloaded_again() {
    let s = served();
    let cache = tempfile::tempdir().unwrap();
    let (bucket, key) = leave_partial(cache.path(), &s.packages[1], &[0u8; 5000]);
    s.fetch_cached(cache.path(), &Silent).unwrap();
    let ranges: Vec<_> = s
        .server
        .requests(LARGE)
        .into_iter()
        .map(|l| l.range)
        .collect();
    assert_eq!(ranges, [Some("bytes=5000-".to_string()), None]);
    assert!(bucket.join(format!("{key}.apk")).is_file());
}

#[test]
fn damaged_download_never_enters_the_cache() {
    let s = served();
    // The server now hands out another package under the indexed name and size.
    let mut other = FixturePackage::new("medium", "3.0-r0", &noise(20_000, 4)).bytes;
    other.resize(s.packages[2].size as usize, 0);
    std::fs::write(s.file("x86_64/medium-3.0-r0.apk"), other).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = s.fetch_cached(cache.path(), &Silent).unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Checksum {
                discarded: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("`medium-3.0-r0`"), "{err}");
    let (bucket, key) = bucket_and_key(cache.path(), &s.packages[2]);
    assert!(!bucket.join(format!("{key}.apk")).exists());
    assert!(!bucket.join(format!("{key}.partial")).exists());
}

#[test]
fn package_missing_on_the_server_names_package_repository_and_url() {
    let s = served();
    std::fs::remove_file(s.file("x86_64/small-1.0-r0.apk")).unwrap();
    let err = fetch(&s.packages, &s.repo, &options(None), &Silent).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, FetchError::Missing { .. }), "{message}");
    let base = &s.server.base;
    let url = format!("{base}/x86_64/small-1.0-r0.apk");
    assert!(
        message.contains(&url) && message.contains("`small-1.0-r0`") && message.contains(base),
        "{message}"
    );
}

#[test]
fn real_packages_verify_against_their_index_locally_and_over_http() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    let ring = keyring_of(&[&shared.join("keys/x86_64")], "x86_64");
    let server = TestServer::serve(&shared);
    let index_options = IndexOptions {
        key_url: None,
        ..IndexOptions::default()
    };
    let cache = tempfile::tempdir().unwrap();
    for url in [
        shared.join("v3.19/main").display().to_string(),
        format!("{}/v3.19/main", server.base),
    ] {
        let repo = Repository::parse(&url).unwrap();
        let packages = load_one(&repo, &ring, &index_options);
        let started = std::time::Instant::now();
        let fetched = fetch(&packages, &repo, &options(Some(cache.path())), &Silent).unwrap();
        eprintln!(
            "{url}: {} packages in {:?}",
            fetched.len(),
            started.elapsed()
        );
        assert_eq!(fetched.len(), 100);
    }
}
