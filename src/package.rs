//! An .apk file: its three gzip members, the trust chain C: -> datahash, .PKGINFO and scripts.
//!
//! OWNER: install helper. To be written.
