//! Where a staged tree goes once the build is done: renamed into place as a directory,
//! streamed into a tar archive, or added as an image to an OCI layout.
//!
//! ```text
//! let mut dest = Destination::open(path, format, force)?;   // once (for every arch)
//! let staging = dest.stage()?;  ... build into staging.path() ...
//! dest.take(staging, &tree)?;                                // once per arch
//! dest.finish()?;                                            // archive/layout into place
//! ```
//!
//! Archives and layouts are written inside a staging directory of their own (removed on
//! Ctrl-C like the tree's), then renamed into place, so a failed build leaves neither a
//! truncated archive nor a half-written layout.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::oci::{ImageInfo, OciLayout};
use super::tree::{walk, WalkOptions};
use super::{io_err, layer, Compression, Format, ImageError};
use crate::db::InstalledPackage;
use crate::output::Staging;

/// The name of the archive inside its staging directory.
const ARCHIVE: &str = "archive";

/// What becomes of staged trees.
#[derive(Debug)]
pub enum Destination {
    /// The tree is renamed to `path`.
    Directory {
        /// The sysroot.
        path: PathBuf,
        /// Replace a non-empty directory.
        force: bool,
    },
    /// The tree is archived at `path` (`-`: stdout).
    Tar {
        /// The archive.
        path: PathBuf,
        /// How it is compressed.
        compression: Compression,
        /// Where the archive is written before it is renamed; `None` for stdout.
        out: Option<Staging>,
    },
    /// Each tree becomes an image of the OCI layout at `path`.
    Oci {
        /// The layout directory.
        path: PathBuf,
        /// The layout, built in a staging directory committed to `path` at the end.
        layout: Box<(OciLayout, Staging)>,
    },
}

/// What the archive needs to know about a staged tree besides its files.
#[derive(Debug, Clone, Copy)]
pub struct ImageTree<'a> {
    /// Alpine's arch of the tree.
    pub arch: &'a str,
    /// apk's records of the installed packages.
    pub installed: &'a [InstalledPackage],
    /// The build could not give files their owners; see [`super::tree::WalkOptions`].
    pub owners_from_db: bool,
    /// `SOURCE_DATE_EPOCH`: mtimes are clamped to it and it dates the image.
    pub epoch: Option<u64>,
    /// The repositories the packages came from (`etc/apk/repositories` lines).
    pub repositories: &'a [String],
}

impl Destination {
    /// Checks the output path and prepares what the format writes into.
    pub fn open(path: &Path, format: Format, force: bool) -> Result<Destination, ImageError> {
        Ok(match format {
            Format::Directory => Destination::Directory {
                path: path.to_path_buf(),
                force,
            },
            Format::Tar(compression) => {
                let out = if path == Path::new("-") {
                    None
                } else {
                    check_file_output(path, force)?;
                    Some(Staging::create(&sibling(path, ".partial"), true)?)
                };
                Destination::Tar {
                    path: path.to_path_buf(),
                    compression,
                    out,
                }
            }
            Format::Oci => {
                let out = Staging::create(path, force)?;
                let layout = OciLayout::create(out.path())?;
                Destination::Oci {
                    path: path.to_path_buf(),
                    layout: Box::new((layout, out)),
                }
            }
        })
    }

    /// A new staging directory to build a tree in.
    pub fn stage(&self) -> Result<Staging, ImageError> {
        Ok(match self {
            Destination::Directory { path, force } => Staging::create(path, *force)?,
            Destination::Tar { out: Some(out), .. } => {
                Staging::create(&out.path().join("rootfs"), false)?
            }
            Destination::Tar { out: None, .. } => {
                Staging::create(&std::env::temp_dir().join("sysroot-mk-stdout"), true)?
            }
            Destination::Oci { layout, .. } => {
                Staging::create(&layout.1.path().join("rootfs"), false)?
            }
        })
    }

    /// Takes a finished tree: renames it into place, or archives it and removes it.
    pub fn take(&mut self, staging: Staging, tree: &ImageTree<'_>) -> Result<(), ImageError> {
        let walk_options = WalkOptions {
            installed: tree.installed,
            owners_from_db: tree.owners_from_db,
            epoch: tree.epoch,
        };
        match self {
            Destination::Directory { .. } => {
                if let Some(epoch) = tree.epoch {
                    super::tree::clamp_mtimes(staging.path(), epoch)?;
                }
                staging.commit()?
            }
            Destination::Tar {
                path,
                compression,
                out,
            } => {
                let entries = walk(staging.path(), &walk_options)?;
                match out {
                    Some(out) => {
                        let archive = out.path().join(ARCHIVE);
                        let file =
                            std::fs::File::create(&archive).map_err(io_err("create", &archive))?;
                        let buffered = std::io::BufWriter::new(file);
                        layer::write_compressed(
                            staging.path(),
                            &entries,
                            *compression,
                            buffered,
                            path,
                        )?
                        .into_inner()
                        .map_err(|e| io_err("write", path)(e.into_error()))?;
                    }
                    None => {
                        let stdout = std::io::stdout().lock();
                        let buffered = std::io::BufWriter::new(stdout);
                        layer::write_compressed(
                            staging.path(),
                            &entries,
                            *compression,
                            buffered,
                            path,
                        )?
                        .flush()
                        .map_err(io_err("write", path))?;
                    }
                }
            }
            Destination::Oci { layout, .. } => {
                let entries = walk(staging.path(), &walk_options)?;
                let info = ImageInfo {
                    platform: super::platform(tree.arch).ok_or_else(|| {
                        ImageError::UnknownPlatform {
                            arch: tree.arch.to_string(),
                        }
                    })?,
                    created: tree.epoch.unwrap_or_else(super::time::now),
                    labels: labels(tree),
                };
                layout.0.add_image(staging.path(), &entries, &info)?;
            }
        }
        Ok(())
    }

    /// Puts the archive or the layout in place (a directory is in place already).
    pub fn finish(self) -> Result<(), ImageError> {
        match self {
            Destination::Directory { .. } | Destination::Tar { out: None, .. } => Ok(()),
            Destination::Tar {
                path,
                out: Some(out),
                ..
            } => {
                let archive = out.path().join(ARCHIVE);
                std::fs::rename(&archive, &path).map_err(io_err("move the archive to", &path))
            }
            Destination::Oci { layout, .. } => {
                let (layout, out) = *layout;
                layout.finish()?;
                Ok(out.commit()?)
            }
        }
    }
}

/// The labels of an image: its arch, packages (`name-version`, sorted) and repositories.
fn labels(tree: &ImageTree<'_>) -> BTreeMap<String, String> {
    let mut packages: Vec<String> = tree
        .installed
        .iter()
        .map(|p| p.package.name_version())
        .collect();
    packages.sort();
    BTreeMap::from([
        ("sysroot-mk.arch".to_string(), tree.arch.to_string()),
        ("sysroot-mk.packages".to_string(), packages.join(" ")),
        (
            "sysroot-mk.repositories".to_string(),
            tree.repositories.join(" "),
        ),
    ])
}

/// A file output may replace a file only with `force`, and never a directory.
fn check_file_output(path: &Path, force: bool) -> Result<(), ImageError> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => Err(ImageError::IsADirectory {
            path: path.to_path_buf(),
        }),
        Ok(_) if !force => Err(ImageError::Exists {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
