//! Lockfiles and `--offline`, through the binary: `--lock` writes the resolution,
//! `--locked` rebuilds the same tree (online, and offline with no network at all), a
//! changed lockfile or a repository that lost a package fails clearly, and an offline
//! build with a cold cache fails with one line and writes nothing.

use crate::support;
use crate::tree_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::http::TestServer;
use sysroot_mk::archive::SignatureAlgorithm;
use sysroot_mk::lock::Lockfile;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysroot-mk"));
    cmd.env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("XDG_CACHE_HOME");
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A build of `args` into `dir` with the x86_64 keys and `cache`, no scripts;
/// `packages` follow DIR.
fn build(shared: &Path, cache: &Path, dir: &Path, args: &[&str], packages: &[&str]) -> Output {
    bin()
        .args(["--arch", "x86_64", "--no-scripts", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .arg(dir)
        .args(packages)
        .output()
        .unwrap()
}

fn assert_same_tree(a: &Path, b: &Path) {
    let diffs = tree_support::differences(&tree_support::tree(a), &tree_support::tree(b));
    assert!(diffs.is_empty(), "{diffs:#?}");
    for db in ["installed", "world", "scripts.tar", "triggers"] {
        let rel = format!("lib/apk/db/{db}");
        assert_eq!(
            std::fs::read(a.join(&rel)).ok(),
            std::fs::read(b.join(&rel)).ok(),
            "{rel} differs"
        );
    }
}

#[test]
fn lock_then_locked_offline_without_network_rebuilds_the_same_tree() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let server = TestServer::serve(&shared.join("v3.19"));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let lock = tmp.path().join("sysroot.lock");
    let repo = format!("{}/main", server.base);
    let first = tmp.path().join("first");
    let out = build(
        &shared,
        &cache,
        &first,
        &["--repo", &repo, "--lock", lock.to_str().unwrap()],
        &["alpine-base"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The lockfile: format version, arch, world, repository, key, and each installed
    // package's full stanza in install order.
    let text = std::fs::read_to_string(&lock).unwrap();
    let header: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "sysroot-mk-lock 1",
            "arch x86_64",
            "world alpine-base",
            &format!("repository {repo}"),
            &format!("key {}", support::ALPINE_X86_64_KEY),
        ]
    );
    let parsed = Lockfile::parse(&text).unwrap();
    let installed = std::fs::read_to_string(first.join("lib/apk/db/installed")).unwrap();
    let locked_names: Vec<String> = parsed
        .packages
        .iter()
        .map(|p| p.package.name_version())
        .collect();
    let mut installed_names: Vec<String> = installed
        .lines()
        .filter_map(|l| l.strip_prefix("P:").map(str::to_string))
        .collect();
    let mut sorted: Vec<String> = parsed
        .packages
        .iter()
        .map(|p| p.package.name.clone())
        .collect();
    sorted.sort();
    installed_names.sort();
    assert_eq!(sorted, installed_names);
    // In install order: the plan's.
    let plan = bin()
        .args(["plan", "--offline", "--arch", "x86_64", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--repo", &repo, "alpine-base"])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", stderr(&plan));
    let planned: Vec<String> = String::from_utf8_lossy(&plan.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(locked_names, planned);
    let busybox = text
        .split("\n\n")
        .find(|b| b.contains("\nP:busybox\n"))
        .unwrap();
    for field in [
        "C:Q1",
        "V:1.36.1-r15",
        "A:x86_64",
        "S:",
        "I:",
        "T:",
        "U:",
        "L:",
        "o:busybox",
        "m:",
        "t:",
        "c:",
        "D:",
    ] {
        assert!(
            busybox.contains(&format!("\n{field}")),
            "{field} missing in {busybox}"
        );
    }

    // Offline with the server up: not one request reaches it.
    let requests = server.log().len();
    let offline = tmp.path().join("offline");
    let out = build(
        &shared,
        &cache,
        &offline,
        &["--locked", lock.to_str().unwrap(), "--offline"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        server.log().len(),
        requests,
        "an offline build made requests"
    );
    assert_same_tree(&first, &offline);

    // Online, checked against the signed index: the same tree too.
    let online = tmp.path().join("online");
    let out = build(
        &shared,
        &cache,
        &online,
        &["--locked", lock.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&first, &online);

    // The mirror gone (its port closed), and, where possible, no network at all.
    drop(server);
    let closed = tmp.path().join("closed");
    let out = build(
        &shared,
        &cache,
        &closed,
        &["--locked", lock.to_str().unwrap(), "--offline"],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&first, &closed);
    let isolated = tmp.path().join("isolated");
    let probe = Command::new("unshare").args(["-n", "true"]).output();
    if probe.is_ok_and(|o| o.status.success()) {
        let out = Command::new("unshare")
            .arg("-n")
            .arg(env!("CARGO_BIN_EXE_sysroot-mk"))
            .args(["--arch", "x86_64", "--no-scripts", "--keys-dir"])
            .arg(shared.join("keys/x86_64"))
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--locked", lock.to_str().unwrap(), "--offline"])
            .arg(&isolated)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_same_tree(&first, &isolated);
    } else {
        eprintln!("skipped (part): `unshare -n` is not available");
    }
    // Plain `--offline` resolves from the cached index, also without the network.
    let resolved = tmp.path().join("resolved");
    let out = build(
        &shared,
        &cache,
        &resolved,
        &["--repo", &repo, "--offline"],
        &["alpine-base"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&first, &resolved);
}

#[test]
fn offline_with_a_cold_cache_fails_in_one_line_and_writes_nothing() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let server = TestServer::serve(&shared.join("v3.19"));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let repo = format!("{}/main", server.base);
    let dir = tmp.path().join("sysroot");
    let out = build(
        &shared,
        &cache,
        &dir,
        &["--repo", &repo, "--offline"],
        &["musl"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "offline: the index `{repo}/x86_64/APKINDEX.tar.gz` is not in the cache"
        )),
        "{err}"
    );
    assert!(server.log().is_empty(), "{:?}", server.log());
    assert!(
        !dir.exists() && !cache.exists(),
        "an offline failure wrote something"
    );

    // The index cached but not the packages: the first missing package is named.
    let warm = tmp.path().join("warm");
    let out = bin()
        .args(["plan", "--arch", "x86_64", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--repo", &repo, "musl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = build(
        &shared,
        &cache,
        &warm,
        &["--repo", &repo, "--offline"],
        &["musl"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("offline: package `musl-1.2.4_git20230717-r4` is not in the cache"),
        "{err}"
    );
    assert!(!warm.exists(), "an offline failure wrote the sysroot");
}

/// A package as abuild makes one: `.PKGINFO` holds every field of its stanza, and the
/// signature (by `signer`, if any) is over the control member only.
struct Signed {
    name: String,
    bytes: Vec<u8>,
    checksum: String,
    installed: usize,
}

impl Signed {
    fn new(name: &str, signer: Option<&str>) -> Signed {
        Signed::with_payload(name, signer, &format!("{name} 1.0-r0\n"))
    }

    fn with_payload(name: &str, signer: Option<&str>, payload: &str) -> Signed {
        use base64::Engine;
        use sha1::Digest;
        let data = support::gzip(&{
            let mut tar = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(payload.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(1_700_000_000);
            header.set_cksum();
            tar.append_data(&mut header, format!("{name}.txt"), payload.as_bytes())
                .unwrap();
            tar.into_inner().unwrap()
        });
        let datahash = hex::encode(sha2::Sha256::digest(&data));
        let pkginfo = format!(
            "pkgname = {name}\npkgver = 1.0-r0\npkgdesc = fixture {name}\nurl = https://example.invalid\nbuilddate = 1700000000\nsize = {}\narch = x86_64\norigin = {name}\ncommit = 0000000000000000000000000000000000000000\nmaintainer = Test <t@example.invalid>\nlicense = MIT\ndatahash = {datahash}\n",
            payload.len()
        );
        let control = support::gzip(&support::cut_tar(&[(".PKGINFO", pkginfo.as_bytes())]));
        let checksum = format!(
            "Q1{}",
            base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&control))
        );
        let signature = match signer {
            Some(key) => support::signature_member(&control, key, key, SignatureAlgorithm::Sha1),
            None => Vec::new(),
        };
        Signed {
            name: name.to_string(),
            bytes: [signature, control, data].concat(),
            checksum,
            installed: payload.len(),
        }
    }

    fn stanza(&self) -> String {
        format!(
            "C:{}\nP:{name}\nV:1.0-r0\nA:x86_64\nS:{}\nI:{}\nT:fixture {name}\nU:https://example.invalid\nL:MIT\no:{name}\nm:Test <t@example.invalid>\nt:1700000000\nc:0000000000000000000000000000000000000000\n",
            self.checksum,
            self.bytes.len(),
            self.installed,
            name = self.name
        )
    }
}

/// Lays out a repository of `packages` at `root/x86_64`, its index signed by the test
/// key.
fn write_repo(root: &Path, packages: &[&Signed]) {
    let dir = root.join("x86_64");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = packages.iter().map(|p| p.stanza() + "\n").collect();
    std::fs::write(
        dir.join("APKINDEX.tar.gz"),
        support::index_archive(
            &text,
            support::Signer::Key(support::TEST_KEY, SignatureAlgorithm::Sha256),
        ),
    )
    .unwrap();
    for p in packages {
        std::fs::write(dir.join(format!("{}-1.0-r0.apk", p.name)), &p.bytes).unwrap();
    }
}

/// A served fixture repository of `a` and `b`, a lockfile of a build of both, and the
/// cache it filled.
struct Locked {
    tmp: tempfile::TempDir,
    keys: tempfile::TempDir,
    server: TestServer,
    a: Signed,
    b: Signed,
}

impl Locked {
    fn new() -> Locked {
        let tmp = tempfile::tempdir().unwrap();
        let a = Signed::new("a", Some(support::TEST_KEY));
        let b = Signed::new("b", Some(support::TEST_KEY));
        write_repo(&tmp.path().join("repo"), &[&a, &b]);
        let server = TestServer::serve(&tmp.path().join("repo"));
        let locked = Locked {
            keys: support::keys_dir(&[support::TEST_KEY]),
            tmp,
            server,
            a,
            b,
        };
        let out = locked.run(
            &["--repo", &locked.server.base.clone(), "--lock"],
            "first",
            &["a", "b"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        locked
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Runs a build into `dir` with `args`, the lockfile path after them, then `packages`.
    fn run(&self, args: &[&str], dir: &str, packages: &[&str]) -> Output {
        bin()
            .args(["--arch", "x86_64", "--no-scripts", "--keys-dir"])
            .arg(self.keys.path())
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .args(args)
            .arg(self.path("lock"))
            .arg(self.path(dir))
            .args(packages)
            .output()
            .unwrap()
    }

    fn edit_lock(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.path("lock")).unwrap();
        assert!(text.contains(from), "{from} not in {text}");
        std::fs::write(self.path("lock"), text.replacen(from, to, 1)).unwrap();
    }

    /// Puts `package` into the package cache under its checksum's name.
    fn plant(&self, package: &Signed) {
        let key = sysroot_mk::fetch::cache_key(&package.checksum).unwrap();
        let path = self.path("cache/v1/packages").join(format!("{key}.apk"));
        std::fs::write(path, &package.bytes).unwrap();
    }
}

#[test]
fn locked_after_a_repository_lost_a_package_fails_clearly() {
    let s = Locked::new();
    let out = s.run(&["--locked"], "again", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&s.path("first"), &s.path("again"));
    write_repo(&s.path("repo"), &[&s.a]);
    let out = s.run(&["--locked"], "lost", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "repository `{}` no longer offers `b-1.0-r0` from the lockfile",
            s.server.base
        )),
        "{err}"
    );
    assert!(!s.path("lost").exists());
}

#[test]
fn a_changed_stanza_is_refused_online_and_offline() {
    let s = Locked::new();
    s.edit_lock("T:fixture b", "T:fixture b, changed");
    let out = s.run(&["--locked"], "online", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("`b-1.0-r0` in the lockfile differs from the signed index"),
        "{err}"
    );
    assert!(
        err.contains("the lockfile says `T:fixture b, changed`, the index says `T:fixture b`"),
        "{err}"
    );
    let out = s.run(&["--offline", "--locked"], "offline", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "the stanza says `T:fixture b, changed`, but its signed `.PKGINFO` says `fixture b`"
        ),
        "{err}"
    );
    assert!(!s.path("online").exists() && !s.path("offline").exists());
}

#[test]
fn a_changed_checksum_is_refused_online_and_its_package_offline() {
    let s = Locked::new();
    // A package of the same name made by someone without the trusted key, unsigned or
    // signed with another key, and the lockfile pointed at it.
    for (signer, offline_error) in [
        (None, "carries no signature"),
        (
            Some(support::OTHER_KEY),
            "its own signature does not verify with a trusted key",
        ),
    ] {
        let forged = Signed::with_payload("b", signer, "forged!!\n");
        s.plant(&forged);
        let text = std::fs::read_to_string(s.path("lock")).unwrap();
        let edited = text.replace(&s.b.checksum, &forged.checksum).replace(
            &format!(
                "S:{}
",
                s.b.bytes.len()
            ),
            &format!(
                "S:{}
",
                forged.bytes.len()
            ),
        );
        std::fs::write(s.path("lock"), &edited).unwrap();
        let out = s.run(&["--locked"], "online", &[]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains("`b-1.0-r0` in the lockfile differs from the signed index"),
            "{err}"
        );
        assert!(
            err.contains(&format!("the lockfile says `C:{}`", forged.checksum)),
            "{err}"
        );
        let out = s.run(&["--offline", "--locked"], "offline", &[]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(offline_error), "{err}");
        assert!(!s.path("offline").exists());
        std::fs::write(s.path("lock"), &text).unwrap();
    }
    // The same forgery signed with a trusted key is accepted: what refused it above was
    // the signature, nothing else about the forged package.
    let keys = support::keys_dir(&[support::TEST_KEY, support::OTHER_KEY]);
    let forged = Signed::with_payload("b", Some(support::OTHER_KEY), "forged!!\n");
    s.plant(&forged);
    s.edit_lock(&s.b.checksum, &forged.checksum);
    s.edit_lock(
        &format!(
            "S:{}
",
            s.b.bytes.len()
        ),
        &format!(
            "S:{}
",
            forged.bytes.len()
        ),
    );
    let out = bin()
        .args([
            "--arch",
            "x86_64",
            "--no-scripts",
            "--offline",
            "--keys-dir",
        ])
        .arg(keys.path())
        .arg("--cache-dir")
        .arg(s.path("cache"))
        .arg("--locked")
        .arg(s.path("lock"))
        .arg(s.path("trusted"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn offline_uses_a_pinned_key_cached_online_and_fetches_none() {
    use sysroot_mk::repository::{load_indexes, IndexOptions, Repository};
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let server = TestServer::serve(&shared.join("v3.19"));
    let repos = [Repository::parse(&format!("{}/main", server.base)).unwrap()];
    let ring = sysroot_mk::trust::Keyring::new("x86_64");
    let cache = tempfile::tempdir().unwrap();
    let online = IndexOptions {
        key_url: Some(format!("file://{}", shared.join("keys").display())),
        cache_dir: Some(cache.path().to_path_buf()),
        ..support::quick_index_options()
    };
    load_indexes(
        &repos,
        "x86_64",
        &ring,
        &online,
        &sysroot_mk::report::Silent,
    )
    .unwrap();
    assert!(cache
        .path()
        .join("v1/keys")
        .join(support::ALPINE_X86_64_KEY)
        .is_file());
    let requests = server.log().len();
    // A key source that would fail if asked: offline, it is not asked.
    let offline = IndexOptions {
        key_url: Some("file:///nonexistent-sysroot-mk-keys".to_string()),
        offline: true,
        ..online
    };
    let loaded = load_indexes(
        &repos,
        "x86_64",
        &ring,
        &offline,
        &sysroot_mk::report::Silent,
    )
    .unwrap();
    assert_eq!(
        loaded[0].key.as_ref().unwrap().name,
        support::ALPINE_X86_64_KEY
    );
    assert_eq!(server.log().len(), requests);
    // Without the cached key, offline says why instead of fetching it.
    std::fs::remove_file(
        cache
            .path()
            .join("v1/keys")
            .join(support::ALPINE_X86_64_KEY),
    )
    .unwrap();
    let recorder = support::Recorder::default();
    let err = load_indexes(&repos, "x86_64", &ring, &offline, &recorder).unwrap_err();
    assert!(err.to_string().contains("not trusted"), "{err}");
    let warnings = recorder.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("offline: ") && w.contains("--keys-dir")),
        "{warnings:?}"
    );
    assert_eq!(server.log().len(), requests);
}

#[test]
fn the_build_splits_at_the_plan() {
    use sysroot_mk::build::{self, BuildOptions};
    use sysroot_mk::image::{Destination, Format};
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let options = BuildOptions {
        no_scripts: true,
        ..support::build_options(
            tmp.path().join("sysroot"),
            &["musl"],
            &[&shared.join("v3.19/main")],
            vec![shared.join("keys/x86_64")],
        )
    };
    let resolved = build::resolve(&options, &sysroot_mk::report::Silent).unwrap();
    let names: Vec<String> = resolved
        .plan
        .packages
        .iter()
        .map(|p| p.name_version())
        .collect();
    assert_eq!(names, ["musl-1.2.4_git20230717-r4"]);
    assert_eq!(resolved.lockfile().packages.len(), 1);
    // Nothing is written before `install`.
    assert!(!options.dir.exists());
    let mut destination = Destination::open(&options.dir, Format::Directory, false).unwrap();
    let summary = build::install(
        &options,
        resolved,
        &mut destination,
        &sysroot_mk::report::Silent,
    )
    .unwrap();
    destination.finish().unwrap();
    assert_eq!(summary.packages, 1);
    assert!(options.dir.join("lib/ld-musl-x86_64.so.1").exists());
}

#[test]
fn an_update_offline_reads_the_cache_and_names_what_it_lacks() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let server = TestServer::serve(&shared.join("v3.19"));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let repo = format!("{}/main", server.base);
    let dir = tmp.path().join("sysroot");
    let out = build(&shared, &cache, &dir, &["--repo", &repo], &["alpine-base"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing listens at the repository any more.
    drop(server);
    let before = tree_support::tree(&dir);

    // The same world: up to date, from the cached index alone.
    let out = build(
        &shared,
        &cache,
        &dir,
        &["--offline", "--repo", &repo],
        &["alpine-base"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is up to date"),
        "{}",
        stderr(&out)
    );

    // A package the cache does not hold: one line naming it, and DIR as it was.
    let out = bin()
        .args(["add", "--offline", "--no-scripts", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .arg("--cache-dir")
        .arg(&cache)
        .args(["--repo", &repo])
        .arg(&dir)
        .arg("doas")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("offline: package `doas-"), "{err}");
    let diffs = tree_support::differences(&before, &tree_support::tree(&dir));
    assert!(diffs.is_empty(), "{diffs:#?}");

    // `--lock` on an existing sysroot would be ignored by an update: refused instead.
    let lock = tmp.path().join("x.lock");
    let out = build(
        &shared,
        &cache,
        &dir,
        &[
            "--offline",
            "--repo",
            &repo,
            "--lock",
            lock.to_str().unwrap(),
        ],
        &["alpine-base"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert!(!lock.exists());
}
