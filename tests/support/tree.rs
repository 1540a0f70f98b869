//! Helpers shared by tests that compare whole trees or run the tool as a test user:
//! a tree as a map of entries, their differences, a workspace the user may write, and
//! running a copy of the binary with the user's ids (no root supplementary groups).
#![allow(dead_code)]

use sha2::Digest;
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Kind, mode, owner and content (file hash, link target, device numbers) of an entry.
pub type Entry = (char, u32, u32, u32, String);

/// Every entry below `root`, device nodes included.
pub fn tree(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for item in std::fs::read_dir(root.join(&rel)).unwrap() {
            let rel = rel.join(item.unwrap().file_name());
            let path = root.join(&rel);
            let md = std::fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            let (kind, content) = if ft.is_dir() {
                stack.push(rel.clone());
                ('d', String::new())
            } else if ft.is_symlink() {
                (
                    'l',
                    std::fs::read_link(&path).unwrap().display().to_string(),
                )
            } else if ft.is_file() {
                let hash = sha2::Sha256::digest(std::fs::read(&path).unwrap());
                ('f', hex::encode(hash))
            } else if ft.is_char_device() {
                ('c', format!("{:x}", md.rdev()))
            } else {
                ('?', String::new())
            };
            let entry = (kind, md.mode() & 0o7777, md.uid(), md.gid(), content);
            out.insert(rel.display().to_string(), entry);
        }
    }
    out
}

/// The differences between two trees, one line each (at most 20).
pub fn differences(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> Vec<String> {
    let mut diffs = Vec::new();
    for (path, entry) in a {
        match b.get(path) {
            None => diffs.push(format!("only in the reference: {path}")),
            Some(other) if other != entry => diffs.push(format!("{path}: {entry:?} != {other:?}")),
            _ => {}
        }
    }
    diffs.extend(
        b.keys()
            .filter(|p| !a.contains_key(*p))
            .map(|p| format!("only in the candidate: {p}")),
    );
    diffs.truncate(20);
    diffs
}

/// A directory the test user may write (`work`), and a copy of the binary it can run.
pub fn user_workspace(uid: u32, gid: u32) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(uid), Some(gid)).unwrap();
    let exe = tmp.path().join("sysroot-mk");
    // A hard link where it can be, not a copy: the copy's write descriptor, inherited by a
    // child that another test thread forks meanwhile, makes running the copy fail with
    // "Text file busy" until that child execs (seen in CI).
    if std::fs::hard_link(env!("CARGO_BIN_EXE_sysroot-mk"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_sysroot-mk"), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (tmp, work, exe)
}

/// `exe` with `args`, to run as `uid`/`gid` with a clean environment: `PATH` as given
/// (`/nonexistent` hides `newuidmap`, so no subordinate ids), `HOME` missing, plus `env`.
pub fn user_command(
    exe: &Path,
    (uid, gid): (u32, u32),
    path: &str,
    env: &[(&str, &str)],
    args: &[&std::ffi::OsStr],
) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env_clear()
        .env("PATH", path)
        .env("HOME", "/nonexistent")
        .envs(env.iter().copied());
    // SAFETY: only async-signal-safe system calls between fork and exec; groups first so
    // that root's supplementary groups do not reach the user.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// [`user_command`], run to its end.
pub fn as_user(
    exe: &Path,
    ids: (u32, u32),
    path: &str,
    env: &[(&str, &str)],
    args: &[&std::ffi::OsStr],
) -> Output {
    user_command(exe, ids, path, env, args).output().unwrap()
}
