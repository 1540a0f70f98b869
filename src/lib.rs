//! sysroot-mk: build Alpine Linux root filesystems for any architecture natively,
//! and step inside them.
//!
//! The modules follow the pipeline, one direction:
//!
//! ```text
//! build (options) -> repository + trust + transport: fetch and verify indexes -> index
//!   -> resolve: world + indexes -> ordered plan
//!   -> fetch: packages in parallel through the cache
//!   -> package: split the gzip members, verify the trust chain
//!   -> install: extract in parallel inside the root
//!   -> scripts: run package scripts (directly, through the qemu script host, or
//!      recorded as pending for `enter`); rootless builds run as root of a user
//!      namespace (rootless)
//!   -> db + layout: apk's database, etc/apk, keys, CA bundle
//!   -> output: atomic rename of the finished tree, or image: a tar archive or an OCI
//!      layout streamed from it
//! lock: a plan written down (`--lock`) and built again (`--locked`); cache: the
//! versioned index, package and key cache (`sysroot-mk cache`)
//! update: an existing sysroot's database + the indexes -> resolve with what is installed
//!   -> the change applied in a staging copy -> exchanged with the sysroot
//! enter: arch -> binfmt -> namespaces -> mounts -> chroot -> exec
//! ```

pub mod apk_hash;
pub mod arch;
pub mod archive;
pub mod binfmt;
pub mod build;
pub mod cache;
pub mod db;
pub mod enter;
pub mod fetch;
mod hugepages;
pub mod image;
pub mod index;
pub mod inflate;
pub mod install;
pub mod layout;
pub mod lock;
pub mod mountns;
pub mod output;
pub mod package;
pub mod report;
pub mod repository;
pub mod resolve;
pub mod rootfs;
pub mod rootless;
pub mod scripts;
pub mod signals;
pub mod transport;
pub mod trust;
pub mod update;
pub mod userns;
pub mod version;
