//! `cargo xtask registry …` against real servers: Debian's `docker-registry` for the native
//! backend, the Docker Engine with a locally built image for the docker backend. Each test has
//! its own fixture checkout (so its own registry state) and removes what it started.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use support::registry::{self as reg, Cleanup};

fn registry(root: &Path, args: &[&str]) -> Command {
    let mut cmd = support::xtask(root, &[]);
    cmd.arg("registry").args(args);
    cmd
}

fn status_json(root: &Path) -> (i32, serde_json::Value) {
    let output = support::run(&mut registry(root, &["status", "--json"]));
    let json = serde_json::from_slice(&output.stdout).expect("status --json prints one JSON object");
    (output.status.code().expect("exit code"), json)
}

fn start_native(root: &Path, port: u16) -> Output {
    support::run(&mut registry(
        root,
        &["start", "--backend", "native", "--port", &port.to_string()],
    ))
}

fn start_docker(root: &Path, port: u16) -> Output {
    let image = reg::ensure_test_image();
    support::run(&mut registry(
        root,
        &[
            "start",
            "--backend",
            "docker",
            "--image",
            &image,
            "--port",
            &port.to_string(),
        ],
    ))
}

/// Runs two `registry <args>` at once; each must succeed and print `localhost:<port>`.
fn start_twice_at_once(root: &Path, args: &[&str], port: u16) {
    let children: Vec<_> = (0..2)
        .map(|_| {
            registry(root, args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", support::stderr(&output));
        assert_eq!(String::from_utf8_lossy(&output.stdout), format!("localhost:{port}\n"));
    }
}

/// The native server processes of a fixture: those reading its generated config.
fn native_servers(root: &Path) -> Vec<u32> {
    let config = std::fs::canonicalize(root)
        .unwrap()
        .join("planning/.registry/native/config.yml");
    reg::processes_mentioning(&format!("serve {}", config.display()))
}

#[test]
fn registry_native_concurrent_starts_give_one_server_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let port = support::free_port();
    let port_text = port.to_string();
    // Two starts at once: the lock makes the second reuse what the first started.
    start_twice_at_once(root, &["start", "--backend", "native", "--port", &port_text], port);
    assert_eq!(native_servers(root).len(), 1, "exactly one server runs");
    let again = start_native(root, port);
    assert!(again.status.success());
    assert!(
        support::stderr(&again).contains("registry reused"),
        "{}",
        support::stderr(&again)
    );
    assert_eq!(native_servers(root).len(), 1);

    // Published on loopback only.
    assert_eq!(reg::listening_addresses(port), vec![format!("127.0.0.1:{port}")]);
    let (code, status) = status_json(root);
    assert_eq!(code, 0);
    assert_eq!(status["state"], "healthy");
    assert_eq!(status["backend"], "native");
    assert_eq!(status["url"], format!("localhost:{port}"));
    assert_eq!(status["repositories"], 0);
    assert_eq!(status["pid"], native_servers(root)[0]);
    // `registry url` prints exactly what twoliter wants; a start without flags reuses it.
    assert_eq!(
        support::run_ok(&mut registry(root, &["url"])),
        format!("localhost:{port}\n")
    );
    let plain = support::run(&mut registry(root, &["start"]));
    assert!(plain.status.success() && support::stderr(&plain).contains("reused"));
}

#[test]
fn registry_native_stop_then_start_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let port = support::free_port();
    assert!(start_native(root, port).status.success());
    let blob = b"kept across restarts".to_vec();
    let digest = reg::push_blob(port, "kept/repo", &blob);
    reg::push_image(port, "kept/repo", "v1", "amd64", &[b"layer"]);

    let stopped = support::run(&mut registry(root, &["stop"]));
    assert!(stopped.status.success() && support::stderr(&stopped).contains("data is kept"));
    assert!(native_servers(root).is_empty());
    assert!(!reg::answers(port));
    let (code, status) = status_json(root);
    assert_eq!((code, status["state"].as_str()), (1, Some("stopped")));
    // The log is there for a stopped registry too.
    let log = support::run_ok(&mut registry(root, &["logs"]));
    assert!(log.contains(&format!("listening on 127.0.0.1:{port}")), "{log}");

    // Started again on the remembered port, without flags: the data is still there.
    let started = support::run(&mut registry(root, &["start"]));
    assert!(started.status.success());
    assert_eq!(String::from_utf8_lossy(&started.stdout), format!("localhost:{port}\n"));
    assert_eq!(reg::get_blob(port, "kept/repo", &digest), Some(blob));
    let list = support::run_ok(&mut registry(root, &["list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["images"][0]["repository"], "kept/repo");
    assert_eq!(list["images"][0]["tag"], "v1");

    // clean removes the server and the data, and says so.
    let data = root.join("planning/.registry/native/data");
    assert!(data.is_dir());
    let cleaned = support::run(&mut registry(root, &["clean"]));
    assert!(cleaned.status.success());
    let said = support::stderr(&cleaned);
    assert!(
        said.contains("native registry process") && said.contains("data directory"),
        "{said}"
    );
    assert!(!data.exists() && native_servers(root).is_empty() && !reg::answers(port));
    assert_eq!(status_json(root).0, 2);
}

#[test]
fn registry_native_port_taken_is_a_clear_error_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let output = start_native(root, port);
    assert_eq!(output.status.code(), Some(1));
    let err = support::stderr(&output);
    assert!(err.contains(&format!("port {port} on 127.0.0.1 is taken")), "{err}");
    assert!(err.contains("--port"), "{err}");
    assert!(output.stdout.is_empty());
    assert!(native_servers(root).is_empty());
    let (code, status) = status_json(root);
    assert_eq!((code, status["state"].as_str()), (2, Some("not-created")));
    drop(listener);
}

#[test]
fn registry_native_killed_server_is_reported_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let port = support::free_port();
    assert!(start_native(root, port).status.success());
    let pid = native_servers(root)[0];
    support::run_ok(Command::new("kill").args(["-KILL", &pid.to_string()]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reg::answers(port) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (code, status) = status_json(root);
    assert_eq!((code, status["state"].as_str()), (1, Some("stopped")));
    let running = support::run(&mut registry(root, &["list"]));
    assert!(!running.status.success());
    assert!(support::stderr(&running).contains("run `cargo xtask registry start`"));
    let again = support::run(&mut registry(root, &["start"]));
    assert!(again.status.success() && support::stderr(&again).contains("registry started"));
    assert_eq!(status_json(root).0, 0);
}

#[test]
fn registry_without_a_server_says_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (code, status) = status_json(root);
    assert_eq!((code, status["state"].as_str()), (2, Some("not-created")));
    let url = support::run_ok(&mut registry(root, &["url"]));
    let port: u16 = url.trim().strip_prefix("localhost:").unwrap().parse().unwrap();
    assert!((20000..30000).contains(&port), "{url}");
    // The default port is stable for the checkout.
    assert_eq!(support::run_ok(&mut registry(root, &["url"])), url);
    let list = support::run(&mut registry(root, &["list"]));
    assert!(!list.status.success());
    assert!(support::stderr(&list).contains("not created: run `cargo xtask registry start`"));
    let help = support::run_ok(&mut registry(root, &["status", "--help"]));
    assert!(
        help.contains("0 running and healthy, 1 stopped or unhealthy, 2 not created"),
        "{help}"
    );
}

#[test]
fn registry_list_paginates_sums_index_sizes_and_reports_broken_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let port = support::free_port();
    assert!(start_native(root, port).status.success());

    // More repositories than one catalog page (100).
    for i in 0..101 {
        reg::push_image(port, &format!("many/r{i:03}"), "v1", "amd64", &[]);
    }
    // An index of two platform images: its size is the sum of their configs and layers.
    let (amd, amd_digest) = reg::push_image(port, "kit", "amd64-only", "amd64", &[&[1u8; 1000]]);
    let (arm, arm_digest) = reg::push_image(port, "kit", "arm64-only", "arm64", &[&[2u8; 300], &[3u8; 20]]);
    let image_size = |manifest: &[u8]| {
        let m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
        m["config"]["size"].as_u64().unwrap()
            + m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["size"].as_u64().unwrap())
                .sum::<u64>()
    };
    let index = |children: &[(&str, &[u8], &str)]| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": reg::OCI_INDEX,
            "manifests": children.iter().map(|(digest, bytes, arch)| serde_json::json!({
                "mediaType": reg::OCI_MANIFEST, "digest": digest, "size": bytes.len(),
                "platform": {"architecture": arch, "os": "linux"}})).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    let index_digest = reg::push_manifest(
        port,
        "kit",
        "v1.0.0",
        reg::OCI_INDEX,
        &index(&[(&amd_digest, &amd, "amd64"), (&arm_digest, &arm, "arm64")]),
    );
    // A broken index: the image it references is deleted afterwards.
    let (gone, gone_digest) = reg::push_image(port, "broken", "child", "amd64", &[]);
    reg::push_manifest(
        port,
        "broken",
        "v2",
        reg::OCI_INDEX,
        &index(&[(&gone_digest, &gone, "amd64")]),
    );
    let deleted = minreq::delete(format!("http://127.0.0.1:{port}/v2/broken/manifests/{gone_digest}"))
        .send()
        .unwrap();
    assert_eq!(deleted.status_code, 202);

    let output = support::run(&mut registry(root, &["list", "--json"]));
    assert!(output.status.success(), "one broken manifest is not fatal");
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list["registry"], format!("localhost:{port}"));
    let images = list["images"].as_array().unwrap();
    let repos: std::collections::BTreeSet<&str> = images.iter().map(|r| r["repository"].as_str().unwrap()).collect();
    assert_eq!(
        repos.iter().filter(|r| r.starts_with("many/")).count(),
        101,
        "the catalog's second page is listed"
    );
    assert!(repos.contains("kit") && repos.contains("broken"));

    let row = |repo: &str, tag: &str| {
        images
            .iter()
            .find(|r| r["repository"] == repo && r["tag"] == tag)
            .unwrap_or_else(|| panic!("no row {repo}:{tag}"))
    };
    let kit = row("kit", "v1.0.0");
    assert_eq!(kit["digest"], index_digest);
    assert_eq!(kit["media_type"], reg::OCI_INDEX);
    assert_eq!(kit["platforms"], serde_json::json!(["linux/amd64", "linux/arm64"]));
    assert_eq!(kit["size"].as_u64().unwrap(), image_size(&amd) + image_size(&arm));
    assert!(image_size(&amd) > 1000 && image_size(&arm) > 320, "layers are counted");
    assert!(kit["error"].is_null());
    assert_eq!(row("kit", "amd64-only")["size"].as_u64().unwrap(), image_size(&amd));
    let broken = row("broken", "v2");
    assert!(broken["error"].as_str().unwrap().contains(&gone_digest), "{broken}");
    assert!(broken["size"].is_null());
    assert!(support::stderr(&output).contains("could not be read in full"));

    // The table says the same to a person.
    let table = support::run_ok(&mut registry(root, &["list"]));
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(
        table.contains("linux/amd64,linux/arm64") && table.contains("many/r100"),
        "{table}"
    );
    assert!(
        table.contains(&format!("  error: the index references {gone_digest}")),
        "{table}"
    );
    assert_eq!(status_json(root).1["repositories"], 103);
}

fn docker_status(root: &Path) -> serde_json::Value {
    status_json(root).1
}

fn container_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["container", "inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn volume_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn registry_docker_lifecycle_keeps_data_and_recreates_on_port_change() {
    if !support::docker_available("registry_docker_lifecycle_keeps_data_and_recreates_on_port_change") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let port = support::free_port();
    let port_text = port.to_string();
    let image = reg::ensure_test_image();
    start_twice_at_once(
        root,
        &["start", "--backend", "docker", "--image", &image, "--port", &port_text],
        port,
    );
    let status = docker_status(root);
    assert_eq!(
        (status["state"].as_str(), status["backend"].as_str()),
        (Some("healthy"), Some("docker"))
    );
    assert_eq!(status["image"], reg::TEST_IMAGE);
    let container = status["container"].as_str().unwrap().to_string();
    let volume = status["volume"].as_str().unwrap().to_string();
    assert!(container.starts_with("xtask-registry-") && volume == format!("{container}-data"));
    assert_eq!(reg::listening_addresses(port), vec![format!("127.0.0.1:{port}")]);
    let inspect = support::run_ok(Command::new("docker").args([
        "container",
        "inspect",
        "--format",
        "{{.HostConfig.RestartPolicy.Name}} {{index .Config.Labels \"dev.bottlerocket.xtask.registry.checkout\"}}",
        &container,
    ]));
    let checkout = std::fs::canonicalize(root).unwrap();
    assert_eq!(inspect.trim(), format!("unless-stopped {}", checkout.display()));

    let blob = b"in the volume".to_vec();
    let digest = reg::push_blob(port, "vol/repo", &blob);

    // Started again: reused, still one container.
    let again = start_docker(root, port);
    assert!(again.status.success() && support::stderr(&again).contains("registry reused"));
    // Every container labelled with this checkout, running or not: one.
    let label = format!("label=dev.bottlerocket.xtask.registry.checkout={}", checkout.display());
    let ours = support::run_ok(Command::new("docker").args(["ps", "-a", "-q", "--filter", &label]));
    assert_eq!(ours.lines().count(), 1, "{ours}");

    // Stopped: status 1, logs still readable; started again: data kept.
    assert!(support::run(&mut registry(root, &["stop"])).status.success());
    let (code, status) = status_json(root);
    assert_eq!((code, status["state"].as_str()), (1, Some("stopped")));
    let logs = support::run(&mut registry(root, &["logs"]));
    assert!(logs.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&logs.stdout), support::stderr(&logs));
    assert!(all.contains("listening on"), "{all}");
    let restarted = start_docker(root, port);
    assert!(restarted.status.success() && support::stderr(&restarted).contains("registry started"));
    assert_eq!(reg::get_blob(port, "vol/repo", &digest), Some(blob.clone()));

    // On another port: the container is recreated, the volume (and the blob) kept.
    let other = support::free_port();
    let moved = start_docker(root, other);
    assert!(moved.status.success());
    assert!(
        support::stderr(&moved).contains("recreating container"),
        "{}",
        support::stderr(&moved)
    );
    assert_eq!(reg::get_blob(other, "vol/repo", &digest), Some(blob));
    assert!(!reg::answers(port));
    assert_eq!(reg::listening_addresses(other), vec![format!("127.0.0.1:{other}")]);
    assert_eq!(
        support::run_ok(&mut registry(root, &["url"])),
        format!("localhost:{other}\n")
    );

    // With another image: recreated as well, the data still kept.
    let other_image = "xtask-test-registry:other-tag";
    support::run_ok(Command::new("docker").args(["tag", reg::TEST_IMAGE, other_image]));
    let other_text = other.to_string();
    let retagged = support::run(&mut registry(
        root,
        &["start", "--image", other_image, "--port", &other_text],
    ));
    support::run_ok(Command::new("docker").args(["rmi", other_image]));
    assert!(retagged.status.success());
    let said = support::stderr(&retagged);
    assert!(
        said.contains(&format!("runs image {} instead of {other_image}", reg::TEST_IMAGE)),
        "{said}"
    );
    assert_eq!(reg::get_blob(other, "vol/repo", &digest).map(|b| b.len()), Some(13));

    // clean removes both container and volume.
    let cleaned = support::run(&mut registry(root, &["clean"]));
    assert!(cleaned.status.success());
    let said = support::stderr(&cleaned);
    assert!(
        said.contains(&format!("container {container}")) && said.contains(&format!("volume {volume}")),
        "{said}"
    );
    assert!(!container_exists(&container) && !volume_exists(&volume));
    assert_eq!(status_json(root).0, 2);
}

#[test]
fn registry_docker_port_taken_or_image_missing_starts_nothing() {
    if !support::docker_available("registry_docker_port_taken_or_image_missing_starts_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let output = start_docker(root, port);
    assert!(!output.status.success());
    let err = support::stderr(&output);
    assert!(
        err.contains(&format!("port {port} on 127.0.0.1 is taken")) && err.contains("--port"),
        "{err}"
    );
    let (code, status) = status_json(root);
    assert_eq!(code, 2, "{status}");
    drop(listener);

    // An image that is neither present nor pullable: the error names the ways out.
    let missing = support::run(&mut registry(
        root,
        &[
            "start",
            "--backend",
            "docker",
            "--image",
            "xtask-no-such-image:none",
            "--port",
            &support::free_port().to_string(),
        ],
    ));
    assert!(!missing.status.success());
    let err = support::stderr(&missing);
    assert!(
        err.contains("xtask-no-such-image:none is not present and cannot be pulled"),
        "{err}"
    );
    assert!(err.contains("--backend native") && err.contains("--image"), "{err}");
    assert_eq!(status_json(root).0, 2);
}

#[test]
fn registry_switching_backends_keeps_one_server() {
    if !support::docker_available("registry_switching_backends_keeps_one_server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let port = support::free_port();
    assert!(start_native(root, port).status.success());
    // Same port, other backend: the native server is stopped first, so the port is free.
    let switched = start_docker(root, port);
    assert!(switched.status.success(), "{}", support::stderr(&switched));
    assert!(native_servers(root).is_empty());
    let status = docker_status(root);
    assert_eq!(
        (status["state"].as_str(), status["backend"].as_str()),
        (Some("healthy"), Some("docker"))
    );
    assert!(reg::answers(port));
}

#[test]
fn registry_native_failure_quotes_the_server_log() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkout");
    std::fs::create_dir(&root).unwrap();
    let _cleanup = Cleanup::new(&root);
    // A server that refuses its config, the way docker-registry does, on stderr.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("docker-registry");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"configuration error: cannot use $2\" >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = support::free_port().to_string();
    let output = support::run(support::xtask(&root, &[&bin]).args([
        "registry",
        "start",
        "--backend",
        "native",
        "--port",
        &port,
    ]));
    assert_eq!(output.status.code(), Some(1));
    let err = support::stderr(&output);
    assert!(err.contains("exited (exit status: 3)"), "{err}");
    assert!(
        err.contains("configuration error: cannot use") && err.contains("config.yml"),
        "{err}"
    );
    assert!(err.contains("full log: ") && err.contains("registry.log"), "{err}");
    assert!(native_servers(&root).is_empty());
}

#[test]
fn registry_docker_failure_quotes_the_container_log() {
    if !support::docker_available("registry_docker_failure_quotes_the_container_log") {
        return;
    }
    // An image whose server exits at once: it is given a config file that does not exist.
    let base = reg::ensure_test_image();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nCMD [\"serve\", \"/missing.yml\"]\n"),
    )
    .unwrap();
    let broken = "xtask-test-registry:exits";
    support::run_ok(
        Command::new("docker")
            .args(["build", "-q", "-t", broken])
            .arg(ctx.path()),
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let port = support::free_port().to_string();
    let output = support::run(&mut registry(
        root,
        &["start", "--backend", "docker", "--image", broken, "--port", &port],
    ));
    assert_eq!(output.status.code(), Some(1));
    let err = support::stderr(&output);
    assert!(err.contains("configuration error: open /missing.yml"), "{err}");
    assert!(err.contains("cargo xtask registry logs"), "{err}");
    // Left stopped, not restarting forever.
    let (code, status) = status_json(root);
    assert_eq!((code, status["state"].as_str()), (1, Some("stopped")), "{status}");
}

#[test]
fn registry_test_guard_starts_a_native_registry_and_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("planning/.registry/native/data");
    let port = {
        let registry = reg::TestRegistry::start_native(dir.path());
        assert_eq!(registry.url(), format!("localhost:{}", registry.port));
        assert!(reg::answers(registry.port) && data.is_dir());
        registry.port
    };
    assert!(!reg::answers(port), "dropping the guard stops the server");
    assert!(!data.exists(), "and removes its data");
    assert!(native_servers(dir.path()).is_empty());
}

#[test]
fn registry_test_guard_starts_a_docker_registry_and_removes_it() {
    if !support::docker_available("registry_test_guard_starts_a_docker_registry_and_removes_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (port, container, volume) = {
        let registry = reg::TestRegistry::start_docker(dir.path());
        assert!(reg::answers(registry.port));
        let status = docker_status(dir.path());
        assert_eq!(status["backend"], "docker");
        let name = |key: &str| status[key].as_str().unwrap().to_string();
        (registry.port, name("container"), name("volume"))
    };
    assert!(!reg::answers(port));
    assert!(!container_exists(&container) && !volume_exists(&volume));
}

#[test]
fn registry_native_stop_finds_a_server_whose_state_files_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let _cleanup = Cleanup::new(root);
    let port = support::free_port();
    assert!(start_native(root, port).status.success());
    assert_eq!(native_servers(root).len(), 1);
    // Someone deletes planning/ (and with it the pid file and the config) while it serves.
    std::fs::remove_dir_all(root.join("planning")).unwrap();
    assert!(reg::answers(port), "the server outlives its files");
    let stopped = support::run(&mut registry(root, &["stop"]));
    assert!(stopped.status.success(), "{}", support::stderr(&stopped));
    assert!(!reg::answers(port), "registry stop found it without its state files");
    assert!(native_servers(root).is_empty());
}
