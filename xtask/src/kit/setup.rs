//! SETUP: the registry is running and healthy, and the kit repo's `Infra.toml` declares
//! `[vendor.local] registry = "<address>"` (every other byte kept). The registry is the
//! checkout's (or its forest's) on `localhost:<port>`, started when needed, or one that
//! `input.json` names (`host[:port][/namespace]`: another checkout's, or a team's shared
//! registry), which is only used, after every step of `registry check` passed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::Kit;
use crate::twoliter::{infra, LOCAL_VENDOR};
use crate::workflow::{KitPhase, Phase};
use crate::{fsx, git, registry, ui};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SetupData {
    pub(crate) registry: String,
    pub(crate) port: u16,
    /// How this checkout (or its forest) runs the registry; none for a registry that runs
    /// elsewhere and is only published to.
    #[serde(default)]
    pub(crate) backend: Option<registry::Backend>,
    pub(crate) vendor: String,
    pub(crate) infra_toml: PathBuf,
    pub(crate) kit_dir: PathBuf,
    pub(crate) kit: String,
    pub(crate) arch: String,
    pub(crate) release_version: String,
    /// Whether `Infra.toml` had to change.
    pub(crate) infra_changed: bool,
}

/// SETUP: the registry runs and Infra.toml points the local vendor at it.
pub(crate) struct Setup;

impl Phase for Setup {
    type Flow = Kit;
    type Data = SetupData;
    const PHASE: KitPhase = KitPhase::Setup;

    fn run(sh: &Shell, kit: &Kit) -> Result<(SetupData, String)> {
        let infra_path = kit.repo.join("Infra.toml");
        check_no_infra_lock(&kit.repo)?;
        let release_version = kit.release_version()?;
        // Work out the new Infra.toml before starting anything, so bad input changes nothing.
        let existing = fsx::read_optional(&infra_path)?;
        infra::set_vendor_registry(existing.as_deref(), LOCAL_VENDOR, "localhost:5000")
            .with_context(|| format!("cannot update {}", infra_path.display()))?;
        let mut checked = None;
        let (address, backend) = match kit.wanted_registry()? {
            Some(address) if !registry::is_own(&address)? => {
                checked = Some(registry::existing(&address)?);
                (address, None)
            }
            wanted => {
                let options = registry::StartOptions {
                    port: wanted.as_ref().and_then(registry::Address::port),
                    ..Default::default()
                };
                let endpoint = registry::ensure_running(sh, &options)?;
                let own = registry::Address::local(endpoint.port);
                (wanted.unwrap_or(own), Some(endpoint.backend))
            }
        };
        let port = address.effective_port();
        let url = address.to_string();
        let updated = infra::set_vendor_registry(existing.as_deref(), LOCAL_VENDOR, &url)
            .with_context(|| format!("cannot update {}", infra_path.display()))?;
        let infra_changed = existing.as_deref() != Some(updated.as_str());
        if infra_changed {
            fsx::write_atomic(&infra_path, updated.as_bytes())?;
            ui::info(format!(
                "{}: [vendor.{LOCAL_VENDOR}] registry = \"{url}\"",
                infra_path.display()
            ));
        }
        keep_git_status_clean(sh, kit, &infra_path)?;
        let data = SetupData {
            registry: url.clone(),
            port,
            backend,
            vendor: LOCAL_VENDOR.to_string(),
            infra_toml: infra_path.clone(),
            kit_dir: kit.repo.clone(),
            kit: kit.name.clone(),
            arch: kit.arch.to_string(),
            release_version,
            infra_changed,
        };
        let report = format!(
            "# SETUP\n\n- registry: `{url}` ({}), healthy\n- `{}`: `[vendor.{LOCAL_VENDOR}] registry = \"{url}\"`{}\n- kit: `{}` {} for {}\n",
            match (backend, &checked) {
                (Some(backend), _) => format!("{} backend", backend.name()),
                (None, Some(check)) => format!(
                    "run elsewhere; only published to; `registry check` passed: {}, authentication {}, credentials {}",
                    check.scheme.as_deref().unwrap_or("-"),
                    check.auth.as_deref().unwrap_or("-"),
                    check.credentials.as_deref().unwrap_or("not needed"),
                ),
                (None, None) => "run elsewhere; only published to".to_string(),
            },
            infra_path.display(),
            if infra_changed { " (written)" } else { " (already set)" },
            kit.name,
            data.release_version,
            kit.arch
        );
        Ok((data, report))
    }

    /// Re-checks SETUP against reality: the registry answers and `Infra.toml` still points at it.
    fn gate(_sh: &Shell, kit: &Kit, data: &SetupData) -> Result<()> {
        check_no_infra_lock(&kit.repo)?;
        let address = registry::Address::parse(&data.registry)?;
        if let Some(wanted) = kit.wanted_registry()? {
            if !wanted.same_registry(&address) {
                bail!(
                    "input.json asks for the registry {wanted}, but SETUP set up {}: run SETUP again",
                    data.registry
                );
            }
        }
        registry::connect(&address)?
            .ping()
            .with_context(|| match data.backend {
                Some(_) => format!(
                    "the registry at {} does not answer: run `cargo xtask registry start`",
                    data.registry
                ),
                None => format!(
                    "the registry at {} does not answer; it runs elsewhere: start it again where it was started",
                    data.registry
                ),
            })?;
        let text = fsx::read_optional(&data.infra_toml)?
            .with_context(|| format!("{} is gone: run SETUP again", data.infra_toml.display()))?;
        infra::check_vendor_registry(&text, LOCAL_VENDOR, &data.registry)
    }
}

/// twoliter silently prefers `Infra.lock` over `Infra.toml`: publishing would ignore our edit.
fn check_no_infra_lock(repo: &Path) -> Result<()> {
    let lock = repo.join("Infra.lock");
    if lock.exists() {
        bail!(
            "{} exists, and twoliter reads it instead of Infra.toml, so the kit would not be \
             published to the local registry: move it away (e.g. `mv {} {}.bak`) and run again",
            lock.display(),
            lock.display(),
            lock.display()
        );
    }
    Ok(())
}

/// Nothing the xtask writes may make the kit repo's `git status` dirty (a dirty tree changes
/// the build id, and publish then looks for another archive). Infra.toml is ignored in kit
/// repos; the workspace, when it lives inside the kit repo, is ignored locally here.
fn keep_git_status_clean(sh: &Shell, kit: &Kit, infra_path: &Path) -> Result<()> {
    let Some(top) = git::toplevel(sh, &kit.repo) else {
        return Ok(());
    };
    if git::is_tracked(sh, &top, infra_path) {
        ui::warn(format!(
            "{} is tracked by git, so editing it makes the tree dirty and the build id `-dirty`; \
             kit repos normally ignore it",
            infra_path.display()
        ));
    } else if !git::is_ignored(sh, &top, infra_path) {
        git::exclude_locally(sh, &top, "/Infra.toml")?;
    }
    if let Ok(rel) = kit.ws.dir.strip_prefix(&top) {
        if !git::is_ignored(sh, &top, &kit.ws.dir.join("progress.json")) {
            let first = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            if let Some(first) = first {
                git::exclude_locally(sh, &top, &format!("/{first}/"))?;
            }
        }
    }
    Ok(())
}
