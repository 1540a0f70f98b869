use super::*;
use rustix::fs::FileType;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

/// A root inside a scratch directory, beside an `outside` directory holding `secret`,
/// so that escapes have something to hit.
struct Scratch {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn scratch() -> Scratch {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "host\n").unwrap();
    fs::set_permissions(outside.join("secret"), fs::Permissions::from_mode(0o640)).unwrap();
    Scratch {
        _tmp: tmp,
        root,
        outside,
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn dotdot_stops_at_the_root() {
    let s = scratch();
    let r = RootDir::open(&s.root).unwrap();
    assert_eq!(r.read("../outside/secret", 100).unwrap(), None);
    r.write_atomic("../../x", b"in", 0o644).unwrap();
    assert_eq!(fs::read(s.root.join("x")).unwrap(), b"in");
    r.mkdir_all("../../b/c", 0o755).unwrap();
    assert!(s.root.join("b/c").is_dir());
    assert!(!s.outside.parent().unwrap().join("b").exists());
    let _ = r.remove("../outside/secret");
    assert!(s.outside.join("secret").exists());
}

#[test]
fn absolute_symlinks_resolve_inside_the_root() {
    let s = scratch();
    fs::create_dir_all(s.root.join("etc")).unwrap();
    fs::write(s.root.join("etc/hostname"), "inside\n").unwrap();
    symlink("/etc/hostname", s.root.join("name")).unwrap();
    let r = RootDir::open(&s.root).unwrap();
    assert_eq!(r.read("/name", 100).unwrap().unwrap(), b"inside\n");
    assert_eq!(r.read_head("name", 3).unwrap().unwrap(), b"ins");
    // A directory symlink to a host path leads to that path inside the root.
    symlink(&s.outside, s.root.join("out")).unwrap();
    assert_eq!(r.read("out/secret", 100).unwrap(), None);
    // Dangling inside the root: nothing can be made below it.
    assert!(r.mkdir_all("out/made", 0o755).is_err());
    let inside = s.root.join(s.outside.strip_prefix("/").unwrap());
    fs::create_dir_all(&inside).unwrap();
    r.mkdir_all("out/made", 0o755).unwrap();
    r.write_atomic("out/made/file", b"x", 0o644).unwrap();
    assert!(inside.join("made/file").is_file());
    assert!(!s.outside.join("made").exists());
    // alpine-baselayout's `var/run -> /run`, then a package's `var/run/x`.
    fs::create_dir_all(s.root.join("run")).unwrap();
    fs::create_dir_all(s.root.join("var")).unwrap();
    symlink("/run", s.root.join("var/run")).unwrap();
    let dirs = r.open_dirs(["var/run", "missing"].into_iter());
    assert!(!dirs.contains_key("missing"));
    dirs["var/run"]
        .write_file("x", Content::Read(&mut &b"y"[..], 1), None, 0o600, 0, &[])
        .unwrap();
    assert!(s.root.join("run/x").is_file());
}

#[test]
fn symlink_loops_fail_instead_of_escaping_or_hanging() {
    let s = scratch();
    symlink("/b", s.root.join("a")).unwrap();
    symlink("/a", s.root.join("b")).unwrap();
    let r = RootDir::open(&s.root).unwrap();
    let err = r.read("a", 100).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
    assert!(r.mkdir_all("a/x", 0o755).is_err());
    assert!(r.write_atomic("b/x", b"", 0o644).is_err());
    // The loop itself is an entry like any other.
    assert!(r.exists("a").unwrap());
    r.remove("a").unwrap();
    assert!(!r.exists("a").unwrap());
}

#[test]
fn last_component_is_never_followed() {
    let s = scratch();
    let secret = s.outside.join("secret");
    symlink(&secret, s.root.join("f")).unwrap();
    let r = RootDir::open(&s.root).unwrap();
    let st = r.lstat("f").unwrap().unwrap();
    assert_eq!(FileType::from_raw_mode(st.st_mode), FileType::Symlink);
    r.set_owner_mode("f", None, 0o600).unwrap();
    assert_eq!(mode(&secret), 0o640);
    r.mkdir("f", None, 0o700).unwrap();
    r.touch("f", 0o600).unwrap_err();
    r.write_new("f", b"new", 0o644).unwrap();
    assert_eq!(fs::read(&secret).unwrap(), b"host\n");
    let top = r.dir("").unwrap();
    top.write_file(
        "f",
        Content::Read(&mut &b"file"[..], 4),
        None,
        0o644,
        0,
        &[],
    )
    .unwrap();
    assert_eq!(fs::read(&secret).unwrap(), b"host\n");
    assert_eq!(fs::read(s.root.join("f")).unwrap(), b"file");
    symlink(&secret, s.root.join("g")).unwrap();
    r.write_atomic("g", b"replaced", 0o644).unwrap();
    assert_eq!(fs::read(&secret).unwrap(), b"host\n");
    assert!(!s.root.join("g").is_symlink());
}

#[test]
fn names_that_are_not_one_component_are_refused() {
    let s = scratch();
    let r = RootDir::open(&s.root).unwrap();
    for bad in ["", "/", ".", "a/..", "a/."] {
        let err = r.mkdir(bad, None, 0o755).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
    }
    let top = r.dir("/").unwrap();
    for bad in ["..", "a/b", ""] {
        let err = top.symlink(bad, "/x", None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        assert!(err.to_string().contains('`'), "{err}");
    }
    assert_eq!(fs::read_dir(&s.root).unwrap().count(), 0);
}

#[test]
fn reads_are_bounded_and_absence_is_none() {
    let s = scratch();
    fs::write(s.root.join("big"), vec![b'x'; 100]).unwrap();
    let r = RootDir::open(&s.root).unwrap();
    assert_eq!(r.read("big", 100).unwrap().unwrap().len(), 100);
    let err = r.read("big", 99).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("`big`"), "{err}");
    assert_eq!(r.read_head("big", 10).unwrap().unwrap().len(), 10);
    assert_eq!(r.read("missing", 10).unwrap(), None);
    assert_eq!(r.read_head("no/such/dir", 10).unwrap(), None);
    assert!(r.lstat("big/below").unwrap().is_none());
}

#[test]
fn a_planted_fifo_is_refused_instead_of_blocking_the_reader() {
    let s = scratch();
    fs::create_dir(s.root.join("etc")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        s.root.join("etc/passwd"),
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let r = RootDir::open(&s.root).unwrap();
    let err = r.read("etc/passwd", 4096).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn created_entries_get_exactly_their_mode() {
    let s = scratch();
    let r = RootDir::open(&s.root).unwrap();
    // Modes the usual umask (022) would cut.
    r.mkdir("tmp", None, 0o1777).unwrap();
    r.mkdir_all("var/cache/apk", 0o777).unwrap();
    r.touch("lock", 0o666).unwrap();
    r.write_atomic("etc-file", b"x", 0o666).unwrap();
    r.mknod_char("null", 0o666, 1, 3).ok();
    assert_eq!(mode(&s.root.join("tmp")), 0o1777);
    assert_eq!(mode(&s.root.join("var/cache")), 0o777);
    assert_eq!(mode(&s.root.join("var/cache/apk")), 0o777);
    assert_eq!(mode(&s.root.join("lock")), 0o666);
    assert_eq!(mode(&s.root.join("etc-file")), 0o666);
    if s.root.join("null").exists() {
        assert_eq!(mode(&s.root.join("null")), 0o666);
    }
    // Existing directories are kept as they are.
    r.mkdir("tmp", None, 0o700).unwrap();
    assert_eq!(mode(&s.root.join("tmp")), 0o1777);
    assert!(!r.write_new("etc-file", b"y", 0o600).unwrap());
    assert!(r.write_new("other", b"y", 0o600).unwrap());
    assert_eq!(fs::read(s.root.join("etc-file")).unwrap(), b"x");
}

#[test]
fn new_directories_get_their_mode_and_owner_under_a_setgid_parent_too() {
    let s = scratch();
    let r = RootDir::open(&s.root).unwrap();
    // Plain bits, the caller's owner: made at once.
    r.mkdir("plain", None, 0o750).unwrap();
    let ids = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    r.mkdir("mine", Some(ids), 0o755).unwrap();
    assert_eq!(mode(&s.root.join("plain")), 0o750);
    assert_eq!(mode(&s.root.join("mine")), 0o755);
    // A setgid parent passes its setgid bit (and group) on: not what was asked.
    r.mkdir("sgid", None, 0o2775).unwrap();
    assert_eq!(mode(&s.root.join("sgid")), 0o2775);
    r.mkdir("sgid/child", None, 0o755).unwrap();
    r.mkdir("sgid/owned", Some(ids), 0o750).unwrap();
    assert_eq!(mode(&s.root.join("sgid/child")), 0o755);
    assert_eq!(mode(&s.root.join("sgid/owned")), 0o750);
    let meta = fs::metadata(s.root.join("sgid/owned")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), ids);
}

#[test]
fn install_writes_replace_stale_entries_and_keep_header_data() {
    let s = scratch();
    let r = RootDir::open(&s.root).unwrap();
    fs::write(s.root.join("stale"), "old").unwrap();
    let top = r.dir("").unwrap();
    top.write_file(
        "stale",
        Content::Read(&mut &b"data"[..], 4),
        None,
        0o4755,
        1_000_000,
        &[],
    )
    .unwrap();
    let meta = fs::metadata(s.root.join("stale")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o4755);
    assert_eq!(meta.mtime(), 1_000_000);
    top.hardlink("link", &top, "stale", None, 0o755, 2_000_000)
        .unwrap();
    assert_eq!(fs::metadata(s.root.join("link")).unwrap().ino(), meta.ino());
    top.symlink("sym", "/stale", None).unwrap();
    top.rename("sym", "moved").unwrap();
    assert_eq!(
        fs::read_link(s.root.join("moved")).unwrap(),
        Path::new("/stale")
    );
    use sha1::{Digest, Sha1};
    let sum: [u8; 20] = Sha1::digest(b"data").into();
    assert_eq!(top.sha1("link").unwrap(), Some(Some(sum)));
    let sum: [u8; 20] = Sha1::digest(b"/stale").into();
    assert_eq!(top.sha1("moved").unwrap(), Some(Some(sum)));
    r.mkdir("d", None, 0o755).unwrap();
    assert_eq!(top.sha1("d").unwrap(), Some(None));
    assert_eq!(top.sha1("nothing").unwrap(), None);
    top.remove("moved").unwrap();
    top.remove("moved").unwrap();
    r.remove_dir("d").unwrap();
    assert!(!s.root.join("d").exists());
}

#[test]
fn owners_are_set_when_asked() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: changing owners needs root");
        return;
    }
    let s = scratch();
    let r = RootDir::open(&s.root).unwrap();
    r.mkdir("home", Some((1000, 1001)), 0o2750).unwrap();
    let meta = fs::metadata(s.root.join("home")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1000, 1001, 0o2750)
    );
    r.set_owner_mode("home", Some((7, 8)), 0o700).unwrap();
    let meta = fs::metadata(s.root.join("home")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (7, 8, 0o700)
    );
    let top = r.dir("").unwrap();
    top.write_file(
        "suid",
        Content::Read(&mut &b""[..], 0),
        Some((5, 6)),
        0o4711,
        0,
        &[],
    )
    .unwrap();
    let meta = fs::metadata(s.root.join("suid")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (5, 6, 0o4711)
    );
}

#[test]
fn fifos_and_symlinks_are_refused_regular_files_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/real"), "data").unwrap();
    nix::unistd::mkfifo(&dir.path().join("etc/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("etc/link")).unwrap();
    let root = RootDir::open(dir.path()).unwrap();
    assert_eq!(
        root.read_regular("etc/real", 2, false).unwrap(),
        Some(b"da".to_vec())
    );
    assert!(root.read_regular("etc/fifo", 10, false).is_err());
    assert!(root.read_regular("etc/link", 10, false).is_err());
    assert_eq!(
        root.read_regular("etc/link", 10, true).unwrap(),
        Some(b"data".to_vec())
    );
    assert_eq!(root.read_regular("etc/none", 10, false).unwrap(), None);
}

#[test]
fn an_adopted_file_takes_its_owner_then_setuid_bits_and_file_capabilities() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: changing owners and file capabilities needs root");
        return;
    }
    let s = scratch();
    let r = RootDir::open(&s.root).unwrap();
    r.mkdir("ahead", None, 0o700).unwrap();
    r.mkdir("bin", None, 0o755).unwrap();
    let ahead = r.dir("ahead").unwrap();
    let bin = r.dir("bin").unwrap();
    ahead
        .write_file(
            "0",
            Content::Read(&mut &b"elf"[..], 3),
            None,
            0o4755,
            1_000_000,
            &[],
        )
        .unwrap();
    // `security.capability`, version 2: cap_net_raw (13) permitted and effective.
    let mut caps = vec![0u8; 20];
    caps[0..4].copy_from_slice(&(0x0200_0001u32).to_le_bytes());
    caps[4..8].copy_from_slice(&(1u32 << 13).to_le_bytes());
    let xattrs = vec![("security.capability".to_owned(), caps.clone())];
    bin.adopt("ping", &ahead, "0", Some((5, 6)), 0o4755, &xattrs)
        .unwrap();
    assert!(!s.root.join("ahead/0").exists(), "the file was copied");
    let meta = fs::metadata(s.root.join("bin/ping")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777, meta.mtime()),
        (5, 6, 0o4755, 1_000_000),
        "chown cleared the setuid bit or the move lost the mtime"
    );
    let path = std::ffi::CString::new(
        s.root
            .join("bin/ping")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let mut value = [0u8; 64];
    let len = rustix::fs::getxattr(path.as_c_str(), "security.capability", &mut value[..])
        .expect("chown dropped the file capabilities set before it");
    assert_eq!(&value[..len], &caps[..]);
}
