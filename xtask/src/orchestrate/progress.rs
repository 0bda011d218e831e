//! `progress.json`: the state of each phase of a workspace, with a schema version. Written
//! atomically, only while the workspace lock is held. It is a cache of what was proven, not
//! proof: every gate is checked against reality again before `done`.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsx;
use crate::workflow::{PhaseKind, Workflow, Workspace};

/// 2: spawn marks, reports, fresh attempts after `--retry`, completion. A version 1 file reads
/// as version 2 with none of those yet.
pub(crate) const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PhaseState {
    /// Not started, or failed and waiting for another attempt.
    Pending,
    /// A sub-agent was spawned for it; the next `next-step` call with evidence checks its gate.
    Spawned,
    /// Its gate passed.
    Passed,
    /// Its gate failed on every allowed attempt.
    GaveUp,
}

pub(crate) use crate::protocol::Failure;

/// What was in the workspace for a phase at one moment: its result (by id) and the answer
/// file an orchestrator writes. A change since the spawn is evidence that an attempt was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marks {
    /// The id of the phase's result file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) result: Option<String>,
    /// The answer file's size and modification time (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) answer: Option<(u64, u128)>,
    /// SHA-256 of the answer file. A file's time moves in clock ticks (4 ms and more), so an
    /// answer of the same size written within one tick of the last is told apart by this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) answer_sha256: Option<String>,
}

impl Marks {
    /// Whether anything changed since `before`. A digest counts only when both marks have one:
    /// progress written before digests were kept does not make every answer look new.
    pub(crate) fn changed_since(&self, before: &Marks) -> bool {
        self.result != before.result
            || self.answer != before.answer
            || matches!((&self.answer_sha256, &before.answer_sha256), (Some(a), Some(b)) if a != b)
    }
}

/// What a caller said about a spawned phase (`--phase-result`), and what the gate said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reported {
    pub(crate) attempt: u32,
    pub(crate) success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    pub(crate) gate_passed: bool,
    pub(crate) at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PhaseProgress {
    pub(crate) id: String,
    pub(crate) state: PhaseState,
    /// Attempts started so far (spawns and direct runs).
    pub(crate) attempts: u32,
    /// Attempts that count against `--max-attempts` start after this many (`--retry` moves it).
    #[serde(default)]
    pub(crate) retry_base: u32,
    #[serde(default)]
    pub(crate) failures: Vec<Failure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) reports: Vec<Reported>,
    /// What was there when the phase was last spawned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) spawn_marks: Option<Marks>,
    #[serde(default)]
    pub(crate) started_at: Option<u64>,
    #[serde(default)]
    pub(crate) passed_at: Option<u64>,
    /// Why a phase passed without running, e.g. "unchanged since the last verified publish".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

impl PhaseProgress {
    /// Attempts that count against the limit.
    pub(crate) fn counted_attempts(&self) -> u32 {
        self.attempts.saturating_sub(self.retry_base)
    }
}

/// The workflow reached `done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Completed {
    pub(crate) at: u64,
    /// Variant workflow: whether the repo's files were put back then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) restored: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub(crate) schema_version: u32,
    pub(crate) workflow: Workflow,
    pub(crate) phases: Vec<PhaseProgress>,
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) completed: Option<Completed>,
}

impl Progress {
    pub(crate) fn new<P: PhaseKind>(now: u64) -> Progress {
        let phases = P::ALL
            .iter()
            .map(|p| PhaseProgress {
                id: p.id().to_string(),
                state: PhaseState::Pending,
                attempts: 0,
                retry_base: 0,
                failures: Vec::new(),
                reports: Vec::new(),
                spawn_marks: None,
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
            completed: None,
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

    /// Records an attempt of a phase starting, with what was there at that moment.
    pub(crate) fn start<P: PhaseKind>(&mut self, p: P, marks: Marks, now: u64) -> u32 {
        let phase = self.phase_mut(p);
        phase.attempts += 1;
        phase.state = PhaseState::Spawned;
        phase.spawn_marks = Some(marks);
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
        let gave_up = phase.counted_attempts() >= max_attempts;
        phase.state = if gave_up {
            PhaseState::GaveUp
        } else {
            PhaseState::Pending
        };
        self.updated_at = now;
        gave_up
    }

    /// Makes `p` and every later phase pending again (their results no longer count as proof);
    /// attempts and failures are kept.
    pub(crate) fn reopen_from<P: PhaseKind>(&mut self, p: P, now: u64) {
        for phase in &mut self.phases[p.index()..] {
            if phase.state != PhaseState::Pending {
                phase.state = PhaseState::Pending;
                phase.passed_at = None;
                phase.note = None;
            }
        }
        self.completed = None;
        self.updated_at = now;
    }

    /// Makes every phase pending again, so that each is re-checked before it counts as passed.
    pub(crate) fn reopen_all<P: PhaseKind>(&mut self, now: u64) {
        self.reopen_from(P::ALL[0], now);
    }

    /// `--retry`: a phase that gave up gets fresh attempts; its history stays. Returns the phase
    /// reopened, if one had given up.
    pub(crate) fn retry<P: PhaseKind>(&mut self, now: u64) -> Option<P> {
        let p = self.current::<P>()?;
        let phase = self.phase_mut(p);
        if phase.state != PhaseState::GaveUp {
            return None;
        }
        phase.state = PhaseState::Pending;
        phase.retry_base = phase.attempts;
        self.updated_at = now;
        Some(p)
    }
}

/// The saved progress of a workspace, or a fresh one. Call with the workspace lock held.
pub(crate) fn load<P: PhaseKind>(ws: &Workspace) -> Result<Progress> {
    match fsx::read_json::<Progress>(&ws.progress_path())? {
        Some(mut progress) => {
            progress
                .check::<P>()
                .with_context(|| format!("in {}", ws.progress_path().display()))?;
            progress.schema_version = SCHEMA_VERSION;
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
