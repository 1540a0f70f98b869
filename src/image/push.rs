//! `--push REF`: hands the finished OCI layout to `skopeo copy`. The registry protocol,
//! credentials (`skopeo login`, `REGISTRY_AUTH_FILE`) and TLS settings
//! (`registries.conf`, or the file `CONTAINERS_REGISTRIES_CONF` names) are skopeo's;
//! nothing of them is reimplemented here.

use std::path::Path;
use std::process::Command;

use super::oci::TAG;
use super::{io_err, ImageError};

/// Copies the image (every platform of an index) tagged `latest` in the layout at
/// `layout` to `reference` (`HOST/REPO:TAG`, or any skopeo destination such as
/// `docker://...`); returns the digest the destination stored.
pub fn push(layout: &Path, reference: &str) -> Result<String, ImageError> {
    let destination = if reference.contains("://") || reference.starts_with("oci:") {
        reference.to_string()
    } else {
        format!("docker://{reference}")
    };
    let digest_file =
        tempfile::NamedTempFile::new().map_err(io_err("create", &std::env::temp_dir()))?;
    let mut source = std::ffi::OsString::from("oci:");
    source.push(layout.as_os_str());
    source.push(format!(":{TAG}"));
    let mut skopeo = Command::new("skopeo");
    // containers' variable for another registries.conf (e.g. to mark a plain-HTTP registry
    // `insecure`), which skopeo 1.9 (Debian 12) ignores unless given as its flag.
    if let Some(conf) = std::env::var_os("CONTAINERS_REGISTRIES_CONF") {
        skopeo.arg("--registries-conf").arg(conf);
    }
    let output = skopeo
        .args(["copy", "--all", "--quiet", "--digestfile"])
        .arg(digest_file.path())
        .arg(source)
        .arg(&destination)
        .output()
        .map_err(|source| ImageError::Skopeo {
            reference: destination.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(ImageError::PushFailed {
            reference: destination,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let digest =
        std::fs::read_to_string(digest_file.path()).map_err(io_err("read", digest_file.path()))?;
    Ok(digest.trim().to_string())
}
