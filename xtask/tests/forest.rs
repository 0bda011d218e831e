//! A forest as the kit and variant skills lay it out: two kit repos under `$FOREST_ROOT/kits/`,
//! each with its own twoliter and its own xtask checkout, and the variant repo at
//! `$FOREST_ROOT/bottlerocket` pinning both. They share the forest's one registry; and a kit
//! repo outside the forest can publish to a registry that another checkout runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::kit_repo::KitRepo;
use support::registry::TestRegistry;
use support::variant_repo::VariantRepo;

const CORE: &str = "core-kit";
const CORE_VERSION: &str = "2.3.4";
const KERNEL: &str = "kernel-kit";
const KERNEL_VERSION: &str = "1.5.0";
const VARIANT: &str = "aws-dev";

/// Fields drop in order: the registry is removed while the forest still exists.
struct Forest {
    registry: TestRegistry,
    root: PathBuf,
    core: KitRepo,
    kernel: KitRepo,
    variant: VariantRepo,
    _tmp: tempfile::TempDir,
}

impl Forest {
    /// Two prepped kit repos and a variant repo pinning both (at upstream versions); the forest's
    /// registry started from the core kit's checkout.
    fn new() -> Forest {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("forest");
        let core = KitRepo::create_at(&root.join("kits").join(CORE), CORE, CORE_VERSION);
        let kernel = KitRepo::create_at(&root.join("kits").join(KERNEL), KERNEL, KERNEL_VERSION);
        core.prep();
        kernel.prep();
        let variant = VariantRepo::create_at(
            &root.join("bottlerocket"),
            VARIANT,
            &[(CORE, "2.0.0"), (KERNEL, "1.0.0")],
            "1.26.1",
        );
        let registry = TestRegistry::start_native_in_forest(core.path(), &root);
        Forest {
            registry,
            root,
            core,
            kernel,
            variant,
            _tmp: tmp,
        }
    }

    /// The xtask as adopted into `repo` (it acts for that checkout), in the forest.
    fn xtask(&self, repo: &Path) -> Command {
        let mut cmd = support::xtask(repo, &[self.variant.bin_dir()]);
        cmd.env("FOREST_ROOT", &self.root).envs(self.core.env());
        cmd
    }

    fn json(&self, repo: &Path, args: &[&str]) -> (bool, Value) {
        let output = support::run(self.xtask(repo).args(args));
        let value = serde_json::from_slice(&output.stdout).expect("--json prints one object");
        (output.status.success(), value)
    }

    /// The variant repo's files, without `build/` (the build's output stays) and `planning/`
    /// (the workspace of the adopted xtask).
    fn variant_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        support::snapshot(self.variant.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with("build") && !p.starts_with("planning"))
            .collect()
    }

    /// The registry digest of a kit's x86_64 image, read here independently of the xtask.
    fn arch_digest(&self, kit: &str, version: &str) -> String {
        let response = minreq::get(format!(
            "http://127.0.0.1:{}/v2/{kit}/manifests/v{version}",
            self.registry.port
        ))
        .with_header("Accept", "application/vnd.oci.image.index.v1+json")
        .with_timeout(10)
        .send()
        .unwrap();
        assert_eq!(response.status_code, 200, "{kit}:v{version} is served");
        let index: Value = serde_json::from_slice(response.as_bytes()).unwrap();
        index["manifests"][0]["digest"].as_str().unwrap().to_string()
    }
}

#[test]
fn two_kits_built_in_their_own_repos_make_one_variant() {
    let forest = Forest::new();
    let url = forest.registry.url();

    // Every checkout of the forest sees the one registry, whose state is the forest's.
    for repo in [forest.core.path(), forest.kernel.path(), forest.variant.path()] {
        let out = support::run_ok(forest.xtask(repo).args(["registry", "url"]));
        assert_eq!(out.trim(), url, "from {}", repo.display());
        let (ok, status) = forest.json(repo, &["registry", "status", "--json"]);
        assert!(ok, "{status}");
        assert_eq!(status["state"], "healthy");
        let data_dir = PathBuf::from(status["data_dir"].as_str().unwrap());
        assert!(data_dir.starts_with(forest.root.join(".xtask/registry")), "{status}");
    }

    // Each kit is built and published from its own repo, into the forest's registry.
    for (repo, kit, version) in [
        (&forest.core, CORE, CORE_VERSION),
        (&forest.kernel, KERNEL, KERNEL_VERSION),
    ] {
        let (ok, summary) = forest.json(repo.path(), &["build-kit", "--arch", "x86_64", "--json"]);
        assert!(ok, "{summary}");
        assert_eq!(summary["kit"], kit);
        assert_eq!(summary["verified"]["registry"], url.as_str());
        assert_eq!(summary["verified"]["version"], version);
        assert!(
            repo.is_clean(),
            "{}",
            support::git(repo.path(), &["status", "--porcelain"])
        );
    }
    for repo in [forest.core.path(), forest.kernel.path(), forest.variant.path()] {
        assert!(
            !repo.join("planning/.registry").exists(),
            "{} started no registry of its own",
            repo.display()
        );
    }
    let (ok, list) = forest.json(forest.variant.path(), &["registry", "list", "--json"]);
    assert!(ok, "{list}");
    let listed = list["images"].to_string();
    assert!(listed.contains(CORE) && listed.contains(KERNEL), "{list}");

    // The variant, from its own repo: both kits from the forest's registry, each at the version
    // its kit repo's VERIFY recorded; the repo restored byte for byte.
    let before = forest.variant_files();
    let (ok, summary) = forest.json(forest.variant.path(), &["variant", "--arch", "x86_64", "--json"]);
    assert!(ok, "{summary}");
    assert_eq!(summary["restored"], true);
    assert_eq!(support::phase_outcomes(&summary), ["ran", "ran", "ran", "ran"]);
    let kits = summary["kits"].as_array().unwrap();
    assert_eq!(kits.len(), 2, "{summary}");
    for (kit, version) in [(CORE, CORE_VERSION), (KERNEL, KERNEL_VERSION)] {
        let fetched = kits.iter().find(|k| k["name"] == kit).unwrap();
        assert_eq!(fetched["version"], version);
        assert_eq!(fetched["digest"], forest.arch_digest(kit, version).as_str());
    }
    let ws = forest.variant.path().join(format!("planning/variant-{VARIANT}-x86_64"));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("results/update-config.json")).unwrap()).unwrap();
    let resolved = config["data"]["kits"].as_array().unwrap();
    for (kit, repo) in [(CORE, &forest.core), (KERNEL, &forest.kernel)] {
        let entry = resolved.iter().find(|k| k["name"] == kit).unwrap();
        assert_eq!(entry["version_from"], "verify", "{entry}");
        assert_eq!(entry["kit_dir"], repo.path().to_str().unwrap());
    }
    assert_eq!(forest.variant_files(), before);

    // Stopped from one repo, it is stopped for all; started from another, the data is there.
    support::run_ok(forest.xtask(forest.kernel.path()).args(["registry", "stop"]));
    assert!(!support::registry::answers(forest.registry.port));
    let status = support::run(forest.xtask(forest.variant.path()).args(["registry", "status"]));
    assert_eq!(status.status.code(), Some(1), "stopped");
    support::run_ok(forest.xtask(forest.variant.path()).args(["registry", "start"]));
    assert_eq!(
        forest.arch_digest(CORE, CORE_VERSION),
        kits.iter().find(|k| k["name"] == CORE).unwrap()["digest"]
            .as_str()
            .unwrap()
    );
}

/// A kit repo of its own (no forest) and a registry that another checkout started.
fn kit_and_foreign_registry() -> (KitRepo, TestRegistry, tempfile::TempDir) {
    let repo = KitRepo::create(CORE, CORE_VERSION);
    repo.prep();
    let other = tempfile::tempdir().unwrap();
    let registry = TestRegistry::start_native(other.path());
    (repo, registry, other)
}

fn kit_xtask(repo: &KitRepo) -> Command {
    let mut cmd = support::xtask(repo.path(), &[]);
    cmd.envs(repo.env());
    cmd
}

#[test]
fn build_kit_publishes_to_a_registry_another_checkout_runs() {
    let (repo, registry, other) = kit_and_foreign_registry();
    let out = support::run_ok(kit_xtask(&repo).args([
        "build-kit",
        "--arch",
        "x86_64",
        "--json",
        "--registry",
        &registry.url(),
    ]));
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["verified"]["registry"], registry.url().as_str());
    let ws = repo.path().join(format!("planning/build-kit-{CORE}-x86_64"));
    let setup: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("results/setup.json")).unwrap()).unwrap();
    assert_eq!(setup["data"]["backend"], Value::Null, "{setup}");
    assert!(support::registry::answers(registry.port));

    // This checkout started nothing and has nothing of the registry to stop or clean.
    assert!(!repo.path().join("planning/.registry").exists());
    let status = support::run(kit_xtask(&repo).args(["registry", "status"]));
    assert_eq!(
        status.status.code(),
        Some(2),
        "this checkout's own registry is not created"
    );
    support::run_ok(kit_xtask(&repo).args(["registry", "stop"]));
    support::run_ok(kit_xtask(&repo).args(["registry", "clean"]));
    assert!(
        support::registry::answers(registry.port),
        "the other checkout's registry still runs"
    );

    // A second run has nothing to do; the registry is only checked.
    let out = support::run_ok(kit_xtask(&repo).args([
        "build-kit",
        "--arch",
        "x86_64",
        "--json",
        "--registry",
        &registry.url(),
    ]));
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        support::phase_outcomes(&again),
        ["skipped", "skipped", "skipped", "skipped"]
    );
    // The registry is stopped from its checkout, so before that checkout is deleted.
    drop(registry);
    drop(other);
}

#[test]
fn a_registry_address_that_is_not_a_healthy_loopback_registry_is_refused() {
    let repo = KitRepo::create(CORE, CORE_VERSION);
    repo.prep();
    let _cleanup = support::registry::Cleanup::new(repo.path());
    let nothing = support::free_port();
    for (registry, needle) in [
        (
            format!("localhost:{nothing}"),
            format!("no healthy registry answers at localhost:{nothing}"),
        ),
        (
            // A shared registry is only used when `registry check` passes; `.invalid` never resolves.
            "registry.invalid:5000/team".to_string(),
            "cannot be resolved".to_string(),
        ),
    ] {
        let output = support::run(kit_xtask(&repo).args(["build-kit", "--arch", "x86_64", "--registry", &registry]));
        assert!(!output.status.success());
        let err = support::stderr(&output);
        assert!(err.contains(&needle), "{err}");
        assert!(!repo.path().join("Infra.toml").exists(), "nothing written");
        assert!(!repo.path().join("planning/.registry").exists(), "no registry started");
    }
    assert!(!support::registry::answers(nothing), "nothing was started on the port");
}
