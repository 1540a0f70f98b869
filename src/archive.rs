//! Reading apk's concatenated gzip members: the compressed bytes of each member hashed as they stream by, the tar entries inside with their PAX records.
//!
//! OWNER: repository helper. To be written.
