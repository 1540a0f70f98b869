//! Output never kills the build: with stdout and stderr closed early
//! (`sysroot-mk -v ... 2>&1 | head -1`) the build finishes and exits with its status.

use crate::support;

use std::process::Command;

#[test]
fn verbose_build_into_head_exits_with_the_builds_status() {
    let Some(shared) = support::shared_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sysroot");
    let result = Command::new("bash")
        .arg("-c")
        // The pipe's status is head's; the build's is PIPESTATUS[0].
        .arg(r#""$@" 2>&1 | head -1 >/dev/null; exit "${PIPESTATUS[0]}""#)
        .arg("bash")
        .arg(env!("CARGO_BIN_EXE_sysroot-mk"))
        .args([
            "-v",
            "--arch",
            "x86_64",
            "--no-cache",
            "--no-scripts",
            "--keys-dir",
        ])
        .arg(shared.join("keys/x86_64"))
        .arg("--repo")
        .arg(shared.join("v3.19/main"))
        .arg(&out)
        .args(["busybox", "musl-utils"])
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .output()
        .unwrap();
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        out.join("lib/apk/db/installed").is_file(),
        "the build finished"
    );

    // A failing build keeps its status 1 through the closed pipe.
    let result = Command::new("bash")
        .arg("-c")
        .arg(r#""$@" 2>&1 | head -1 >/dev/null; exit "${PIPESTATUS[0]}""#)
        .arg("bash")
        .arg(env!("CARGO_BIN_EXE_sysroot-mk"))
        .args(["-v", "--arch", "x86_64", "--no-cache", "--keys-dir"])
        .arg(shared.join("keys/x86_64"))
        .arg("--repo")
        .arg(shared.join("v3.19/main"))
        .arg(tmp.path().join("other"))
        .arg("no-such-package-anywhere")
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(1));
}
