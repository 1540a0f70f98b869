//! An OCI output goes through a real registry (Debian's `docker-registry` on 127.0.0.1):
//! pushed with `--push` (skopeo underneath) or skopeo by hand, pulled back by digest, it
//! unpacks to the directory build's tree.

use crate::image_support;

use image_support::*;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A registry process, killed when dropped.
struct Registry {
    child: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `docker-registry` on a free port of 127.0.0.1, storing under `dir`.
fn start_registry(dir: &std::path::Path) -> Registry {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = Registry { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    registry
}

#[test]
fn image_pushed_to_a_registry_and_pulled_by_digest_unpacks_to_the_directory_build() {
    let ready = root()
        .and_then(|()| tools(&["skopeo", "umoci", "docker-registry"]))
        .and_then(|()| repo("v3.19", "x86_64"));
    let Some((repo, keys)) = or_skip(ready) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let registry_dir = tmp.path().join("registry");
    std::fs::create_dir(&registry_dir).unwrap();
    let registry = start_registry(&registry_dir);
    let name = format!("127.0.0.1:{}/sysroot/alpine", registry.port);
    // skopeo (which `--push` runs) talks plain HTTP to this registry only.
    let registries_conf = tmp.path().join("registries.conf");
    std::fs::write(
        &registries_conf,
        format!(
            "[[registry]]\nlocation = \"127.0.0.1:{}\"\ninsecure = true\n",
            registry.port
        ),
    )
    .unwrap();

    let (image, dir) = (tmp.path().join("x.oci"), tmp.path().join("dir"));
    let pushed = run(Command::new(env!("CARGO_BIN_EXE_sysroot-mk"))
        .args([
            "--arch",
            "x86_64",
            "--no-cache",
            "--output",
            "oci",
            "--repo",
        ])
        .arg(&repo)
        .arg("--keys-dir")
        .arg(&keys)
        .args(["--push", &format!("{name}:3.19")])
        .arg(&image)
        .arg("alpine-base")
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("CONTAINERS_REGISTRIES_CONF", &registries_conf));
    build(&["x86_64"], &repo, &[&keys], &dir, &[]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        pushed.trim(),
        format!("{name}:3.19@{digest}"),
        "--push prints what the registry stored: the layout's manifest digest"
    );

    // The README's way, skopeo by hand, to another tag: the same digest.
    run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", image.display()))
        .arg(format!("docker://{name}:by-hand")));
    let inspect = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{name}:by-hand")));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());

    let pulled = tmp.path().join("pulled.oci");
    run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
        .arg(format!("docker://{name}@{digest}"))
        .arg(format!("oci:{}:latest", pulled.display())));
    drop(registry);

    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", pulled.display()))
        .arg(&bundle));
    let diffs = differences(&tree(&dir), &tree(&bundle.join("rootfs")));
    assert!(diffs.is_empty(), "{diffs:#?}");
}
