//! Entries as the kernel shows them, and registrations as it takes them.

use super::{BinfmtError, Flags};
use crate::arch::Arch;
use std::path::{Path, PathBuf};

/// How an entry recognises its binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Bytes at an offset, compared under a mask (all ones when absent).
    Magic {
        /// Offset of the magic in the file.
        offset: usize,
        /// The bytes.
        magic: Vec<u8>,
        /// The mask, same length as `magic`.
        mask: Option<Vec<u8>>,
    },
    /// A file name extension (`E` entries).
    Extension(String),
}

/// One registered handler, as its entry file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's file name.
    pub name: String,
    /// Whether the entry is enabled.
    pub enabled: bool,
    /// The interpreter's path (as registered).
    pub interpreter: PathBuf,
    /// Its flags.
    pub flags: Flags,
    /// What it matches.
    pub matcher: Matcher,
}

impl Entry {
    /// Parses the text of an entry file.
    pub fn parse(name: &str, text: &str) -> Result<Entry, BinfmtError> {
        let malformed = |reason: String| BinfmtError::Malformed {
            name: name.to_string(),
            reason,
        };
        let mut enabled = None;
        let (mut interpreter, mut flags, mut offset) = (None, Flags::default(), 0usize);
        let (mut magic, mut mask, mut extension) = (None, None, None);
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "enabled" => enabled = Some(true),
                "disabled" => enabled = Some(false),
                "interpreter" => interpreter = Some(PathBuf::from(value)),
                "flags:" => flags = Flags::parse(value.trim())?,
                "offset" => {
                    offset = value
                        .parse()
                        .map_err(|_| malformed(format!("offset `{value}` is not a number")))?
                }
                "magic" => {
                    magic =
                        Some(hex::decode(value).map_err(|_| {
                            malformed(format!("magic `{value}` is not hexadecimal"))
                        })?)
                }
                "mask" => {
                    mask = Some(
                        hex::decode(value)
                            .map_err(|_| malformed(format!("mask `{value}` is not hexadecimal")))?,
                    )
                }
                "extension" => extension = Some(value.to_string()),
                _ => {}
            }
        }
        let enabled = enabled.ok_or_else(|| malformed("no `enabled`/`disabled` line".into()))?;
        let interpreter = interpreter.ok_or_else(|| malformed("no `interpreter` line".into()))?;
        let matcher = match (magic, extension) {
            (Some(magic), _) => {
                if mask.as_ref().is_some_and(|m| m.len() != magic.len()) {
                    return Err(malformed("mask and magic differ in length".into()));
                }
                Matcher::Magic {
                    offset,
                    magic,
                    mask,
                }
            }
            (None, Some(ext)) => Matcher::Extension(ext),
            (None, None) => return Err(malformed("neither `magic` nor `extension`".into())),
        };
        Ok(Entry {
            name: name.to_string(),
            enabled,
            interpreter,
            flags,
            matcher,
        })
    }

    /// Whether this entry catches the binaries of `arch` (tested on the arch's
    /// canonical ELF header, the table's magic).
    pub fn matches_arch(&self, arch: Arch) -> bool {
        let Matcher::Magic {
            offset,
            magic,
            mask,
        } = &self.matcher
        else {
            return false;
        };
        let Ok(header) = hex::decode(arch.info().magic) else {
            return false;
        };
        if offset + magic.len() > header.len() {
            return false;
        }
        magic.iter().enumerate().all(|(i, m)| {
            let k = mask.as_ref().map_or(0xff, |mask| mask[i]);
            (header[offset + i] ^ m) & k == 0
        })
    }

    /// Whether a setuid binary run through this entry gets its credentials.
    pub fn setuid_works(&self) -> bool {
        self.enabled && self.flags.credentials
    }
}

/// A handler to register: the kernel's `:name:M:offset:magic:mask:interpreter:flags` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Entry name.
    pub name: String,
    /// Offset of the magic.
    pub offset: usize,
    /// Magic bytes.
    pub magic: Vec<u8>,
    /// Mask bytes, same length.
    pub mask: Vec<u8>,
    /// The interpreter (opened by the kernel now when `F` is set).
    pub interpreter: PathBuf,
    /// Flags.
    pub flags: Flags,
}

impl Registration {
    /// The qemu handler for `arch`, named like Debian's (`qemu-aarch64`), so that a later
    /// registration of the same arch replaces it instead of piling up.
    pub fn for_arch(arch: Arch, interpreter: &Path, flags: Flags) -> Registration {
        let info = arch.info();
        Registration {
            name: format!("qemu-{}", info.qemu),
            offset: 0,
            // The table's strings are checked hex by arch.rs's own tests.
            magic: hex::decode(info.magic).unwrap_or_default(),
            mask: hex::decode(info.mask).unwrap_or_default(),
            interpreter: interpreter.to_path_buf(),
            flags,
        }
    }

    /// The line to write to `register`, checked for what the kernel would refuse.
    pub fn line(&self) -> Result<Vec<u8>, BinfmtError> {
        let invalid = |reason: &str| BinfmtError::Invalid {
            name: self.name.clone(),
            reason: reason.to_string(),
        };
        if self.name.is_empty()
            || self.name.contains([':', '/'])
            || matches!(self.name.as_str(), "." | ".." | "register" | "status")
        {
            return Err(invalid("the name must be non-empty, without `:` or `/`"));
        }
        let interp = self
            .interpreter
            .to_str()
            .ok_or_else(|| invalid("the interpreter path is not UTF-8"))?;
        if interp.is_empty() || interp.contains(':') || !interp.starts_with('/') {
            return Err(invalid(
                "the interpreter must be an absolute path without `:`",
            ));
        }
        if self.magic.is_empty() || self.magic.len() != self.mask.len() {
            return Err(invalid(
                "magic and mask must be non-empty and the same length",
            ));
        }
        let esc = |bytes: &[u8]| {
            bytes
                .iter()
                .map(|b| format!("\\x{b:02x}"))
                .collect::<String>()
        };
        let line = format!(
            ":{}:M:{}:{}:{}:{}:{}",
            self.name,
            self.offset,
            esc(&self.magic),
            esc(&self.mask),
            interp,
            self.flags
        );
        Ok(line.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn arch(name: &str) -> Arch {
        Arch::from_name(name).unwrap()
    }

    #[test]
    fn debian_entry_parses_and_lacks_credentials() {
        let e = Entry::parse("qemu-aarch64", DEBIAN_AARCH64).unwrap();
        assert!(e.enabled);
        assert_eq!(e.flags.to_string(), "POF");
        assert!(!e.setuid_works());
        assert!(e.matches_arch(arch("aarch64")));
        assert!(!e.matches_arch(arch("x86_64")));
        assert!(!e.matches_arch(arch("riscv64")));
    }

    #[test]
    fn extension_entries_parse_and_match_no_arch() {
        let e = Entry::parse(
            "jar",
            "disabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n",
        )
        .unwrap();
        assert!(!e.enabled);
        assert_eq!(e.matcher, Matcher::Extension(".jar".into()));
        assert!(!e.matches_arch(arch("aarch64")));
    }

    #[test]
    fn garbage_entry_is_an_error_naming_it() {
        let err = Entry::parse("x", "enabled\ninterpreter /a\nmagic zz\n").unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
        assert!(Entry::parse("y", "").is_err());
    }

    #[test]
    fn every_arch_registration_matches_its_own_arch_only() {
        for a in Arch::all() {
            let reg =
                Registration::for_arch(a, Path::new("/usr/bin/qemu"), Flags::parse("OCF").unwrap());
            let entry = Entry {
                name: reg.name.clone(),
                enabled: true,
                interpreter: reg.interpreter.clone(),
                flags: reg.flags,
                matcher: Matcher::Magic {
                    offset: 0,
                    magic: reg.magic.clone(),
                    mask: Some(reg.mask.clone()),
                },
            };
            for b in Arch::all() {
                let same = a.info().qemu == b.info().qemu;
                assert_eq!(entry.matches_arch(b), same, "{} vs {}", a, b);
            }
        }
    }

    #[test]
    fn registration_line_has_escaped_magic() {
        let reg = Registration::for_arch(
            arch("aarch64"),
            Path::new("/usr/bin/qemu-aarch64-static"),
            Flags::parse("OCF").unwrap(),
        );
        let line = String::from_utf8(reg.line().unwrap()).unwrap();
        assert!(
            line.starts_with(":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46\\x02"),
            "{line}"
        );
        assert!(
            line.ends_with(":/usr/bin/qemu-aarch64-static:OCF"),
            "{line}"
        );
    }

    #[test]
    fn registrations_the_kernel_would_misparse_are_refused() {
        let mut reg = Registration::for_arch(arch("s390x"), Path::new("/q:x"), Flags::default());
        assert!(reg.line().is_err());
        reg.interpreter = PathBuf::from("/q");
        reg.name = "a/b".into();
        assert!(reg.line().is_err());
    }
}
