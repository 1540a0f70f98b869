//! The hash apk 2.14 keys its tables with. Where apk walks a table (names while it
//! builds reverse dependencies, directories while it fires triggers), the walk's order
//! is visible in its results, so reproducing them needs the same buckets.

/// How many buckets apk's name and directory tables have.
pub const BUCKETS: u32 = 20_000;

/// apk's tables of names and of directories both have 20,000 buckets keyed by murmur3
/// (seed 5381); each bucket is a list with the newest entry first, and a walk goes
/// bucket by bucket. So entries sort by this bucket, then newest first.
pub fn bucket(text: &str) -> u32 {
    murmur3_32(text.as_bytes(), 5381) % BUCKETS
}

/// MurmurHash3, x86 32-bit variant (little-endian blocks), as apk hashes keys.
pub fn murmur3_32(key: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &b) in tail.iter().enumerate() {
            k ^= u32::from(b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= key.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_reference_vectors() {
        // Published test vectors of MurmurHash3_x86_32.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"test", 0), 0xba6b_d213);
        assert_eq!(murmur3_32(b"Hello, world!", 1234), 0xfaf6_cdb3);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
            0x2fa8_26cd
        );
    }

    #[test]
    fn busybox_trigger_directories_fall_in_apks_order() {
        // Measured with apk 2.14.4: it passes `/sbin /bin /usr/sbin /usr/bin`.
        let buckets: Vec<u32> = ["sbin", "bin", "usr/sbin", "usr/bin"]
            .iter()
            .map(|d| bucket(d))
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{buckets:?}");
    }
}
