//! A kit repo shaped like bottlerocket-core-kit, as a git checkout: Cargo workspace with a kit crate
//! and two packages, `Twoliter.toml`/`Twoliter.lock` (tracked), the real `.gitignore` entries and a
//! `Makefile` with the real variables and targets. Its `make prep` installs the twoliter stand-in
//! from `$TWOLITER_STANDIN` where the real one downloads twoliter, as the version the Makefile
//! pins (`TWOLITER_VERSION ?=`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{git, run_ok, standins_dir};

/// The packages every fixture kit builds.
pub const PACKAGES: [&str; 2] = ["hello-agent", "hello-config"];

/// The SDK every fixture names (`[sdk]` of `Twoliter.toml` and `Twoliter.lock`).
pub const SDK_VERSION: &str = "0.50.1";

/// An `[sdk]` lock digest as upstream would have it (the SDK is never fetched in the tests).
pub const SDK_LOCK_DIGEST: &str = "0J8n7J1/U3dTqB9Vh3cZ2o2RzM2aQk0w5y0p3fJr1Wk=";

/// The twoliter a fixture kit repo pins unless told otherwise: the stand-in's default version.
pub const TWOLITER: &str = "0.26.0";

/// Whether twoliter `version` reads and writes schema-version 2 of Twoliter.toml and
/// Twoliter.lock (0.12.0 and later).
pub fn schema_2(version: &str) -> bool {
    let numbers: Vec<u64> = version.split(['.', '-']).take(3).map(|n| n.parse().unwrap()).collect();
    numbers.as_slice() >= [0, 12, 0].as_slice()
}

/// What a test passes to the xtask (or to `make`) so the repo's `make prep` can install twoliter:
/// `TWOLITER_STANDIN` = the twoliter stand-in script.
pub fn standin_env() -> Vec<(String, OsString)> {
    vec![(
        "TWOLITER_STANDIN".to_string(),
        standins_dir().join("twoliter").into_os_string(),
    )]
}

pub struct KitRepo {
    _tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    pub kit: String,
    pub release_version: String,
    /// The twoliter version the Makefile pins.
    pub twoliter: String,
}

impl KitRepo {
    /// A fresh kit repo in a temporary directory, committed and clean, pinning [`TWOLITER`].
    pub fn create(kit: &str, release_version: &str) -> KitRepo {
        KitRepo::create_pinned(kit, release_version, TWOLITER)
    }

    /// The same, pinning another twoliter version (its stand-in emulates that version).
    pub fn create_pinned(kit: &str, release_version: &str, twoliter: &str) -> KitRepo {
        let tmp = tempfile::Builder::new().prefix("kit-repo-").tempdir().unwrap();
        let root = tmp.path().join(kit);
        let mut repo = KitRepo::create_at_pinned(&root, kit, release_version, twoliter);
        repo._tmp = Some(tmp);
        repo
    }

    /// A kit repo at a given path (e.g. `$FOREST_ROOT/kits/<kit>`), which must not exist yet.
    pub fn create_at(root: &Path, kit: &str, release_version: &str) -> KitRepo {
        KitRepo::create_at_pinned(root, kit, release_version, TWOLITER)
    }

    fn create_at_pinned(root: &Path, kit: &str, release_version: &str, twoliter: &str) -> KitRepo {
        assert!(!root.exists(), "{} already exists", root.display());
        let write = |rel: &str, text: &str| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let members: Vec<String> = std::iter::once(format!("kits/{kit}"))
            .chain(PACKAGES.iter().map(|p| format!("packages/{p}")))
            .map(|m| format!("    \"{m}\",\n"))
            .collect();
        write(
            "Cargo.toml",
            &format!("[workspace]\nresolver = \"2\"\nmembers = [\n{}]\n", members.concat()),
        );
        write("Cargo.lock", &cargo_lock(kit));
        let deps: String = PACKAGES
            .iter()
            .map(|p| format!("{p} = {{ path = \"../../packages/{p}\" }}\n"))
            .collect();
        write(
            &format!("kits/{kit}/Cargo.toml"),
            &format!(
                "[package]\nname = \"{kit}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
                 [package.metadata.build-kit]\nvendor = \"bottlerocket\"\n\n[lib]\npath = \"../kit.rs\"\n\n\
                 [build-dependencies]\n{deps}"
            ),
        );
        write("kits/kit.rs", "// This file is intentionally empty.\n");
        write("packages/packages.rs", "// This file is intentionally empty.\n");
        for pkg in PACKAGES {
            write(
                &format!("packages/{pkg}/Cargo.toml"),
                &format!(
                    "[package]\nname = \"{pkg}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
                     [lib]\npath = \"../packages.rs\"\n"
                ),
            );
            write(&format!("packages/{pkg}/{pkg}.spec"), &spec(pkg));
        }
        // The files of the schema the pinned twoliter writes.
        let (schema, project_vendor) = match schema_2(twoliter) {
            true => ("schema-version = 2", "project-vendor = \"Bottlerocket\"\n"),
            false => ("schema-version = 1", ""),
        };
        write(
            "Twoliter.toml",
            &format!(
                "{schema}\nrelease-version = \"{release_version}\"\n{project_vendor}\n\
                 [vendor.bottlerocket]\nregistry = \"public.ecr.aws/bottlerocket\"\n\n\
                 [sdk]\nname = \"bottlerocket-sdk\"\nversion = \"{SDK_VERSION}\"\nvendor = \"bottlerocket\"\n"
            ),
        );
        write("Twoliter.lock", &sdk_only_lock(schema, project_vendor));
        write(
            ".gitignore",
            "/build/\n/.cargo\n/.gomodcache\n/html\n/Infra.toml\n/Infra.lock\n/Twoliter.override\n/tools/twoliter/\n",
        );
        write("Makefile", &makefile(kit, twoliter));
        git(root, &["init", "-q", "-b", "develop"]);
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "Initial commit"]);
        KitRepo {
            _tmp: None,
            root: root.to_path_buf(),
            kit: kit.to_string(),
            release_version: release_version.to_string(),
            twoliter: twoliter.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Variables a test passes to the xtask run in this repo (see [`standin_env`]).
    pub fn env(&self) -> Vec<(String, OsString)> {
        standin_env()
    }

    /// `make <args>` in the repo, with [`standin_env`] set.
    pub fn make(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("make");
        cmd.arg("--no-print-directory")
            .args(args)
            .current_dir(&self.root)
            .envs(standin_env());
        cmd
    }

    /// `make prep`: installs the twoliter stand-in as `tools/twoliter/twoliter`.
    pub fn prep(&self) {
        run_ok(&mut self.make(&["prep"]));
    }

    /// The installed `tools/twoliter/twoliter` (after [`KitRepo::prep`]), run in the repo.
    pub fn twoliter(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.root.join("tools/twoliter/twoliter"));
        cmd.args(args).current_dir(&self.root);
        cmd
    }

    /// The build id the pinned twoliter uses now: `git describe --always --dirty --exclude '*'`,
    /// with `--abbrev=8` from twoliter 0.7.3 on.
    pub fn build_id(&self) -> String {
        let mut args = vec!["describe", "--always", "--dirty", "--exclude", "*"];
        let version: Vec<u64> = self
            .twoliter
            .split(['.', '-'])
            .take(3)
            .map(|n| n.parse().unwrap())
            .collect();
        if version.as_slice() >= [0, 7, 3].as_slice() {
            args.push("--abbrev=8");
        }
        git(&self.root, &args).trim().to_string()
    }

    /// The archive `make build ARCH=<arch>` writes for the current build id.
    pub fn archive(&self, arch: &str) -> PathBuf {
        let (kit, ver, id) = (&self.kit, &self.release_version, self.build_id());
        self.root.join(format!("build/kits/{kit}/{kit}-v{ver}-{id}-{arch}.tar"))
    }

    /// Writes `Infra.toml` with one `[vendor.<vendor>]` publishing to `registry`.
    pub fn write_infra(&self, vendor: &str, registry: &str) {
        std::fs::write(
            self.root.join("Infra.toml"),
            format!("[vendor.{vendor}]\nregistry = \"{registry}\"\n"),
        )
        .unwrap();
    }

    /// `make build ARCH=<arch>` for each arch, then `make publish VENDOR=local` with `Infra.toml`
    /// naming `registry` (e.g. `localhost:5000`) for vendor `local`: the kit is then served as
    /// `<registry>/<kit>:v<release-version>`.
    pub fn build_and_publish(&self, registry: &str, arches: &[&str]) {
        for arch in arches {
            run_ok(&mut self.make(&["build", &format!("ARCH={arch}")]));
        }
        self.write_infra("local", registry);
        run_ok(&mut self.make(&["publish", "VENDOR=local"]));
    }

    /// Changes a package's spec and commits it, as a developer's edit; returns the new build id.
    pub fn edit_package(&self, pkg: &str) -> String {
        self.touch_package(pkg);
        git(&self.root, &["commit", "-q", "-am", &format!("{pkg}: update")]);
        self.build_id()
    }

    /// Changes a package's spec without committing: the tree becomes dirty.
    pub fn touch_package(&self, pkg: &str) {
        let path = self.root.join(format!("packages/{pkg}/{pkg}.spec"));
        let mut text = std::fs::read_to_string(&path).unwrap();
        let n = text.matches("# edit ").count() + 1;
        text.push_str(&format!("# edit {n}\n"));
        std::fs::write(path, text).unwrap();
    }

    /// `git status --porcelain` is empty.
    pub fn is_clean(&self) -> bool {
        git(&self.root, &["status", "--porcelain"]).trim().is_empty()
    }
}

fn spec(pkg: &str) -> String {
    format!(
        "Name: %{{_cross_os}}{pkg}\nVersion: 1.0.0\nRelease: 1%{{?dist}}\nSummary: The {pkg} package\n\
         License: Apache-2.0 OR MIT\nURL: https://github.com/bottlerocket-os/bottlerocket-core-kit\n\n\
         %description\n%{{summary}}.\n\n%prep\n\n%build\n\n%install\ninstall -d %{{buildroot}}%{{_cross_bindir}}\n\n\
         %files\n%dir %{{_cross_bindir}}\n"
    )
}

/// What `twoliter update` writes for a kit repo without kits.
fn sdk_only_lock(schema: &str, project_vendor: &str) -> String {
    format!(
        "{schema}\nkit = []\n{project_vendor}\n[sdk]\nname = \"bottlerocket-sdk\"\nversion = \"{SDK_VERSION}\"\n\
         vendor = \"bottlerocket\"\nsource = \"public.ecr.aws/bottlerocket/bottlerocket-sdk:v{SDK_VERSION}\"\n\
         digest = \"{SDK_LOCK_DIGEST}\"\n"
    )
}

fn cargo_lock(kit: &str) -> String {
    let mut names: Vec<&str> = PACKAGES.to_vec();
    names.push(kit);
    names.sort();
    let mut out = String::from(
        "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 3\n",
    );
    for name in names {
        out.push_str(&format!("\n[[package]]\nname = \"{name}\"\nversion = \"0.1.0\"\n"));
        if name == kit {
            let deps: String = PACKAGES.iter().map(|p| format!(" \"{p}\",\n")).collect();
            out.push_str(&format!("dependencies = [\n{deps}]\n"));
        }
    }
    out
}

fn makefile(kit: &str, twoliter: &str) -> String {
    format!(
        "# The kit repo's Makefile: same variables and targets as bottlerocket-core-kit's. In this test\n\
         # fixture `prep` installs the twoliter stand-in from $(TWOLITER_STANDIN) as the pinned version\n\
         # (unless that version is installed) instead of downloading twoliter.\n\
         TOP := $(dir $(abspath $(firstword $(MAKEFILE_LIST))))\n\
         TWOLITER_VERSION ?= \"{twoliter}\"\n\
         KIT ?= {kit}\n\
         ARCH ?= $(shell uname -m)\n\
         VENDOR ?= bottlerocket\n\
         TWOLITER_DIR := $(TOP)tools/twoliter\n\
         TWOLITER := $(TWOLITER_DIR)/twoliter\n\
         CARGO_HOME := $(TOP).cargo\n\
         export CARGO_HOME\n\n\
         .PHONY: prep update fetch build publish\n\n\
         prep:\n\
         \t@mkdir -p $(TWOLITER_DIR)\n\
         \t@if [ -x $(TWOLITER) ] && [ \"$$($(TWOLITER) --version)\" = \"twoliter $(TWOLITER_VERSION)\" ]; then :; \\\n\
         \telif [ -n \"$(TWOLITER_STANDIN)\" ]; then \\\n\
         \t  sed 's/^DEFAULT_VERSION = .*/DEFAULT_VERSION = $(TWOLITER_VERSION)/' \"$(TWOLITER_STANDIN)\" > $(TWOLITER).new \\\n\
         \t  && chmod 0755 $(TWOLITER).new && mv $(TWOLITER).new $(TWOLITER); \\\n\
         \telse echo \"cannot install twoliter: TWOLITER_STANDIN is not set\" >&2; exit 1; fi\n\n\
         update: prep\n\
         \t$(TWOLITER) update\n\n\
         fetch: prep\n\
         \t$(TWOLITER) fetch --arch $(ARCH)\n\n\
         build: fetch\n\
         \t$(TWOLITER) build kit $(KIT) --arch $(ARCH)\n\n\
         publish: prep\n\
         \t$(TWOLITER) publish kit $(KIT) $(VENDOR)\n"
    )
}
