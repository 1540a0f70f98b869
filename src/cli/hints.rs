//! The `hint:` line under an error: the first hint the library's errors in its cause
//! chain offer, worded for what the user typed.

use std::error::Error;
use sysroot_mk::report::{Hint, Hinted};

/// What the command line said that changes which hints apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Typed {
    /// The repositories came from `--mirror` (no `--repo`, no repositories file):
    /// only then is another mirror a way out.
    pub mirror: bool,
}

/// The hint for `err`, if one of its causes offers one that applies.
pub(super) fn hint_line(err: &anyhow::Error, typed: Typed) -> Option<String> {
    let hint = err.chain().find_map(hint_of)?;
    Some(match hint {
        Hint::Fix(text) => text,
        Hint::Server { check } if typed.mirror => {
            format!("{check}; or try another mirror with `--mirror URL`")
        }
        Hint::Server { check } => check,
    })
}

/// The hint of one cause, when it is one of the library's errors that has hints.
fn hint_of(cause: &(dyn Error + 'static)) -> Option<Hint> {
    macro_rules! first_of {
        ($($ty:ty),*) => {
            $(if let Some(e) = cause.downcast_ref::<$ty>() {
                return e.hint();
            })*
        };
    }
    first_of!(
        sysroot_mk::build::BuildError,
        sysroot_mk::repository::RepositoryError,
        sysroot_mk::fetch::FetchError,
        sysroot_mk::transport::TransportError,
        sysroot_mk::scripts::ScriptError,
        sysroot_mk::output::OutputError,
        sysroot_mk::image::ImageError,
        sysroot_mk::enter::EnterError,
        sysroot_mk::binfmt::BinfmtError,
        sysroot_mk::lock::LockError,
        sysroot_mk::cache::CacheError
    );
    None
}
