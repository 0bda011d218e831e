//! `progress.json`: the state of each phase of a workspace, with a schema version. Written
//! atomically, only while the workspace lock is held.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::Workflow;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseState {
    /// Not started, or failed and waiting for another attempt.
    Pending,
    /// A sub-agent was spawned for it; the next `next-step` call checks its gate.
    Spawned,
    /// Its gate passed.
    Passed,
    /// Its gate failed on every allowed attempt.
    GaveUp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub attempt: u32,
    pub reason: String,
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseProgress {
    pub id: String,
    pub state: PhaseState,
    /// Attempts started so far (spawns and direct runs).
    pub attempts: u32,
    #[serde(default)]
    pub failures: Vec<Failure>,
    #[serde(default)]
    pub started_at: Option<u64>,
    #[serde(default)]
    pub passed_at: Option<u64>,
    /// Why a phase passed without running, e.g. "unchanged since the last verified publish".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub schema_version: u32,
    pub workflow: Workflow,
    pub phases: Vec<PhaseProgress>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl Progress {
    pub fn new(workflow: Workflow, now: u64) -> Progress {
        let phases = workflow
            .phases()
            .iter()
            .map(|p| PhaseProgress {
                id: p.id.to_string(),
                state: PhaseState::Pending,
                attempts: 0,
                failures: Vec::new(),
                started_at: None,
                passed_at: None,
                note: None,
            })
            .collect();
        Progress {
            schema_version: SCHEMA_VERSION,
            workflow,
            phases,
            created_at: now,
            updated_at: now,
        }
    }

    /// Checks a loaded progress belongs to this xtask and workflow.
    pub fn check(&self, workflow: Workflow) -> Result<()> {
        if self.schema_version > SCHEMA_VERSION {
            bail!(
                "progress.json has schema version {} but this xtask knows up to {SCHEMA_VERSION}: \
                 update the xtask, or start a new workspace",
                self.schema_version
            );
        }
        if self.workflow != workflow {
            bail!(
                "progress.json belongs to the {} workflow but input.json describes the {} \
                 workflow: use a new workspace for each",
                self.workflow.name(),
                workflow.name()
            );
        }
        let ids: Vec<&str> = self.phases.iter().map(|p| p.id.as_str()).collect();
        let expected: Vec<&str> = workflow.phases().iter().map(|p| p.id).collect();
        if ids != expected {
            bail!("progress.json lists phases {ids:?}, expected {expected:?}: delete it to start over");
        }
        Ok(())
    }

    pub fn phase(&self, id: &str) -> &PhaseProgress {
        self.phases.iter().find(|p| p.id == id).expect("phase of this workflow")
    }

    pub fn phase_mut(&mut self, id: &str) -> &mut PhaseProgress {
        self.phases
            .iter_mut()
            .find(|p| p.id == id)
            .expect("phase of this workflow")
    }

    /// The first phase that has not passed.
    pub fn current(&self) -> Option<&PhaseProgress> {
        self.phases.iter().find(|p| p.state != PhaseState::Passed)
    }

    /// Records an attempt of a phase starting.
    pub fn start(&mut self, id: &str, spawned: bool, now: u64) -> u32 {
        let phase = self.phase_mut(id);
        phase.attempts += 1;
        phase.state = if spawned {
            PhaseState::Spawned
        } else {
            PhaseState::Pending
        };
        phase.started_at = Some(now);
        self.updated_at = now;
        self.phase(id).attempts
    }

    pub fn pass(&mut self, id: &str, note: Option<String>, now: u64) {
        let phase = self.phase_mut(id);
        phase.state = PhaseState::Passed;
        phase.passed_at = Some(now);
        phase.note = note;
        self.updated_at = now;
    }

    /// Records a failure of the current attempt; returns true when no attempt is left.
    pub fn fail(&mut self, id: &str, reason: String, max_attempts: u32, now: u64) -> bool {
        let phase = self.phase_mut(id);
        let attempt = phase.attempts.max(1);
        phase.failures.push(Failure {
            attempt,
            reason,
            at: now,
        });
        let gave_up = phase.attempts >= max_attempts;
        phase.state = if gave_up {
            PhaseState::GaveUp
        } else {
            PhaseState::Pending
        };
        self.updated_at = now;
        gave_up
    }

    /// Makes a phase and every later one pending again (their results no longer hold).
    pub fn reopen_from(&mut self, id: &str, now: u64) {
        let mut reopen = false;
        for phase in &mut self.phases {
            reopen |= phase.id == id;
            if reopen && phase.state == PhaseState::Passed {
                phase.state = PhaseState::Pending;
                phase.passed_at = None;
                phase.note = None;
            }
        }
        self.updated_at = now;
    }
}
