//! `progress.json`: the state of each phase of a workspace, with a schema version. Written
//! atomically, only while the workspace lock is held.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsx;
use crate::workflow::{PhaseKind, Workflow, Workspace};

pub(crate) const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PhaseState {
    /// Not started, or failed and waiting for another attempt.
    Pending,
    /// A sub-agent was spawned for it; the next `next-step` call checks its gate.
    Spawned,
    /// Its gate passed.
    Passed,
    /// Its gate failed on every allowed attempt.
    GaveUp,
}

pub(crate) use crate::protocol::Failure;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PhaseProgress {
    pub(crate) id: String,
    pub(crate) state: PhaseState,
    /// Attempts started so far (spawns and direct runs).
    pub(crate) attempts: u32,
    #[serde(default)]
    pub(crate) failures: Vec<Failure>,
    #[serde(default)]
    pub(crate) started_at: Option<u64>,
    #[serde(default)]
    pub(crate) passed_at: Option<u64>,
    /// Why a phase passed without running, e.g. "unchanged since the last verified publish".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub(crate) schema_version: u32,
    pub(crate) workflow: Workflow,
    pub(crate) phases: Vec<PhaseProgress>,
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
}

impl Progress {
    pub(crate) fn new<P: PhaseKind>(now: u64) -> Progress {
        let phases = P::ALL
            .iter()
            .map(|p| PhaseProgress {
                id: p.id().to_string(),
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
            workflow: P::WORKFLOW,
            phases,
            created_at: now,
            updated_at: now,
        }
    }

    /// Checks a loaded progress belongs to this xtask and to the workflow of `P`.
    pub(crate) fn check<P: PhaseKind>(&self) -> Result<()> {
        let workflow = P::WORKFLOW;
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
        let expected: Vec<&str> = P::ALL.iter().map(|p| p.id()).collect();
        if ids != expected {
            bail!("progress.json lists phases {ids:?}, expected {expected:?}: delete it to start over");
        }
        Ok(())
    }

    /// The progress of phase `p` (checked against the workflow when loaded).
    pub(crate) fn phase<P: PhaseKind>(&self, p: P) -> &PhaseProgress {
        &self.phases[p.index()]
    }

    pub(crate) fn phase_mut<P: PhaseKind>(&mut self, p: P) -> &mut PhaseProgress {
        &mut self.phases[p.index()]
    }

    /// The first phase that has not passed.
    pub(crate) fn current<P: PhaseKind>(&self) -> Option<P> {
        self.phases
            .iter()
            .position(|p| p.state != PhaseState::Passed)
            .map(|i| P::ALL[i])
    }

    /// The first phase that has not passed, for readers that do not know the workflow's phases.
    pub(crate) fn current_entry(&self) -> Option<&PhaseProgress> {
        self.phases.iter().find(|p| p.state != PhaseState::Passed)
    }

    /// Records an attempt of a phase starting.
    pub(crate) fn start<P: PhaseKind>(&mut self, p: P, now: u64) -> u32 {
        let phase = self.phase_mut(p);
        phase.attempts += 1;
        phase.state = PhaseState::Spawned;
        phase.started_at = Some(now);
        self.updated_at = now;
        self.phase(p).attempts
    }

    pub(crate) fn pass<P: PhaseKind>(&mut self, p: P, note: Option<String>, now: u64) {
        let phase = self.phase_mut(p);
        phase.state = PhaseState::Passed;
        phase.passed_at = Some(now);
        phase.note = note;
        self.updated_at = now;
    }

    /// Records a failure of the current attempt; returns true when no attempt is left.
    pub(crate) fn fail<P: PhaseKind>(&mut self, p: P, reason: String, max_attempts: u32, now: u64) -> bool {
        let phase = self.phase_mut(p);
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

    /// Makes every phase pending again, so that each is re-checked before it counts as passed;
    /// attempts and failures are kept.
    pub(crate) fn reopen_all(&mut self, now: u64) {
        for phase in &mut self.phases {
            if phase.state != PhaseState::Pending {
                phase.state = PhaseState::Pending;
                phase.passed_at = None;
                phase.note = None;
            }
        }
        self.updated_at = now;
    }
}

/// The saved progress of a workspace, or a fresh one. Call with the workspace lock held.
pub(crate) fn load<P: PhaseKind>(ws: &Workspace) -> Result<Progress> {
    match fsx::read_json::<Progress>(&ws.progress_path())? {
        Some(progress) => {
            progress
                .check::<P>()
                .with_context(|| format!("in {}", ws.progress_path().display()))?;
            Ok(progress)
        }
        None => Ok(Progress::new::<P>(fsx::now_unix())),
    }
}

pub(crate) fn save(ws: &Workspace, progress: &Progress) -> Result<()> {
    fsx::write_json_state(&ws.progress_path(), progress)
}

/// Reads, changes and saves `progress.json` under the workspace lock.
pub(crate) fn update<P: PhaseKind>(ws: &Workspace, change: impl FnOnce(&mut Progress, u64)) -> Result<()> {
    let _lock = ws.lock()?;
    let mut progress = load::<P>(ws)?;
    change(&mut progress, fsx::now_unix());
    save(ws, &progress)
}
