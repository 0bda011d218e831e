//! The kit workflow: SETUP → BUILD → PUBLISH → VERIFY, in a kit repo (bottlerocket-core-kit
//! and the like). Each phase is a [`Phase`]: `run` acts and returns its observations and a
//! report, `gate` re-checks its recorded result against reality.

pub(crate) mod build;
pub(crate) mod publish;
pub(crate) mod repo;
pub(crate) mod setup;
pub(crate) mod verify;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use crate::arch::Arch;
use crate::twoliter::compat;
use crate::workflow::record::{check, execute};
use crate::workflow::{Flow, Gate, KitPhase, Workspace};
use crate::{git, project, tools};

/// `input.json` of the kit workflow, in the shape existing orchestrators write. Empty strings
/// mean "not given"; `arch` defaults to the host's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawKitInput")]
pub(crate) struct KitInput {
    pub(crate) kit_name: String,
    pub(crate) arch: Arch,
    /// The registry to publish to, `host[:port][/namespace]` (default: the registry of the
    /// checkout or of its forest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kit_dir: Option<PathBuf>,
}

/// `input.json` of the kit workflow as written, before its values are checked.
#[derive(Deserialize)]
struct RawKitInput {
    kit_name: String,
    #[serde(default)]
    arch: Option<String>,
    #[serde(default)]
    registry: Option<String>,
    #[serde(default)]
    kit_dir: Option<String>,
}

impl TryFrom<RawKitInput> for KitInput {
    type Error = String;

    fn try_from(raw: RawKitInput) -> Result<KitInput, String> {
        let arch = match project::given(raw.arch) {
            Some(arch) => arch
                .parse::<Arch>()
                .map_err(|e| format!("`arch` in input.json: {e:#}"))?,
            None => Arch::host().map_err(|e| format!("`arch` is not set in input.json, and {e:#}"))?,
        };
        Ok(KitInput {
            kit_name: raw.kit_name,
            arch,
            registry: project::given(raw.registry),
            kit_dir: project::given(raw.kit_dir).map(PathBuf::from),
        })
    }
}

impl KitInput {
    /// The input for a kit given on the command line: every default filled in as the kit repo
    /// would (the Makefile's `KIT`, the host's arch), so that `input.json` says it all.
    pub(crate) fn with_defaults(
        kit: Option<String>,
        arch: Option<Arch>,
        kit_dir: Option<&Path>,
        registry: Option<String>,
    ) -> Result<KitInput> {
        let repo = match kit_dir {
            Some(dir) => project::absolute(dir),
            None => default_repo(kit.as_deref())?,
        };
        check_repo(&repo)?;
        let kit_name = match kit {
            Some(kit) => kit,
            None => default_kit(&repo)?,
        };
        Ok(KitInput {
            kit_name,
            arch: match arch {
                Some(arch) => arch,
                None => Arch::host()?,
            },
            registry,
            kit_dir: (kit_dir.is_some() || repo != project::root()).then_some(repo),
        })
    }

    pub(crate) fn check(&self) -> Result<()> {
        project::check_identifier("kit_name in input.json", &self.kit_name)?;
        if let Some(registry) = &self.registry {
            crate::registry::Address::parse(registry).context("`registry` in input.json")?;
        }
        Ok(())
    }
}

/// Everything a kit phase needs, resolved from `input.json`.
#[derive(Debug, Clone)]
pub(crate) struct Kit {
    pub(crate) ws: Workspace,
    pub(crate) input: KitInput,
    pub(crate) name: String,
    pub(crate) arch: Arch,
    pub(crate) repo: PathBuf,
}

impl Kit {
    pub(crate) fn resolve(ws: &Workspace, input: &KitInput) -> Result<Kit> {
        input.check()?;
        let repo = match &input.kit_dir {
            Some(dir) => project::absolute(dir),
            None => default_repo(Some(&input.kit_name))?,
        };
        check_repo(&repo)?;
        check_kit(&repo, &input.kit_name)?;
        Ok(Kit {
            ws: ws.clone(),
            input: input.clone(),
            name: input.kit_name.clone(),
            arch: input.arch,
            repo,
        })
    }

    /// `release-version` of the kit repo's `Twoliter.toml`: the kit's version.
    pub(crate) fn release_version(&self) -> Result<String> {
        let path = self.repo.join("Twoliter.toml");
        let text = crate::fsx::read_required(&path)?;
        let version =
            crate::twoliter::project::release_version(&text).with_context(|| format!("in {}", path.display()))?;
        Ok(version.to_string())
    }

    pub(crate) fn makefile(&self) -> Option<String> {
        std::fs::read_to_string(self.repo.join("Makefile")).ok()
    }

    /// The twoliter this kit repo builds with (see [`twoliter_version`]).
    pub(crate) fn twoliter_version(&self) -> Option<semver::Version> {
        twoliter_version(&self.repo)
    }

    /// The build id the kit's twoliter names its archive and per-arch tag with, now.
    pub(crate) fn build_id(&self, sh: &Shell, twoliter: Option<&semver::Version>) -> Result<String> {
        git::build_id(sh, &self.repo, compat::build_id_abbrev(twoliter))
    }

    /// The registry `input.json` asks for, if any.
    pub(crate) fn wanted_registry(&self) -> Result<Option<crate::registry::Address>> {
        self.input
            .registry
            .as_deref()
            .map(crate::registry::Address::parse)
            .transpose()
    }

    /// The registry SETUP recorded; later phases use the same one.
    pub(crate) fn registry(&self) -> Result<crate::registry::Address> {
        crate::registry::Address::parse(&self.ws.succeeded::<setup::Setup>()?.registry)
    }
}

impl Flow for Kit {
    type Phase = KitPhase;

    fn ws(&self) -> &Workspace {
        &self.ws
    }

    fn repo(&self) -> &Path {
        &self.repo
    }

    fn identity(&self) -> serde_json::Value {
        serde_json::json!({
            "kit": self.name,
            "arch": self.arch,
            "repo": self.repo,
            "registry": self.input.registry,
        })
    }

    fn run(&self, sh: &Shell, phase: KitPhase) -> Result<()> {
        match phase {
            KitPhase::Setup => execute::<setup::Setup>(sh, self),
            KitPhase::Build => execute::<build::Build>(sh, self),
            KitPhase::Publish => execute::<publish::Publish>(sh, self),
            KitPhase::Verify => execute::<verify::Verify>(sh, self),
        }
    }

    fn gate(&self, sh: &Shell, phase: KitPhase) -> Gate {
        match phase {
            KitPhase::Setup => check::<setup::Setup>(sh, self),
            KitPhase::Build => check::<build::Build>(sh, self),
            KitPhase::Publish => check::<publish::Publish>(sh, self),
            KitPhase::Verify => check::<verify::Verify>(sh, self),
        }
    }
}

/// The kit repo when none is named: this checkout if it is a kit repo, else
/// `$FOREST_ROOT/kits/<kit>`.
pub(crate) fn default_repo(kit: Option<&str>) -> Result<PathBuf> {
    let root = project::root();
    if is_kit_repo(&root) {
        return Ok(root);
    }
    if let (Some(forest), Some(kit)) = (project::forest_root(), kit) {
        return Ok(forest.join("kits").join(kit));
    }
    bail!(
        "{} is not a kit repo (no Twoliter.toml and kits/): pass --kit-dir <kit repo>, or set \
         FOREST_ROOT so that the kit is at $FOREST_ROOT/kits/<kit>",
        root.display()
    )
}

pub(crate) fn is_kit_repo(dir: &Path) -> bool {
    dir.join("Twoliter.toml").is_file() && dir.join("kits").is_dir()
}

fn check_repo(repo: &Path) -> Result<()> {
    if !repo.is_dir() {
        bail!(
            "kit repo {} does not exist: pass --kit-dir, or set kit_dir in input.json",
            repo.display()
        );
    }
    if !repo.join("Twoliter.toml").is_file() {
        bail!(
            "{} has no Twoliter.toml, so it is not a twoliter kit repo: point --kit-dir (or kit_dir in \
             input.json) at a checkout of a kit repo such as bottlerocket-core-kit",
            repo.display()
        );
    }
    Ok(())
}

/// The twoliter a kit repo builds with: the installed `tools/twoliter/twoliter` (the Makefile's
/// `prep` installs the pinned version before every build and publish), else the Makefile's
/// `TWOLITER_VERSION ?=` pin, else, in a repo without a Makefile, twoliter on PATH.
pub(crate) fn twoliter_version(repo: &Path) -> Option<semver::Version> {
    let installed = repo.join(tools::REPO_TWOLITER);
    if tools::is_executable(&installed) {
        return compat::installed_version(&installed);
    }
    match std::fs::read_to_string(repo.join("Makefile")) {
        Ok(makefile) => {
            repo::makefile_var_default(&makefile, "TWOLITER_VERSION").and_then(|pin| compat::parse_pin(&pin))
        }
        Err(_) => tools::which("twoliter").and_then(|path| compat::installed_version(&path)),
    }
}

/// The kits of a repo: the directories under `kits/`.
pub(crate) fn kits_in(repo: &Path) -> Vec<String> {
    let mut kits: Vec<String> = std::fs::read_dir(repo.join("kits"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    kits.sort();
    kits
}

fn check_kit(repo: &Path, kit: &str) -> Result<()> {
    project::check_identifier("kit", kit)?;
    if repo.join("kits").join(kit).is_dir() {
        return Ok(());
    }
    let kits = kits_in(repo);
    bail!(
        "unknown kit `{kit}`: {} has {}",
        repo.join("kits").display(),
        if kits.is_empty() {
            "no kits".to_string()
        } else {
            format!("only {}", kits.join(", "))
        }
    )
}

/// The kit to build when none is named: the Makefile's `KIT ?=`, else the only kit.
pub(crate) fn default_kit(repo: &Path) -> Result<String> {
    if let Ok(makefile) = std::fs::read_to_string(repo.join("Makefile")) {
        if let Some(kit) = repo::makefile_var_default(&makefile, "KIT") {
            return Ok(kit);
        }
    }
    match kits_in(repo).as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!("{} has no kits under kits/: pass --kit", repo.display()),
        many => bail!("{} has several kits ({}): pass --kit", repo.display(), many.join(", ")),
    }
}

/// Runs a kit phase's command in the kit repo, streamed and logged: the Makefile's target when
/// it has one (it installs the twoliter the repo pins, through `prep`), else twoliter directly.
pub(crate) fn run_in_repo(
    kit: &Kit,
    phase: KitPhase,
    make_args: &[String],
    twoliter_steps: &[Vec<String>],
) -> Result<()> {
    let log = kit.ws.log_path(phase);
    let target = make_args.first().map(String::as_str).unwrap_or_default();
    let use_make = kit.makefile().is_some_and(|m| repo::makefile_has_target(&m, target));
    let prefix = format!("[{}] ", crate::workflow::PhaseKind::id(phase));
    if use_make {
        crate::tools::require("make", "install make (`apt-get install make`)")?;
        let mut cmd = crate::process::tool("make");
        cmd.args(make_args).current_dir(&kit.repo);
        crate::ui::info(format!("make {}", make_args.join(" ")));
        crate::process::stream(cmd, &prefix, &log)?.check(&format!("`make {}`", make_args.join(" ")), &log)?;
    } else {
        let twoliter = crate::tools::twoliter(&kit.repo, &crate::tools::twoliter_remedy(&kit.repo))?;
        for step in twoliter_steps {
            let mut cmd = crate::process::tool(&twoliter);
            cmd.args(step).current_dir(&kit.repo);
            crate::ui::info(format!("twoliter {}", step.join(" ")));
            crate::process::stream(cmd, &prefix, &log)?.check(&format!("`twoliter {}`", step.join(" ")), &log)?;
        }
    }
    Ok(())
}
