//! What the xtask prints for machines: the `next-step` answer (one JSON object per call) and the
//! `--json` summaries of `build-kit` and `variant`. These types are the contract; the JSON
//! Schema shipped as `phases/next-step.schema.json` is generated from them (a test keeps the two
//! equal) and every answer in the tests is validated against it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::workflow::Workflow;

/// One `next-step` answer. Printed with `action` and, for loops written for the original
/// skills, the same word again as `type`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer(pub(crate) Action);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "action", rename_all = "snake_case")]
pub(crate) enum Action {
    /// Run a sub-agent with `prompt`, `context_files` and `context_data`, and write its answer
    /// to `<workspace>/<output_file>`; then call `next-step` again. Asked again with nothing new
    /// (no answer file, no result, no `--phase-result`), the same spawn and attempt come back.
    Spawn(Box<Spawn>),
    /// The phase command is running now (in this or another process): call again after
    /// `retry_after_s` seconds. No attempt is spent.
    Wait(Wait),
    /// The phase failed its gate on every attempt; `reason` has each attempt's.
    GateFailed(GateFailed),
    /// Every phase passed its gate; read `summary_file`.
    Done(Done),
    /// The call itself was unusable (no workspace, bad input.json); exit status 2.
    Error(ErrorAnswer),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct Spawn {
    pub(crate) workflow: Workflow,
    /// The phase's title, as in the phase files: `SETUP`, `UPDATE_LOCK`, …
    pub(crate) phase: String,
    pub(crate) attempt: u32,
    pub(crate) prompt: String,
    /// The phase instruction file under `phases/`.
    pub(crate) context_files: Vec<PathBuf>,
    pub(crate) context_data: ContextData,
    /// Relative to the workspace, under `answers/`, which the xtask creates and never writes to.
    pub(crate) output_file: String,
    /// Something the orchestrator should know, e.g. that the last answer file was missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct Wait {
    pub(crate) workflow: Workflow,
    /// The title of the phase whose command is running.
    pub(crate) phase: String,
    pub(crate) reason: String,
    pub(crate) retry_after_s: u32,
    /// The running command's log, to follow its progress.
    pub(crate) log_file: PathBuf,
    pub(crate) workspace: PathBuf,
}

/// What a sub-agent needs to know about its phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub(crate) struct ContextData {
    pub(crate) workspace: PathBuf,
    pub(crate) workflow: Workflow,
    /// The phase's id, as the phase command takes it: `setup`, `update-lock`, …
    pub(crate) phase: String,
    /// The deterministic command that does the phase's work and checks it, as argv.
    pub(crate) phase_command: Vec<String>,
    /// Where to run `phase_command`.
    pub(crate) cwd: PathBuf,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    /// Why the previous attempt failed its gate.
    pub(crate) last_failure: Option<String>,
    pub(crate) result_file: PathBuf,
    pub(crate) report_file: PathBuf,
    pub(crate) log_file: PathBuf,
    #[serde(flatten)]
    pub(crate) subject: Subject,
}

/// What the workflow works on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(untagged)]
pub(crate) enum Subject {
    Kit {
        kit: String,
        arch: String,
        kit_dir: PathBuf,
        /// The registry as twoliter names it (`localhost:<port>`, or a shared registry's
        /// `host[:port][/namespace]`), once known.
        registry: Option<String>,
    },
    Variant {
        variant_dir: PathBuf,
        variant: String,
        arch: String,
        kits: Vec<KitRequest>,
        strategy: String,
        /// The registry input.json names (`localhost:<port>` or `host[:port][/namespace]`), else none:
        /// the registry of the checkout or its forest.
        registry: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct KitRequest {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct GateFailed {
    pub(crate) workflow: Workflow,
    /// The phase's title.
    pub(crate) phase: String,
    pub(crate) reason: String,
    pub(crate) attempts: Vec<Failure>,
    pub(crate) workspace: PathBuf,
    /// Reopens the phase with fresh attempts (its history is kept), once the cause is fixed.
    pub(crate) resume_command: Vec<String>,
    /// The variant repo stays as the failed phase left it, for diagnosis; this puts it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) restore_command: Option<Vec<String>>,
}

/// One failed attempt of a phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct Failure {
    pub(crate) attempt: u32,
    pub(crate) reason: String,
    /// Seconds since the Unix epoch.
    pub(crate) at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct Done {
    pub(crate) workflow: Workflow,
    /// The checked summary (the last phase's report), written where the original skills'
    /// loops read it: `<workspace>/04-verify.md` or `<workspace>/FINAL.md`.
    pub(crate) summary_file: PathBuf,
    pub(crate) workspace: PathBuf,
    pub(crate) phases: Vec<DonePhase>,
    /// Variant workflow: whether the variant repo's files were put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) restored: Option<bool>,
    /// Something the orchestrator should know, e.g. that the last answer file was missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct DonePhase {
    /// The phase's id.
    pub(crate) phase: String,
    pub(crate) attempts: u32,
    /// Why it passed without running, when it did.
    pub(crate) note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorAnswer {
    pub(crate) reason: String,
}

impl Action {
    fn word(&self) -> &'static str {
        match self {
            Action::Spawn(_) => "spawn",
            Action::Wait(_) => "wait",
            Action::GateFailed(_) => "gate_failed",
            Action::Done(_) => "done",
            Action::Error(_) => "error",
        }
    }
}

impl Answer {
    /// The answer as JSON: the action's fields and `type`.
    pub(crate) fn to_value(&self) -> serde_json::Result<serde_json::Value> {
        let mut value = serde_json::to_value(&self.0)?;
        value["type"] = self.0.word().into();
        Ok(value)
    }

    /// The one line `next-step` prints. `Value`'s `Display` is compiled in serde_json, at the
    /// opt-level Cargo.toml gives it, not in this crate's debug build: printing an answer with
    /// its prompt took 0.20 M instructions instead of 0.77 M (callgrind).
    pub(crate) fn to_line(&self) -> serde_json::Result<String> {
        Ok(self.to_value()?.to_string())
    }
}

impl Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Answer, D::Error> {
        use serde::de::Error;
        let mut value = serde_json::Value::deserialize(deserializer)?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| D::Error::custom("an answer is a JSON object"))?;
        let kind = object.remove("type");
        let action = Action::deserialize(value).map_err(D::Error::custom)?;
        match kind {
            Some(serde_json::Value::String(kind)) if kind == action.word() => Ok(Answer(action)),
            other => Err(D::Error::custom(format!(
                "`type` must repeat `action` ({}), found {other:?}",
                action.word()
            ))),
        }
    }
}

/// How one phase went in a `build-kit` or `variant` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PhaseOutcome {
    /// The phase's id.
    pub(crate) phase: String,
    pub(crate) outcome: Outcome,
    pub(crate) seconds: f64,
    /// Why it was skipped, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    /// It ran and passed its gate.
    Ran,
    /// Its gate already passed.
    Skipped,
    Failed,
}

impl Outcome {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// `build-kit --json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BuildKitSummary {
    pub(crate) ok: bool,
    pub(crate) error: Option<String>,
    pub(crate) workspace: PathBuf,
    pub(crate) kit: String,
    pub(crate) arch: crate::arch::Arch,
    pub(crate) seconds: f64,
    pub(crate) phases: Vec<PhaseOutcome>,
    /// What VERIFY recorded, when it passed.
    pub(crate) verified: Option<crate::kit::verify::VerifyData>,
    /// The command that builds a variant from this kit, as argv.
    pub(crate) next: Option<Vec<String>>,
    /// The kit pinned by the index digest VERIFY saw, `NAME@VERSION@sha256:…`: what a teammate
    /// or CI passes to `variant --kit` to build exactly what was published.
    pub(crate) pinned_kit: Option<String>,
}

/// `variant --json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VariantSummary {
    pub(crate) ok: bool,
    pub(crate) error: Option<String>,
    pub(crate) workspace: PathBuf,
    pub(crate) variant: String,
    pub(crate) arch: crate::arch::Arch,
    pub(crate) seconds: f64,
    pub(crate) phases: Vec<PhaseOutcome>,
    /// What VALIDATE found, when it passed.
    pub(crate) images: Option<crate::image::ImageReport>,
    pub(crate) kits: Option<Vec<crate::variant::validate::FetchedKit>>,
    /// Whether the variant repo's files were put back (none with `--keep-config`).
    pub(crate) restored: Option<bool>,
}

/// A `--json` summary of a command that failed before it could start its work.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NotStarted {
    pub(crate) ok: bool,
    pub(crate) error: String,
}

#[cfg(test)]
mod tests;
