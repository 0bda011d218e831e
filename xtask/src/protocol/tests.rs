//! The answers as orchestrators see them: one snapshot of each kind, read back into the types,
//! and checked against the shipped JSON Schema, which must be the one the types generate.

use expect_test::{expect, expect_file, Expect};

use super::*;

#[path = "../../tests/support/json_schema.rs"]
mod json_schema;

/// Where the schema ships, beside the phase files orchestrators read.
const SCHEMA_FILE: &str = "../../../phases/next-step.schema.json";

/// The JSON Schema of an answer, from the types: `Action`'s, with `type` repeating `action`.
pub(crate) fn answer_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Action)).unwrap();
    schema["title"] = "next-step answer".into();
    schema["description"] = "One JSON object printed by `cargo xtask next-step <workspace>`. `type` repeats \
                             `action` for loops written for the original skills."
        .into();
    for branch in schema["oneOf"].as_array_mut().unwrap() {
        let action = branch["properties"]["action"].clone();
        branch["properties"]["type"] = action;
        let required = branch["required"].as_array_mut().unwrap();
        required.insert(1, "type".into());
    }
    schema
}

fn shipped_schema() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../phases/next-step.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Prints the answer, compares it with its snapshot, reads it back into the same value, and
/// validates it against the shipped schema.
fn check(action: Action, snapshot: Expect) {
    let text = serde_json::to_string_pretty(&Answer(action.clone())).unwrap();
    snapshot.assert_eq(&text);
    let back: Answer = serde_json::from_str(&text).unwrap();
    assert_eq!(back.0, action, "the snapshot reads back into the same answer");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors = json_schema::faults(&shipped_schema(), &value);
    assert!(errors.is_empty(), "{text}\ndoes not match the schema: {errors:?}");
}

#[test]
fn the_shipped_schema_is_the_one_the_types_generate() {
    let text = serde_json::to_string_pretty(&answer_schema()).unwrap() + "\n";
    expect_file![SCHEMA_FILE].assert_eq(&text);
    json_schema::check_keywords(&shipped_schema()).unwrap();
}

fn context(phase: &str, subject: Subject) -> ContextData {
    ContextData {
        workspace: "/repo/planning/ws".into(),
        workflow: Workflow::Kit,
        phase: phase.into(),
        phase_command: ["cargo", "xtask", "phase", phase, "/repo/planning/ws"]
            .map(String::from)
            .to_vec(),
        cwd: "/repo".into(),
        attempt: 2,
        max_attempts: 3,
        last_failure: Some("BUILD: the archive is gone".into()),
        result_file: format!("/repo/planning/ws/results/{phase}.json").into(),
        report_file: "/repo/planning/ws/reports/02-build.md".into(),
        log_file: format!("/repo/planning/ws/logs/{phase}.log").into(),
        subject,
    }
}

#[test]
fn spawn_for_a_kit() {
    let action = Action::Spawn(Box::new(Spawn {
        workflow: Workflow::Kit,
        phase: "BUILD".into(),
        attempt: 2,
        prompt: "You run the BUILD phase …".into(),
        context_files: vec!["/repo/phases/kit/BUILD.md".into()],
        context_data: context(
            "build",
            Subject::Kit {
                kit: "core-kit".into(),
                arch: "x86_64".into(),
                kit_dir: "/repo".into(),
                registry: Some("localhost:21806".into()),
            },
        ),
        output_file: "answers/02-build.md".into(),
        note: Some("no answer from the SETUP sub-agent in answers/01-setup.md".into()),
    }));
    check(
        action,
        expect![[r#"
            {
              "action": "spawn",
              "attempt": 2,
              "context_data": {
                "arch": "x86_64",
                "attempt": 2,
                "cwd": "/repo",
                "kit": "core-kit",
                "kit_dir": "/repo",
                "last_failure": "BUILD: the archive is gone",
                "log_file": "/repo/planning/ws/logs/build.log",
                "max_attempts": 3,
                "phase": "build",
                "phase_command": [
                  "cargo",
                  "xtask",
                  "phase",
                  "build",
                  "/repo/planning/ws"
                ],
                "registry": "localhost:21806",
                "report_file": "/repo/planning/ws/reports/02-build.md",
                "result_file": "/repo/planning/ws/results/build.json",
                "workflow": "kit",
                "workspace": "/repo/planning/ws"
              },
              "context_files": [
                "/repo/phases/kit/BUILD.md"
              ],
              "note": "no answer from the SETUP sub-agent in answers/01-setup.md",
              "output_file": "answers/02-build.md",
              "phase": "BUILD",
              "prompt": "You run the BUILD phase …",
              "type": "spawn",
              "workflow": "kit"
            }"#]],
    );
}

#[test]
fn spawn_for_a_variant() {
    let mut data = context(
        "update-lock",
        Subject::Variant {
            variant_dir: "/forest/bottlerocket".into(),
            variant: "aws-dev".into(),
            arch: "aarch64".into(),
            kits: vec![
                KitRequest {
                    name: "core-kit".into(),
                    version: Some("2.3.4".into()),
                },
                KitRequest {
                    name: "kernel-kit".into(),
                    version: None,
                },
            ],
            strategy: "override".into(),
            registry: None,
        },
    );
    data.workflow = Workflow::Variant;
    data.attempt = 1;
    data.last_failure = None;
    check(
        Action::Spawn(Box::new(Spawn {
            workflow: Workflow::Variant,
            phase: "UPDATE_LOCK".into(),
            attempt: 1,
            prompt: "You run the UPDATE_LOCK phase …".into(),
            context_files: vec!["/repo/phases/variant/UPDATE_LOCK.md".into()],
            context_data: data,
            output_file: "answers/02-lock-updated.md".into(),
            note: None,
        })),
        expect![[r#"
            {
              "action": "spawn",
              "attempt": 1,
              "context_data": {
                "arch": "aarch64",
                "attempt": 1,
                "cwd": "/repo",
                "kits": [
                  {
                    "name": "core-kit",
                    "version": "2.3.4"
                  },
                  {
                    "name": "kernel-kit"
                  }
                ],
                "last_failure": null,
                "log_file": "/repo/planning/ws/logs/update-lock.log",
                "max_attempts": 3,
                "phase": "update-lock",
                "phase_command": [
                  "cargo",
                  "xtask",
                  "phase",
                  "update-lock",
                  "/repo/planning/ws"
                ],
                "registry": null,
                "report_file": "/repo/planning/ws/reports/02-build.md",
                "result_file": "/repo/planning/ws/results/update-lock.json",
                "strategy": "override",
                "variant": "aws-dev",
                "variant_dir": "/forest/bottlerocket",
                "workflow": "variant",
                "workspace": "/repo/planning/ws"
              },
              "context_files": [
                "/repo/phases/variant/UPDATE_LOCK.md"
              ],
              "output_file": "answers/02-lock-updated.md",
              "phase": "UPDATE_LOCK",
              "prompt": "You run the UPDATE_LOCK phase …",
              "type": "spawn",
              "workflow": "variant"
            }"#]],
    );
}

#[test]
fn gate_failed_names_every_attempt_and_the_restore() {
    let attempts: Vec<Failure> = (1..=2)
        .map(|attempt| Failure {
            attempt,
            reason: format!("BUILD has no result (attempt {attempt})"),
            at: 1_700_000_000 + u64::from(attempt),
        })
        .collect();
    check(
        Action::GateFailed(GateFailed {
            workflow: Workflow::Variant,
            phase: "BUILD".into(),
            reason: "BUILD did not pass its gate after 2 attempts. attempt 1: … | attempt 2: …".into(),
            attempts,
            workspace: "/repo/planning/ws".into(),
            resume_command: [
                "cargo",
                "run",
                "--quiet",
                "--manifest-path",
                "/repo/xtask/Cargo.toml",
                "--",
                "next-step",
                "/repo/planning/ws",
                "--retry",
            ]
            .map(String::from)
            .to_vec(),
            restore_command: Some(
                ["cargo", "xtask", "restore", "/repo/planning/ws"]
                    .map(String::from)
                    .to_vec(),
            ),
        }),
        expect![[r#"
            {
              "action": "gate_failed",
              "attempts": [
                {
                  "at": 1700000001,
                  "attempt": 1,
                  "reason": "BUILD has no result (attempt 1)"
                },
                {
                  "at": 1700000002,
                  "attempt": 2,
                  "reason": "BUILD has no result (attempt 2)"
                }
              ],
              "phase": "BUILD",
              "reason": "BUILD did not pass its gate after 2 attempts. attempt 1: … | attempt 2: …",
              "restore_command": [
                "cargo",
                "xtask",
                "restore",
                "/repo/planning/ws"
              ],
              "resume_command": [
                "cargo",
                "run",
                "--quiet",
                "--manifest-path",
                "/repo/xtask/Cargo.toml",
                "--",
                "next-step",
                "/repo/planning/ws",
                "--retry"
              ],
              "type": "gate_failed",
              "workflow": "variant",
              "workspace": "/repo/planning/ws"
            }"#]],
    );
}

#[test]
fn done_points_at_the_summary() {
    check(
        Action::Done(Done {
            workflow: Workflow::Kit,
            summary_file: "/repo/planning/ws/reports/04-verify.md".into(),
            workspace: "/repo/planning/ws".into(),
            phases: vec![
                DonePhase {
                    phase: "setup".into(),
                    attempts: 0,
                    note: Some("the registry answers and Infra.toml points at it".into()),
                },
                DonePhase {
                    phase: "build".into(),
                    attempts: 1,
                    note: None,
                },
            ],
            restored: None,
            note: None,
        }),
        expect![[r#"
            {
              "action": "done",
              "phases": [
                {
                  "attempts": 0,
                  "note": "the registry answers and Infra.toml points at it",
                  "phase": "setup"
                },
                {
                  "attempts": 1,
                  "note": null,
                  "phase": "build"
                }
              ],
              "summary_file": "/repo/planning/ws/reports/04-verify.md",
              "type": "done",
              "workflow": "kit",
              "workspace": "/repo/planning/ws"
            }"#]],
    );
}

#[test]
fn wait_while_the_phase_command_runs() {
    check(
        Action::Wait(Wait {
            workflow: Workflow::Kit,
            phase: "BUILD".into(),
            reason: "the BUILD phase command is running".into(),
            retry_after_s: 30,
            log_file: "/repo/planning/ws/logs/build.log".into(),
            workspace: "/repo/planning/ws".into(),
        }),
        expect![[r#"
            {
              "action": "wait",
              "log_file": "/repo/planning/ws/logs/build.log",
              "phase": "BUILD",
              "reason": "the BUILD phase command is running",
              "retry_after_s": 30,
              "type": "wait",
              "workflow": "kit",
              "workspace": "/repo/planning/ws"
            }"#]],
    );
}

#[test]
fn error_says_why() {
    check(
        Action::Error(ErrorAnswer {
            reason: "workspace /x does not exist".into(),
        }),
        expect![[r#"
            {
              "action": "error",
              "reason": "workspace /x does not exist",
              "type": "error"
            }"#]],
    );
}

#[test]
fn a_type_that_disagrees_with_the_action_is_refused() {
    let err = serde_json::from_str::<Answer>(r#"{"action": "error", "type": "done", "reason": "x"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`type` must repeat `action`"), "{err}");
    let schema = shipped_schema();
    let faults = |value| json_schema::faults(&schema, &value);
    assert!(!faults(serde_json::json!({"action": "error", "type": "done", "reason": "x"})).is_empty());
    assert!(!faults(serde_json::json!({"action": "error", "reason": "x"})).is_empty());
    assert!(!faults(serde_json::json!({"action": "error", "type": "error", "reason": 3})).is_empty());
    assert!(!faults(serde_json::json!({"action": "error", "type": "error", "reason": "x", "extra": 1})).is_empty());
    assert!(faults(serde_json::json!({"action": "error", "type": "error", "reason": "x"})).is_empty());
}
