//! Owner names (`uname`/`gname` of tar headers) resolved through the target's own
//! `etc/passwd` and `etc/group`, with apk's caching rules.
//!
//! apk caches each name per "generation": the first lookup of a name in a generation reads
//! the target's file as it is at that moment, and the answer (found or not) sticks until a
//! package script ran, which starts a new generation. Reproducing that exactly matters:
//! without scripts, `root` is first looked up while extracting `alpine-baselayout-data`,
//! before its `etc/passwd` exists, so apk keeps the numeric ids for the whole run.

use std::collections::HashMap;

/// Which database a name is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IdKind {
    /// `etc/passwd`: user names.
    User,
    /// `etc/group`: group names.
    Group,
}

impl IdKind {
    /// The path of the database relative to the root.
    pub(crate) fn path(self) -> &'static str {
        match self {
            IdKind::User => "etc/passwd",
            IdKind::Group => "etc/group",
        }
    }
}

/// Name -> id cache of one generation.
#[derive(Debug, Default)]
pub(crate) struct IdCache {
    cache: HashMap<(IdKind, String), Option<u32>>,
}

impl IdCache {
    /// Starts a new generation: every name is looked up again on next use.
    pub(crate) fn reset(&mut self) {
        self.cache.clear();
    }

    /// Maps `name` to an id, reading the database through `read` (called at most once per
    /// name and generation) and falling back to `numeric` when the name is empty or unknown.
    pub(crate) fn resolve(
        &mut self,
        kind: IdKind,
        name: &str,
        numeric: u32,
        read: &mut dyn FnMut(IdKind) -> Option<Vec<u8>>,
    ) -> u32 {
        if name.is_empty() {
            return numeric;
        }
        let key = (kind, name.to_owned());
        if let Some(found) = self.cache.get(&key) {
            return found.unwrap_or(numeric);
        }
        let found = read(kind).and_then(|db| lookup(&db, name));
        self.cache.insert(key, found);
        found.unwrap_or(numeric)
    }
}

/// Finds `name` in passwd/group text: the first line whose first field is `name` and
/// whose third field is a number (what `fgetpwent`/`fgetgrent` accept).
pub(crate) fn lookup(db: &[u8], name: &str) -> Option<u32> {
    db.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        let first = fields.next()?;
        if first != name.as_bytes() {
            return None;
        }
        fields.next()?;
        let id = std::str::from_utf8(fields.next()?).ok()?;
        id.trim().parse::<u32>().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_first_matching_line() {
        let db = b"root:x:0:0:root:/root:/bin/sh\nchrony:x:101:102::/var/lib/chrony:/sbin/nologin\nchrony:x:7:7::/:/\n";
        assert_eq!(lookup(db, "chrony"), Some(101));
        assert_eq!(lookup(db, "chron"), None);
        assert_eq!(lookup(b"bad:x:notanumber:0::/:/\n", "bad"), None);
    }

    #[test]
    fn an_unknown_name_sticks_until_reset() {
        let mut cache = IdCache::default();
        let mut reads = 0;
        let mut empty = |_: IdKind| {
            reads += 1;
            Some(Vec::new())
        };
        assert_eq!(cache.resolve(IdKind::Group, "shadow", 42, &mut empty), 42);
        let mut with_group = |_: IdKind| Some(b"shadow:x:7:\n".to_vec());
        assert_eq!(
            cache.resolve(IdKind::Group, "shadow", 42, &mut with_group),
            42
        );
        cache.reset();
        assert_eq!(
            cache.resolve(IdKind::Group, "shadow", 42, &mut with_group),
            7
        );
        assert_eq!(reads, 1);
    }
}
