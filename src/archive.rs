//! Reading apk's concatenated gzip members: where each member ends in the
//! compressed bytes (apk's digests are over the compressed members) and whether the
//! first member is a signature.
//!
//! Both `APKINDEX.tar.gz` and `.apk` files start with an optional signature member
//! whose tar holds `.SIGN.RSA.<key>` (SHA-1) or `.SIGN.RSA256.<key>` (SHA-256)
//! entries; the signature covers every compressed byte after that member. Everything
//! here works on an in-memory slice, never panics on hostile input and bounds how
//! much it inflates, so a gzip bomb costs an error, not the machine.

use flate2::bufread::GzDecoder;
use sha1::{Digest, Sha1};
use std::io::{self, BufRead, Read};

/// The largest decompressed signature member accepted. Real ones hold one or two
/// entries of a few hundred bytes; anything bigger is not a signature we should parse.
pub const MAX_SIGNATURE_MEMBER: u64 = 64 * 1024;

/// The largest decompressed size [`first_member_len`] inflates before giving up.
/// Generous enough for the biggest data member Alpine publishes, small enough to
/// bound the CPU a hostile member can burn.
pub const MAX_MEMBER_OUTPUT: u64 = 8 * 1024 * 1024 * 1024;

const SIGN_SHA1: &str = ".SIGN.RSA.";
const SIGN_SHA256: &str = ".SIGN.RSA256.";

/// The digest a signature was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// `.SIGN.RSA.<key>`: RSA PKCS#1 v1.5 over SHA-1.
    Sha1,
    /// `.SIGN.RSA256.<key>`: RSA PKCS#1 v1.5 over SHA-256.
    Sha256,
}

/// One signature entry of a signature member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The key file name the signer used, e.g.
    /// `alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub`.
    pub key_name: String,
    /// Which digest the signature is over.
    pub algorithm: SignatureAlgorithm,
    /// The raw RSA signature.
    pub bytes: Vec<u8>,
}

/// An archive split after its signature member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<'a> {
    /// The first signature entry, or `None` when the archive is unsigned.
    pub signature: Option<Signature>,
    /// Further signature entries of the same member (apk uses the first whose key it
    /// knows); usually empty.
    pub alternatives: Vec<Signature>,
    /// All compressed bytes after the signature member (what the signature covers);
    /// the whole input when unsigned.
    pub rest: &'a [u8],
}

impl Signed<'_> {
    /// Every signature of the member, the first one first.
    pub fn signatures(&self) -> impl Iterator<Item = &Signature> {
        self.signature.iter().chain(self.alternatives.iter())
    }
}

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The input holds no bytes at all.
    #[error("the archive is empty; expected a gzip member")]
    Empty,
    /// The bytes are not gzip, or a member is cut short.
    #[error("the archive is not valid gzip or is truncated ({0}); expected concatenated gzip members as apk writes them")]
    Gzip(#[source] io::Error),
    /// A member inflates to more than the limit.
    #[error("a gzip member inflates to more than {limit} bytes; refusing to read further")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// The first member is not a tar stream.
    #[error("the first gzip member does not hold a tar stream ({0})")]
    Tar(#[source] io::Error),
    /// The signature member also holds files that are not signatures.
    #[error("the signature member also holds `{0}`; expected only `.SIGN.RSA.*` / `.SIGN.RSA256.*` entries")]
    MixedSignatureMember(String),
    /// A signature entry is named after no key.
    #[error("signature entry `{0}` names no key")]
    NamelessSignature(String),
}

/// Compressed length of the first gzip member of `bytes`, inflating at most
/// [`MAX_MEMBER_OUTPUT`] bytes to find its end.
pub fn first_member_len(bytes: &[u8]) -> Result<usize, ArchiveError> {
    first_member_len_limited(bytes, MAX_MEMBER_OUTPUT)
}

/// Compressed length of the first gzip member, refusing members that inflate to more
/// than `limit` bytes.
pub fn first_member_len_limited(bytes: &[u8], limit: u64) -> Result<usize, ArchiveError> {
    if bytes.is_empty() {
        return Err(ArchiveError::Empty);
    }
    let mut rest = bytes;
    let mut decoder = GzDecoder::new(&mut rest).take(limit.saturating_add(1));
    let inflated = io::copy(&mut decoder, &mut io::sink()).map_err(ArchiveError::Gzip)?;
    if inflated > limit {
        return Err(ArchiveError::TooLarge { limit });
    }
    drop(decoder);
    Ok(bytes.len() - rest.len())
}

/// Inflates the first gzip member of `bytes` (at most `limit` bytes of output) and
/// returns its content with the member's compressed length.
pub fn read_first_member(bytes: &[u8], limit: u64) -> Result<(Vec<u8>, usize), ArchiveError> {
    if bytes.is_empty() {
        return Err(ArchiveError::Empty);
    }
    let mut rest = bytes;
    let mut out = Vec::new();
    let mut decoder = GzDecoder::new(&mut rest).take(limit.saturating_add(1));
    decoder.read_to_end(&mut out).map_err(ArchiveError::Gzip)?;
    if out.len() as u64 > limit {
        return Err(ArchiveError::TooLarge { limit });
    }
    drop(decoder);
    Ok((out, bytes.len() - rest.len()))
}

/// Splits `bytes` after its signature member. The first gzip member is a signature
/// member when the first entry of its tar is `.SIGN.RSA.*` or `.SIGN.RSA256.*`;
/// otherwise the archive is unsigned and `rest` is the whole input.
pub fn split_signature(bytes: &[u8]) -> Result<Signed<'_>, ArchiveError> {
    if bytes.is_empty() {
        return Err(ArchiveError::Empty);
    }
    let mut rest = bytes;
    let mut head = Vec::new();
    let mut decoder = GzDecoder::new(&mut rest).take(MAX_SIGNATURE_MEMBER + 1);
    decoder.read_to_end(&mut head).map_err(ArchiveError::Gzip)?;
    drop(decoder);
    let whole_member = head.len() as u64 <= MAX_SIGNATURE_MEMBER;
    let member_len = bytes.len() - rest.len();

    let entries = read_entries(&head, whole_member)?;
    // No entry apk sees (an empty tar, or only entries of types apk skips): apk finds
    // no signature there either.
    if entries
        .first()
        .is_none_or(|first| signature_kind(&first.0).is_none())
    {
        return Ok(Signed {
            signature: None,
            alternatives: Vec::new(),
            rest: bytes,
        });
    }
    if !whole_member {
        return Err(ArchiveError::TooLarge {
            limit: MAX_SIGNATURE_MEMBER,
        });
    }
    let mut signatures = Vec::with_capacity(entries.len());
    for (name, data) in entries {
        let Some((algorithm, key_name)) = signature_kind(&name) else {
            return Err(ArchiveError::MixedSignatureMember(name));
        };
        if key_name.is_empty() {
            return Err(ArchiveError::NamelessSignature(name));
        }
        signatures.push(Signature {
            key_name: key_name.to_string(),
            algorithm,
            bytes: data,
        });
    }
    let mut signatures = signatures.into_iter();
    Ok(Signed {
        signature: signatures.next(),
        alternatives: signatures.collect(),
        rest: &bytes[member_len..],
    })
}

/// SHA-1 of the compressed control member of a package read from `reader`: the first
/// gzip member after the optional signature member, i.e. the digest behind the index's
/// `C:Q1...`. Streams: only the signature and control members are read, so checking a
/// cached or downloaded package costs a few kilobytes of I/O whatever its size.
pub fn control_checksum(reader: impl BufRead) -> Result<[u8; 20], ArchiveError> {
    let mut input = Tap {
        inner: reader,
        sink: Sha1Count {
            hasher: Sha1::new(),
            consumed: 0,
        },
    };
    let mut head = Vec::new();
    {
        let mut decoder = GzDecoder::new(&mut input);
        (&mut decoder)
            .take(MAX_SIGNATURE_MEMBER + 1)
            .read_to_end(&mut head)
            .map_err(ArchiveError::Gzip)?;
        drain(&mut decoder, MAX_MEMBER_OUTPUT)?;
    }
    if input.sink.consumed == 0 {
        return Err(ArchiveError::Empty);
    }
    let first = input.sink.hasher.finalize_reset();
    let whole = head.len() as u64 <= MAX_SIGNATURE_MEMBER;
    let entries = read_entries(&head, whole)?;
    let signed = entries
        .first()
        .is_some_and(|(name, _)| signature_kind(name).is_some());
    if !signed {
        return Ok(first.into());
    }
    let before = input.sink.consumed;
    drain(&mut GzDecoder::new(&mut input), MAX_MEMBER_OUTPUT)?;
    if input.sink.consumed == before {
        return Err(ArchiveError::Gzip(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "no control member after the signature",
        )));
    }
    Ok(input.sink.hasher.finalize().into())
}

fn drain(decoder: &mut impl Read, limit: u64) -> Result<(), ArchiveError> {
    let copied = io::copy(&mut decoder.take(limit.saturating_add(1)), &mut io::sink())
        .map_err(ArchiveError::Gzip)?;
    if copied > limit {
        return Err(ArchiveError::TooLarge { limit });
    }
    Ok(())
}

/// A `BufRead` that shows `sink` every byte its consumer consumes, which for a gzip
/// decoder are exactly the compressed bytes of the member it reads.
pub(crate) struct Tap<R, S> {
    /// Where the bytes come from.
    pub inner: R,
    /// What sees them.
    pub sink: S,
}

/// What a [`Tap`] shows consumed bytes to.
pub(crate) trait Sink {
    /// `bytes` were consumed, in order.
    fn consumed(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn consumed(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// SHA-1 and count of the bytes consumed.
struct Sha1Count {
    hasher: Sha1,
    consumed: u64,
}

impl Sink for Sha1Count {
    fn consumed(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.consumed += bytes.len() as u64;
    }
}

impl<R: BufRead, S: Sink> Read for Tap<R, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead, S: Sink> BufRead for Tap<R, S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // The bytes being consumed are the front of the buffer the last `fill_buf`
        // returned; asking again does no I/O while that buffer is not used up.
        if amt > 0 {
            if let Ok(buf) = self.inner.fill_buf() {
                self.sink.consumed(&buf[..amt.min(buf.len())]);
            }
        }
        self.inner.consume(amt);
    }
}

/// A tar archive over `data` whose entries (`entries_with_seek`) are skipped over
/// without the `tar` crate's own skipping, which zeroes a 32 KiB buffer for every entry
/// (1,300 times per alpine-base build, ~1.5% of its CPU); what is skipped is still read
/// and dropped.
pub(crate) fn tar_archive<R: Read>(data: R) -> tar::Archive<Forward<R>> {
    tar::Archive::new(Forward {
        inner: data,
        pos: 0,
    })
}

/// A tar archive over `data`, held in memory: skipping an entry moves past its bytes
/// without reading them, so a caller may take a file's contents from `data` itself (at
/// `tar::Entry::raw_file_position`) instead of copying them out of the entry. Seeking
/// follows [`Forward`]'s rules.
pub(crate) fn tar_in_memory(data: &[u8]) -> tar::Archive<InMemory<'_>> {
    tar::Archive::new(InMemory { data, pos: 0 })
}

/// The reader of [`tar_in_memory`].
pub(crate) struct InMemory<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Read for InMemory<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl io::Seek for InMemory<'_> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let target = forward_target(self.pos as u64, to)?;
        if target > self.data.len() as u64 {
            self.pos = self.data.len();
            return Err(short_skip());
        }
        self.pos = target as usize;
        Ok(target)
    }
}

/// Where a seek from `pos` goes, if it goes forward (or nowhere): the rule both
/// readers of a tar stream share.
fn forward_target(pos: u64, to: io::SeekFrom) -> io::Result<u64> {
    let target = match to {
        io::SeekFrom::Start(at) => Some(at),
        io::SeekFrom::Current(by) => pos.checked_add_signed(by),
        io::SeekFrom::End(_) => None,
    };
    target.filter(|&t| t >= pos).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "a tar stream is only read forward",
        )
    })
}

fn short_skip() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected EOF during skip")
}

/// A reader that can "seek" forward only, by reading and dropping, so that
/// `tar::Archive::entries_with_seek` works on a stream. Skipping past the end is an
/// error, as the `tar` crate's own skipping makes it.
pub(crate) struct Forward<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Read for Forward<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> io::Seek for Forward<R> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let skip = forward_target(self.pos, to)? - self.pos;
        if skip > 0 {
            let skipped = io::copy(&mut (&mut self.inner).take(skip), &mut io::sink())?;
            self.pos += skipped;
            if skipped < skip {
                return Err(short_skip());
            }
        }
        Ok(self.pos)
    }
}

/// The algorithm and key name of a signature entry name, or `None` for other files.
fn signature_kind(name: &str) -> Option<(SignatureAlgorithm, &str)> {
    if let Some(key) = name.strip_prefix(SIGN_SHA256) {
        Some((SignatureAlgorithm::Sha256, key))
    } else {
        name.strip_prefix(SIGN_SHA1)
            .map(|key| (SignatureAlgorithm::Sha1, key))
    }
}

/// Whether apk 2.14's tar reader hands `header`'s entry on: it refuses a header without
/// the `ustar` magic (an error here too) and skips, data and all, every entry whose type it
/// does not know, the old `\0` "regular file" among them, which the `tar` crate would
/// otherwise read as a file. Reading what apk skips would install what apk does not, or
/// find a signature apk never sees.
pub fn apk_sees(header: &tar::Header) -> io::Result<bool> {
    let raw = header.as_bytes();
    if !raw[257..].starts_with(b"ustar") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a tar header without the `ustar` magic, which apk refuses",
        ));
    }
    Ok(matches!(raw[156], b'0'..=b'7'))
}

/// Names and contents of the tar entries in `data`. When `complete` is false the
/// buffer is only a prefix of the member: only the first entry's name is read and
/// its content is left empty.
fn read_entries(data: &[u8], complete: bool) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let mut archive = tar_in_memory(data);
    let mut out = Vec::new();
    for entry in archive.entries_with_seek().map_err(ArchiveError::Tar)? {
        let mut entry = entry.map_err(ArchiveError::Tar)?;
        if !apk_sees(entry.header()).map_err(ArchiveError::Tar)? {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut content = Vec::new();
        if complete {
            entry.read_to_end(&mut content).map_err(ArchiveError::Tar)?;
        }
        out.push((name, content));
        if !complete {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use proptest::prelude::*;
    use std::io::Write;

    /// A tar stream of `files`, cut before the end-of-archive blocks as abuild does
    /// for the signature and control members.
    fn cut_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        let mut out = builder.into_inner().unwrap();
        out.truncate(out.len() - 1024);
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn forward_and_in_memory_readers_skip_ahead_only_and_not_past_the_end() {
        let data: Vec<u8> = (0..100u8).collect();
        skips_ahead_only(Forward {
            inner: &data[..],
            pos: 0,
        });
        skips_ahead_only(InMemory {
            data: &data,
            pos: 0,
        });
    }

    /// `f` reads 0, 1, ... 99.
    fn skips_ahead_only(mut f: impl Read + io::Seek) {
        use std::io::SeekFrom;
        let mut two = [0u8; 2];
        f.read_exact(&mut two).unwrap();
        assert_eq!(f.stream_position().unwrap(), 2);
        assert_eq!(f.seek(SeekFrom::Current(8)).unwrap(), 10);
        f.read_exact(&mut two).unwrap();
        assert_eq!(two, [10, 11]);
        assert_eq!(f.seek(SeekFrom::Start(50)).unwrap(), 50);
        f.read_exact(&mut two).unwrap();
        assert_eq!(two, [50, 51]);
        for back in [SeekFrom::Current(-1), SeekFrom::Start(0), SeekFrom::End(0)] {
            assert_eq!(f.seek(back).unwrap_err().kind(), io::ErrorKind::Unsupported);
        }
        assert_eq!(
            f.seek(SeekFrom::Current(100)).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn entries_read_forward_or_in_memory_are_those_of_the_tar_crate() {
        let tar = cut_tar(&[("a", b"first"), ("b", &[7u8; 70_000]), ("c", b"")]);
        // Entries whose data is left unread are skipped; a cut entry is an error.
        fn names<R: Read + io::Seek>(mut archive: tar::Archive<R>) -> io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in archive.entries_with_seek()? {
                names.push(String::from_utf8_lossy(&entry?.path_bytes()).into_owned());
            }
            Ok(names)
        }
        let mut plain = tar::Archive::new(&tar[..]);
        assert_eq!(plain.entries().unwrap().count(), 3);
        let cut = &tar[..1024 + 512 + 30_000];
        assert_eq!(names(tar_archive(&tar[..])).unwrap(), ["a", "b", "c"]);
        assert!(names(tar_archive(cut)).is_err(), "cut in b's data");
        assert_eq!(names(tar_in_memory(&tar)).unwrap(), ["a", "b", "c"]);
        assert!(names(tar_in_memory(cut)).is_err(), "cut in b's data");
    }

    #[test]
    fn signed_archive_splits_after_the_signature_member() {
        let sig = gzip(&cut_tar(&[(".SIGN.RSA256.test.rsa.pub", b"sigbytes")]));
        let body = gzip(&cut_tar(&[("DESCRIPTION", b"x"), ("APKINDEX", b"P:a\n")]));
        let all = [sig.clone(), body.clone()].concat();
        let signed = split_signature(&all).unwrap();
        let s = signed.signature.unwrap();
        assert_eq!(s.key_name, "test.rsa.pub");
        assert_eq!(s.algorithm, SignatureAlgorithm::Sha256);
        assert_eq!(s.bytes, b"sigbytes");
        assert_eq!(signed.rest, &body[..]);
        assert_eq!(first_member_len(&all).unwrap(), sig.len());
    }

    #[test]
    fn sha1_signature_and_alternatives_are_read() {
        let sig = gzip(&cut_tar(&[
            (".SIGN.RSA.a.pub", b"1"),
            (".SIGN.RSA.b.pub", b"2"),
        ]));
        let all = [sig, gzip(b"rest")].concat();
        let signed = split_signature(&all).unwrap();
        let names: Vec<_> = signed.signatures().map(|s| s.key_name.as_str()).collect();
        assert_eq!(names, ["a.pub", "b.pub"]);
        assert_eq!(
            signed.signature.unwrap().algorithm,
            SignatureAlgorithm::Sha1
        );
    }

    #[test]
    fn entries_apk_skips_are_skipped_and_a_header_apk_refuses_is_refused() {
        // A signature entry of the old `\0` type: apk's reader skips it, so the archive
        // is unsigned for apk, and so it is here.
        let mut sig_tar = cut_tar(&[(".SIGN.RSA256.test.rsa.pub", b"sigbytes")]);
        sig_tar[156] = 0;
        fix_checksum(&mut sig_tar[..512]);
        let all = [gzip(&sig_tar), gzip(b"rest")].concat();
        let signed = split_signature(&all).unwrap();
        assert!(signed.signature.is_none());
        assert_eq!(signed.rest, &all[..]);
        // Without the `ustar` magic apk refuses the archive.
        let mut old = cut_tar(&[(".SIGN.RSA256.test.rsa.pub", b"sigbytes")]);
        old[257..265].fill(0);
        fix_checksum(&mut old[..512]);
        assert!(matches!(
            split_signature(&gzip(&old)),
            Err(ArchiveError::Tar(_))
        ));
    }

    /// Recomputes a tar header's checksum after a test edited it.
    fn fix_checksum(header: &mut [u8]) {
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn unsigned_archive_keeps_every_byte() {
        let body = gzip(&cut_tar(&[(".PKGINFO", b"pkgname = a\n")]));
        let all = [body.clone(), gzip(b"data")].concat();
        let signed = split_signature(&all).unwrap();
        assert!(signed.signature.is_none());
        assert_eq!(signed.rest, &all[..]);
    }

    #[test]
    fn large_unsigned_first_member_is_not_inflated_as_a_signature() {
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let all = gzip(&cut_tar(&[("APKINDEX", &big)]));
        assert!(split_signature(&all).unwrap().signature.is_none());
    }

    #[test]
    fn signature_member_with_other_files_is_refused() {
        let all = gzip(&cut_tar(&[(".SIGN.RSA.k.pub", b"s"), (".PKGINFO", b"x")]));
        let err = split_signature(&all).unwrap_err();
        assert!(matches!(err, ArchiveError::MixedSignatureMember(ref n) if n == ".PKGINFO"));
    }

    #[test]
    fn truncated_member_is_an_error() {
        let sig = gzip(&cut_tar(&[(".SIGN.RSA.k.pub", b"s")]));
        assert!(matches!(
            split_signature(&sig[..sig.len() - 3]),
            Err(ArchiveError::Gzip(_))
        ));
        assert!(matches!(
            first_member_len(&sig[..sig.len() - 1]),
            Err(ArchiveError::Gzip(_))
        ));
        assert!(matches!(first_member_len(&[]), Err(ArchiveError::Empty)));
    }

    #[test]
    fn member_over_the_limit_is_refused() {
        let all = gzip(&vec![0u8; 10_000]);
        assert!(matches!(
            first_member_len_limited(&all, 9_999),
            Err(ArchiveError::TooLarge { limit: 9_999 })
        ));
        assert_eq!(first_member_len_limited(&all, 10_000).unwrap(), all.len());
        assert!(matches!(
            read_first_member(&all, 100),
            Err(ArchiveError::TooLarge { .. })
        ));
    }

    #[test]
    fn real_index_and_package_split_where_apk_splits_them() {
        // The repository sits next to `shared/`; worktrees one level deeper.
        let root = env!("CARGO_MANIFEST_DIR");
        let Some(base) = ["/../shared/alpine", "/../../shared/alpine"]
            .iter()
            .map(|rel| format!("{root}{rel}/v3.19/main/x86_64"))
            .find(|p| std::path::Path::new(p).is_dir())
        else {
            eprintln!("skipped: ../shared/alpine is absent");
            return;
        };
        let index = std::fs::read(format!("{base}/APKINDEX.tar.gz")).unwrap();
        let signed = split_signature(&index).unwrap();
        let sig = signed.signature.as_ref().unwrap();
        assert_eq!(
            sig.key_name,
            "alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub"
        );
        assert_eq!(first_member_len(signed.rest).unwrap(), signed.rest.len());
        let pkg = std::fs::read(format!("{base}/musl-1.2.4_git20230717-r4.apk")).unwrap();
        let signed = split_signature(&pkg).unwrap();
        assert!(signed.signature.is_some());
        let control = first_member_len(signed.rest).unwrap();
        let data = first_member_len(&signed.rest[control..]).unwrap();
        assert_eq!(control + data, signed.rest.len());
        let expect: [u8; 20] = Sha1::digest(&signed.rest[..control]).into();
        assert_eq!(control_checksum(&pkg[..]).unwrap(), expect);
    }

    #[test]
    fn control_checksum_hashes_the_member_after_the_signature() {
        let sig = gzip(&cut_tar(&[(".SIGN.RSA.k.pub", b"s")]));
        let control = gzip(&cut_tar(&[(".PKGINFO", b"pkgname = a\n")]));
        let data = gzip(&[7u8; 100_000]);
        let expect: [u8; 20] = Sha1::digest(&control).into();
        let signed = [sig, control.clone(), data.clone()].concat();
        assert_eq!(control_checksum(&signed[..]).unwrap(), expect);
        let unsigned = [control, data].concat();
        assert_eq!(control_checksum(&unsigned[..]).unwrap(), expect);
        assert!(control_checksum(&[][..]).is_err());
        assert!(control_checksum(&signed[..20]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = split_signature(&bytes);
            let _ = first_member_len(&bytes);
            let _ = read_first_member(&bytes, 4096);
            let _ = control_checksum(&bytes[..]);
        }

        #[test]
        fn corrupted_signed_archive_never_panics(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let sig = gzip(&cut_tar(&[(".SIGN.RSA.k.pub", b"signature")]));
            let mut all = [sig, gzip(b"rest")].concat();
            for (at, byte) in flips {
                let i = at % all.len();
                all[i] ^= byte;
            }
            all.truncate(cut % (all.len() + 1));
            if let Ok(signed) = split_signature(&all) {
                prop_assert!(signed.rest.len() <= all.len());
            }
            if let Ok(len) = first_member_len(&all) {
                prop_assert!(len <= all.len());
            }
        }
    }
}
