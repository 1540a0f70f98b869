//! The half of a build up to the plan: the keyring, the verified indexes and the
//! resolution, or a lockfile's plan checked against the indexes (online) or taken as
//! it is, its packages to be checked against their own signatures (offline).

use super::{BuildError, BuildOptions, RepoSelection, Resolved};
use crate::index::{Dependency, Package};
use crate::lock::{LockError, Lockfile};
use crate::report::{Reporter, Stage};
use crate::resolve::Plan;
use crate::{repository, resolve, trust};
use std::time::Instant;

/// Resolves the world of `options` against the verified indexes of its repositories.
pub fn resolve(options: &BuildOptions, reporter: &dyn Reporter) -> Result<Resolved, BuildError> {
    let started = Instant::now();
    let arch = options.arch.name();
    let world = parse_world(&options.packages)?;
    let repos = select_repositories(&options.repos)?;
    let (transport, indexes) = IndexSource::of(options).load(&repos, reporter)?;
    let skipped = (0..repos.len())
        .filter(|i| !indexes.iter().any(|index| index.repo == *i))
        .collect();

    reporter.stage(Stage::Resolve);
    let keys = unique_keys(&indexes);
    // Resolved in place: only the planned packages are made into `Package`s.
    let sources: Vec<_> = indexes.iter().map(|i| (&i.index, i.repo)).collect();
    let plan = resolve::resolve_indexes(
        &sources,
        &world,
        &resolve::ResolveOptions {
            repo_tags: repos.iter().map(|r| r.tag.clone()).collect(),
            arch: Some(arch.to_string()),
        },
    )?;
    // The indexes (tens of megabytes for main and community) are freed on a thread of
    // their own: returning their pages takes milliseconds the build or the plan's
    // output need not wait for.
    let _ = std::thread::Builder::new()
        .name("sysroot-mk-free".into())
        .spawn(move || drop(indexes));
    Ok(Resolved {
        arch: options.arch,
        plan,
        repositories: repos,
        keys,
        world,
        signers: None,
        transport,
        started,
        fetched: None,
        skipped,
    })
}

/// The plan of a lockfile. Online, each locked stanza is checked against the signed
/// index of its repository and must be there unchanged. Offline, no index is read:
/// the packages are then checked against their own signatures when fetched (see
/// [`Resolved::signers`]).
pub fn resolve_locked(
    options: &BuildOptions,
    lock: &Lockfile,
    reporter: &dyn Reporter,
) -> Result<Resolved, BuildError> {
    let started = Instant::now();
    let arch = options.arch.name();
    if lock.arch != arch {
        return Err(LockError::Arch {
            locked: lock.arch.clone(),
            asked: arch.to_string(),
        }
        .into());
    }
    let world = parse_world(&lock.world)?;
    let repos = lock.repositories.clone();
    if repos.is_empty() {
        return Err(BuildError::NoRepositories);
    }
    let (transport, packages, keys, signers) = if options.offline {
        reporter.stage(Stage::Indexes);
        let keyring = IndexSource::of(options).keyring(reporter)?;
        let keys = locked_keys(lock, &keyring, options, reporter)?;
        let signers = (!options.allow_untrusted).then_some(keyring);
        let packages = lock.packages.iter().map(|p| p.package.clone()).collect();
        let transport = crate::transport::Transport::new(Default::default());
        (transport, packages, keys, signers)
    } else {
        let (transport, indexes) = IndexSource::of(options).load(&repos, reporter)?;
        reporter.stage(Stage::Resolve);
        let keys = unique_keys(&indexes);
        for name in &lock.keys {
            if !keys.iter().any(|(k, _)| k == name) {
                return Err(LockError::Key {
                    key: name.clone(),
                    why: "signs none of the repositories' indexes now",
                }
                .into());
            }
        }
        let keys = keys
            .into_iter()
            .filter(|(k, _)| lock.keys.contains(k))
            .collect();
        let mut by_repo: Vec<Vec<Package>> = vec![Vec::new(); repos.len()];
        for index in indexes {
            if let Some(slot) = by_repo.get_mut(index.repo) {
                *slot = index.packages();
            }
        }
        let packages = lock.check_against(&by_repo)?;
        (transport, packages, keys, None)
    };
    reporter.info(&format!(
        "building the {} packages of the lockfile, unresolved",
        lock.packages.len()
    ));
    Ok(Resolved {
        arch: options.arch,
        plan: Plan {
            packages,
            pinned_tags: lock.packages.iter().map(|p| p.tag.clone()).collect(),
        },
        repositories: repos,
        keys,
        world,
        signers,
        transport,
        started,
        fetched: None,
        skipped: Vec::new(),
    })
}

/// What finding and verifying the indexes needs, whether for a build or for an update
/// of an existing sysroot (whose own keys may be trusted).
pub(crate) struct IndexSource<'a> {
    /// The target arch.
    pub arch: &'a str,
    /// `--keys-dir`: when non-empty, the only trusted keys.
    pub keys_dirs: &'a [std::path::PathBuf],
    /// A sysroot whose `etc/apk/keys` are trusted too (before the host's pinned keys).
    pub target_root: Option<std::path::PathBuf>,
    /// Accept unsigned and unknown-key indexes.
    pub allow_untrusted: bool,
    /// The index cache; `None` for `--no-cache`.
    pub cache_dir: Option<std::path::PathBuf>,
    /// No network at all.
    pub offline: bool,
    /// The mirror branch the repositories come from, if they do.
    pub mirror: Option<repository::Mirror>,
}

impl IndexSource<'_> {
    fn of(options: &BuildOptions) -> IndexSource<'_> {
        IndexSource {
            arch: options.arch.name(),
            keys_dirs: &options.keys_dirs,
            target_root: None,
            allow_untrusted: options.allow_untrusted,
            cache_dir: options.cache_dir.clone(),
            offline: options.offline,
            mirror: match &options.repos {
                RepoSelection::Mirror(mirror) => Some(mirror.clone()),
                RepoSelection::Explicit { .. } => None,
            },
        }
    }

    fn keyring(&self, reporter: &dyn Reporter) -> Result<trust::Keyring, BuildError> {
        Ok(trust::Keyring::for_target(
            self.arch,
            &trust::KeyOptions {
                keys_dirs: self.keys_dirs.to_vec(),
                target_root: self.target_root.clone(),
                host_dirs: trust::KeyOptions::default_host_dirs(self.arch),
            },
            reporter,
        )?)
    }

    /// The transport (one HTTP client for indexes and packages: building one loads the
    /// native TLS roots, hundreds of files) and the verified indexes of `repos`.
    pub(crate) fn load(
        &self,
        repos: &[repository::Repository],
        reporter: &dyn Reporter,
    ) -> Result<(crate::transport::Transport, Vec<repository::LoadedIndex>), BuildError> {
        reporter.stage(Stage::Indexes);
        let keyring = self.keyring(reporter)?;
        let index_options = repository::IndexOptions {
            allow_untrusted: self.allow_untrusted,
            cache_dir: self.cache_dir.clone(),
            offline: self.offline,
            mirror: self.mirror.clone(),
            ..repository::IndexOptions::default()
        };
        let transport = crate::transport::Transport::new(index_options.transport.clone());
        let indexes = repository::load_indexes_with(
            &transport,
            repos,
            self.arch,
            &keyring,
            &index_options,
            reporter,
        )?;
        Ok((transport, indexes))
    }
}

/// Every package of `indexes` in full, in repository order (for an update, which
/// resolves against owned packages).
pub(crate) fn universe(indexes: Vec<repository::LoadedIndex>) -> Vec<Package> {
    let mut universe = Vec::with_capacity(indexes.iter().map(|i| i.index.len()).sum());
    for index in indexes {
        universe.extend(index.packages());
    }
    universe
}

/// The lockfile's keys from the local keyring, or pinned ones the cache holds (offline
/// nothing is fetched). With `--allow-untrusted` a missing key is only a warning.
fn locked_keys(
    lock: &Lockfile,
    keyring: &trust::Keyring,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<(String, Vec<u8>)>, BuildError> {
    let mut ring = keyring.clone();
    let mut keys = Vec::with_capacity(lock.keys.len());
    for name in &lock.keys {
        if ring.get(name).is_none() && !ring.is_explicit() {
            add_cached_pinned_key(&mut ring, name, options);
        }
        match ring.get(name) {
            Some(key) => keys.push((key.name.clone(), key.pem.clone())),
            None if options.allow_untrusted => reporter.warn(&format!(
                "the lockfile's key `{name}` is not trusted here; the sysroot goes without it (`--allow-untrusted`)"
            )),
            None => {
                return Err(LockError::Key {
                    key: name.clone(),
                    why: "is not trusted here (not in `--keys-dir`, the host's keys or the cache)",
                }
                .into())
            }
        }
    }
    Ok(keys)
}

/// A pinned key an earlier online build fetched by name into the cache.
fn add_cached_pinned_key(ring: &mut trust::Keyring, name: &str, options: &BuildOptions) {
    let Some(dir) = &options.cache_dir else {
        return;
    };
    let Ok(Some(cache)) = crate::cache::Cache::open_existing(dir) else {
        return;
    };
    let Ok(Some(bucket)) = cache.existing_bucket(crate::cache::KEY_BUCKET) else {
        return;
    };
    if let Some(pem) = repository::read_cached_key(&bucket, name) {
        let origin = bucket.path().join(name).display().to_string();
        let _ = ring.add_pinned(name, &pem, &origin);
    }
}

/// Parses the `PACKAGE` arguments with apk's dependency syntax.
fn parse_world(packages: &[String]) -> Result<Vec<Dependency>, BuildError> {
    packages
        .iter()
        .map(|p| Dependency::parse(p).map_err(|e| BuildError::BadRequest(p.clone(), e)))
        .collect()
}

/// The repositories in priority order: `--repo` arguments, then the repositories file.
pub(crate) fn select_repositories(
    selection: &RepoSelection,
) -> Result<Vec<repository::Repository>, BuildError> {
    let repos = match selection {
        RepoSelection::Mirror(mirror) => mirror.repositories()?,
        RepoSelection::Explicit {
            repos,
            repositories_file,
        } => {
            let mut list = repos
                .iter()
                .map(|r| repository::Repository::parse(r))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(file) = repositories_file {
                list.extend(repository::Repository::read_repositories_file(file)?);
            }
            list
        }
    };
    if repos.is_empty() {
        return Err(BuildError::NoRepositories);
    }
    Ok(repos)
}

/// The keys that verified the indexes, once each.
fn unique_keys(indexes: &[repository::LoadedIndex]) -> Vec<(String, Vec<u8>)> {
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    for key in indexes.iter().filter_map(|i| i.key.as_ref()) {
        if !keys.iter().any(|(name, _)| *name == key.name) {
            keys.push((key.name.clone(), key.pem.clone()));
        }
    }
    keys
}
