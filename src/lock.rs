//! Lockfiles: the exact resolution of a build, written by `--lock FILE` and built
//! again, without resolving, by `--locked FILE`.
//!
//! The format is line-based text, diff-friendly, in blocks separated by blank lines:
//!
//! ```text
//! # comment lines start with `#`
//! sysroot-mk-lock 1                       <- the format version, first
//! arch x86_64
//! world alpine-base                       <- one per world entry, in order
//! repository https://mirror/v3.19/main    <- in priority order; `@tag URL` when tagged
//! key alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub
//!
//! package 0                               <- position of its repository (0 = first)
//! C:Q1...                                 <- the full index stanza, every field
//! P:musl
//! ...
//!
//! package 1 @edge                         <- pinned to the repository tag `@edge`
//! ...
//! ```
//!
//! Packages are in install order. Stanza lines are `APKINDEX` lines, read by the same
//! parser; nothing else may appear in a block.
//!
//! Trust: a lockfile is not signed. Built online, every stanza is checked against the
//! signed index of its repository (all fields, `C:` included), so a changed lockfile
//! fails there. Built offline, no index vouches for it: each package must carry its
//! own signature by a trusted key over its control member, `C:` must name that control
//! member, the data must match its `datahash`, and the stanza must say what the signed
//! `.PKGINFO` says (see `package::verify_signed_stanza`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::index::{parse_apkindex, Dependency, Package};
use crate::repository::Repository;

/// The format version written; files of other versions are refused.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &str = "sysroot-mk-lock";

/// Why a lockfile cannot be written, read or built.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Reading or writing the file failed.
    #[error("cannot {action} the lockfile `{}`", path.display())]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line does not belong in a lockfile.
    #[error("lockfile line {line}: {problem}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// Written by another version of the format.
    #[error("the lockfile is format {found}; this sysroot-mk reads format {FORMAT_VERSION} (lock again with `--lock`)")]
    Version {
        /// The version found.
        found: String,
    },
    /// The lockfile was made for another arch.
    #[error("the lockfile is for {locked}, not {asked}")]
    Arch {
        /// In the lockfile.
        locked: String,
        /// On the command line.
        asked: String,
    },
    /// A repository no longer offers a locked package.
    #[error("repository `{repo}` no longer offers `{package}` from the lockfile; lock again with `--lock`, or build from a mirror that keeps it")]
    NotOffered {
        /// `name-version`.
        package: String,
        /// The repository.
        repo: String,
    },
    /// A locked stanza differs from the signed index.
    #[error("`{package}` in the lockfile differs from the signed index of `{repo}`: the lockfile says `{locked}`, the index says `{index}`; the lockfile was changed, or the repository rebuilt the package (lock again with `--lock`)")]
    Differs {
        /// `name-version`.
        package: String,
        /// The repository.
        repo: String,
        /// The lockfile's line (`-` when absent).
        locked: String,
        /// The index's line (`-` when absent).
        index: String,
    },
    /// A locked key is not available to install into the sysroot.
    #[error("the lockfile names the key `{key}`, which {why}")]
    Key {
        /// The key name.
        key: String,
        /// Why it is missing.
        why: &'static str,
    },
}

impl crate::report::Hinted for LockError {
    fn hint(&self) -> Option<crate::report::Hint> {
        match self {
            LockError::Key { .. } => Some(crate::report::Hint::fix(
                "pass `--keys-dir` with a folder holding it",
            )),
            _ => None,
        }
    }
}

/// One package of a lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    /// Its full stanza; [`Package::repo`] is the position of its repository.
    pub package: Package,
    /// The repository tag it is pinned to, without `@`.
    pub tag: Option<String>,
}

/// A parsed lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockfile {
    /// The target arch's Alpine name.
    pub arch: String,
    /// The world, apk syntax.
    pub world: Vec<String>,
    /// The repositories, in priority order, with their tags.
    pub repositories: Vec<Repository>,
    /// Names of the keys installed into the sysroot (those that verified the indexes).
    pub keys: Vec<String>,
    /// The packages in install order.
    pub packages: Vec<LockedPackage>,
}

impl Lockfile {
    /// The lockfile of a resolution.
    pub fn new(
        arch: &str,
        world: &[Dependency],
        repositories: &[Repository],
        keys: &[String],
        packages: &[Package],
        tags: &[Option<String>],
    ) -> Lockfile {
        Lockfile {
            arch: arch.to_string(),
            world: world.iter().map(ToString::to_string).collect(),
            repositories: repositories.to_vec(),
            keys: keys.to_vec(),
            packages: packages
                .iter()
                .zip(tags.iter().chain(std::iter::repeat(&None)))
                .map(|(package, tag)| LockedPackage {
                    package: package.clone(),
                    tag: tag.clone(),
                })
                .collect(),
        }
    }

    /// The text of the lockfile.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(512 + self.packages.len() * 600);
        out.push_str(
            "# sysroot-mk lockfile: `sysroot-mk --locked FILE DIR` builds exactly this.\n",
        );
        let _ = writeln!(out, "{MAGIC} {FORMAT_VERSION}\narch {}", self.arch);
        for world in &self.world {
            let _ = writeln!(out, "world {world}");
        }
        for repo in &self.repositories {
            let _ = writeln!(out, "repository {repo}");
        }
        for key in &self.keys {
            let _ = writeln!(out, "key {key}");
        }
        for locked in &self.packages {
            let _ = write!(out, "\npackage {}", locked.package.repo);
            if let Some(tag) = &locked.tag {
                let _ = write!(out, " @{tag}");
            }
            out.push('\n');
            out.push_str(&stanza(&locked.package));
        }
        out
    }

    /// Writes the lockfile atomically (a temporary sibling renamed over it).
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let err = |source| LockError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".lock-")
            .tempfile_in(dir)
            .map_err(err)?;
        std::io::Write::write_all(&mut tmp, self.to_text().as_bytes()).map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// Reads and parses a lockfile.
    pub fn read(path: &Path) -> Result<Lockfile, LockError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Lockfile::parse(&text)
    }

    /// Parses the text of a lockfile.
    pub fn parse(text: &str) -> Result<Lockfile, LockError> {
        let mut lock = Lockfile {
            arch: String::new(),
            world: Vec::new(),
            repositories: Vec::new(),
            keys: Vec::new(),
            packages: Vec::new(),
        };
        let mut version = None;
        // The stanza being read: its `package` line's number, repository, tag, lines.
        let mut block: Option<(usize, usize, Option<String>, String)> = None;
        let lines = text.lines().chain(std::iter::once(""));
        for (i, raw) in lines.enumerate() {
            let line_no = i + 1;
            let syntax = |problem: String| LockError::Syntax {
                line: line_no,
                problem,
            };
            if raw.starts_with('#') {
                continue;
            }
            if raw.trim().is_empty() {
                if let Some((start, repo, tag, body)) = block.take() {
                    lock.packages
                        .push(read_stanza(start, repo, tag, &body, &lock)?);
                }
                continue;
            }
            if let Some((_, _, _, body)) = block.as_mut() {
                body.push_str(raw);
                body.push('\n');
                continue;
            }
            let (word, value) = raw.split_once(' ').unwrap_or((raw, ""));
            if version.is_none() && word != MAGIC {
                return Err(syntax(format!(
                    "expected `{MAGIC} {FORMAT_VERSION}` first; is this a sysroot-mk lockfile?"
                )));
            }
            match word {
                MAGIC if version.is_none() => {
                    if value != FORMAT_VERSION.to_string() {
                        return Err(LockError::Version {
                            found: value.to_string(),
                        });
                    }
                    version = Some(());
                }
                "arch" if lock.arch.is_empty() && !value.is_empty() => {
                    lock.arch = value.to_string()
                }
                "world" => lock.world.push(value.to_string()),
                "repository" => {
                    let path = Path::new("lockfile");
                    let mut repos = Repository::parse_repositories_file(value, path)
                        .map_err(|e| syntax(e.to_string()))?;
                    if repos.len() != 1 {
                        return Err(syntax("`repository` needs `[@tag] URL`".into()));
                    }
                    lock.repositories.append(&mut repos);
                }
                "key" if !value.is_empty() && !value.contains('/') => {
                    lock.keys.push(value.to_string())
                }
                "package" => {
                    let mut words = value.split(' ');
                    let repo = words
                        .next()
                        .and_then(|w| w.parse::<usize>().ok())
                        .filter(|&r| r < lock.repositories.len())
                        .ok_or_else(|| {
                            syntax(format!(
                                "`package` needs the position of one of the {} repositories above",
                                lock.repositories.len()
                            ))
                        })?;
                    let tag = match words.next() {
                        None => None,
                        Some(t) if t.len() > 1 && t.starts_with('@') => Some(t[1..].to_string()),
                        Some(other) => {
                            return Err(syntax(format!("`{other}` is not a `@tag`")));
                        }
                    };
                    if words.next().is_some() {
                        return Err(syntax("`package N [@tag]` takes nothing more".into()));
                    }
                    block = Some((line_no, repo, tag, String::new()));
                }
                _ => {
                    return Err(syntax(format!(
                        "unexpected `{}`",
                        raw.chars().take(80).collect::<String>()
                    )))
                }
            }
        }
        if version.is_none() {
            return Err(LockError::Syntax {
                line: 1,
                problem: format!("empty; expected `{MAGIC} {FORMAT_VERSION}`"),
            });
        }
        if lock.arch.is_empty() {
            return Err(LockError::Syntax {
                line: 1,
                problem: "no `arch` line".into(),
            });
        }
        Ok(lock)
    }

    /// Checks each locked stanza against the package of the same name and version in
    /// the signed index of its repository; returns those index packages, in order.
    /// `indexes[i]` holds the packages of repository `i`.
    pub fn check_against(&self, indexes: &[Vec<Package>]) -> Result<Vec<Package>, LockError> {
        let mut out = Vec::with_capacity(self.packages.len());
        for locked in &self.packages {
            let want = &locked.package;
            let repo = self
                .repositories
                .get(want.repo)
                .map_or_else(String::new, |r| r.url.clone());
            let offered = indexes.get(want.repo).and_then(|packages| {
                packages
                    .iter()
                    .find(|p| p.name == want.name && p.version == want.version)
            });
            let Some(offered) = offered else {
                return Err(LockError::NotOffered {
                    package: want.name_version(),
                    repo,
                });
            };
            if offered != want {
                let (locked, index) = first_difference(&stanza(want), &stanza(offered));
                return Err(LockError::Differs {
                    package: want.name_version(),
                    repo,
                    locked,
                    index,
                });
            }
            out.push(offered.clone());
        }
        Ok(out)
    }
}

/// The first line where two stanzas differ (`-` for a line one of them lacks).
fn first_difference(a: &str, b: &str) -> (String, String) {
    let mut left = a.lines();
    let mut right = b.lines();
    loop {
        match (left.next(), right.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (None, None) => return ("-".into(), "-".into()),
            (x, y) => return (x.unwrap_or("-").to_string(), y.unwrap_or("-").to_string()),
        }
    }
}

fn read_stanza(
    start: usize,
    repo: usize,
    tag: Option<String>,
    body: &str,
    lock: &Lockfile,
) -> Result<LockedPackage, LockError> {
    let syntax = |line: usize, problem: String| LockError::Syntax { line, problem };
    let mut packages =
        parse_apkindex(body, repo).map_err(|e| syntax(start, format!("in this package: {e}")))?;
    if packages.len() != 1 {
        return Err(syntax(start, "a `package` block holds one stanza".into()));
    }
    let package = packages.remove(0);
    if package.checksum.is_empty() {
        return Err(syntax(start, format!("`{}` has no `C:`", package.name)));
    }
    if lock.repositories.get(repo).is_none() {
        return Err(syntax(start, "no such repository".into()));
    }
    Ok(LockedPackage { package, tag })
}

/// Every field of a package as an index stanza, in apk's order, each written whenever
/// it is set (so that parsing it back gives the same package).
pub fn stanza(p: &Package) -> String {
    let mut out = String::with_capacity(600);
    let _ = writeln!(out, "C:{}\nP:{}\nV:{}", p.checksum, p.name, p.version);
    let fields: [(char, String); 12] = [
        ('A', p.arch.clone()),
        ('S', p.size.to_string()),
        ('I', p.installed_size.to_string()),
        ('T', p.description.clone()),
        ('U', p.url.clone()),
        ('L', p.license.clone()),
        ('o', p.origin.clone()),
        ('m', p.maintainer.clone()),
        ('t', p.build_time.to_string()),
        ('c', p.commit.clone()),
        (
            'k',
            p.provider_priority
                .map(|k| k.to_string())
                .unwrap_or_default(),
        ),
        (
            'q',
            p.replaces_priority
                .map(|q| q.to_string())
                .unwrap_or_default(),
        ),
    ];
    for (field, value) in fields {
        if !value.is_empty() {
            let _ = writeln!(out, "{field}:{value}");
        }
    }
    let lists = [
        ('D', crate::index::join(&p.depends)),
        ('p', crate::index::join(&p.provides)),
        ('i', crate::index::join(&p.install_if)),
        ('r', crate::index::join(&p.replaces)),
    ];
    for (field, value) in lists {
        if !value.is_empty() {
            let _ = writeln!(out, "{field}:{value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANZA: &str = "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:foo\nV:1.0-r0\nA:x86_64\nS:10\nI:20\nT:a foo\nU:https://x\nL:MIT\no:foo\nm:M <m@x>\nt:1700000000\nc:abc\nk:5\nD:bar>=1 so:libc.so !baz\np:cmd:foo=1.0-r0 so:libfoo.so.1=1\ni:bar qux\n";

    fn sample() -> Lockfile {
        let package = parse_apkindex(STANZA, 1).unwrap().remove(0);
        Lockfile {
            arch: "x86_64".into(),
            world: vec!["foo".into(), "bar>=1".into()],
            repositories: vec![
                Repository::parse("https://m/main").unwrap(),
                Repository {
                    tag: Some("edge".into()),
                    ..Repository::parse("https://m/edge").unwrap()
                },
            ],
            keys: vec!["k.rsa.pub".into()],
            packages: vec![LockedPackage {
                package,
                tag: Some("edge".into()),
            }],
        }
    }

    #[test]
    fn a_lockfile_round_trips() {
        let lock = sample();
        let text = lock.to_text();
        assert!(text.contains("\nsysroot-mk-lock 1\n"), "{text}");
        assert!(
            text.contains("\nrepository @edge https://m/edge\n"),
            "{text}"
        );
        assert!(text.contains("\npackage 1 @edge\nC:Q1"), "{text}");
        assert_eq!(Lockfile::parse(&text).unwrap(), lock);
    }

    #[test]
    fn other_versions_and_stray_lines_are_refused() {
        let text = sample().to_text();
        let err =
            Lockfile::parse(&text.replace("sysroot-mk-lock 1", "sysroot-mk-lock 2")).unwrap_err();
        assert!(matches!(err, LockError::Version { .. }), "{err}");
        let err = Lockfile::parse(&text.replace("package 1 @edge", "package 7")).unwrap_err();
        assert!(err.to_string().contains("line"), "{err}");
        let err = Lockfile::parse(&text.replace("T:a foo", "Tx a foo")).unwrap_err();
        assert!(err.to_string().contains("in this package"), "{err}");
        assert!(Lockfile::parse("arch x86_64\n").is_err());
    }

    #[test]
    fn check_against_names_the_first_differing_line() {
        let lock = sample();
        let mut index = lock.packages[0].package.clone();
        assert_eq!(
            lock.check_against(&[vec![], vec![index.clone()]]).unwrap(),
            vec![index.clone()]
        );
        index.description = "another foo".into();
        let err = lock
            .check_against(&[vec![], vec![index.clone()]])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("says `T:a foo`, the index says `T:another foo`"),
            "{err}"
        );
        let err = lock.check_against(&[vec![index], vec![]]).unwrap_err();
        assert!(matches!(err, LockError::NotOffered { .. }), "{err}");
    }
}
