//! A workspace directory: its inputs, its lock, and the results and logs its phases leave.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::progress::Progress;
use super::{PhaseDef, Workflow};
use crate::arch::Arch;
use crate::fsx;
use crate::project::check_identifier;

/// How long a caller waits for another process holding the workspace.
const LOCK_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Workspace {
    pub dir: PathBuf,
}

/// `input.json` of the kit workflow, in the shape existing orchestrators write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitInput {
    pub kit_name: String,
    pub arch: Arch,
    /// `localhost:<port>` of the registry to publish to (default: this checkout's registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kit_dir: Option<PathBuf>,
}

/// A kit the variant workflow takes from the local registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitSpec {
    pub name: String,
    /// Default: the version the last VERIFY recorded, else the highest `v<semver>` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `input.json` of the variant workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantInput {
    pub kits: Vec<KitSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_dir: Option<PathBuf>,
    /// `override` (default) or `vendor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Leave the repo pointed at the local kits after the run.
    #[serde(default)]
    pub keep_config: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Kit(KitInput),
    Variant(VariantInput),
}

impl Input {
    pub fn workflow(&self) -> Workflow {
        match self {
            Input::Kit(_) => Workflow::Kit,
            Input::Variant(_) => Workflow::Variant,
        }
    }

    /// Parses and checks `input.json` text.
    pub fn parse(text: &str) -> Result<Input> {
        let value: serde_json::Value = serde_json::from_str(text).context("input.json is not valid JSON")?;
        let Some(object) = value.as_object() else {
            bail!("input.json must be a JSON object such as {{\"kit_name\": \"…\", \"arch\": \"x86_64\"}}");
        };
        let input = match (object.contains_key("kit_name"), object.contains_key("kits")) {
            (true, false) => Input::Kit(
                serde_json::from_value(value)
                    .map_err(|e| anyhow::anyhow!("input.json (kit workflow): {e}; expected {{\"kit_name\": \"<kit>\", \"arch\": \"x86_64|aarch64\"}}"))?,
            ),
            (false, true) => Input::Variant(serde_json::from_value(value).map_err(|e| {
                anyhow::anyhow!("input.json (variant workflow): {e}; expected {{\"kits\": [{{\"name\": \"<kit>\", \"version\": \"<semver>\"}}], \"variant\": \"<variant>\", \"arch\": \"x86_64\"}}")
            })?),
            (true, true) => bail!("input.json has both `kit_name` (kit workflow) and `kits` (variant workflow): use one workspace per workflow"),
            (false, false) => bail!(
                "input.json has neither `kit_name` (kit workflow) nor `kits` (variant workflow): write \
                 {{\"kit_name\": \"<kit>\", \"arch\": \"x86_64\"}} or {{\"kits\": [{{\"name\": \"<kit>\"}}], \"variant\": \"<variant>\"}}"
            ),
        };
        input.check()?;
        Ok(input)
    }

    fn check(&self) -> Result<()> {
        match self {
            Input::Kit(kit) => {
                check_identifier("kit_name in input.json", &kit.kit_name)?;
                if let Some(registry) = &kit.registry {
                    registry_port(registry)?;
                }
            }
            Input::Variant(variant) => {
                if variant.kits.is_empty() {
                    bail!("input.json lists no kits: add {{\"name\": \"<kit>\"}} entries to `kits`");
                }
                for kit in &variant.kits {
                    check_identifier("kit name in input.json", &kit.name)?;
                    if let Some(version) = &kit.version {
                        semver::Version::parse(version.trim_start_matches('v')).map_err(|e| {
                            anyhow::anyhow!(
                                "kit {} has version `{version}`, which is not semver ({e}): use e.g. 1.2.3",
                                kit.name
                            )
                        })?;
                    }
                }
                if let Some(variant_name) = &variant.variant {
                    check_identifier("variant in input.json", variant_name)?;
                }
                if let Some(registry) = &variant.registry {
                    registry_port(registry)?;
                }
                match variant.strategy.as_deref() {
                    None | Some("override") | Some("vendor") => {}
                    Some(other) => bail!("input.json strategy `{other}` is unknown: use `override` or `vendor`"),
                }
            }
        }
        Ok(())
    }
}

/// The port of a `localhost:<port>` or `127.0.0.1:<port>` registry address.
pub fn registry_port(registry: &str) -> Result<u16> {
    let port = registry
        .strip_prefix("localhost:")
        .or_else(|| registry.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.parse::<u16>().ok());
    match port {
        Some(port) if port != 0 => Ok(port),
        _ => bail!(
            "registry `{registry}` is not a local registry address: use localhost:<port> (twoliter \
             talks plain HTTP only to localhost and 127.0.0.1)"
        ),
    }
}

/// What a phase command left behind, whatever the phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult<T> {
    pub phase: String,
    pub ok: bool,
    pub started_at: u64,
    pub finished_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The phase's own observations (None when it failed before making any).
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

impl Workspace {
    pub fn new(dir: &Path) -> Workspace {
        Workspace {
            dir: crate::project::absolute(dir),
        }
    }

    pub fn input_path(&self) -> PathBuf {
        self.dir.join("input.json")
    }

    pub fn progress_path(&self) -> PathBuf {
        self.dir.join("progress.json")
    }

    pub fn result_path(&self, phase: &PhaseDef) -> PathBuf {
        self.dir.join("results").join(format!("{}.json", phase.id))
    }

    pub fn log_path(&self, phase: &PhaseDef) -> PathBuf {
        self.dir.join("logs").join(format!("{}.log", phase.id))
    }

    pub fn report_path(&self, phase: &PhaseDef) -> PathBuf {
        self.dir.join("reports").join(phase.output_file)
    }

    /// Reads `input.json`; a missing one says how to write it.
    pub fn input(&self) -> Result<Input> {
        let path = self.input_path();
        if !self.dir.is_dir() {
            bail!(
                "workspace {} does not exist: create it with an input.json, or run `cargo xtask build-kit` / `cargo xtask variant`",
                self.dir.display()
            );
        }
        let text = match fs_err::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} is missing: write {{\"kit_name\": \"<kit>\", \"arch\": \"x86_64\"}} (kit workflow) or \
                 {{\"kits\": [{{\"name\": \"<kit>\"}}], \"variant\": \"<variant>\", \"arch\": \"x86_64\"}} (variant workflow)",
                path.display()
            ),
            Err(err) => return Err(err.into()),
        };
        Input::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Writes `input.json` (for `build-kit` and `variant`), keeping an existing identical one.
    pub fn write_input<T: Serialize>(&self, input: &T) -> Result<()> {
        fsx::write_json_atomic(&self.input_path(), input)
    }

    /// Holds the workspace against other processes while progress is read and written.
    pub fn lock(&self) -> Result<fsx::Lock> {
        fsx::Lock::acquire(&self.dir.join(".lock"), LOCK_WAIT)
    }

    /// Held while a phase command runs, so two runs of a phase never overlap.
    pub fn phase_lock(&self, phase: &PhaseDef) -> Result<fsx::Lock> {
        fsx::Lock::acquire(&self.dir.join(format!(".{}.lock", phase.id)), Duration::from_secs(2))
            .with_context(|| format!("phase {} is already running in this workspace", phase.title))
    }

    /// The saved progress, or a fresh one. Call with the lock held.
    pub fn progress(&self, workflow: Workflow) -> Result<Progress> {
        match fsx::read_json::<Progress>(&self.progress_path())? {
            Some(progress) => {
                progress
                    .check(workflow)
                    .with_context(|| format!("in {}", self.progress_path().display()))?;
                Ok(progress)
            }
            None => Ok(Progress::new(workflow, fsx::now_unix())),
        }
    }

    pub fn save_progress(&self, progress: &Progress) -> Result<()> {
        fsx::write_json_state(&self.progress_path(), progress)
    }

    pub fn result<T: DeserializeOwned>(&self, phase: &PhaseDef) -> Result<Option<PhaseResult<T>>> {
        fsx::read_json(&self.result_path(phase))
    }

    /// What a phase recorded when it succeeded, or an error naming the command to run first.
    pub fn succeeded<T: DeserializeOwned>(&self, workflow: Workflow, id: &str) -> Result<T> {
        let phase = workflow.phase(id).expect("a phase of this workflow");
        self.result::<T>(phase)?
            .filter(|r| r.ok)
            .and_then(|r| r.data)
            .with_context(|| {
                format!(
                    "{} has not succeeded in {}: run `cargo xtask phase {} {}` first",
                    phase.title,
                    self.dir.display(),
                    phase.id,
                    self.dir.display()
                )
            })
    }

    pub fn save_result<T: Serialize>(&self, phase: &PhaseDef, result: &PhaseResult<T>) -> Result<()> {
        fsx::write_json_state(&self.result_path(phase), result)
    }

    pub fn save_report(&self, phase: &PhaseDef, text: &str) -> Result<()> {
        fsx::write_atomic(&self.report_path(phase), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_input_in_the_orchestrators_shape() {
        let input = Input::parse(r#"{"kit_name": "core-kit", "arch": "amd64", "extra": 1}"#).unwrap();
        let Input::Kit(kit) = input else { panic!() };
        assert_eq!(kit.arch, Arch::X86_64);
        assert_eq!(kit.kit_name, "core-kit");
    }

    #[test]
    fn variant_input() {
        let input = Input::parse(
            r#"{"kits": [{"name": "core-kit", "version": "1.2.3"}, {"name": "k2"}], "variant": "aws-dev"}"#,
        )
        .unwrap();
        assert_eq!(input.workflow(), Workflow::Variant);
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let cases = [
            ("{nope", "not valid JSON"),
            ("[]", "must be a JSON object"),
            ("{}", "neither `kit_name`"),
            (r#"{"kit_name": "a", "kits": []}"#, "both"),
            (r#"{"kit_name": "core-kit"}"#, "missing field `arch`"),
            (r#"{"kit_name": "../x", "arch": "x86_64"}"#, "contains `.`"),
            (r#"{"kit_name": "a/b", "arch": "x86_64"}"#, "contains `/`"),
            (r#"{"kit_name": "k", "arch": "mips"}"#, "unknown variant `mips`"),
            (
                r#"{"kit_name": "k", "arch": "x86_64", "registry": "example.com:5000"}"#,
                "not a local registry",
            ),
            (r#"{"kits": []}"#, "lists no kits"),
            (r#"{"kits": [{"name": "k", "version": "latest"}]}"#, "not semver"),
            (r#"{"kits": [{"name": "k"}], "strategy": "magic"}"#, "strategy `magic`"),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", Input::parse(text).unwrap_err());
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn registry_ports() {
        assert_eq!(registry_port("localhost:5000").unwrap(), 5000);
        assert_eq!(registry_port("127.0.0.1:41000").unwrap(), 41000);
        assert!(registry_port("localhost").is_err());
        assert!(registry_port("public.ecr.aws/bottlerocket").is_err());
    }
}
