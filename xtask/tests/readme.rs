//! The README's commands, run as written: the forest walkthrough (two kits, one variant) in
//! fixture repos shaped like the real ones, with stand-in twoliter and cargo-make.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::kit_repo::KitRepo;
use support::variant_repo::VariantRepo;

const CORE: &str = "bottlerocket-core-kit";
const KERNEL: &str = "bottlerocket-kernel-kit";

/// This project's README.md, or `None` in a copy adopted into a kit or variant repo (the crate
/// is its own workspace there, and README.md is the repo's).
fn readme(test: &str) -> Option<String> {
    if Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock").is_file() {
        eprintln!("SKIP {test}: this is an adopted copy of the xtask; README.md is not its own");
        return None;
    }
    Some(std::fs::read_to_string(support::repo_root().join("README.md")).unwrap())
}

/// The first ```sh block after `heading` in README.md.
fn readme_block(readme: &str, heading: &str) -> String {
    let section = &readme[readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading}"))..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = section[start..].find("```").unwrap();
    section[start..start + end].to_string()
}

/// `cargo`, as the repos' alias makes it: `cargo xtask …` runs the xtask under test for the
/// checkout whose `.cargo/config.toml` holds the `xtask` alias (the adopted crate must be there
/// when the alias names it); anything else is the real cargo.
const CARGO_SHIM: &str = r#"#!/bin/sh
if [ "$1" = xtask ]; then
  shift
  dir=$PWD
  while [ "$dir" != / ]; do
    config="$dir/.cargo/config.toml"
    if [ -f "$config" ] && grep -q '^xtask = "run ' "$config"; then
      if grep -q 'manifest-path xtask/Cargo.toml' "$config" && [ ! -f "$dir/xtask/Cargo.toml" ]; then
        echo "the alias in $config names xtask/Cargo.toml, which is missing" >&2; exit 101
      fi
      XTASK_ROOT=$dir exec "$XTASK_BIN" "$@"
    fi
    dir=$(dirname "$dir")
  done
  echo "error: no such command: \`xtask\`" >&2; exit 101
fi
exec "$REAL_CARGO" "$@"
"#;

#[test]
fn the_forest_walkthrough_runs_as_written() {
    let Some(readme) = readme("the_forest_walkthrough_runs_as_written") else {
        return;
    };
    let block = readme_block(&readme, "### A forest: two kits, one variant");
    let first = "export FOREST_ROOT=~/forest\n";
    assert!(
        block.starts_with(first),
        "the walkthrough starts with {first:?}:\n{block}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let forest = tmp.path().join("forest");
    let core = KitRepo::create_at(&forest.join("kits").join(CORE), CORE, "2.3.4");
    let kernel = KitRepo::create_at(&forest.join("kits").join(KERNEL), KERNEL, "1.5.0");
    let variant = VariantRepo::create_at(
        &forest.join("bottlerocket"),
        "aws-dev",
        &[(CORE, "2.0.0"), (KERNEL, "1.0.0")],
        "1.26.1",
    );
    let _cleanup = support::registry::Cleanup::in_forest(core.path(), &forest);

    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let shim = bin.join("cargo");
    std::fs::write(&shim, CARGO_SHIM).unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let real_cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut path = vec![bin.clone(), variant.bin_dir().to_path_buf()];
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));

    let script = block.replacen(first, &format!("export FOREST_ROOT={}\n", forest.display()), 1);
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", &script])
        .current_dir(support::repo_root())
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("XTASK_BIN", support::xtask_bin())
        .env("REAL_CARGO", real_cargo)
        .env_remove("XTASK_ROOT")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .envs(core.env());
    if support::docker_available("the_forest_walkthrough_runs_as_written (docker backend)") {
        cmd.env("XTASK_REGISTRY_IMAGE", support::registry::ensure_test_image());
    }
    let out = support::run_ok(&mut cmd);

    // `registry list` at the end shows both kits, at the versions their repos released.
    assert!(out.contains(CORE) && out.contains("v2.3.4"), "{out}");
    assert!(out.contains(KERNEL) && out.contains("v1.5.0"), "{out}");
    // Each repo holds the committed xtask, and the variant repo is as it was committed.
    for repo in [core.path(), kernel.path(), variant.path()] {
        assert!(repo.join("xtask/Cargo.lock").is_file(), "{}", repo.display());
        assert_eq!(
            support::git(repo, &["status", "--porcelain"]),
            "",
            "{} is clean",
            repo.display()
        );
        let log = support::git(repo, &["log", "--format=%s", "-1"]);
        assert_eq!(log.trim(), "Add cargo xtask for local kit and variant builds");
    }
    assert!(!variant.path().join("Twoliter.override").exists());
    // The variant was built from both kits, each at its kit repo's verified version.
    let final_md = workspace_file(variant.path(), "reports/FINAL.md");
    for needle in [CORE, "2.3.4", KERNEL, "1.5.0", ".img.lz4"] {
        assert!(final_md.contains(needle), "FINAL.md lacks {needle}:\n{final_md}");
    }
}

/// A file of the one variant workspace under the repo's planning/.
fn workspace_file(repo: &Path, rel: &str) -> String {
    let planning = repo.join("planning");
    let ws: Vec<PathBuf> = std::fs::read_dir(&planning)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("variant-"))
        .collect();
    assert_eq!(ws.len(), 1, "{ws:?}");
    std::fs::read_to_string(ws[0].join(rel)).unwrap()
}

/// The README's first block: the main job, then the tests; `.ci/run` runs that test command as
/// it is written there.
#[test]
fn ci_runs_the_readme_test_command() {
    let Some(readme) = readme("ci_runs_the_readme_test_command") else {
        return;
    };
    let block = readme_block(&readme, "# bottlerocket-xtask");
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands.len(), 2, "{block}");
    assert!(commands[0].starts_with("cargo xtask build-kit"), "{block}");
    assert_eq!(commands[1], "cargo xtask test --install");
    let ci = std::fs::read_to_string(support::repo_root().join(".ci/run")).unwrap();
    let last = ci.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(last, commands[1], ".ci/run ends with the README's test command");
}
