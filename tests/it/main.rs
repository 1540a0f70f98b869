//! The integration tests, as one binary: each file of this folder is a module, so the
//! crate is linked into one test program instead of one per file. Tests run on threads
//! of one process, so none may change process-wide state (environment, working
//! directory, signal handlers): one that must re-runs itself in a child process
//! (`support::in_own_process`, `support::test_in_child`).

#[path = "../support/mod.rs"]
mod support;
// The helpers are one module, `support`; these names are the ones the tests use.
use support::{
    enter as enter_support, foreign as foreign_support, image as image_support,
    install as install_common, resolve as resolve_support, shared_data, tree as tree_support,
    update as update_support,
};

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
mod fetch_network;
mod fetch_proxy;
mod foreign_scripts;
mod image_oci;
mod image_registry;
mod image_tar;
mod index_cache;
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
mod progress_totals;
mod repository;
mod resolve_cases;
mod resolve_real;
mod safety_cache;
mod safety_force;
mod safety_interrupt;
mod safety_lenient;
mod safety_output;
mod scripts_cpu;
mod scripts_everywhere;
mod scripts_oracle;
mod trust;
mod update_atomic;
mod update_oracle;
mod version_oracle;
mod version_props;
