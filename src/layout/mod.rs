//! What `apk add --initdb` lays out and what apk leaves to the caller: the skeleton,
//! `etc/apk/repositories`, keys and the CA bundle.
//!
//! Call order in a build: [`init_skeleton`] on the empty root first (apk makes these before
//! extracting anything, so package directories land on them), then extraction and scripts,
//! then `db::write_database`, [`write_repositories`], [`install_keys`], [`ensure_ca_bundle`].

pub mod links;
use std::io;
use std::path::{Path, PathBuf};

use crate::report::Reporter;
use crate::rootfs::RootDir;

/// `etc/apk/repositories`, relative to the root.
pub const REPOSITORIES: &str = "etc/apk/repositories";
/// `etc/apk/keys`, relative to the root.
pub const KEYS_DIR: &str = "etc/apk/keys";
/// `etc/ssl/certs/ca-certificates.crt`, relative to the root.
pub const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

/// Where host CA bundles usually are (Debian/Alpine/Arch, Fedora/RHEL, openSUSE, others).
const HOST_CA_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];
const MAX_BUNDLE: u64 = 64 << 20;

/// Errors laying out the sysroot.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// Something inside the sysroot could not be created or written.
    #[error("cannot create `{path}` in the sysroot `{root}`")]
    Io {
        /// The path, relative to the root.
        path: String,
        /// The sysroot.
        root: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A key name would not be a plain file name inside `etc/apk/keys`.
    #[error("key name `{name}` is not a plain file name; rename the key file (no `/`, no control characters)")]
    InvalidKeyName {
        /// The offending name.
        name: String,
    },
    /// The host's CA bundle could not be read.
    #[error("cannot read the host CA bundle `{path}`")]
    HostBundle {
        /// The host file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// What the skeleton step did about the device nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceNodes {
    /// `dev/{null,zero,random,urandom,console}` were created (running as root).
    Created,
    /// Not root: apk silently skips them too.
    Skipped,
}

fn in_root<T>(root: &Path, path: &str, r: io::Result<T>) -> Result<T, LayoutError> {
    r.map_err(|source| LayoutError::Io {
        path: path.to_string(),
        root: root.to_path_buf(),
        source,
    })
}

/// Lays out what `apk add --initdb` creates before installing anything: `tmp` 1777,
/// `dev` with its five device nodes (0666, `console` 0600; only as root of the host), `etc/apk`,
/// `lib/apk/db`, `var/cache/{apk,misc}` 0755, `proc` 0555, and the empty `lib/apk/db/lock`
/// 0600. Existing entries are kept, as apk's `mkdirat`/`mknodat` calls keep them.
pub fn init_skeleton(root: &Path) -> Result<DeviceNodes, LayoutError> {
    let dir = in_root(root, ".", RootDir::open(root))?;
    in_root(root, "tmp", dir.mkdir("tmp", None, 0o1777))?;
    in_root(root, "dev", dir.mkdir("dev", None, 0o755))?;
    let devices = if rustix::process::geteuid().is_root() && !crate::userns::in_user_namespace() {
        for (name, mode, major, minor) in [
            ("dev/null", 0o666, 1, 3),
            ("dev/zero", 0o666, 1, 5),
            ("dev/random", 0o666, 1, 8),
            ("dev/urandom", 0o666, 1, 9),
            ("dev/console", 0o600, 5, 1),
        ] {
            in_root(root, name, dir.mknod_char(name, mode, major, minor))?;
        }
        DeviceNodes::Created
    } else {
        DeviceNodes::Skipped
    };
    for d in [
        "etc",
        "etc/apk",
        "lib",
        "lib/apk",
        "lib/apk/db",
        "var",
        "var/cache",
        "var/cache/apk",
        "var/cache/misc",
    ] {
        in_root(root, d, dir.mkdir(d, None, 0o755))?;
    }
    in_root(root, "proc", dir.mkdir("proc", None, 0o555))?;
    in_root(root, crate::db::LOCK, dir.touch(crate::db::LOCK, 0o600))?;
    Ok(devices)
}

/// Writes `etc/apk/repositories`: the given lines, one per line (atomically, 0644).
pub fn write_repositories(root: &Path, lines: &[String]) -> Result<(), LayoutError> {
    let dir = in_root(root, ".", RootDir::open(root))?;
    in_root(root, "etc/apk", dir.mkdir_all("etc/apk", 0o755))?;
    let mut text = String::new();
    for line in lines {
        text.push_str(line.trim_end_matches('\n'));
        text.push('\n');
    }
    in_root(
        root,
        REPOSITORIES,
        dir.write_atomic(REPOSITORIES, text.as_bytes(), 0o644),
    )
}

/// Copies keys into `etc/apk/keys/<name>` (0644), leaving any file a package installed
/// under the same name untouched. Returns the names actually written.
pub fn install_keys(root: &Path, keys: &[(String, Vec<u8>)]) -> Result<Vec<String>, LayoutError> {
    let dir = in_root(root, ".", RootDir::open(root))?;
    in_root(root, KEYS_DIR, dir.mkdir_all(KEYS_DIR, 0o755))?;
    let mut written = Vec::new();
    for (name, pem) in keys {
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.chars().any(char::is_control)
        {
            return Err(LayoutError::InvalidKeyName { name: name.clone() });
        }
        let rel = format!("{KEYS_DIR}/{name}");
        if in_root(root, &rel, dir.write_new(&rel, pem, 0o644))? {
            written.push(name.clone());
        }
    }
    Ok(written)
}

/// Where the sysroot's CA bundle came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaBundle {
    /// A package (`ca-certificates-bundle`) installed it.
    FromPackage,
    /// No package did; the host's bundle at this path was copied.
    CopiedFromHost(PathBuf),
    /// No package did and no host bundle was found: TLS from inside will fail.
    Missing,
}

/// Makes sure `etc/ssl/certs/ca-certificates.crt` exists: kept when a package installed
/// it, else copied from `host` (or `SSL_CERT_FILE`, or the usual host locations), and
/// the reporter is told so.
pub fn ensure_ca_bundle(
    root: &Path,
    host: Option<&Path>,
    reporter: &dyn Reporter,
) -> Result<CaBundle, LayoutError> {
    let dir = in_root(root, ".", RootDir::open(root))?;
    if in_root(root, CA_BUNDLE, dir.exists(CA_BUNDLE))? {
        return Ok(CaBundle::FromPackage);
    }
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let candidates = host
        .map(Path::to_path_buf)
        .into_iter()
        .chain(env)
        .chain(HOST_CA_BUNDLES.iter().map(PathBuf::from));
    let Some(found) = candidates.into_iter().find(|p| p.is_file()) else {
        reporter.warn(&format!(
            "no package installs `{CA_BUNDLE}` and no CA bundle was found on the host; \
             add `ca-certificates-bundle` to the packages so TLS works inside the sysroot"
        ));
        return Ok(CaBundle::Missing);
    };
    let bytes = read_limited(&found, MAX_BUNDLE).map_err(|source| LayoutError::HostBundle {
        path: found.clone(),
        source,
    })?;
    in_root(root, "etc/ssl/certs", dir.mkdir_all("etc/ssl/certs", 0o755))?;
    in_root(root, CA_BUNDLE, dir.write_atomic(CA_BUNDLE, &bytes, 0o644))?;
    reporter.warn(&format!(
        "no package installs `{CA_BUNDLE}`; copied the host's `{}` (add `ca-certificates-bundle` to use Alpine's)",
        found.display()
    ));
    Ok(CaBundle::CopiedFromHost(found))
}

fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(out)
}
