//! The architectures sysroot-mk knows: Alpine's names, qemu's, the ELF identity of
//! their binaries and the binfmt_misc magic/mask that recognises them.
//!
//! One table serves the index reader (which arch a repository path uses), `enter`
//! (which qemu to register and whether the host runs the binaries natively) and
//! `binfmt` (what to write to the kernel). The magic and mask strings are QEMU's
//! `qemu-binfmt-conf.sh` values.

use std::fmt;
use std::str::FromStr;

/// ELF byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// `EI_DATA` = 1.
    Little,
    /// `EI_DATA` = 2.
    Big,
}

/// One architecture: every name and number the tool needs about it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArchInfo {
    /// Alpine's name (`etc/apk/arch`, repository sub-directory).
    pub name: &'static str,
    /// qemu's name: the interpreter is `qemu-<qemu>-static` or `qemu-<qemu>`.
    pub qemu: &'static str,
    /// What `uname -m` prints inside a sysroot of this arch.
    pub uname: &'static str,
    /// ELF class: 32 or 64 bits.
    pub bits: u8,
    /// ELF byte order.
    pub endian: Endian,
    /// ELF `e_machine`.
    pub machine: u16,
    /// binfmt_misc magic, hex, at offset 0.
    pub magic: &'static str,
    /// binfmt_misc mask, hex, same length as `magic`.
    pub mask: &'static str,
    /// Whether Alpine itself publishes this arch (others come from private repositories).
    pub alpine: bool,
}

/// A known architecture. Cheap to copy; look the details up with [`Arch::info`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch(&'static ArchInfo);

const ELF_MASK_LE: &str = "fffffffffffefe00fffffffffffffffffeffffff";

/// Every architecture, in Alpine's usual listing order.
#[rustfmt::skip]
pub static ARCHES: &[ArchInfo] = &[
    ArchInfo { name: "x86_64", qemu: "x86_64", uname: "x86_64", bits: 64, endian: Endian::Little, machine: 62, magic: "7f454c4602010100000000000000000002003e00", mask: ELF_MASK_LE, alpine: true },
    ArchInfo { name: "x86", qemu: "i386", uname: "i686", bits: 32, endian: Endian::Little, machine: 3, magic: "7f454c4601010100000000000000000002000300", mask: ELF_MASK_LE, alpine: true },
    ArchInfo { name: "aarch64", qemu: "aarch64", uname: "aarch64", bits: 64, endian: Endian::Little, machine: 183, magic: "7f454c460201010000000000000000000200b700", mask: "ffffffffffffff00fffffffffffffffffeffffff", alpine: true },
    ArchInfo { name: "armhf", qemu: "arm", uname: "armv6l", bits: 32, endian: Endian::Little, machine: 40, magic: "7f454c4601010100000000000000000002002800", mask: "ffffffffffffff00fffffffffffffffffeffffff", alpine: true },
    ArchInfo { name: "armv7", qemu: "arm", uname: "armv7l", bits: 32, endian: Endian::Little, machine: 40, magic: "7f454c4601010100000000000000000002002800", mask: "ffffffffffffff00fffffffffffffffffeffffff", alpine: true },
    ArchInfo { name: "ppc64le", qemu: "ppc64le", uname: "ppc64le", bits: 64, endian: Endian::Little, machine: 21, magic: "7f454c4602010100000000000000000002001500", mask: "ffffffffffffff00fffffffffffffffffeffff00", alpine: true },
    ArchInfo { name: "s390x", qemu: "s390x", uname: "s390x", bits: 64, endian: Endian::Big, machine: 22, magic: "7f454c4602020100000000000000000000020016", mask: "ffffffffffffff00fffffffffffffffffffeffff", alpine: true },
    ArchInfo { name: "riscv64", qemu: "riscv64", uname: "riscv64", bits: 64, endian: Endian::Little, machine: 243, magic: "7f454c460201010000000000000000000200f300", mask: "ffffffffffffff00fffffffffffffffffeffffff", alpine: true },
    ArchInfo { name: "loongarch64", qemu: "loongarch64", uname: "loongarch64", bits: 64, endian: Endian::Little, machine: 258, magic: "7f454c4602010100000000000000000002000201", mask: "fffffffffffffffc00fffffffffffffffeffffff", alpine: true },
    ArchInfo { name: "ppc64", qemu: "ppc64", uname: "ppc64", bits: 64, endian: Endian::Big, machine: 21, magic: "7f454c4602020100000000000000000000020015", mask: "ffffffffffffff00fffffffffffffffffffeffff", alpine: false },
    ArchInfo { name: "ppc", qemu: "ppc", uname: "ppc", bits: 32, endian: Endian::Big, machine: 20, magic: "7f454c4601020100000000000000000000020014", mask: "ffffffffffffff00fffffffffffffffffffeffff", alpine: false },
    ArchInfo { name: "mips64", qemu: "mips64", uname: "mips64", bits: 64, endian: Endian::Big, machine: 8, magic: "7f454c4602020100000000000000000000020008", mask: "ffffffffffffff0000fffffffffffffffffeffff", alpine: false },
    ArchInfo { name: "mips64el", qemu: "mips64el", uname: "mips64", bits: 64, endian: Endian::Little, machine: 8, magic: "7f454c4602010100000000000000000002000800", mask: "ffffffffffffff0000fffffffffffffffeffffff", alpine: false },
];

/// The name given is not an architecture this tool knows.
#[derive(Debug, thiserror::Error)]
#[error("unknown architecture `{0}`{hint}; known: {known}", hint = did_you_mean(.0), known = Arch::names().collect::<Vec<_>>().join(", "))]
pub struct UnknownArch(pub String);

/// Names other tools use for Alpine's arches (Debian, Docker, GNU), with the Alpine name.
const ALIASES: [(&str, &str); 9] = [
    ("amd64", "x86_64"),
    ("arm64", "aarch64"),
    ("i386", "x86"),
    ("i686", "x86"),
    ("armv6", "armhf"),
    ("armel", "armhf"),
    ("armv7l", "armv7"),
    ("ppc64el", "ppc64le"),
    ("riscv", "riscv64"),
];

/// ` (did you mean `x`?)` for a name close to a known one (or to an alias), else nothing.
fn did_you_mean(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let candidates = Arch::names().map(|n| (n, n)).chain(ALIASES);
    let best = candidates
        .map(|(spelled, arch)| (edit_distance(&lower, spelled), arch))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, arch)) if d <= 2 || lower.contains(arch) => format!(" (did you mean `{arch}`?)"),
        _ => String::new(),
    }
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

impl Arch {
    /// Looks an Alpine arch name up (`x86_64`, `aarch64`, ...).
    pub fn from_name(name: &str) -> Option<Arch> {
        ARCHES.iter().find(|a| a.name == name).map(Arch)
    }

    /// Looks an arch up by its Alpine name or by a name other tools use for it (`amd64`,
    /// `arm64`, `i686`, `ppc64el`...); an alias also returns the note to show.
    pub fn resolve(name: &str) -> Result<(Arch, Option<String>), UnknownArch> {
        if let Some(arch) = Arch::from_name(name) {
            return Ok((arch, None));
        }
        let lower = name.to_ascii_lowercase();
        ALIASES
            .iter()
            .find(|(alias, _)| *alias == lower)
            .and_then(|(alias, alpine)| {
                let arch = Arch::from_name(alpine)?;
                let note = format!("`{alias}` is called `{alpine}` in Alpine; using `{alpine}`");
                Some((arch, Some(note)))
            })
            .ok_or_else(|| UnknownArch(name.to_string()))
    }

    /// All Alpine arch names, in table order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        ARCHES.iter().map(|a| a.name)
    }

    /// Every known arch.
    pub fn all() -> impl Iterator<Item = Arch> {
        ARCHES.iter().map(Arch)
    }

    /// The table row.
    pub fn info(self) -> &'static ArchInfo {
        self.0
    }

    /// Alpine's name.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The arch whose binaries this host's kernel runs natively, if it is in the table.
    pub fn host() -> Option<Arch> {
        let name = match std::env::consts::ARCH {
            "x86_64" => "x86_64",
            "x86" => "x86",
            "aarch64" => "aarch64",
            "arm" => "armv7",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "powerpc" => "ppc",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "loongarch64" => "loongarch64",
            "mips64" if cfg!(target_endian = "little") => "mips64el",
            "mips64" => "mips64",
            _ => return None,
        };
        Arch::from_name(name)
    }

    /// Whether this host runs the arch's binaries without emulation
    /// (x86 on x86_64 and 32-bit arm on aarch64 too, through the 32-bit personality).
    pub fn runs_natively_on(self, host: Arch) -> bool {
        self == host
            || (host.name() == "x86_64" && self.name() == "x86")
            || (host.name() == "aarch64" && matches!(self.name(), "armhf" | "armv7"))
    }

    /// Finds the arch of an ELF header (at least 20 bytes), or None when it is not ELF
    /// or not an arch in the table. armhf and armv7 share a header; armv7 is returned.
    pub fn from_elf_header(header: &[u8]) -> Option<Arch> {
        if header.len() < 20 || &header[..4] != b"\x7fELF" {
            return None;
        }
        let bits = match header[4] {
            1 => 32,
            2 => 64,
            _ => return None,
        };
        let endian = match header[5] {
            1 => Endian::Little,
            2 => Endian::Big,
            _ => return None,
        };
        let machine = match endian {
            Endian::Little => u16::from_le_bytes([header[18], header[19]]),
            Endian::Big => u16::from_be_bytes([header[18], header[19]]),
        };
        ARCHES
            .iter()
            .filter(|a| a.name != "armhf")
            .find(|a| a.bits == bits && a.endian == endian && a.machine == machine)
            .map(Arch)
    }
}

impl FromStr for Arch {
    type Err = UnknownArch;
    /// Alpine names and the aliases of [`Arch::resolve`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::resolve(s).map(|(arch, _)| arch)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_with_a_note_and_typos_get_a_suggestion() {
        let (arch, note) = Arch::resolve("arm64").unwrap();
        assert_eq!(arch.name(), "aarch64");
        assert!(note.unwrap().contains("`arm64` is called `aarch64`"));
        assert_eq!(Arch::resolve("AMD64").unwrap().0.name(), "x86_64");
        assert_eq!(Arch::resolve("x86_64").unwrap().1, None);
        let err = Arch::resolve("aarch46").unwrap_err().to_string();
        assert!(err.contains("did you mean `aarch64`?"), "{err}");
        let err = Arch::resolve("ppc64l").unwrap_err().to_string();
        assert!(err.contains("did you mean `ppc64le`?"), "{err}");
        let err = Arch::resolve("sparc").unwrap_err().to_string();
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn magic_and_mask_have_the_same_length_and_are_hex() {
        for a in ARCHES {
            assert_eq!(a.magic.len(), a.mask.len(), "{}", a.name);
            assert!(
                hex::decode(a.magic).is_ok() && hex::decode(a.mask).is_ok(),
                "{}",
                a.name
            );
        }
    }

    #[test]
    fn magic_matches_the_elf_identity_in_the_table() {
        for a in ARCHES {
            let magic = hex::decode(a.magic).unwrap();
            let found = Arch::from_elf_header(&magic).map(|x| x.name());
            let expect = if a.name == "armhf" { "armv7" } else { a.name };
            assert_eq!(found, Some(expect), "{}", a.name);
        }
    }

    #[test]
    fn unknown_arch_lists_the_known_ones() {
        let err = "sparc".parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains("sparc") && err.contains("ppc64le"), "{err}");
    }

    #[test]
    fn x86_runs_natively_on_x86_64() {
        let host = Arch::from_name("x86_64").unwrap();
        assert!(Arch::from_name("x86").unwrap().runs_natively_on(host));
        assert!(!Arch::from_name("aarch64").unwrap().runs_natively_on(host));
    }
}
