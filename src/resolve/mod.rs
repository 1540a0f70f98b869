//! The resolver: world + indexes -> the ordered install plan apk would choose.
//!
//! OWNER: resolve helper. To be written.
