//! Building on another machine over ssh (`--on`), against a real sshd on 127.0.0.1, and
//! refusing a Docker engine that is not local. The builder is this machine: its sessions find
//! `cargo xtask` (a `cargo` whose `xtask` runs the binary under test) and the twoliter stand-in
//! through the server's `SetEnv`; everything else goes through ssh for real.

mod support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::kit_repo::KitRepo;
use support::published::{Forest, VARIANT};
use support::registry::TestRegistry;
use support::sshd::Sshd;

const KIT: &str = "core-kit";
const VERSION: &str = "2.3.4";

/// A builder: sshd whose sessions run `cargo xtask` as the binary under test, and a directory
/// for its checkouts.
struct Builder {
    sshd: Sshd,
    _bin: tempfile::TempDir,
}

impl Builder {
    fn start() -> Builder {
        Builder::start_with(&[])
    }

    /// With more directories (stand-ins) on the builder's PATH.
    fn start_with(extra_path: &[&Path]) -> Builder {
        let bin = tempfile::Builder::new().prefix("builder-bin-").tempdir().unwrap();
        let real_cargo = which("cargo");
        let wrapper = bin.path().join("cargo");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n# `cargo xtask` of an adopted repo, on the builder\nif [ \"$1\" = xtask ]; then shift; exec {} \"$@\"; fi\nexec {} \"$@\"\n",
                support::xtask_bin().display(),
                real_cargo.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths(
            std::iter::once(bin.path().to_path_buf())
                .chain(extra_path.iter().map(|p| p.to_path_buf()))
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        // A home of its own, so that the login shell's rc files (which put the real cargo first)
        // are not this user's; rustup and cargo keep theirs.
        let home = bin.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let user_home = PathBuf::from(std::env::var_os("HOME").unwrap());
        let var_or = |name: &str, default: PathBuf| std::env::var_os(name).unwrap_or(default.into_os_string());
        let mut env: Vec<(String, OsString)> = vec![
            ("PATH".into(), path),
            ("HOME".into(), home.into_os_string()),
            ("RUSTUP_HOME".into(), var_or("RUSTUP_HOME", user_home.join(".rustup"))),
            ("CARGO_HOME".into(), var_or("CARGO_HOME", user_home.join(".cargo"))),
        ];
        env.extend(support::kit_repo::standin_env());
        Builder {
            sshd: Sshd::start(&env),
            _bin: bin,
        }
    }

    fn remote_dir(&self) -> PathBuf {
        self.sshd.dir.path().join("remote")
    }

    /// The home of the builder's sessions.
    fn home(&self) -> PathBuf {
        self._bin.path().join("home")
    }

    /// The xtask acting for `root`, reaching the builder through the test's ssh config.
    fn xtask(&self, root: &Path) -> Command {
        let mut cmd = support::xtask(root, &[]);
        cmd.env("XTASK_SSH_CONFIG", self.sshd.client_config())
            .env("XTASK_REMOTE_DIR", self.remote_dir())
            .env_remove("TWOLITER_STANDIN")
            .env_remove("TWOLITER_STANDIN_FAIL");
        cmd
    }
}

/// `build-kit --on builder --arch x86_64 --registry <the test registry>` for `repo`.
fn build_kit_on(builder: &Builder, repo: &KitRepo, registry: &TestRegistry) -> Command {
    let mut cmd = builder.xtask(repo.path());
    cmd.args([
        "build-kit",
        "--on",
        "builder",
        "--arch",
        "x86_64",
        "--registry",
        &registry.url(),
    ]);
    cmd
}

fn which(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is not on PATH"))
}

fn did(summary: &Value) -> Vec<String> {
    support::phase_outcomes(summary)
}

fn json(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let value = serde_json::from_str(lines.next().expect("a JSON line")).expect("JSON on stdout");
    assert!(lines.next().is_none(), "one JSON object on stdout:\n{stdout}");
    value
}

/// The builder's copy of the one checkout sent.
fn remote_checkout(builder: &Builder) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(builder.remote_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one directory per checkout: {dirs:?}");
    dirs[0].join("root")
}

#[test]
fn build_kit_on_a_builder_publishes_there_and_brings_the_workspace_back() {
    if !support::sshd::available("build_kit_on_a_builder_publishes_there_and_brings_the_workspace_back") {
        return;
    }
    let builder = Builder::start();
    let repo = KitRepo::create(KIT, VERSION);
    let registry = TestRegistry::start_native(repo.path());
    let run = |extra: &[&str]| support::run(build_kit_on(&builder, &repo, &registry).arg("--json").args(extra));

    let first = run(&[]);
    assert!(first.status.success(), "{}", support::stderr(&first));
    let summary = json(&first);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(did(&summary), ["ran", "ran", "ran", "ran"]);
    let ws = repo.path().join(format!("planning/build-kit-{KIT}-x86_64"));
    assert_eq!(summary["workspace"], ws.display().to_string(), "the local workspace");
    // Built and published there: the registry holds the kit, the builder's copy has the
    // archive and the twoliter its `make prep` installed; nothing was built here.
    let index = minreq::get(format!(
        "http://127.0.0.1:{}/v2/{KIT}/manifests/v{VERSION}",
        registry.port
    ))
    .with_header("Accept", "application/vnd.oci.image.index.v1+json")
    .send()
    .unwrap();
    assert_eq!(index.status_code, 200);
    let remote = remote_checkout(&builder);
    assert!(remote.join("tools/twoliter/twoliter").is_file());
    assert!(remote.join("build/kits").join(KIT).is_dir());
    assert!(!repo.path().join("build").exists() && !repo.path().join("tools/twoliter").exists());
    // The workspace came back whole: results, reports, logs, and where it was built.
    for file in [
        "input.json",
        "progress.json",
        "results/verify.json",
        "reports/04-verify.md",
        "logs/build.log",
    ] {
        assert!(ws.join(file).is_file(), "{file} was not brought back");
    }
    let record: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("remote.json")).unwrap()).unwrap();
    assert_eq!(record["host"], "builder");
    let stderr = support::stderr(&first);
    assert!(
        stderr.contains("twoliter build kit"),
        "the build's output is streamed:\n{stderr}"
    );
    assert!(
        repo.is_clean(),
        "{}",
        support::git(repo.path(), &["status", "--porcelain"])
    );
    // `status` reads the brought-back workspace.
    let status = support::run_ok(builder.xtask(repo.path()).args(["status", "--json"]).arg(&ws));
    assert!(status.contains("\"verify\""), "{status}");
    assert!(status.contains("\"built_on\": \"builder ("), "{status}");

    // Again: the builder's copy is reused (nothing to send, everything skipped).
    let sessions = builder.sshd.sessions();
    let second = run(&[]);
    assert!(second.status.success());
    assert_eq!(did(&json(&second)), ["skipped", "skipped", "skipped", "skipped"]);
    assert!(
        support::stderr(&second).contains("(1 reused there)"),
        "{}",
        support::stderr(&second)
    );
    assert_eq!(
        builder.sshd.sessions() - sessions,
        3,
        "probe, run, bring back: three ssh sessions"
    );

    // Uncommitted edits and untracked files go along, so the builder builds what is here.
    repo.touch_package("hello-config");
    std::fs::write(repo.path().join("packages/notes.txt"), "untracked\n").unwrap();
    let third = run(&[]);
    assert!(third.status.success());
    assert_eq!(did(&json(&third)), ["skipped", "ran", "ran", "ran"]);
    assert_eq!(
        std::fs::read(remote.join("packages/hello-config/hello-config.spec")).unwrap(),
        std::fs::read(repo.path().join("packages/hello-config/hello-config.spec")).unwrap()
    );
    assert!(remote.join("packages/notes.txt").is_file());
    let id = repo.build_id();
    assert!(id.ends_with("-dirty"));
    assert!(
        remote
            .join(format!("build/kits/{KIT}/{KIT}-v{VERSION}-{id}-x86_64.tar"))
            .is_file(),
        "the builder's build id is this checkout's, {id}"
    );

    // A new commit goes as a bundle of what the builder's copy lacks.
    repo.edit_package("hello-config");
    let fourth = run(&[]);
    assert!(fourth.status.success(), "{}", support::stderr(&fourth));
    assert_eq!(
        support::git(&remote, &["rev-parse", "HEAD"]),
        support::git(repo.path(), &["rev-parse", "HEAD"])
    );

    // A failing build: the builder's exit status, and its logs brought back.
    repo.touch_package("hello-agent");
    let failed = support::run(build_kit_on(&builder, &repo, &registry).env("TWOLITER_STANDIN_FAIL", "build"));
    assert_eq!(failed.status.code(), Some(1));
    assert!(failed.stdout.is_empty(), "without --json nothing on stdout");
    let log = std::fs::read_to_string(ws.join("logs/build.log")).unwrap();
    assert!(log.contains("TWOLITER_STANDIN_FAIL"), "{log}");
    let progress = std::fs::read_to_string(ws.join("progress.json")).unwrap();
    assert!(progress.contains("failed"), "{progress}");
}

#[test]
fn a_forest_builds_its_kit_and_variant_on_a_builder() {
    if !support::sshd::available("a_forest_builds_its_kit_and_variant_on_a_builder") {
        return;
    }
    let forest = Forest::published();
    let builder = Builder::start_with(&[forest.variant.bin_dir()]);
    let on = |args: &[&str]| {
        let mut cmd = forest.xtask();
        cmd.env("XTASK_SSH_CONFIG", builder.sshd.client_config())
            .env("XTASK_REMOTE_DIR", builder.remote_dir())
            .args(args)
            .args([
                "--on",
                "builder",
                "--arch",
                "x86_64",
                "--registry",
                &forest.registry.url(),
                "--json",
            ]);
        support::run(&mut cmd)
    };
    let before = forest.files();
    let kit = on(&["build-kit", "--kit", KIT]);
    assert!(kit.status.success(), "{}", support::stderr(&kit));
    let variant = on(&["variant", "--kit", KIT]);
    assert!(variant.status.success(), "{}", support::stderr(&variant));
    let summary = json(&variant);
    assert_eq!(did(&summary), ["ran", "ran", "ran", "ran"], "{summary}");
    assert_eq!(summary["restored"], true);
    // The workspace is the xtask checkout's, here; the images stay on the builder.
    let ws = forest.root.join(format!("planning/variant-{VARIANT}-x86_64"));
    assert_eq!(summary["workspace"], ws.display().to_string());
    let final_md = std::fs::read_to_string(ws.join("reports/FINAL.md")).unwrap();
    assert!(final_md.contains(".img.lz4"), "{final_md}");
    let dirs: Vec<PathBuf> = std::fs::read_dir(builder.remote_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one directory for the forest: {dirs:?}");
    assert!(dirs[0].join("forest/bottlerocket/build/images").is_dir());
    assert!(dirs[0].join("forest/kits").join(KIT).join("Twoliter.toml").is_file());
    assert!(
        !dirs[0].join("root/.git").exists(),
        "the xtask checkout is a plain directory"
    );
    // Nothing changed in the variant repo here.
    assert_eq!(forest.files(), before);

    // --keep-config leaves the builder's variant repo pointed at the kits; `restore` of the
    // workspace brought back puts the builder's files back, over ssh, and nothing here changes.
    let on_builder = dirs[0].join("forest/bottlerocket");
    let builder_files = || {
        support::snapshot(&on_builder)
            .into_iter()
            .filter(|(p, _)| !p.starts_with("build"))
            .collect::<Vec<_>>()
    };
    let pristine = builder_files();
    let kept = on(&["variant", "--kit", KIT, "--keep-config"]);
    assert!(kept.status.success(), "{}", support::stderr(&kept));
    assert_eq!(json(&kept)["workspace"], ws.display().to_string());
    assert_ne!(builder_files(), pristine, "the edits stay on the builder");
    // Working here in that workspace first needs them put back there.
    let (ok, refused) = forest.variant_json(&["--kit", KIT, "--workspace", ws.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        refused["error"].as_str().unwrap().contains("built on builder"),
        "{refused}"
    );
    assert!(ws.join("remote.json").is_file());
    let restore = |ws: &Path| {
        support::run(
            forest
                .xtask()
                .env("XTASK_SSH_CONFIG", builder.sshd.client_config())
                .arg("restore")
                .arg(ws),
        )
    };
    let restored = restore(&ws);
    assert!(restored.status.success(), "{}", support::stderr(&restored));
    assert!(
        support::stderr(&restored).contains("restoring on builder"),
        "{}",
        support::stderr(&restored)
    );
    assert_eq!(builder_files(), pristine, "the builder's files are back");
    assert_eq!(forest.files(), before);
    // A workspace run here afterwards is this machine's again: no longer the builder's.
    let status = support::run_ok(forest.xtask().args(["status", "--json"]).arg(&ws));
    assert!(status.contains("\"built_on\": \"builder ("), "{status}");
    let (ok, local) = forest.variant_json(&["--kit", KIT, "--workspace", ws.to_str().unwrap()]);
    assert!(ok, "{local}");
    assert!(!ws.join("remote.json").exists());
    let status: Value =
        serde_json::from_str(&support::run_ok(forest.xtask().args(["status", "--json"]).arg(&ws))).unwrap();
    assert!(status[0]["built_on"].is_null(), "{status}");
}

/// Ctrl-C (or a kill) here while the builder builds: the run there is stopped too, as a local
/// run would be (its tool stopped, the phase recorded as interrupted), not left building for
/// nobody; here the command exits 130.
/// A team registry's CA given with `--on` is checked here, sent along and trusted there: the
/// builder publishes to the TLS registry with its own docker login.
#[test]
fn a_team_ca_given_with_on_is_trusted_on_the_builder() {
    if !support::sshd::available("a_team_ca_given_with_on_is_trusted_on_the_builder") {
        return;
    }
    let builder = Builder::start();
    let registry = support::tls_registry::TlsRegistry::start();
    let docker = builder.home().join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::copy(registry.good_config().join("config.json"), docker.join("config.json")).unwrap();
    let repo = KitRepo::create(KIT, VERSION);
    let address = registry.address();
    let on = |ca: &Path| {
        let mut cmd = builder.xtask(repo.path());
        cmd.args(["build-kit", "--on", "builder", "--arch", "x86_64", "--json"])
            .args(["--registry", &address, "--ca-file"])
            .arg(ca);
        cmd
    };

    // Not a CA: refused here, before any ssh session.
    let not_pem = repo.path().join("planning/not-a-ca.pem");
    std::fs::create_dir_all(not_pem.parent().unwrap()).unwrap();
    std::fs::write(&not_pem, "hello\n").unwrap();
    let sessions = builder.sshd.sessions();
    let refused = support::run(&mut on(&not_pem));
    assert_eq!(refused.status.code(), Some(1));
    let err = support::stderr(&refused);
    assert!(err.contains("--ca-file") && err.contains("no PEM certificate"), "{err}");
    assert_eq!(builder.sshd.sessions(), sessions);

    let out = support::run(&mut on(&registry.ca()));
    assert!(out.status.success(), "{}", support::stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["verified"]["registry"], address.as_str(), "{summary}");
    assert!(registry.log().contains(&format!("/v2/team/{KIT}/manifests/v{VERSION}")));
    // Remembered in the builder's checkout, as `--ca-file` remembers it here.
    let trust = remote_checkout(&builder).join("planning/.registry/trust");
    let ca = std::fs::read_to_string(registry.ca()).unwrap();
    let remembered: Vec<String> = std::fs::read_dir(&trust)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".ca.pem"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(remembered, [ca], "{}", trust.display());
}

#[test]
fn interrupting_a_run_stops_it_on_the_builder() {
    if !support::sshd::available("interrupting_a_run_stops_it_on_the_builder") {
        return;
    }
    use std::io::BufRead;
    let builder = Builder::start();
    let repo = KitRepo::create(KIT, VERSION);
    let registry = TestRegistry::start_native(repo.path());
    let mut child = build_kit_on(&builder, &repo, &registry)
        .env("TWOLITER_STANDIN_BUILD_SECONDS", "300")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, said) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !seen.contains("twoliter build kit") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match said.recv_timeout(left) {
            Ok(line) => seen.push_str(&(line + "\n")),
            Err(_) => panic!("the build never started on the builder:\n{seen}"),
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    support::run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let status = child.wait().unwrap();
    seen.extend(said.try_iter().map(|l| l + "\n"));
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("stopped there too"), "{seen}");
    // On the builder: the build was stopped and recorded so, long before its 300 s were up.
    let progress = remote_checkout(&builder).join(format!("planning/build-kit-{KIT}-x86_64/progress.json"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&progress).unwrap_or_default();
        if text.contains("SIGTERM") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run on the builder was not stopped:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn an_unreachable_builder_and_a_refused_key_are_named() {
    if !support::sshd::available("an_unreachable_builder_and_a_refused_key_are_named") {
        return;
    }
    let builder = Builder::start();
    let repo = KitRepo::create(KIT, VERSION);
    let before = support::snapshot(repo.path());
    for (host, expected) in [("nowhere", "unreachable"), ("stranger", "ssh-copy-id stranger")] {
        let output = support::run(builder.xtask(repo.path()).args(["build-kit", "--on", host, "--json"]));
        assert_eq!(output.status.code(), Some(1), "{host}");
        let stderr = support::stderr(&output);
        assert!(stderr.contains(expected), "{host}: {stderr}");
        assert_eq!(json(&output)["ok"], false, "--json still prints one summary");
    }
    // A repo the command needs that is no git checkout cannot be sent.
    let plain = tempfile::tempdir().unwrap();
    let output = support::run(
        builder
            .xtask(repo.path())
            .args(["build-kit", "--on", "builder", "--kit-dir"])
            .arg(plain.path()),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = support::stderr(&output);
    assert!(
        stderr.contains("is not in a git checkout") && stderr.contains("without --on"),
        "{stderr}"
    );
    assert_eq!(support::snapshot(repo.path()), before, "nothing changed here");
    assert!(!builder.remote_dir().exists(), "nothing was sent");
}

#[test]
fn on_and_in_vm_exclude_each_other() {
    let repo = KitRepo::create(KIT, VERSION);
    for cmd in ["build-kit", "variant"] {
        let output = support::run(support::xtask(repo.path(), &[]).args([cmd, "--on", "b", "--in-vm"]));
        assert_eq!(output.status.code(), Some(2));
        let stderr = support::stderr(&output);
        assert!(stderr.contains("cannot be used with"), "{stderr}");
    }
}

#[test]
fn a_remote_docker_engine_is_refused_before_anything_changes() {
    let repo = KitRepo::create(KIT, VERSION);
    let before = support::snapshot(repo.path());
    let home = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
        ("DOCKER_HOST", "ssh://me@builder"),
    ] {
        let output = support::run(support::xtask(repo.path(), &[]).envs(repo.env()).env(var, value).args([
            "build-kit",
            "--arch",
            "x86_64",
            "--json",
        ]));
        assert_eq!(output.status.code(), Some(1));
        let stderr = support::stderr(&output);
        for part in [value, "--network host", "--on <ssh-host>", "unset DOCKER_HOST"] {
            assert!(stderr.contains(part), "{part} missing: {stderr}");
        }
        assert_eq!(json(&output)["ok"], false);
    }
    // A docker context over ssh, as `docker context use` leaves it.
    let config = home.path().join(".docker");
    let id = support::sha256_hex(b"far");
    std::fs::create_dir_all(config.join("contexts/meta").join(&id)).unwrap();
    std::fs::write(
        config.join("contexts/meta").join(&id).join("meta.json"),
        r#"{"Name":"far","Endpoints":{"docker":{"Host":"ssh://me@far"}}}"#,
    )
    .unwrap();
    std::fs::write(config.join("config.json"), r#"{"currentContext":"far"}"#).unwrap();
    let output = support::run(
        support::xtask(repo.path(), &[])
            .envs(repo.env())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", &config)
            .args(["variant", "--kit", "core-kit"]),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = support::stderr(&output);
    assert!(
        stderr.contains("docker context `far`") && stderr.contains("docker context use default"),
        "{stderr}"
    );
    assert_eq!(support::snapshot(repo.path()), before, "nothing changed in the repo");
}
