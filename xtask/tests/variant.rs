//! The variant workflow end to end, in a forest: a kit repo at `$FOREST_ROOT/kits/<kit>` built
//! and published by `build-kit`, the variant repo at `$FOREST_ROOT/bottlerocket`, the xtask in a
//! checkout of its own with its registry. Stand-in twoliter and cargo-make; real registry.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::published::{Forest, KIT, KIT_VERSION, UPSTREAM_VERSION, VARIANT};

#[test]
fn variant_builds_from_the_published_kit_and_restores_the_repo() {
    let forest = Forest::published();
    let before = forest.files();
    let (ok, summary) = forest.variant_json(&["--kit", KIT]);
    assert!(ok, "{summary}");
    assert_eq!(summary["restored"], true);
    let phases = support::phase_outcomes(&summary);
    assert_eq!(phases, ["ran", "ran", "ran", "ran"]);
    // The image was built from the kit we published.
    assert_eq!(summary["kits"][0]["digest"], forest.arch_digest());
    assert_eq!(summary["kits"][0]["version"], KIT_VERSION);
    let partitions = summary["images"].to_string();
    assert!(partitions.contains("BOTTLEROCKET-ROOT-A"), "{partitions}");
    // The kit's version came from the last VERIFY.
    let ws = forest.root.join(format!("planning/variant-{VARIANT}-x86_64"));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("results/update-config.json")).unwrap()).unwrap();
    assert_eq!(config["data"]["kits"][0]["version_from"], "verify");
    // The lock was regenerated against the local registry while the build ran.
    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("results/update-lock.json")).unwrap()).unwrap();
    assert_eq!(lock["data"]["update_ran"], true);
    // FINAL.md sums up.
    let final_md = std::fs::read_to_string(ws.join("reports/FINAL.md")).unwrap();
    for needle in [
        ".img.lz4",
        KIT_VERSION,
        "cargo xtask restore",
        "UPDATE_LOCK",
        "-dirty` because the build ran with the tracked `Twoliter.lock`",
    ] {
        assert!(final_md.contains(needle), "FINAL.md lacks {needle}:\n{final_md}");
    }
    // The repo is byte-identical afterwards.
    assert_eq!(forest.files(), before);
    assert!(support::git(forest.repo(), &["status", "--porcelain"])
        .trim()
        .is_empty());
}

fn next_step(forest: &Forest, ws: &Path) -> Value {
    let out = support::run_ok(forest.xtask().arg("next-step").arg(ws));
    support::answer(&out)
}

#[test]
fn next_step_finishes_in_four_spawns_and_restores() {
    let forest = Forest::published();
    let before = forest.files();
    let ws = forest.root.join("planning/agent-variant");
    std::fs::create_dir_all(&ws).unwrap();
    let input =
        serde_json::json!({"kits": [{"name": KIT, "version": KIT_VERSION}], "variant": VARIANT, "arch": "x86_64"});
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    let mut spawned = Vec::new();
    let done = loop {
        assert!(spawned.len() <= 4, "too many spawns: {spawned:?}");
        let action = next_step(&forest, &ws);
        match action["action"].as_str().unwrap() {
            "spawn" => {
                spawned.push(action["output_file"].as_str().unwrap().to_string());
                assert!(Path::new(action["context_files"][0].as_str().unwrap()).is_file());
                assert_eq!(action["context_data"]["variant"], VARIANT);
                let args = support::xtask_args(&action["context_data"]["phase_command"]);
                support::run_ok(forest.xtask().args(&args));
                std::fs::write(ws.join(action["output_file"].as_str().unwrap()), "done").unwrap();
            }
            "done" => break action,
            other => panic!("{other}: {action}"),
        }
    };
    assert_eq!(
        spawned,
        [
            "answers/01-config-updated.md",
            "answers/02-lock-updated.md",
            "answers/03-build-complete.md",
            "answers/FINAL.md"
        ]
    );
    assert_eq!(done["restored"], true);
    assert!(std::fs::read_to_string(done["summary_file"].as_str().unwrap())
        .unwrap()
        .contains(KIT_VERSION));
    assert_eq!(forest.files(), before);
}

/// A `--keep-config` run, after which faults are injected and VALIDATE must name each.
fn kept(forest: &Forest) -> PathBuf {
    let (ok, summary) = forest.variant_json(&["--kit", &format!("{KIT}@{KIT_VERSION}"), "--keep-config"]);
    assert!(ok, "{summary}");
    assert_eq!(summary["restored"], Value::Null);
    forest.root.join(format!("planning/variant-{VARIANT}-x86_64"))
}

fn validate_fails(forest: &Forest, ws: &Path) -> String {
    let output = support::run(forest.xtask().args(["phase", "validate"]).arg(ws));
    assert!(!output.status.success(), "VALIDATE should fail");
    support::stderr(&output)
}

fn os_image(forest: &Forest) -> PathBuf {
    let latest = forest.variant.images_dir("x86_64").join("latest");
    std::fs::read_dir(&latest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            !p.is_symlink() && name.ends_with(".img.lz4") && !name.ends_with("-data.img.lz4")
        })
        .unwrap()
}

fn lz4(args: &[&str]) {
    support::run_ok(Command::new("lz4").args(args));
}

#[test]
fn validate_names_each_fault() {
    let forest = Forest::published();
    let ws = kept(&forest);
    support::run_ok(forest.xtask().args(["phase", "validate"]).arg(&ws));
    let image = os_image(&forest);
    let pristine = std::fs::read(&image).unwrap();
    let restore = || {
        std::fs::write(&image, &pristine).unwrap();
    };

    // One flipped byte in the compressed stream.
    let mut bytes = pristine.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&image, &bytes).unwrap();
    let err = validate_fails(&forest, &ws);
    assert!(
        err.contains(image.file_name().unwrap().to_str().unwrap()) && err.to_lowercase().contains("checksum"),
        "{err}"
    );
    restore();

    // A truncated image.
    std::fs::write(&image, &pristine[..pristine.len() * 2 / 3]).unwrap();
    let err = validate_fails(&forest, &ws);
    assert!(err.to_lowercase().contains("truncated") || err.contains("end"), "{err}");
    restore();

    // An image older than the build is no fault: a build with nothing to redo leaves the images
    // as they were. (Checking modification times here made such builds fail.)
    let file = std::fs::File::options().write(true).open(&image).unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(24 * 3600))
        .unwrap();
    drop(file);
    support::run_ok(forest.xtask().args(["phase", "validate"]).arg(&ws));
    restore();

    // Images of another build: the repo moved on since they were built.
    let built = forest.variant.build_id();
    support::git(forest.repo(), &["commit", "-q", "--allow-empty", "-m", "Moved on"]);
    let err = validate_fails(&forest, &ws);
    assert!(
        err.contains(&format!("the images of build `{built}`"))
            && err.contains(&format!("build id is now `{}`", forest.variant.build_id()))
            && err.contains("from another build"),
        "{err}"
    );
    support::git(forest.repo(), &["reset", "-q", "--soft", "HEAD~1"]);

    // A GPT with a bad header CRC, in an otherwise perfect LZ4 frame.
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("disk.img");
    lz4(&["-d", "-q", "-f", image.to_str().unwrap(), raw.to_str().unwrap()]);
    let mut disk = std::fs::read(&raw).unwrap();
    disk[512 + 16] ^= 0xff; // the primary header's CRC32 field
    std::fs::write(&raw, &disk).unwrap();
    lz4(&["-z", "-q", "-f", "-BX", raw.to_str().unwrap(), image.to_str().unwrap()]);
    let err = validate_fails(&forest, &ws);
    assert!(err.contains("GPT") && err.contains("CRC"), "{err}");
    restore();

    // An external-kit digest from another kit.
    let digest_file = forest
        .repo()
        .join(format!("build/external-kits/bottlerocket/{KIT}/x86_64/digest"));
    let real = std::fs::read_to_string(&digest_file).unwrap();
    std::fs::write(&digest_file, format!("sha256:{}", "ab".repeat(32))).unwrap();
    let err = validate_fails(&forest, &ws);
    assert!(
        err.contains("not built from the published kit") && err.contains("digest"),
        "{err}"
    );
    std::fs::write(&digest_file, real).unwrap();

    // A missing latest.
    let latest = forest.variant.images_dir("x86_64").join("latest");
    let target = std::fs::read_link(&latest).unwrap();
    std::fs::remove_file(&latest).unwrap();
    let err = validate_fails(&forest, &ws);
    assert!(err.contains("latest"), "{err}");
    std::os::unix::fs::symlink(target, &latest).unwrap();

    // And with everything put back, it passes again.
    support::run_ok(forest.xtask().args(["phase", "validate"]).arg(&ws));
    support::run_ok(forest.xtask().args(["restore"]).arg(&ws));
}

#[test]
fn a_lock_still_pointing_upstream_is_caught() {
    let forest = Forest::published();
    let ws = kept(&forest);
    // A twoliter whose `update` claims success but changes nothing.
    let twoliter = forest.repo().join("tools/twoliter/twoliter");
    let real = forest.repo().join("tools/twoliter/twoliter.real");
    std::fs::rename(&twoliter, &real).unwrap();
    std::fs::write(
        &twoliter,
        format!(
            "#!/bin/sh\n[ \"$1\" = update ] && exit 0\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&twoliter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Put the upstream lock back.
    let upstream = std::fs::read(ws.join("backups/Twoliter.lock")).unwrap();
    std::fs::write(forest.repo().join("Twoliter.lock"), &upstream).unwrap();
    let output = support::run(forest.xtask().args(["phase", "update-lock"]).arg(&ws));
    assert!(!output.status.success());
    let err = support::stderr(&output);
    assert!(
        err.contains(KIT) && err.contains("digest") && err.contains("twoliter update"),
        "{err}"
    );
    support::run_ok(forest.xtask().args(["restore", "--force"]).arg(&ws));
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let forest = Forest::published();
    let before = forest.files();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--kit".into(), format!("{KIT}@9.9.9")],
            "not in the local registry",
        ),
        (vec!["--kit".into(), format!("{KIT}@nine")], "not a semver version"),
        (vec!["--kit".into(), "other-kit".into()], "is not a [[kit]]"),
        (
            vec![
                "--kit".into(),
                KIT.into(),
                "--variant-dir".into(),
                "/definitely/not/here".into(),
            ],
            "does not exist",
        ),
        (
            vec!["--kit".into(), KIT.into(), "--variant".into(), "nope".into()],
            "unknown variant `nope`",
        ),
    ];
    for (args, expected) in &cases {
        let (ok, summary) = forest.variant_json(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!ok, "{args:?}");
        let err = summary["error"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| summary.to_string());
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(forest.files(), before, "{args:?} changed files");
    }
}

fn variant_fails(forest: &Forest, args: &[&str]) -> String {
    let output = support::run(forest.xtask().args(["variant", "--arch", "x86_64"]).args(args));
    assert!(!output.status.success(), "{args:?}");
    support::stderr(&output)
}

#[test]
fn malformed_project_files_are_clear_errors_and_changes_nothing() {
    let forest = Forest::published();
    // A malformed Twoliter.override (a bare [local] table is not an override).
    std::fs::write(
        forest.repo().join("Twoliter.override"),
        "[local]\nregistry = \"localhost:5000\"\n",
    )
    .unwrap();
    let before = forest.files();
    let err = variant_fails(&forest, &["--kit", KIT]);
    assert!(err.contains("failed to deserialize overrides file"), "{err}");
    assert_eq!(forest.files(), before);
}

#[test]
fn an_inline_kit_array_is_edited_in_its_own_form() {
    let forest = Forest::published();
    // The kits as an inline array, which twoliter reads like `[[kit]]` tables.
    let toml = forest.repo().join("Twoliter.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    // Top-level keys go before the first table; the [[kit]] tables go.
    let kits_at = text.find("[[kit]]").unwrap();
    let first_table = text.find("\n[").unwrap() + 1;
    let inline = format!(
        "{}kit = [{{ name = \"{KIT}\", version = \"{UPSTREAM_VERSION}\", vendor = \"bottlerocket\" }}]\n\n{}",
        &text[..first_table],
        &text[first_table..kits_at]
    );
    std::fs::write(&toml, &inline).unwrap();
    let before = forest.files();
    let ws = kept(&forest);
    let edited = std::fs::read_to_string(&toml).unwrap();
    assert_eq!(
        edited,
        inline.replace(
            &format!("version = \"{UPSTREAM_VERSION}\""),
            &format!("version = \"{KIT_VERSION}\"")
        ),
        "only the version changed, in place"
    );
    support::run_ok(forest.xtask().args(["restore"]).arg(&ws));
    assert_eq!(forest.files(), before);
}

#[test]
fn a_failure_midway_still_restores() {
    let forest = Forest::published();
    let before = forest.files();
    let output = support::run(
        forest
            .xtask()
            .args(["variant", "--arch", "x86_64", "--kit", KIT])
            .env("CARGO_MAKE_STANDIN_FAIL", "1"),
    );
    assert!(!output.status.success());
    let err = support::stderr(&output);
    assert!(err.contains("BUILD") && err.contains("logs/build.log"), "{err}");
    assert!(err.contains("variant repo files restored"), "{err}");
    assert_eq!(forest.files(), before);
}

#[test]
fn a_rerun_with_nothing_changed_redoes_nothing_and_skips_twoliter_update() {
    let forest = Forest::published();
    let ws = kept(&forest);
    let (ok, again) = forest.variant_json(&["--kit", &format!("{KIT}@{KIT_VERSION}"), "--keep-config"]);
    assert!(ok, "{again}");
    let phases = support::phase_outcomes(&again);
    assert_eq!(phases, ["skipped", "skipped", "skipped", "skipped"]);
    assert!(
        again["phases"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("already holds the digests"),
        "{again}"
    );
    // Run on its own, UPDATE_LOCK sees the lock already matches and does not run twoliter.
    let lock_before = std::fs::read(forest.repo().join("Twoliter.lock")).unwrap();
    let output = support::run(
        forest
            .xtask()
            .args(["phase", "update-lock"])
            .arg(&ws)
            .env("TWOLITER_STANDIN_FAIL", "update"),
    );
    assert!(
        output.status.success(),
        "twoliter update was run although the lock matched"
    );
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("results/update-lock.json")).unwrap()).unwrap();
    assert_eq!(result["data"]["update_ran"], false);
    assert_eq!(std::fs::read(forest.repo().join("Twoliter.lock")).unwrap(), lock_before);
    // The kit is re-published (a new build): the lock no longer matches, update runs, and
    // the variant is rebuilt from the new kit.
    forest.kit.edit_package("hello-agent");
    let out = support::run_ok(
        forest
            .xtask()
            .args(["build-kit", "--kit", KIT, "--arch", "x86_64", "--json"]),
    );
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["ok"], true);
    let (ok, rebuilt) = forest.variant_json(&["--kit", &format!("{KIT}@{KIT_VERSION}"), "--keep-config"]);
    assert!(ok, "{rebuilt}");
    let phases = support::phase_outcomes(&rebuilt);
    assert_eq!(phases, ["skipped", "ran", "ran", "ran"]);
    assert_eq!(rebuilt["kits"][0]["digest"], forest.arch_digest());
    support::run_ok(forest.xtask().args(["restore"]).arg(&ws));
}

#[test]
fn restore_refuses_to_overwrite_someone_elses_edit_unless_forced() {
    let forest = Forest::published();
    let original_toml = std::fs::read(forest.repo().join("Twoliter.toml")).unwrap();
    let original_lock = std::fs::read(forest.repo().join("Twoliter.lock")).unwrap();
    let ws = kept(&forest);
    assert!(forest.repo().join("Twoliter.override").is_file());
    // Someone edits Twoliter.toml after the workflow did.
    let toml = forest.repo().join("Twoliter.toml");
    let mut edited = std::fs::read_to_string(&toml).unwrap();
    edited.push_str("# my own note\n");
    std::fs::write(&toml, &edited).unwrap();
    let output = support::run(forest.xtask().arg("restore").arg(&ws));
    assert!(!output.status.success());
    let err = support::stderr(&output);
    assert!(err.contains("Twoliter.toml") && err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&toml).unwrap(),
        edited,
        "a refused restore changes nothing"
    );
    // Forced: every file back byte for byte, the override (absent before) removed.
    let out = support::run_ok(forest.xtask().args(["restore", "--force"]).arg(&ws));
    assert!(out.contains("Twoliter.override: removed"), "{out}");
    assert_eq!(std::fs::read(&toml).unwrap(), original_toml);
    assert_eq!(
        std::fs::read(forest.repo().join("Twoliter.lock")).unwrap(),
        original_lock
    );
    assert!(!forest.repo().join("Twoliter.override").exists());
}

#[test]
fn kit_and_variant_twoliter_generations_that_disagree_are_warned_about() {
    let forest = Forest::published();
    // The kit repo's twoliter now reports a generation-2 version (≤ 0.7.2).
    let twoliter = forest.kit.path().join("tools/twoliter/twoliter");
    let real = forest.kit.path().join("tools/twoliter/twoliter.real");
    std::fs::rename(&twoliter, &real).unwrap();
    std::fs::write(
        &twoliter,
        format!(
            "#!/bin/sh\nTWOLITER_STANDIN_VERSION=0.7.0 exec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&twoliter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let output = support::run(forest.xtask().args(["variant", "--arch", "x86_64", "--kit", KIT]));
    let err = support::stderr(&output);
    assert!(
        err.contains("warning:") && err.contains("0.7.0") && err.contains(support::kit_repo::TWOLITER),
        "{err}"
    );
}

#[test]
fn kits_published_from_another_checkout_are_found_with_registry() {
    let forest = Forest::published();
    // The variant is built from another checkout of the xtask, which has no registry of its own.
    let other = forest.tmp.path().join("other-checkout");
    std::fs::create_dir_all(&other).unwrap();
    let mut cmd = support::xtask(&other, &[forest.variant.bin_dir()]);
    cmd.env("FOREST_ROOT", &forest.forest).envs(forest.kit.env());
    let out = support::run_ok(
        cmd.args([
            "variant",
            "--arch",
            "x86_64",
            "--kit",
            &format!("{KIT}@{KIT_VERSION}"),
            "--json",
        ])
        .args(["--registry", &forest.registry.url()]),
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["kits"][0]["digest"], forest.arch_digest());
    assert!(
        !other.join("planning/.registry").exists(),
        "no second registry was started"
    );
}

#[test]
fn a_lying_subagent_changes_nothing_and_the_failure_names_the_restore_command() {
    let forest = Forest::published();
    let before = forest.files();
    let ws = forest.root.join("planning/lying");
    std::fs::create_dir_all(&ws).unwrap();
    let input = serde_json::json!({"kits": [{"name": KIT}], "variant": VARIANT, "arch": "x86_64"});
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    let mut last = Value::Null;
    for call in 0..4 {
        last = next_step(&forest, &ws);
        if last["action"] == "spawn" {
            std::fs::write(
                ws.join(last["output_file"].as_str().unwrap()),
                format!("Config updated. ({call})"),
            )
            .unwrap();
        }
    }
    assert_eq!(last["action"], "gate_failed", "{last}");
    assert_eq!(last["phase"], "UPDATE_CONFIG");
    let restore = support::xtask_args(&last["restore_command"]);
    assert_eq!(restore[2..], ["restore", ws.to_str().unwrap()]);
    assert!(
        last["reason"].as_str().unwrap().contains("UPDATE_CONFIG has no result"),
        "{last}"
    );
    assert_eq!(forest.files(), before);
}

/// The loop of the original variant skill, unchanged but for the command: a workspace
/// `planning/build-variant-<timestamp>` with the template's input (`"variant": ""`,
/// `"arch": ""`), prose written to `<workspace>/<output_file>`, `<workspace>/FINAL.md` read at
/// `done`. `FOREST_ROOT` and `XTASK_ROOT` are set for the first call only; later calls are made
/// from another directory without them, which the workspace's recorded resolution makes work.
#[test]
fn the_original_variant_skill_loop_ends_with_the_checked_summary() {
    let forest = Forest::published();
    let before = forest.files();
    let ws = forest.root.join("planning/build-variant-20261130T101500");
    std::fs::create_dir_all(&ws).unwrap();
    let input = serde_json::json!({"kits": [{"name": KIT, "version": KIT_VERSION}], "variant": "", "arch": ""});
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut calls = 0;
    let done = loop {
        calls += 1;
        assert!(calls <= 6, "the loop does not end");
        let mut call = forest.xtask();
        if calls > 1 {
            call.env_remove("FOREST_ROOT")
                .env_remove("XTASK_ROOT")
                .current_dir(elsewhere.path());
        }
        let action = support::answer(&support::run_ok(call.arg("next-step").arg(&ws)));
        match action["type"].as_str().unwrap() {
            "done" => break action,
            "gate_failed" => panic!("{}", action["reason"]),
            "spawn" => {
                assert_eq!(action["context_data"]["registry"], forest.registry.url(), "{action}");
                assert_eq!(action["context_data"]["variant"], VARIANT);
                let args = support::xtask_args(&action["context_data"]["phase_command"]);
                let mut sub_agent = Command::new(support::xtask_bin());
                sub_agent
                    .args(&args)
                    .envs(forest.kit.env())
                    .env("PATH", forest.variant.path_env())
                    .current_dir(elsewhere.path());
                support::run_ok(&mut sub_agent);
                std::fs::write(ws.join(action["output_file"].as_str().unwrap()), "Looks great.").unwrap();
            }
            other => panic!("unexpected {other}: {action}"),
        }
    };
    assert_eq!(calls, 5);
    let summary = std::fs::read_to_string(ws.join("FINAL.md")).unwrap();
    assert_eq!(summary, std::fs::read_to_string(ws.join("reports/FINAL.md")).unwrap());
    assert!(summary.contains(&forest.arch_digest()), "{summary}");
    // The calls made without FOREST_ROOT still found the kit repo's VERIFY, which the
    // workspace's recorded forest names: the kit is pinned to what it published.
    let published = forest.verified()["index_digest"].as_str().unwrap().to_string();
    assert!(
        summary.contains("**pinned**") && summary.contains(&format!("published: index `{published}`")),
        "{summary}"
    );
    let resolved: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("resolved.json")).unwrap()).unwrap();
    assert_eq!(resolved["forest_root"], forest.forest.to_str().unwrap());
    // Phases under a second are timed in milliseconds, not as 0ms.
    assert!(!summary.contains(": 0ms"), "{summary}");
    assert_eq!(done["restored"], true);
    assert_eq!(forest.files(), before, "the variant repo is restored byte for byte");
    // done is stable: the repo stays restored and the answer does not change.
    let again = support::answer(&support::run_ok(forest.xtask().arg("next-step").arg(&ws)));
    assert_eq!(again, done);
    assert_eq!(forest.files(), before);
}

#[test]
fn the_build_tools_run_in_the_users_environment_not_cargos() {
    let forest = Forest::published();
    let logs = forest.tmp.path().join("env-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (twoliter_log, cargo_make_log) = (logs.join("twoliter.jsonl"), logs.join("cargo-make.jsonl"));
    let out = support::run_ok(
        forest
            .xtask()
            .args(["variant", "--arch", "x86_64", "--kit", KIT, "--json"])
            .envs(support::cargo_run_env(&forest.root.join("xtask")))
            .env("TWOLITER_STANDIN_ENV_LOG", &twoliter_log)
            .env("CARGO_MAKE_STANDIN_ENV_LOG", &cargo_make_log),
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    let twoliter = support::recorded_envs(&twoliter_log);
    let cargo_make = support::recorded_envs(&cargo_make_log);
    assert_eq!(cargo_make.len(), 1, "cargo make ran once");
    let update: Vec<_> = twoliter
        .iter()
        .filter(|(argv, _)| argv.first().is_some_and(|a| a == "update"))
        .collect();
    assert_eq!(update.len(), 1, "UPDATE_LOCK ran twoliter update: {twoliter:?}");
    assert!(twoliter
        .iter()
        .any(|(argv, _)| argv.first().is_some_and(|a| a == "fetch")));
    for (argv, env) in twoliter.iter().chain(&cargo_make) {
        support::assert_user_env(argv, env);
    }
    // The xtask runs `twoliter update` itself: no toolchain choice or cargo reaches it.
    let (argv, env) = update[0];
    assert!(
        ["RUSTUP_TOOLCHAIN", "RUSTUP_TOOLCHAIN_SOURCE", "CARGO"]
            .iter()
            .all(|k| !env.contains_key(*k)),
        "{argv:?}: {env:?}"
    );
}

#[test]
fn twoliter_is_the_repos_else_the_one_on_path_else_the_error_says_how_to_install_it() {
    let forest = Forest::published();
    let installed = forest.repo().join("tools/twoliter/twoliter");
    std::fs::remove_file(&installed).unwrap();
    let before = forest.files();
    let err = variant_fails(&forest, &["--kit", KIT]);
    assert!(
        err.contains("twoliter is not installed") && err.contains("cargo make install-twoliter"),
        "{err}"
    );
    assert_eq!(forest.files(), before);

    // twoliter on PATH runs `twoliter update`; `cargo make` installs the repo's own for the build.
    let bin = forest.tmp.path().join("twoliter-bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(support::standins_dir().join("twoliter"), bin.join("twoliter")).unwrap();
    let mut cmd = support::xtask(&forest.root, &[forest.variant.bin_dir(), &bin]);
    cmd.env("FOREST_ROOT", &forest.forest).envs(forest.kit.env());
    let out = support::run_ok(cmd.args(["variant", "--arch", "x86_64", "--kit", KIT, "--json"]));
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    assert!(installed.is_file(), "cargo make installed twoliter");
}

#[test]
fn a_lock_of_a_schema_the_repos_twoliter_does_not_load_is_rewritten_though_its_digests_match() {
    let forest = Forest::published();
    let ws = kept(&forest);
    // The lock the run left, back in schema 1 (as twoliter before 0.12 wrote it), same digests.
    let lock = forest.repo().join("Twoliter.lock");
    let current = std::fs::read_to_string(&lock).unwrap();
    assert!(
        current.starts_with("schema-version = 2\nproject-vendor = \"Bottlerocket\"\n"),
        "{current}"
    );
    let schema_1 = current
        .replace("schema-version = 2", "schema-version = 1")
        .replace("project-vendor = \"Bottlerocket\"\n", "");
    std::fs::write(&lock, &schema_1).unwrap();
    let out = support::run(forest.xtask().args(["phase", "update-lock"]).arg(&ws));
    assert!(out.status.success(), "{}", support::stderr(&out));
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("results/update-lock.json")).unwrap()).unwrap();
    assert_eq!(result["data"]["update_ran"], true, "twoliter update ran for the schema");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), current);
    support::run_ok(forest.xtask().args(["restore"]).arg(&ws));
}

#[test]
fn a_schema_2_project_without_project_vendor_is_refused_before_anything_is_written() {
    let forest = Forest::published();
    let toml = forest.repo().join("Twoliter.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("project-vendor = \"Bottlerocket\"\n", "")).unwrap();
    let before = forest.files();
    let err = variant_fails(&forest, &["--kit", KIT]);
    assert!(
        err.contains("`schema-version = 2` but no `project-vendor`") && err.contains("Add `project-vendor"),
        "{err}"
    );
    assert_eq!(forest.files(), before);
    assert!(!forest.repo().join("Twoliter.override").exists());
}

/// Every file under the images directory with its modification time and bytes.
fn images_state(forest: &Forest) -> Vec<(PathBuf, std::time::SystemTime, Vec<u8>)> {
    let dir = forest.variant.images_dir("x86_64");
    support::snapshot(&dir)
        .into_iter()
        .map(|(path, bytes)| {
            let modified = std::fs::metadata(dir.join(&path)).unwrap().modified().unwrap();
            (path, modified, bytes)
        })
        .collect()
}

#[test]
fn a_second_run_with_nothing_changed_passes_with_the_images_it_left() {
    let forest = Forest::published();
    let (ok, first) = forest.variant_json(&["--kit", KIT]);
    assert!(ok, "{first}");
    let images = images_state(&forest);
    assert!(!images.is_empty());
    // The repo was restored, so the configuration and lock phases run again and put it in the
    // same state: the build has nothing to redo, and leaves the images as they are.
    let (ok, second) = forest.variant_json(&["--kit", KIT]);
    assert!(ok, "{second}");
    assert_eq!(support::phase_outcomes(&second), ["ran", "ran", "ran", "ran"]);
    assert_eq!(images_state(&forest), images, "the images were left as they were");
    let ws = forest.root.join(format!("planning/variant-{VARIANT}-x86_64"));
    let log = std::fs::read_to_string(ws.join("logs/build.log")).unwrap();
    assert!(log.contains("is up to date: nothing was built"), "{log}");
    assert_eq!(second["kits"][0]["digest"], forest.arch_digest());

    // Images that went missing are built again, though nothing the build watches changed.
    let latest = forest.variant.images_dir("x86_64").join("latest");
    let dir = forest
        .variant
        .images_dir("x86_64")
        .join(std::fs::read_link(&latest).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    let (ok, third) = forest.variant_json(&["--kit", KIT]);
    assert!(ok, "{third}");
    assert!(dir.is_dir());
}
