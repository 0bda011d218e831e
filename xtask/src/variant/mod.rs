//! The variant workflow: UPDATE_CONFIG → UPDATE_LOCK → BUILD → VALIDATE, in a variant repo
//! (bottlerocket), against kits published to the local registry. Each phase is a [`Phase`]:
//! `run` acts and returns its observations and a report, `gate` re-checks them against reality.
//!
//! [`Phase`]: crate::workflow::Phase

pub(crate) mod build;
pub(crate) mod journal;
pub(crate) mod makefile;
pub(crate) mod pin;
pub(crate) mod update_config;
pub(crate) mod update_lock;
pub(crate) mod validate;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use crate::arch::Arch;
use crate::project;
use crate::workflow::record::{check, execute};
use crate::workflow::{Flow, Gate, VariantPhase, Workspace};

/// How the variant repo is pointed at the local registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub(crate) enum Strategy {
    /// Redirect kits with Twoliter.override, keeping vendor names (sanctioned by twoliter)
    #[default]
    Override,
    /// Declare a local vendor in Twoliter.toml and switch the kits to it
    Vendor,
}

impl Strategy {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Strategy::Override => "override",
            Strategy::Vendor => "vendor",
        }
    }
}

impl TryFrom<String> for Strategy {
    type Error = String;

    fn try_from(text: String) -> Result<Strategy, String> {
        match text.as_str() {
            "override" => Ok(Strategy::Override),
            "vendor" => Ok(Strategy::Vendor),
            other => Err(format!("strategy `{other}` is unknown: use `override` or `vendor`")),
        }
    }
}

/// A kit the variant workflow takes from the local registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KitSpec {
    pub(crate) name: String,
    /// Default: the version the last VERIFY recorded, else the highest `v<semver>` tag. An
    /// empty string in input.json means the same.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "given_string")]
    pub(crate) version: Option<String>,
    /// The index digest (`sha256:…`) the kit must have, as `build-kit` printed it where it was
    /// published: the registry must serve exactly that index at the version's tag, or the run
    /// stops before any file is edited. Needs a version. An empty string means "not given".
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "given_string")]
    pub(crate) digest: Option<String>,
}

/// An optional string of input.json, empty meaning "not given".
fn given_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(project::given(Option::<String>::deserialize(d)?))
}

impl KitSpec {
    /// `NAME`, `NAME@VERSION` or `NAME@VERSION@sha256:<64 hex>`, as given to `--kit`.
    pub(crate) fn parse(text: &str) -> Result<KitSpec> {
        let mut parts = text.splitn(3, '@');
        let name = parts.next().unwrap_or_default();
        let version = parts.next().map(|v| v.trim_start_matches('v').to_string());
        let digest = parts.next().map(str::to_string);
        project::check_identifier("kit", name)?;
        if let Some(version) = &version {
            semver::Version::parse(version).with_context(|| {
                format!(
                    "--kit {text}: `{version}` is not a semver version (e.g. {name}@1.2.3, or {name}@1.2.3@sha256:…)"
                )
            })?;
        }
        if let Some(digest) = &digest {
            check_digest(digest).with_context(|| format!("--kit {text}"))?;
        }
        Ok(KitSpec {
            name: name.to_string(),
            version,
            digest,
        })
    }
}

/// An index digest as `build-kit` prints it: `sha256:` and 64 lower-case hex digits.
pub(crate) fn check_digest(digest: &str) -> Result<()> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        bail!(
            "`{digest}` is not an index digest: give it as `build-kit` prints it, `sha256:` and 64 lower-case hex \
             digits"
        );
    }
    Ok(())
}

/// `input.json` of the variant workflow, in the shape existing orchestrators write. Empty
/// strings mean "not given" (`"variant": ""`, `"arch": ""`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawVariantInput")]
pub(crate) struct VariantInput {
    pub(crate) kits: Vec<KitSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) arch: Option<Arch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variant_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) strategy: Strategy,
    /// Leave the repo pointed at the local kits after the run.
    #[serde(default)]
    pub(crate) keep_config: bool,
    /// Build from what the registry serves even where it differs from what this checkout or
    /// its forest published (see [`pin`]); recorded as such.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) trust_registry: bool,
}

/// `input.json` of the variant workflow as written, before its values are checked.
#[derive(Deserialize)]
struct RawVariantInput {
    kits: Vec<KitSpec>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    arch: Option<String>,
    #[serde(default)]
    registry: Option<String>,
    #[serde(default)]
    variant_dir: Option<String>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    keep_config: bool,
    #[serde(default)]
    trust_registry: bool,
}

impl TryFrom<RawVariantInput> for VariantInput {
    type Error = String;

    fn try_from(raw: RawVariantInput) -> Result<VariantInput, String> {
        let arch = project::given(raw.arch)
            .map(|arch| arch.parse::<Arch>().map_err(|e| format!("`arch` in input.json: {e:#}")))
            .transpose()?;
        let strategy = project::given(raw.strategy)
            .map(|s| Strategy::try_from(s).map_err(|e| format!("`strategy` in input.json: {e}")))
            .transpose()?
            .unwrap_or_default();
        Ok(VariantInput {
            kits: raw.kits,
            variant: project::given(raw.variant),
            arch,
            registry: project::given(raw.registry),
            variant_dir: project::given(raw.variant_dir).map(PathBuf::from),
            strategy,
            keep_config: raw.keep_config,
            trust_registry: raw.trust_registry,
        })
    }
}

/// What `cargo xtask variant` was asked for on its command line.
#[derive(Debug, Clone, Default)]
pub(crate) struct VariantRequest {
    pub(crate) kits: Vec<KitSpec>,
    pub(crate) variant: Option<String>,
    pub(crate) arch: Option<Arch>,
    pub(crate) variant_dir: Option<PathBuf>,
    pub(crate) registry: Option<String>,
    pub(crate) strategy: Strategy,
    pub(crate) keep_config: bool,
    pub(crate) trust_registry: bool,
}

impl VariantInput {
    /// The input for a request from the command line, every default filled in (the only
    /// variant, the host's arch, every kit `Twoliter.toml` lists), so `input.json` says it all.
    pub(crate) fn with_defaults(request: VariantRequest) -> Result<VariantInput> {
        let repo = match &request.variant_dir {
            Some(dir) => project::absolute(dir),
            None => default_repo()?,
        };
        check_repo(&repo)?;
        let variant = match request.variant {
            Some(v) => v,
            None => default_variant(&repo)?,
        };
        project::check_identifier("variant", &variant)?;
        let kits = if request.kits.is_empty() {
            kits_of(&repo)?
        } else {
            request.kits
        };
        let input = VariantInput {
            kits,
            variant: Some(variant),
            arch: Some(match request.arch {
                Some(arch) => arch,
                None => Arch::host()?,
            }),
            registry: request.registry,
            variant_dir: (repo != project::root()).then_some(repo),
            strategy: request.strategy,
            keep_config: request.keep_config,
            trust_registry: request.trust_registry,
        };
        input.check()?;
        Ok(input)
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.kits.is_empty() {
            bail!("input.json lists no kits: add {{\"name\": \"<kit>\"}} entries to `kits`");
        }
        for kit in &self.kits {
            project::check_identifier("kit name in input.json", &kit.name)?;
            if let Some(version) = &kit.version {
                semver::Version::parse(version.trim_start_matches('v')).map_err(|e| {
                    anyhow::anyhow!(
                        "kit {} has version `{version}`, which is not semver ({e}): use e.g. 1.2.3",
                        kit.name
                    )
                })?;
            }
            if let Some(digest) = &kit.digest {
                if kit.version.is_none() {
                    bail!(
                        "kit {} has a digest but no version: a digest pins the index of one version, so give \
                         its `version` too",
                        kit.name
                    );
                }
                check_digest(digest).with_context(|| format!("kit {} in input.json", kit.name))?;
            }
        }
        if let Some(variant_name) = &self.variant {
            project::check_identifier("variant in input.json", variant_name)?;
        }
        if let Some(registry) = &self.registry {
            crate::registry::Address::parse(registry).context("`registry` in input.json")?;
        }
        Ok(())
    }
}

/// Without `--kit`: every kit the repo's `Twoliter.toml` lists.
fn kits_of(repo: &Path) -> Result<Vec<KitSpec>> {
    let path = repo.join("Twoliter.toml");
    let info = crate::twoliter::project::parse(&crate::fsx::read_required(&path)?)
        .with_context(|| format!("in {}", path.display()))?;
    if info.kits.is_empty() {
        bail!(
            "{} lists no [[kit]]: nothing to take from the local registry",
            path.display()
        );
    }
    Ok(info
        .kits
        .iter()
        .map(|k| KitSpec {
            name: k.name.clone(),
            version: None,
            digest: None,
        })
        .collect())
}

/// Everything a variant phase needs, resolved from `input.json` without touching the network.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub(crate) ws: Workspace,
    pub(crate) input: VariantInput,
    pub(crate) repo: PathBuf,
    pub(crate) variant: String,
    pub(crate) arch: Arch,
    pub(crate) strategy: Strategy,
}

impl Variant {
    /// The index digest input.json pins `kit` to, if it does.
    pub(crate) fn given_digest(&self, kit: &str) -> Option<&str> {
        self.input
            .kits
            .iter()
            .find(|k| k.name == kit)
            .and_then(|k| k.digest.as_deref())
    }

    pub(crate) fn resolve(ws: &Workspace, input: &VariantInput) -> Result<Variant> {
        input.check()?;
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
        Ok(Variant {
            ws: ws.clone(),
            input: input.clone(),
            repo,
            variant,
            arch,
            strategy: input.strategy,
        })
    }

    /// The registry the kits come from: `input.json`'s (`host[:port][/namespace]`), else that of
    /// this checkout or its forest (started if it is merely stopped; its data is kept).
    pub(crate) fn registry_address(&self, sh: &Shell) -> Result<crate::registry::Address> {
        match &self.input.registry {
            Some(registry) => crate::registry::Address::parse(registry),
            None => Ok(crate::registry::Address::local(
                crate::registry::ensure_running(sh, &Default::default())?.port,
            )),
        }
    }

    /// What UPDATE_CONFIG resolved (kit versions, registry): later phases build on it.
    pub(crate) fn config(&self) -> Result<update_config::ConfigData> {
        self.ws.succeeded::<update_config::UpdateConfig>()
    }

    /// Whether the variant's partition plan is `split` (`[package.metadata.build-variant.
    /// image-layout] partition-plan` of its Cargo.toml), so that a build makes a data image.
    pub(crate) fn split_partitions(&self) -> Result<bool> {
        split_partitions(&self.repo, &self.variant)
    }

    /// Before anything else: a restore of the repo's files that a kill cut short is finished.
    pub(crate) fn recover(&self) -> Result<()> {
        let backups = journal::Backups::new(&self.ws.dir);
        if !backups.journal()?.is_some_and(|j| j.state == journal::State::Restoring) {
            return Ok(());
        }
        let _repo = crate::repo_lock::RepoLock::acquire(&self.repo, &self.ws.dir)?;
        if backups.recover()? {
            crate::ui::info(format!(
                "finished restoring {}'s files, which an earlier run had begun",
                self.repo.display()
            ));
        }
        Ok(())
    }

    pub(crate) fn images_root(&self) -> PathBuf {
        self.repo.join("build/images")
    }

    /// The build id that names the image directory `<release-version>-<build-id>` now, as the
    /// repo's Makefile.toml computes it.
    pub(crate) fn build_id(&self, sh: &Shell) -> Result<String> {
        let abbrev = makefile::read(&self.repo).and_then(|doc| makefile::build_id_abbrev(&doc));
        crate::git::build_id(sh, &self.repo, abbrev)
    }

    /// The twoliter the variant builds with: the installed `tools/twoliter/twoliter` (cargo make
    /// installs the pinned one), else the Makefile.toml's `TWOLITER_VERSION` pin, else twoliter
    /// on PATH.
    pub(crate) fn twoliter_version(&self) -> Option<semver::Version> {
        let installed = self.repo.join(crate::tools::REPO_TWOLITER);
        if crate::tools::is_executable(&installed) {
            return crate::twoliter::compat::installed_version(&installed);
        }
        makefile::read(&self.repo)
            .and_then(|doc| makefile::twoliter_pin(&doc))
            .or_else(|| crate::tools::which("twoliter").and_then(|p| crate::twoliter::compat::installed_version(&p)))
    }
}

impl Flow for Variant {
    type Phase = VariantPhase;

    fn ws(&self) -> &Workspace {
        &self.ws
    }

    fn repo(&self) -> &Path {
        &self.repo
    }

    fn identity(&self) -> serde_json::Value {
        serde_json::json!({
            "repo": self.repo,
            "variant": self.variant,
            "arch": self.arch,
            "kits": self.input.kits,
            "registry": self.input.registry,
            "strategy": self.strategy,
        })
    }

    fn run(&self, sh: &Shell, phase: VariantPhase) -> Result<()> {
        match phase {
            VariantPhase::UpdateConfig => execute::<update_config::UpdateConfig>(sh, self),
            VariantPhase::UpdateLock => execute::<update_lock::UpdateLock>(sh, self),
            VariantPhase::Build => execute::<build::Build>(sh, self),
            VariantPhase::Validate => execute::<validate::Validate>(sh, self),
        }
    }

    fn gate(&self, sh: &Shell, phase: VariantPhase) -> Gate {
        match phase {
            VariantPhase::UpdateConfig => check::<update_config::UpdateConfig>(sh, self),
            VariantPhase::UpdateLock => check::<update_lock::UpdateLock>(sh, self),
            VariantPhase::Build => check::<build::Build>(sh, self),
            VariantPhase::Validate => check::<validate::Validate>(sh, self),
        }
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
pub(crate) fn default_repo() -> Result<PathBuf> {
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
pub(crate) fn check_repo(repo: &Path) -> Result<()> {
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

pub(crate) fn is_variant_repo(dir: &Path) -> bool {
    dir.join("Twoliter.toml").is_file() && dir.join("variants").is_dir()
}

/// Variant directories (those with a Cargo.toml) under `variants/`.
pub(crate) fn variants_in(repo: &Path) -> Vec<String> {
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

/// The variant to build when none is named: the only one.
pub(crate) fn default_variant(repo: &Path) -> Result<String> {
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

/// Whether `variant`'s partition plan in `repo` is `split` (it then has a data image).
pub(crate) fn split_partitions(repo: &Path, variant: &str) -> Result<bool> {
    let path = repo.join("variants").join(variant).join("Cargo.toml");
    let Some(text) = crate::fsx::read_text(&path)? else {
        return Ok(false);
    };
    let doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let plan = doc
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("build-variant"))
        .and_then(|b| b.get("image-layout"))
        .and_then(|l| l.get("partition-plan"))
        .and_then(|p| p.as_str());
    Ok(plan == Some("split"))
}

#[cfg(test)]
mod tests {
    use super::KitSpec;

    #[test]
    fn kit_flags() {
        let k = KitSpec::parse("core-kit@v1.2.3").unwrap();
        assert_eq!((k.name.as_str(), k.version.as_deref()), ("core-kit", Some("1.2.3")));
        assert_eq!(KitSpec::parse("core-kit").unwrap().version, None);
        assert!(KitSpec::parse("core-kit@latest")
            .unwrap_err()
            .to_string()
            .contains("not a semver"));
        assert!(KitSpec::parse("../x").is_err());
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let k = KitSpec::parse(&format!("core-kit@1.2.3@{digest}")).unwrap();
        assert_eq!(k.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(k.version.as_deref(), Some("1.2.3"));
        assert_eq!(KitSpec::parse("core-kit@1.2.3").unwrap().digest, None);
        for bad in [
            "sha256:",
            "sha256:0123",
            "0123456789abcdef",
            &digest.to_uppercase(),
            &format!("{digest}0"),
        ] {
            let err = format!("{:#}", KitSpec::parse(&format!("core-kit@1.2.3@{bad}")).unwrap_err());
            assert!(err.contains("is not an index digest"), "{bad}: {err}");
        }
    }
}
