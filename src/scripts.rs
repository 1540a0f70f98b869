//! Running package scripts and triggers inside the root as apk does.
//!
//! OWNER: db helper. To be written.
