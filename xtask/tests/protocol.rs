//! The next-step protocol at its edges: unusable calls answer one `error` object and exit 2,
//! and leave the workspace as it was.

mod support;

use std::path::Path;

use serde_json::Value;

fn next_step(root: &Path, ws: &Path) -> (i32, Value, String) {
    let output = support::run(support::xtask(root, &[]).arg("next-step").arg(ws));
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let value: Value = support::answer(&stdout);
    (output.status.code().unwrap(), value, support::stderr(&output))
}

#[test]
fn missing_workspace_is_an_error_action() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("planning/nope");
    let (code, action, _) = next_step(root.path(), &ws);
    assert_eq!(code, 2);
    assert_eq!(action["action"], "error");
    assert!(
        action["reason"].as_str().unwrap().contains("does not exist"),
        "{action}"
    );
    assert!(!ws.exists(), "nothing is created for an unusable call");
}

#[test]
fn bad_inputs_are_error_actions_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let cases = [
        ("{not json", "not valid JSON"),
        (r#"{"kit_name": ""}"#, "kit_name in input.json is empty"),
        (r#"{"kit_name": "../../etc", "arch": "x86_64"}"#, "contains `.`"),
        (r#"{"kit_name": "a/b", "arch": "x86_64"}"#, "contains `/`"),
        (
            r#"{"kit_name": "core-kit", "arch": "sparc"}"#,
            "`arch` in input.json: unknown arch `sparc`: use x86_64 (amd64) or aarch64 (arm64)",
        ),
        (r#"{"kits": [{"name": "core-kit", "version": "one"}]}"#, "not semver"),
        (
            r#"{"kit_name": "core-kit", "arch": "x86_64", "kit_dir": "/definitely/not/here"}"#,
            "does not exist",
        ),
    ];
    for (i, (input, expected)) in cases.iter().enumerate() {
        let ws = root.path().join(format!("ws{i}"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(ws.join("input.json"), input).unwrap();
        let before = support::snapshot(&ws);
        let (code, action, _) = next_step(root.path(), &ws);
        assert_eq!(code, 2, "{input}");
        assert_eq!(action["action"], "error", "{input}");
        let reason = action["reason"].as_str().unwrap();
        assert!(reason.contains(expected), "{input}: {reason}");
        assert_eq!(support::snapshot(&ws), before, "{input}: files changed");
    }
}

#[test]
fn phase_names_are_checked() {
    let root = tempfile::tempdir().unwrap();
    let kit = root.path().join("kit");
    std::fs::create_dir_all(kit.join("kits/core-kit")).unwrap();
    std::fs::write(
        kit.join("Twoliter.toml"),
        "schema-version = 1\nrelease-version = \"1.0.0\"\n",
    )
    .unwrap();
    let ws = root.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let input = serde_json::json!({"kit_name": "core-kit", "arch": "x86_64", "kit_dir": kit});
    std::fs::write(ws.join("input.json"), input.to_string()).unwrap();
    let output = support::run(support::xtask(root.path(), &[]).args(["phase", "validate"]).arg(&ws));
    assert!(!output.status.success());
    let err = support::stderr(&output);
    assert!(
        err.contains("`validate` is not a phase of the kit workflow: use one of setup, build, publish, verify"),
        "{err}"
    );
    let output = support::run(
        support::xtask(root.path(), &[])
            .args(["phase", "setup"])
            .arg(root.path().join("missing")),
    );
    assert!(support::stderr(&output).contains("does not exist"));
}

#[test]
fn status_lists_workspaces_with_their_state() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("planning/build-kit-core-kit-x86_64");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("input.json"), r#"{"kit_name": "core-kit", "arch": "x86_64"}"#).unwrap();
    let broken = root.path().join("planning/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("input.json"), "{").unwrap();
    let out = support::run_ok(support::xtask(root.path(), &[]).args(["status", "--json"]));
    let list: Value = serde_json::from_str(&out).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let kit = list
        .iter()
        .find(|s| s["workspace"].as_str().unwrap().ends_with("x86_64"))
        .unwrap();
    assert_eq!(kit["workflow"], "kit");
    assert_eq!(kit["state"], "setup");
    assert_eq!(kit["phases"].as_array().unwrap().len(), 4);
    let bad = list
        .iter()
        .find(|s| s["workspace"].as_str().unwrap().ends_with("broken"))
        .unwrap();
    assert!(bad["problem"].as_str().unwrap().contains("not valid JSON"), "{bad}");
}
