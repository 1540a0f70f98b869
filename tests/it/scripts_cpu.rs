//! A package script has the CPU while it runs: the threads inflating the packages after
//! it are idle-class (`SCHED_IDLE`) until it ends, where the build may restore them.

use crate::install_common::TestEntry;
use crate::support;
use crate::update_support;

use sysroot_mk::build;
use sysroot_mk::image::{Destination, Format};
use sysroot_mk::report::Silent;

/// Scheduling policy of `SCHED_IDLE`, as `/proc/PID/task/TID/stat` shows it (field 41).
const SCHED_IDLE: &str = "5";

#[test]
fn the_inflating_threads_are_idle_while_a_script_runs() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    if !rustix::process::geteuid().is_root() {
        return eprintln!("skipped: running scripts and restoring policies need root");
    }
    let tmp = tempfile::tempdir().unwrap();
    // The probe's post-install records the policy of every thread of this process (the
    // build runs in it) while libcrypto3, planned after it and the largest package of the
    // shared set, is still being inflated.
    let probe_script = "#!/bin/sh\nawk '{ print $41 }' /proc/$PPID/task/*/stat > /policies\n";
    let probe = update_support::scripted_package(
        "cpu-probe",
        "1.0-r0",
        &[TestEntry::file(b"probe.txt", b"probe")],
        &[("post-install", probe_script)],
    );
    update_support::write_repo(&tmp.path().join("probe"), &[&probe]);
    let keys = support::keys_dir(&[support::TEST_KEY]);
    let options = support::build_options(
        tmp.path().join("sysroot"),
        &["busybox", "cpu-probe", "libcrypto3"],
        &[&shared.join("v3.19/main"), &tmp.path().join("probe")],
        vec![keys.path().to_path_buf(), shared.join("keys/x86_64")],
    );
    let resolved = build::resolve(&options, &Silent).unwrap();
    let order: Vec<String> = resolved
        .plan
        .packages
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let at = |name: &str| order.iter().position(|n| n == name).expect(name);
    assert!(
        at("busybox") < at("cpu-probe") && at("cpu-probe") < at("libcrypto3"),
        "the probe runs after busybox and before libcrypto3: {order:?}"
    );
    let mut destination = Destination::open(&options.dir, Format::Directory, false).unwrap();
    build::install(&options, resolved, &mut destination, &Silent).unwrap();
    destination.finish().unwrap();

    let seen = std::fs::read_to_string(tmp.path().join("sysroot/policies")).unwrap();
    assert!(
        seen.lines().any(|policy| policy == SCHED_IDLE),
        "no idle-class thread while the script ran: {seen:?}"
    );
}
