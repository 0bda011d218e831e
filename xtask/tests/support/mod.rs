//! Shared by the integration tests: run the built xtask binary inside a fixture checkout, with
//! stand-in tools on PATH and a real registry on loopback.
#![allow(dead_code)]

pub mod json_schema;
pub mod kit_repo;
pub mod published;
pub mod registry;
pub mod sshd;
pub mod tls_registry;
pub mod variant_repo;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// SHA-256 of `bytes` by coreutils' `sha256sum`: an implementation independent of the xtask's
/// (and not a dev-dependency, which every `cargo xtask` call would resolve).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "sha256sum failed");
    let hex = String::from_utf8(output.stdout).unwrap();
    let hex = hex.split_whitespace().next().unwrap();
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// `sha256` in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The xtask binary under test.
pub fn xtask_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
}

/// This repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The directory of stand-in tools (twoliter, cargo-make, smolvm) kept under the tests.
pub fn standins_dir() -> PathBuf {
    repo_root().join("xtask/tests/standins")
}

/// A command running the xtask as if it lived in `root` (`XTASK_ROOT`), with `extra_path`
/// directories put before the inherited PATH.
pub fn xtask(root: &Path, extra_path: &[&Path]) -> Command {
    let mut cmd = Command::new(xtask_bin());
    cmd.env("XTASK_ROOT", root);
    let mut paths: Vec<PathBuf> = extra_path.iter().map(|p| p.to_path_buf()).collect();
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    cmd.env("PATH", std::env::join_paths(paths).unwrap());
    cmd.current_dir(root);
    cmd
}

/// Runs a command and returns its output, printing both streams for a failing test's log.
pub fn run(cmd: &mut Command) -> Output {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    eprintln!("$ {cmd:?}\n--- status: {}", output.status);
    eprintln!("--- stdout:\n{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("--- stderr:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let output = run(cmd);
    assert!(output.status.success(), "command failed: {cmd:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// A `next-step` answer read from its stdout, which must be exactly one JSON object that the
/// shipped schema (`phases/next-step.schema.json`) accepts.
pub fn answer(stdout: &str) -> serde_json::Value {
    let mut lines = stdout.lines();
    let value: serde_json::Value =
        serde_json::from_str(lines.next().expect("one line on stdout")).expect("stdout is JSON");
    assert!(lines.next().is_none(), "stdout is exactly one JSON object:\n{stdout}");
    let path = repo_root().join("phases/next-step.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let faults = json_schema::faults(&schema, &value);
    assert!(
        faults.is_empty(),
        "the answer does not match the schema: {faults:?}\n{value}"
    );
    value
}

/// The xtask arguments of a command the xtask hands out (`phase_command`, `resume_command`,
/// `restore_command`): `cargo run --quiet --manifest-path <this crate> -- <args>`, runnable
/// from any directory. Returns `<args>`, to run with the binary under test.
pub fn xtask_args(argv: &serde_json::Value) -> Vec<String> {
    let argv: Vec<String> = serde_json::from_value(argv.clone()).expect("an argv array");
    let manifest = repo_root().join("xtask/Cargo.toml").display().to_string();
    assert_eq!(
        argv[..6],
        ["cargo", "run", "--quiet", "--manifest-path", &manifest, "--"],
        "{argv:?}"
    );
    argv[6..].to_vec()
}

/// What each phase of a `build-kit --json` / `variant --json` summary did: `ran`, `skipped`, `failed`.
pub fn phase_outcomes(summary: &serde_json::Value) -> Vec<String> {
    let phases = summary["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no phases in {summary}"));
    phases
        .iter()
        .map(|p| p["outcome"].as_str().unwrap().to_string())
        .collect()
}

/// stderr of an output, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `git` in `dir`, which must succeed; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir),
    )
}

/// Every file under `dir` (relative path → bytes), skipping `.git`, for byte-identity checks.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                walk(base, &path, out);
            } else if kind.is_file() {
                out.insert(
                    path.strip_prefix(base).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Whether tests that need Docker can run; in CI (`CI=true`) a missing daemon is a failure,
/// elsewhere the test prints why it skips.
pub fn docker_available(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: no Docker daemon answers, and CI=true requires one");
        }
        eprintln!("SKIP {test}: no Docker daemon answers (`docker info` failed)");
    }
    ok
}

/// A toolchain name no rustup has: if it reached a rustup proxy, cargo would fail to start.
pub const SIMULATED_TOOLCHAIN: &str = "xtask-simulated-toolchain";
/// A library directory of the user's own, which must reach the tools.
pub const USER_LIB: &str = "/opt/xtask-user/lib";
const SIMULATED_CARGO: &str = "/simulated/toolchain/bin/cargo";

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
}

/// The environment `cargo xtask` runs in, as cargo and rustup make it (measured with `cargo run`
/// under rustup 1.29): cargo's variables for the program it runs, rustup's toolchain choice and
/// recursion count, and `LD_LIBRARY_PATH` with the target dir and the toolchain's libraries in
/// front of the user's own. `CARGO_HOME` and `RUSTUP_HOME` are this machine's real ones (the
/// tools need them), and `XTASK_USER_VAR` stands for anything the user set.
pub fn cargo_run_env(manifest_dir: &Path) -> Vec<(String, OsString)> {
    let target = xtask_bin().parent().unwrap().to_path_buf();
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".rustup"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cargo"));
    let toolchain_lib = rustup_home.join("toolchains").join(SIMULATED_TOOLCHAIN).join("lib");
    let library_path = std::env::join_paths([
        target.clone(),
        target.join("deps"),
        PathBuf::from(USER_LIB),
        toolchain_lib,
    ])
    .unwrap();
    let pairs: Vec<(&str, OsString)> = vec![
        ("CARGO", SIMULATED_CARGO.into()),
        ("CARGO_HOME", cargo_home.into()),
        ("CARGO_MANIFEST_DIR", manifest_dir.into()),
        ("CARGO_MANIFEST_PATH", manifest_dir.join("Cargo.toml").into()),
        ("CARGO_PKG_NAME", "xtask".into()),
        ("CARGO_PKG_VERSION", "0.1.0".into()),
        ("CARGO_PKG_AUTHORS", "".into()),
        ("CARGO_PRIMARY_PACKAGE", "1".into()),
        ("CARGO_BIN_NAME", "xtask".into()),
        ("CARGO_CRATE_NAME", "xtask".into()),
        ("LD_LIBRARY_PATH", library_path),
        ("RUSTUP_HOME", rustup_home.into()),
        ("RUSTUP_TOOLCHAIN", SIMULATED_TOOLCHAIN.into()),
        // As `cargo +<toolchain> xtask` sets it: a value no rustup proxy sets on its own.
        ("RUSTUP_TOOLCHAIN_SOURCE", "cli".into()),
        ("RUST_RECURSION_COUNT", "7".into()),
        ("XTASK_USER_VAR", "kept".into()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The runs a stand-in recorded in its environment log: (argv, environment).
pub fn recorded_envs(log: &Path) -> Vec<(Vec<String>, BTreeMap<String, String>)> {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    text.lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                serde_json::from_value(record["argv"].clone()).unwrap(),
                serde_json::from_value(record["env"].clone()).unwrap(),
            )
        })
        .collect()
}

/// Fails unless a tool run under [`cargo_run_env`] got none of what cargo and rustup injected
/// there, and everything the user set. A rustup proxy between the xtask and the tool (`cargo
/// make`) sets its own toolchain, its source, the recursion count and `CARGO` again: those may be
/// present, but never with the simulated values.
pub fn assert_user_env(argv: &[String], env: &BTreeMap<String, String>) {
    let context = format!("{argv:?} ran with {env:#?}");
    for key in [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_BIN_NAME",
        "CARGO_CRATE_NAME",
    ] {
        assert!(!env.contains_key(key), "{key} leaked: {context}");
    }
    assert!(
        !env.keys().any(|k| k.starts_with("CARGO_PKG_")),
        "CARGO_PKG_* leaked: {context}"
    );
    assert_ne!(env.get("CARGO").map(String::as_str), Some(SIMULATED_CARGO), "{context}");
    assert_ne!(
        env.get("RUSTUP_TOOLCHAIN").map(String::as_str),
        Some(SIMULATED_TOOLCHAIN),
        "{context}"
    );
    assert_ne!(
        env.get("RUSTUP_TOOLCHAIN_SOURCE").map(String::as_str),
        Some("cli"),
        "{context}"
    );
    let recursion = env.get("RUST_RECURSION_COUNT").map(String::as_str);
    assert!(
        matches!(recursion, None | Some("1")),
        "RUST_RECURSION_COUNT leaked: {context}"
    );
    let library_path: Vec<PathBuf> = env
        .get("LD_LIBRARY_PATH")
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    let target = xtask_bin().parent().unwrap().to_path_buf();
    assert!(
        library_path.contains(&PathBuf::from(USER_LIB)),
        "the user's library dir is lost: {context}"
    );
    assert!(
        !library_path
            .iter()
            .any(|p| p.starts_with(&target) || p.to_string_lossy().contains(SIMULATED_TOOLCHAIN)),
        "LD_LIBRARY_PATH keeps injected entries: {context}"
    );
    assert_eq!(env.get("XTASK_USER_VAR").map(String::as_str), Some("kept"), "{context}");
    assert!(env.contains_key("RUSTUP_HOME"), "{context}");
}
