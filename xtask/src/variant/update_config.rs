//! UPDATE_CONFIG: point the variant repo at the local registry. Strategy `override` (default)
//! writes `[<vendor>.<kit>] registry = "localhost:<port>"` into `Twoliter.override`, keeping
//! vendor names; strategy `vendor` declares a local vendor in `Twoliter.toml` and switches the
//! kits to it. Either way the kits' versions are set in `Twoliter.toml`. The original files are
//! backed up first.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::journal::Backups;
use super::pin;
use super::{Strategy, Variant};
use crate::registry::Client;
use crate::twoliter::LOCAL_VENDOR;
use crate::twoliter::{compat, override_file, project as twoliter_toml};
use crate::workflow::{Phase, VariantPhase};
use crate::{fsx, ui};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResolvedKit {
    pub(crate) name: String,
    pub(crate) version: String,
    /// The kit's vendor in `Twoliter.toml` (and so in `Twoliter.lock` and `build/external-kits`).
    pub(crate) vendor: String,
    /// Where the version came from: `input`, `verify` (a kit workspace's VERIFY) or `registry`.
    pub(crate) version_from: String,
    /// The kit repo that published it, when a VERIFY record names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kit_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConfigData {
    pub(crate) registry: String,
    pub(crate) port: u16,
    pub(crate) strategy: String,
    pub(crate) release_version: String,
    pub(crate) kits: Vec<ResolvedKit>,
    /// Files this phase wrote.
    pub(crate) changed: Vec<String>,
    /// SHA-256 of `Twoliter.toml` and `Twoliter.override` as this phase left them (none: absent).
    #[serde(default)]
    pub(crate) files: Vec<(String, Option<String>)>,
}

/// The files UPDATE_CONFIG points at the local kits.
const CONFIG_FILES: [&str; 2] = ["Twoliter.toml", "Twoliter.override"];

/// SHA-256 of each of `CONFIG_FILES` now.
fn config_digests(repo: &std::path::Path) -> Result<Vec<(String, Option<String>)>> {
    CONFIG_FILES
        .iter()
        .map(|name| {
            let bytes = match std::fs::read(repo.join(name)) {
                Ok(bytes) => Some(bytes),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(err).with_context(|| format!("cannot read {name}")),
            };
            Ok((name.to_string(), bytes.map(|b| fsx::sha256_hex(&b))))
        })
        .collect()
}

/// UPDATE_CONFIG: the variant repo points at the local kits; its originals are backed up.
pub(crate) struct UpdateConfig;

impl Phase for UpdateConfig {
    type Flow = Variant;
    type Data = ConfigData;
    const PHASE: VariantPhase = VariantPhase::UpdateConfig;

    fn run(sh: &Shell, v: &Variant) -> Result<(ConfigData, String)> {
        let toml_path = v.repo.join("Twoliter.toml");
        let override_path = v.repo.join("Twoliter.override");
        let toml_text = fsx::read_required(&toml_path)?;
        let info = twoliter_toml::parse(&toml_text).with_context(|| format!("in {}", toml_path.display()))?;
        let address = v.registry_address(sh)?;
        let port = address.effective_port();
        let url = address.to_string();
        let client = crate::registry::connect(&address)?;

        let mut kits = Vec::new();
        for spec in &v.input.kits {
            let Some(entry) = info.kits.iter().find(|k| k.name == spec.name) else {
                let present: Vec<&str> = info.kits.iter().map(|k| k.name.as_str()).collect();
                bail!(
                    "kit `{}` is not a [[kit]] of {} (it has {}): add it there, or leave it out",
                    spec.name,
                    toml_path.display(),
                    if present.is_empty() {
                        "none".to_string()
                    } else {
                        present.join(", ")
                    }
                );
            };
            let (version, from, kit_dir) = resolve_version(&client, &url, &spec.name, spec.version.as_deref())?;
            if let Some(digest) = &spec.digest {
                // A kit pinned by digest stops here, before any file is edited, when the
                // registry serves another index for its version.
                let served = client
                    .manifest(&spec.name, &format!("v{version}"))?
                    .with_context(|| format!("{url}/{}:v{version} is not in the registry", spec.name))?;
                pin::judge_given(&pin::Served::of(&spec.name, &version, &url, &served)?, digest, None)?;
            }
            kits.push(ResolvedKit {
                name: spec.name.clone(),
                version,
                vendor: entry.vendor.clone(),
                version_from: from.into(),
                kit_dir,
            });
        }

        // Work out every new file before writing any, so bad input leaves the repo as it was.
        let versions: Vec<(String, String)> = kits.iter().map(|k| (k.name.clone(), k.version.clone())).collect();
        let mut new_toml = twoliter_toml::set_kit_versions(&toml_text, &versions)
            .with_context(|| format!("in {}", toml_path.display()))?;
        let old_override = fsx::read_optional(&override_path)?;
        let new_override = match v.strategy {
            Strategy::Override => {
                let entries: Vec<(String, String, String)> = kits
                    .iter()
                    .map(|k| (k.vendor.clone(), k.name.clone(), url.clone()))
                    .collect();
                Some(
                    override_file::set_overrides(old_override.as_deref(), &entries)
                        .with_context(|| format!("in {}", override_path.display()))?,
                )
            }
            Strategy::Vendor => {
                let names: Vec<String> = kits.iter().map(|k| k.name.clone()).collect();
                new_toml = twoliter_toml::switch_kits_to_vendor(&new_toml, LOCAL_VENDOR, &url, &names)
                    .with_context(|| format!("in {}", toml_path.display()))?;
                None
            }
        };

        let backups = Backups::new(&v.ws.dir);
        backups.begin(&v.repo)?;
        let mut changed = Vec::new();
        if new_toml != toml_text {
            backups.write("Twoliter.toml", new_toml.as_bytes())?;
            changed.push("Twoliter.toml".to_string());
        }
        if let Some(new_override) = new_override {
            if old_override.as_deref() != Some(new_override.as_str()) {
                backups.write("Twoliter.override", new_override.as_bytes())?;
                changed.push("Twoliter.override".to_string());
            }
        }
        warn_on_metadata_mismatch(v, &kits);

        let strategy = v.strategy.name();
        let data = ConfigData {
            registry: url.clone(),
            port,
            strategy: strategy.into(),
            release_version: info.release_version.clone(),
            kits,
            changed,
            files: config_digests(&v.repo)?,
        };
        let mut report = format!(
            "# UPDATE_CONFIG\n\n- variant repo: `{}`\n- strategy: `{strategy}`, registry `{url}`\n",
            v.repo.display()
        );
        for k in &data.kits {
            report.push_str(&format!(
                "- kit `{}` {} (vendor `{}`, version from {})\n",
                k.name, k.version, k.vendor, k.version_from
            ));
        }
        report.push_str(&format!(
            "- changed: {}\n- originals backed up in `{}`\n",
            if data.changed.is_empty() {
                "nothing (already pointed at the local kits)".to_string()
            } else {
                data.changed.join(", ")
            },
            backups.dir.display()
        ));
        Ok((data, report))
    }

    /// The repo still says what this phase wrote.
    fn gate(_sh: &Shell, v: &Variant, data: &ConfigData) -> Result<()> {
        if let Some(wanted) = &v.input.registry {
            if wanted != &data.registry {
                bail!(
                    "input.json asks for the registry {wanted}, but UPDATE_CONFIG used {}: run UPDATE_CONFIG again",
                    data.registry
                );
            }
        }
        let same_kits = v.input.kits.len() == data.kits.len()
            && v.input.kits.iter().zip(&data.kits).all(|(want, got)| {
                want.name == got.name
                    && want
                        .version
                        .as_deref()
                        .is_none_or(|ver| ver.trim_start_matches('v') == got.version)
            });
        if !same_kits {
            bail!("input.json asks for other kits or versions than UPDATE_CONFIG set up: run UPDATE_CONFIG again");
        }
        if !Backups::new(&v.ws.dir).active()? {
            bail!(
                "the variant repo's files are not backed up in this workspace (it was restored): run UPDATE_CONFIG again"
            );
        }
        let toml_path = v.repo.join("Twoliter.toml");
        let info = twoliter_toml::parse(&fsx::read_required(&toml_path)?)?;
        for kit in &data.kits {
            let entry = info.kits.iter().find(|k| k.name == kit.name);
            match entry {
                Some(e) if e.version == kit.version => {}
                Some(e) => bail!(
                    "{} has kit `{}` at version {}, not {}: run UPDATE_CONFIG again",
                    toml_path.display(),
                    kit.name,
                    e.version,
                    kit.version
                ),
                None => bail!("{} no longer lists kit `{}`", toml_path.display(), kit.name),
            }
            if data.strategy == "vendor" {
                let vendor = &entry.expect("checked").vendor;
                if vendor != LOCAL_VENDOR || info.vendors.get(LOCAL_VENDOR) != Some(&data.registry) {
                    bail!(
                        "{} does not take kit `{}` from vendor `{LOCAL_VENDOR}` at {}: run UPDATE_CONFIG again",
                        toml_path.display(),
                        kit.name,
                        data.registry
                    );
                }
            }
        }
        if data.strategy == "override" {
            let path = v.repo.join("Twoliter.override");
            let text = fsx::read_optional(&path)?
                .with_context(|| format!("{} is gone: run UPDATE_CONFIG again", path.display()))?;
            let overrides = override_file::parse_overrides(&text)?;
            for kit in &data.kits {
                let registry = overrides
                    .get(&(kit.vendor.clone(), kit.name.clone()))
                    .and_then(|o| o.registry.clone());
                if registry.as_deref() != Some(data.registry.as_str()) {
                    bail!(
                        "{} does not redirect [{}.{}] to {}: run UPDATE_CONFIG again",
                        path.display(),
                        kit.vendor,
                        kit.name,
                        data.registry
                    );
                }
            }
        }
        // What the repo holds now, not what it looks like: byte for byte what this phase left.
        if config_digests(&v.repo)? != data.files {
            bail!(
                "Twoliter.toml or Twoliter.override is not what UPDATE_CONFIG left (changed since, \
                 or put back): run UPDATE_CONFIG again"
            );
        }
        Ok(())
    }
}

/// The version of a kit to use: the one asked for (it must be in the registry), else the one
/// the newest VERIFY of this checkout or its forest recorded for this registry, else the highest
/// `v<semver>` tag the registry has.
fn resolve_version(
    client: &Client,
    url: &str,
    kit: &str,
    asked: Option<&str>,
) -> Result<(String, &'static str, Option<PathBuf>)> {
    let publish_hint = format!(
        "publish it with `cargo xtask build-kit --kit {kit}`, or, if another checkout published it, pass \
         `--registry` with the address `cargo xtask registry url` prints there"
    );
    if let Some(asked) = asked {
        let version = asked.trim_start_matches('v').to_string();
        semver::Version::parse(&version)
            .with_context(|| format!("kit {kit} version `{asked}` is not semver (e.g. 1.2.3)"))?;
        if client.manifest(kit, &format!("v{version}"))?.is_none() {
            let tags = client.tags(kit)?;
            bail!(
                "kit {kit} version {version} is not in the local registry at {url} ({}): {publish_hint}",
                if tags.is_empty() {
                    "it has no tags for that kit".to_string()
                } else {
                    format!("it has {}", tags.join(", "))
                }
            );
        }
        return Ok((version, "input", None));
    }
    // The newest VERIFY of this checkout or its forest for this registry.
    if let Some(last) = pin::verified(client.address(), kit).into_iter().next() {
        if client.manifest(kit, &format!("v{}", last.version))?.is_some() {
            return Ok((last.version, "verify", last.kit_dir));
        }
    }
    let tags = client.tags(kit)?;
    match highest_version(&tags) {
        Some(version) => Ok((version.to_string(), "registry", None)),
        None => bail!("the local registry at {url} has no version of kit {kit}: {publish_hint}"),
    }
}

/// The highest `v<semver>` index tag (per-arch tags `v<ver>-<build-id>-<arch>` are skipped).
pub(crate) fn highest_version(tags: &[String]) -> Option<semver::Version> {
    tags.iter()
        .filter(|t| !t.ends_with("-x86_64") && !t.ends_with("-aarch64"))
        .filter_map(|t| t.strip_prefix('v'))
        .filter_map(|t| semver::Version::parse(t).ok())
        .max()
}

/// Kits published by one generation of twoliter cannot be consumed by another: warn when the
/// kit repo's twoliter and the variant repo's would disagree.
fn warn_on_metadata_mismatch(v: &Variant, kits: &[ResolvedKit]) {
    let Some(variant_version) = v.twoliter_version() else {
        return;
    };
    for kit in kits {
        let Some(kit_version) = kit.kit_dir.as_deref().and_then(crate::kit::twoliter_version) else {
            continue;
        };
        if let Some(warning) = compat::metadata_mismatch(&kit_version, &variant_version) {
            ui::warn(format!("kit {}: {warning}", kit.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::highest_version;

    #[test]
    fn highest_index_tag() {
        let tags: Vec<String> = [
            "v1.2.0",
            "v1.10.0",
            "v1.10.0-1a2b3c4-x86_64",
            "latest",
            "v2.0.0-9f8e7d6-aarch64",
            "vx",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(highest_version(&tags).unwrap().to_string(), "1.10.0");
        assert!(highest_version(&["latest".to_string()]).is_none());
    }
}
