//! User namespaces' id maps, shared by `enter` and the build's script runner:
//! identity for root, subordinate ranges (newuidmap) or the caller alone for everyone else.
//! `enter` run by root prefers [`IdMap::Range`]: the session's ids shown as an
//! unprivileged block of host ids that no host user owns ([`IdMap::unprivileged_range`]).

use nix::unistd::{Gid, Pid, Uid};

/// How the user namespace maps ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMap {
    /// No user namespace: real root.
    None,
    /// Every id to itself (the caller is root).
    Identity,
    /// The caller's uid/gid to 0 and their subordinate ranges from 1, via newuidmap.
    Subordinate {
        /// First subordinate uid and count.
        uid: (u32, u32),
        /// First subordinate gid and count.
        gid: (u32, u32),
    },
    /// Only the caller's uid/gid, as 0 (no setgroups).
    Single,
    /// The session's ids `0..count` as host ids `base..base + count`, uids and gids
    /// alike (written directly: the caller is root). Root inside is not root outside.
    Range {
        /// First host id.
        base: u32,
        /// How many ids.
        count: u32,
    },
}

/// How many ids a [`IdMap::Range`] maps: 0..65535, Alpine's `nobody` (65534) included.
pub const RANGE_SIZE: u32 = 65536;
/// The lowest base of a [`IdMap::Range`]: far above the ids of regular users and of the
/// usual first subordinate ranges (100000 + 65536 per user), as systemd-nspawn keeps
/// its container ranges apart from the host's users.
pub const RANGE_FLOOR: u32 = 16 * RANGE_SIZE;
/// The highest id a map may reach: 4294967295 is "no id" to the kernel.
const ID_CEILING: u64 = 0xFFFF_0000;

impl IdMap {
    /// The map for a session: none for root unless a user namespace is wanted, identity
    /// for root, the caller's subordinate ranges where they exist, else the caller alone.
    pub fn choose(wants_userns: bool) -> IdMap {
        let root = Uid::effective().is_root();
        if !wants_userns && root {
            return IdMap::None;
        }
        if root {
            return IdMap::Identity;
        }
        let helpers = ["newuidmap", "newgidmap"]
            .iter()
            .all(|h| which(h).is_some());
        let name = nix::unistd::User::from_uid(Uid::current())
            .ok()
            .flatten()
            .map(|u| u.name);
        let range = |file: &str, id: u32| subordinate(file, name.as_deref(), id);
        match (
            helpers,
            range("/etc/subuid", Uid::current().as_raw()),
            range("/etc/subgid", Gid::current().as_raw()),
        ) {
            (true, Some(uid), Some(gid)) => IdMap::Subordinate { uid, gid },
            _ => IdMap::Single,
        }
    }

    /// A [`IdMap::Range`] that no host user owns, from the host's `/etc/subuid`,
    /// `/etc/subgid`, `/etc/passwd` and `/etc/group`; `None` when none is left.
    pub fn unprivileged_range() -> Option<IdMap> {
        let read = |f: &str| std::fs::read_to_string(f).unwrap_or_default();
        let mut taken = Vec::new();
        for file in ["/etc/subuid", "/etc/subgid"] {
            taken.extend(subordinate_ranges(&read(file)));
        }
        for file in ["/etc/passwd", "/etc/group"] {
            taken.extend(database_ids(&read(file)).map(|id| (id, 1)));
        }
        pick_base(&taken).map(|base| IdMap::Range {
            base,
            count: RANGE_SIZE,
        })
    }

    /// Whether all the sysroot's usual ids exist inside (setgroups, devpts gid=5).
    pub fn ids_mapped(&self) -> bool {
        !matches!(self, IdMap::Single)
    }

    /// Writes the map of the user namespace of `pid` (directly, or through newuidmap).
    pub fn write(&self, pid: Pid) -> std::io::Result<()> {
        let proc = format!("/proc/{pid}");
        let (uid, gid) = (Uid::current().as_raw(), Gid::current().as_raw());
        match self {
            IdMap::None => Ok(()),
            IdMap::Identity => {
                // Every id this process has, to itself: all of them on the host, the
                // mapped ones inside a user namespace (a rootless build's script host).
                for file in ["uid_map", "gid_map"] {
                    let own = std::fs::read_to_string(format!("/proc/self/{file}"))?;
                    std::fs::write(format!("{proc}/{file}"), identity_of(&own))?;
                }
                Ok(())
            }
            IdMap::Range { base, count } => {
                std::fs::write(format!("{proc}/uid_map"), format!("0 {base} {count}\n"))?;
                std::fs::write(format!("{proc}/gid_map"), format!("0 {base} {count}\n"))
            }
            IdMap::Single => {
                std::fs::write(format!("{proc}/setgroups"), "deny")?;
                std::fs::write(format!("{proc}/uid_map"), format!("0 {uid} 1\n"))?;
                std::fs::write(format!("{proc}/gid_map"), format!("0 {gid} 1\n"))
            }
            IdMap::Subordinate { uid: us, gid: gs } => {
                for (tool, own, (start, count)) in [("newuidmap", uid, us), ("newgidmap", gid, gs)]
                {
                    let status = std::process::Command::new(tool)
                        .args([pid.to_string(), "0".into(), own.to_string(), "1".into()])
                        .args(["1".to_string(), start.to_string(), count.to_string()])
                        .status()?;
                    if !status.success() {
                        return Err(std::io::Error::other(format!("`{tool}` failed ({status})")));
                    }
                }
                Ok(())
            }
        }
    }
}

/// The `inside outside count` lines of a `uid_map` or `gid_map` text.
fn map_lines(map: &str) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
    map.lines().filter_map(|line| {
        let mut f = line.split_whitespace().map(|n| n.parse::<u64>().ok());
        Some((f.next()??, f.next()??, f.next()??))
    })
}

/// The identity map over the inside ids of `map` (a `uid_map` text).
fn identity_of(map: &str) -> String {
    map_lines(map)
        .map(|(inside, _, count)| format!("{inside} {inside} {count}\n"))
        .collect()
}

/// This process's uid map.
fn own_uid_map() -> String {
    std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default()
}

/// Whether this process runs in a user namespace other than the host's (its uid map is
/// not the whole range to itself): there device nodes cannot be created.
pub fn in_user_namespace() -> bool {
    let map = own_uid_map();
    !map.is_empty() && map_lines(&map).collect::<Vec<_>>() != [(0, 0, 4294967295)]
}

/// How many uids this process's user namespace maps (all of them on the host); 1 means
/// that `chown` to anyone else fails.
pub fn mapped_uids() -> u64 {
    map_lines(&own_uid_map()).map(|(_, _, count)| count).sum()
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The `owner:start:count` lines of a subuid or subgid file.
fn subordinate_entries(text: &str) -> impl Iterator<Item = (&str, u32, u32)> + '_ {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.trim().split(':').collect();
        (f.len() == 3).then_some(())?;
        Some((f[0], f[1].parse().ok()?, f[2].parse().ok()?))
    })
}

/// The first `name:start:count` (or `uid:start:count`) line of `file` for the caller.
fn subordinate(file: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    let id = id.to_string();
    let found = subordinate_entries(&text)
        .find(|(owner, ..)| Some(*owner) == name || *owner == id)
        .map(|(_, start, count)| (start, count));
    found
}

/// Every `owner:start:count` range of a subuid/subgid file.
fn subordinate_ranges(text: &str) -> impl Iterator<Item = (u32, u32)> + '_ {
    subordinate_entries(text).map(|(_, start, count)| (start, count))
}

/// The ids (third field) of a passwd or group file.
fn database_ids(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.lines()
        .filter_map(|line| line.split(':').nth(2)?.parse().ok())
}

/// The first [`RANGE_SIZE`]-aligned base at or above [`RANGE_FLOOR`] and above the end
/// of every subordinate range (which may grow into the gaps between them), whose
/// block overlaps none of `taken` (`(start, count)`) and stays below the ceiling.
fn pick_base(taken: &[(u32, u32)]) -> Option<u32> {
    let size = u64::from(RANGE_SIZE);
    let end = |&(start, count): &(u32, u32)| u64::from(start) + u64::from(count);
    // Single ids (users, groups) only need avoiding; ranges push the floor up.
    let floor = taken
        .iter()
        .filter(|r| r.1 > 1 && end(r) < ID_CEILING)
        .map(end)
        .fold(u64::from(RANGE_FLOOR), u64::max);
    let mut base = floor.div_ceil(size) * size;
    while base + size <= ID_CEILING {
        let overlaps = taken
            .iter()
            .any(|r| u64::from(r.0) < base + size && end(r) > base);
        if !overlaps {
            return u32::try_from(base).ok();
        }
        base += size;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_mirror_the_inside_ranges() {
        assert_eq!(
            identity_of("         0          0 4294967295\n"),
            "0 0 4294967295\n"
        );
        assert_eq!(
            identity_of("0 1000 1\n1 100000 65536\n"),
            "0 0 1\n1 1 65536\n"
        );
    }

    #[test]
    fn subordinate_ranges_match_name_or_uid() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subuid");
        std::fs::write(&file, "alice:100000:65536\n1001:200000:1000\nbad\n").unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(subordinate(f, Some("alice"), 1000), Some((100000, 65536)));
        assert_eq!(subordinate(f, Some("bob"), 1001), Some((200000, 1000)));
        assert_eq!(subordinate(f, Some("carol"), 1002), None);
    }

    #[test]
    fn the_unprivileged_range_avoids_every_host_owner() {
        assert_eq!(pick_base(&[]), Some(RANGE_FLOOR));
        // Above the subordinate ranges, past a user who sits where it would go.
        let taken = [
            (100000, 65536),
            (2_000_000, 65536),
            (2_100_000, 1),
            (65534, 1),
        ];
        let base = pick_base(&taken).unwrap();
        assert_eq!(base % RANGE_SIZE, 0);
        assert!(base > 2_100_000, "{base}");
        // nfsnobody (4294967294) does not push the range off the end.
        assert_eq!(pick_base(&[(4294967294, 1)]), Some(RANGE_FLOOR));
        // A subordinate range up to the ceiling leaves nothing.
        assert_eq!(pick_base(&[(RANGE_FLOOR, 0xFFFF_0000 - RANGE_FLOOR)]), None);
        let ids: Vec<u32> =
            database_ids("root:x:0:0::/root:/bin/sh\nbad\nu:x:1000:1000::/:/bin/sh\n").collect();
        assert_eq!(ids, [0, 1000]);
    }
}
