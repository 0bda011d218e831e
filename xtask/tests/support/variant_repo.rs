//! A variant repo shaped like bottlerocket, as a git checkout: `Twoliter.toml` with comments and
//! `[[kit]]` tables, a `Twoliter.lock` pinned to upstream, `variants/<variant>/Cargo.toml`, a
//! `Makefile.toml`, and the twoliter stand-in installed (untracked) as `tools/twoliter/twoliter`.
//! `cargo make` runs the cargo-make stand-in when [`VariantRepo::bin_dir`] is first on PATH.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::kit_repo::{SDK_LOCK_DIGEST, SDK_VERSION, TWOLITER};
use super::{git, standins_dir};

/// The variant `Makefile.toml` builds when `BUILDSYS_VARIANT` is not passed.
pub const DEFAULT_VARIANT: &str = "aws-dev";

/// The lock digest the fixture's upstream lock records for a kit (no registry serves it).
pub fn upstream_digest(name: &str, version: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(format!("upstream {name} {version}")))
}

pub struct VariantRepo {
    _tmp: Option<tempfile::TempDir>,
    bin: tempfile::TempDir,
    root: PathBuf,
    pub variant: String,
    pub kits: Vec<(String, String)>,
    pub release_version: String,
}

impl VariantRepo {
    /// A fresh variant repo in a temporary directory, committed and clean; `kits` are
    /// (name, version) pairs, all of vendor `bottlerocket`.
    pub fn create(variant: &str, kits: &[(&str, &str)], release_version: &str) -> VariantRepo {
        let tmp = tempfile::Builder::new().prefix("variant-repo-").tempdir().unwrap();
        let root = tmp.path().join("bottlerocket");
        let mut repo = VariantRepo::create_at(&root, variant, kits, release_version);
        repo._tmp = Some(tmp);
        repo
    }

    /// The same at a given path (e.g. `$FOREST_ROOT/bottlerocket`), which must not exist yet.
    pub fn create_at(root: &Path, variant: &str, kits: &[(&str, &str)], release_version: &str) -> VariantRepo {
        assert!(!root.exists(), "{} already exists", root.display());
        let write = |rel: &str, text: &str| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let mut toml = format!(
            "# The version of this file's format.\nschema-version = 2\n\n\
             # The version of Bottlerocket this repo builds.\nrelease-version = \"{release_version}\"\n\
             project-vendor = \"Bottlerocket\"\n\n\
             # Where the vendor's kits and SDK are published.\n[vendor.bottlerocket]\n\
             registry = \"public.ecr.aws/bottlerocket\"\n\n\
             # The SDK the packages and images are built with.\n[sdk]\nname = \"bottlerocket-sdk\"\n\
             version = \"{SDK_VERSION}\"\nvendor = \"bottlerocket\"\n"
        );
        let mut lock = format!(
            "schema-version = 2\nproject-vendor = \"Bottlerocket\"\n\n[sdk]\nname = \"bottlerocket-sdk\"\nversion = \"{SDK_VERSION}\"\n\
             vendor = \"bottlerocket\"\nsource = \"public.ecr.aws/bottlerocket/bottlerocket-sdk:v{SDK_VERSION}\"\n\
             digest = \"{SDK_LOCK_DIGEST}\"\n"
        );
        for (name, version) in kits {
            toml.push_str(&format!(
                "\n# Kit {name}: its packages go into the variants below.\n[[kit]]\nname = \"{name}\"\n\
                 version = \"{version}\" # the kit's release\nvendor = \"bottlerocket\"\n"
            ));
            lock.push_str(&format!(
                "\n[[kit]]\nname = \"{name}\"\nversion = \"{version}\"\nvendor = \"bottlerocket\"\n\
                 source = \"public.ecr.aws/bottlerocket/{name}:v{version}\"\ndigest = \"{}\"\n",
                upstream_digest(name, version)
            ));
        }
        if kits.is_empty() {
            lock = lock.replacen("schema-version = 2\n", "schema-version = 2\nkit = []\n", 1);
        }
        write("Twoliter.toml", &toml);
        write("Twoliter.lock", &lock);
        let mut variants = vec![variant.to_string()];
        if variant != DEFAULT_VARIANT {
            variants.push(DEFAULT_VARIANT.to_string());
        }
        let members: String = variants.iter().map(|v| format!("    \"variants/{v}\",\n")).collect();
        write(
            "Cargo.toml",
            &format!("[workspace]\nresolver = \"1\"\nmembers = [\n{members}]\n"),
        );
        write("variants/variants.rs", "// This file is intentionally empty.\n");
        for v in &variants {
            write(
                &format!("variants/{v}/Cargo.toml"),
                &format!(
                    "[package]\nname = \"{v}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
                     [package.metadata.build-variant]\nincluded-packages = [\"release\"]\n\n\
                     [lib]\npath = \"../variants.rs\"\n"
                ),
            );
        }
        write(
            "Makefile.toml",
            &format!(
                "# The variant build. In the tests `cargo make` is the cargo-make stand-in, which reads\n\
                 # only the [env] defaults below.\n[config]\nskip_core_tasks = true\n\n[env]\n\
                 TWOLITER_VERSION = \"v{TWOLITER}\"\n\
                 BUILDSYS_ARCH = {{ script = [\"uname -m\"] }}\nBUILDSYS_VARIANT = \"{DEFAULT_VARIANT}\"\n\
                 BUILDSYS_VERSION_BUILD = {{ script = [\"git describe --always --dirty --exclude '*' || echo 00000000\"] }}\n\n\
                 [tasks.default]\ndependencies = [\"build\"]\n\n\
                 [tasks.install-twoliter]\nscript = [\"tools/install-twoliter.sh\"]\n\n\
                 [tasks.fetch-external-kits]\ndependencies = [\"install-twoliter\"]\n\
                 script = [\"tools/twoliter/twoliter fetch --arch ${{BUILDSYS_ARCH}}\"]\n\n\
                 [tasks.build]\ndependencies = [\"fetch-external-kits\"]\n"
            ),
        );
        write(
            ".gitignore",
            "/build\n*.tar.*\n**/target/\n**/vendor/\n/.cargo\n/.gomodcache\n/html\n/Infra.toml\n/*.pem\n/keys\n/roles\n\
             /Twoliter.override\n",
        );
        write("tools/.gitignore", "/twoliter\n");
        git(root, &["init", "-q", "-b", "develop"]);
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "Initial commit"]);
        let twoliter = root.join("tools/twoliter/twoliter");
        std::fs::create_dir_all(twoliter.parent().unwrap()).unwrap();
        std::fs::copy(standins_dir().join("twoliter"), &twoliter).unwrap();
        // Only cargo-make goes on PATH: twoliter must be found at tools/twoliter/twoliter.
        let bin = tempfile::Builder::new().prefix("variant-bin-").tempdir().unwrap();
        std::os::unix::fs::symlink(standins_dir().join("cargo-make"), bin.path().join("cargo-make")).unwrap();
        VariantRepo {
            _tmp: None,
            bin,
            root: root.to_path_buf(),
            variant: variant.to_string(),
            kits: kits.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            release_version: release_version.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A directory holding only `cargo-make` (the stand-in), to put first on PATH:
    /// `support::xtask(repo.path(), &[repo.bin_dir()])`.
    pub fn bin_dir(&self) -> &Path {
        self.bin.path()
    }

    /// Variables a test passes to the xtask run in this repo besides PATH: `TWOLITER_STANDIN`
    /// (needed only if something runs a kit repo's `make prep`).
    pub fn env(&self) -> Vec<(String, OsString)> {
        super::kit_repo::standin_env()
    }

    /// The inherited PATH with [`VariantRepo::bin_dir`] first.
    pub fn path_env(&self) -> OsString {
        let mut paths = vec![self.bin_dir().to_path_buf()];
        if let Some(path) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(paths).unwrap()
    }

    /// `tools/twoliter/twoliter <args>` in the repo.
    pub fn twoliter(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.root.join("tools/twoliter/twoliter"));
        cmd.args(args).current_dir(&self.root);
        cmd
    }

    /// `cargo make -e BUILDSYS_VARIANT=<variant> -e BUILDSYS_ARCH=<arch>` in the repo, through
    /// cargo with [`VariantRepo::bin_dir`] first on PATH.
    pub fn cargo_make(&self, arch: &str) -> Command {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args([
            "make",
            "-e",
            &format!("BUILDSYS_VARIANT={}", self.variant),
            "-e",
            &format!("BUILDSYS_ARCH={arch}"),
        ])
        .current_dir(&self.root)
        .env("PATH", self.path_env());
        cmd
    }

    /// Writes `Twoliter.override` redirecting each kit (vendor `bottlerocket`) to `registry`.
    pub fn write_override(&self, kits: &[&str], registry: &str) {
        let text: String = kits
            .iter()
            .map(|k| format!("[bottlerocket.{k}]\nregistry = \"{registry}\"\n\n"))
            .collect();
        std::fs::write(self.root.join("Twoliter.override"), text).unwrap();
    }

    /// Switches the variant to the split partition plan (OS disk plus a separate data disk).
    pub fn use_split_partition_plan(&self) {
        let path = self.root.join(format!("variants/{}/Cargo.toml", self.variant));
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\n[package.metadata.build-variant.image-layout]\npartition-plan = \"split\"\n");
        std::fs::write(&path, text).unwrap();
        git(&self.root, &["commit", "-q", "-am", "Use the split partition plan"]);
    }

    /// `build/images/<arch>-<variant>/`; its `latest` is the last good build.
    pub fn images_dir(&self, arch: &str) -> PathBuf {
        self.root.join(format!("build/images/{arch}-{}", self.variant))
    }

    /// The text of `Twoliter.lock`.
    pub fn lock(&self) -> String {
        std::fs::read_to_string(self.root.join("Twoliter.lock")).unwrap()
    }

    /// The build id of the variant build now: `git describe --always --dirty --exclude '*'`.
    pub fn build_id(&self) -> String {
        git(&self.root, &["describe", "--always", "--dirty", "--exclude", "*"])
            .trim()
            .to_string()
    }
}
