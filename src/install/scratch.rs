//! Where package files are written as soon as their package is verified.
//!
//! A package's place in the tree (owners, conflicts, overwrites) can only be decided in
//! plan order, after the scripts of the packages before it ran; its file contents do not
//! depend on any of that. So the background threads that verify packages also inflate
//! each data tar straight into files here (a small one whole, into a buffer each thread
//! keeps; a large one a fixed buffer at a time), and planning later moves each file into
//! place with one rename. No large inflated package is ever held in memory, and the
//! contents are written while earlier packages' scripts run.
//!
//! The folder is a fresh, private (0700) directory at the top of the root, on the same
//! filesystem as every target (renames cannot cross filesystems). Its name starts with a
//! dot, which no package can claim: apk ignores top-level dot entries of data tars.
//! [`Scratch::remove`] deletes it with whatever was not moved out.

use std::io;
use std::os::fd::AsFd as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::rootfs::{Content, Dir, RootDir};

/// The start of the folder's name in the root.
pub(crate) const PREFIX: &str = ".sysroot-mk-extract-";

/// A private folder in the root holding package files until they are moved into place.
#[derive(Debug)]
pub(crate) struct Scratch {
    /// Its name in the root's top directory.
    name: String,
    dir: Dir,
    /// The owner new files get in it (its group passes on when it is setgid).
    given: (u32, u32),
    next: AtomicU64,
}

impl Scratch {
    /// Creates the folder in `root` under a name nothing else uses.
    pub(crate) fn create(root: &RootDir) -> io::Result<Scratch> {
        let top = root.dir("")?;
        let pid = std::process::id();
        let mut attempt = 0u32;
        let name = loop {
            let name = format!("{PREFIX}{pid}-{attempt}");
            match top.create_dir(&name, 0o700) {
                Ok(()) => break name,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        let dir = root.dir(&name)?;
        let st = rustix::fs::fstat(dir.as_fd())?;
        let uid = rustix::process::geteuid().as_raw();
        Ok(Scratch {
            name,
            dir,
            given: (uid, st.st_gid),
            next: AtomicU64::new(0),
        })
    }

    /// Writes `content` as a new file with `mode` and `mtime`; returns its id for
    /// [`Scratch::file_name`].
    pub(crate) fn write(&self, content: Content<'_>, mode: u32, mtime: u64) -> io::Result<u64> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir
            .write_file(Self::file_name(id), content, None, mode, mtime, &[])?;
        Ok(id)
    }

    /// The name of file `id` in [`Scratch::dir`].
    pub(crate) fn file_name(id: u64) -> String {
        id.to_string()
    }

    /// The folder, to move files out of.
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The owner its files have until moved and given their own.
    pub(crate) fn given(&self) -> (u32, u32) {
        self.given
    }

    /// Deletes the folder and the files never moved out of it (those of entries a later
    /// package replaced, or of a run that stopped early).
    pub(crate) fn remove(&self, root: &RootDir) -> io::Result<()> {
        for name in self.dir.names()? {
            self.dir.remove(&name)?;
        }
        root.dir("")?.remove_dir(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_keep_their_bytes_mode_and_mtime_and_the_folder_goes_whole() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = RootDir::open(tmp.path()).expect("root");
        let scratch = Scratch::create(&root).expect("scratch");
        let second = Scratch::create(&root).expect("a second one beside it");
        let id = scratch
            .write(
                Content::Read(&mut &b"hello world"[..], 5),
                0o4755,
                1_000_000,
            )
            .expect("write");
        let path = tmp.path().join(&scratch.name).join(Scratch::file_name(id));
        let meta = std::fs::metadata(&path).expect("written");
        assert_eq!(std::fs::read(&path).expect("read"), b"hello");
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(meta.mode() & 0o7777, 0o4755);
        assert_eq!(meta.mtime(), 1_000_000);
        assert!(
            scratch
                .write(Content::Read(&mut &b"ab"[..], 3), 0o644, 0)
                .is_err(),
            "short content accepted"
        );
        scratch
            .write(Content::Bytes(b"left"), 0o644, 0)
            .expect("write");
        scratch.remove(&root).expect("remove");
        second.remove(&root).expect("remove");
        assert_eq!(
            std::fs::read_dir(tmp.path()).expect("list").count(),
            0,
            "scratch folders left behind"
        );
    }
}
