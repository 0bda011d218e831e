//! `input.json`: which workflow a workspace runs, and with what.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::kit::KitInput;
use crate::variant::VariantInput;
use crate::workflow::{Workflow, Workspace};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Kit(KitInput),
    Variant(VariantInput),
}

impl Input {
    pub(crate) fn workflow(&self) -> Workflow {
        match self {
            Input::Kit(_) => Workflow::Kit,
            Input::Variant(_) => Workflow::Variant,
        }
    }

    /// Parses and checks `input.json` text.
    pub(crate) fn parse(text: &str) -> Result<Input> {
        let value: serde_json::Value = text.parse().context("input.json is not valid JSON")?;
        let Some(object) = value.as_object() else {
            bail!("input.json must be a JSON object such as {{\"kit_name\": \"…\", \"arch\": \"x86_64\"}}");
        };
        let input = match (object.contains_key("kit_name"), object.contains_key("kits")) {
            (true, false) => Input::Kit(serde_json::from_value(value).map_err(|e| {
                anyhow::anyhow!(
                    "input.json (kit workflow): {e}; expected {{\"kit_name\": \"<kit>\", \"arch\": \"x86_64|aarch64\"}}"
                )
            })?),
            (false, true) => Input::Variant(serde_json::from_value(value).map_err(|e| {
                anyhow::anyhow!("input.json (variant workflow): {e}; expected {{\"kits\": [{{\"name\": \"<kit>\", \"version\": \"<semver>\"}}], \"variant\": \"<variant>\", \"arch\": \"x86_64\"}}")
            })?),
            (true, true) => bail!(
                "input.json has both `kit_name` (kit workflow) and `kits` (variant workflow): use one workspace per workflow"
            ),
            (false, false) => bail!(
                "input.json has neither `kit_name` (kit workflow) nor `kits` (variant workflow): write \
                 {{\"kit_name\": \"<kit>\", \"arch\": \"x86_64\"}} or {{\"kits\": [{{\"name\": \"<kit>\"}}], \"variant\": \"<variant>\"}}"
            ),
        };
        match &input {
            Input::Kit(kit) => kit.check()?,
            Input::Variant(variant) => variant.check()?,
        }
        Ok(input)
    }
}

/// What a workspace's calls resolved, kept in `resolved.json` so that later calls do not
/// depend on where they are made from or on their environment (`--root`, `FOREST_ROOT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Resolved {
    /// The checkout holding the xtask: its planning/ and registry.
    pub(crate) root: PathBuf,
    /// The kit or variant repo.
    pub(crate) repo: PathBuf,
    pub(crate) arch: Arch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
    /// The forest the checkout was in (`--forest-root`, `FOREST_ROOT`): its registry, and the
    /// VERIFY records of its repos that pin the kits a variant takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) forest_root: Option<PathBuf>,
}

pub(crate) fn resolved_path(ws: &Workspace) -> PathBuf {
    ws.dir.join("resolved.json")
}

/// The recorded resolution, if any (an unreadable one is ignored: it is recomputed).
pub(crate) fn read_resolved(ws: &Workspace) -> Option<Resolved> {
    crate::fsx::read_json(&resolved_path(ws)).ok().flatten()
}

/// Reads a workspace's `input.json`; a missing one says how to write it.
pub(crate) fn read(ws: &Workspace) -> Result<Input> {
    let path = ws.input_path();
    if !ws.dir.is_dir() {
        bail!(
            "workspace {} does not exist: create it with an input.json, or run `cargo xtask build-kit` / `cargo xtask variant`",
            ws.dir.display()
        );
    }
    let Some(text) = crate::fsx::read_text(&path)? else {
        bail!(
            "{} is missing: write {{\"kit_name\": \"<kit>\", \"arch\": \"x86_64\"}} (kit workflow) or \
             {{\"kits\": [{{\"name\": \"<kit>\"}}], \"variant\": \"<variant>\", \"arch\": \"x86_64\"}} (variant workflow)",
            path.display()
        )
    };
    Input::parse(&text).with_context(|| format!("in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    #[test]
    fn kit_input_in_the_orchestrators_shape() {
        let input = Input::parse(r#"{"kit_name": "core-kit", "arch": "amd64", "extra": 1}"#).unwrap();
        let Input::Kit(kit) = input else { panic!() };
        assert_eq!(kit.arch, Arch::X86_64);
        assert_eq!(kit.kit_name, "core-kit");
    }

    #[test]
    fn inputs_as_the_original_skills_write_them() {
        // The kit template: arch may be left out (the host's, as in the variant workflow).
        let Input::Kit(kit) = Input::parse(r#"{"kit_name": "core-kit"}"#).unwrap() else {
            panic!()
        };
        assert_eq!(kit.arch, Arch::host().unwrap());
        let Input::Kit(kit) = Input::parse(r#"{"kit_name": "core-kit", "arch": ""}"#).unwrap() else {
            panic!()
        };
        assert_eq!(kit.arch, Arch::host().unwrap());
        // The variant template: empty strings mean "not chosen".
        let text = r#"{"kits": [{"name": "core-kit", "version": "3.1.1"}, {"name": "kernel-kit", "version": ""}],
                       "variant": "", "arch": ""}"#;
        let Input::Variant(variant) = Input::parse(text).unwrap() else {
            panic!()
        };
        assert_eq!((variant.variant, variant.arch), (None, None));
        assert_eq!(variant.kits[1].version, None);
        assert_eq!(variant.kits[0].version.as_deref(), Some("3.1.1"));
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
            (r#"{"arch": "x86_64"}"#, "neither `kit_name`"),
            (r#"{"kit_name": "../x", "arch": "x86_64"}"#, "contains `.`"),
            (r#"{"kit_name": "a/b", "arch": "x86_64"}"#, "contains `/`"),
            (
                r#"{"kit_name": "k", "arch": "mips"}"#,
                "`arch` in input.json: unknown arch `mips`: use x86_64 (amd64) or aarch64 (arm64)",
            ),
            (
                r#"{"kits": [{"name": "k"}], "arch": "sparc"}"#,
                "`arch` in input.json: unknown arch `sparc`",
            ),
            (
                // A shared registry is accepted as twoliter names it: host[:port][/namespace].
                r#"{"kit_name": "k", "arch": "x86_64", "registry": "https://example.com:5000"}"#,
                "`registry` in input.json: registry `https://example.com:5000` has a scheme",
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
}
