//! Running a phase and recording it: the result file (`results/<phase>.json`) every gate reads
//! back, and the report (`reports/<output file>`) people read.
//!
//! A result holds only while what it was built on holds: each one has an id, and records the id
//! of the previous phase's result it was built on (`upstream`); a gate fails when that phase
//! has been run again since. So once a phase is redone, every later one is redone too, whoever
//! runs them.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::{Flow, Gate, Phase, PhaseKind, Workspace};
use crate::fsx;

/// What a phase command left behind, whatever the phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PhaseResult<T> {
    pub(crate) phase: String,
    /// Unique to this run of the phase.
    #[serde(default)]
    pub(crate) id: String,
    pub(crate) ok: bool,
    pub(crate) started_at: u64,
    pub(crate) finished_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The id of the previous phase's result this run was built on (none for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upstream: Option<String>,
    /// The phase's own observations (None when it failed before making any).
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

/// The command a sub-agent or a person runs for a phase, as argv.
pub(crate) fn command(ws: &Workspace, phase: impl PhaseKind) -> Vec<String> {
    ["cargo", "xtask", "phase", phase.id()]
        .iter()
        .map(|s| s.to_string())
        .chain([ws.dir.display().to_string()])
        .collect()
}

/// Runs phase `P`, then its gate on what it returned; records the outcome either way. A result
/// marked ok has passed its gate once.
pub(crate) fn execute<P: Phase>(sh: &Shell, flow: &P::Flow) -> Result<()> {
    let phase = P::PHASE;
    let ws = flow.ws();
    let _running = ws.phase_lock(phase)?;
    let started_at = fsx::now_unix();
    let id = format!("{}-{}", fsx::now_nanos(), std::process::id());
    let upstream = upstream(ws, phase)?;
    let outcome = P::run(sh, flow).and_then(|(data, report)| match P::gate(sh, flow, &data) {
        Ok(()) => Ok((data, report)),
        Err(err) => Err(err.context(format!("{} ran, but its gate does not pass", phase.title()))),
    });
    let finished_at = fsx::now_unix();
    match outcome {
        Ok((data, report)) => {
            ws.save_report(phase, &report)?;
            ws.save_result(
                phase,
                &PhaseResult {
                    phase: phase.id().into(),
                    id,
                    ok: true,
                    started_at,
                    finished_at,
                    error: None,
                    upstream,
                    data: Some(data),
                },
            )?;
            eprint!("{report}");
            Ok(())
        }
        Err(err) => {
            let error = format!("{err:#}");
            let result: PhaseResult<P::Data> = PhaseResult {
                phase: phase.id().into(),
                id,
                ok: false,
                started_at,
                finished_at,
                error: Some(error.clone()),
                upstream,
                data: None,
            };
            ws.save_result(phase, &result)?;
            ws.save_report(phase, &format!("# {} failed\n\n```\n{error}\n```\n", phase.title()))?;
            Err(err).with_context(|| {
                format!(
                    "phase {} failed (result in {})",
                    phase.title(),
                    ws.result_path(phase).display()
                )
            })
        }
    }
}

/// The gate of phase `P` from its recorded result: it must exist, say ok, be built on what the
/// previous phase recorded now, and `P::gate` must pass.
pub(crate) fn check<P: Phase>(sh: &Shell, flow: &P::Flow) -> Gate {
    let phase = P::PHASE;
    let ws = flow.ws();
    let command = command(ws, phase).join(" ");
    let result = match crate::fsx::read_json::<PhaseResult<P::Data>>(&ws.result_path(phase)) {
        Ok(Some(result)) => result,
        Ok(None) => {
            return Gate::Failed(format!(
                "{} has no result: its phase command did not run; run `{command}`",
                phase.title()
            ))
        }
        Err(err) => return Gate::Failed(format!("{} result unreadable: {err:#}; run `{command}`", phase.title())),
    };
    let data = match (result.ok, result.data) {
        (true, Some(data)) => data,
        _ => {
            return Gate::Failed(format!(
                "{} failed: {}",
                phase.title(),
                result.error.unwrap_or_else(|| "no reason recorded".to_string())
            ))
        }
    };
    match upstream(ws, phase) {
        Ok(now) if now == result.upstream => {}
        Ok(_) => {
            let previous = phase.previous().map_or("the phase before", |p| p.title());
            return Gate::Failed(format!(
                "{}'s result was made before {previous} last ran: run `{command}`",
                phase.title()
            ));
        }
        Err(err) => return Gate::Failed(format!("{}: {err:#}", phase.title())),
    }
    match P::gate(sh, flow, &data) {
        Ok(()) => Gate::Passed,
        Err(err) => Gate::Failed(format!("{}: {err:#}", phase.title())),
    }
}

/// The id of the previous phase's successful result (none for the first phase, or when the
/// previous one has no successful result).
fn upstream(ws: &Workspace, phase: impl PhaseKind) -> Result<Option<String>> {
    let Some(previous) = phase.previous() else {
        return Ok(None);
    };
    Ok(ws.result_value(previous)?.filter(|r| r.ok).map(|r| r.id))
}

/// Runs `phase` of `flow` under its own name, as `cargo xtask phase` does.
pub(crate) fn run_named<F: Flow>(sh: &Shell, flow: &F, name: &str) -> Result<()> {
    let Some(phase) = F::Phase::parse(name) else {
        let names: Vec<&str> = F::Phase::ALL.iter().map(|p| p.id()).collect();
        anyhow::bail!(
            "`{name}` is not a phase of the {} workflow: use one of {}",
            F::Phase::WORKFLOW.name(),
            names.join(", ")
        );
    };
    crate::ui::step(format!(
        "{} ({} workflow) in {}",
        phase.title(),
        F::Phase::WORKFLOW.name(),
        flow.ws().dir.display()
    ));
    flow.run(sh, phase)
}
