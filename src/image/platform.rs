//! Alpine arch names as OCI platforms (the names `docker run --platform` takes).

/// An OCI platform: `architecture`, and `variant` where one is needed to tell ARM
/// generations apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// GOARCH-style name: `amd64`, `arm64`, `arm`...
    pub architecture: &'static str,
    /// `v6`, `v7` for 32-bit ARM; `None` elsewhere.
    pub variant: Option<&'static str>,
}

/// The platform of an Alpine arch; `None` for an arch OCI has no name for.
pub fn platform(alpine_arch: &str) -> Option<Platform> {
    let (architecture, variant) = match alpine_arch {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", None),
        "armv7" => ("arm", Some("v7")),
        "armhf" => ("arm", Some("v6")),
        "ppc64le" => ("ppc64le", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "loongarch64" => ("loong64", None),
        "ppc64" => ("ppc64", None),
        "mips64" => ("mips64", None),
        "mips64el" => ("mips64le", None),
        _ => return None,
    };
    Some(Platform {
        architecture,
        variant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alpine_arch_but_ppc_has_a_platform() {
        for arch in crate::arch::Arch::names() {
            assert_eq!(platform(arch).is_some(), arch != "ppc", "{arch}");
        }
        assert_eq!(platform("armhf").unwrap().variant, Some("v6"));
        assert_eq!(platform("aarch64").unwrap().architecture, "arm64");
    }
}
