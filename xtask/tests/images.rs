//! `cargo xtask images check` on sample builds written by `cargo xtask images sample`: a good
//! build passes, a corrupted image fails naming its file.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const VERSION: &str = "1.24.0";
const BUILD_ID: &str = "a1b2c3d4";

fn xtask(dir: &Path) -> Command {
    support::xtask(dir, &[])
}

/// A sample build of a tiny OS disk (and a data disk) under `<tmp>/images`; returns its directory.
fn sample(tmp: &Path) -> PathBuf {
    let out = support::run_ok(
        xtask(tmp)
            .args(["images", "sample", "--size-mib", "4", "--data"])
            .arg(tmp.join("images")),
    );
    let dir = PathBuf::from(out.trim());
    assert!(
        dir.ends_with(format!("x86_64-aws-dev/{VERSION}-{BUILD_ID}")),
        "{}",
        dir.display()
    );
    dir
}

#[test]
fn sample_then_check_passes_and_reports_the_disks() {
    let tmp = tempfile::tempdir().unwrap();
    sample(tmp.path());
    let out = support::run_ok(
        xtask(tmp.path())
            .args(["images", "check", "--json"])
            .arg(tmp.path().join("images")),
    );
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["variant"], "aws-dev");
    assert_eq!(
        summary["release_version"], VERSION,
        "taken from the directory `latest` names"
    );
    assert_eq!(summary["freshness_checked"], false);
    let report = &summary["report"];
    assert_eq!(report["build_id"], BUILD_ID);
    let decoded: Vec<u64> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["decoded_bytes"].as_u64())
        .collect();
    assert_eq!(decoded, [4 << 20, 4 << 20], "the OS and data disks were decoded");
    assert!(
        report["partitions"].to_string().contains("BOTTLEROCKET-ROOT-A"),
        "{report}"
    );
    // Without --json: a readable report on stdout.
    let text = support::run_ok(
        xtask(tmp.path())
            .args(["images", "check"])
            .arg(tmp.path().join("images")),
    );
    assert!(text.contains("ok: the images are valid"), "{text}");
}

#[test]
fn corrupted_image_fails_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample(tmp.path());
    let os = dir.join(format!("bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}.img.lz4"));
    let mut bytes = std::fs::read(&os).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&os, bytes).unwrap();
    let output = support::run(
        xtask(tmp.path())
            .args([
                "images",
                "check",
                "--variant",
                "aws-dev",
                "--arch",
                "x86_64",
                "--release-version",
                VERSION,
            ])
            .arg(tmp.path().join("images")),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = support::stderr(&output);
    assert!(stderr.contains(&os.display().to_string()), "{stderr}");
    assert!(stderr.contains("checksum") || stderr.contains("LZ4"), "{stderr}");
    // --json still prints the report, with the problem.
    let output = support::run(
        xtask(tmp.path())
            .args(["images", "check", "--json"])
            .arg(tmp.path().join("images")),
    );
    assert_eq!(output.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["ok"], false);
    assert!(summary["report"]["problems"][0]
        .as_str()
        .unwrap()
        .contains(&os.display().to_string()));
}

#[test]
fn a_variant_repo_is_checked_at_its_build_images_with_its_release_version() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("bottlerocket");
    std::fs::create_dir_all(repo.join("variants/aws-dev")).unwrap();
    std::fs::write(
        repo.join("Twoliter.toml"),
        "schema-version = 1\nrelease-version = \"1.30.0\"\n",
    )
    .unwrap();
    support::run_ok(
        xtask(tmp.path())
            .args(["images", "sample", "--size-mib", "4"])
            .arg(repo.join("build/images")),
    );
    // The repo says 1.30.0, the images are 1.24.0: they are not this repo's build.
    let output = support::run(xtask(tmp.path()).args(["images", "check"]).arg(&repo));
    assert_eq!(output.status.code(), Some(1));
    assert!(support::stderr(&output).contains("not a build of release version 1.30.0"));
    support::run_ok(
        xtask(tmp.path())
            .args(["images", "check", "--release-version", VERSION])
            .arg(&repo),
    );
    // --built-after turns the freshness check on.
    let future = (std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let output = support::run(
        xtask(tmp.path())
            .args([
                "images",
                "check",
                "--release-version",
                VERSION,
                "--built-after",
                &future,
            ])
            .arg(&repo),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(support::stderr(&output).contains("older than the build"));
}
