//! The tar stream of a tree: GNU headers (long names as GNU tar writes them), numeric
//! owners only (no user or group names, whose lookup would depend on the host), and
//! nothing but the mtime for times, so the same tree always gives the same bytes.

use std::io::{self, Read, Write};
use std::path::Path;

use super::tree::{dir_name, open_staged, Entry, Kind};
use super::{Compression, ImageError};
use sha2::Digest;

/// Writes `entries` of the tree at `root` as a tar archive into `out`, compressed as
/// asked; `name` is the output as error messages call it.
pub(crate) fn write_compressed<W: Write>(
    root: &Path,
    entries: &[Entry],
    compression: Compression,
    out: W,
    name: &Path,
) -> Result<W, ImageError> {
    let err = |e| super::io_err("write", name)(e);
    match compression {
        Compression::None => write_tar(root, entries, out, name),
        Compression::Gzip => {
            // No file name and mtime 0 in the gzip header: nothing of the host or the time.
            let gz = flate2::GzBuilder::new().write(out, flate2::Compression::default());
            write_tar(root, entries, gz, name)?.finish().map_err(err)
        }
        Compression::Zstd => {
            let zst = zstd::stream::write::Encoder::new(out, 3).map_err(err)?;
            write_tar(root, entries, zst, name)?.finish().map_err(err)
        }
    }
}

/// Writes the uncompressed tar stream into `out` and returns it.
pub(crate) fn write_tar<W: Write>(
    root: &Path,
    entries: &[Entry],
    out: W,
    name: &Path,
) -> Result<W, ImageError> {
    let err = |e| super::io_err("write", name)(e);
    let mut builder = tar::Builder::new(out);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(u64::from(entry.uid));
        header.set_gid(u64::from(entry.gid));
        header.set_mode(entry.mode);
        header.set_mtime(entry.mtime);
        header.set_size(0);
        let path = &entry.path;
        match &entry.kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                builder.append_data(&mut header, dir_name(path), io::empty())
            }
            Kind::File(size) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                let file = open_staged(&root.join(path))?;
                builder.append_data(&mut header, path, Exactly::new(file, *size))
            }
            Kind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, path, target)
            }
            Kind::Hardlink(target) => {
                header.set_entry_type(tar::EntryType::Link);
                builder.append_link(&mut header, path, target)
            }
            Kind::Char(major, minor) | Kind::Block(major, minor) => {
                header.set_entry_type(if matches!(entry.kind, Kind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                header.set_device_major(*major).map_err(err)?;
                header.set_device_minor(*minor).map_err(err)?;
                builder.append_data(&mut header, path, io::empty())
            }
            Kind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                builder.append_data(&mut header, path, io::empty())
            }
        }
        .map_err(|source| ImageError::Io {
            action: "archive",
            path: root.join(path),
            source,
        })?;
    }
    builder.into_inner().map_err(err)
}

/// A file's bytes cut or zero-padded to the size its header announced, so that a file
/// changing under the archiver cannot shift every later header.
struct Exactly<R> {
    inner: io::Take<R>,
    missing: u64,
}

impl<R: Read> Exactly<R> {
    fn new(inner: R, size: u64) -> Self {
        Exactly {
            inner: inner.take(size),
            missing: size,
        }
    }
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.missing -= n as u64;
            return Ok(n);
        }
        let pad = buf
            .len()
            .min(usize::try_from(self.missing).unwrap_or(usize::MAX));
        buf[..pad].fill(0);
        self.missing -= pad as u64;
        Ok(pad)
    }
}

/// A writer that hashes (SHA-256) and counts what passes through it.
pub(crate) struct Digesting<W> {
    inner: W,
    hash: sha2::Sha256,
    size: u64,
}

impl<W: Write> Digesting<W> {
    pub(crate) fn new(inner: W) -> Self {
        Digesting {
            inner,
            hash: sha2::Sha256::new(),
            size: 0,
        }
    }

    /// The inner writer, `sha256:<hex>` of the bytes and their count.
    pub(crate) fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hash.finalize()));
        (self.inner, digest, self.size)
    }
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
