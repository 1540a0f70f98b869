//! The integration tests, as one binary: each file of this folder is a module, so the
//! crate is linked into one test program instead of one per file. Tests run on threads
//! of one process, so none may change process-wide state (environment, working
//! directory, signal handlers): one that must re-runs itself in a child process
//! (`support::in_own_process`, `support::test_in_child`).

#[path = "../enter_support/mod.rs"]
mod enter_support;
#[path = "../foreign_support/mod.rs"]
mod foreign_support;
#[path = "../image_support/mod.rs"]
mod image_support;
#[path = "../install_common/mod.rs"]
mod install_common;
#[path = "../resolve_support/mod.rs"]
mod resolve_support;
#[path = "../shared_data/mod.rs"]
mod shared_data;
#[path = "../support/mod.rs"]
mod support;
#[path = "../tree_support/mod.rs"]
mod tree_support;
#[path = "../update_support/mod.rs"]
mod update_support;

mod binfmt;
mod build_e2e;
mod cache_cli;
mod cli;
mod cli_hints;
mod db_apk_fixtures;
mod enter;
mod enter_isolation;
mod enter_userns;
mod fetch;
mod fetch_faults;
mod fetch_https;
mod fetch_proxy;
mod foreign_scripts;
mod image_oci;
mod image_registry;
mod image_tar;
mod index_dep;
mod index_installed;
mod index_parse;
mod index_real;
mod install_alpine;
mod install_hostile;
mod install_rules;
mod layout_skeleton;
mod lock_offline;
mod lock_real;
mod output_staging;
mod package_verify;
mod repository;
mod resolve_cases;
mod resolve_real;
mod safety_cache;
mod safety_force;
mod safety_interrupt;
mod safety_lenient;
mod safety_output;
mod scripts_everywhere;
mod scripts_oracle;
mod trust;
mod update_atomic;
mod update_oracle;
mod version_oracle;
mod version_props;
