//! Arguments for outputs other than a directory (tar, OCI), reproducibility and `--push`,
//! mapped onto the library's image options.

use super::UsageError;
use anyhow::Context;

/// What is written at DIR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum OutputKind {
    /// The sysroot as a directory.
    Dir,
    /// A tar archive, compressed by DIR's extension (`.tar.gz`, `.tar.zst`); `-` writes it uncompressed to stdout.
    Tar,
    /// A gzip-compressed tar archive, whatever the extension.
    #[value(name = "tar.gz")]
    TarGz,
    /// A zstd-compressed tar archive, whatever the extension.
    #[value(name = "tar.zst")]
    TarZst,
    /// An OCI image layout directory (one image per `--arch`, tagged `latest`).
    Oci,
}

#[derive(Debug, clap::Args)]
pub(super) struct ImageArgs {
    /// What to write at DIR: dir, tar (tar.gz, tar.zst) or oci.
    #[arg(
        long = "output",
        short = 'o',
        value_name = "KIND",
        default_value = "dir"
    )]
    output: OutputKind,
    /// Reproducible output: mtimes clamped to $SOURCE_DATE_EPOCH, or else to the newest package's build time.
    #[arg(long)]
    reproducible: bool,
    /// After an `--output oci` build, push the image (all arches) to REF (`HOST/REPO:TAG`) with `skopeo copy`.
    #[arg(long, value_name = "REF")]
    push: Option<String>,
}

impl ImageArgs {
    /// Whether the output is the sysroot directory itself.
    pub(super) fn is_directory(&self) -> bool {
        matches!(self.output, OutputKind::Dir)
    }
}

/// `--push`: the layout goes to the registry through skopeo; prints the stored digest.
pub(super) fn push_image(args: &ImageArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    if let Some(reference) = &args.push {
        let digest = sysroot_mk::image::push(dir, reference)
            .with_context(|| format!("pushing `{}` failed", dir.display()))?;
        println!("{reference}@{digest}");
    }
    Ok(())
}

/// The output format, the epoch (`SOURCE_DATE_EPOCH`) and `--reproducible` of a build.
pub(super) fn image_options(
    args: &ImageArgs,
    dir: &std::path::Path,
    simulate: bool,
) -> anyhow::Result<(sysroot_mk::image::Format, Option<u64>, bool)> {
    use sysroot_mk::image::{Compression, Format};
    let format = match args.output {
        OutputKind::Dir => Format::Directory,
        OutputKind::Tar => Format::Tar(Compression::from_path(dir)),
        OutputKind::TarGz => Format::Tar(Compression::Gzip),
        OutputKind::TarZst => Format::Tar(Compression::Zstd),
        OutputKind::Oci => Format::Oci,
    };
    if args.push.is_some() && (format != Format::Oci || simulate) {
        return Err(
            UsageError("`--push` needs `--output oci` (and no `--simulate`)".into()).into(),
        );
    }
    if dir == std::path::Path::new("-") && !matches!(format, Format::Tar(_)) {
        return Err(UsageError("`-` (stdout) needs `--output tar`".into()).into());
    }
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => {
            Some(value.trim().parse::<u64>().map_err(|_| {
                UsageError(format!(
                    "SOURCE_DATE_EPOCH=`{value}` is not a number of seconds since 1970"
                ))
            })?)
        }
        _ => None,
    };
    Ok((format, epoch, args.reproducible))
}
