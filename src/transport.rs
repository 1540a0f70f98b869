//! Getting bytes from http(s)://, file:// and plain paths: timeouts, retries, resume, revalidation.
//!
//! OWNER: repository helper. To be written.
