//! A real registry for tests: started through `cargo xtask registry` for a fixture checkout and
//! removed again (server and data) when the guard is dropped, even when the test fails. Plus
//! raw-HTTP pushes of blobs and manifests, and the locally built image for the docker backend.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The registry image the docker-backend tests use (no image can be pulled on the test machine).
pub const TEST_IMAGE: &str = "xtask-test-registry:local";

/// Builds [`TEST_IMAGE`] with `xtask/tests/registry-image/build.sh` unless Docker already has
/// it; returns its name. Call only after `support::docker_available`.
pub fn ensure_test_image() -> String {
    let present = |image: &str| {
        Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !present(TEST_IMAGE) {
        let script = super::repo_root().join("xtask/tests/registry-image/build.sh");
        super::run_ok(Command::new("bash").arg(script).arg(TEST_IMAGE));
        assert!(present(TEST_IMAGE), "{TEST_IMAGE} was not built");
    }
    TEST_IMAGE.to_string()
}

/// Runs `cargo xtask registry clean` for `root` (in `forest`, when given) when dropped: whatever a
/// test started (process, container, volume, data) is removed even if the test panics. Create it
/// before starting.
pub struct Cleanup {
    pub root: PathBuf,
    pub forest: Option<PathBuf>,
}

impl Cleanup {
    pub fn new(root: &Path) -> Cleanup {
        Cleanup {
            root: root.to_path_buf(),
            forest: None,
        }
    }

    /// For the registry of the forest `forest`, which `root` lies in.
    pub fn in_forest(root: &Path, forest: &Path) -> Cleanup {
        Cleanup {
            root: root.to_path_buf(),
            forest: Some(forest.to_path_buf()),
        }
    }

    /// The xtask for `root`, with `FOREST_ROOT` when there is a forest.
    fn xtask(&self) -> Command {
        let mut cmd = super::xtask(&self.root, &[]);
        if let Some(forest) = &self.forest {
            cmd.env("FOREST_ROOT", forest);
        }
        cmd
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let output = self.xtask().args(["registry", "clean"]).output();
        match output {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "registry clean failed for {}: {}",
                self.root.display(),
                super::stderr(&o)
            ),
            Err(err) => eprintln!("cannot run registry clean for {}: {err}", self.root.display()),
        }
    }
}

/// A native registry for a fixture checkout, on a free port, removed when dropped.
pub struct TestRegistry {
    pub port: u16,
    pub root: PathBuf,
    _cleanup: Cleanup,
}

impl TestRegistry {
    /// `cargo xtask registry start --backend native --port <free>` for `root`.
    pub fn start_native(root: &Path) -> TestRegistry {
        TestRegistry::start(root, &["--backend", "native"])
    }

    /// `cargo xtask registry start --backend docker --image xtask-test-registry:local --port
    /// <free>` for `root`. Call only after `support::docker_available`.
    pub fn start_docker(root: &Path) -> TestRegistry {
        let image = ensure_test_image();
        TestRegistry::start(root, &["--backend", "docker", "--image", &image])
    }

    /// `cargo xtask registry start --backend native --port <free>` from `root`, a checkout
    /// inside `forest`: the forest's registry, which every checkout in it shares.
    pub fn start_native_in_forest(root: &Path, forest: &Path) -> TestRegistry {
        TestRegistry::start_with(Cleanup::in_forest(root, forest), &["--backend", "native"])
    }

    fn start(root: &Path, backend: &[&str]) -> TestRegistry {
        TestRegistry::start_with(Cleanup::new(root), backend)
    }

    fn start_with(cleanup: Cleanup, backend: &[&str]) -> TestRegistry {
        let root = cleanup.root.clone();
        let port = super::free_port();
        let out = super::run_ok(
            cleanup
                .xtask()
                .args(["registry", "start"])
                .args(backend)
                .args(["--port", &port.to_string()]),
        );
        assert_eq!(out, format!("localhost:{port}\n"));
        TestRegistry {
            port,
            root,
            _cleanup: cleanup,
        }
    }

    /// `localhost:<port>`, as twoliter wants it.
    pub fn url(&self) -> String {
        format!("localhost:{}", self.port)
    }
}

/// `sha256:<hex>` of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    let hex = super::sha256_hex(bytes);
    format!("sha256:{hex}")
}

fn base(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Uploads a blob to `repo` (POST then a monolithic PUT); returns its digest.
pub fn push_blob(port: u16, repo: &str, bytes: &[u8]) -> String {
    let digest = digest(bytes);
    let started = minreq::post(format!("{}/v2/{repo}/blobs/uploads/", base(port)))
        .with_timeout(10)
        .send()
        .unwrap();
    assert_eq!(
        started.status_code,
        202,
        "POST upload: {}",
        started.as_str().unwrap_or("")
    );
    let location = started.headers.get("location").expect("upload Location header").clone();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", base(port))
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let done = minreq::put(format!("{location}{sep}digest={digest}"))
        .with_header("Content-Type", "application/octet-stream")
        .with_body(bytes.to_vec())
        .with_timeout(10)
        .send()
        .unwrap();
    assert_eq!(done.status_code, 201, "PUT upload: {}", done.as_str().unwrap_or(""));
    digest
}

/// Puts a manifest under `reference` (a tag or digest); returns the registry's digest.
pub fn push_manifest(port: u16, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
    let response = minreq::put(format!("{}/v2/{repo}/manifests/{reference}", base(port)))
        .with_header("Content-Type", media_type)
        .with_body(bytes.to_vec())
        .with_timeout(10)
        .send()
        .unwrap();
    assert_eq!(
        response.status_code,
        201,
        "PUT manifest {repo}:{reference}: {}",
        response.as_str().unwrap_or("")
    );
    response
        .headers
        .get("docker-content-digest")
        .cloned()
        .unwrap_or_else(|| digest(bytes))
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image of one config blob and the given layers, tagged `tag`; returns (manifest bytes,
/// digest). Its size as `registry list` counts it is config + layers.
pub fn push_image(port: u16, repo: &str, tag: &str, arch: &str, layers: &[&[u8]]) -> (Vec<u8>, String) {
    let config = format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#);
    let config_digest = push_blob(port, repo, config.as_bytes());
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|layer| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": push_blob(port, repo, layer), "size": layer.len()})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = push_manifest(port, repo, tag, OCI_MANIFEST, &bytes);
    (bytes, digest)
}

/// GET a blob's bytes, or `None` when the registry does not have it.
pub fn get_blob(port: u16, repo: &str, digest: &str) -> Option<Vec<u8>> {
    let response = minreq::get(format!("{}/v2/{repo}/blobs/{digest}", base(port)))
        .with_timeout(10)
        .send()
        .ok()?;
    (response.status_code == 200).then(|| response.into_bytes())
}

/// Whether `GET /v2/` answers on the port.
pub fn answers(port: u16) -> bool {
    minreq::get(format!("{}/v2/", base(port)))
        .with_timeout(2)
        .send()
        .is_ok_and(|r| r.status_code == 200)
}

/// The local addresses listening on `port`, as `ss -ltn` shows them.
pub fn listening_addresses(port: u16) -> Vec<String> {
    let out = super::run_ok(Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]));
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

/// Live processes whose command line mentions `needle` (e.g. a fixture's config path).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
            .unwrap_or(true);
        if !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
            pids.push(pid);
        }
    }
    pids
}
