//! Large buffers backed by transparent huge pages where the kernel offers them.
//!
//! Reading a cached parsed index (community: 12 MB) or inflating an index into a fresh
//! buffer spends as much time in page faults as in the work itself: one fault, one
//! zeroed 4 KiB page, per 4 KiB written. Asked for huge pages (`MADV_HUGEPAGE`, which
//! the common `madvise` setting of `/sys/kernel/mm/transparent_hugepage/enabled`
//! honours), the kernel backs each aligned 2 MiB of the buffer with one page instead
//! (warm `plan gnome`: ~5 ms less CPU). Where it does not (THP off, no huge page free),
//! the advice changes nothing.

/// The size of a huge page on x86-64 and of most on aarch64 (4 KiB base pages).
pub(crate) const HUGE: usize = 2 << 20;

/// Below this a buffer spans no whole huge page worth asking for.
const WORTH: usize = HUGE;

/// A vector with room for `capacity` elements (exactly), whose spare room is advised
/// for huge pages when it is large; `None` when the memory cannot be had.
pub(crate) fn vec_with_capacity<T>(capacity: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(capacity).ok()?;
    advise(&mut v);
    Some(v)
}

/// Advises the spare capacity of `v` for huge pages, if it is large enough to hold one.
fn advise<T>(v: &mut Vec<T>) {
    let spare = v.spare_capacity_mut();
    let bytes = std::mem::size_of_val(spare);
    if bytes < WORTH {
        return;
    }
    let start = spare.as_mut_ptr() as usize;
    let from = start.next_multiple_of(HUGE);
    let to = (start + bytes) / HUGE * HUGE;
    if to <= from {
        return;
    }
    // SAFETY: [from, to) lies within the vector's own allocation (its spare capacity),
    // which nothing else uses; MADV_HUGEPAGE changes how the range is backed, never
    // its contents, and fails harmlessly where transparent huge pages are unsupported.
    unsafe {
        libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
    }
}

/// [`HUGE`] bytes of zeroed memory aligned to [`HUGE`], for a buffer reused for the
/// life of a thread. Advised for one huge page, its first use costs one fault instead
/// of 512 (2 MiB on the 2-core VM of the benchmarks: 0.09 against 0.97 ms), but all of
/// it counts in the RSS at once; without huge pages it is ordinary memory, touched page
/// by page as it is used.
pub(crate) struct HugeRegion(std::ptr::NonNull<u8>);

impl HugeRegion {
    /// A fresh region, advised for a huge page when `huge` and against one otherwise;
    /// `None` when the memory cannot be had.
    pub(crate) fn new(huge: bool) -> Option<HugeRegion> {
        // Twice the size is mapped so that an aligned region lies inside; the rest is
        // given back.
        let span = 2 * HUGE;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing;
        // the unmapped parts lie inside it and outside the region kept, which nothing
        // else refers to; the advice only changes how the region is backed.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return None;
            }
            let start = base as usize;
            let region = start.next_multiple_of(HUGE);
            if region > start {
                libc::munmap(base, region - start);
            }
            let tail = start + span - (region + HUGE);
            if tail > 0 {
                libc::munmap((region + HUGE) as *mut libc::c_void, tail);
            }
            // Not huge is said too: where huge pages are the default (`always`), the
            // aligned region would get one anyway.
            let advice = if huge {
                libc::MADV_HUGEPAGE
            } else {
                libc::MADV_NOHUGEPAGE
            };
            libc::madvise(region as *mut libc::c_void, HUGE, advice);
            std::ptr::NonNull::new(region as *mut u8).map(HugeRegion)
        }
    }

    /// The whole region.
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the region is HUGE bytes mapped readable and writable for the life of
        // `self`, zero-filled by the kernel (so initialised), and borrowed mutably once.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr(), HUGE) }
    }
}

impl Drop for HugeRegion {
    fn drop(&mut self) {
        // SAFETY: the region was mapped by `new` and is unmapped once, here.
        unsafe { libc::munmap(self.0.as_ptr().cast(), HUGE) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn buffers_keep_their_capacity_and_contents() {
        for capacity in [0, 10, 4 << 20, (9 << 20) + 123] {
            let mut v: Vec<u8> = super::vec_with_capacity(capacity).expect("memory");
            assert_eq!(v.capacity(), capacity);
            v.extend((0..capacity).map(|i| i as u8));
            assert!(v.iter().enumerate().all(|(i, &b)| b == i as u8));
        }
    }

    #[test]
    fn a_huge_region_is_aligned_zeroed_and_writable() {
        for huge in [false, true] {
            let mut region = super::HugeRegion::new(huge).expect("memory");
            let bytes = region.bytes();
            assert_eq!(bytes.as_ptr() as usize % super::HUGE, 0);
            assert_eq!(bytes.len(), super::HUGE);
            assert!(bytes.iter().all(|&b| b == 0));
            bytes.fill(7);
            assert!(region.bytes().iter().all(|&b| b == 7));
        }
    }
}
