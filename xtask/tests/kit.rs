//! The kit workflow end to end: a fixture kit repo holding the xtask, the twoliter stand-in,
//! and a real registry on loopback.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::Value;
use support::kit_repo::KitRepo;
use support::registry::TestRegistry;

const KIT: &str = "core-kit";
const VERSION: &str = "2.3.4";

/// A prepped kit repo (twoliter installed) with its own registry.
fn setup() -> (KitRepo, TestRegistry) {
    let repo = KitRepo::create(KIT, VERSION);
    repo.prep();
    let registry = TestRegistry::start_native(repo.path());
    (repo, registry)
}

fn xtask(repo: &KitRepo) -> Command {
    let mut cmd = support::xtask(repo.path(), &[]);
    cmd.envs(repo.env());
    cmd
}

fn build_kit_json(repo: &KitRepo, extra: &[&str]) -> Value {
    let out = support::run_ok(
        xtask(repo)
            .args(["build-kit", "--arch", "x86_64", "--json"])
            .args(extra),
    );
    serde_json::from_str(&out).expect("--json prints one JSON object")
}

fn get(port: u16, path: &str) -> minreq::Response {
    minreq::get(format!("http://127.0.0.1:{port}{path}"))
        .with_header(
            "Accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        )
        .with_timeout(10)
        .send()
        .unwrap()
}

/// The lock digest computed here, independently of the xtask: base64(sha256(canonical JSON)).
fn lock_digest_of(bytes: &[u8]) -> String {
    let value: Value = serde_json::from_slice(bytes).unwrap();
    let canonical = serde_json::to_vec(&value).unwrap(); // serde_json sorts keys (no preserve_order) and adds no whitespace
    base64::engine::general_purpose::STANDARD.encode(support::sha256(&canonical))
}

fn outcomes(summary: &Value) -> Vec<(String, String)> {
    summary["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["phase"].as_str().unwrap().to_string(),
                p["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn build_kit_publishes_verifies_and_keeps_git_clean() {
    let (repo, registry) = setup();
    let summary = build_kit_json(&repo, &[]);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(
        outcomes(&summary),
        pairs(&[
            ("setup", "ran"),
            ("build", "ran"),
            ("publish", "ran"),
            ("verify", "ran")
        ])
    );
    // The registry really holds the index, and the recorded lock digest is the one computed
    // from what it serves.
    let index = get(registry.port, &format!("/v2/{KIT}/manifests/v{VERSION}"));
    assert_eq!(index.status_code, 200);
    let verified = &summary["verified"];
    assert_eq!(verified["lock_digest"], lock_digest_of(index.as_bytes()));
    assert_eq!(
        verified["index_digest"],
        index.headers["docker-content-digest"].as_str()
    );
    assert_eq!(verified["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(
        summary["next"],
        serde_json::json!([
            "cargo",
            "xtask",
            "variant",
            "--kit",
            format!("{KIT}@{VERSION}"),
            "--arch",
            "x86_64"
        ])
    );
    // Infra.toml points at the registry; nothing the xtask wrote dirties the kit repo.
    let infra = std::fs::read_to_string(repo.path().join("Infra.toml")).unwrap();
    assert!(
        infra.contains("[vendor.local]") && infra.contains(&format!("registry = \"{}\"", registry.url())),
        "{infra}"
    );
    assert!(
        repo.is_clean(),
        "git status: {}",
        support::git(repo.path(), &["status", "--porcelain"])
    );
    let ws = repo.path().join(format!("planning/build-kit-{KIT}-x86_64"));
    let report = std::fs::read_to_string(ws.join("reports/04-verify.md")).unwrap();
    assert!(
        report
            .trim_end()
            .ends_with(&format!("cargo xtask variant --kit {KIT}@{VERSION} --arch x86_64")),
        "{report}"
    );
    let progress: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("progress.json")).unwrap()).unwrap();
    assert_eq!(progress["schema_version"], 2);
    assert!(progress["phases"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["state"] == "passed"));

    // Nothing changed: nothing is rebuilt or republished.
    let again = build_kit_json(&repo, &[]);
    assert_eq!(
        outcomes(&again),
        pairs(&[
            ("setup", "skipped"),
            ("build", "skipped"),
            ("publish", "skipped"),
            ("verify", "skipped")
        ])
    );
    // A committed package edit changes the build: rebuilt, republished, verified again.
    repo.edit_package("hello-agent");
    let edited = build_kit_json(&repo, &[]);
    assert_eq!(
        outcomes(&edited),
        pairs(&[
            ("setup", "skipped"),
            ("build", "ran"),
            ("publish", "ran"),
            ("verify", "ran")
        ])
    );
    assert_ne!(edited["verified"]["index_digest"], verified["index_digest"]);
    // --force runs every phase again. twoliter has nothing to rebuild, so it leaves the archive
    // as it is, and the build still passes.
    let archive = repo.archive("x86_64");
    let (bytes, modified) = (std::fs::read(&archive).unwrap(), mtime(&archive));
    let forced = build_kit_json(&repo, &["--force"]);
    assert!(outcomes(&forced).iter().all(|(_, o)| o == "ran"), "{forced}");
    assert_eq!((std::fs::read(&archive).unwrap(), mtime(&archive)), (bytes, modified));
    let log = std::fs::read_to_string(ws.join("logs/build.log")).unwrap();
    let last_run = log.rsplit("phase started: BUILD").next().unwrap();
    assert!(last_run.contains("is up to date: nothing was built"), "{log}");
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn an_archive_that_is_not_the_one_built_is_built_again() {
    let (repo, _registry) = setup();
    assert_eq!(did(&build_kit_json(&repo, &[])), ["ran", "ran", "ran", "ran"]);
    let archive = repo.archive("x86_64");
    let built = std::fs::read(&archive).unwrap();
    // Something else rewrote it: the same image plus trailing bytes.
    let mut changed = built.clone();
    changed.extend_from_slice(&[0u8; 1024]);
    std::fs::write(&archive, &changed).unwrap();
    let summary = build_kit_json(&repo, &[]);
    assert_eq!(did(&summary), ["skipped", "ran", "ran", "ran"], "{summary}");
    // twoliter alone would have left it (nothing it watches changed): BUILD had it rebuilt.
    let log = std::fs::read_to_string(
        repo.path()
            .join(format!("planning/build-kit-{KIT}-x86_64/logs/build.log")),
    )
    .unwrap();
    assert_eq!(log.matches(&format!("Building kit '{KIT}'")).count(), 2, "{log}");
    assert_ne!(std::fs::read(&archive).unwrap(), changed);
    // And one that is gone is built again too.
    std::fs::remove_file(&archive).unwrap();
    assert_eq!(did(&build_kit_json(&repo, &[])), ["skipped", "ran", "ran", "ran"]);
    assert!(archive.is_file());
}

/// Writes `input.json` for a workspace outside the kit repo.
fn workspace(dir: &Path, repo: &KitRepo) -> PathBuf {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let input = serde_json::json!({"kit_name": KIT, "arch": "x86_64", "kit_dir": repo.path()});
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    ws
}

fn next_step(repo: &KitRepo, ws: &Path, extra: &[&str]) -> Value {
    let out = support::run_ok(xtask(repo).arg("next-step").arg(ws).args(extra));
    support::answer(&out)
}

/// Plays the sub-agent honestly: runs the phase command it was given.
fn run_phase_command(repo: &KitRepo, action: &Value) {
    let args = support::xtask_args(&action["context_data"]["phase_command"]);
    assert_eq!(args[..3], ["--root", repo.path().to_str().unwrap(), "phase"]);
    // `cargo run` of the xtask is this binary.
    support::run_ok(xtask(repo).args(&args));
}

#[test]
fn orchestrator_loop_is_done_after_exactly_four_spawns() {
    let (repo, _registry) = setup();
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), &repo);
    let mut spawns = Vec::new();
    let mut calls = 0;
    let done = loop {
        calls += 1;
        assert!(calls <= 10, "the loop does not end");
        let action = next_step(&repo, &ws, &[]);
        match action["action"].as_str().unwrap() {
            "spawn" => {
                let file = PathBuf::from(action["context_files"][0].as_str().unwrap());
                assert!(file.is_file(), "phase file {} exists", file.display());
                let phase = action["context_data"]["phase"].as_str().unwrap();
                assert!(
                    action["prompt"].as_str().unwrap().contains(&format!(" phase {phase} ")),
                    "{action}"
                );
                assert_eq!(action["context_data"]["attempt"], 1);
                spawns.push((
                    action["phase"].as_str().unwrap().to_string(),
                    action["output_file"].as_str().unwrap().to_string(),
                ));
                run_phase_command(&repo, &action);
                std::fs::write(ws.join(action["output_file"].as_str().unwrap()), "Done. It worked.").unwrap();
            }
            "done" => break action,
            other => panic!("unexpected {other}: {action}"),
        }
    };
    assert_eq!(
        spawns,
        pairs(&[
            ("SETUP", "answers/01-setup.md"),
            ("BUILD", "answers/02-build.md"),
            ("PUBLISH", "answers/03-publish.md"),
            ("VERIFY", "answers/04-verify.md")
        ])
    );
    assert_eq!(calls, 5);
    let summary = std::fs::read_to_string(done["summary_file"].as_str().unwrap()).unwrap();
    assert!(summary.contains("cargo xtask variant --kit"), "{summary}");
    // done is stable.
    assert_eq!(next_step(&repo, &ws, &[])["action"], "done");
}

#[test]
fn lying_subagent_advances_nothing_and_gate_fails_after_three_attempts() {
    let (repo, _registry) = setup();
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), &repo);
    let mut actions = Vec::new();
    for _ in 0..4 {
        let action = next_step(&repo, &ws, &["--phase-result", "success"]);
        if action["action"] == "spawn" {
            // Only the prose: "all good", no phase command run.
            std::fs::write(
                ws.join(action["output_file"].as_str().unwrap()),
                "SETUP complete. Registry running.",
            )
            .unwrap();
        }
        actions.push(action);
    }
    let phases: Vec<&str> = actions.iter().map(|a| a["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["SETUP", "SETUP", "SETUP", "SETUP"]);
    assert_eq!(actions[1]["context_data"]["attempt"], 2);
    assert!(
        actions[1]["context_data"]["last_failure"]
            .as_str()
            .unwrap()
            .contains("SETUP has no result"),
        "{}",
        actions[1]
    );
    let failed = &actions[3];
    assert_eq!(failed["action"], "gate_failed", "{failed}");
    let attempts = failed["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    for a in attempts {
        assert!(
            a["reason"]
                .as_str()
                .unwrap()
                .contains("reported success, but the gate failed"),
            "{a}"
        );
    }
    // Nothing happened for real.
    assert!(!repo.path().join("Infra.toml").exists());
    let progress: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("progress.json")).unwrap()).unwrap();
    assert_eq!(progress["phases"][1]["attempts"], 0);
}

#[test]
fn killed_during_build_resumes_and_finishes() {
    let (repo, _registry) = setup();
    let ws = repo.path().join(format!("planning/build-kit-{KIT}-x86_64"));
    let mut child = xtask(&repo)
        .args(["build-kit", "--arch", "x86_64"])
        .env("TWOLITER_STANDIN_BUILD_SECONDS", "30")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Wait (bounded) until BUILD has started, then kill -9 the whole process group.
    let started = std::time::Instant::now();
    loop {
        let progress = std::fs::read_to_string(ws.join("progress.json")).unwrap_or_default();
        if progress.contains("\"build\"") && ws.join("logs/build.log").is_file() {
            let value: Value = serde_json::from_str(&progress).unwrap();
            if value["phases"][1]["attempts"] == 1 {
                break;
            }
        }
        assert!(started.elapsed().as_secs() < 60, "BUILD never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pgid = child.id() as i32;
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -KILL -- -{pgid}");
    child.wait().unwrap();
    // The state left behind is valid JSON, and a rerun resumes: SETUP is not redone.
    let progress: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("progress.json")).unwrap()).unwrap();
    assert_eq!(progress["phases"][0]["state"], "passed");
    let summary = build_kit_json(&repo, &[]);
    assert_eq!(summary["ok"], true);
    assert_eq!(
        outcomes(&summary),
        pairs(&[
            ("setup", "skipped"),
            ("build", "ran"),
            ("publish", "ran"),
            ("verify", "ran")
        ])
    );
}

#[test]
fn concurrent_next_step_calls_serialize() {
    let (repo, _registry) = setup();
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), &repo);
    let children: Vec<_> = (0..4)
        .map(|_| {
            xtask(&repo)
                .arg("next-step")
                .arg(&ws)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let answers: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            let action: Value = support::answer(&String::from_utf8(out.stdout).unwrap());
            format!("{} {}", action["action"].as_str().unwrap(), action["attempt"])
        })
        .collect();
    // Each call saw the previous one's state, whatever order they ran in, and nobody ran the
    // phase command or wrote an answer: the same first spawn each time, no attempt spent.
    assert_eq!(answers, ["spawn 1", "spawn 1", "spawn 1", "spawn 1"]);
    let progress: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("progress.json")).unwrap()).unwrap();
    assert_eq!(progress["phases"][0]["attempts"], 1);
    assert!(progress["phases"][0]["failures"].as_array().unwrap().is_empty());
}

/// Runs `build-kit` expecting failure; returns stderr.
fn build_kit_fails(repo: &KitRepo, args: &[&str]) -> String {
    let output = support::run(xtask(repo).arg("build-kit").args(args));
    assert!(!output.status.success(), "build-kit {args:?} should fail");
    support::stderr(&output)
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let (repo, registry) = setup();
    let before = support::snapshot(repo.path());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--kit", "no-such-kit"], "unknown kit `no-such-kit`"),
        (vec!["--kit", "../core-kit"], "contains `.`"),
        (vec!["--kit", "a/b"], "contains `/`"),
        (vec!["--arch", "sparc"], "invalid value 'sparc'"),
    ];
    for (args, expected) in cases {
        let err = build_kit_fails(&repo, &args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    // Missing Twoliter.toml.
    let tmp = tempfile::tempdir().unwrap();
    let err = build_kit_fails(&repo, &["--kit-dir", tmp.path().to_str().unwrap()]);
    assert!(err.contains("no Twoliter.toml"), "{err}");
    // Infra.lock present: it would silently win over Infra.toml.
    std::fs::write(repo.path().join("Infra.lock"), "stale").unwrap();
    let err = build_kit_fails(&repo, &["--arch", "x86_64"]);
    assert!(err.contains("Infra.lock") && err.contains("move it away"), "{err}");
    assert!(!repo.path().join("Infra.toml").exists(), "Infra.toml untouched");
    std::fs::remove_file(repo.path().join("Infra.lock")).unwrap();
    drop(registry);
    let after: Vec<_> = support::snapshot(repo.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with("planning"))
        .collect();
    let before: Vec<_> = before.into_iter().filter(|(p, _)| !p.starts_with("planning")).collect();
    assert_eq!(after, before, "the kit repo's files are as they were");
}

#[test]
fn registry_port_taken_by_another_program_is_a_clear_error() {
    let repo = KitRepo::create(KIT, VERSION);
    repo.prep();
    let _cleanup = support::registry::Cleanup::new(repo.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let input = serde_json::json!({"kit_name": KIT, "arch": "x86_64", "kit_dir": repo.path(), "registry": format!("localhost:{port}")});
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    let output = support::run(xtask(&repo).args(["phase", "setup"]).arg(&ws));
    assert!(!output.status.success());
    let err = support::stderr(&output);
    assert!(err.contains(&port.to_string()), "{err}");
    assert!(!repo.path().join("Infra.toml").exists(), "nothing written");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("results/setup.json")).unwrap()).unwrap();
    assert_eq!(result["ok"], false);
    drop(listener);
}

/// What each phase of a `build-kit --json` run did.
fn did(summary: &Value) -> Vec<String> {
    support::phase_outcomes(summary)
}

#[test]
fn work_is_redone_exactly_when_its_inputs_change() {
    let (repo, registry) = setup();
    let first = build_kit_json(&repo, &[]);
    assert_eq!(did(&first), ["ran", "ran", "ran", "ran"]);
    // Unchanged: everything skipped, each with its reason.
    let same = build_kit_json(&repo, &[]);
    assert_eq!(did(&same), ["skipped", "skipped", "skipped", "skipped"]);
    let reason = same["phases"][1]["reason"].as_str().unwrap();
    assert!(reason.contains("nothing it depends on changed"), "{reason}");

    // An uncommitted package edit (the build id stays `<commit>-dirty`-free only if committed,
    // so the fingerprint has to notice).
    repo.touch_package("hello-config");
    assert_eq!(did(&build_kit_json(&repo, &[])), ["skipped", "ran", "ran", "ran"]);
    assert_eq!(
        did(&build_kit_json(&repo, &[])),
        ["skipped", "skipped", "skipped", "skipped"]
    );
    support::git(repo.path(), &["commit", "-q", "-am", "hello-config: edit"]);
    assert_eq!(did(&build_kit_json(&repo, &[])), ["skipped", "ran", "ran", "ran"]);

    // The lock changed.
    let lock = repo.path().join("Twoliter.lock");
    let mut text = std::fs::read_to_string(&lock).unwrap();
    text.push_str("# relocked\n");
    std::fs::write(&lock, text).unwrap();
    assert_eq!(did(&build_kit_json(&repo, &[])), ["skipped", "ran", "ran", "ran"]);
    support::git(repo.path(), &["checkout", "--", "Twoliter.lock"]);

    // Back to a state that was built before: its archive is rebuilt for this state (the build
    // recorded is the last one), then everything is skipped again.
    assert_eq!(did(&build_kit_json(&repo, &[])), ["skipped", "ran", "ran", "ran"]);
    assert_eq!(
        did(&build_kit_json(&repo, &[])),
        ["skipped", "skipped", "skipped", "skipped"]
    );

    // Another arch is its own build.
    let other = support::run_ok(xtask(&repo).args(["build-kit", "--arch", "aarch64", "--json"]));
    let other: Value = serde_json::from_str(&other).unwrap();
    assert_eq!(did(&other), ["ran", "ran", "ran", "ran"], "{other}");
    // Publish pushes every arch built at this build id, so the index now has both.
    assert_eq!(
        other["verified"]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );

    // The registry lost the image: it is published again from the unchanged build's archive,
    // and verified; the kit is not recompiled, since nothing it depends on changed.
    let port = registry.port.to_string();
    support::run_ok(xtask(&repo).args(["registry", "clean"]));
    support::run_ok(xtask(&repo).args(["registry", "start", "--backend", "native", "--port", &port]));
    assert_eq!(
        get(registry.port, &format!("/v2/{KIT}/manifests/v{VERSION}")).status_code,
        404
    );
    assert_eq!(did(&build_kit_json(&repo, &[])), ["skipped", "skipped", "ran", "ran"]);
    assert_eq!(
        get(registry.port, &format!("/v2/{KIT}/manifests/v{VERSION}")).status_code,
        200
    );
    // And if the archive is gone too, the kit is rebuilt.
    std::fs::remove_dir_all(repo.path().join("build/kits")).unwrap();
    assert_eq!(did(&build_kit_json(&repo, &[])), ["skipped", "ran", "ran", "ran"]);
}

/// The loop of the original kit skill, unchanged but for the command: a workspace
/// `planning/build-kit-<kit>` with the template's input, every spawn's prose written to
/// `<workspace>/<output_file>`, and `<workspace>/04-verify.md` read at `done`. Only the first call
/// is made with `XTASK_ROOT` and from the checkout; later calls come from elsewhere, as an
/// orchestrator in another directory would make them.
#[test]
fn the_original_kit_skill_loop_ends_with_the_checked_summary() {
    let (repo, _registry) = setup();
    let ws = repo.path().join(format!("planning/build-kit-{KIT}"));
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("input.json"),
        format!(r#"{{"kit_name": "{KIT}", "arch": "x86_64"}}"#),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut calls = 0;
    let summary = loop {
        calls += 1;
        assert!(calls <= 6, "the loop does not end");
        let mut call = xtask(&repo);
        if calls > 1 {
            call.env_remove("XTASK_ROOT").current_dir(elsewhere.path());
        }
        let action = support::answer(&support::run_ok(call.arg("next-step").arg(&ws)));
        match action["type"].as_str().unwrap() {
            "done" => break std::fs::read_to_string(ws.join("04-verify.md")).unwrap(),
            "gate_failed" => panic!("{}", action["reason"]),
            "spawn" => {
                assert!(
                    action["context_data"]["registry"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("localhost:")),
                    "{action}"
                );
                // The sub-agent runs the phase command from its own directory.
                let args = support::xtask_args(&action["context_data"]["phase_command"]);
                let mut sub_agent = Command::new(support::xtask_bin());
                sub_agent.args(&args).envs(repo.env()).current_dir(elsewhere.path());
                support::run_ok(&mut sub_agent);
                std::fs::write(ws.join(action["output_file"].as_str().unwrap()), "All good!").unwrap();
            }
            other => panic!("unexpected {other}: {action}"),
        }
    };
    assert_eq!(calls, 5);
    // What the loop reads at the end is the tool's checked report, not a sub-agent's prose.
    assert_eq!(
        summary,
        std::fs::read_to_string(ws.join("reports/04-verify.md")).unwrap()
    );
    let verified: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("results/verify.json")).unwrap()).unwrap();
    assert!(
        summary.contains(verified["data"]["index_digest"].as_str().unwrap()),
        "{summary}"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("answers/04-verify.md")).unwrap(),
        "All good!"
    );
    // Every phase kept a log, also those that run no tool.
    for phase in ["setup", "build", "publish", "verify"] {
        assert!(ws.join(format!("logs/{phase}.log")).is_file(), "{phase}");
    }
    assert!(
        repo.is_clean(),
        "{}",
        support::git(repo.path(), &["status", "--porcelain"])
    );
}

/// The first spawn of a fresh workspace, and the workspace's progress.
fn first_spawn(repo: &KitRepo, ws: &Path) -> Value {
    let action = next_step(repo, ws, &[]);
    assert_eq!(
        (action["action"].as_str(), action["phase"].as_str()),
        (Some("spawn"), Some("SETUP"))
    );
    action
}

fn progress_of(ws: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(ws.join("progress.json")).unwrap()).unwrap()
}

#[test]
fn repeated_calls_spend_no_attempt_and_a_running_phase_means_wait() {
    let (repo, _registry) = setup();
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), &repo);
    let first = first_spawn(&repo, &ws);
    // Nothing new: the same spawn, the same attempt, however often it is asked.
    for _ in 0..3 {
        let again = next_step(&repo, &ws, &[]);
        assert_eq!(again["context_data"], first["context_data"]);
        assert_eq!(again["attempt"], 1);
    }
    // Editing input.json after the spawn spends nothing either.
    let input = serde_json::json!({"kit_name": KIT, "arch": "x86_64", "kit_dir": repo.path(), "registry": null});
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    assert_eq!(next_step(&repo, &ws, &[])["attempt"], 1);
    run_phase_command(&repo, &first);
    let build = next_step(&repo, &ws, &[]);
    assert_eq!(
        (build["phase"].as_str(), build["attempt"].as_u64()),
        (Some("BUILD"), Some(1))
    );
    // The sub-agent's BUILD runs for a while; meanwhile the orchestrator is told to wait.
    let args = support::xtask_args(&build["context_data"]["phase_command"]);
    let mut running = xtask(&repo)
        .args(&args)
        .env("TWOLITER_STANDIN_BUILD_SECONDS", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let wait = loop {
        let action = next_step(&repo, &ws, &[]);
        if action["action"] == "wait" {
            break action;
        }
        assert_eq!(action["attempt"], 1, "{action}");
        assert!(
            started.elapsed().as_secs() < 20,
            "the phase command never held its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(wait["phase"], "BUILD");
    assert!(wait["retry_after_s"].as_u64().unwrap() > 0);
    assert_eq!(wait["log_file"], ws.join("logs/build.log").display().to_string());
    assert!(running.wait().unwrap().success());
    let publish = next_step(&repo, &ws, &[]);
    assert_eq!(
        (publish["phase"].as_str(), publish["attempt"].as_u64()),
        (Some("PUBLISH"), Some(1))
    );
    // No answer file was written for BUILD: the next action says so.
    assert!(
        publish["note"].as_str().unwrap().contains("answers/02-build.md"),
        "{publish}"
    );
    let progress = progress_of(&ws);
    assert_eq!(progress["phases"][0]["attempts"], 1);
    assert_eq!(progress["phases"][1]["attempts"], 1);
    assert!(progress["phases"][1]["failures"].as_array().unwrap().is_empty());
}

#[test]
fn a_phase_that_gave_up_can_be_resumed() {
    let (repo, _registry) = setup();
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), &repo);
    let mut last = first_spawn(&repo, &ws);
    for attempt in 1..=3 {
        // Prose only, no phase command: evidence of an attempt, which the gate refuses. Each
        // answer is another of the same size, as quick as a script writes it.
        std::fs::write(
            ws.join(last["output_file"].as_str().unwrap()),
            format!("Registry up! ({attempt})"),
        )
        .unwrap();
        last = next_step(&repo, &ws, &[]);
    }
    assert_eq!(last["action"], "gate_failed", "{last}");
    let resume = support::xtask_args(&last["resume_command"]);
    assert_eq!(resume[2..], ["next-step", ws.to_str().unwrap(), "--retry"]);
    // A larger --max-attempts gives it another attempt.
    let more = next_step(&repo, &ws, &["--max-attempts", "4"]);
    assert_eq!(
        (more["action"].as_str(), more["attempt"].as_u64()),
        (Some("spawn"), Some(4))
    );
    std::fs::write(ws.join(more["output_file"].as_str().unwrap()), "Really up now!").unwrap();
    assert_eq!(next_step(&repo, &ws, &["--max-attempts", "4"])["action"], "gate_failed");
    // --retry: fresh attempts, the history kept.
    let retried = support::answer(&support::run_ok(xtask(&repo).args(&resume)));
    assert_eq!(
        (retried["action"].as_str(), retried["attempt"].as_u64()),
        (Some("spawn"), Some(5))
    );
    let progress = progress_of(&ws);
    assert_eq!(progress["phases"][0]["failures"].as_array().unwrap().len(), 4);
    // It gives up again after three more, not one.
    let mut last = retried;
    for attempt in 5..=6 {
        std::fs::write(ws.join(last["output_file"].as_str().unwrap()), format!("Up! {attempt}")).unwrap();
        last = next_step(&repo, &ws, &[]);
        assert_eq!(last["action"], "spawn", "{last}");
    }
    std::fs::write(ws.join(last["output_file"].as_str().unwrap()), "Up! 7").unwrap();
    assert_eq!(next_step(&repo, &ws, &[])["action"], "gate_failed");
    // Running the phase by hand until it passes reopens the workflow by itself.
    support::run_ok(xtask(&repo).arg("phase").arg("setup").arg(&ws));
    let build = next_step(&repo, &ws, &[]);
    assert_eq!(
        (build["phase"].as_str(), build["attempt"].as_u64()),
        (Some("BUILD"), Some(1))
    );
    // --max-attempts 0 is refused.
    let zero = support::run(xtask(&repo).arg("next-step").arg(&ws).args(["--max-attempts", "0"]));
    assert!(!zero.status.success());
    assert!(
        support::stderr(&zero).contains("--max-attempts"),
        "{}",
        support::stderr(&zero)
    );
}

#[test]
fn reported_failures_are_kept_with_the_gate_verdict() {
    let (repo, _registry) = setup();
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), &repo);
    let spawn = first_spawn(&repo, &ws);
    run_phase_command(&repo, &spawn);
    let build = next_step(&repo, &ws, &["--phase-result", "failure", "--reason", "it looked slow"]);
    assert_eq!(build["phase"], "BUILD", "the gate decides: {build}");
    let reports = progress_of(&ws)["phases"][0]["reports"].clone();
    assert_eq!(
        reports[0],
        serde_json::json!({"attempt": 1, "success": false, "reason": "it looked slow", "gate_passed": true, "at": reports[0]["at"]})
    );
}

#[test]
fn a_tampered_workspace_never_reaches_done() {
    let (repo, _registry) = setup();
    // A workspace where everything really ran, for results to copy.
    let real = build_kit_json(&repo, &[]);
    let real_ws = PathBuf::from(real["workspace"].as_str().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), &repo);
    // Every phase marked passed by hand.
    first_spawn(&repo, &ws);
    let mut progress = progress_of(&ws);
    for phase in progress["phases"].as_array_mut().unwrap() {
        phase["state"] = "passed".into();
    }
    std::fs::write(ws.join("progress.json"), progress.to_string()).unwrap();
    let action = next_step(&repo, &ws, &[]);
    assert_eq!(
        (action["action"].as_str(), action["phase"].as_str()),
        (Some("spawn"), Some("SETUP")),
        "{action}"
    );
    assert!(
        action["note"].as_str().unwrap().contains("no longer passes its gate"),
        "{action}"
    );
    // Results copied from the workspace where the work was done.
    for dir in ["results", "reports"] {
        for entry in std::fs::read_dir(real_ws.join(dir)).unwrap() {
            let entry = entry.unwrap();
            std::fs::create_dir_all(ws.join(dir)).unwrap();
            std::fs::copy(entry.path(), ws.join(dir).join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(ws.join("answers/01-setup.md"), "Copied it over, all done.").unwrap();
    let action = next_step(&repo, &ws, &[]);
    assert_eq!(action["action"], "spawn", "{action}");
    assert!(
        action["context_data"]["last_failure"]
            .as_str()
            .unwrap()
            .contains("made in another workspace"),
        "{action}"
    );
    // A result forged in this workspace, claiming a build of another state of the repo.
    run_phase_command(&repo, &action);
    let build = next_step(&repo, &ws, &[]);
    assert_eq!(build["phase"], "BUILD");
    let mut forged: Value =
        serde_json::from_str(&std::fs::read_to_string(real_ws.join("results/build.json")).unwrap()).unwrap();
    forged["workspace"] = ws.display().to_string().into();
    forged["data"]["fingerprint"] = "0".repeat(64).into();
    let setup: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("results/setup.json")).unwrap()).unwrap();
    forged["upstream"] = setup["id"].clone();
    std::fs::write(ws.join("results/build.json"), forged.to_string()).unwrap();
    std::fs::write(ws.join("answers/02-build.md"), "Built.").unwrap();
    let action = next_step(&repo, &ws, &[]);
    assert_eq!(
        (action["phase"].as_str(), action["attempt"].as_u64()),
        (Some("BUILD"), Some(2)),
        "{action}"
    );
    // The real thing, then a clobbered report: noticed before done.
    run_phase_command(&repo, &action);
    let mut action = next_step(&repo, &ws, &[]);
    while action["action"] == "spawn" {
        run_phase_command(&repo, &action);
        action = next_step(&repo, &ws, &[]);
    }
    assert_eq!(action["action"], "done", "{action}");
    std::fs::write(ws.join("reports/02-build.md"), "# BUILD\n\nAll fine, trust me.\n").unwrap();
    let action = next_step(&repo, &ws, &[]);
    assert_eq!(
        (action["action"].as_str(), action["phase"].as_str()),
        (Some("spawn"), Some("BUILD")),
        "{action}"
    );
    assert!(
        action["note"]
            .as_str()
            .unwrap()
            .contains("is not the one its run wrote"),
        "{action}"
    );
}

#[test]
fn a_phase_command_killed_midway_did_not_finish() {
    let (repo, _registry) = setup();
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path(), &repo);
    let setup = first_spawn(&repo, &ws);
    run_phase_command(&repo, &setup);
    let build = next_step(&repo, &ws, &[]);
    let args = support::xtask_args(&build["context_data"]["phase_command"]);
    let mut child = xtask(&repo)
        .args(&args)
        .env("TWOLITER_STANDIN_BUILD_SECONDS", "30")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(ws.join("logs/build.log"))
        .unwrap_or_default()
        .contains("phase started: BUILD")
    {
        assert!(started.elapsed().as_secs() < 20, "BUILD never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pgid = child.id() as i32;
    assert!(Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap();
    std::fs::write(ws.join("answers/02-build.md"), "It crashed.").unwrap();
    let again = next_step(&repo, &ws, &[]);
    assert_eq!(
        (again["phase"].as_str(), again["attempt"].as_u64()),
        (Some("BUILD"), Some(2)),
        "{again}"
    );
    let reason = again["context_data"]["last_failure"].as_str().unwrap();
    assert!(
        reason.contains("did not finish") && reason.contains("logs/build.log"),
        "{reason}"
    );
}

/// `phases/kit/TRANSCRIPT.md`: a full run of the kit workflow through `next-step`, as an
/// orchestrator sees it. Generated here, so it never drifts from what the tool answers
/// (`UPDATE_EXPECT=1 cargo nextest run` rewrites it).
#[test]
fn the_kit_transcript_is_current() {
    let (repo, registry) = setup();
    let ws = repo.path().join(format!("planning/build-kit-{KIT}"));
    std::fs::create_dir_all(&ws).unwrap();
    let input = format!(r#"{{"kit_name": "{KIT}", "arch": "x86_64"}}"#);
    std::fs::write(ws.join("input.json"), &input).unwrap();
    let checkout = support::repo_root();
    let normalize = |text: &str| {
        text.replace(ws.to_str().unwrap(), "<workspace>")
            .replace(repo.path().to_str().unwrap(), "<kit repo>")
            .replace(checkout.to_str().unwrap(), "<checkout>")
            .replace(&registry.port.to_string(), "<port>")
    };
    let mut out = format!(
        "# A kit workflow through `next-step`\n\n\
         Every call and answer of a run where all goes well: four spawns, then `done`. Paths are \
         shortened to `<workspace>`, `<kit repo>` (the kit repo, here also the checkout the xtask acts \
         for) and `<checkout>` (where the xtask is built). This file is written by a test from real \
         answers, so it matches what the tool says.\n\n\
         `<workspace>/input.json`:\n\n```json\n{input}\n```\n"
    );
    for call in 1.. {
        assert!(call <= 6, "the run does not end");
        let action = next_step(&repo, &ws, &[]);
        let pretty = serde_json::to_string_pretty(&action).unwrap();
        out.push_str(&format!(
            "\n## Call {call}\n\n    cargo xtask next-step <workspace>\n\n```json\n{}\n```\n",
            normalize(&pretty)
        ));
        if action["action"] == "done" {
            out.push_str("\nThe orchestrator reads `<workspace>/04-verify.md`, the checked summary, and stops.\n");
            break;
        }
        run_phase_command(&repo, &action);
        let answer = format!(
            "Ran the {} phase command; it succeeded.",
            action["phase"].as_str().unwrap()
        );
        std::fs::write(ws.join(action["output_file"].as_str().unwrap()), &answer).unwrap();
        out.push_str(&format!(
            "\nThe sub-agent ran `context_data.phase_command`; the orchestrator wrote its answer \
             (\"{answer}\") to `<workspace>/{}`.\n",
            action["output_file"].as_str().unwrap()
        ));
    }
    expect_test::expect_file!["../../phases/kit/TRANSCRIPT.md"].assert_eq(&out);
}

/// A registry that stopped (and comes back on its port with SETUP) gets the kit published again
/// from the unchanged build: the kit is not rebuilt.
#[test]
fn a_registry_restart_republishes_without_rebuilding() {
    let (repo, _registry) = setup();
    assert_eq!(did(&build_kit_json(&repo, &[])), ["ran", "ran", "ran", "ran"]);
    let archive = repo.archive("x86_64");
    let built = std::fs::metadata(&archive).unwrap().modified().unwrap();
    support::run_ok(xtask(&repo).args(["registry", "stop"]));
    let again = build_kit_json(&repo, &[]);
    assert_eq!(did(&again), ["ran", "skipped", "ran", "ran"], "{again}");
    assert_eq!(
        std::fs::metadata(&archive).unwrap().modified().unwrap(),
        built,
        "not rebuilt"
    );
    assert_eq!(again["ok"], true);
}

#[test]
fn the_build_tools_run_in_the_users_environment_not_cargos() {
    let (repo, _registry) = setup();
    let log = repo.path().join("build/twoliter-env.jsonl");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let summary = support::run_ok(
        xtask(&repo)
            .args(["build-kit", "--arch", "x86_64", "--json"])
            .envs(support::cargo_run_env(&repo.path().join("xtask")))
            .env("TWOLITER_STANDIN_ENV_LOG", &log),
    );
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    let runs = support::recorded_envs(&log);
    let commands: Vec<&str> = runs
        .iter()
        .filter_map(|(argv, _)| argv.first().map(String::as_str))
        .collect();
    for wanted in ["fetch", "build", "publish"] {
        assert!(
            commands.contains(&wanted),
            "twoliter {wanted} did not run: {commands:?}"
        );
    }
    for (argv, env) in &runs {
        support::assert_user_env(argv, env);
        // make runs twoliter directly: nothing puts a toolchain or cargo back in between.
        assert!(
            ["RUSTUP_TOOLCHAIN", "RUSTUP_TOOLCHAIN_SOURCE", "CARGO"]
                .iter()
                .all(|k| !env.contains_key(*k)),
            "{argv:?}: {env:?}"
        );
    }
}

#[test]
fn a_fresh_clone_builds_with_the_twoliter_its_makefile_installs() {
    // No `make prep` beforehand: `make build` installs twoliter through `prep`.
    let repo = KitRepo::create(KIT, VERSION);
    let _registry = TestRegistry::start_native(repo.path());
    assert!(!repo.path().join("tools/twoliter/twoliter").exists());
    let summary = build_kit_json(&repo, &[]);
    assert_eq!(summary["ok"], true, "{summary}");
    assert!(repo.path().join("tools/twoliter/twoliter").is_file());

    // A kit repo without a Makefile: the xtask runs twoliter itself, and finds none.
    std::fs::remove_dir_all(repo.path().join("tools/twoliter")).unwrap();
    support::git(repo.path(), &["rm", "-q", "Makefile"]);
    support::git(repo.path(), &["commit", "-q", "-m", "No Makefile"]);
    let err = build_kit_fails(&repo, &["--arch", "x86_64"]);
    assert!(
        err.contains("twoliter is not installed") && err.contains("tools/twoliter/twoliter") && err.contains("PATH"),
        "{err}"
    );
    // twoliter on PATH will do.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(support::standins_dir().join("twoliter"), bin.path().join("twoliter")).unwrap();
    let out = support::run_ok(support::xtask(repo.path(), &[bin.path()]).envs(repo.env()).args([
        "build-kit",
        "--arch",
        "x86_64",
        "--json",
    ]));
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(did(&summary), ["skipped", "ran", "ran", "ran"]);
    let log = std::fs::read_to_string(
        repo.path()
            .join(format!("planning/build-kit-{KIT}-x86_64/logs/build.log")),
    )
    .unwrap();
    assert!(log.contains("\"build\" \"kit\""), "twoliter ran directly: {log}");
}

/// Builds and publishes the kit once per `core.abbrev` setting (git's default length in a small
/// repo is 7), each time from a new commit; returns the build ids BUILD recorded.
fn build_ids_by_git_default(repo: &KitRepo) -> Vec<String> {
    let ws = repo.path().join(format!("planning/build-kit-{KIT}-x86_64"));
    let mut ids = Vec::new();
    for abbrev in [None, Some("8"), Some("9")] {
        match abbrev {
            Some(n) => support::git(repo.path(), &["config", "core.abbrev", n]),
            None => String::new(),
        };
        let id = repo.edit_package("hello-agent");
        let summary = build_kit_json(repo, &[]);
        assert_eq!(summary["ok"], true, "{summary}");
        assert_eq!(did(&summary)[1..], ["ran", "ran", "ran"], "{summary}");
        let build: Value =
            serde_json::from_str(&std::fs::read_to_string(ws.join("results/build.json")).unwrap()).unwrap();
        assert_eq!(build["data"]["build_id"], id.as_str());
        assert!(repo.archive("x86_64").is_file());
        ids.push(id);
    }
    ids
}

#[test]
fn the_build_id_is_the_one_twoliter_names_the_archive_with_whatever_gits_default_length() {
    // twoliter ≥ 0.7.3 always uses 8 characters.
    let (repo, _registry) = setup();
    let lengths: Vec<usize> = build_ids_by_git_default(&repo).iter().map(String::len).collect();
    assert_eq!(lengths, [8, 8, 8]);
    let build: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo.path()
                .join(format!("planning/build-kit-{KIT}-x86_64/results/build.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(build["data"]["twoliter"], support::kit_repo::TWOLITER);
}

#[test]
fn an_older_twoliter_names_archives_with_gits_default_length() {
    let repo = KitRepo::create_pinned(KIT, VERSION, "0.7.2");
    let _registry = TestRegistry::start_native(repo.path());
    let lengths: Vec<usize> = build_ids_by_git_default(&repo).iter().map(String::len).collect();
    assert_eq!(lengths, [7, 8, 9]);
}

#[test]
fn an_archive_under_another_build_id_is_named_in_the_error() {
    let (repo, _registry) = setup();
    // A twoliter that names archives with git's default length although it says it is new.
    let twoliter = repo.path().join("tools/twoliter/twoliter");
    let text = std::fs::read_to_string(&twoliter).unwrap();
    std::fs::write(
        &twoliter,
        text.replace("abbrev = [\"--abbrev=8\"] if", "abbrev = [] if"),
    )
    .unwrap();
    let err = build_kit_fails(&repo, &["--arch", "x86_64"]);
    let short = support::git(repo.path(), &["describe", "--always", "--dirty", "--exclude", "*"]);
    assert!(
        err.contains(&format!("{KIT}-v{VERSION}-{}-x86_64.tar is missing", repo.build_id()))
            && err.contains(&format!("holds {KIT}-v{VERSION}-{}-x86_64.tar", short.trim()))
            && err.contains("--abbrev=8"),
        "{err}"
    );
}
