//! Faults of a mirror and of the cache directory: transient ones are survived, a stall
//! fails within 30 s, one corrupt byte never reaches the cache, and a cache directory
//! with planted symlinks changes no file outside it.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::http::{Fault, TestServer};
use support::*;
use sysroot_mk::archive::SignatureAlgorithm;
use sysroot_mk::fetch::{
    cache_key, fetch_packages, FetchError, FetchOptions, FetchedPackage, Origin,
};
use sysroot_mk::index::Package;
use sysroot_mk::report::Silent;
use sysroot_mk::repository::{load_indexes, Repository};
use sysroot_mk::transport::{Transport, TransportError, TransportOptions};

const LARGE: &str = "/x86_64/large-2.0-r1.apk";
const MEDIUM: &str = "/x86_64/medium-3.0-r0.apk";
const SMALL: &str = "/x86_64/small-1.0-r0.apk";

fn fixtures() -> Vec<FixturePackage> {
    static BUILT: std::sync::OnceLock<Vec<FixturePackage>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            vec![
                FixturePackage::new("small", "1.0-r0", b"s"),
                FixturePackage::new("large", "2.0-r1", &noise(300_000, 1)),
                FixturePackage::new("medium", "3.0-r0", &noise(20_000, 2)),
            ]
        })
        .clone()
}

struct Served {
    server: TestServer,
    dir: tempfile::TempDir,
    repo: Repository,
    packages: Vec<Package>,
}

fn served() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::serve(dir.path());
    write_repo(
        dir.path(),
        "x86_64",
        &fixtures(),
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha256),
    );
    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let repo = Repository::parse(&server.base).unwrap();
    let packages = load_indexes(
        std::slice::from_ref(&repo),
        "x86_64",
        &ring,
        &quick_index_options(),
        &Silent,
    )
    .unwrap()
    .remove(0)
    .packages();
    Served {
        server,
        dir,
        repo,
        packages,
    }
}

impl Served {
    fn fetch_with(
        &self,
        cache: &Path,
        transport: TransportOptions,
    ) -> Result<Vec<FetchedPackage>, FetchError> {
        let options = FetchOptions {
            cache_dir: Some(cache.to_path_buf()),
            transport,
            ..FetchOptions::default()
        };
        fetch_packages(
            &self.packages,
            std::slice::from_ref(&self.repo),
            "x86_64",
            &options,
            &Silent,
        )
    }

    fn fetch(&self, cache: &Path) -> Result<Vec<FetchedPackage>, FetchError> {
        self.fetch_with(cache, quick_transport())
    }

    fn served_bytes(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(&path[1..])).unwrap()
    }

    /// Every fetched file equals what the server holds.
    fn assert_all_clean(&self, fetched: &[FetchedPackage]) {
        for (file, path) in fetched.iter().zip([SMALL, LARGE, MEDIUM]) {
            assert_eq!(
                std::fs::read(&file.path).unwrap(),
                self.served_bytes(path),
                "{path}"
            );
        }
    }
}

fn entry_of(cache: &Path, package: &Package) -> PathBuf {
    cache
        .join("v1/packages")
        .join(format!("{}.apk", cache_key(&package.checksum).unwrap()))
}

/// A snapshot of every file below `dir`: path and contents.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn resets_short_bodies_and_503s_are_survived() {
    let s = served();
    s.server
        .fail(LARGE, &[Fault::Reset(1000), Fault::Truncate(50_000)]);
    s.server.fail(MEDIUM, &[Fault::Status(503)]);
    s.server.fail(SMALL, &[Fault::Reset(0)]);
    let cache = tempfile::tempdir().unwrap();
    let fetched = s.fetch(cache.path()).unwrap();
    s.assert_all_clean(&fetched);
    let ranges: Vec<_> = s
        .server
        .requests(LARGE)
        .into_iter()
        .map(|l| l.range)
        .collect();
    assert_eq!(ranges[0], None);
    assert!(
        ranges[1..].iter().all(|r| r.is_some()),
        "retries resume with Range: {ranges:?}"
    );
}

#[test]
fn a_byte_corrupted_once_is_fetched_again_and_the_cache_stays_clean() {
    let s = served();
    // The last byte belongs to the data member: the control member still matches `C:`.
    s.server.fail(LARGE, &[Fault::CorruptFromEnd(1)]);
    let cache = tempfile::tempdir().unwrap();
    let fetched = s.fetch(cache.path()).unwrap();
    s.assert_all_clean(&fetched);
    assert_eq!(s.server.requests(LARGE).len(), 2);
    // The next build with the same cache equals a clean one, without any request.
    let again = s.fetch(cache.path()).unwrap();
    assert!(again.iter().all(|f| f.origin == Origin::Cache));
    s.assert_all_clean(&again);
    assert_eq!(s.server.requests(LARGE).len(), 2);
}

#[test]
fn a_corrupt_cache_entry_is_removed_and_fetched_once_more() {
    let s = served();
    let cache = tempfile::tempdir().unwrap();
    s.fetch(cache.path()).unwrap();
    let entry = entry_of(cache.path(), &s.packages[1]);
    let mut bytes = std::fs::read(&entry).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&entry, bytes).unwrap();
    let fetched = s.fetch(cache.path()).unwrap();
    assert_eq!(fetched[1].origin, Origin::Downloaded);
    s.assert_all_clean(&fetched);
}

#[test]
fn a_stalled_server_fails_within_30_seconds() {
    let s = served();
    s.server.fail(LARGE, &[Fault::Stall(100); 6]);
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = s
        .fetch_with(
            cache.path(),
            TransportOptions {
                backoff: Duration::from_millis(1),
                ..TransportOptions::default()
            },
        )
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("stall detected after {took:?}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(
        matches!(
            err,
            FetchError::Download {
                source: TransportError::Stalled { .. },
                ..
            }
        ),
        "{err}"
    );
    let ranges: Vec<_> = s
        .server
        .requests(LARGE)
        .into_iter()
        .map(|l| l.range)
        .collect();
    assert_eq!(ranges, [None, Some("bytes=100-".to_string())]);
}

#[test]
fn no_retry_starts_past_the_deadline() {
    let s = served();
    s.server.fail(LARGE, &[Fault::Status(503)]);
    let cache = tempfile::tempdir().unwrap();
    let err = s
        .fetch_with(
            cache.path(),
            TransportOptions {
                backoff: Duration::from_millis(500),
                deadline: Duration::from_millis(100),
                ..TransportOptions::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Download {
                source: TransportError::Deadline { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s.server.requests(LARGE).len(), 1);
}

#[test]
fn a_refused_host_is_tried_once_and_then_not_again() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A retry would first wait 10 s: far beyond what building the client (it loads the
    // system's CA store) can take on a loaded machine, so the bound below tells them apart.
    let transport = Transport::new(TransportOptions {
        backoff: Duration::from_secs(10),
        ..TransportOptions::default()
    });
    let started = Instant::now();
    let first = transport
        .read(&format!("http://127.0.0.1:{port}/a"), 100)
        .unwrap_err();
    assert!(
        matches!(first, TransportError::Unreachable { .. }),
        "{first}"
    );
    let second = transport
        .read(&format!("http://127.0.0.1:{port}/b"), 100)
        .unwrap_err();
    assert!(
        matches!(second, TransportError::HostDown { .. }),
        "{second}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_planted_partial_symlink_changes_nothing_outside_the_cache() {
    let s = served();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"do not touch").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let bucket = cache.path().join("v1/packages");
    std::fs::create_dir_all(&bucket).unwrap();
    for p in &s.packages {
        let key = cache_key(&p.checksum).unwrap();
        std::os::unix::fs::symlink(&victim, bucket.join(format!("{key}.partial"))).unwrap();
    }
    let before = snapshot(outside.path());
    let fetched = s.fetch(cache.path()).unwrap();
    s.assert_all_clean(&fetched);
    assert_eq!(snapshot(outside.path()), before);
}

#[test]
fn a_planted_entry_symlink_is_not_read_or_written_through() {
    let s = served();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, s.served_bytes(LARGE)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cache.path().join("v1/packages")).unwrap();
    let entry = entry_of(cache.path(), &s.packages[1]);
    std::os::unix::fs::symlink(&victim, &entry).unwrap();
    let before = snapshot(outside.path());
    let fetched = s.fetch(cache.path()).unwrap();
    assert_eq!(
        fetched[1].origin,
        Origin::Downloaded,
        "a symlink is no cache hit"
    );
    assert!(!std::fs::symlink_metadata(&entry)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(snapshot(outside.path()), before);
}

#[test]
fn a_symlinked_bucket_is_refused_and_nothing_outside_changes() {
    let s = served();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"x").unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir(cache.path().join("v1")).unwrap();
    std::os::unix::fs::symlink(outside.path(), cache.path().join("v1/packages")).unwrap();
    let before = snapshot(outside.path());
    let err = s.fetch(cache.path()).unwrap_err();
    assert!(matches!(err, FetchError::Cache(_)), "{err}");
    assert_eq!(snapshot(outside.path()), before);
}

#[test]
fn a_cache_owned_by_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to hand the cache to another user");
        return;
    }
    let s = served();
    let cache = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(cache.path(), Some(65534), Some(65534)).unwrap();
    let err = s.fetch(cache.path()).unwrap_err();
    assert!(matches!(err, FetchError::Cache(_)), "{err}");
    let chain = format!("{:?}", err);
    assert!(chain.contains("owned by uid 65534"), "{chain}");
}

#[test]
fn two_fetches_sharing_one_cache_at_once_both_succeed() {
    let s = served();
    let cache = tempfile::tempdir().unwrap();
    // Slow the first responses down a little so the two runs overlap.
    s.server.fail(LARGE, &[Fault::Truncate(100_000)]);
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| s.fetch(cache.path()));
        let b = scope.spawn(|| s.fetch(cache.path()));
        (a.join().unwrap(), b.join().unwrap())
    });
    s.assert_all_clean(&a.unwrap());
    s.assert_all_clean(&b.unwrap());
    let leftovers: Vec<_> = std::fs::read_dir(cache.path().join("v1/packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".apk"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
