//! Running a phase and recording it: the result file (`results/<phase>.json`) every gate reads
//! back, the report (`reports/<output file>`) people read, and a log line at its start and end.
//!
//! A result is proof only of what it is bound to. Each one records
//! - the workspace it was made in and a digest of what the workflow was asked to do (the kit or
//!   variant, repo, arch, kits, registry), so a result copied from another workspace or made
//!   for other inputs is not taken;
//! - the SHA-256 of its report, so a report someone else overwrote is noticed;
//! - an id, and the ids of the earlier phases' results it was built on (`upstream`, see
//!   [`PhaseKind::builds_on`]): once one of those is redone, this one is redone too, whoever
//!   runs them.

use std::io::Write;
use std::path::PathBuf;

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
    #[serde(default)]
    pub(crate) duration_ms: u64,
    /// The workspace the phase ran in.
    #[serde(default)]
    pub(crate) workspace: PathBuf,
    /// SHA-256 of what the workflow was asked to do ([`Flow::identity`]).
    #[serde(default)]
    pub(crate) subject: String,
    /// SHA-256 of the report the run wrote.
    #[serde(default)]
    pub(crate) report_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The ids of the results this run was built on (none when it builds on no other phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) upstream: Option<String>,
    /// The phase's own observations (None when it failed before making any).
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

/// The command a sub-agent or a person runs for a phase, as argv, runnable from anywhere.
pub(crate) fn command(ws: &Workspace, phase: impl PhaseKind) -> Vec<String> {
    crate::project::xtask_command(&["phase", phase.id(), &ws.dir.display().to_string()])
}

/// SHA-256 of what a flow was asked to do.
fn subject_digest<F: Flow>(flow: &F) -> String {
    sha256(flow.identity().to_string().as_bytes())
}

fn sha256(bytes: &[u8]) -> String {
    fsx::hex(&hmac_sha256::Hash::hash(bytes))
}

/// The line a run writes to its log when it starts, and the one it ends with.
const LOG_STARTED: &str = "== xtask: phase started";
const LOG_FINISHED: &str = "== xtask: phase finished";

/// Appends one of our own lines to the phase's log (every phase has one, also those that run
/// no external tool).
fn log_line(ws: &Workspace, phase: impl PhaseKind, line: &str) -> Result<()> {
    let path = ws.log_path(phase);
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let mut log = fs_err::OpenOptions::new().create(true).append(true).open(&path)?;
    writeln!(log, "{line}")?;
    Ok(())
}

/// Runs phase `P`, then its gate on what it returned; records the outcome either way. A result
/// marked ok has passed its gate once.
pub(crate) fn execute<P: Phase>(sh: &Shell, flow: &P::Flow) -> Result<()> {
    let phase = P::PHASE;
    let ws = flow.ws();
    let _running = ws.phase_lock(phase)?;
    let _repo = crate::repo_lock::RepoLock::acquire(flow.repo(), &ws.dir)?;
    let started_at = fsx::now_unix();
    let clock = std::time::Instant::now();
    let id = format!("{}-{}", fsx::now_nanos(), std::process::id());
    let upstream = upstream(ws, phase)?;
    log_line(ws, phase, &format!("{LOG_STARTED}: {} (run {id})", phase.title()))?;
    let outcome = P::run(sh, flow).and_then(|(data, report)| match P::gate(sh, flow, &data) {
        Ok(()) => Ok((data, report)),
        Err(err) => Err(err.context(format!("{} ran, but its gate does not pass", phase.title()))),
    });
    let (data, report, error) = match outcome {
        Ok((data, report)) => (Some(data), report, None),
        Err(err) => {
            let error = format!("{err:#}");
            let report = format!("# {} failed\n\n```\n{error}\n```\n", phase.title());
            (None, report, Some(err))
        }
    };
    let result = PhaseResult {
        phase: phase.id().into(),
        id,
        ok: error.is_none(),
        started_at,
        finished_at: fsx::now_unix(),
        duration_ms: clock.elapsed().as_millis() as u64,
        workspace: ws.dir.clone(),
        subject: subject_digest(flow),
        report_sha256: sha256(report.as_bytes()),
        error: error.as_ref().map(|e| format!("{e:#}")),
        upstream,
        data,
    };
    ws.save_report(phase, &report)?;
    ws.save_result(phase, &result)?;
    let verdict = if result.ok { "passed its gate" } else { "failed" };
    log_line(ws, phase, &format!("{LOG_FINISHED}: {} {verdict}", phase.title()))?;
    match error {
        None => {
            eprint!("{report}");
            Ok(())
        }
        Some(err) => Err(err).with_context(|| {
            format!(
                "phase {} failed (result in {})",
                phase.title(),
                ws.result_path(phase).display()
            )
        }),
    }
}

/// The gate of phase `P` from its recorded result: it must exist, say ok, be bound to this
/// workspace and these inputs, be built on what the previous phase recorded now, have its own
/// report, and `P::gate` must pass.
pub(crate) fn check<P: Phase>(sh: &Shell, flow: &P::Flow) -> Gate {
    let phase = P::PHASE;
    let ws = flow.ws();
    let command = command(ws, phase).join(" ");
    let title = phase.title();
    let result = match crate::fsx::read_json::<PhaseResult<P::Data>>(&ws.result_path(phase)) {
        Ok(Some(result)) => result,
        Ok(None) if did_not_finish(ws, phase) => {
            return Gate::Failed(format!(
                "{title} did not finish (see {}); run `{command}`",
                ws.log_path(phase).display()
            ))
        }
        Ok(None) => {
            return Gate::Failed(format!(
                "{title} has no result: its phase command did not run; run `{command}`"
            ))
        }
        Err(err) => return Gate::Failed(format!("{title} result unreadable: {err:#}; run `{command}`")),
    };
    let data = match (result.ok, result.data) {
        (true, Some(data)) => data,
        _ => {
            return Gate::Failed(format!(
                "{title} failed: {}",
                result.error.unwrap_or_else(|| "no reason recorded".to_string())
            ))
        }
    };
    if result.workspace != ws.dir {
        return Gate::Failed(format!(
            "{title}'s result was made in another workspace ({}), not this one: run `{command}`",
            result.workspace.display()
        ));
    }
    if result.subject != subject_digest(flow) {
        return Gate::Failed(format!(
            "{title}'s result was made for other inputs than input.json asks for now: run `{command}`"
        ));
    }
    match std::fs::read(ws.report_path(phase)) {
        Ok(report) if sha256(&report) == result.report_sha256 => {}
        _ => {
            return Gate::Failed(format!(
                "{title}'s report {} is not the one its run wrote: run `{command}`",
                ws.report_path(phase).display()
            ))
        }
    }
    match upstream(ws, phase) {
        Ok(now) if now == result.upstream => {}
        Ok(_) => {
            let before: Vec<&str> = phase.builds_on().iter().map(|p| p.title()).collect();
            return Gate::Failed(format!(
                "{title}'s result was made before {} last ran: run `{command}`",
                before.join(" or ")
            ));
        }
        Err(err) => return Gate::Failed(format!("{title}: {err:#}")),
    }
    match P::gate(sh, flow, &data) {
        Ok(()) => Gate::Passed,
        Err(err) => Gate::Failed(format!("{title}: {err:#}")),
    }
}

/// Whether the phase's log says a run started and never wrote its last line (it was killed).
fn did_not_finish(ws: &Workspace, phase: impl PhaseKind) -> bool {
    let Ok(text) = fsx::read_tail(&ws.log_path(phase), 64 * 1024) else {
        return false;
    };
    text.lines()
        .rev()
        .find(|l| l.starts_with(LOG_STARTED) || l.starts_with(LOG_FINISHED))
        .is_some_and(|l| l.starts_with(LOG_STARTED))
}

/// The ids of the successful results of the phases `phase` builds on, joined (none when it
/// builds on none; a phase without a successful result counts as an empty id).
fn upstream<P: PhaseKind>(ws: &Workspace, phase: P) -> Result<Option<String>> {
    let before = phase.builds_on();
    if before.is_empty() {
        return Ok(None);
    }
    let ids = before
        .into_iter()
        .map(|p| Ok(ws.result_value(p)?.filter(|r| r.ok).map(|r| r.id).unwrap_or_default()))
        .collect::<Result<Vec<String>>>()?;
    Ok(Some(ids.join("+")))
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
