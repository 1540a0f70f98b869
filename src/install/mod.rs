//! Extracting verified packages into the root, in parallel, never escaping it.
//!
//! OWNER: install helper. To be written.
