//! Repositories: where indexes come from (URLs, paths, repositories files) and loading their verified indexes.
//!
//! OWNER: repository helper. To be written.
