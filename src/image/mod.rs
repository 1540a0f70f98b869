//! Outputs other than a directory: a tar archive (plain, gzip or zstd) and an OCI image
//! layout, both made from the staged tree without root.
//!
//! A build always stages its tree in a hidden directory; [`Destination`] decides what
//! becomes of it where a directory build renames it into place: for tar and OCI the tree
//! is streamed into the archive and then removed. The archive's headers carry owners,
//! modes, hardlinks and device nodes; owners come from apk's `installed` records where
//! the build could not apply them to the staged files (a rootless build without
//! subordinate ids), and missing device nodes are added, so such an archive is the same
//! as a root build's.
//!
//! ```text
//! staged tree ──tree::walk──> sorted entries (owners from `installed` when needed)
//!      └──layer::write──> tar stream ──> file / stdout (gzip, zstd) or OCI blob
//! ```

mod destination;
mod layer;
mod oci;
mod platform;
mod push;
mod time;
mod tree;

pub use destination::{Destination, ImageTree};
pub use oci::OciLayout;
pub use platform::{platform, Platform};
pub use push::push;
pub use tree::{clamp_mtimes, walk, Entry, Kind};

use std::path::PathBuf;

/// What a build writes at its destination path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The sysroot as a directory (renamed into place).
    #[default]
    Directory,
    /// A tar archive of the sysroot; `-` as the path writes it to stdout.
    Tar(Compression),
    /// An OCI image layout directory with one image (or an index of one per arch).
    Oci,
}

/// How a tar archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip, with no name and mtime 0 in its header so it is reproducible.
    Gzip,
    /// zstd (level 3, single-threaded so the bytes do not depend on the host).
    Zstd,
}

impl Compression {
    /// The compression a path's extension asks for: `.gz`/`.tgz` gzip, `.zst`/`.tzst`
    /// zstd, anything else (including `-`, stdout) none.
    pub fn from_path(path: &std::path::Path) -> Compression {
        let name = path.to_string_lossy();
        if name.ends_with(".gz") || name.ends_with(".tgz") {
            Compression::Gzip
        } else if name.ends_with(".zst") || name.ends_with(".tzst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl crate::report::Hinted for ImageError {
    fn hint(&self) -> Option<crate::report::Hint> {
        match self {
            ImageError::Exists { .. } => Some(crate::report::Hint::fix(
                "choose another path, or pass `--force` to replace it",
            )),
            _ => None,
        }
    }
}

/// Writing an archive or an image failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file system operation failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The output file exists and `--force` was not given.
    #[error("`{}` exists", path.display())]
    Exists {
        /// The output file.
        path: PathBuf,
    },
    /// The output path of a tar archive is a directory.
    #[error("`{}` is a directory; a tar archive needs a file path (or `-` for stdout)", path.display())]
    IsADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The arch has no OCI platform name.
    #[error("no OCI platform is known for arch `{arch}`")]
    UnknownPlatform {
        /// Alpine's arch name.
        arch: String,
    },
    /// Several arches were asked for another output than OCI.
    #[error(
        "several `--arch` values need `--output oci` (one image index, one manifest per arch)"
    )]
    SeveralArchesNeedOci,
    /// `skopeo` could not be started.
    #[error("cannot run `skopeo` to push to `{reference}`; install it (apt-get install skopeo)")]
    Skopeo {
        /// The destination.
        reference: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `skopeo copy` failed.
    #[error("`skopeo copy` to `{reference}` {status}: {stderr}")]
    PushFailed {
        /// The destination.
        reference: String,
        /// How skopeo exited.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// Preparing the staging directory failed.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

fn io_err(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Io {
        action,
        path,
        source,
    }
}
