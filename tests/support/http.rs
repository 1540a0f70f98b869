//! A tiny HTTP/1.1 file server for tests: serves a folder on 127.0.0.1, honours
//! `Range: bytes=N-`, `If-None-Match` and `If-Modified-Since`, records every request,
//! and can be told to fail (a status) or cut a body short for the next requests of a
//! path. One thread per connection, `Connection: close`.

use sha1::{Digest, Sha1};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A planned misbehaviour for one request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Announce the full length but close after this many body bytes.
    Truncate(usize),
    /// Answer a `Range` request with the whole body (200), as some servers do.
    IgnoreRange,
    /// Announce the full length, send this many body bytes, then nothing: the
    /// connection stays open (at most a minute, or until the server is dropped).
    Stall(usize),
    /// Send this many body bytes, then reset the connection (RST, not FIN).
    Reset(usize),
    /// Flip every bit of the body byte at this offset from the end (1 = last byte).
    CorruptFromEnd(usize),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The path requested.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// `If-None-Match`, if any.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`, if any.
    pub if_modified_since: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The request line held an absolute URL: the client used us as its proxy.
    pub proxied: bool,
}

#[derive(Default)]
struct State {
    faults: HashMap<String, VecDeque<Fault>>,
    log: Vec<Logged>,
}

/// A running server; stops when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    root: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl TestServer {
    /// Serves `root`.
    pub fn serve(root: &Path) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (root2, state2, stop2) = (root.to_path_buf(), state.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (root, state, stop) = (root2.clone(), state2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    let _ = handle(stream, &root, &state, &stop);
                });
            }
        });
        TestServer {
            base: format!("http://127.0.0.1:{port}"),
            root: root.to_path_buf(),
            state,
            stop,
            port,
        }
    }

    /// The folder served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Queues faults for the next requests of `path` (e.g. `/main/x86_64/APKINDEX.tar.gz`).
    pub fn fail(&self, path: &str, faults: &[Fault]) {
        let mut state = self.state.lock().unwrap();
        state
            .faults
            .entry(path.to_string())
            .or_default()
            .extend(faults.iter().copied());
    }

    /// The requests so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// The requests of one path so far.
    pub fn requests(&self, path: &str) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.path == path).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", &hex::encode(Sha1::digest(body))[..16])
}

fn handle(
    stream: TcpStream,
    root: &Path,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    // A client talking to a proxy sends the absolute URL; serve its path all the same.
    let proxied = target.starts_with("http://");
    let path = if proxied {
        let after_scheme = &target["http://".len()..];
        after_scheme
            .find('/')
            .map_or("/", |i| &after_scheme[i..])
            .to_string()
    } else {
        target.to_string()
    };
    let mut logged = Logged {
        path: path.clone(),
        range: headers.get("range").cloned(),
        if_none_match: headers.get("if-none-match").cloned(),
        if_modified_since: headers.get("if-modified-since").cloned(),
        status: 0,
        proxied,
    };
    let fault = state
        .lock()
        .unwrap()
        .faults
        .get_mut(&path)
        .and_then(|q| q.pop_front());
    let mut out = stream.try_clone()?;
    let file = root.join(path.trim_start_matches('/'));
    let body = if path.contains("..") {
        None
    } else {
        std::fs::read(&file).ok()
    };
    let mut respond = |status: u16, extra: &str, body: &[u8], send: usize| {
        logged.status = status;
        state.lock().unwrap().log.push(logged.clone());
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        );
        out.write_all(head.as_bytes())?;
        out.write_all(&body[..send.min(body.len())])?;
        out.flush()
    };
    if let Some(Fault::Status(status)) = fault {
        return respond(status, "", b"", 0);
    }
    let Some(body) = body else {
        return respond(404, "", b"not found", 9);
    };
    let modified = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let last_modified = httpdate::fmt_http_date(modified);
    let etag = etag_of(&body);
    let validators = format!("ETag: {etag}\r\nLast-Modified: {last_modified}\r\n");
    let not_modified = match (
        headers.get("if-none-match"),
        headers.get("if-modified-since"),
    ) {
        (Some(tag), _) => *tag == etag,
        (None, Some(since)) => httpdate::parse_http_date(since)
            .map(|since| modified <= since + Duration::from_secs(1))
            .unwrap_or(false),
        _ => false,
    };
    if not_modified {
        return respond(304, &validators, b"", 0);
    }
    let ignore_range = matches!(fault, Some(Fault::IgnoreRange));
    let start = headers
        .get("range")
        .filter(|_| !ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (status, extra, slice) = match start {
        Some(start) if start >= body.len() => {
            let extra = format!("Content-Range: bytes */{}\r\n", body.len());
            return respond(416, &extra, b"", 0);
        }
        Some(start) => (
            206,
            format!(
                "{validators}Content-Range: bytes {start}-{}/{}\r\n",
                body.len() - 1,
                body.len()
            ),
            &body[start..],
        ),
        None => (200, validators, &body[..]),
    };
    let corrupted = match fault {
        Some(Fault::CorruptFromEnd(n)) if n >= 1 && n <= slice.len() => {
            let mut copy = slice.to_vec();
            let at = copy.len() - n;
            copy[at] ^= 0xff;
            Some(copy)
        }
        _ => None,
    };
    let slice = corrupted.as_deref().unwrap_or(slice);
    let send = match fault {
        Some(Fault::Truncate(n) | Fault::Stall(n) | Fault::Reset(n)) => n,
        _ => slice.len(),
    };
    respond(status, &extra, slice, send)?;
    match fault {
        Some(Fault::Stall(_)) => {
            // Bounded: the test that asked for it is over long before.
            for _ in 0..600 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(Fault::Reset(_)) => {
            // SO_LINGER 0: closing sends RST instead of FIN.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            use std::os::fd::AsRawFd;
            // SAFETY: a valid socket and a correctly sized option value.
            unsafe {
                libc::setsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
        _ => {}
    }
    Ok(())
}
