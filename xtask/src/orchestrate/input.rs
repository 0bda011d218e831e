//! `input.json`: which workflow a workspace runs, and with what.

use anyhow::{bail, Context, Result};

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
        let value: serde_json::Value = serde_json::from_str(text).context("input.json is not valid JSON")?;
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

/// Reads a workspace's `input.json`; a missing one says how to write it.
pub(crate) fn read(ws: &Workspace) -> Result<Input> {
    let path = ws.input_path();
    if !ws.dir.is_dir() {
        bail!(
            "workspace {} does not exist: create it with an input.json, or run `cargo xtask build-kit` / `cargo xtask variant`",
            ws.dir.display()
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
}
