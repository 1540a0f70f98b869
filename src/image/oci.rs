//! An OCI image layout (image-spec 1.1): `oci-layout`, `index.json`, `blobs/sha256/*`.
//!
//! Each image is one gzip layer (the tree's tar stream), a config naming its platform and
//! a manifest. One image is tagged `latest` in `index.json` directly; several (one per
//! arch) go into an image index blob, which `index.json` tags, as `docker buildx` and
//! `buildah` lay out multi-platform images. JSON is written compactly with keys in a
//! fixed order, so the same trees give the same digests.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::layer::{write_tar, Digesting};
use super::tree::Entry;
use super::{io_err, ImageError, Platform};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation `oci:DIR:TAG` (skopeo) and `DIR:TAG` (umoci) look tags up by.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The tag of the image (or index) in `index.json`.
pub(crate) const TAG: &str = "latest";

/// What an image says about itself besides its files.
#[derive(Debug, Clone)]
pub(crate) struct ImageInfo {
    /// Where it runs.
    pub platform: Platform,
    /// `created` of the config (the epoch when reproducible).
    pub created: u64,
    /// Labels of the config and annotations of the manifest.
    pub labels: BTreeMap<String, String>,
}

/// An OCI image layout under construction in a directory the caller commits.
#[derive(Debug)]
pub struct OciLayout {
    dir: PathBuf,
    manifests: Vec<Value>,
}

impl OciLayout {
    /// Starts a layout in the empty directory `dir`.
    pub(crate) fn create(dir: &Path) -> Result<OciLayout, ImageError> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
        Ok(OciLayout {
            dir: dir.to_path_buf(),
            manifests: Vec::new(),
        })
    }

    /// Adds an image of the tree at `root`; returns its manifest's digest.
    pub(crate) fn add_image(
        &mut self,
        root: &Path,
        entries: &[Entry],
        info: &ImageInfo,
    ) -> Result<String, ImageError> {
        let (layer, layer_size, diff_id) = self.write_layer(root, entries)?;
        let created = super::time::rfc3339(info.created);
        let mut platform = json!({ "architecture": info.platform.architecture, "os": "linux" });
        if let Some(variant) = info.platform.variant {
            platform["variant"] = json!(variant);
        }
        let mut config = platform.clone();
        config["created"] = json!(created);
        config["config"] = json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": info.labels,
        });
        config["rootfs"] = json!({ "type": "layers", "diff_ids": [diff_id] });
        config["history"] = json!([{
            "created": created,
            "created_by": concat!("sysroot-mk ", env!("CARGO_PKG_VERSION")),
        }]);
        let (config_digest, config_size) = self.write_blob(&config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": { "mediaType": CONFIG, "digest": config_digest, "size": config_size },
            "layers": [{ "mediaType": LAYER, "digest": layer, "size": layer_size }],
            "annotations": info.labels,
        });
        let (digest, size) = self.write_blob(&manifest)?;
        self.manifests.push(json!({
            "mediaType": MANIFEST,
            "digest": digest,
            "size": size,
            "platform": platform,
        }));
        Ok(digest)
    }

    /// Writes `oci-layout` and `index.json`; the directory is then a complete layout.
    pub(crate) fn finish(mut self) -> Result<(), ImageError> {
        let tagged = if self.manifests.len() == 1 {
            self.manifests.remove(0)
        } else {
            let index = json!({
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": self.manifests,
            });
            let (digest, size) = self.write_blob(&index)?;
            json!({ "mediaType": INDEX, "digest": digest, "size": size })
        };
        let mut tagged = tagged;
        tagged["annotations"] = json!({ REF_NAME: TAG });
        let top = json!({ "schemaVersion": 2, "mediaType": INDEX, "manifests": [tagged] });
        self.write_file("index.json", &to_bytes(&top))?;
        self.write_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
    }

    /// Streams the tree through gzip into a blob; returns its digest, size and the
    /// digest of the uncompressed tar (the config's `diff_id`).
    fn write_layer(
        &self,
        root: &Path,
        entries: &[Entry],
    ) -> Result<(String, u64, String), ImageError> {
        let tmp = self.dir.join("blobs/sha256/.layer.partial");
        let file = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
        let compressed = Digesting::new(std::io::BufWriter::new(file));
        let gz = flate2::GzBuilder::new().write(compressed, flate2::Compression::default());
        let (gz, diff_id, _) = write_tar(root, entries, Digesting::new(gz), &tmp)?.finish();
        let compressed = gz.finish().map_err(io_err("write", &tmp))?;
        let (file, digest, size) = compressed.finish();
        file.into_inner()
            .map_err(|e| io_err("write", &tmp)(e.into_error()))?;
        let blob = self.blob_path(&digest);
        std::fs::rename(&tmp, &blob).map_err(io_err("rename", &tmp))?;
        Ok((digest, size, diff_id))
    }

    /// Stores a JSON document as a blob; returns its digest and size.
    fn write_blob(&self, value: &Value) -> Result<(String, u64), ImageError> {
        let bytes = to_bytes(value);
        let mut digesting = Digesting::new(Vec::with_capacity(bytes.len()));
        let _ = digesting.write_all(&bytes);
        let (bytes, digest, size) = digesting.finish();
        let path = self.blob_path(&digest);
        std::fs::write(&path, bytes).map_err(io_err("write", &path))?;
        Ok((digest, size))
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), ImageError> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(io_err("write", &path))
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }
}

fn to_bytes(value: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail: its keys are strings.
    serde_json::to_vec(value).unwrap_or_default()
}
