//! Arguments of `enter` and `binfmt`. OWNER: enter helper. To be written.

/// `sysroot-mk enter [OPTIONS] DIR [-- CMD [ARGS...]]`
#[derive(Debug, clap::Args)]
pub struct EnterArgs {
    /// The sysroot.
    pub dir: std::path::PathBuf,
}

/// `sysroot-mk binfmt status|register|unregister`
#[derive(Debug, clap::Args)]
pub struct BinfmtArgs {}

/// Runs `enter`, returning the command's exit status.
pub fn run_enter(_args: EnterArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not yet")
}

/// Runs `binfmt`.
pub fn run_binfmt(_args: BinfmtArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not yet")
}
