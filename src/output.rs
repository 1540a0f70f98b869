//! Atomic output: build in a temporary sibling directory and rename it into place at the end.
//!
//! OWNER: db helper. To be written.
