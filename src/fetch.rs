//! Downloading the planned packages in parallel through the content-addressed cache.
//!
//! OWNER: repository helper. To be written.
