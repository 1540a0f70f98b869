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
    /// The plan is known: these packages will be fetched (from the network, the cache or
    /// a local repository, each ending with [`Reporter::download_finished`]) and then
    /// installed, so totals can be fixed before anything starts.
    fn planned(&self, _packages: &[crate::index::Package]) {}
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
    /// The build will run `count` package scripts: the install scripts and the trigger of
    /// every package that has one, known before the first starts. Each then either
    /// starts ([`Reporter::script_started`]) or is skipped ([`Reporter::script_skipped`]).
    fn scripts_planned(&self, _count: usize) {}
    /// A planned script does not run: a trigger whose globs matched no directory.
    fn script_skipped(&self, _script: &str) {}
    /// Whether totals are shown: work done only to compute one (reading every package's
    /// control member ahead for [`Reporter::scripts_planned`]) is skipped when not.
    fn shows_totals(&self) -> bool {
        true
    }
}

/// A reporter that drops everything (`-q`, and library callers that don't care).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn shows_totals(&self) -> bool {
        false
    }
}

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

/// What the user can do about an error, kept apart from its message so that the
/// command line shows it on its own `hint:` line, and only where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A fix that applies whatever the command line was (`--force`, `--no-scripts`...).
    Fix(String),
    /// A repository's server failed (unreachable, stalled, out of sync): `check` says
    /// what to look at. A front end adds "try another mirror" only when the
    /// repositories came from a mirror, never for `--repo` or a key server.
    Server {
        /// What to check first.
        check: String,
    },
}

impl Hint {
    /// A [`Hint::Fix`].
    pub fn fix(text: impl Into<String>) -> Hint {
        Hint::Fix(text.into())
    }
}

/// Errors that may know what the user can do about them.
pub trait Hinted {
    /// The hint for this error, if one applies.
    fn hint(&self) -> Option<Hint>;
}

impl Hinted for crate::build::BuildError {
    fn hint(&self) -> Option<Hint> {
        use crate::build::BuildError as B;
        match self {
            B::NoRepositories => Some(Hint::fix(
                "pass `--repo`, `--repositories-file` or `--mirror`",
            )),
            B::Repository(e) => e.hint(),
            B::Fetch(e) => e.hint(),
            B::Scripts(e) => e.hint(),
            B::Output(e) => e.hint(),
            B::Image(e) => e.hint(),
            B::Lock(e) => e.hint(),
            _ => None,
        }
    }
}
