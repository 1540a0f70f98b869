//! HTTPS against a real nginx on 127.0.0.1 with a test CA made by the `openssl` CLI.
//! Skipped (with the reason) when nginx or openssl is not installed.
//!
//! The test sets `SSL_CERT_FILE`, so it runs in a process of its own (the variable would
//! outlive its temporary CA for every other test of the shared process).

use crate::support;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::tls::{find_program, make_certificates};
use support::*;
use sysroot_mk::archive::SignatureAlgorithm;
use sysroot_mk::fetch::{fetch_packages, FetchOptions, Origin};
use sysroot_mk::report::Silent;
use sysroot_mk::repository::{load_indexes, IndexOptions, Repository, RepositoryError};

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(nginx: &Path, prefix: &Path, served: &Path) -> (Nginx, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = prefix.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {p}/nginx.pid; error_log {p}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log {p}/access.log; client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
           fastcgi_temp_path {p}/fastcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
           server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {p}/server.pem;\n\
             ssl_certificate_key {p}/server.key; root {root}; }} }}\n",
        root = served.display()
    );
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx)
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .arg("-e")
        .arg(prefix.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Nginx(child);
    // Wait until it listens (or has died, which the error log then explains).
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (guard, port);
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            panic!("nginx exited with {status}: {log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nginx did not listen on 127.0.0.1:{port}");
}

#[test]
fn https_repository_is_trusted_through_ssl_cert_file() {
    support::in_own_process(
        module_path!(),
        "https_repository_is_trusted_through_ssl_cert_file",
        loads_over_tls,
    );
}

fn loads_over_tls() {
    let Some(nginx) = find_program("nginx") else {
        eprintln!("skipped: nginx is not installed");
        return;
    };
    if find_program("openssl").is_none() {
        eprintln!("skipped: the openssl CLI is not installed");
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    make_certificates(prefix.path());
    let served = tempfile::tempdir().unwrap();
    let packages = [
        FixturePackage::new("alpha", "1.0-r0", &noise(50_000, 9)),
        FixturePackage::new("beta", "2.0-r0", b"beta"),
    ];
    write_repo(
        &served.path().join("main"),
        "x86_64",
        &packages,
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha1),
    );
    let (_nginx, port) = start_nginx(&nginx, prefix.path(), served.path());

    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let repos = [Repository::parse(&format!("https://127.0.0.1:{port}/main")).unwrap()];
    let options = IndexOptions {
        key_url: None,
        ..IndexOptions::default()
    };

    // The test CA is in no system store: refused.
    std::env::remove_var("SSL_CERT_FILE");
    let err = load_indexes(&repos, "x86_64", &ring, &options, &Silent).unwrap_err();
    // The whole cause chain: the certificate error sits below the transport's message.
    let cause = std::iter::successors(std::error::Error::source(&err), |e| e.source())
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    assert!(matches!(err, RepositoryError::Fetch { .. }), "{err}");
    assert!(cause.contains("certificate"), "{cause}");

    // With SSL_CERT_FILE naming the CA: indexes and packages come over TLS.
    std::env::set_var("SSL_CERT_FILE", prefix.path().join("ca.pem"));
    let loaded = load_indexes(&repos, "x86_64", &ring, &options, &Silent).unwrap();
    assert_eq!(loaded[0].packages().len(), 2);
    let cache = tempfile::tempdir().unwrap();
    let fetched = fetch_packages(
        &loaded[0].packages(),
        &repos,
        "x86_64",
        &FetchOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            ..FetchOptions::default()
        },
        &Silent,
    )
    .unwrap();
    assert!(fetched.iter().all(|f| f.origin == Origin::Downloaded));
    assert_eq!(std::fs::read(&fetched[0].path).unwrap(), packages[0].bytes);
}
