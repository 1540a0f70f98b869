use super::*;

fn package(name: &str, deps: &[&str]) -> Package {
    Package {
        checksum: format!("Q1{name}"),
        name: name.to_owned(),
        version: crate::version::Version::new("1-r0"),
        arch: "x86_64".to_owned(),
        size: 0,
        installed_size: 0,
        description: String::new(),
        url: String::new(),
        license: String::new(),
        origin: String::new(),
        maintainer: String::new(),
        build_time: 0,
        commit: String::new(),
        provider_priority: None,
        depends: deps.iter().map(|d| Dependency::any(*d)).collect(),
        ..Package::default()
    }
}

#[test]
fn the_fast_checksum_key_is_the_decoders() {
    let mut digest = [0u8; 20];
    for seed in 0..400u32 {
        for (i, b) in digest.iter_mut().enumerate() {
            *b = (seed.wrapping_mul(2654435761).rotate_left(i as u32 * 3) >> 7) as u8;
        }
        let canonical = crate::package::encode_q1(&digest);
        let want = crate::package::decode_q1(&canonical).map(ChecksumKey::Digest);
        assert_eq!(Some(ChecksumKey::of(&canonical)), want, "{canonical}");
        // The unused low bits of the last symbol set: the same digest.
        let mut lenient = canonical.clone().into_bytes();
        let last = lenient.len() - 2;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let at = alphabet.iter().position(|&c| c == lenient[last]).unwrap();
        lenient[last] = alphabet[at | 3];
        let lenient = String::from_utf8(lenient).unwrap();
        assert_eq!(
            ChecksumKey::of(&lenient),
            ChecksumKey::of(&canonical),
            "{lenient}"
        );
    }
    // Not base64, or another length: the text, as the decoder leaves it.
    for odd in [
        "Q1!AAAAAAAAAAAAAAAAAAAAAAAAAE=",
        "Q1AAAA",
        "abc",
        "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAE",
    ] {
        let want = match crate::package::decode_q1(odd) {
            Some(d) => ChecksumKey::Digest(d),
            None => ChecksumKey::Text(odd),
        };
        assert_eq!(ChecksumKey::of(odd), want, "{odd}");
    }
}

#[test]
fn reverse_edges_follow_apk_hash_walk() {
    // Two names in one bucket: the one created later is walked first.
    let first = bucket("p0");
    let twin = (1..1_000_000)
        .map(|i| format!("p{i}"))
        .find(|n| bucket(n) == first)
        .expect("a bucket twin exists");
    let mut other = (1..1_000_000)
        .map(|i| format!("q{i}"))
        .filter(|n| bucket(n) != first);
    let (low, high) = (other.next().unwrap(), other.next().unwrap());
    let (low, high) = if bucket(&low) < bucket(&high) {
        (low, high)
    } else {
        (high, low)
    };
    let pkgs = vec![
        package("p0", &["t"]),
        package(&twin, &["t"]),
        package(&high, &["t"]),
        package(&low, &["t"]),
    ];
    let u = Universe::build(&pkgs, None);
    let t = u.index["t"];
    let got: Vec<&str> = u.rdepends(t).iter().map(|&n| u.text(n)).collect();
    let mut want = vec![(bucket(&low), low.as_str()), (bucket(&high), high.as_str())];
    want.push((first, twin.as_str()));
    want.push((first, "p0"));
    want.sort_by_key(|w| w.0);
    assert_eq!(got, want.iter().map(|w| w.1).collect::<Vec<_>>());
}

#[test]
fn a_narrowed_table_walks_names_in_the_whole_sets_creation_order() {
    // `p0` and its bucket twin both depend on `t`; the twin is created first in the
    // whole set, by a package the world never reaches.
    let twin = (1..1_000_000)
        .map(|i| format!("p{i}"))
        .find(|n| bucket(n) == bucket("p0"))
        .expect("a bucket twin exists");
    let pkgs = vec![
        package("unreached", &[&twin]),
        package("w", &["p0", &twin]),
        package("p0", &["t"]),
        package(&twin, &["t"]),
        package("t", &[]),
    ];
    let walk = |u: &Universe<'_>| -> Vec<String> {
        let t = u.index["t"];
        u.rdepends(t)
            .iter()
            .map(|&n| u.text(n).to_owned())
            .collect()
    };
    let whole = walk(&Universe::build(&pkgs, None));
    assert_eq!(whole, ["p0", twin.as_str()]);

    let all = [Source::Packages(&pkgs)];
    let pruned = prune::Pruned::new(&all, &["w"]).expect("no duplicates");
    assert_eq!(pruned.counts(), (4, 5));
    let sources = pruned.sources();
    let mut narrowed = Universe::build_installed(&Installed::default(), &sources, None);
    // Met in the narrowed set's own order, the twin comes after `p0`: walked first.
    assert_eq!(walk(&narrowed), [twin.as_str(), "p0"]);
    narrowed.set_creation_order(|text, local| pruned.creation_key(text, local));
    assert_eq!(walk(&narrowed), whole);
}
