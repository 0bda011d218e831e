//! Running and gating the phases of both workflows: the one place that maps a phase name to
//! its code, writes its result and report, and turns a result into a gate observation.

use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use xshell::Shell;

use crate::fsx;
use crate::kit::{self, Kit};
use crate::variant::{self, Variant};
use crate::workflow::machine::{Gate, Observer};
use crate::workflow::workspace::{Input, PhaseResult, Workspace};
use crate::workflow::{PhaseDef, Workflow};

/// A workspace with its inputs resolved.
#[derive(Debug, Clone)]
pub enum Ctx {
    Kit(Kit),
    Variant(Variant),
}

impl Ctx {
    pub fn load(ws: &Workspace) -> Result<Ctx> {
        match ws.input()? {
            Input::Kit(input) => Ok(Ctx::Kit(Kit::resolve(ws, &input)?)),
            Input::Variant(input) => Ok(Ctx::Variant(Variant::resolve(ws, &input)?)),
        }
    }

    pub fn workflow(&self) -> Workflow {
        match self {
            Ctx::Kit(_) => Workflow::Kit,
            Ctx::Variant(_) => Workflow::Variant,
        }
    }

    pub fn ws(&self) -> &Workspace {
        match self {
            Ctx::Kit(kit) => &kit.ws,
            Ctx::Variant(variant) => &variant.ws,
        }
    }
}

/// Runs a phase: its result (success or failure) and report are written to the workspace,
/// and its gate is checked right away, so a result marked ok has passed its gate once.
pub fn run(sh: &Shell, ctx: &Ctx, phase: &PhaseDef) -> Result<()> {
    let ws = ctx.ws();
    let _running = ws.phase_lock(phase)?;
    match (ctx, phase.id) {
        (Ctx::Kit(k), "setup") => execute(ws, phase, || kit::setup::run(sh, k), |d| kit::setup::gate(sh, k, d)),
        (Ctx::Kit(k), "build") => execute(ws, phase, || kit::build::run(sh, k), |d| kit::build::gate(sh, k, d)),
        (Ctx::Kit(k), "publish") => execute(ws, phase, || kit::publish::run(sh, k), |d| kit::publish::gate(sh, k, d)),
        (Ctx::Kit(k), "verify") => execute(ws, phase, || kit::verify::run(sh, k), |d| kit::verify::gate(sh, k, d)),
        (Ctx::Variant(v), _) => variant::run_phase(sh, v, phase),
        (Ctx::Kit(_), other) => unreachable!("not a kit phase: {other}"),
    }
}

/// Re-checks a phase: its own recorded result first, then reality.
pub fn gate(sh: &Shell, ctx: &Ctx, phase: &PhaseDef) -> Gate {
    let ws = ctx.ws();
    match (ctx, phase.id) {
        (Ctx::Kit(k), "setup") => check(ws, phase, |d| kit::setup::gate(sh, k, d)),
        (Ctx::Kit(k), "build") => check(ws, phase, |d| kit::build::gate(sh, k, d)),
        (Ctx::Kit(k), "publish") => check(ws, phase, |d| kit::publish::gate(sh, k, d)),
        (Ctx::Kit(k), "verify") => check(ws, phase, |d| kit::verify::gate(sh, k, d)),
        (Ctx::Variant(v), _) => variant::gate_phase(sh, v, phase),
        (Ctx::Kit(_), other) => unreachable!("not a kit phase: {other}"),
    }
}

/// The command a sub-agent runs for a phase, as argv.
pub fn command(ws: &Workspace, phase: &PhaseDef) -> Vec<String> {
    ["cargo", "xtask", "phase", phase.id]
        .iter()
        .map(|s| s.to_string())
        .chain([ws.dir.display().to_string()])
        .collect()
}

/// Runs `act`, then `gate` on what it returned; records the outcome either way.
pub fn execute<T: Serialize>(
    ws: &Workspace,
    phase: &PhaseDef,
    act: impl FnOnce() -> Result<(T, String)>,
    gate: impl FnOnce(&T) -> Result<()>,
) -> Result<()> {
    let started_at = fsx::now_unix();
    let outcome = act().and_then(|(data, report)| match gate(&data) {
        Ok(()) => Ok((data, report)),
        Err(err) => Err(err.context(format!("{} ran, but its gate does not pass", phase.title))),
    });
    let finished_at = fsx::now_unix();
    match outcome {
        Ok((data, report)) => {
            ws.save_report(phase, &report)?;
            ws.save_result(
                phase,
                &PhaseResult {
                    phase: phase.id.into(),
                    ok: true,
                    started_at,
                    finished_at,
                    error: None,
                    data: Some(data),
                },
            )?;
            eprint!("{report}");
            Ok(())
        }
        Err(err) => {
            let error = format!("{err:#}");
            let result: PhaseResult<T> = PhaseResult {
                phase: phase.id.into(),
                ok: false,
                started_at,
                finished_at,
                error: Some(error.clone()),
                data: None,
            };
            ws.save_result(phase, &result)?;
            ws.save_report(phase, &format!("# {} failed\n\n```\n{error}\n```\n", phase.title))?;
            Err(err).with_context(|| {
                format!(
                    "phase {} failed (result in {})",
                    phase.title,
                    ws.result_path(phase).display()
                )
            })
        }
    }
}

/// The gate of a phase from its recorded result: it must exist, say ok, and `gate` must pass.
pub fn check<T: DeserializeOwned>(ws: &Workspace, phase: &PhaseDef, gate: impl FnOnce(&T) -> Result<()>) -> Gate {
    let command = command(ws, phase).join(" ");
    let result = match ws.result::<T>(phase) {
        Ok(Some(result)) => result,
        Ok(None) => {
            return Gate::Failed(format!(
                "{} has no result: its phase command did not run; run `{command}`",
                phase.title
            ))
        }
        Err(err) => return Gate::Failed(format!("{} result unreadable: {err:#}; run `{command}`", phase.title)),
    };
    match (result.ok, result.data) {
        (true, Some(data)) => match gate(&data) {
            Ok(()) => Gate::Passed,
            Err(err) => Gate::Failed(format!("{}: {err:#}", phase.title)),
        },
        _ => Gate::Failed(format!(
            "{} failed: {}",
            phase.title,
            result.error.unwrap_or_else(|| "no reason recorded".to_string())
        )),
    }
}

/// Observes gates for the state machine.
pub struct RealObserver<'a> {
    pub sh: &'a Shell,
    pub ctx: &'a Ctx,
}

impl Observer for RealObserver<'_> {
    fn has_result(&mut self, phase: &PhaseDef) -> bool {
        self.ctx.ws().result_path(phase).is_file()
    }

    fn gate(&mut self, phase: &PhaseDef) -> Gate {
        gate(self.sh, self.ctx, phase)
    }
}

/// How one phase went in a direct run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub phase: String,
    /// `ran`, `skipped` (its gate already passed) or `failed`.
    pub outcome: &'static str,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Runs every phase in order, as `build-kit` and `variant` do. A phase whose gate already
/// passes is skipped (unless `force`); once one phase runs, every later one runs too, since
/// their results describe the old state. Progress is recorded as it goes.
pub fn run_all(sh: &Shell, ctx: &Ctx, force: bool, outcomes: &mut Vec<Outcome>) -> Result<()> {
    let ws = ctx.ws();
    let workflow = ctx.workflow();
    let mut rerun = force;
    for phase in workflow.phases() {
        let start = std::time::Instant::now();
        if !rerun {
            if let Gate::Passed = gate(sh, ctx, phase) {
                let reason = skip_reason(ctx.workflow(), phase).to_string();
                crate::ui::step(format!("{}: skipped, {reason}", phase.title));
                update_progress(ws, workflow, |p, now| {
                    if p.phase(phase.id).state != crate::workflow::progress::PhaseState::Passed {
                        p.pass(phase.id, Some(reason.clone()), now);
                    }
                })?;
                outcomes.push(Outcome {
                    phase: phase.id.into(),
                    outcome: "skipped",
                    seconds: start.elapsed().as_secs_f64(),
                    reason: Some(reason),
                });
                continue;
            }
        }
        rerun = true;
        crate::ui::step(phase.title);
        update_progress(ws, workflow, |p, now| {
            p.reopen_from(phase.id, now);
            p.start(phase.id, false, now);
        })?;
        let result = run(sh, ctx, phase);
        let seconds = start.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                update_progress(ws, workflow, |p, now| p.pass(phase.id, None, now))?;
                // The report also goes where an orchestrator would have put its sub-agent's.
                let report = fs_err::read(ws.report_path(phase))?;
                fsx::write_atomic(&ws.dir.join(phase.output_file), &report)?;
                outcomes.push(Outcome {
                    phase: phase.id.into(),
                    outcome: "ran",
                    seconds,
                    reason: None,
                });
            }
            Err(err) => {
                let reason = format!("{err:#}");
                update_progress(ws, workflow, |p, now| {
                    p.fail(phase.id, reason.clone(), u32::MAX, now);
                })?;
                outcomes.push(Outcome {
                    phase: phase.id.into(),
                    outcome: "failed",
                    seconds,
                    reason: Some(reason),
                });
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Why a phase whose gate passes need not run again, in one line.
fn skip_reason(workflow: Workflow, phase: &PhaseDef) -> &'static str {
    match (workflow, phase.id) {
        (Workflow::Kit, "setup") => "the registry answers and Infra.toml points at it",
        (Workflow::Kit, "build") => "nothing it depends on changed since the last build (same fingerprint: tree, uncommitted edits, untracked files, arch, twoliter) and its archive is there",
        (Workflow::Kit, "publish") => "the registry still serves this build's image under the index tag",
        (Workflow::Kit, "verify") => "the registry still serves the verified index",
        (Workflow::Variant, "update-config") => "the repo still points at the local kits",
        (Workflow::Variant, "update-lock") => "Twoliter.lock already holds the digests the registry serves",
        (Workflow::Variant, "build") => "the images are there and the repo has not changed since the build",
        (Workflow::Variant, "validate") => "the validated images and fetched kits are unchanged",
        _ => "its gate already passes",
    }
}

/// Reads, changes and saves `progress.json` under the workspace lock.
pub fn update_progress(
    ws: &Workspace,
    workflow: Workflow,
    change: impl FnOnce(&mut crate::workflow::progress::Progress, u64),
) -> Result<()> {
    let _lock = ws.lock()?;
    let mut progress = ws.progress(workflow)?;
    change(&mut progress, fsx::now_unix());
    ws.save_progress(&progress)
}
