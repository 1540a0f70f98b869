//! Reading a package file once, front to back, without holding its data member.
//!
//! The signature and control members come first and are small: they are read and
//! checked as [`VerifiedPackage`] always checks them (`C:`, name, version). The data
//! member follows to the end of the file; [`DataStream`] hands it out as it is read and
//! hashes it on the way, and [`DataStream::finish`] compares the hash with the signed
//! `datahash` of `.PKGINFO`. Whatever a reader makes of the data before `finish`
//! succeeded is unverified: the installer writes it only into its private scratch folder
//! and moves nothing into place for a package that has not finished.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::{FileStamp, PackageError, VerifiedPackage, MAX_CONTROL_MEMBER, MAX_PACKAGE_FILE};
use crate::index::Package;

/// The data member of a package file, hashed as it is read.
pub struct DataStream {
    reader: BufReader<io::Take<std::fs::File>>,
    /// `None` when the file is the one the fetcher hashed whole (its stamp is unchanged).
    hasher: Option<Sha256>,
    package: String,
    path: String,
    datahash: String,
}

impl Read for DataStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

impl DataStream {
    /// Reads what is left of the file and checks the data member against `datahash`.
    pub fn finish(mut self) -> Result<(), PackageError> {
        io::copy(&mut self, &mut io::sink()).map_err(|source| PackageError::Read {
            package: self.package.clone(),
            path: self.path.clone(),
            source,
        })?;
        let found = match self.hasher.take() {
            Some(hasher) => hex::encode(hasher.finalize()),
            None => self.datahash.clone(),
        };
        if self.datahash.is_empty() || !found.eq_ignore_ascii_case(&self.datahash) {
            return Err(PackageError::DataChecksum {
                package: self.package,
                expected: self.datahash,
                found,
            });
        }
        Ok(())
    }
}

impl VerifiedPackage {
    /// Opens the `.apk` at `path`, reads and verifies its signature and control members
    /// against `expected` (its index entry) and returns the data member as a stream that
    /// [`DataStream::finish`] verifies; the returned package has no data member. When
    /// the file is still the one `verified` stamped, the data member is not hashed again.
    pub fn open_streaming(
        expected: &Package,
        path: &Path,
        verified: Option<FileStamp>,
    ) -> Result<(VerifiedPackage, DataStream), PackageError> {
        let file = std::fs::File::open(path).map_err(|source| PackageError::Read {
            package: expected.name_version(),
            path: path.display().to_string(),
            source,
        })?;
        VerifiedPackage::streaming_from(expected, file, path, verified)
    }

    /// [`open_streaming`](Self::open_streaming) of a file already open, read from its
    /// start; `path` names it in messages.
    pub fn streaming_from(
        expected: &Package,
        mut file: std::fs::File,
        path: &Path,
        verified: Option<FileStamp>,
    ) -> Result<(VerifiedPackage, DataStream), PackageError> {
        use std::io::{Seek, SeekFrom};
        let read_err = |source| PackageError::Read {
            package: expected.name_version(),
            path: path.display().to_string(),
            source,
        };
        file.seek(SeekFrom::Start(0)).map_err(read_err)?;
        // Stamped before reading: a change while reading shows in a later stamp.
        let unchanged = verified.is_some() && verified == FileStamp::of(&file).ok();
        let mut reader = BufReader::with_capacity(64 * 1024, file.take(MAX_PACKAGE_FILE));
        let (package, unchanged) = match read_head(&mut reader) {
            Ok(head) => (VerifiedPackage::check(expected, head, false)?, unchanged),
            // Not the members a package starts with: the whole-file checks say what is
            // wrong in the words they always use, or, should they find nothing wrong,
            // where the data member starts (its data then hashed once more below).
            Err(_) => {
                let mut file = reader.into_inner().into_inner();
                let mut bytes = Vec::new();
                file.seek(SeekFrom::Start(0))
                    .and_then(|_| (&mut file).take(MAX_PACKAGE_FILE).read_to_end(&mut bytes))
                    .map_err(read_err)?;
                let mut whole = VerifiedPackage::check(expected, bytes, true)?;
                whole.bytes.truncate(whole.data_start);
                let start = whole.data_start as u64;
                file.seek(SeekFrom::Start(start)).map_err(read_err)?;
                reader = BufReader::with_capacity(
                    64 * 1024,
                    file.take(MAX_PACKAGE_FILE.saturating_sub(start)),
                );
                (whole, false)
            }
        };
        let stream = DataStream {
            reader,
            hasher: (!unchanged).then(Sha256::new),
            package: package.name_version.clone(),
            path: path.display().to_string(),
            datahash: package.info.datahash.clone(),
        };
        Ok((package, stream))
    }
}

/// The raw bytes of the members before the data member: the signature member if there
/// is one, and the control member; `reader` is left at the data member.
pub(super) fn read_head(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut head = read_member(reader)?;
    let signed = crate::archive::split_signature(&head).map_err(io::Error::other)?;
    if signed.signature.is_some() {
        head.extend(read_member(reader)?);
    }
    Ok(head)
}

/// Reads one gzip member and returns its raw bytes, consuming nothing after it; its
/// inflated size is bounded like a control member's.
fn read_member(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut recorder = crate::archive::Tap {
        inner: reader,
        sink: Vec::new(),
    };
    let mut decoder = flate2::bufread::GzDecoder::new(&mut recorder);
    let inflated = io::copy(
        &mut (&mut decoder).take(MAX_CONTROL_MEMBER + 1),
        &mut io::sink(),
    )?;
    if inflated > MAX_CONTROL_MEMBER {
        return Err(io::Error::other(
            "a member before the data inflates too far",
        ));
    }
    drop(decoder);
    Ok(recorder.sink)
}
