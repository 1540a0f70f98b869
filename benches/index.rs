//! Times `parse_apkindex` on the full v3.19 x86_64 main + community indexes
//! (23,030 packages, 9.7 MB of text), then what `plan gnome` does with them: reading
//! them for resolving (`ParsedIndex::parse`), reading that form back from the cache,
//! and resolving. Run: `cargo bench --bench index`. apk 2.14 needs about 0.5 s to
//! load and list the same indexes.

#[path = "../tests/support/shared_data.rs"]
mod shared_data;

use shared_data::{apkindex_text, shared, v3_19_index};
use std::time::{Duration, Instant};

use sysroot_mk::cache::ParsedStore;
use sysroot_mk::index::{parse_apkindex, Dependency, ParsedIndex};
use sysroot_mk::resolve::{resolve_indexes, ResolveOptions};

/// CPU time of the whole process (all threads), which the other jobs on a shared
/// machine do not inflate the way they inflate wall time.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let dir = shared().join("indexes/v3.19-x86_64");
    if !dir.exists() {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    }
    let start = Instant::now();
    let texts: Vec<String> = ["main", "community"]
        .iter()
        .map(|r| apkindex_text(&v3_19_index(r)))
        .collect();
    let unpack = start.elapsed();
    let bytes: usize = texts.iter().map(String::len).sum();

    let rounds = 30;
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    let mut drops: Vec<Duration> = Vec::with_capacity(rounds);
    let mut cpu: Vec<Duration> = Vec::with_capacity(rounds);
    let mut packages = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let cpu_start = cpu_time();
        let parsed: Vec<_> = texts
            .iter()
            .enumerate()
            .map(|(repo, text)| parse_apkindex(text, repo).expect("index parses"))
            .collect();
        times.push(start.elapsed());
        cpu.push(cpu_time() - cpu_start);
        packages = parsed.iter().map(Vec::len).sum();
        // Freeing is timed apart: a caller keeps the packages for the whole run.
        let start = Instant::now();
        drop(parsed);
        drops.push(start.elapsed());
    }
    // The first round is what a command-line run pays: a fresh heap, nothing freed yet.
    let (first_wall, first_cpu) = (times[0], cpu[0]);
    times.sort();
    drops.sort();
    cpu.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "parse_apkindex main+community: {packages} packages, {:.1} MB: first round {:.1} ms (CPU {:.1} ms); min {:.1} ms, median {:.1} ms, max {:.1} ms, CPU time (all threads) median {:.1} ms ({rounds} rounds); freeing them {:.1} ms; gunzip+untar {:.1} ms",
        bytes as f64 / 1e6,
        ms(first_wall),
        ms(first_cpu),
        ms(times[0]),
        ms(times[rounds / 2]),
        ms(times[rounds - 1]),
        ms(cpu[rounds / 2]),
        ms(drops[rounds / 2]),
        ms(unpack),
    );
    resolution(&texts);
}

/// The minimum and median of `rounds` runs of `f`, in milliseconds: on a shared machine
/// the minimum is the figure other jobs disturb least.
fn time<T>(rounds: usize, mut f: impl FnMut() -> T) -> (f64, f64) {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let out = f();
            let took = start.elapsed();
            drop(out);
            took
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[0]), ms(times[rounds / 2]))
}

/// The stages of `plan gnome` on main+community, each timed alone.
fn resolution(texts: &[String]) {
    let rounds = 20;
    let parse = time(rounds, || {
        texts
            .iter()
            .map(|t| ParsedIndex::parse(t.clone()).expect("index parses"))
            .collect::<Vec<_>>()
    });
    let indexes: Vec<ParsedIndex> = texts
        .iter()
        .map(|t| ParsedIndex::parse(t.clone()).expect("index parses"))
        .collect();
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = ParsedStore::new(dir.path(), true);
    for (i, index) in indexes.iter().enumerate() {
        // Written numbered, as a build keeps it; `indexes` stay as `--no-cache` has them.
        let mut numbered = index.clone();
        store
            .write(&i.to_string(), "", &mut numbered)
            .expect("cache entry written");
    }
    let read = time(rounds, || {
        (0..indexes.len())
            .map(|i| store.read(&i.to_string()).expect("cache hit"))
            .collect::<Vec<_>>()
    });
    let cached: Vec<ParsedIndex> = (0..indexes.len())
        .map(|i| store.read(&i.to_string()).expect("cache hit").1)
        .collect();
    let sources: Vec<(&ParsedIndex, usize)> = indexes.iter().zip(0..).collect();
    let cached_sources: Vec<(&ParsedIndex, usize)> = cached.iter().zip(0..).collect();
    let world = [Dependency::parse("gnome").expect("atom")];
    let options = ResolveOptions {
        arch: Some("x86_64".to_string()),
        ..ResolveOptions::default()
    };
    let resolve = time(rounds, || {
        resolve_indexes(&sources, &world, &options).expect("gnome resolves")
    });
    let resolve_cached = time(rounds, || {
        resolve_indexes(&cached_sources, &world, &options).expect("gnome resolves")
    });
    println!(
        "plan gnome, main+community ({rounds} rounds, min/median ms): ParsedIndex::parse {:.1}/{:.1}; cache read {:.1}/{:.1}; resolve {:.1}/{:.1}, from the cached forms {:.1}/{:.1}",
        parse.0, parse.1, read.0, read.1, resolve.0, resolve.1, resolve_cached.0, resolve_cached.1
    );
}
