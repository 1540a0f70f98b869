//! Builds the qemu guard (`guard/main.rs`), the binfmt_misc interpreter `enter` registers
//! in front of qemu, for the target this crate is built for. It is freestanding (raw
//! syscalls, no libc), so only the stable toolchain's `core` and a C linker are needed.
//! Where it cannot be built (another host arch, a linker that refuses), an empty file
//! stands in and `enter` registers qemu directly, with a warning.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=guard/main.rs");
    println!("cargo::rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let image = out.join("qemu-guard");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let result = if os == "linux" && (arch == "x86_64" || arch == "aarch64") {
        build(&image)
    } else {
        Err(format!(
            "no guard for {arch}-{os} (x86_64 and aarch64 Linux only)"
        ))
    };
    if let Err(why) = result {
        println!(
            "cargo::warning=the qemu guard was not built ({why}); `enter` will register qemu \
             directly and qemu will honour QEMU_* variables for setuid programs"
        );
        std::fs::write(&image, b"").expect("write to OUT_DIR");
    }
    if relr_links_and_runs(&out) {
        // Relative relocations packed (DT_RELR): the binary's `.rela.dyn` shrinks from
        // ~370 KB to ~5 KB, and each run maps ~0.7 MB less of it (peak RSS).
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the C toolchain links a program with packed relative relocations and this
/// host's loader runs it (glibc 2.36 or later); never for a cross build, whose loader
/// cannot be tried here.
fn relr_links_and_runs(out: &std::path::Path) -> bool {
    let same = std::env::var("TARGET").ok() == std::env::var("HOST").ok();
    let gnu = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if !same || !gnu {
        return false;
    }
    let source = out.join("relr-probe.c");
    let probe = out.join("relr-probe");
    if std::fs::write(&source, "int main(void) { return 0; }\n").is_err() {
        return false;
    }
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let linked = Command::new(cc)
        .args(["-fPIE", "-pie", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&probe)
        .arg(&source)
        .output()
        .is_ok_and(|o| o.status.success());
    linked && Command::new(&probe).status().is_ok_and(|s| s.success())
}

fn build(image: &std::path::Path) -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").map_err(|e| e.to_string())?;
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition",
        "2021",
        "--crate-type",
        "bin",
        "--target",
        &target,
    ])
    .args([
        "-C",
        "opt-level=s",
        "-C",
        "panic=abort",
        "-C",
        "codegen-units=1",
    ])
    // A static non-PIE executable needs no loader and no self-relocation.
    .args([
        "-C",
        "relocation-model=static",
        "-C",
        "target-feature=+crt-static",
    ])
    .args(["-C", "strip=symbols", "-C", "link-arg=-nostartfiles"])
    .args([
        "-C",
        "link-arg=-nostdlib",
        "-C",
        "link-arg=-Wl,--build-id=none",
    ])
    .arg("-o")
    .arg(image)
    .arg("guard/main.rs");
    if let Some(linker) = std::env::var_os("RUSTC_LINKER") {
        let mut arg = std::ffi::OsString::from("linker=");
        arg.push(linker);
        cmd.arg("-C").arg(arg);
    }
    let out = cmd.output().map_err(|e| format!("cannot run rustc: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or("rustc failed");
        return Err(first.to_string());
    }
    Ok(())
}
