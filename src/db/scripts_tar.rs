//! `lib/apk/db/scripts.tar`: every package script, in an uncompressed tar that is
//! byte-identical to apk 2.14's (`apk_tar_write_entry`).
//!
//! Members are `<name>-<version>.<C>.<action>`, in install order and, per package, in
//! apk's action order; mode 0755, uid/gid 0 as `root`/`root`, mtime the package's build
//! time. The header is GNU-flavoured (`ustar  \0` magic), numeric fields are zero-padded
//! octal (`size` and `mtime` without a terminating NUL), the checksum is six digits, NUL,
//! space, device fields stay all-zero, and the archive ends with exactly two zero blocks.

use super::{DbError, InstalledPackage, ScriptAction};

const BLOCK: usize = 512;
/// Scripts larger than this are refused when reading (apk's are a few KiB).
const MAX_SCRIPT: u64 = 16 << 20;

/// Writes `value` as zero-padded octal into `field`, with a trailing NUL when `nul`
/// (apk's `put_octal`; values too large keep their low digits, as apk's do).
fn put_octal(field: &mut [u8], mut value: u64, nul: bool) {
    let mut end = field.len();
    if nul {
        end -= 1;
        field[end] = 0;
    }
    for slot in field[..end].iter_mut().rev() {
        *slot = b'0' + (value % 8) as u8;
        value /= 8;
    }
}

/// One 512-byte header for a regular file member.
fn header(name: &str, size: u64, mtime: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    // strlcpy into a 100-byte field: at most 99 bytes survive.
    let n = name.len().min(99);
    h[..n].copy_from_slice(&name.as_bytes()[..n]);
    put_octal(&mut h[100..108], 0o755, true);
    put_octal(&mut h[108..116], 0, true);
    put_octal(&mut h[116..124], 0, true);
    put_octal(&mut h[124..136], size, false);
    put_octal(&mut h[136..148], mtime, false);
    h[156] = b'0';
    h[257..265].copy_from_slice(b"ustar  \0");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    put_octal(&mut h[148..155], sum, true);
    h
}

/// `scripts.tar` for `installed` in install order. `now` stands in for a missing build
/// time (apk uses `SOURCE_DATE_EPOCH` or the current time there).
pub fn write_scripts_tar(installed: &[InstalledPackage], now: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for ipkg in installed {
        let p = &ipkg.package;
        for action in ScriptAction::ALL {
            let Some(body) = ipkg.script(action) else {
                continue;
            };
            let name = format!(
                "{}-{}.{}.{}",
                p.name,
                p.version,
                p.checksum,
                action.as_str()
            );
            let mtime = if p.build_time != 0 { p.build_time } else { now };
            out.extend_from_slice(&header(&name, body.len() as u64, mtime));
            out.extend_from_slice(body);
            let pad = (BLOCK - body.len() % BLOCK) % BLOCK;
            out.resize(out.len() + pad, 0);
        }
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

/// One member of a `scripts.tar`, split the way apk splits the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptMember {
    /// The package identity (`C:`) embedded in the name.
    pub checksum: String,
    /// The action after the last dot.
    pub action: ScriptAction,
    /// The script.
    pub body: Vec<u8>,
}

fn octal(field: &[u8]) -> Option<u64> {
    let s = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .copied()
        .collect::<Vec<u8>>();
    let s = std::str::from_utf8(&s).ok()?;
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// Reads the members of a `scripts.tar` apk understands: regular files named
/// `<anything>.<checksum>.<action>` with a known action; others are skipped, as apk does.
pub fn read_scripts_tar(data: &[u8]) -> Result<Vec<ScriptMember>, DbError> {
    let bad = |offset: usize, message: String| DbError::Tar { offset, message };
    let mut out = Vec::new();
    let mut off = 0;
    while off + BLOCK <= data.len() {
        let h = &data[off..off + BLOCK];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let size = octal(&h[124..136]).ok_or_else(|| bad(off, "invalid size field".into()))?;
        if size > MAX_SCRIPT {
            return Err(bad(
                off,
                format!("member of {size} bytes is larger than any script"),
            ));
        }
        let start = off + BLOCK;
        let end = start + size as usize;
        if end > data.len() {
            return Err(bad(off, "member runs past the end of the archive".into()));
        }
        let name_len = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..name_len]);
        let typeflag = h[156];
        if typeflag == b'0' || typeflag == 0 {
            if let Some((rest, action)) = name.rsplit_once('.') {
                if let (Some(action), Some((_, checksum))) =
                    (ScriptAction::parse(action), rest.rsplit_once('.'))
                {
                    out.push(ScriptMember {
                        checksum: checksum.to_string(),
                        action,
                        body: data[start..end].to_vec(),
                    });
                }
            }
        }
        off = start + size.div_ceil(BLOCK as u64) as usize * BLOCK;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_database_is_two_zero_blocks() {
        assert_eq!(write_scripts_tar(&[], 0), vec![0u8; 1024]);
    }

    #[test]
    fn header_checksum_is_six_digits_nul_space() {
        let h = header("a-1.Q1x.post-install", 139, 1_699_383_205);
        assert_eq!(&h[154..156], b"\0 ");
        let mut copy = h;
        copy[148..156].fill(b' ');
        let sum: u64 = copy.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(octal(&h[148..154]), Some(sum));
    }
}
