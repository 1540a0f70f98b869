//! What apk --initdb lays out and what apk leaves to the caller: skeleton, etc/apk files, keys, CA bundle.
//!
//! OWNER: db helper. To be written.
