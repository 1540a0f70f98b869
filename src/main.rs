//! The `sysroot-mk` binary: parses arguments, runs the library, renders errors and exit codes.

mod cli;

// Parsing ~23,000 index entries is dominated by small allocations; mimalloc cuts
// that time by about a third compared with glibc's malloc. Its `no_thp` feature (set on
// libmimalloc-sys in Cargo.toml) keeps it from backing arenas with transparent huge
// pages, which tripled the peak RSS of a build.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the enum has no binding in libmimalloc-sys; the
/// test below notices if its position moves).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // By default freed pages stay committed for a second (mimalloc 3) in case they are
    // reused; during extraction, where each package file read is freed as the next one
    // arrives, that holds about 3 MB more at the peak (12.3 -> 15.2 MB RSS for
    // alpine-base), for no CPU time measurably saved.
    // SAFETY: called before any other thread exists; it only stores an option value.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    std::process::exit(cli::main());
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_where_we_set_it() {
        // Its default is 1000 (ms) in mimalloc 3 and 10 in mimalloc 2; no neighbour has
        // either.
        // SAFETY: reads an option value.
        let value = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert!(
            value == 1000 || value == 10,
            "option {} is {value}, not the purge delay",
            super::MI_OPTION_PURGE_DELAY
        );
    }
}
