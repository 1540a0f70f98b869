//! What `apk add --initdb` lays out and what apk leaves to the caller: the skeleton,
//! `etc/apk/repositories`, keys and the CA bundle.

pub mod root;
