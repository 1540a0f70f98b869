//! The build pipeline from options to a finished sysroot.
//!
//! OWNER: lead helper. To be written.
