//! The entries of a package's data tar, read in one streaming pass: file contents go
//! straight into the [`Scratch`] folder as they are inflated, every name is checked
//! before anything else happens with it, and what is kept is a flat list of entries.

use std::io::{self, Read};

use super::scratch::Scratch;
use super::InstallError;
use crate::rootfs::Content;

/// What an entry creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// A regular file, written to the scratch folder as file `scratch`.
    File {
        /// Its id in the [`Scratch`] folder.
        scratch: u64,
        /// Its bytes, kept for `etc/passwd` and `etc/group` only: later packages' owner
        /// names are looked up in them.
        ids: Option<Vec<u8>>,
    },
    /// A symbolic link to the given target (stored verbatim, never followed by us).
    Symlink(String),
    /// A hard link to an earlier file of the same package (path relative to the root).
    Hardlink(String),
}

/// One entry of the data tar.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Path relative to the root, no leading or trailing `/`.
    pub path: String,
    /// What it creates.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Numeric owner from the header (fallback when the name is unknown).
    pub uid: u32,
    /// Numeric group from the header.
    pub gid: u32,
    /// Owner name from the header.
    pub uname: String,
    /// Group name from the header.
    pub gname: String,
    /// Modification time from the header.
    pub mtime: u64,
    /// `APK-TOOLS.checksum.SHA1`.
    pub sha1: Option<[u8; 20]>,
    /// `SCHILY.xattr.*` records: name and value.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// The largest `etc/passwd` or `etc/group` kept for owner lookups.
const MAX_ID_FILE: u64 = 16 * 1024 * 1024;

/// Data members inflating to at most this (as their installed size says) are
/// inflated whole with libdeflate, about 1.6 times the speed of streaming (alpine-base:
/// every package but libcrypto3 and openrc, 4.3 of its 10.7 MB), and their files are
/// written straight from the inflated tar. Each inflating thread keeps one
/// [`HugeRegion`](crate::hugepages::HugeRegion) for it: the compressed member in its
/// first half, the inflated tar in its second. 3 MiB (openrc too) was measured before
/// the region: ~0.9 MB more peak RSS for ~1% less wall time (40 interleaved runs), a
/// trade not made for the memory.
pub(crate) const WHOLE_MAX: u64 = 1 << 20;

/// Inflates a gzip data member read from `member`, writing its files into `scratch`,
/// and returns its entries; refuses a tar that inflates past `limit` bytes. `whole`:
/// the member is expected to inflate to at most [`WHOLE_MAX`]. `huge_pages`: the
/// thread's region, made on its first whole member, is backed by a huge page (2 MiB of
/// peak RSS at once, for 511 page faults fewer) rather than touched page by page. The
/// caller verifies the member (before or, for a stream, after): nothing here trusts it.
pub(crate) fn extract(
    package: &str,
    member: &mut dyn Read,
    limit: u64,
    whole: bool,
    huge_pages: bool,
    scratch: &Scratch,
) -> Result<Vec<Entry>, InstallError> {
    let archive_err = |source| InstallError::Archive {
        package: package.to_owned(),
        source,
    };
    thread_local! {
        static REGION: std::cell::RefCell<Option<crate::hugepages::HugeRegion>> =
            const { std::cell::RefCell::new(None) };
    }
    let streamed = |member: &mut dyn Read| {
        skip_gzip_header(member).map_err(archive_err)?;
        stream(package, member, limit, scratch)
    };
    if !whole {
        return streamed(member);
    }
    REGION.with(|region| {
        let mut region = region.borrow_mut();
        if region.is_none() {
            *region = crate::hugepages::HugeRegion::new(huge_pages);
        }
        let Some(region) = region.as_mut() else {
            return streamed(member);
        };
        let (input, output) = region.bytes().split_at_mut(WHOLE_MAX as usize);
        let read = fill(member, input).map_err(archive_err)?;
        // A member that fills its half is too large to be whole (the installed size
        // was wrong, or it compresses badly), and one whose trailer lies or that is
        // damaged (its CRC-32 tells) does not inflate here: both are streamed after
        // all, which checks and reports.
        let output_room = (output.len() as u64).min(limit) as usize;
        let inflated = (read < input.len())
            .then(|| crate::inflate::gzip_into(&input[..read], &mut output[..output_room]))
            .flatten();
        match inflated {
            Some(len) => read_entries_in_memory(package, &output[..len], scratch),
            None => streamed(&mut (&input[..read]).chain(member)),
        }
    })
}

/// The contents of the file `entry` of the data tar `tar`, `len` bytes long.
fn in_memory<'t, R: Read>(
    tar: &'t [u8],
    entry: &tar::Entry<'_, R>,
    len: u64,
) -> io::Result<&'t [u8]> {
    let start = usize::try_from(entry.raw_file_position()).ok();
    let end = start
        .zip(usize::try_from(len).ok())
        .and_then(|(start, len)| start.checked_add(len));
    start
        .zip(end)
        .and_then(|(start, end)| tar.get(start..end))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the data tar ends inside a file",
            )
        })
}

/// Reads from `from` until `buf` is full or `from` ends: how many bytes it read.
fn fill(from: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match from.read(&mut buf[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read)
}

/// [`extract`] by streaming the raw deflate stream `member`.
fn stream(
    package: &str,
    member: &mut dyn Read,
    limit: u64,
    scratch: &Scratch,
) -> Result<Vec<Entry>, InstallError> {
    // The member is checked against the SHA-256 of the package's signed `datahash`, so
    // the gzip CRC-32 (4% of a build's CPU) would only check it a second time.
    let mut inflated = Bounded {
        inner: flate2::read::DeflateDecoder::new(member),
        left: limit,
        exceeded: false,
    };
    let result = read_entries(package, &mut inflated, scratch);
    if inflated.exceeded {
        return Err(InstallError::TooLarge {
            package: package.to_owned(),
            limit,
        });
    }
    result
}

/// A reader that fails once more than `left` bytes come out of `inner`.
struct Bounded<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than allowed tells "exactly at the limit" from "past it".
        let room = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX);
        let take = buf.len().min(room);
        let n = self.inner.read(&mut buf[..take])?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the data tar inflates past its limit",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads a gzip member's header (RFC 1952: fixed part, then the optional extra field,
/// name, comment and header CRC), leaving `r` at the raw deflate stream.
fn skip_gzip_header(r: &mut dyn Read) -> io::Result<()> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    let mut fixed = [0u8; 10];
    r.read_exact(&mut fixed)?;
    if fixed[0..3] != [0x1f, 0x8b, 8] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a gzip member",
        ));
    }
    let flags = fixed[3];
    if flags & FEXTRA != 0 {
        let mut len = [0u8; 2];
        r.read_exact(&mut len)?;
        io::copy(
            &mut r.take(u64::from(u16::from_le_bytes(len))),
            &mut io::sink(),
        )?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            // Zero-terminated; bounded by the member, which is bounded by the file.
            let mut byte = [0u8; 1];
            loop {
                r.read_exact(&mut byte)?;
                if byte[0] == 0 {
                    break;
                }
            }
        }
    }
    if flags & FHCRC != 0 {
        r.read_exact(&mut [0u8; 2])?;
    }
    Ok(())
}

/// Reads every entry of the data tar `data`, writing the regular files into `scratch`.
pub(crate) fn read_entries(
    package: &str,
    data: &mut dyn Read,
    scratch: &Scratch,
) -> Result<Vec<Entry>, InstallError> {
    entries_of(package, crate::archive::tar_archive(data), None, scratch)
}

/// [`read_entries`] of a data tar held in memory, whose files are written from `data`
/// itself rather than copied out of it through a buffer.
fn read_entries_in_memory(
    package: &str,
    data: &[u8],
    scratch: &Scratch,
) -> Result<Vec<Entry>, InstallError> {
    entries_of(
        package,
        crate::archive::tar_in_memory(data),
        Some(data),
        scratch,
    )
}

/// The entries of `archive`, whose bytes are `memory` when it is held in memory.
fn entries_of<R: Read + io::Seek>(
    package: &str,
    mut archive: tar::Archive<R>,
    memory: Option<&[u8]>,
    scratch: &Scratch,
) -> Result<Vec<Entry>, InstallError> {
    let archive_err = |source: std::io::Error| InstallError::Archive {
        package: package.to_owned(),
        source,
    };
    let mut entries = Vec::new();
    for entry in archive.entries_with_seek().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        let header = entry.header().clone();
        if !crate::archive::apk_sees(&header).map_err(archive_err)? {
            continue;
        }
        let raw_path = entry.path_bytes().into_owned();
        let kind_byte = header.entry_type();
        let kind = match kind_byte {
            // Written below, once its name passed the checks.
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File {
                scratch: 0,
                ids: None,
            },
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target = text(package, &raw_path, &target)?;
                if target.is_empty() {
                    return Err(unsafe_name(package, &raw_path, "a link without a target"));
                }
                if kind_byte == tar::EntryType::Link {
                    Kind::Hardlink(check_path(package, target.trim_end_matches('/'))?)
                } else {
                    if target.bytes().any(is_control) {
                        return Err(unsafe_name(
                            package,
                            &raw_path,
                            "a control character in the link target",
                        ));
                    }
                    Kind::Symlink(target)
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(unsafe_name(
                    package,
                    &raw_path,
                    "a device node or fifo, which packages may not carry",
                ));
            }
            // Global headers and unknown types carry nothing to install; apk skips them too.
            _ => continue,
        };
        let path = text(package, &raw_path, &raw_path)?;
        // The root itself (`./`) carries nothing apk would record.
        if path == "." || path == "./" {
            continue;
        }
        let path = check_path(package, path.trim_end_matches('/'))?;
        // apk ignores top-level dot files of the data part (`.dummy` of meta packages).
        if path.starts_with('.') {
            continue;
        }
        let mut sha1 = None;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(archive_err)? {
            for ext in pax {
                let ext = ext.map_err(archive_err)?;
                let key = ext.key_bytes();
                if key == b"APK-TOOLS.checksum.SHA1" {
                    let mut digest = [0u8; 20];
                    if hex::decode_to_slice(ext.value_bytes(), &mut digest).is_ok() {
                        sha1 = Some(digest);
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    let name = text(package, &raw_path, name)?;
                    xattrs.push((name, ext.value_bytes().to_vec()));
                }
            }
        }
        let field = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mode = header.mode().map_err(archive_err)? & 0o7777;
        let mtime = header.mtime().map_err(archive_err)?;
        let kind = match kind {
            Kind::File { .. } => {
                let len = entry.size();
                let mut ids = None;
                if matches!(path.as_str(), "etc/passwd" | "etc/group") && len <= MAX_ID_FILE {
                    let mut bytes = Vec::new();
                    (&mut entry)
                        .take(len)
                        .read_to_end(&mut bytes)
                        .map_err(archive_err)?;
                    ids = Some(bytes);
                }
                let content = match (&ids, memory) {
                    (Some(bytes), _) => Content::Read(&mut &bytes[..], len),
                    // Left unread, the entry is skipped over without a copy.
                    (None, Some(tar)) => {
                        Content::Bytes(in_memory(tar, &entry, len).map_err(archive_err)?)
                    }
                    (None, None) => Content::Read(&mut entry, len),
                };
                let written = scratch.write(content, mode, mtime);
                Kind::File {
                    scratch: written.map_err(archive_err)?,
                    ids,
                }
            }
            other => other,
        };
        entries.push(Entry {
            path,
            kind,
            mode,
            uid: header
                .uid()
                .map_err(archive_err)?
                .try_into()
                .unwrap_or(u32::MAX),
            gid: header
                .gid()
                .map_err(archive_err)?
                .try_into()
                .unwrap_or(u32::MAX),
            uname: header.username_bytes().map(field).unwrap_or_default(),
            gname: header.groupname_bytes().map(field).unwrap_or_default(),
            mtime,
            sha1,
            xattrs,
        });
    }
    Ok(entries)
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn unsafe_name(package: &str, raw: &[u8], reason: &str) -> InstallError {
    InstallError::UnsafeEntry {
        package: package.to_owned(),
        entry: String::from_utf8_lossy(raw).escape_debug().to_string(),
        reason: reason.to_owned(),
    }
}

fn text(package: &str, raw: &[u8], bytes: &[u8]) -> Result<String, InstallError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| unsafe_name(package, raw, "a name that is not UTF-8"))
}

/// Accepts only relative paths made of normal components without control characters,
/// the rules apk applies ("ignoring malicious file"), as hard errors.
pub(crate) fn check_path(package: &str, path: &str) -> Result<String, InstallError> {
    let raw = path.as_bytes();
    if path.is_empty() {
        return Err(unsafe_name(package, raw, "an empty name"));
    }
    if path.starts_with('/') {
        return Err(unsafe_name(package, raw, "an absolute path"));
    }
    if path.bytes().any(is_control) {
        return Err(unsafe_name(package, raw, "a control character in the name"));
    }
    for component in path.split('/') {
        match component {
            "" => return Err(unsafe_name(package, raw, "an empty path component")),
            "." | ".." => return Err(unsafe_name(package, raw, "a `.` or `..` component")),
            _ => {}
        }
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch folder in a fresh temporary root.
    fn scratch() -> (tempfile::TempDir, crate::rootfs::RootDir, Scratch) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = crate::rootfs::RootDir::open(tmp.path()).expect("root");
        let scratch = Scratch::create(&root).expect("scratch");
        (tmp, root, scratch)
    }

    fn tar_of(files: &[(&str, u8, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(1_700_000_000);
            header.as_mut_bytes()[156] = *kind;
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn contents(scratch: &Scratch, entry: &Entry) -> Vec<u8> {
        let Kind::File { scratch: id, .. } = entry.kind else {
            panic!("{} is not a file", entry.path);
        };
        let name = Scratch::file_name(id);
        let dir = scratch.dir();
        let fd = rustix::fs::openat(
            dir,
            name.as_str(),
            rustix::fs::OFlags::RDONLY,
            rustix::fs::Mode::empty(),
        )
        .expect("scratch file");
        let mut out = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut out).expect("read");
        out
    }

    #[test]
    fn gzip_headers_with_every_optional_field_inflate_like_gzip() {
        let text = b"hello, inflater".repeat(100);
        let tar = tar_of(&[("etc/motd", b'0', &text)]);
        let mut deflate =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut deflate, &tar).expect("deflate");
        let deflated = deflate.finish().expect("deflate");
        let mut crc = flate2::Crc::new();
        crc.update(&tar);
        // Extra field, name and comment, with and without a header CRC (which the whole
        // path leaves to streaming: libdeflate would not check it).
        let member_of = |header_crc: bool| {
            let flags = 0x04 | 0x08 | 0x10 | if header_crc { 0x02 } else { 0 };
            let mut member = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3];
            member.extend_from_slice(&[3, 0, b'x', b'y', b'z']);
            member.extend_from_slice(b"name\0comment\0");
            if header_crc {
                member.extend_from_slice(&[0xaa, 0xbb]);
            }
            member.extend_from_slice(&deflated);
            member.extend_from_slice(&crc.sum().to_le_bytes());
            member.extend_from_slice(&(tar.len() as u32).to_le_bytes());
            member
        };
        let mut whole = vec![0; tar.len()];
        assert_eq!(
            crate::inflate::gzip_into(&member_of(false), &mut whole),
            Some(tar.len()),
            "the member inflates whole"
        );
        assert_eq!(whole, tar);
        let (_tmp, _root, scratch) = scratch();
        for member in [member_of(false), member_of(true)] {
            // Streamed, and inflated whole (falling back to streaming when the trailer
            // lies about the size, or the limit is below it): the same entries or errors.
            let mut lying_small = member.clone();
            let at = lying_small.len() - 4;
            lying_small[at..].copy_from_slice(&10u32.to_le_bytes());
            let mut lying_large = member.clone();
            lying_large[at..].copy_from_slice(&u32::MAX.to_le_bytes());
            for whole in [false, true] {
                for member in [&member, &lying_small, &lying_large] {
                    let entries = extract("p", &mut &member[..], 1 << 20, whole, whole, &scratch)
                        .expect("extract");
                    assert_eq!(entries.len(), 1);
                    assert_eq!(contents(&scratch, &entries[0]), text);
                    assert!(matches!(
                        extract("p", &mut &member[..], 1000, whole, whole, &scratch),
                        Err(InstallError::TooLarge { .. })
                    ));
                }
                assert!(
                    extract("p", &mut &member[..12], 1 << 20, whole, whole, &scratch).is_err(),
                    "truncated header accepted"
                );
                let half = &member[..member.len() / 2];
                assert!(
                    extract("p", &mut &half[..], 1 << 20, whole, whole, &scratch).is_err(),
                    "truncated stream accepted"
                );
                let not_gzip = b"PK\x03\x04 not gzip";
                assert!(extract("p", &mut &not_gzip[..], 1 << 20, whole, whole, &scratch).is_err());
            }
        }
    }

    #[test]
    fn a_member_inflated_whole_gives_the_entries_and_files_of_the_stream() {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let files: &[(&str, u8, &[u8])] = &[
            ("etc/", b'5', b""),
            ("etc/empty", b'0', b""),
            ("etc/block", b'0', &[1u8; 512]),
            ("etc/passwd", b'0', b"root:x:0:0:root:/root:/bin/sh\n"),
            ("usr/lib/big", b'0', &big),
            ("etc/last", b'0', b"tail"),
        ];
        let tar = tar_of(files);
        let gzip = |tar: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, tar).expect("gzip");
            e.finish().expect("gzip")
        };
        let (_tmp, _root, scratch) = scratch();
        let member = gzip(&tar);
        let streamed =
            extract("p", &mut &member[..], 1 << 20, false, false, &scratch).expect("stream");
        let whole = extract("p", &mut &member[..], 1 << 20, true, true, &scratch).expect("whole");
        assert_eq!(streamed.len(), files.len());
        assert_eq!(whole.len(), files.len());
        for ((s, w), (_, _, data)) in streamed.iter().zip(&whole).zip(files) {
            assert_eq!((&s.path, s.mode, s.mtime), (&w.path, w.mode, w.mtime));
            match (&s.kind, &w.kind) {
                (Kind::File { ids: a, .. }, Kind::File { ids: b, .. }) => {
                    assert_eq!(a, b);
                    assert_eq!(contents(&scratch, s), *data, "{}", s.path);
                    assert_eq!(contents(&scratch, w), *data, "{}", w.path);
                }
                (a, b) => assert_eq!(a, b),
            }
        }
        // A whole, intact gzip member of a tar that ends inside a file's data.
        let cut = gzip(&tar[..tar.len() / 2]);
        for whole in [false, true] {
            assert!(matches!(
                extract("p", &mut &cut[..], 1 << 20, whole, whole, &scratch),
                Err(InstallError::Archive { .. })
            ));
        }
    }

    #[test]
    fn entries_of_types_apk_skips_are_not_installed() {
        let data = tar_of(&[
            ("etc/seen", b'0', b"abc"),
            ("etc/skipped", 0u8, b"abc"),
            ("etc/also", b'7', b"abc"),
        ]);
        let (_tmp, _root, scratch) = scratch();
        let entries = read_entries("p", &mut &data[..], &scratch).unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["etc/seen", "etc/also"]);
        for entry in &entries {
            assert_eq!(contents(&scratch, entry), b"abc");
        }
    }

    #[test]
    fn a_file_cut_short_is_refused_and_passwd_is_kept_for_owner_lookups() {
        let data = tar_of(&[("etc/passwd", b'0', b"root:x:0:0::/root:/bin/sh\n")]);
        let (_tmp, _root, scratch) = scratch();
        let entries = read_entries("p", &mut &data[..], &scratch).unwrap();
        assert!(matches!(
            &entries[0].kind,
            Kind::File { ids: Some(bytes), .. } if bytes.starts_with(b"root:x:0:0")
        ));
        let data = tar_of(&[("usr/bin/x", b'0', &[7u8; 4000])]);
        assert!(read_entries("p", &mut &data[..1200], &scratch).is_err());
    }

    #[test]
    fn paths_that_could_escape_or_inject_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a\nR:evil",
            "a\x7fb",
            "",
        ] {
            assert!(check_path("p", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            check_path("p", "usr/lib/libz.so.1").ok().as_deref(),
            Some("usr/lib/libz.so.1")
        );
    }
}
