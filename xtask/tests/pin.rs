//! A variant is built from exactly the kit the user published. The local registry has no
//! authentication, so anyone on the machine can push the same kit version again: the newest
//! VERIFY record of the checkout or its forest pins what the variant takes. Real registry,
//! stand-in twoliter and cargo-make.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::published::{Forest, KIT, KIT_VERSION, VARIANT};

fn workspace(forest: &Forest) -> PathBuf {
    forest.root.join(format!("planning/variant-{VARIANT}-x86_64"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn result(ws: &Path, phase: &str) -> Value {
    serde_json::from_str(&read(&ws.join(format!("results/{phase}.json")))).unwrap()
}

#[test]
fn a_rogue_republish_is_refused_then_taken_only_when_the_registry_is_trusted() {
    let forest = Forest::published();
    let published = forest.verified()["index_digest"].as_str().unwrap().to_string();
    let before = forest.files();
    let rogue = forest.rogue_republish();

    // Refused at UPDATE_LOCK, before twoliter update or the build ran.
    let logs = forest.tmp.path().join("env-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (twoliter_log, cargo_make_log) = (logs.join("twoliter.jsonl"), logs.join("cargo-make.jsonl"));
    let output = support::run(
        forest
            .xtask()
            .args(["variant", "--arch", "x86_64", "--kit", KIT, "--json"])
            .env("TWOLITER_STANDIN_ENV_LOG", &twoliter_log)
            .env("CARGO_MAKE_STANDIN_ENV_LOG", &cargo_make_log),
    );
    assert!(!output.status.success());
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(support::phase_outcomes(&summary), ["ran", "failed"], "{summary}");
    let err = summary["error"].as_str().unwrap();
    for needle in [
        format!(
            "kit `{KIT}` {KIT_VERSION} at {} is not the one published here",
            forest.registry.url()
        ),
        format!("VERIFY recorded index {published}"),
        format!("the registry serves index {rogue}"),
        "now, at ".to_string(),
        format!("`cargo xtask build-kit --kit {KIT}` in {}", forest.kit.path().display()),
        "--trust-registry".to_string(),
    ] {
        assert!(err.contains(&needle), "lacks {needle}: {err}");
    }
    assert!(
        support::stderr(&output).contains("variant repo files restored"),
        "{}",
        support::stderr(&output)
    );
    assert_eq!(forest.files(), before, "the variant repo is restored byte for byte");
    assert!(!cargo_make_log.exists(), "the build did not run");
    let update_ran = support::recorded_envs(&twoliter_log)
        .iter()
        .any(|(argv, _)| argv.first().is_some_and(|a| a == "update"));
    assert!(!update_ran, "twoliter update did not run");

    // Trusted: built from what the registry serves, and recorded as such.
    let (ok, summary) = forest.variant_json(&["--kit", KIT, "--trust-registry"]);
    assert!(ok, "{summary}");
    assert_eq!(summary["restored"], true);
    let kit = &summary["kits"][0];
    assert_eq!(kit["pin"]["state"], "trusted", "{kit}");
    assert_eq!(kit["pin"]["published"]["index_digest"], published.as_str());
    assert_eq!(kit["index_digest"], rogue.as_str());
    assert_eq!(kit["digest"], forest.arch_digest());
    let ws = workspace(&forest);
    let input: Value = serde_json::from_str(&read(&ws.join("input.json"))).unwrap();
    assert_eq!(input["trust_registry"], true);
    assert_eq!(result(&ws, "update-lock")["data"]["kits"][0]["pin"]["state"], "trusted");
    let lock_report = read(&ws.join("reports/02-lock-updated.md"));
    assert!(
        lock_report.contains(&format!("**not** the published index `{published}`"))
            && lock_report.contains("--trust-registry"),
        "{lock_report}"
    );
    let final_md = read(&ws.join("FINAL.md"));
    for needle in [
        "**registry trusted** (`--trust-registry`)".to_string(),
        format!("published: index `{published}`"),
        format!("≠ registry index `{rogue}`"),
        format!("fetched x86_64 image `{}`", forest.arch_digest()),
    ] {
        assert!(final_md.contains(&needle), "FINAL.md lacks {needle}:\n{final_md}");
    }
    assert_eq!(forest.files(), before);

    // Trust is a choice of each run: without it, the same kit is refused again.
    let (ok, summary) = forest.variant_json(&["--kit", KIT]);
    assert!(!ok, "{summary}");
    assert!(summary["error"].as_str().unwrap().contains(&rogue), "{summary}");
    assert!(
        summary["images"].is_null() && summary["kits"].is_null(),
        "a failed run shows no images or kits of the run before: {summary}"
    );
    assert_eq!(forest.files(), before);
}

#[test]
fn the_users_own_republish_moves_the_pin_the_newest_verify_wins() {
    let forest = Forest::published();
    let first = forest.verified()["index_digest"].as_str().unwrap().to_string();
    // A new build of the same version, published from another workspace: a second VERIFY
    // record beside the first, newer.
    forest.kit.edit_package("hello-agent");
    let other_ws = forest.root.join("planning/republish");
    let out = support::run_ok(
        forest
            .xtask()
            .args(["build-kit", "--kit", KIT, "--arch", "x86_64", "--json", "--workspace"])
            .arg(&other_ws),
    );
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["ok"], true);
    let second = forest.index_digest();
    assert_ne!(second, first);
    assert_eq!(
        forest.verified()["index_digest"],
        first.as_str(),
        "the first record stays"
    );

    let before = forest.files();
    let (ok, summary) = forest.variant_json(&["--kit", KIT]);
    assert!(ok, "{summary}");
    let kit = &summary["kits"][0];
    assert_eq!(kit["pin"]["state"], "pinned", "{kit}");
    assert_eq!(kit["pin"]["published"]["index_digest"], second.as_str());
    assert_eq!(
        kit["pin"]["published"]["workspace"],
        other_ws.to_str().unwrap(),
        "{kit}"
    );
    assert_eq!(kit["pin"]["published"]["build_id"], forest.kit.build_id().as_str());
    let final_md = read(&workspace(&forest).join("FINAL.md"));
    assert!(
        final_md.contains(&format!("published: index `{second}`")) && !final_md.contains(&first),
        "{final_md}"
    );
    assert_eq!(forest.files(), before);
}

#[test]
fn finals_chain_runs_from_the_published_kit_to_the_fetched_one() {
    let forest = Forest::published();
    let verified = forest.verified();
    let (ok, summary) = forest.variant_json(&["--kit", KIT]);
    assert!(ok, "{summary}");
    let kit = &summary["kits"][0];
    assert_eq!(kit["pin"]["state"], "pinned", "{kit}");
    for field in ["index_digest", "lock_digest"] {
        assert_eq!(kit[field], verified[field], "{field}: {kit}");
    }
    assert_eq!(kit["digest"], verified["arch_digest"]);
    let final_md = read(&workspace(&forest).join("FINAL.md"));
    let build_id = forest.kit.build_id();
    for needle in [
        format!("`{KIT}` {KIT_VERSION} (vendor `bottlerocket`): **pinned**"),
        format!(
            "published: index `{}`, lock digest `{}`, VERIFY at ",
            verified["index_digest"].as_str().unwrap(),
            verified["lock_digest"].as_str().unwrap()
        ),
        format!("build `{build_id}` of `{}`", forest.kit.path().display()),
        format!("= registry index `{}`", verified["index_digest"].as_str().unwrap()),
        format!(
            "= `Twoliter.lock` digest `{}`",
            verified["lock_digest"].as_str().unwrap()
        ),
        format!("= fetched x86_64 image `{}`", verified["arch_digest"].as_str().unwrap()),
        "the published x86_64 image".to_string(),
    ] {
        assert!(final_md.contains(&needle), "FINAL.md lacks {needle}:\n{final_md}");
    }
    let lock_report = read(&workspace(&forest).join("reports/02-lock-updated.md"));
    assert!(
        lock_report.contains("= published at ") && lock_report.contains(&build_id),
        "{lock_report}"
    );
}

#[test]
fn a_kit_published_elsewhere_is_built_and_named_unpinned() {
    let forest = Forest::published();
    let before = forest.files();
    // Another checkout, outside the forest: no VERIFY record of it published the kit.
    let other = forest.tmp.path().join("other-checkout");
    std::fs::create_dir_all(&other).unwrap();
    let mut cmd = support::xtask(&other, &[forest.variant.bin_dir()]);
    cmd.envs(forest.kit.env()).args([
        "variant",
        "--arch",
        "x86_64",
        "--kit",
        &format!("{KIT}@{KIT_VERSION}"),
        "--json",
        "--registry",
        &forest.registry.url(),
        "--variant-dir",
        forest.repo().to_str().unwrap(),
    ]);
    let summary: Value = serde_json::from_str(&support::run_ok(&mut cmd)).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    let kit = &summary["kits"][0];
    assert_eq!(kit["pin"], serde_json::json!({"state": "unpinned"}), "{kit}");
    assert_eq!(kit["digest"], forest.arch_digest());
    let ws = other.join(format!("planning/variant-{VARIANT}-x86_64"));
    let lock_report = read(&ws.join("reports/02-lock-updated.md"));
    assert!(
        lock_report.contains("**unpinned**: no VERIFY of this checkout or its forest published it"),
        "{lock_report}"
    );
    let final_md = read(&ws.join("FINAL.md"));
    assert!(
        final_md.contains(&format!("`{KIT}` {KIT_VERSION} (vendor `bottlerocket`): **unpinned**")),
        "{final_md}"
    );
    assert_eq!(forest.files(), before);
}

#[test]
fn a_rogue_republish_after_a_kept_run_fails_update_lock_and_validate_by_hand() {
    let forest = Forest::published();
    let (ok, summary) = forest.variant_json(&["--kit", KIT, "--keep-config"]);
    assert!(ok, "{summary}");
    let ws = workspace(&forest);
    let published = forest.verified()["index_digest"].as_str().unwrap().to_string();
    let rogue = forest.rogue_republish();
    for phase in ["validate", "update-lock"] {
        let output = support::run(forest.xtask().args(["phase", phase]).arg(&ws));
        assert!(!output.status.success(), "{phase}");
        let err = support::stderr(&output);
        assert!(
            err.contains(&format!("VERIFY recorded index {published}"))
                && err.contains(&format!("the registry serves index {rogue}")),
            "{phase}: {err}"
        );
    }
    // And a rerun does not skip to success from the kept results.
    let (ok, again) = forest.variant_json(&["--kit", KIT, "--keep-config"]);
    assert!(!ok, "{again}");
    assert_eq!(support::phase_outcomes(&again), ["skipped", "failed"], "{again}");
    support::run_ok(forest.xtask().args(["restore", "--force"]).arg(&ws));
}

/// One `next-step` call for the workspace, its answer checked against the schema.
fn next_step(forest: &Forest, ws: &Path) -> Value {
    support::answer(&support::run_ok(forest.xtask().arg("next-step").arg(ws)))
}

/// Carries out a spawn as a sub-agent would: runs the phase command (which may fail) and
/// writes an answer.
fn carry_out(forest: &Forest, ws: &Path, action: &Value) {
    let args = support::xtask_args(&action["context_data"]["phase_command"]);
    support::run(forest.xtask().args(&args));
    std::fs::write(ws.join(action["output_file"].as_str().unwrap()), "Done.").unwrap();
}

fn agent_workspace(forest: &Forest, name: &str) -> PathBuf {
    let ws = forest.root.join("planning").join(name);
    std::fs::create_dir_all(&ws).unwrap();
    let input = serde_json::json!({"kits": [{"name": KIT, "version": ""}], "variant": "", "arch": "x86_64"});
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    ws
}

#[test]
fn next_step_refuses_a_rogue_republish_until_the_user_trusts_the_registry() {
    let forest = Forest::published();
    let published = forest.verified()["index_digest"].as_str().unwrap().to_string();
    let before = forest.files();
    let rogue = forest.rogue_republish();
    let ws = agent_workspace(&forest, "agent-rogue");
    let mut spawned = Vec::new();
    let failed = loop {
        assert!(spawned.len() <= 6, "the loop does not end: {spawned:?}");
        let action = next_step(&forest, &ws);
        match action["action"].as_str().unwrap() {
            "spawn" => {
                spawned.push(action["phase"].as_str().unwrap().to_string());
                carry_out(&forest, &ws, &action);
            }
            "gate_failed" => break action,
            other => panic!("{other}: {action}"),
        }
    };
    assert_eq!(
        spawned,
        ["UPDATE_CONFIG", "UPDATE_LOCK", "UPDATE_LOCK", "UPDATE_LOCK"],
        "UPDATE_LOCK is refused on every attempt"
    );
    assert_eq!(failed["phase"], "UPDATE_LOCK");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("VERIFY recorded index {published}"))
            && reason.contains(&format!("the registry serves index {rogue}"))
            && reason.contains("--trust-registry"),
        "{reason}"
    );
    assert!(!ws.join("FINAL.md").exists());
    assert!(!forest.repo().join("build/images").exists(), "nothing was built");

    // The user decides to take what the registry serves, and resumes.
    let mut input: Value = serde_json::from_str(&read(&ws.join("input.json"))).unwrap();
    input["trust_registry"] = Value::Bool(true);
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    let mut action = support::answer(&support::run_ok(
        forest.xtask().args(support::xtask_args(&failed["resume_command"])),
    ));
    let mut calls = 0;
    while action["action"] == "spawn" {
        calls += 1;
        assert!(calls <= 3, "{action}");
        carry_out(&forest, &ws, &action);
        action = next_step(&forest, &ws);
    }
    assert_eq!(action["action"], "done", "{action}");
    let final_md = read(&ws.join("FINAL.md"));
    assert!(
        final_md.contains("**registry trusted**")
            && final_md.contains(&format!("published: index `{published}`"))
            && final_md.contains(&format!("≠ registry index `{rogue}`")),
        "{final_md}"
    );
    assert_eq!(forest.files(), before, "restored at done");
}

#[test]
fn next_step_catches_a_rogue_republish_after_validate_before_done() {
    let forest = Forest::published();
    let published = forest.verified()["index_digest"].as_str().unwrap().to_string();
    let before = forest.files();
    let ws = agent_workspace(&forest, "agent-late-rogue");
    // The whole workflow, up to VALIDATE's phase command.
    let mut phases = Vec::new();
    while phases.last().map(String::as_str) != Some("VALIDATE") {
        assert!(phases.len() < 4, "{phases:?}");
        let action = next_step(&forest, &ws);
        assert_eq!(action["action"], "spawn", "{action}");
        phases.push(action["phase"].as_str().unwrap().to_string());
        carry_out(&forest, &ws, &action);
    }
    assert_eq!(result(&ws, "validate")["ok"], true);
    let rogue = forest.rogue_republish();

    // No done: every later answer carries the mismatch until the loop gives up.
    let mut answers = Vec::new();
    let last = loop {
        assert!(answers.len() <= 8, "the loop does not end");
        let action = next_step(&forest, &ws);
        match action["action"].as_str().unwrap() {
            "spawn" => {
                let said = format!("{} {}", action["context_data"]["last_failure"], action["note"]);
                assert!(
                    said.contains(&published) && said.contains(&rogue),
                    "the spawn does not carry the mismatch: {action}"
                );
                answers.push(action["phase"].as_str().unwrap().to_string());
                carry_out(&forest, &ws, &action);
            }
            "gate_failed" => break action,
            other => panic!("{other}: {action}"),
        }
    };
    assert!(!answers.is_empty());
    let reason = last["reason"].as_str().unwrap();
    assert!(reason.contains(&published) && reason.contains(&rogue), "{reason}");
    assert!(!ws.join("FINAL.md").exists(), "no summary is handed out");
    let restore = support::xtask_args(&last["restore_command"]);
    support::run_ok(forest.xtask().args(&restore));
    assert_eq!(forest.files(), before);
}

#[test]
fn a_kit_pinned_by_digest_is_built_only_from_that_index() {
    let forest = Forest::published();
    let published = forest.verified()["index_digest"].as_str().unwrap().to_string();
    let before = forest.files();

    // build-kit printed the pinned form a teammate or CI passes to `variant --kit`.
    let summary: Value = serde_json::from_str(&support::run_ok(forest.xtask().args([
        "build-kit",
        "--kit",
        KIT,
        "--arch",
        "x86_64",
        "--json",
    ])))
    .unwrap();
    let pinned = format!("{KIT}@{KIT_VERSION}@{published}");
    assert_eq!(summary["pinned_kit"], pinned.as_str(), "{summary}");

    let rogue = forest.rogue_republish();
    // The published digest, now no longer served: refused at UPDATE_CONFIG, before any file
    // is edited, even with the registry trusted (the user named the index).
    let (ok, summary) = forest.variant_json(&["--kit", &pinned, "--trust-registry"]);
    assert!(!ok, "{summary}");
    assert_eq!(support::phase_outcomes(&summary), ["failed"], "{summary}");
    let err = summary["error"].as_str().unwrap();
    for needle in [
        format!(
            "kit `{KIT}` {KIT_VERSION} at {} is not the pinned one",
            forest.registry.url()
        ),
        format!("asks for index {published}"),
        format!("serves index {rogue} for `v{KIT_VERSION}`"),
    ] {
        assert!(err.contains(&needle), "lacks {needle}: {err}");
    }
    assert_eq!(forest.files(), before, "nothing was edited");

    // The digest now served, named: taken, recorded as pinned by that digest (no VERIFY here
    // published it), and FINAL.md's chain starts from the given digest.
    let (ok, summary) = forest.variant_json(&["--kit", &format!("{KIT}@{KIT_VERSION}@{rogue}")]);
    assert!(ok, "{summary}");
    let kit = &summary["kits"][0];
    assert_eq!(
        kit["pin"],
        serde_json::json!({"state": "digest", "index_digest": rogue}),
        "{kit}"
    );
    assert_eq!(kit["index_digest"], rogue.as_str());
    let ws = workspace(&forest);
    let input: Value = serde_json::from_str(&read(&ws.join("input.json"))).unwrap();
    assert_eq!(input["kits"][0]["digest"], rogue.as_str(), "{input}");
    let final_md = read(&ws.join("FINAL.md"));
    for needle in [
        format!("`{KIT}` {KIT_VERSION} (vendor `bottlerocket`): **pinned by digest**"),
        format!("given: index `{rogue}`"),
        format!("= registry index `{rogue}`"),
    ] {
        assert!(final_md.contains(&needle), "FINAL.md lacks {needle}:\n{final_md}");
    }
    assert!(
        read(&ws.join("reports/02-lock-updated.md")).contains(&format!("= the given index `{rogue}`")),
        "the lock report names the given digest"
    );
    assert_eq!(forest.files(), before, "restored byte for byte");
}

#[test]
fn a_digest_needs_a_version_and_the_right_form() {
    let forest = Forest::published();
    let before = forest.files();
    let good = format!("sha256:{}", "a".repeat(64));
    for (kit, needle) in [
        (format!("{KIT}@{KIT_VERSION}@sha256:abc"), "is not an index digest"),
        (
            format!("{KIT}@{KIT_VERSION}@{}", good.to_uppercase()),
            "is not an index digest",
        ),
        (
            format!("{KIT}@{KIT_VERSION}@md5:{}", "a".repeat(64)),
            "is not an index digest",
        ),
    ] {
        let output = support::run(forest.xtask().args(["variant", "--arch", "x86_64", "--kit", &kit]));
        assert!(!output.status.success(), "{kit}");
        let err = support::stderr(&output);
        assert!(err.contains(needle) && err.contains(&kit), "{kit}: {err}");
    }
    // In input.json a digest without a version is refused, naming the fix.
    let ws = forest.root.join("planning").join("agent-digest");
    std::fs::create_dir_all(&ws).unwrap();
    let input = serde_json::json!({"kits": [{"name": KIT, "digest": good}], "arch": "x86_64"});
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    let output = support::run(forest.xtask().arg("next-step").arg(&ws));
    let answer = support::answer(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(answer["action"], "error", "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("has a digest but no version"),
        "{answer}"
    );
    assert_eq!(forest.files(), before);
}
