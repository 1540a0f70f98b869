//! `sysroot-mk enter`: run a shell or command inside a sysroot, under qemu where the arch is foreign.
//!
//! OWNER: enter helper. To be written.
