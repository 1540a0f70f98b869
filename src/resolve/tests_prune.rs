//! Narrowing (`universe::prune`) never changes a resolution: random repositories,
//! resolved from the packages the world reaches and from all of them, plan alike.
//!
//! The names are drawn from a few of apk's hash buckets, so that ties decided by the
//! bucket walk (and within a bucket, by creation order) are common; packages the world
//! never reaches still create names first, which only the creation key accounts for.

use super::*;
use crate::apk_hash::bucket;
use crate::index::Provide;
use crate::version::Version;

/// A deterministic generator (xorshift), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }
}

/// 45 names, fifteen in each of three buckets.
fn names() -> Vec<String> {
    let mut by_bucket: std::collections::HashMap<u32, Vec<String>> = Default::default();
    let targets = [bucket("a"), bucket("b"), bucket("c")];
    let mut out = Vec::new();
    for i in 0.. {
        let name = format!("n{i}");
        let b = bucket(&name);
        if let Some(t) = targets.iter().position(|&t| t == b) {
            let slot = by_bucket.entry(targets[t]).or_default();
            if slot.len() < 15 {
                slot.push(name.clone());
                out.push(name);
            }
        }
        if out.len() == 45 {
            break;
        }
    }
    out
}

fn atom(rng: &mut Rng, names: &[String]) -> Dependency {
    let name = &names[rng.below(names.len())];
    let text = match rng.below(40) {
        0 => format!("!{name}"),
        1 => format!("{name}>={}", 1 + rng.below(3)),
        2 => format!("{name}<{}", 1 + rng.below(3)),
        3 => format!("{name}={}", 1 + rng.below(3)),
        _ => name.clone(),
    };
    Dependency::parse(&text).unwrap()
}

/// Two repositories of random packages, and a world of one to three names.
fn random_case(seed: u64, names: &[String]) -> (Vec<Vec<Package>>, Vec<Dependency>) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut repos = vec![Vec::new(), Vec::new()];
    // Every name has a package (a dependency on nothing fails, and most would).
    for i in 0..names.len() + rng.below(20) {
        let name = match names.get(i) {
            Some(name) => name.clone(),
            None => names[rng.below(names.len())].clone(),
        };
        let version = format!("{}", 1 + rng.below(3));
        let mut p = Package {
            checksum: format!("Q1{name}-{version}-{i}"),
            name,
            version: Version::new(&version),
            arch: "x86_64".to_owned(),
            installed_size: rng.below(2) as u64,
            repo: rng.below(2),
            ..Package::default()
        };
        for _ in 0..rng.below(3) {
            p.depends.push(atom(&mut rng, names));
        }
        for _ in 0..rng.below(3) {
            let provided = &names[rng.below(names.len())];
            let text = if rng.one_in(4) {
                format!("{provided}={}", 1 + rng.below(3))
            } else {
                provided.clone()
            };
            p.provides.push(Provide::parse(&text).unwrap());
        }
        if rng.one_in(3) {
            for _ in 0..1 + rng.below(2) {
                let d = atom(&mut rng, names);
                p.install_if.push(Dependency::any(d.name.as_str()));
            }
        }
        if rng.one_in(4) {
            p.provider_priority = Some(rng.below(3) as u32);
        }
        repos[p.repo].push(p);
    }
    let world = (0..1 + rng.below(3))
        .map(|_| Dependency::any(names[rng.below(names.len())].as_str()))
        .collect();
    (repos, world)
}

fn outcome(solved: Solved) -> Result<Vec<String>, String> {
    match solved {
        Ok((changes, _)) => Ok(changes
            .iter()
            .filter_map(|c| c.new.as_ref().map(Package::name_version))
            .collect()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn narrowed_and_whole_resolutions_agree() {
    let names = names();
    let (mut planned, mut narrowed) = (0, 0);
    for seed in 0..3000u64 {
        let (repos, world) = random_case(seed, &names);
        let sources: Vec<Source<'_>> = repos.iter().map(|r| Source::Packages(r)).collect();
        let opts = ResolveOptions::default();
        let fresh = InstalledState::default();
        let whole = outcome(solve_here(&sources, &world, &opts, &fresh, false));
        let narrow = outcome(solve_here(&sources, &world, &opts, &fresh, true));
        assert_eq!(narrow, whole, "seed {seed}");
        planned += usize::from(whole.is_ok());
        let names: Vec<&str> = world.iter().map(|d| d.name.as_str()).collect();
        let pruned = universe::prune::Pruned::new(&sources, &names).expect("no duplicates");
        let (kept, all) = pruned.counts();
        narrowed += usize::from(kept < all);
    }
    // The comparison means something only if most cases plan and many leave packages out.
    assert!(planned > 1200, "{planned} of 3000 planned");
    assert!(narrowed > 1000, "{narrowed} of 3000 narrowed");
}

#[test]
fn a_possible_duplicate_is_not_narrowed() {
    let package = |name: &str, checksum: &str| Package {
        name: name.to_owned(),
        version: Version::new("1"),
        checksum: checksum.to_owned(),
        ..Package::default()
    };
    let first = [package("a", "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAE=")];
    // The same identity, spelled with another (lenient) last digit.
    let second = [package("b", "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAF=")];
    let sources = [Source::Packages(&first), Source::Packages(&second)];
    assert!(universe::prune::Pruned::new(&sources, &["a"]).is_none());
    let other = [package("b", "Q1BAAAAAAAAAAAAAAAAAAAAAAAAAE=")];
    let sources = [Source::Packages(&first), Source::Packages(&other)];
    assert!(universe::prune::Pruned::new(&sources, &["a"]).is_some());
}
