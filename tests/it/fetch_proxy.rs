//! `HTTP_PROXY` and `NO_PROXY` from the environment are honoured. The test sets proxy
//! variables, so it runs in a process of its own: in the shared test process they would
//! send every later HTTP request of other tests to a proxy that is gone.

use crate::support;

use support::http::TestServer;
use support::*;
use sysroot_mk::archive::SignatureAlgorithm;
use sysroot_mk::report::Silent;
use sysroot_mk::repository::{load_indexes, Repository};

#[test]
fn http_proxy_from_the_environment_carries_requests_unless_no_proxy_says_otherwise() {
    support::in_own_process(
        module_path!(),
        "http_proxy_from_the_environment_carries_requests_unless_no_proxy_says_otherwise",
        proxied_loads,
    );
}

fn proxied_loads() {
    let served = tempfile::tempdir().unwrap();
    let packages = [FixturePackage::new("alpha", "1.0-r0", b"a")];
    write_repo(
        &served.path().join("main"),
        "x86_64",
        &packages,
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha1),
    );
    let proxy = TestServer::serve(served.path());
    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let options = quick_index_options();
    for var in [
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "no_proxy",
        "NO_PROXY",
    ] {
        std::env::remove_var(var);
    }
    std::env::set_var("HTTP_PROXY", &proxy.base);

    // The host does not exist: only the proxy can answer.
    let repos = [Repository::parse("http://repo.sysroot-mk.invalid/main").unwrap()];
    let loaded = load_indexes(&repos, "x86_64", &ring, &options, &Silent).unwrap();
    assert_eq!(loaded[0].packages().len(), 1);
    let log = proxy.log();
    assert_eq!(log.len(), 1);
    assert!(
        log[0].proxied && log[0].path == "/main/x86_64/APKINDEX.tar.gz",
        "{log:?}"
    );

    // NO_PROXY sends the request straight to the host, which does not resolve.
    std::env::set_var("NO_PROXY", "repo.sysroot-mk.invalid");
    assert!(load_indexes(&repos, "x86_64", &ring, &options, &Silent).is_err());
    assert_eq!(proxy.log().len(), 1);
}
