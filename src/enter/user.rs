//! The sysroot's users: `--user` is looked up in the sysroot's `etc/passwd` and
//! `etc/group`, never the host's, since the two need not agree.

use super::EnterError;
use crate::rootfs::RootDir;
use rustix::fs::OFlags;
use std::path::Path;

/// `etc/passwd` and `etc/group` of real systems are kilobytes; this bounds hostile ones.
const MAX_DB: u64 = 16 * 1024 * 1024;
/// The id that the set*id calls read as "leave unchanged".
const NO_ID: u32 = u32::MAX;

/// A user of the sysroot and what running as them takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysrootUser {
    /// Login name (the uid as text when not in `etc/passwd`).
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from `etc/group` members), primary first.
    pub groups: Vec<u32>,
    /// Home directory inside the sysroot.
    pub home: String,
    /// Login shell inside the sysroot, when usable.
    pub shell: Option<String>,
}

impl SysrootUser {
    /// The shell for an interactive session: the user's, else `/bin/sh`.
    pub fn login_shell(&self) -> &str {
        self.shell.as_deref().unwrap_or("/bin/sh")
    }
}

/// Looks `spec` (a name or a numeric uid) up in the sysroot.
pub(crate) fn lookup(root: &Path, fd: &RootDir, spec: &str) -> Result<SysrootUser, EnterError> {
    let passwd = read_db(root, fd, "etc/passwd")?;
    let by_uid = spec.parse::<u32>().ok();
    let found = passwd
        .lines()
        .filter_map(parse_passwd)
        .find(|u| match by_uid {
            Some(uid) => u.uid == uid,
            None => u.name == spec,
        });
    let mut user = match (found, by_uid) {
        (Some(user), _) => user,
        // A bare uid is fine (files may be owned by ids nobody named): its own group, `/` home.
        (None, Some(uid)) => SysrootUser {
            name: uid.to_string(),
            uid,
            gid: uid,
            groups: Vec::new(),
            home: "/".into(),
            shell: None,
        },
        (None, None) => {
            return Err(EnterError::NoSuchUser {
                root: root.to_path_buf(),
                user: spec.to_string(),
            })
        }
    };
    // setresuid(-1) and setresgid(-1) leave the ids as they are: the command would stay root.
    if user.uid == NO_ID || user.gid == NO_ID {
        return Err(EnterError::InvalidId {
            root: root.to_path_buf(),
            user: spec.to_string(),
            uid: user.uid,
            gid: user.gid,
        });
    }
    if user.uid == 0 && spec != "root" && spec != "0" {
        return Err(EnterError::ImplicitRoot {
            root: root.to_path_buf(),
            user: spec.to_string(),
        });
    }
    let group = read_db(root, fd, "etc/group")?;
    user.groups = groups_of(&group, &user.name, user.gid);
    user.shell = user
        .shell
        .take()
        .filter(|sh| !sh.ends_with("/nologin") && !sh.ends_with("/false"))
        .filter(|sh| fd.open_in(sh, OFlags::PATH, 0).is_ok());
    Ok(user)
}

/// root, as the sysroot describes it (home `/root` when it says nothing).
pub(crate) fn root_user(root: &Path, fd: &RootDir) -> Result<SysrootUser, EnterError> {
    match lookup(root, fd, "0") {
        Ok(mut user) if user.name == "0" => {
            user.name = "root".into();
            user.home = "/root".into();
            Ok(user)
        }
        other => other,
    }
}

fn read_db(root: &Path, fd: &RootDir, rel: &str) -> Result<String, EnterError> {
    let data = fd
        .read_regular(rel, MAX_DB, false)
        .map_err(|source| EnterError::Read {
            root: root.to_path_buf(),
            path: rel.into(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&data.unwrap_or_default()).into_owned())
}

fn parse_passwd(line: &str) -> Option<SysrootUser> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 || f[0].is_empty() {
        return None;
    }
    Some(SysrootUser {
        name: f[0].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        groups: Vec::new(),
        home: if f[5].is_empty() {
            "/".into()
        } else {
            f[5].to_string()
        },
        shell: Some(f[6].to_string()).filter(|s| !s.is_empty()),
    })
}

/// The primary group plus every group listing `name` as a member.
fn groups_of(group: &str, name: &str, primary: u32) -> Vec<u32> {
    let mut groups = vec![primary];
    for line in group.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(gid) = f[2].parse::<u32>() else {
            continue;
        };
        if gid == NO_ID {
            continue;
        }
        if f[3].split(',').any(|m| m.trim() == name) && !groups.contains(&gid) {
            groups.push(gid);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysroot() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/ash"), "").unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/ash\nreborn:x:1000:1000::/home/reborn:/bin/ash\nbroken\ndaemon:x:2:2::/sbin:/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:root\nwheel:x:10:root,reborn\nreborn:x:1000:\naudio:x:18:other\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn user_by_name_gets_groups_home_and_shell() {
        let dir = sysroot();
        let fd = RootDir::open(dir.path()).unwrap();
        let u = lookup(dir.path(), &fd, "reborn").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.groups, vec![1000, 10]);
        assert_eq!(u.home, "/home/reborn");
        assert_eq!(u.login_shell(), "/bin/ash");
    }

    #[test]
    fn user_by_uid_and_unusable_shells() {
        let dir = sysroot();
        let fd = RootDir::open(dir.path()).unwrap();
        assert_eq!(
            lookup(dir.path(), &fd, "2").unwrap().login_shell(),
            "/bin/sh"
        );
        let anon = lookup(dir.path(), &fd, "4242").unwrap();
        assert_eq!((anon.uid, anon.gid, anon.home.as_str()), (4242, 4242, "/"));
        let err = lookup(dir.path(), &fd, "nobody-here")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`nobody-here`"), "{err}");
    }

    #[test]
    fn minus_one_and_hidden_root_are_refused() {
        let dir = sysroot();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/ash
toor:x:0:0::/root:/bin/ash
ghost:x:4294967295:1::/:/bin/ash
glum:x:7:4294967295::/:/bin/ash
",
        )
        .unwrap();
        let fd = RootDir::open(dir.path()).unwrap();
        for spec in ["ghost", "4294967295", "glum"] {
            let err = lookup(dir.path(), &fd, spec).unwrap_err();
            assert!(matches!(err, EnterError::InvalidId { .. }), "{spec}: {err}");
        }
        let err = lookup(dir.path(), &fd, "toor").unwrap_err();
        assert!(matches!(err, EnterError::ImplicitRoot { .. }), "{err}");
        let hint = crate::report::Hinted::hint(&err);
        assert!(
            matches!(&hint, Some(crate::report::Hint::Fix(fix)) if fix.contains("--user root")),
            "{hint:?}"
        );
        assert_eq!(lookup(dir.path(), &fd, "root").unwrap().uid, 0);
        assert_eq!(lookup(dir.path(), &fd, "0").unwrap().name, "root");
    }

    #[test]
    fn root_defaults_without_passwd() {
        let dir = tempfile::tempdir().unwrap();
        let fd = RootDir::open(dir.path()).unwrap();
        let r = root_user(dir.path(), &fd).unwrap();
        assert_eq!(
            (r.name.as_str(), r.uid, r.home.as_str()),
            ("root", 0, "/root")
        );
    }
}
