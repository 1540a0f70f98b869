//! Repositories: where indexes come from (URLs, paths, repositories files) and loading
//! their verified indexes.
//!
//! A repository is apk's notion: a base URL under which `<arch>/APKINDEX.tar.gz` and
//! `<arch>/<name>-<version>.apk` live, over http(s), `file://` or as a plain path.

mod load;

pub(crate) use load::read_cached_key;
pub use load::{
    load_indexes, load_indexes_with, packages_of_archive, IndexOptions, LoadedIndex,
    MAX_INDEX_ARCHIVE,
};

use crate::archive::ArchiveError;
use crate::index::{IndexError, Package};
use crate::transport::{self, TransportError};
use crate::trust::TrustError;
use std::fmt;
use std::path::{Path, PathBuf};

/// The default mirror (`--mirror`).
pub const DEFAULT_MIRROR: &str = "https://dl-cdn.alpinelinux.org/alpine";
/// The default branch (`--branch`).
pub const DEFAULT_BRANCH: &str = "latest-stable";
/// The repositories of a branch used when `--repos` is not given.
pub const DEFAULT_REPOS: [&str; 2] = ["main", "community"];
/// The one repository every branch has: its missing index is an error, while a missing
/// index of another repository is only a warning.
pub const REQUIRED_REPO: &str = "main";
/// Where pinned official keys are fetched by name when no local copy exists.
pub const DEFAULT_KEY_URL: &str = "https://alpinelinux.org/keys";

/// Why repositories could not be configured or their indexes loaded.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// A `--repo` value or repositories-file line is not a repository.
    #[error(
        "`{spec}` is not a repository: {reason}; expected an http(s):// or file:// URL or a path"
    )]
    BadRepository {
        /// What was given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// The repositories file cannot be read.
    #[error("cannot read repositories file `{}`", path.display())]
    RepositoriesFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the repositories file is malformed.
    #[error("`{}` line {line}: expected `[@tag] URL`, found `{found}`", path.display())]
    RepositoriesFileLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line.
        found: String,
    },
    /// The index could not be fetched.
    #[error("cannot fetch the index of repository `{repo}`")]
    Fetch {
        /// The repository URL.
        repo: String,
        /// What went wrong.
        #[source]
        source: TransportError,
    },
    /// The signature names a key that is not trusted.
    #[error("signature of `{url}` is by `{key}`, which is not trusted (trusted: {})", if known.is_empty() { "no keys".to_string() } else { known.join(", ") })]
    UntrustedKey {
        /// The index URL.
        url: String,
        /// The key the signature names.
        key: String,
        /// The trusted key names.
        known: Vec<String>,
    },
    /// The signature does not verify with the trusted key of its name.
    #[error("signature of `{url}` by `{key}` does not verify with the trusted key from `{origin}`: the index was modified or signed by another key")]
    BadSignature {
        /// The index URL.
        url: String,
        /// The key name.
        key: String,
        /// Where the trusted key came from.
        origin: String,
    },
    /// The index carries no signature.
    #[error("`{url}` is not signed")]
    Unsigned {
        /// The index URL.
        url: String,
    },
    /// A pinned key fetched or cached by name is not the pinned key.
    #[error("the key that signs `{url}` could not be obtained")]
    Key {
        /// The index URL.
        url: String,
        /// What went wrong.
        #[source]
        source: TrustError,
    },
    /// The index archive is malformed.
    #[error("`{url}` is not a valid APKINDEX.tar.gz")]
    Archive {
        /// The index URL.
        url: String,
        /// What is wrong.
        #[source]
        source: ArchiveError,
    },
    /// The archive holds no `APKINDEX` file.
    #[error("`{url}` holds no `APKINDEX` file ({detail}); is this an apk repository?")]
    MissingApkindex {
        /// The index URL.
        url: String,
        /// What was found instead.
        detail: String,
    },
    /// The `APKINDEX` text is malformed.
    #[error("the index `{url}` cannot be read")]
    Index {
        /// The index URL.
        url: String,
        /// What is wrong.
        #[source]
        source: IndexError,
    },
    /// The cache folder cannot be used.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// `--offline`, and the cache holds no copy of the index.
    #[error("offline: the index `{url}` is not in the cache{}", match path { Some(p) => format!(" (`{}`)", p.display()), None => " (no cache: `--no-cache` or no usable cache folder)".to_string() })]
    Offline {
        /// The index URL.
        url: String,
        /// Where the copy was looked for.
        path: Option<PathBuf>,
    },
    /// A `--repos` name is not a repository of a branch.
    #[error("`{0}` is not a repository name of a branch (such as main, community, testing)")]
    BadRepoName(String),
    /// The branch has the repository, but not for this arch.
    #[error("`{repo}` has no index for `{arch}`; it publishes {}", published.join(", "))]
    NoArchIndex {
        /// The repository URL (`<mirror>/<branch>/main`).
        repo: String,
        /// The arch asked for.
        arch: String,
        /// The known arches whose index the repository has.
        published: Vec<String>,
        /// The published arch close to the one asked (`ppc64le` for `ppc64`).
        closest: Option<String>,
    },
    /// No known arch has an index there: the branch (or the mirror) is wrong.
    #[error("`{repo}` has no index for any arch Alpine builds for; is `{branch}` a branch of this mirror?")]
    NoBranch {
        /// The repository URL.
        repo: String,
        /// The branch.
        branch: String,
    },
}

impl crate::report::Hinted for RepositoryError {
    fn hint(&self) -> Option<crate::report::Hint> {
        use crate::report::Hint;
        match self {
            RepositoryError::Fetch { repo, source } => match source {
                TransportError::NotFound { .. } => Some(Hint::fix(format!(
                    "check `{repo}`: an apk repository holds `ARCH/APKINDEX.tar.gz`"
                ))),
                other => crate::report::Hinted::hint(other),
            },
            RepositoryError::UntrustedKey { key, .. } => Some(Hint::fix(format!(
                "pass `--keys-dir DIR` with a folder holding `{key}`, or `--allow-untrusted` \
                 to use the index unverified"
            ))),
            RepositoryError::BadSignature { .. } => Some(Hint::Server {
                check: "fetch it again later (`--allow-untrusted` uses it unverified)".into(),
            }),
            RepositoryError::Unsigned { .. } => {
                Some(Hint::fix("pass `--allow-untrusted` to use it anyway"))
            }
            RepositoryError::NoArchIndex { arch, closest, .. } => Some(Hint::fix(match closest {
                Some(close) => format!(
                    "did you mean `--arch {close}`? For another apk repository that \
                     publishes `{arch}`, pass its URL with `--repo URL`"
                ),
                None => format!(
                    "for an apk repository that publishes `{arch}`, pass its URL with `--repo URL`"
                ),
            })),
            RepositoryError::NoBranch { .. } => Some(Hint::fix(
                "pass `--branch` with one of the mirror's branches: `latest-stable`, `edge`, `v3.19`...",
            )),
            RepositoryError::Cache(e) => crate::report::Hinted::hint(e),
            RepositoryError::Offline { .. } => Some(Hint::fix(
                "build once online with the same `--cache-dir` to fill the cache",
            )),
            RepositoryError::BadRepoName(_) => Some(Hint::fix(
                "`--repos` takes names like `main,community,testing`; for other repositories use `--repo URL`",
            )),
            _ => None,
        }
    }
}

/// `--mirror`, `--branch` and `--repos`: repositories of one branch of an Alpine mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// The mirror's base URL ([`DEFAULT_MIRROR`] by default).
    pub url: String,
    /// `latest-stable`, `edge`, `v3.19`...
    pub branch: String,
    /// The branch's repositories to use, in priority order ([`DEFAULT_REPOS`] by default).
    pub repos: Vec<String>,
}

impl Mirror {
    /// The default repositories of `branch` on the mirror at `url`.
    pub fn new(url: &str, branch: &str) -> Mirror {
        Mirror {
            url: url.to_string(),
            branch: branch.to_string(),
            repos: DEFAULT_REPOS.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// `<mirror>/<branch>`
    pub fn branch_url(&self) -> String {
        format!(
            "{}/{}",
            self.url.trim_end_matches('/'),
            self.branch.trim_matches('/')
        )
    }

    /// `<mirror>/<branch>/<repo>` for each repository, in order.
    pub fn repositories(&self) -> Result<Vec<Repository>, RepositoryError> {
        let base = self.branch_url();
        let mut seen = Vec::new();
        for name in &self.repos {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && name != "."
                && name != "..";
            if !valid || seen.contains(&name) {
                return Err(RepositoryError::BadRepoName(name.clone()));
            }
            seen.push(name);
        }
        self.repos
            .iter()
            .map(|r| Repository::parse(&format!("{base}/{r}")))
            .collect()
    }

    /// Whether a missing index of the repository at `position` is only a warning.
    pub fn is_optional(&self, position: usize) -> bool {
        self.repos.get(position).is_some_and(|r| r != REQUIRED_REPO)
    }
}

/// Of the `published` arches, the one a user asking for `arch` most likely meant
/// (`ppc64le` for `ppc64`, `x86_64` for `x86`, `armv7` for `armhf`): the longest
/// shared prefix, at least the family's three letters.
pub fn closest_arch(arch: &str, published: &[String]) -> Option<String> {
    let shared = |other: &str| {
        arch.bytes()
            .zip(other.bytes())
            .take_while(|(a, b)| a == b)
            .count()
    };
    published
        .iter()
        .filter(|p| p.as_str() != arch && shared(p) >= 3)
        .max_by_key(|p| (shared(p), std::cmp::Reverse(p.len().abs_diff(arch.len()))))
        .cloned()
}

/// One repository, with the `@tag` it was given in a repositories file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// The base URL or absolute path, without a trailing `/`.
    pub url: String,
    /// `@tag` from a repositories file: packages from it are used only when asked for as
    /// `name@tag`.
    pub tag: Option<String>,
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "@{tag} {}", self.url),
            None => f.write_str(&self.url),
        }
    }
}

impl Repository {
    /// A `--repo` value: an http(s):// or file:// URL, or a path (made absolute against
    /// the current folder, so it still means the same after a chdir or in
    /// `etc/apk/repositories`).
    pub fn parse(spec: &str) -> Result<Repository, RepositoryError> {
        let bad = |reason: &str| RepositoryError::BadRepository {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains white space or control characters"));
        }
        let url = if transport::is_remote(trimmed) || trimmed.starts_with("file:") {
            if trimmed.starts_with("file:") && transport::local_path(trimmed).is_none() {
                return Err(bad("the file:// URL names no local path"));
            }
            trimmed.to_string()
        } else if trimmed.contains("://") {
            return Err(bad("only http://, https:// and file:// are supported"));
        } else {
            let absolute = std::path::absolute(trimmed)
                .map_err(|e| bad(&format!("cannot make the path absolute ({e})")))?;
            absolute.to_string_lossy().into_owned()
        };
        let url = url.trim_end_matches('/');
        let url = if url.is_empty() { "/" } else { url };
        Ok(Repository {
            url: url.to_string(),
            tag: None,
        })
    }

    /// `<mirror>/<branch>/main` and `<mirror>/<branch>/community`.
    pub fn from_mirror(mirror: &str, branch: &str) -> Result<Vec<Repository>, RepositoryError> {
        Mirror::new(mirror, branch).repositories()
    }

    /// Parses the text of an apk repositories file: one repository per line, `#`
    /// comments and blank lines skipped, `@tag URL` lines kept with their tag.
    pub fn parse_repositories_file(
        text: &str,
        path: &Path,
    ) -> Result<Vec<Repository>, RepositoryError> {
        let mut out = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || RepositoriesFileLineError(path, i + 1, line);
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            let (tag, spec) = match first.strip_prefix('@') {
                Some(tag) if !tag.is_empty() => (Some(tag.to_string()), words.next()),
                Some(_) => return Err(bad().into()),
                None => (None, Some(first)),
            };
            let (Some(spec), None) = (spec, words.next()) else {
                return Err(bad().into());
            };
            let mut repo = Repository::parse(spec)?;
            repo.tag = tag;
            out.push(repo);
        }
        Ok(out)
    }

    /// Reads and parses an apk repositories file.
    pub fn read_repositories_file(path: &Path) -> Result<Vec<Repository>, RepositoryError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| RepositoryError::RepositoriesFile {
                path: path.to_path_buf(),
                source,
            })?;
        Repository::parse_repositories_file(&text, path)
    }

    /// `<url>/<arch>/APKINDEX.tar.gz`
    pub fn index_url(&self, arch: &str) -> String {
        format!("{}/{arch}/APKINDEX.tar.gz", self.base())
    }

    /// `<url>/<arch>/<name>-<version>.apk`
    pub fn package_url(&self, arch: &str, package: &Package) -> String {
        format!("{}/{arch}/{}", self.base(), package.file_name())
    }

    /// Whether the repository is fetched over HTTP.
    pub fn is_remote(&self) -> bool {
        transport::is_remote(&self.url)
    }

    /// The repository's folder when it is local (`file://` or a path).
    pub fn local_dir(&self) -> Option<PathBuf> {
        transport::local_path(&self.url)
    }

    fn base(&self) -> &str {
        // `/` as a repository would otherwise give `//arch/...`.
        self.url.strip_suffix('/').unwrap_or(&self.url)
    }
}

struct RepositoriesFileLineError<'a>(&'a Path, usize, &'a str);

impl From<RepositoriesFileLineError<'_>> for RepositoryError {
    fn from(e: RepositoriesFileLineError<'_>) -> Self {
        RepositoryError::RepositoriesFileLine {
            path: e.0.to_path_buf(),
            line: e.1,
            found: e.2.chars().take(200).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_args_keep_urls_and_make_paths_absolute() {
        let r = Repository::parse("https://dl-cdn.alpinelinux.org/alpine/v3.19/main/").unwrap();
        assert_eq!(r.url, "https://dl-cdn.alpinelinux.org/alpine/v3.19/main");
        assert_eq!(
            r.index_url("x86_64"),
            "https://dl-cdn.alpinelinux.org/alpine/v3.19/main/x86_64/APKINDEX.tar.gz"
        );
        let r = Repository::parse("file:///srv/repo").unwrap();
        assert_eq!(r.local_dir(), Some(PathBuf::from("/srv/repo")));
        let r = Repository::parse("rel/repo").unwrap();
        assert!(Path::new(&r.url).is_absolute() && r.url.ends_with("/rel/repo"));
        assert!(Repository::parse("ftp://x/y").is_err());
        assert!(Repository::parse("").is_err());
        assert!(Repository::parse("a b").is_err());
    }

    #[test]
    fn mirror_and_branch_give_main_and_community() {
        let repos = Repository::from_mirror("https://m.example/alpine/", "v3.19").unwrap();
        let urls: Vec<_> = repos.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://m.example/alpine/v3.19/main",
                "https://m.example/alpine/v3.19/community"
            ]
        );
        let mut mirror = Mirror::new("https://m.example/alpine", "edge");
        mirror.repos = vec!["main".into(), "testing".into()];
        assert_eq!(
            mirror.repositories().unwrap()[1].url,
            "https://m.example/alpine/edge/testing"
        );
        assert!(!mirror.is_optional(0) && mirror.is_optional(1));
        for bad in ["", "a/b", "..", "main main"] {
            mirror.repos = vec![bad.to_string()];
            assert!(mirror.repositories().is_err(), "{bad}");
        }
        mirror.repos = vec!["main".into(), "main".into()];
        assert!(mirror.repositories().is_err());
    }

    #[test]
    fn the_closest_published_arch_shares_the_family() {
        let published: Vec<String> = ["aarch64", "armhf", "armv7", "ppc64le", "x86", "x86_64"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            closest_arch("ppc64", &published).as_deref(),
            Some("ppc64le")
        );
        assert_eq!(closest_arch("ppc", &published).as_deref(), Some("ppc64le"));
        assert_eq!(closest_arch("x86", &published[..4]).as_deref(), None);
        assert_eq!(closest_arch("x86", &published).as_deref(), Some("x86_64"));
        assert_eq!(closest_arch("mips64", &published), None);
        assert_eq!(closest_arch("riscv64", &published), None);
    }

    #[test]
    fn repositories_file_keeps_tags_and_skips_comments() {
        let text = "# comment\n\nhttps://a/main\n  @testing https://a/testing  \n/srv/local\n";
        let repos = Repository::parse_repositories_file(text, Path::new("f")).unwrap();
        assert_eq!(repos.len(), 3);
        assert_eq!(repos[0].tag, None);
        assert_eq!(repos[1].tag.as_deref(), Some("testing"));
        assert_eq!(repos[1].url, "https://a/testing");
        assert_eq!(repos[2].url, "/srv/local");
        let err = Repository::parse_repositories_file("@ https://x\n", Path::new("f")).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = Repository::parse_repositories_file("https://x https://y\n", Path::new("f"))
            .unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
