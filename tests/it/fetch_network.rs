//! How packages travel: connections kept alive and shared, HTTP/2 where the server
//! offers it, no CA store for plain HTTP, and extraction that starts while later
//! packages are still downloading.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::tls::{find_program, make_certificates};
use support::*;
use sysroot_mk::archive::SignatureAlgorithm;
use sysroot_mk::fetch::{fetch_packages_with, FetchOptions};
use sysroot_mk::report::Silent;
use sysroot_mk::repository::{load_indexes_with, Repository};
use sysroot_mk::transport::Transport;

/// Holds the answer to one path until a condition holds (or a deadline passes).
type Hold = (String, Box<dyn Fn() -> bool + Send + Sync>, Duration);

/// How the test server treats connections.
#[derive(Clone, Copy, Default)]
struct Manner {
    /// Answer HTTP/1.0 and close the connection after each answer.
    close_each: bool,
    /// Wait this long before answering for a package.
    package_delay: Duration,
}

/// An HTTP/1.1 file server that keeps connections alive (unless told otherwise), and
/// counts them.
struct KeepAlive {
    base: String,
    connections: Arc<AtomicUsize>,
    /// Connections open now, and at most so far.
    open: Arc<(AtomicUsize, AtomicUsize)>,
    /// (connection number, path) of every request, in order.
    log: Arc<Mutex<Vec<(usize, String)>>>,
    /// Whether the held answer was released by its condition (not the deadline).
    released: Arc<Mutex<Option<bool>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl KeepAlive {
    fn serve(root: &Path, hold: Option<Hold>) -> KeepAlive {
        KeepAlive::serve_as(root, hold, Manner::default())
    }

    fn serve_as(root: &Path, hold: Option<Hold>, manner: Manner) -> KeepAlive {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = KeepAlive {
            base: format!("http://127.0.0.1:{port}"),
            connections: Arc::default(),
            open: Arc::default(),
            log: Arc::default(),
            released: Arc::default(),
            stop: Arc::default(),
            port,
        };
        let open = server.open.clone();
        let (connections, log, released, stop) = (
            server.connections.clone(),
            server.log.clone(),
            server.released.clone(),
            server.stop.clone(),
        );
        let root = root.to_path_buf();
        let hold = Arc::new(hold);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let number = connections.fetch_add(1, Ordering::SeqCst) + 1;
                let (root, log, released, hold, open) = (
                    root.clone(),
                    log.clone(),
                    released.clone(),
                    hold.clone(),
                    open.clone(),
                );
                let now = open.0.fetch_add(1, Ordering::SeqCst) + 1;
                open.1.fetch_max(now, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = answer(stream, number, &root, &log, &released, &hold, manner);
                    open.0.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        server
    }

    fn paths(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p)| p.clone())
            .collect()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Answers the requests of one connection until the client closes it.
fn answer(
    stream: TcpStream,
    number: usize,
    root: &Path,
    log: &Mutex<Vec<(usize, String)>>,
    released: &Mutex<Option<bool>>,
    hold: &Option<Hold>,
    manner: Manner,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
        log.lock().unwrap().push((number, path.clone()));
        if let Some((held, ready, deadline)) = hold {
            if *held == path {
                let started = Instant::now();
                while !ready() && started.elapsed() < *deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                *released.lock().unwrap() = Some(ready());
            }
        }
        let body = (!path.contains(".."))
            .then(|| std::fs::read(root.join(path.trim_start_matches('/'))).ok())
            .flatten();
        let (status, body) = match body {
            Some(body) => (200, body),
            None => (404, b"not found".to_vec()),
        };
        if path.ends_with(".apk") {
            std::thread::sleep(manner.package_delay);
        }
        let version = if manner.close_each { "1.0" } else { "1.1" };
        let head = format!(
            "HTTP/{version} {status} X\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        out.write_all(head.as_bytes())?;
        out.write_all(&body)?;
        out.flush()?;
        if manner.close_each {
            return Ok(());
        }
    }
}

/// A signed package that installs `usr/share/<name>` holding `payload` (the shared
/// fixtures' tar headers are enough to fetch a package, not to extract it).
fn installable(name: &str, version: &str, payload: &[u8]) -> FixturePackage {
    use crate::install_common::{tar_of, TestEntry};
    use base64::Engine;
    use sha1::Digest;
    let mut tar = tar_of(&[
        TestEntry::dir("usr", 0o755),
        TestEntry::dir("usr/share", 0o755),
        TestEntry::file(format!("usr/share/{name}").as_bytes(), payload),
    ]);
    tar.extend_from_slice(&[0u8; 1024]);
    let data = gzip(&tar);
    let datahash = hex::encode(sha2::Sha256::digest(&data));
    let pkginfo = format!(
        "pkgname = {name}\npkgver = {version}\narch = x86_64\nsize = {}\ndatahash = {datahash}\n",
        tar.len()
    );
    let control = gzip(&tar_of(&[TestEntry::file(b".PKGINFO", pkginfo.as_bytes())]));
    let checksum = format!(
        "Q1{}",
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&control))
    );
    let bytes = sign(
        [control, data].concat(),
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha256),
    );
    FixturePackage {
        name: name.into(),
        version: version.into(),
        bytes,
        checksum,
        extra: String::new(),
    }
}

/// Three packages of different sizes in `root/main`.
fn three_packages(root: &Path) -> Vec<FixturePackage> {
    let packages = vec![
        installable("small", "1.0-r0", b"s"),
        installable("large", "2.0-r0", &noise(200_000, 3)),
        installable("medium", "3.0-r0", &noise(20_000, 4)),
    ];
    write_repo(
        &root.join("main"),
        "x86_64",
        &packages,
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha256),
    );
    packages
}

#[test]
fn one_connection_carries_the_index_and_every_package_in_turn() {
    let served = tempfile::tempdir().unwrap();
    three_packages(served.path());
    let server = KeepAlive::serve(served.path(), None);
    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let repos = [Repository::parse(&format!("{}/main", server.base)).unwrap()];
    // One transport for the index and the packages, as a build uses.
    let transport = Transport::new(quick_transport());
    let options = quick_index_options();
    let loaded = load_indexes_with(&transport, &repos, "x86_64", &ring, &options, &Silent)
        .unwrap()
        .remove(0);
    let fetch = |jobs| FetchOptions {
        jobs,
        transport: quick_transport(),
        temp_dir: Some(served.path().to_path_buf()),
        ..FetchOptions::default()
    };
    let fetched = fetch_packages_with(
        &transport,
        &loaded.packages(),
        &repos,
        "x86_64",
        &fetch(1),
        &Silent,
    )
    .unwrap();
    assert_eq!(fetched.len(), 3);
    assert_eq!(server.paths().len(), 4, "{:?}", server.paths());
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "the index and three packages, one after another: {:?}",
        server.log.lock().unwrap()
    );

    // In parallel, each worker takes a connection of its own, or one left idle.
    let again = Transport::new(quick_transport());
    fetch_packages_with(
        &again,
        &loaded.packages(),
        &repos,
        "x86_64",
        &fetch(16),
        &Silent,
    )
    .unwrap();
    let opened = server.connections.load(Ordering::SeqCst) - 1;
    assert!(
        (1..=3).contains(&opened),
        "{opened} connections for 3 packages"
    );
}

#[test]
fn a_server_that_closes_every_connection_gets_few_at_once() {
    // Python's http.server answers HTTP/1.0 and closes; its listen queue holds five.
    let served = tempfile::tempdir().unwrap();
    let packages: Vec<FixturePackage> = (0..9)
        .map(|i| FixturePackage::new(&format!("p{i}"), "1.0-r0", &noise(1000 + i, i as u64)))
        .collect();
    write_repo(
        &served.path().join("main"),
        "x86_64",
        &packages,
        Signer::Key(TEST_KEY, SignatureAlgorithm::Sha256),
    );
    let manner = Manner {
        close_each: true,
        // Long enough that every download in flight overlaps the others.
        package_delay: Duration::from_millis(300),
    };
    let server = KeepAlive::serve_as(served.path(), None, manner);
    let keys = keys_dir(&[TEST_KEY]);
    let ring = keyring_of(&[keys.path()], "x86_64");
    let repos = [Repository::parse(&format!("{}/main", server.base)).unwrap()];
    let transport = Transport::new(quick_transport());
    let loaded = load_indexes_with(
        &transport,
        &repos,
        "x86_64",
        &ring,
        &quick_index_options(),
        &Silent,
    )
    .unwrap()
    .remove(0);
    assert!(transport.closes_connections(&repos[0].url));
    let options = FetchOptions {
        jobs: 16,
        transport: quick_transport(),
        temp_dir: Some(served.path().to_path_buf()),
        ..FetchOptions::default()
    };
    let fetched = fetch_packages_with(
        &transport,
        &loaded.packages(),
        &repos,
        "x86_64",
        &options,
        &Silent,
    )
    .unwrap();
    assert_eq!(fetched.len(), 9);
    assert_eq!(server.connections.load(Ordering::SeqCst), 10);
    let most = server.open.1.load(Ordering::SeqCst);
    assert!((2..=6).contains(&most), "{most} connections at once");
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"));
    cmd.env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdin(Stdio::null());
    cmd
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA store that holds no valid certificate (a bad `SSL_CERT_FILE` and an empty
/// `SSL_CERT_DIR`): a client that loads it cannot be built.
fn with_bad_ca_store(cmd: &mut Command, dir: &Path) {
    let file = dir.join("bad-ca.pem");
    std::fs::write(
        &file,
        "-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = dir.join("no-certs");
    std::fs::create_dir_all(&empty).unwrap();
    cmd.env("SSL_CERT_FILE", file).env("SSL_CERT_DIR", empty);
}

#[test]
fn plain_http_never_loads_the_ca_store() {
    let served = tempfile::tempdir().unwrap();
    three_packages(served.path());
    let server = KeepAlive::serve(served.path(), None);
    let keys = keys_dir(&[TEST_KEY]);
    let plan = |repo: &str| {
        let mut cmd = bin();
        with_bad_ca_store(&mut cmd, served.path());
        cmd.args(["-q", "plan", "--arch", "x86_64", "--no-cache", "--keys-dir"])
            .arg(keys.path())
            .args(["--repo", repo, "large"])
            .output()
            .unwrap()
    };
    let out = plan(&format!("{}/main", server.base));
    ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "large-2.0-r0");
    // The same store breaks any client that loads it, so the test can fail.
    let tls = plan("https://127.0.0.1:9/main");
    let err = String::from_utf8_lossy(&tls.stderr);
    assert!(
        !tls.status.success() && err.contains("HTTP client"),
        "{err}"
    );
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether `path` exists in a folder directly under `parent` (the build's staging
/// folder sits next to its target).
fn extracted_under(parent: &Path, path: &str) -> bool {
    std::fs::read_dir(parent)
        .map(|entries| entries.flatten().any(|e| e.path().join(path).exists()))
        .unwrap_or(false)
}

#[test]
fn extraction_starts_while_later_packages_still_download() {
    let Some(shared) = shared_or_skip() else {
        return;
    };
    if !is_root() {
        eprintln!("skipped: building alpine-base with its scripts needs root");
        return;
    }
    // alpine-base is last in the plan and among the last downloads (the smallest go
    // last); busybox is in the first batch. The server answers for alpine-base only
    // once busybox is extracted, or after a deadline a serial fetch-then-extract meets.
    let parent = tempfile::tempdir().unwrap();
    let watched = parent.path().to_path_buf();
    let hold: Hold = (
        "/v3.19/main/x86_64/alpine-base-3.19.1-r0.apk".into(),
        Box::new(move || extracted_under(&watched, "bin/busybox")),
        Duration::from_secs(8),
    );
    let server = KeepAlive::serve(&shared, Some(hold));
    let out = bin()
        .args(["-q", "--arch", "x86_64", "--no-cache", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .args(["--repo", &format!("{}/v3.19/main", server.base)])
        .arg(parent.path().join("root"))
        .arg("alpine-base")
        .output()
        .unwrap();
    ok(&out);
    assert!(parent.path().join("root/etc/alpine-release").exists());
    assert_eq!(
        *server.released.lock().unwrap(),
        Some(true),
        "alpine-base was answered only after the deadline: nothing was extracted while it downloaded"
    );
}

/// The headers nginx logs per request: port, protocol, connection serial, status, URI.
fn nginx_log(prefix: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(prefix.join("access.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn http2_carries_every_request_on_one_connection_after_a_redirect_to_https() {
    let Some(nginx) = find_program("nginx") else {
        eprintln!("skipped: nginx is not installed");
        return;
    };
    if find_program("openssl").is_none() || !is_root() {
        eprintln!("skipped: needs the openssl CLI and root (to build a sysroot)");
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    make_certificates(prefix.path());
    let served = tempfile::tempdir().unwrap();
    three_packages(served.path());
    let (plain, tls) = (free_port(), free_port());
    let p = prefix.path().display();
    std::fs::write(
        prefix.path().join("nginx.conf"),
        format!(
            "daemon off; master_process off; worker_processes 1; pid {p}/nginx.pid; error_log {p}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{ log_format t '$server_port $server_protocol $connection $status $request_uri';\n\
               access_log {p}/access.log t; client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
               fastcgi_temp_path {p}/fastcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
               server {{ listen 127.0.0.1:{plain}; return 301 https://127.0.0.1:{tls}$request_uri; }}\n\
               server {{ listen 127.0.0.1:{tls} ssl http2; ssl_certificate {p}/server.pem;\n\
                 ssl_certificate_key {p}/server.key; root {root}; }} }}\n",
            root = served.path().display()
        ),
    )
    .unwrap();
    let child = Command::new(nginx)
        .arg("-p")
        .arg(prefix.path())
        .arg("-c")
        .arg(prefix.path().join("nginx.conf"))
        .arg("-e")
        .arg(prefix.path().join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _nginx = Nginx(child);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", tls)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let keys = keys_dir(&[TEST_KEY]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = bin()
        .env("SSL_CERT_FILE", prefix.path().join("ca.pem"))
        .args([
            "-q",
            "--arch",
            "x86_64",
            "--no-cache",
            "--no-scripts",
            "--keys-dir",
        ])
        .arg(keys.path())
        .args(["--repo", &format!("http://127.0.0.1:{plain}/main")])
        .arg(out_dir.path().join("root"))
        .args(["small", "medium", "large"])
        .output()
        .unwrap();
    ok(&out);
    let log = nginx_log(prefix.path());
    let by_port = |port: u16| -> Vec<&Vec<String>> {
        log.iter().filter(|l| l[0] == port.to_string()).collect()
    };
    let redirected = by_port(plain);
    assert!(
        !redirected.is_empty() && redirected.iter().all(|l| l[3] == "301"),
        "{log:?}"
    );
    let secure = by_port(tls);
    // The index and three packages.
    assert_eq!(secure.len(), 4, "{log:?}");
    assert!(
        secure.iter().all(|l| l[1] == "HTTP/2.0" && l[3] == "200"),
        "{log:?}"
    );
    let connections: std::collections::HashSet<&String> = secure.iter().map(|l| &l[2]).collect();
    assert_eq!(
        connections.len(),
        1,
        "one HTTP/2 connection for all: {log:?}"
    );
}
