//! Large buffers backed by transparent huge pages where the kernel offers them.
//!
//! Reading a cached parsed index (community: 12 MB) or inflating an index into a fresh
//! buffer spends as much time in page faults as in the work itself: one fault, one
//! zeroed 4 KiB page, per 4 KiB written. Asked for huge pages (`MADV_HUGEPAGE`, which
//! the common `madvise` setting of `/sys/kernel/mm/transparent_hugepage/enabled`
//! honours), the kernel backs each aligned 2 MiB of the buffer with one page instead
//! (warm `plan gnome`: ~5 ms less CPU). Where it does not (THP off, no huge page free),
//! the advice changes nothing.

/// Below this a buffer spans no whole huge page worth asking for.
const WORTH: usize = 2 << 20;

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
    const HUGE: usize = 2 << 20;
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
}
