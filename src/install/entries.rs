//! The entries of a package's data tar, read once into a flat list that points into the
//! inflated buffer, with every name checked before anything touches the filesystem.

use std::io::Read;

use super::InstallError;

/// What an entry creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// A regular file whose bytes are `data[offset..offset + len]` of the inflated tar.
    File { offset: usize, len: usize },
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

/// Inflates a (verified) gzip data member, refusing to grow past `limit` bytes.
pub(crate) fn inflate(package: &str, member: &[u8], limit: u64) -> Result<Vec<u8>, InstallError> {
    // The data member is the last of the file, so its gzip trailer (ISIZE: the inflated
    // size mod 2^32) says how much room to take at once: no regrowing and copying.
    let hint = member
        .len()
        .checked_sub(4)
        .and_then(|at| member.get(at..))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u64::from(u32::from_le_bytes(b)));
    let mut out = Vec::with_capacity(usize::try_from(hint.min(limit)).unwrap_or(0));
    let archive_err = |message: &str| InstallError::Archive {
        package: package.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_owned()),
    };
    let body = deflate_body(member).ok_or_else(|| archive_err("not a gzip member"))?;
    // The member matched the SHA-256 of the package's signed `datahash` before it got here,
    // so the gzip CRC-32 (4% of a build's CPU) would only check it a second time.
    let decoder = flate2::read::DeflateDecoder::new(body);
    decoder
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| InstallError::Archive {
            package: package.to_owned(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(InstallError::TooLarge {
            package: package.to_owned(),
            limit,
        });
    }
    Ok(out)
}

/// The raw deflate stream of a gzip member: what follows its header (RFC 1952: fixed
/// part, then the optional extra field, name, comment and header CRC).
fn deflate_body(member: &[u8]) -> Option<&[u8]> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    let (fixed, mut rest) = member.split_at_checked(10)?;
    if fixed[0..3] != [0x1f, 0x8b, 8] {
        return None;
    }
    let flags = fixed[3];
    if flags & FEXTRA != 0 {
        let (len, after) = rest.split_at_checked(2)?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        rest = after.get(len..)?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = rest.iter().position(|&b| b == 0)?;
            rest = &rest[end + 1..];
        }
    }
    if flags & FHCRC != 0 {
        rest = rest.get(2..)?;
    }
    Some(rest)
}

/// Reads every entry of the inflated data tar `data`.
pub(crate) fn read_entries(package: &str, data: &[u8]) -> Result<Vec<Entry>, InstallError> {
    let archive_err = |source: std::io::Error| InstallError::Archive {
        package: package.to_owned(),
        source,
    };
    let mut archive = tar::Archive::new(data);
    let mut entries = Vec::new();
    for entry in archive.entries().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        let header = entry.header().clone();
        if !crate::archive::apk_sees(&header).map_err(archive_err)? {
            continue;
        }
        let raw_path = entry.path_bytes().into_owned();
        let kind_byte = header.entry_type();
        let kind = match kind_byte {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let offset = usize::try_from(entry.raw_file_position()).unwrap_or(usize::MAX);
                let len = usize::try_from(entry.size()).unwrap_or(usize::MAX);
                if offset.checked_add(len).is_none_or(|end| end > data.len()) {
                    return Err(archive_err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file data runs past the end of the archive",
                    )));
                }
                Kind::File { offset, len }
            }
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
        entries.push(Entry {
            path,
            kind,
            mode: header.mode().map_err(archive_err)? & 0o7777,
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
            mtime: header.mtime().map_err(archive_err)?,
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

    #[test]
    fn gzip_headers_with_every_optional_field_inflate_like_gzip() {
        let tar = b"hello, inflater".repeat(100);
        let mut member = vec![0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 0, 0, 0, 0, 0, 3];
        member.extend_from_slice(&[3, 0, b'x', b'y', b'z']);
        member.extend_from_slice(b"name\0comment\0");
        member.extend_from_slice(&[0xaa, 0xbb]);
        let mut deflate =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut deflate, &tar).expect("deflate");
        member.extend_from_slice(&deflate.finish().expect("deflate"));
        member.extend_from_slice(&[0; 4]);
        member.extend_from_slice(&(tar.len() as u32).to_le_bytes());
        assert_eq!(inflate("p", &member, 1 << 20).expect("inflate"), tar);
        assert!(inflate("p", &member, 10).is_err(), "limit ignored");
        assert!(
            inflate("p", &member[..12], 1 << 20).is_err(),
            "truncated header accepted"
        );
        assert!(inflate("p", b"PK\x03\x04 not gzip", 1 << 20).is_err());
    }

    #[test]
    fn entries_of_types_apk_skips_are_not_installed() {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind) in [("etc/seen", b'0'), ("etc/skipped", 0u8), ("etc/also", b'7')] {
            let mut header = tar::Header::new_gnu();
            header.set_size(3);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(1_700_000_000);
            header.as_mut_bytes()[156] = kind;
            header.set_cksum();
            builder.append_data(&mut header, name, &b"abc"[..]).unwrap();
        }
        let data = builder.into_inner().unwrap();
        let paths: Vec<String> = read_entries("p", &data)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, ["etc/seen", "etc/also"]);
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
