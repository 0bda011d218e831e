//! Workspaces, progress and the pure state machine shared by both workflows.
//!
//! A workspace is a directory holding `input.json` (written by a caller or by `build-kit` /
//! `variant`), `progress.json` (phase states and attempts), `results/<phase>.json` (what each
//! phase command observed, machine-readable), `logs/<phase>.log`, and `reports/` (the
//! human-readable reports the phase commands write). Orchestrators write their sub-agents'
//! prose next to them; nothing here ever reads that prose.

pub mod machine;
pub mod progress;
pub mod workspace;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workflow {
    Kit,
    Variant,
}

/// One phase of a workflow, as the protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseDef {
    /// As on the command line: `setup`, `update-lock`, …
    pub id: &'static str,
    /// As in the phase files: `SETUP`, `UPDATE_LOCK`, …
    pub title: &'static str,
    /// The orchestrator writes its sub-agent's answer here (relative to the workspace).
    pub output_file: &'static str,
}

const KIT_PHASES: [PhaseDef; 4] = [
    PhaseDef {
        id: "setup",
        title: "SETUP",
        output_file: "01-setup.md",
    },
    PhaseDef {
        id: "build",
        title: "BUILD",
        output_file: "02-build.md",
    },
    PhaseDef {
        id: "publish",
        title: "PUBLISH",
        output_file: "03-publish.md",
    },
    PhaseDef {
        id: "verify",
        title: "VERIFY",
        output_file: "04-verify.md",
    },
];

const VARIANT_PHASES: [PhaseDef; 4] = [
    PhaseDef {
        id: "update-config",
        title: "UPDATE_CONFIG",
        output_file: "01-config-updated.md",
    },
    PhaseDef {
        id: "update-lock",
        title: "UPDATE_LOCK",
        output_file: "02-lock-updated.md",
    },
    PhaseDef {
        id: "build",
        title: "BUILD",
        output_file: "03-build-complete.md",
    },
    PhaseDef {
        id: "validate",
        title: "VALIDATE",
        output_file: "FINAL.md",
    },
];

impl Workflow {
    pub fn name(self) -> &'static str {
        match self {
            Workflow::Kit => "kit",
            Workflow::Variant => "variant",
        }
    }

    pub fn phases(self) -> &'static [PhaseDef] {
        match self {
            Workflow::Kit => &KIT_PHASES,
            Workflow::Variant => &VARIANT_PHASES,
        }
    }

    /// Finds a phase by its id or title, in any case (`build`, `BUILD`, `update_lock`).
    pub fn phase(self, name: &str) -> Option<&'static PhaseDef> {
        let wanted = name.to_ascii_lowercase().replace('_', "-");
        self.phases().iter().find(|p| p.id == wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_found_by_any_spelling() {
        assert_eq!(Workflow::Variant.phase("UPDATE_LOCK").unwrap().id, "update-lock");
        assert_eq!(Workflow::Kit.phase("Verify").unwrap().output_file, "04-verify.md");
        assert!(Workflow::Kit.phase("validate").is_none());
        assert_eq!(Workflow::Variant.phases()[3].output_file, "FINAL.md");
    }
}
