//! Trust roots: pinned official keys, explicit keys, and RSA signature verification.
//!
//! OWNER: repository helper. To be written.
