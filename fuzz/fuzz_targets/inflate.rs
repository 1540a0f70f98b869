//! Whole-buffer inflation (libdeflate) on arbitrary bytes, of gzip members (an index)
//! and of one member (a package's data): no crash, and whatever it returns is exactly
//! what the streaming decoder reads from the same bytes, which must then succeed (it is
//! what the caller falls back to).
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(fast) = sysroot_mk::inflate::gzip_members(data, 1 << 20) {
        let mut streamed = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut streamed)
            .expect("libdeflate inflated what the streaming decoder refuses");
        assert_eq!(fast, streamed);
    }
    let mut whole = vec![0; 1 << 20];
    if let Some(len) = sysroot_mk::inflate::gzip_into(data, &mut whole) {
        let mut streamed = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut streamed)
            .expect("libdeflate inflated a member the streaming decoder refuses");
        assert_eq!(whole[..len], streamed);
    }
});
