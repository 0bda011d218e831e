//! The variant workflow: UPDATE_CONFIG → UPDATE_LOCK → BUILD → VALIDATE, in a variant repo
//! (bottlerocket), against kits published to the local registry. Each phase has `run` (acts,
//! returns its observations and a report) and `gate` (re-checks them against reality).

pub mod backup;
pub mod build;
pub mod update_config;
pub mod update_lock;
pub mod validate;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::arch::Arch;
use crate::flags::Strategy;
use crate::phases::{check, execute};
use crate::project;
use crate::workflow::machine::Gate;
use crate::workflow::workspace::{registry_port, VariantInput, Workspace};
use crate::workflow::{PhaseDef, Workflow};

/// Everything a variant phase needs, resolved from `input.json` without touching the network.
#[derive(Debug, Clone)]
pub struct Variant {
    pub ws: Workspace,
    pub input: VariantInput,
    pub repo: PathBuf,
    pub variant: String,
    pub arch: Arch,
    pub strategy: Strategy,
}

impl Variant {
    pub fn resolve(ws: &Workspace, input: &VariantInput) -> Result<Variant> {
        let repo = match &input.variant_dir {
            Some(dir) => project::absolute(dir),
            None => default_repo()?,
        };
        check_repo(&repo)?;
        let variant = match &input.variant {
            Some(v) => v.clone(),
            None => default_variant(&repo)?,
        };
        project::check_identifier("variant", &variant)?;
        if !repo.join("variants").join(&variant).is_dir() {
            bail!(
                "unknown variant `{variant}`: {} has {}",
                repo.join("variants").display(),
                list_or_none(&variants_in(&repo))
            );
        }
        let arch = match input.arch {
            Some(arch) => arch,
            None => Arch::host()?,
        };
        let strategy = match input.strategy.as_deref() {
            Some("vendor") => Strategy::Vendor,
            _ => Strategy::Override,
        };
        Ok(Variant {
            ws: ws.clone(),
            input: input.clone(),
            repo,
            variant,
            arch,
            strategy,
        })
    }

    /// The registry the kits come from: `input.json`'s, else this checkout's (started if it
    /// is merely stopped; its data is kept).
    pub fn registry_port(&self, sh: &Shell) -> Result<u16> {
        match &self.input.registry {
            Some(registry) => registry_port(registry),
            None => Ok(crate::registry::ensure_running(sh, &Default::default())?.port),
        }
    }

    /// Adds what a sub-agent needs to know about this run to `context_data`.
    pub fn describe(&self, data: &mut serde_json::Value) {
        data["variant_dir"] = serde_json::json!(self.repo);
        data["variant"] = serde_json::json!(self.variant);
        data["arch"] = serde_json::json!(self.arch);
        data["kits"] = serde_json::json!(self.input.kits);
        data["strategy"] = serde_json::json!(match self.strategy {
            Strategy::Override => "override",
            Strategy::Vendor => "vendor",
        });
        data["registry"] = serde_json::json!(self.input.registry);
    }

    /// What UPDATE_CONFIG resolved (kit versions, registry): later phases build on it.
    pub fn config(&self) -> Result<update_config::ConfigData> {
        self.ws.succeeded(Workflow::Variant, "update-config")
    }

    pub fn images_root(&self) -> PathBuf {
        self.repo.join("build/images")
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        format!("only {}", names.join(", "))
    }
}

/// The variant repo when none is named: this checkout if it is one, else `$FOREST_ROOT/bottlerocket`.
pub fn default_repo() -> Result<PathBuf> {
    let root = project::root();
    if is_variant_repo(&root) {
        return Ok(root);
    }
    if let Some(forest) = project::forest_root() {
        return Ok(forest.join("bottlerocket"));
    }
    bail!(
        "{} is not a variant repo (no Twoliter.toml and variants/): pass --variant-dir <bottlerocket \
         checkout>, or set FOREST_ROOT so that it is at $FOREST_ROOT/bottlerocket",
        root.display()
    )
}

/// The repo exists and has a `Twoliter.toml`.
pub fn check_repo(repo: &Path) -> Result<()> {
    if !repo.is_dir() {
        bail!(
            "variant repo {} does not exist: pass --variant-dir, or set variant_dir in input.json",
            repo.display()
        );
    }
    if !repo.join("Twoliter.toml").is_file() {
        bail!(
            "{} has no Twoliter.toml, so it is not a twoliter variant repo: point --variant-dir (or \
             variant_dir in input.json) at a checkout of bottlerocket",
            repo.display()
        );
    }
    Ok(())
}

pub fn is_variant_repo(dir: &Path) -> bool {
    dir.join("Twoliter.toml").is_file() && dir.join("variants").is_dir()
}

/// Variant directories (those with a Cargo.toml) under `variants/`.
pub fn variants_in(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo.join("variants"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The variant to build when none is named: `BUILDSYS_VARIANT`, else the only one.
pub fn default_variant(repo: &Path) -> Result<String> {
    if let Some(v) = std::env::var("BUILDSYS_VARIANT").ok().filter(|v| !v.is_empty()) {
        return Ok(v);
    }
    match variants_in(repo).as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!("{} has no variants under variants/: pass --variant", repo.display()),
        many => bail!(
            "{} has several variants ({}): pass --variant",
            repo.display(),
            many.join(", ")
        ),
    }
}

pub fn run_phase(sh: &Shell, v: &Variant, phase: &PhaseDef) -> Result<()> {
    let ws = &v.ws;
    match phase.id {
        "update-config" => execute(
            ws,
            phase,
            || update_config::run(sh, v),
            |d| update_config::gate(sh, v, d),
        ),
        "update-lock" => execute(ws, phase, || update_lock::run(sh, v), |d| update_lock::gate(sh, v, d)),
        "build" => execute(ws, phase, || build::run(sh, v), |d| build::gate(sh, v, d)),
        "validate" => execute(ws, phase, || validate::run(sh, v), |d| validate::gate(sh, v, d)),
        other => unreachable!("not a variant phase: {other}"),
    }
}

pub fn gate_phase(sh: &Shell, v: &Variant, phase: &PhaseDef) -> Gate {
    let ws = &v.ws;
    match phase.id {
        "update-config" => check(ws, phase, |d| update_config::gate(sh, v, d)),
        "update-lock" => check(ws, phase, |d| update_lock::gate(sh, v, d)),
        "build" => check(ws, phase, |d| build::gate(sh, v, d)),
        "validate" => check(ws, phase, |d| validate::gate(sh, v, d)),
        other => unreachable!("not a variant phase: {other}"),
    }
}
