//! Getting bytes from http(s)://, file:// and plain paths: timeouts, retries, resume,
//! revalidation.
//!
//! HTTP goes through lazily built reqwest blocking clients (rustls with the system's
//! roots, which honours `SSL_CERT_FILE`/`SSL_CERT_DIR`; `HTTP(S)_PROXY` and `NO_PROXY`
//! from the environment). Loading the CA store reads a hundred files or more, so only
//! `https://` URLs pay for it: plain `http://` ones go through a client without roots,
//! and a redirect from one to `https://` is followed by the TLS client. Each client
//! keeps its connections alive and reuses them across requests and threads, and speaks
//! HTTP/2 (one connection, requests multiplexed) with servers that offer it in the TLS
//! handshake. Transient failures (connection errors,
//! 408/429/5xx, a body cut short) are retried with exponential backoff; downloads to a
//! file resume where they stopped with `Range`. Every read is bounded by a size the
//! caller gives, so a hostile server cannot fill memory or disk.
//!
//! Waiting is bounded too. A transfer slower than [`TransportOptions::stall_rate`] over
//! a whole [`TransportOptions::stall_window`] (including no answer at all) is a stall:
//! it is retried once, resuming, and then fails, so a dead mirror costs about two
//! windows rather than minutes. Every fetch has an overall
//! [`TransportOptions::deadline`], checked as bytes arrive and before each retry (a
//! read already waiting may overrun it by up to one stall window: a per-request
//! timeout in reqwest would bound the whole body, not each wait). A host whose name does not resolve or that refuses
//! connections is not retried, and later requests to it in the same run fail at once.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::header::{
    HeaderMap, CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RANGE,
};
use reqwest::StatusCode;

mod wait;
use wait::{is_timeout, unreachable_reason, Pace};

/// Why bytes could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The server or the file system says the resource does not exist.
    #[error("`{url}` does not exist ({detail})")]
    NotFound {
        /// The URL or path.
        url: String,
        /// `HTTP 404`, or the OS error.
        detail: String,
    },
    /// The server answered with an unexpected status.
    #[error("`{url}` answered HTTP {status} after {attempts} attempt(s); expected 200")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// How many requests were made.
        attempts: u32,
    },
    /// The request failed below HTTP (DNS, connect, TLS, timeout, cut connection).
    #[error("cannot fetch `{url}` after {attempts} attempt(s)")]
    Http {
        /// The URL.
        url: String,
        /// How many requests were made.
        attempts: u32,
        /// The underlying error (with its chain).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading or writing a local file failed.
    #[error("cannot read or write `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The resource is bigger than the caller allows.
    #[error("`{url}` is larger than {limit} bytes; refusing to read more")]
    TooLarge {
        /// The URL or path.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The transfer went slower than the stall rate for a whole window, twice.
    #[error("`{url}` stalled: less than {rate} bytes/s for {}s, {attempts} time(s): the server or the network is stuck", window.as_secs())]
    Stalled {
        /// The URL.
        url: String,
        /// Bytes per second below which the transfer counts as stalled.
        rate: u64,
        /// How long it stayed below.
        window: Duration,
        /// How many requests stalled.
        attempts: u32,
    },
    /// The fetch took longer than its overall deadline.
    #[error("`{url}` did not finish within {}s", deadline.as_secs())]
    Deadline {
        /// The URL.
        url: String,
        /// The deadline.
        deadline: Duration,
    },
    /// The host's name does not resolve or it refuses connections (not retried).
    #[error("cannot reach `{host}` for `{url}`: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// The host.
        host: String,
        /// What failed (DNS, connection refused).
        reason: &'static str,
    },
    /// The host already failed that way earlier in this run; it was not asked again.
    #[error("not fetching `{url}`: `{host}` was unreachable earlier in this run ({reason})")]
    HostDown {
        /// The URL.
        url: String,
        /// The host.
        host: String,
        /// Why it failed the first time.
        reason: &'static str,
    },
    /// The HTTP client could not be set up (e.g. an unreadable `SSL_CERT_FILE`).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl crate::report::Hinted for TransportError {
    fn hint(&self) -> Option<crate::report::Hint> {
        use crate::report::Hint;
        match self {
            TransportError::Http { .. } | TransportError::Unreachable { .. } => {
                Some(Hint::Server {
                    check: "check the URL, the network and any proxy (`HTTPS_PROXY`, `NO_PROXY`)"
                        .into(),
                })
            }
            TransportError::HostDown { .. } => Some(Hint::Server {
                check: "check the URL and the network".into(),
            }),
            TransportError::Stalled { .. } | TransportError::Deadline { .. } => {
                Some(Hint::Server {
                    check: "try again later, or check the network".into(),
                })
            }
            TransportError::Status { status, .. } if *status >= 500 => Some(Hint::Server {
                check: "the server failed; try again later".into(),
            }),
            TransportError::Client(_) => Some(Hint::fix(
                "check `SSL_CERT_FILE` and `SSL_CERT_DIR`: they must name readable certificates",
            )),
            _ => None,
        }
    }
}

impl TransportError {
    fn is_transient(&self) -> bool {
        match self {
            TransportError::Http { .. } | TransportError::Stalled { .. } => true,
            TransportError::Status { status, .. } => {
                // 416 only comes back for a stale partial file, which is then emptied,
                // so asking again succeeds.
                matches!(status, 408 | 416 | 425 | 429) || (500..600).contains(status)
            }
            _ => false,
        }
    }
}

/// Timeouts and retry policy.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for the response headers and for each read of the body; capped
    /// by `stall_window`.
    pub read_timeout: Duration,
    /// How many times a transient failure is retried.
    pub retries: u32,
    /// The first backoff; doubled after each retry.
    pub backoff: Duration,
    /// A transfer under this many bytes per second over a whole `stall_window` stalls.
    pub stall_rate: u64,
    /// See `stall_rate`.
    pub stall_window: Duration,
    /// The longest one fetch (all its attempts) may take.
    pub deadline: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            retries: 4,
            backoff: Duration::from_millis(250),
            stall_rate: 1024,
            stall_window: Duration::from_secs(10),
            // The largest Alpine packages are a few hundred MB: ample at 1 MB/s.
            deadline: Duration::from_secs(30 * 60),
        }
    }
}

/// Redirects followed at most, as reqwest's default policy.
const MAX_REDIRECTS: usize = 10;

/// Cache validators of an HTTP resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// `ETag`, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// `Last-Modified`, sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
}

impl Validators {
    fn from_headers(headers: &HeaderMap) -> Validators {
        let get = |name| {
            headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        Validators {
            etag: get(ETAG),
            last_modified: get(LAST_MODIFIED),
        }
    }

    /// Whether there is anything to revalidate with.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The answer to a conditional request.
#[derive(Debug)]
pub enum Conditional {
    /// The cached copy is still current (HTTP 304).
    NotModified,
    /// A new body, with its validators.
    Fresh {
        /// The body.
        bytes: Vec<u8>,
        /// Validators to store with it.
        validators: Validators,
    },
}

/// The local path a `file://` URL or a plain path names; `None` for http(s).
pub fn local_path(url: &str) -> Option<PathBuf> {
    if is_remote(url) {
        return None;
    }
    if url.starts_with("file:") {
        return reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .or_else(|| Some(PathBuf::from(url.trim_start_matches("file://"))));
    }
    Some(PathBuf::from(url))
}

/// Whether `url` is fetched over HTTP.
pub fn is_remote(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Whether `url` is plain (unencrypted) HTTP.
fn is_plain_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

/// Fetches bytes from repositories. Cheap to share between threads.
#[derive(Debug, Default)]
pub struct Transport {
    options: TransportOptions,
    /// For `https://` URLs (and redirects to them): loads the CA store when built.
    tls_client: OnceLock<Result<Client, String>>,
    /// For `http://` URLs: no CA store; stops at a redirect to `https://`.
    plain_client: OnceLock<Result<Client, String>>,
    /// Hosts that did not resolve or refused a connection in this run, with why.
    unreachable: Mutex<HashMap<String, &'static str>>,
    /// Hosts whose answers closed the connection (see [`Transport::closes_connections`]).
    closing: Mutex<HashSet<String>>,
}

impl Transport {
    /// A transport with the given policy; the HTTP client is built on first use.
    pub fn new(options: TransportOptions) -> Transport {
        Transport {
            options,
            tls_client: OnceLock::new(),
            plain_client: OnceLock::new(),
            unreachable: Mutex::new(HashMap::new()),
            closing: Mutex::new(HashSet::new()),
        }
    }

    /// The client for `url`: the plain one for `http://`, the TLS one otherwise.
    fn client(&self, url: &str) -> Result<&Client, TransportError> {
        let tls = !is_plain_http(url);
        let slot = if tls {
            &self.tls_client
        } else {
            &self.plain_client
        };
        let built = slot.get_or_init(|| {
            let mut builder = Client::builder()
                .connect_timeout(self.options.connect_timeout)
                // The blocking client applies this to the wait for the headers and to
                // each body read separately, so it is a read timeout, not a total one;
                // a read waiting a whole stall window has stalled.
                .timeout(self.options.read_timeout.min(self.options.stall_window))
                .user_agent(concat!("sysroot-mk/", env!("CARGO_PKG_VERSION")))
                // Requests are small and answered at once: Nagle would only delay them.
                .tcp_nodelay(true);
            if !tls {
                builder = builder.tls_built_in_root_certs(false).redirect(
                    reqwest::redirect::Policy::custom(|attempt| {
                        if attempt.url().scheme() != "http" {
                            // [`Transport::execute`] follows it with the TLS client.
                            attempt.stop()
                        } else if attempt.previous().len() >= MAX_REDIRECTS {
                            attempt.error("too many redirects")
                        } else {
                            attempt.follow()
                        }
                    }),
                );
            }
            builder.build().map_err(|e| error_chain(&e))
        });
        built
            .as_ref()
            .map_err(|e| TransportError::Client(e.clone()))
    }

    /// Sends the request `build` makes for `url` with the right client; a plain HTTP
    /// answer redirecting to `https://` is followed once through the TLS client.
    fn execute(
        &self,
        url: &str,
        attempts: u32,
        build: impl Fn(&Client, &str) -> reqwest::blocking::RequestBuilder,
    ) -> Result<Response, TransportError> {
        let response = self.send(build(self.client(url)?, url), url, attempts)?;
        if !response.status().is_redirection() || !is_plain_http(url) {
            return Ok(response);
        }
        let target = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| response.url().join(l).ok())
            .filter(|t| t.scheme() == "https");
        match target {
            Some(target) => {
                let target = target.to_string();
                let client = self.client(&target)?;
                self.send(build(client, &target), &target, attempts)
            }
            None => Ok(response),
        }
    }

    /// Whether `url` exists: one HEAD request (no retries, no body), or a look at the
    /// file. Meant for probing several candidates at once, so failures other than "not
    /// found" are errors rather than `false`.
    pub fn exists(&self, url: &str) -> Result<bool, TransportError> {
        if let Some(path) = local_path(url) {
            return Ok(path.is_file());
        }
        let response = self.execute(url, 1, |client, url| client.head(url))?;
        match expect_status(response, url, 1, &[StatusCode::OK]) {
            Ok(_) => Ok(true),
            Err(TransportError::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Reads a whole resource (at most `max_size` bytes) into memory.
    pub fn read(&self, url: &str, max_size: u64) -> Result<Vec<u8>, TransportError> {
        match self.read_conditional(url, &Validators::default(), max_size)? {
            Conditional::Fresh { bytes, .. } => Ok(bytes),
            // Without validators a server has no reason to answer 304; treat it as an
            // unexpected status rather than returning an empty body.
            Conditional::NotModified => Err(TransportError::Status {
                url: url.to_string(),
                status: 304,
                attempts: 1,
            }),
        }
    }

    /// Reads a resource unless it still matches `validators` (local files are always
    /// read, they have no validators).
    pub fn read_conditional(
        &self,
        url: &str,
        validators: &Validators,
        max_size: u64,
    ) -> Result<Conditional, TransportError> {
        if let Some(path) = local_path(url) {
            return read_local(&path, max_size).map(|bytes| Conditional::Fresh {
                bytes,
                validators: Validators::default(),
            });
        }
        let started = Instant::now();
        self.with_retries(url, started, |attempts| {
            let response = self.execute(url, attempts, |client, url| {
                let mut request = client.get(url);
                if let Some(etag) = &validators.etag {
                    request = request.header(IF_NONE_MATCH, etag);
                }
                if let Some(modified) = &validators.last_modified {
                    request = request.header(IF_MODIFIED_SINCE, modified);
                }
                request
            })?;
            if response.status() == StatusCode::NOT_MODIFIED {
                return Ok(Conditional::NotModified);
            }
            let response = expect_status(response, url, attempts, &[StatusCode::OK])?;
            let fresh = Validators::from_headers(response.headers());
            if response.content_length().is_some_and(|n| n > max_size) {
                return Err(too_large(url, max_size));
            }
            let mut bytes = Vec::new();
            let mut pace = Pace::new(&self.options, started);
            read_bounded(response, &mut bytes, max_size, url, attempts, &mut pace)?;
            Ok(Conditional::Fresh {
                bytes,
                validators: fresh,
            })
        })
    }

    /// Downloads `url` into `partial` (opened without following a symlink), resuming
    /// from the bytes already there; returns the total size. See [`Transport::download_into`].
    pub fn download(
        &self,
        url: &str,
        partial: &Path,
        max_size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, TransportError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(partial)
            .map_err(|source| TransportError::Io {
                path: partial.to_path_buf(),
                source,
            })?;
        self.download_into(url, &mut file, partial, max_size, progress)
    }

    /// Downloads `url` into `file`, resuming after the bytes already there; returns the
    /// total size. `path` names the file in messages. `progress` receives each chunk's
    /// length (resumed bytes included once, up front). Remote only; the caller reads
    /// local files in place.
    pub fn download_into(
        &self,
        url: &str,
        file: &mut File,
        path: &Path,
        max_size: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, TransportError> {
        let io_err = |source| TransportError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut have = file.metadata().map_err(io_err)?.len();
        if have > max_size {
            have = 0;
        }
        restart_at(file, have).map_err(io_err)?;
        if have > 0 {
            progress(have);
        }
        let started = Instant::now();
        self.with_retries(url, started, |attempts| {
            let from = have;
            let response = self.execute(url, attempts, |client, url| {
                let request = client.get(url);
                if from > 0 {
                    request.header(RANGE, format!("bytes={from}-"))
                } else {
                    request
                }
            })?;
            let status = response.status();
            if status == StatusCode::RANGE_NOT_SATISFIABLE {
                // The partial file is as long as (or longer than) the resource: start over
                // and let the caller's verification judge the result.
                have = 0;
                restart_at(file, 0).map_err(io_err)?;
                return Err(TransportError::Status {
                    url: url.to_string(),
                    status: 416,
                    attempts,
                });
            }
            let response = expect_status(
                response,
                url,
                attempts,
                &[StatusCode::OK, StatusCode::PARTIAL_CONTENT],
            )?;
            let partial_content = response.status() == StatusCode::PARTIAL_CONTENT;
            if partial_content && content_range_start(response.headers()) != Some(have) {
                // A range we did not ask for: start over without one.
                have = 0;
                restart_at(file, 0).map_err(io_err)?;
                return Err(TransportError::Status {
                    url: url.to_string(),
                    status: 416,
                    attempts,
                });
            }
            if !partial_content && have > 0 {
                // The server ignored `Range` and sends the whole body.
                have = 0;
                restart_at(file, 0).map_err(io_err)?;
            }
            let remaining = max_size.saturating_sub(have);
            let mut writer = Counting {
                file: &mut *file,
                written: &mut have,
                progress: &mut *progress,
            };
            let mut pace = Pace::new(&self.options, started);
            read_bounded(response, &mut writer, remaining, url, attempts, &mut pace)?;
            Ok(())
        })?;
        file.flush().map_err(io_err)?;
        Ok(have)
    }

    /// Sends a request unless its host was unreachable earlier; records hosts that do
    /// not resolve or refuse connections.
    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
        url: &str,
        attempts: u32,
    ) -> Result<Response, TransportError> {
        let host = host_key(url);
        if let Some(reason) = self.unreachable_reason(&host) {
            return Err(TransportError::HostDown {
                url: url.to_string(),
                host,
                reason,
            });
        }
        let sent = request.send();
        if let Ok(response) = &sent {
            if closes_connection(response) {
                if let Ok(mut closing) = self.closing.lock() {
                    closing.insert(host.clone());
                }
            }
        }
        sent.map_err(|e| {
            let chain = error_chain(&e);
            if e.is_timeout() {
                return TransportError::Stalled {
                    url: url.to_string(),
                    rate: self.options.stall_rate,
                    window: self.options.stall_window,
                    attempts,
                };
            }
            if let Some(reason) = e.is_connect().then(|| unreachable_reason(&chain)).flatten() {
                if let Ok(mut down) = self.unreachable.lock() {
                    down.insert(host.clone(), reason);
                }
                return TransportError::Unreachable {
                    url: url.to_string(),
                    host: host.clone(),
                    reason,
                };
            }
            TransportError::Http {
                url: url.to_string(),
                attempts,
                source: chain.into(),
            }
        })
    }

    /// Whether the server of `url` closed a connection after answering, in this run
    /// (HTTP/1.0 without keep-alive, or `Connection: close`): every request to it then
    /// opens a connection of its own, and such servers often accept few at once.
    pub fn closes_connections(&self, url: &str) -> bool {
        self.closing
            .lock()
            .is_ok_and(|closing| closing.contains(&host_key(url)))
    }

    fn unreachable_reason(&self, host: &str) -> Option<&'static str> {
        self.unreachable.lock().ok()?.get(host).copied()
    }

    /// Runs `attempt` until it succeeds or fails for good: transient errors are retried
    /// with backoff, a stall once, and nothing past the deadline.
    fn with_retries<T>(
        &self,
        url: &str,
        started: Instant,
        mut attempt: impl FnMut(u32) -> Result<T, TransportError>,
    ) -> Result<T, TransportError> {
        let mut delay = self.options.backoff;
        let mut attempts = 1;
        let mut stalls = 0;
        loop {
            match attempt(attempts) {
                Err(TransportError::Stalled { .. }) if stalls >= 1 => {
                    return Err(TransportError::Stalled {
                        url: url.to_string(),
                        rate: self.options.stall_rate,
                        window: self.options.stall_window,
                        attempts: stalls + 1,
                    })
                }
                Err(err) if err.is_transient() && attempts <= self.options.retries => {
                    if matches!(err, TransportError::Stalled { .. }) {
                        stalls += 1;
                    }
                    if started.elapsed() + delay > self.options.deadline {
                        return Err(TransportError::Deadline {
                            url: url.to_string(),
                            deadline: self.options.deadline,
                        });
                    }
                    std::thread::sleep(delay);
                    delay = delay.saturating_mul(2);
                    attempts += 1;
                }
                other => return other,
            }
        }
    }
}

/// `host:port` of `url`, the key of per-host knowledge.
fn host_key(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_default()
}

/// Whether the server closes the connection after this answer.
fn closes_connection(response: &Response) -> bool {
    let connection = response
        .headers()
        .get(reqwest::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    match connection.as_deref() {
        Some(value) if value.contains("close") => true,
        Some(value) if value.contains("keep-alive") => false,
        _ => response.version() <= reqwest::Version::HTTP_10,
    }
}

/// Truncates `file` to `len` bytes and puts the cursor at its end.
fn restart_at(file: &mut File, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    file.seek(io::SeekFrom::Start(len))?;
    Ok(())
}

/// Writes to the partial file, counting bytes and reporting progress.
struct Counting<'a> {
    file: &'a mut File,
    written: &'a mut u64,
    progress: &'a mut dyn FnMut(u64),
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        *self.written += n as u64;
        (self.progress)(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn expect_status(
    response: Response,
    url: &str,
    attempts: u32,
    ok: &[StatusCode],
) -> Result<Response, TransportError> {
    let status = response.status();
    if ok.contains(&status) {
        return Ok(response);
    }
    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        return Err(TransportError::NotFound {
            url: url.to_string(),
            detail: format!("HTTP {}", status.as_u16()),
        });
    }
    Err(TransportError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        attempts,
    })
}

/// Copies at most `limit` bytes of the body into `out`; a body cut short is a
/// transient error (retried, and resumed by [`Transport::download_into`]), and so is a
/// stall (once).
fn read_bounded(
    response: Response,
    out: &mut dyn Write,
    limit: u64,
    url: &str,
    attempts: u32,
    pace: &mut Pace,
) -> Result<(), TransportError> {
    let expected = response.content_length();
    let mut body = response.take(limit.saturating_add(1));
    // One per download in flight (16): 64 KiB each was ~0.5 MB of an alpine-base
    // build's peak RSS over HTTP, for no measurable speed.
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(pace.stalled(url, attempts)),
            Err(e) => {
                return Err(TransportError::Http {
                    url: url.to_string(),
                    attempts,
                    source: Box::new(e),
                })
            }
        };
        total += n as u64;
        if total > limit {
            return Err(too_large(url, limit));
        }
        out.write_all(&buf[..n]).map_err(|e| TransportError::Io {
            path: PathBuf::from(url),
            source: e,
        })?;
        pace.advance(n as u64, url, attempts)?;
    }
    if expected.is_some_and(|len| total < len) {
        return Err(TransportError::Http {
            url: url.to_string(),
            attempts,
            source: format!(
                "the body ended after {total} of {} bytes",
                expected.unwrap_or(0)
            )
            .into(),
        });
    }
    Ok(())
}

fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

fn too_large(url: &str, limit: u64) -> TransportError {
    TransportError::TooLarge {
        url: url.to_string(),
        limit,
    }
}

/// Reads a local file, at most `max_size` bytes.
pub fn read_local(path: &Path, max_size: u64) -> Result<Vec<u8>, TransportError> {
    let file = File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TransportError::NotFound {
                url: path.display().to_string(),
                detail: source.to_string(),
            }
        } else {
            TransportError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    // Sized from the file's length up front: `take` hides it from `read_to_end`, which
    // would otherwise grow the buffer by doubling and copying (community: ~2 ms).
    let mut bytes = Vec::new();
    if let Ok(meta) = file.metadata() {
        let expected = meta.len().min(max_size).saturating_add(1);
        let _ = bytes.try_reserve_exact(usize::try_from(expected).unwrap_or(0));
    }
    file.take(max_size.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| TransportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > max_size {
        return Err(too_large(&path.display().to_string(), max_size));
    }
    Ok(bytes)
}

/// The error and its causes on one line (reqwest hides the interesting part, such as
/// the TLS or DNS failure, in the source chain).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_classified() {
        assert!(is_remote("https://dl-cdn.alpinelinux.org/alpine"));
        assert!(is_remote("HTTP://x"));
        assert_eq!(local_path("http://x"), None);
        assert_eq!(
            local_path("file:///srv/a%20b"),
            Some(PathBuf::from("/srv/a b"))
        );
        assert_eq!(local_path("/srv/repo"), Some(PathBuf::from("/srv/repo")));
        assert_eq!(local_path("rel/repo"), Some(PathBuf::from("rel/repo")));
    }

    #[test]
    fn local_read_is_bounded_and_names_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_local(&path, 5).unwrap(), b"12345");
        assert!(matches!(
            read_local(&path, 4),
            Err(TransportError::TooLarge { .. })
        ));
        let err = read_local(&dir.path().join("missing"), 5).unwrap_err();
        assert!(matches!(err, TransportError::NotFound { .. }));
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn content_range_start_is_parsed() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_RANGE, "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(100));
    }

    #[test]
    fn messages_say_what_failed_and_the_advice_is_a_hint() {
        use crate::report::{Hint, Hinted};
        // A key server's failure is shown as a warning from the message alone: it must
        // not send the user to another mirror.
        let errors = [
            TransportError::Unreachable {
                url: "https://keys.example/k.rsa.pub".into(),
                host: "keys.example:443".into(),
                reason: "connection refused",
            },
            TransportError::Stalled {
                url: "https://m.example/x".into(),
                rate: 1024,
                window: Duration::from_secs(10),
                attempts: 2,
            },
            TransportError::Deadline {
                url: "https://m.example/x".into(),
                deadline: Duration::from_secs(60),
            },
        ];
        for err in errors {
            let text = err.to_string();
            assert!(!text.contains("mirror") && !text.contains("--"), "{text}");
            assert!(matches!(err.hint(), Some(Hint::Server { .. })), "{text}");
        }
        let missing = TransportError::NotFound {
            url: "https://m.example/x".into(),
            detail: "HTTP 404".into(),
        };
        assert_eq!(missing.hint(), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let transport = Transport::default();
        assert!(transport
            .exists(dir.path().join("f").to_str().unwrap())
            .unwrap());
        assert!(!transport
            .exists(dir.path().join("g").to_str().unwrap())
            .unwrap());
    }
}
