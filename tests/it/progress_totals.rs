//! The totals a build announces through its reporter before the work starts: the scripts
//! it will run are counted ahead, and each one planned then starts or is skipped, so a
//! progress display with that total ends complete.

use crate::install_common::TestEntry;
use crate::support;
use crate::update_support;

use std::sync::Mutex;
use sysroot_mk::build::{self, BuildOptions};
use sysroot_mk::image::{Destination, Format};
use sysroot_mk::report::Reporter;

/// Records the scripts events.
#[derive(Default)]
struct Scripts {
    planned: Mutex<Vec<usize>>,
    started: Mutex<Vec<String>>,
    skipped: Mutex<Vec<String>>,
}

impl Reporter for Scripts {
    fn scripts_planned(&self, count: usize) {
        self.planned.lock().unwrap().push(count);
    }
    fn script_started(&self, script: &str) {
        self.started.lock().unwrap().push(script.to_string());
    }
    fn script_skipped(&self, script: &str) {
        self.skipped.lock().unwrap().push(script.to_string());
    }
}

#[test]
fn the_scripts_planned_are_the_scripts_run_or_skipped() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    if !rustix::process::geteuid().is_root() {
        return eprintln!("skipped: running scripts needs root");
    }
    let tmp = tempfile::tempdir().unwrap();
    // `demo` has both install scripts and a trigger whose glob matches no directory;
    // busybox (from the shared data) has a post-install script and a trigger that fires.
    let script = "#!/bin/sh\nexit 0\n";
    let demo = update_support::scripted_package_with(
        "demo",
        "1.0-r0",
        &[TestEntry::file(b"demo.txt", b"demo")],
        &[
            ("pre-install", script),
            ("post-install", script),
            ("trigger", script),
        ],
        "triggers = /no/such/dir/*\n",
    );
    update_support::write_repo(&tmp.path().join("demo"), &[&demo]);
    let keys = support::keys_dir(&[support::TEST_KEY]);
    let options = support::build_options(
        tmp.path().join("sysroot"),
        &["busybox", "demo"],
        &[&shared.join("v3.19/main"), &tmp.path().join("demo")],
        vec![keys.path().to_path_buf(), shared.join("keys/x86_64")],
    );
    let reporter = Scripts::default();
    let resolved = build::resolve(&options, &reporter).unwrap();
    let mut destination = Destination::open(&options.dir, Format::Directory, false).unwrap();
    build::install(&options, resolved, &mut destination, &reporter).unwrap();
    destination.finish().unwrap();

    let started = reporter.started.lock().unwrap().clone();
    let skipped = reporter.skipped.lock().unwrap().clone();
    assert_eq!(skipped, ["demo-1.0-r0.trigger"]);
    for script in [
        "busybox-1.36.1-r15.post-install",
        "busybox-1.36.1-r15.trigger",
        "demo-1.0-r0.pre-install",
        "demo-1.0-r0.post-install",
    ] {
        assert!(started.iter().any(|s| s == script), "{script}: {started:?}");
    }
    // Announced once, before the first script, and exactly what then ran or was skipped.
    assert_eq!(
        *reporter.planned.lock().unwrap(),
        [started.len() + skipped.len()]
    );
}

#[test]
fn no_scripts_plans_none() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let options = BuildOptions {
        no_scripts: true,
        ..support::build_options(
            tmp.path().join("sysroot"),
            &["busybox"],
            &[&shared.join("v3.19/main")],
            vec![shared.join("keys/x86_64")],
        )
    };
    let reporter = Scripts::default();
    let resolved = build::resolve(&options, &reporter).unwrap();
    let mut destination = Destination::open(&options.dir, Format::Directory, false).unwrap();
    build::install(&options, resolved, &mut destination, &reporter).unwrap();
    destination.finish().unwrap();
    // Recorded for `enter`, not run: no phase to show.
    assert_eq!(*reporter.planned.lock().unwrap(), [0]);
    assert!(reporter.started.lock().unwrap().is_empty());
}
