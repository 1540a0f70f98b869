//! Progress and diagnostics leave the library only through [`Reporter`].
//!
//! The library never touches the terminal: stages call these methods and the
//! binary decides how to render them (indicatif bars on a TTY, plain lines with
//! `-v`, nothing with `-q`). Tests implement the trait to observe what happened.
//! Every method has an empty default so a reporter renders only what it cares about;
//! implementations must be cheap and thread-safe, since rayon workers call them.

/// A pipeline stage, announced once when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Fetching and verifying the repository indexes.
    Indexes,
    /// Resolving the requested packages.
    Resolve,
    /// Downloading the packages.
    Download,
    /// Verifying and extracting the packages.
    Install,
    /// Running package scripts and triggers.
    Scripts,
    /// Writing the database and finishing the output.
    Finish,
}

/// Receives events from the library.
pub trait Reporter: Send + Sync {
    /// A stage begins.
    fn stage(&self, _stage: Stage) {}
    /// A detail worth printing under `-v` (a URL fetched, a key used, a decision made).
    fn info(&self, _message: &str) {}
    /// Something the user should know even without `-v`.
    fn warn(&self, _message: &str) {}
    /// A download of `total` bytes (0 when unknown) is about to start.
    fn download_started(&self, _name: &str, _total: u64) {}
    /// `bytes` more bytes of `name` arrived.
    fn download_progress(&self, _name: &str, _bytes: u64) {}
    /// The download of `name` finished (or was served from the cache).
    fn download_finished(&self, _name: &str) {}
    /// The install stage will handle `count` packages.
    fn install_started(&self, _count: usize) {}
    /// A package has been extracted.
    fn package_installed(&self, _name: &str) {}
    /// A package script (`name-version.action`) starts running.
    fn script_started(&self, _script: &str) {}
}

/// A reporter that drops everything (`-q`, and library callers that don't care).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {}

/// An error and its causes on one line (`a: b: c`), for messages that go through a
/// [`Reporter`] instead of being returned: error types state only their own level and
/// leave the causes to the chain.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
