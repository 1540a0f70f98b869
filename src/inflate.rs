//! Inflating a whole gzip stream held in memory, as an index's is, or one whole gzip
//! member (a package's data member) into a buffer its caller keeps.
//!
//! The community index inflates to ~8 MB, on the critical path of every run that
//! reads it; libdeflate does that in about a third of the time of a streaming
//! inflater, given an output buffer large enough up front. The last member's trailer
//! says how large (its `ISIZE`), so the buffer is sized from it and bounded by the
//! caller's limit. Whatever libdeflate cannot finish in that buffer (a trailer that
//! lies, a stream larger than the limit, damaged data) is left to the caller's
//! streaming path, which gives the same result or the same error as before.

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_SUCCESS,
};

/// The gzip header flag saying a CRC-16 of the header follows it.
const GZIP_FHCRC: u8 = 0x02;

/// A libdeflate decompressor, freed when dropped.
struct Decompressor(std::ptr::NonNull<libdeflate_decompressor>);

impl Decompressor {
    fn new() -> Option<Decompressor> {
        // SAFETY: allocates a decompressor; null only when out of memory.
        std::ptr::NonNull::new(unsafe { libdeflate_alloc_decompressor() }).map(Decompressor)
    }

    /// Inflates the gzip member at the start of `input` into `out`: how many input
    /// bytes it took and how many it wrote (initialised); `None` when libdeflate
    /// refuses it (damage, no room) or it has a header CRC, which libdeflate would skip
    /// unchecked where the streaming decoder, like apk's zlib, refuses a wrong one.
    fn member(
        &self,
        input: &[u8],
        out: &mut [std::mem::MaybeUninit<u8>],
    ) -> Option<(usize, usize)> {
        if input.get(3).is_none_or(|flags| flags & GZIP_FHCRC != 0) {
            return None;
        }
        let (mut used_in, mut used_out) = (0usize, 0usize);
        // SAFETY: the input and the output are valid for the lengths given; libdeflate
        // writes at most `out.len()` bytes there and reports how many (and how many
        // input bytes the member took) through the two pointers.
        let result = unsafe {
            libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used_in,
                &mut used_out,
            )
        };
        (result == libdeflate_result_LIBDEFLATE_SUCCESS)
            .then_some((used_in.min(input.len()), used_out.min(out.len())))
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libdeflate_alloc_decompressor, freed once here.
        unsafe { libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

/// Deflate turns one byte into at most 1,032 (a run of 258-byte matches coded in two
/// bits each).
const MAX_RATIO: usize = 1032;

/// The size the gzip stream `gz` says it inflates to: its last member's trailer
/// (`ISIZE`, the size modulo 2^32, exact for a single member under 4 GiB, which an
/// index is), but never more than deflate can make of `gz`. A hint to size a buffer
/// with, not a fact: the trailer is as untrusted as the rest.
pub fn size_hint(gz: &[u8]) -> Option<usize> {
    let tail: [u8; 4] = gz.get(gz.len().checked_sub(4)?..)?.try_into().ok()?;
    let claimed = u32::from_le_bytes(tail) as usize;
    Some(claimed.min(gz.len().saturating_mul(MAX_RATIO)))
}

/// The concatenated contents of the gzip members of `gz`, if libdeflate inflates
/// them all within `limit` bytes; `None` otherwise (the caller then inflates by
/// streaming, which reports any error).
pub fn gzip_members(gz: &[u8], limit: usize) -> Option<Vec<u8>> {
    // A few more bytes than the last member's size are left for the other members.
    let capacity = size_hint(gz)?.checked_add(64 << 10)?.min(limit);
    let mut out: Vec<u8> = crate::hugepages::vec_with_capacity(capacity)?;
    let decompressor = Decompressor::new()?;
    let mut read = 0;
    while read < gz.len() {
        let (used_in, written) = decompressor.member(&gz[read..], out.spare_capacity_mut())?;
        if used_in == 0 {
            return None;
        }
        // SAFETY: libdeflate initialised the first `written` bytes of the spare capacity.
        unsafe { out.set_len(out.len() + written) };
        read += used_in;
    }
    Some(out)
}

/// Inflates the gzip member at the start of `gz` (what follows is ignored, as a
/// streaming decoder reading one member stops there too) into the front of `out`, if
/// it fits and its trailer's CRC-32 and size check: how many bytes it wrote. `None`
/// otherwise (too large, damaged, or a header CRC, which libdeflate would skip
/// unchecked), `out` then being garbage: the caller inflates by streaming, which
/// reports any error.
pub fn gzip_into(gz: &[u8], out: &mut [u8]) -> Option<usize> {
    let decompressor = Decompressor::new()?;
    // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and libdeflate only
    // writes initialised bytes into it.
    let out = unsafe {
        std::slice::from_raw_parts_mut(
            out.as_mut_ptr().cast::<std::mem::MaybeUninit<u8>>(),
            out.len(),
        )
    };
    decompressor.member(gz, out).map(|(_, written)| written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn streamed(gz: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(gz).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_inflate_as_the_streaming_decoder_inflates_them() {
        let one: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut two = gzip(b"first member\n");
        two.extend(gzip(&one));
        for gz in [gzip(&one), two, gzip(b"")] {
            assert_eq!(gzip_members(&gz, 10 << 20), Some(streamed(&gz).unwrap()));
        }
    }

    #[test]
    fn one_member_inflates_whole_as_streamed_and_what_does_not_fit_is_refused() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut gz = gzip(&data);
        // What follows the member (another one, say) is not read.
        gz.extend(gzip(b"second"));
        let mut out = vec![1; data.len() * 2];
        assert_eq!(gzip_into(&gz, &mut out[..data.len()]), Some(data.len()));
        assert_eq!(out[..data.len()], data);
        out.fill(1);
        assert_eq!(gzip_into(&gz, &mut out), Some(data.len()));
        assert_eq!(out[..data.len()], data);
        let short = data.len() - 1;
        assert_eq!(gzip_into(&gz, &mut out[..short]), None, "a byte short");
        assert_eq!(gzip_into(&gz[..gz.len() / 2], &mut out), None, "cut");
        // The trailer's CRC is checked: a changed byte of it is refused.
        let mut wrong = gzip(&data);
        let crc_at = wrong.len() - 8;
        wrong[crc_at] ^= 1;
        assert_eq!(gzip_into(&wrong, &mut out), None, "a wrong CRC");
        let mut fhcrc = gzip(&data);
        fhcrc[3] |= GZIP_FHCRC;
        assert_eq!(gzip_into(&fhcrc, &mut out), None, "a header CRC");
    }

    #[test]
    fn the_size_hint_is_the_trailer_bounded_by_what_deflate_can_make() {
        let gz = gzip(&vec![7u8; 200_000]);
        assert_eq!(size_hint(&gz), Some(200_000));
        // A trailer claiming 4 GiB of a few hundred bytes.
        let mut lying = gz.clone();
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(size_hint(&lying), Some(lying.len() * MAX_RATIO));
        assert_eq!(size_hint(b"abc"), None);
    }

    #[test]
    fn what_it_cannot_finish_is_left_to_the_streaming_path() {
        let data = vec![7u8; 200_000];
        let gz = gzip(&data);
        // Over the limit.
        assert_eq!(gzip_members(&gz, 100_000), None);
        // A trailer claiming less than the member holds, beyond the slack.
        let mut lying = gz.clone();
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&10u32.to_le_bytes());
        assert_eq!(gzip_members(&lying, 10 << 20), None);
        // Damaged data, cut short, trailing garbage, nothing at all.
        let mut damaged = gz.clone();
        damaged[30] ^= 0xff;
        assert_eq!(gzip_members(&damaged, 10 << 20), None);
        assert_eq!(gzip_members(&gz[..gz.len() / 2], 10 << 20), None);
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"not gzip at all");
        assert_eq!(gzip_members(&trailing, 10 << 20), None);
        assert_eq!(gzip_members(b"", 10 << 20), None);
        // A header checksum, which libdeflate would not check (found by fuzzing).
        let mut with_hcrc = gzip(&data);
        with_hcrc[3] |= GZIP_FHCRC;
        with_hcrc.splice(10..10, [0xde, 0xad]);
        assert!(streamed(&with_hcrc).is_err());
        assert_eq!(gzip_members(&with_hcrc, 10 << 20), None);
    }
}
