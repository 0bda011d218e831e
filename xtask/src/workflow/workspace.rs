//! A workspace directory: where its files are, its locks, and the results its phases leave.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::record::PhaseResult;
use super::{Phase, PhaseKind};
use crate::fsx;

/// How long a caller waits for another process holding the workspace.
const LOCK_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub(crate) dir: PathBuf,
}

impl Workspace {
    pub(crate) fn new(dir: &Path) -> Workspace {
        Workspace {
            dir: crate::project::absolute(dir),
        }
    }

    pub(crate) fn input_path(&self) -> PathBuf {
        self.dir.join("input.json")
    }

    pub(crate) fn progress_path(&self) -> PathBuf {
        self.dir.join("progress.json")
    }

    pub(crate) fn result_path(&self, phase: impl PhaseKind) -> PathBuf {
        self.dir.join("results").join(format!("{}.json", phase.id()))
    }

    /// The phases' logs, and the records of the tools running for them.
    pub(crate) fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Stops the tools a killed run left running in this workspace, saying so.
    pub(crate) fn stop_orphans(&self) -> Result<()> {
        for line in crate::process::stop_orphans(&self.logs_dir())? {
            crate::ui::warn(line);
        }
        Ok(())
    }

    pub(crate) fn log_path(&self, phase: impl PhaseKind) -> PathBuf {
        self.dir.join("logs").join(format!("{}.log", phase.id()))
    }

    pub(crate) fn report_path(&self, phase: impl PhaseKind) -> PathBuf {
        self.dir.join("reports").join(phase.output_file())
    }

    /// Writes `input.json` (for `build-kit` and `variant`), keeping an existing identical one.
    pub(crate) fn write_input<T: Serialize>(&self, input: &T) -> Result<()> {
        fsx::write_json_atomic(&self.input_path(), input)
    }

    /// Holds the workspace against other processes while progress is read and written.
    pub(crate) fn lock(&self) -> Result<fsx::Lock> {
        fsx::Lock::acquire(&self.dir.join(".lock"), LOCK_WAIT)
    }

    /// Held while a phase command runs, so two runs of a phase never overlap.
    pub(crate) fn phase_lock(&self, phase: impl PhaseKind) -> Result<fsx::Lock> {
        fsx::Lock::acquire(&self.dir.join(format!(".{}.lock", phase.id())), Duration::from_secs(2))
            .with_context(|| format!("phase {} is already running in this workspace", phase.title()))
    }

    /// Whether the phase command is running now, in this process or another.
    pub(crate) fn phase_running(&self, phase: impl PhaseKind) -> bool {
        fsx::Lock::is_held(&self.dir.join(format!(".{}.lock", phase.id())))
    }

    /// Where an orchestrator writes the sub-agent's answer for the phase.
    pub(crate) fn answer_path(&self, phase: impl PhaseKind) -> PathBuf {
        self.dir.join(phase.answer_file())
    }

    /// A phase's recorded result, whatever its data; `Ok(None)` when it has none.
    pub(crate) fn result_value(&self, phase: impl PhaseKind) -> Result<Option<PhaseResult<serde_json::Value>>> {
        fsx::read_json(&self.result_path(phase))
    }

    /// What phase `P` recorded when it succeeded, or an error naming the command to run first.
    pub(crate) fn succeeded<P: Phase>(&self) -> Result<P::Data> {
        let phase = P::PHASE;
        fsx::read_json::<PhaseResult<P::Data>>(&self.result_path(phase))?
            .filter(|r| r.ok)
            .and_then(|r| r.data)
            .with_context(|| {
                format!(
                    "{} has not succeeded in {}: run `cargo xtask phase {} {}` first",
                    phase.title(),
                    self.dir.display(),
                    phase.id(),
                    self.dir.display()
                )
            })
    }

    pub(crate) fn save_result<T: Serialize>(&self, phase: impl PhaseKind, result: &PhaseResult<T>) -> Result<()> {
        fsx::write_json_state(&self.result_path(phase), result)
    }

    pub(crate) fn save_report(&self, phase: impl PhaseKind, text: &str) -> Result<()> {
        fsx::write_atomic(&self.report_path(phase), text.as_bytes())
    }
}
