//! What every phase of both workflows has in common: its identity ([`PhaseKind`]), its code
//! ([`Phase`]: act, then gate), the workflow that strings phases together ([`Flow`]), the
//! workspace its results live in, and the recording of a run ([`record`]).
//!
//! A workspace is a directory holding `input.json` (written by a caller or by `build-kit` /
//! `variant`), `progress.json` (phase states and attempts), `results/<phase>.json` (what each
//! phase command observed, machine-readable), `logs/<phase>.log`, and `reports/` (the
//! human-readable reports the phase commands write). Orchestrators write their sub-agents'
//! prose next to them; nothing here ever reads that prose.

pub(crate) mod record;
pub(crate) mod workspace;

use std::fmt::Debug;

use anyhow::Result;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use xshell::Shell;

pub(crate) use workspace::Workspace;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub(crate) enum Workflow {
    Kit,
    Variant,
}

impl Workflow {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workflow::Kit => "kit",
            Workflow::Variant => "variant",
        }
    }
}

/// The identity of a phase of one workflow: the names it goes by and what it promises. Each
/// workflow's phases are one enum, so a phase is never looked up by name after parsing.
pub(crate) trait PhaseKind: Copy + Eq + Debug + 'static {
    const WORKFLOW: Workflow;
    /// Every phase of the workflow, in order.
    const ALL: &'static [Self];
    /// As on the command line and in file names: `setup`, `update-lock`, …
    fn id(self) -> &'static str;
    /// As in the phase files: `SETUP`, `UPDATE_LOCK`, …
    fn title(self) -> &'static str;
    /// The name of the phase's report under `reports/` and of its sub-agent's answer under
    /// `answers/` (the names the original skills used for answers).
    fn output_file(self) -> &'static str;
    /// Why a phase whose gate passes need not run again, in one line.
    fn skip_reason(self) -> &'static str;

    /// Where an orchestrator writes its sub-agent's answer, relative to the workspace: under
    /// `answers/`, apart from everything the xtask writes.
    fn answer_file(self) -> String {
        format!("answers/{}", self.output_file())
    }

    /// Its position in [`Self::ALL`].
    fn index(self) -> usize {
        Self::ALL.iter().position(|p| *p == self).expect("a phase is in ALL")
    }

    /// The phase before it, if any.
    fn previous(self) -> Option<Self> {
        self.index().checked_sub(1).map(|i| Self::ALL[i])
    }

    /// The earlier phases whose results this phase's work uses: when one of them is redone,
    /// this one's result no longer counts. By default the phase right before it.
    fn builds_on(self) -> Vec<Self> {
        self.previous().into_iter().collect()
    }

    /// Parses a phase name as a user types it: its id or title, in any case (`build`, `BUILD`,
    /// `update_lock`).
    fn parse(name: &str) -> Option<Self> {
        let wanted = name.to_ascii_lowercase().replace('_', "-");
        Self::ALL.iter().copied().find(|p| p.id() == wanted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KitPhase {
    Setup,
    Build,
    Publish,
    Verify,
}

impl PhaseKind for KitPhase {
    const WORKFLOW: Workflow = Workflow::Kit;
    const ALL: &'static [KitPhase] = &[KitPhase::Setup, KitPhase::Build, KitPhase::Publish, KitPhase::Verify];

    fn id(self) -> &'static str {
        match self {
            KitPhase::Setup => "setup",
            KitPhase::Build => "build",
            KitPhase::Publish => "publish",
            KitPhase::Verify => "verify",
        }
    }

    fn title(self) -> &'static str {
        match self {
            KitPhase::Setup => "SETUP",
            KitPhase::Build => "BUILD",
            KitPhase::Publish => "PUBLISH",
            KitPhase::Verify => "VERIFY",
        }
    }

    fn output_file(self) -> &'static str {
        match self {
            KitPhase::Setup => "01-setup.md",
            KitPhase::Build => "02-build.md",
            KitPhase::Publish => "03-publish.md",
            KitPhase::Verify => "04-verify.md",
        }
    }

    /// A kit build reads the repo, not the registry or Infra.toml: redoing SETUP (a registry
    /// restarted on its port) leaves the build standing, and only what publishes is redone.
    fn builds_on(self) -> Vec<KitPhase> {
        match self {
            KitPhase::Setup | KitPhase::Build => vec![],
            KitPhase::Publish => vec![KitPhase::Setup, KitPhase::Build],
            KitPhase::Verify => vec![KitPhase::Publish],
        }
    }

    fn skip_reason(self) -> &'static str {
        match self {
            KitPhase::Setup => "the registry answers and Infra.toml points at it",
            KitPhase::Build => {
                "nothing it depends on changed since the last build (same build id and fingerprint: \
                 tree, uncommitted edits, untracked files, arch, twoliter) and its archive is the one it made"
            }
            KitPhase::Publish => "the registry still serves this build's image under the index tag",
            KitPhase::Verify => "the registry still serves the verified index",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VariantPhase {
    UpdateConfig,
    UpdateLock,
    Build,
    Validate,
}

impl PhaseKind for VariantPhase {
    const WORKFLOW: Workflow = Workflow::Variant;
    const ALL: &'static [VariantPhase] = &[
        VariantPhase::UpdateConfig,
        VariantPhase::UpdateLock,
        VariantPhase::Build,
        VariantPhase::Validate,
    ];

    fn id(self) -> &'static str {
        match self {
            VariantPhase::UpdateConfig => "update-config",
            VariantPhase::UpdateLock => "update-lock",
            VariantPhase::Build => "build",
            VariantPhase::Validate => "validate",
        }
    }

    fn title(self) -> &'static str {
        match self {
            VariantPhase::UpdateConfig => "UPDATE_CONFIG",
            VariantPhase::UpdateLock => "UPDATE_LOCK",
            VariantPhase::Build => "BUILD",
            VariantPhase::Validate => "VALIDATE",
        }
    }

    fn output_file(self) -> &'static str {
        match self {
            VariantPhase::UpdateConfig => "01-config-updated.md",
            VariantPhase::UpdateLock => "02-lock-updated.md",
            VariantPhase::Build => "03-build-complete.md",
            VariantPhase::Validate => "FINAL.md",
        }
    }

    fn skip_reason(self) -> &'static str {
        match self {
            VariantPhase::UpdateConfig => "the repo still points at the local kits",
            VariantPhase::UpdateLock => "Twoliter.lock already holds the digests the registry serves",
            VariantPhase::Build => {
                "`latest` names the images of the repo's build id and the repo has not changed since the build"
            }
            VariantPhase::Validate => "the validated images and fetched kits are unchanged",
        }
    }
}

/// What a gate observed about a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    Passed,
    Failed(String),
}

/// A workflow resolved from a workspace's input: what its phases act on, and the one place
/// that maps each of its phases to the phase's code.
pub(crate) trait Flow {
    type Phase: PhaseKind;
    fn ws(&self) -> &Workspace;
    /// The kit or variant repo the workflow works on (one run at a time).
    fn repo(&self) -> &std::path::Path;
    /// What the workflow was asked to do, as resolved (repo, arch, kits, registry, …): every
    /// result is bound to it, and a result made for anything else is not taken.
    fn identity(&self) -> serde_json::Value;
    /// Runs a phase: it acts, its gate is checked, and the outcome is recorded.
    fn run(&self, sh: &Shell, phase: Self::Phase) -> Result<()>;
    /// Re-checks a phase from its recorded result against reality.
    fn gate(&self, sh: &Shell, phase: Self::Phase) -> Gate;
}

/// The code of one phase. `run` acts and returns what it observed (recorded as the phase's
/// result) with a report; `gate` re-checks a recorded result against reality, so a result is
/// never taken on trust.
pub(crate) trait Phase {
    type Flow: Flow;
    /// What the phase records, and later phases read back with [`Workspace::succeeded`].
    type Data: Serialize + DeserializeOwned;
    const PHASE: <Self::Flow as Flow>::Phase;
    fn run(sh: &Shell, flow: &Self::Flow) -> Result<(Self::Data, String)>;
    fn gate(sh: &Shell, flow: &Self::Flow, data: &Self::Data) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_parsed_from_any_spelling() {
        assert_eq!(VariantPhase::parse("UPDATE_LOCK"), Some(VariantPhase::UpdateLock));
        assert_eq!(KitPhase::parse("Verify").unwrap().output_file(), "04-verify.md");
        assert_eq!(KitPhase::parse("validate"), None);
        assert_eq!(VariantPhase::ALL[3].output_file(), "FINAL.md");
        assert_eq!(VariantPhase::UpdateLock.previous(), Some(VariantPhase::UpdateConfig));
        assert_eq!(KitPhase::Setup.previous(), None);
    }
}
