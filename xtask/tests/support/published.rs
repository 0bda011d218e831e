//! A forest with one kit published: the kit repo at `$FOREST_ROOT/kits/<kit>` built and
//! published by `build-kit`, the variant repo at `$FOREST_ROOT/bottlerocket` pinning the kit at
//! an upstream version, and the xtask acting for a checkout of its own, with its registry.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::kit_repo::KitRepo;
use super::registry::TestRegistry;
use super::variant_repo::VariantRepo;

pub const KIT: &str = "core-kit";
pub const KIT_VERSION: &str = "2.3.4";
pub const UPSTREAM_VERSION: &str = "2.0.0";
pub const VARIANT: &str = "aws-dev";

/// Fields drop in order: the registry is removed while its checkout still exists.
pub struct Forest {
    pub registry: TestRegistry,
    /// The checkout the xtask acts for (`XTASK_ROOT`): its `planning/` and registry.
    pub root: PathBuf,
    /// `$FOREST_ROOT`
    pub forest: PathBuf,
    pub kit: KitRepo,
    pub variant: VariantRepo,
    pub tmp: tempfile::TempDir,
}

impl Forest {
    /// The kit built and published by `build-kit`; the variant repo untouched.
    pub fn published() -> Forest {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("xtask-checkout");
        let forest = tmp.path().join("forest");
        std::fs::create_dir_all(&root).unwrap();
        let kit = KitRepo::create_at(&forest.join("kits").join(KIT), KIT, KIT_VERSION);
        kit.prep();
        let variant = VariantRepo::create_at(
            &forest.join("bottlerocket"),
            VARIANT,
            &[(KIT, UPSTREAM_VERSION)],
            "1.26.1",
        );
        let registry = TestRegistry::start_native(&root);
        let forest = Forest {
            tmp,
            root,
            forest,
            kit,
            variant,
            registry,
        };
        let out = super::run_ok(
            forest
                .xtask()
                .args(["build-kit", "--kit", KIT, "--arch", "x86_64", "--json"]),
        );
        let summary: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(summary["ok"], true, "{summary}");
        forest
    }

    pub fn xtask(&self) -> Command {
        let mut cmd = super::xtask(&self.root, &[self.variant.bin_dir()]);
        cmd.env("FOREST_ROOT", &self.forest).envs(self.kit.env());
        cmd
    }

    pub fn repo(&self) -> &Path {
        self.variant.path()
    }

    /// The variant repo's files, without `build/` (the build's output is meant to stay).
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        super::snapshot(self.repo())
            .into_iter()
            .filter(|(p, _)| !p.starts_with("build"))
            .collect()
    }

    pub fn variant_json(&self, args: &[&str]) -> (bool, Value) {
        let output = super::run(self.xtask().args(["variant", "--arch", "x86_64", "--json"]).args(args));
        let value: Value = serde_json::from_slice(&output.stdout).expect("--json prints one object");
        (output.status.success(), value)
    }

    /// The registry's answer for the kit's index, asked for directly (not through the xtask).
    fn served_index(&self) -> minreq::Response {
        minreq::get(format!(
            "http://127.0.0.1:{}/v2/{KIT}/manifests/v{KIT_VERSION}",
            self.registry.port
        ))
        .with_header("Accept", "application/vnd.oci.image.index.v1+json")
        .with_timeout(10)
        .send()
        .unwrap()
    }

    /// Registry digest of the kit's x86_64 image (independently of the xtask).
    pub fn arch_digest(&self) -> String {
        let response = self.served_index();
        let index: Value = serde_json::from_slice(response.as_bytes()).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == "amd64")
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The registry's digest of the index it serves for the kit now (`Docker-Content-Digest`),
    /// read independently of the xtask.
    pub fn index_digest(&self) -> String {
        let response = self.served_index();
        assert_eq!(response.status_code, 200, "{KIT}:v{KIT_VERSION} is served");
        let digest = super::registry::digest(response.as_bytes());
        if let Some(header) = response.headers.get("docker-content-digest") {
            assert_eq!(header, &digest, "the registry's digest is that of the bytes it serves");
        }
        digest
    }

    /// What the kit workspace's VERIFY recorded (`data` of its result).
    pub fn verified(&self) -> Value {
        let path = self
            .root
            .join(format!("planning/build-kit-{KIT}-x86_64/results/verify.json"));
        let result: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(result["ok"], true, "{result}");
        result["data"].clone()
    }

    /// Someone else publishes the same kit version with other content, straight through
    /// twoliter (`make build`, `make publish`) from a clone of the kit repo, with no xtask and
    /// so no VERIFY record: the registry's tag now names another index, whose digest is returned.
    pub fn rogue_republish(&self) -> String {
        let clone = self.tmp.path().join("rogue").join(KIT);
        std::fs::create_dir_all(clone.parent().unwrap()).unwrap();
        super::run_ok(
            Command::new("git")
                .args(["clone", "-q"])
                .arg(self.kit.path())
                .arg(&clone),
        );
        let spec = clone.join("packages/hello-agent/hello-agent.spec");
        let mut text = std::fs::read_to_string(&spec).unwrap();
        text.push_str("# other content\n");
        std::fs::write(&spec, text).unwrap();
        super::git(&clone, &["commit", "-q", "-am", "Other content"]);
        let make = |args: &[&str]| {
            let mut cmd = Command::new("make");
            cmd.arg("--no-print-directory")
                .args(args)
                .current_dir(&clone)
                .envs(super::kit_repo::standin_env());
            super::run_ok(&mut cmd);
        };
        make(&["prep"]);
        make(&["build", "ARCH=x86_64"]);
        std::fs::write(
            clone.join("Infra.toml"),
            format!("[vendor.local]\nregistry = \"{}\"\n", self.registry.url()),
        )
        .unwrap();
        make(&["publish", "VENDOR=local"]);
        let digest = self.index_digest();
        assert_ne!(
            digest,
            self.verified()["index_digest"].as_str().unwrap(),
            "the registry serves another index"
        );
        digest
    }
}
