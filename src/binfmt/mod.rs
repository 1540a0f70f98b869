//! binfmt_misc: parse, register and remove handlers in the host's or a private instance.
//!
//! A [`Table`] is one mounted binfmt_misc instance (a directory holding `register`,
//! `status` and one file per entry). The host's instance belongs to the initial user
//! namespace; since Linux 6.7 every user namespace may mount its own, which is what
//! `enter` uses by default.
//!
//! Entries of an instance live only as long as some mount of it exists: unmounting the
//! last one drops them. That is why [`with_host_table`] may read the host's table
//! through a short-lived private mount, while persistent registration needs the
//! host-visible mount that [`mount_host_table`] makes.
//!
//! `enter` registers a [`Handler`]: qemu behind the guard of [`guard`](Guard), which keeps
//! the caller's `QEMU_*` variables from qemu when a setuid program starts.

mod entry;
mod guard;
mod qemu;
mod table;

pub use entry::{Entry, Matcher, Registration};
pub use guard::{guard_available, qemu_inside, Guard, Handler, QEMU_DIR};
pub use qemu::{find_qemu, is_static_elf, qemu_preserves_argv0};
pub use table::{
    mount_host_table, mount_instance, private_instances_supported, with_host_table, Table,
};

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the host's binfmt_misc instance is conventionally mounted.
pub const HOST_MOUNT: &str = "/proc/sys/fs/binfmt_misc";

impl crate::report::Hinted for BinfmtError {
    fn hint(&self) -> Option<crate::report::Hint> {
        use crate::report::Hint;
        match self {
            BinfmtError::HostNotMounted => Some(Hint::fix(format!(
                "run `mount -t binfmt_misc binfmt_misc {HOST_MOUNT}` as root"
            ))),
            BinfmtError::NeedsRoot(_) => Some(Hint::fix("run it as root (e.g. with sudo)")),
            BinfmtError::QemuMissing { .. } => Some(Hint::fix(
                "install Debian's `qemu-user-static` package (`apt-get install \
                 qemu-user-static`), or pass `--qemu PATH`",
            )),
            _ => None,
        }
    }
}

/// What can go wrong reading or changing a binfmt_misc table.
#[derive(Debug, thiserror::Error)]
pub enum BinfmtError {
    /// A flag letter outside `POCF`.
    #[error("unknown binfmt_misc flag `{0}` in `{1}`; expected letters from `POCF`")]
    UnknownFlag(char, String),
    /// An entry file did not have the shape the kernel writes.
    #[error("binfmt_misc entry `{name}` is not understood: {reason}")]
    Malformed {
        /// Entry name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// A registration that the kernel would refuse or misparse.
    #[error("cannot register binfmt_misc entry `{name}`: {reason}")]
    Invalid {
        /// Entry name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// Reading or writing a file of the table failed.
    #[error("cannot {action} `{path}`")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The host's table is not mounted and this process may not mount it.
    #[error("the host's binfmt_misc is not mounted at `{HOST_MOUNT}` and mounting it needs root")]
    HostNotMounted,
    /// Changing the host's table takes root.
    #[error("`sysroot-mk binfmt {0}` changes the host's binfmt_misc table and needs root")]
    NeedsRoot(&'static str),
    /// Mounting an instance failed.
    #[error("cannot mount binfmt_misc at `{path}`")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// No qemu for the arch was found.
    #[error("no qemu for `{arch}`: neither `qemu-{qemu}-static` nor `qemu-{qemu}` is on PATH")]
    QemuMissing {
        /// Alpine arch name.
        arch: &'static str,
        /// qemu's name for it.
        qemu: &'static str,
    },
    /// The qemu guard could not be prepared.
    #[error("cannot prepare sysroot-mk's qemu guard: {0}")]
    Guard(String),
    /// `--qemu` names something that is not an executable file.
    #[error("`{0}` (given with --qemu) is not an executable file")]
    QemuNotExecutable(PathBuf),
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BinfmtError + 'a {
    move |source| BinfmtError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The flags of an entry (`P`, `O`, `C`, `F`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `P`: the interpreter gets the original `argv[0]`.
    pub preserve_argv0: bool,
    /// `O`: the interpreter gets an open file descriptor of the binary.
    pub open_binary: bool,
    /// `C`: credentials come from the binary, so setuid works under emulation (implies `O`).
    pub credentials: bool,
    /// `F`: the interpreter is opened at registration, so it need not exist inside a chroot.
    pub fix_binary: bool,
}

impl Flags {
    /// Parses letters from `POCF` in any order (the kernel's status line uses that order).
    pub fn parse(text: &str) -> Result<Flags, BinfmtError> {
        let mut flags = Flags::default();
        for c in text.chars() {
            match c {
                'P' => flags.preserve_argv0 = true,
                'O' => flags.open_binary = true,
                'C' => flags.credentials = true,
                'F' => flags.fix_binary = true,
                _ => return Err(BinfmtError::UnknownFlag(c, text.to_string())),
            }
        }
        if flags.credentials {
            flags.open_binary = true;
        }
        Ok(flags)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [
            (self.preserve_argv0, "P"),
            (self.open_binary, "O"),
            (self.credentials, "C"),
            (self.fix_binary, "F"),
        ] {
            if on {
                f.write_str(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_imply_open_binary() {
        assert_eq!(Flags::parse("CF").unwrap().to_string(), "OCF");
        assert!(Flags::parse("X").is_err());
    }
}
