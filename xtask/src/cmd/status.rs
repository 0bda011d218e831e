//! `status`: what every workspace under planning/ is doing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use xshell::Shell;

use crate::flags;
use crate::orchestrate::input::{self, Input};
use crate::orchestrate::progress::{PhaseState, Progress};
use crate::workflow::{KitPhase, PhaseKind, VariantPhase, Workspace};
use crate::{fsx, project, ui};

#[derive(Debug, Serialize)]
struct WorkspaceStatus {
    workspace: PathBuf,
    workflow: Option<String>,
    inputs: Option<serde_json::Value>,
    phases: Vec<PhaseStatus>,
    /// The phase being worked on, `done`, or `gave up at …`.
    state: String,
    last_error: Option<String>,
    age_seconds: Option<u64>,
    problem: Option<String>,
    /// The builder a `--on` run used, when this workspace was brought back from one.
    built_on: Option<String>,
}

#[derive(Debug, Serialize)]
struct PhaseStatus {
    phase: String,
    state: PhaseState,
    attempts: u32,
    /// Whether the phase command left a result, and whether it said ok.
    result: Option<bool>,
}

impl flags::Status {
    pub(crate) fn run(self, _sh: &Shell) -> Result<ExitCode> {
        let dirs = match &self.workspace {
            Some(dir) => vec![project::absolute(dir)],
            None => workspaces(&project::planning_dir()),
        };
        let statuses: Vec<WorkspaceStatus> = dirs.iter().map(|d| status_of(d)).collect();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&statuses)?);
        } else if statuses.is_empty() {
            eprintln!("no workspaces under {}", project::planning_dir().display());
            eprintln!("start one with `cargo xtask build-kit` or `cargo xtask variant`");
        } else {
            for s in &statuses {
                print_status(s);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Directories under `planning/` holding an `input.json`, oldest name first.
fn workspaces(planning: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(planning)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("input.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn status_of(dir: &Path) -> WorkspaceStatus {
    let ws = Workspace::new(dir);
    let mut status = WorkspaceStatus {
        workspace: ws.dir.clone(),
        workflow: None,
        inputs: fsx::read_json(&ws.input_path()).ok().flatten(),
        phases: Vec::new(),
        state: "not started".into(),
        last_error: None,
        age_seconds: None,
        problem: None,
        built_on: crate::remote::record(dir)
            .ok()
            .flatten()
            .map(|r| format!("{} ({})", r.host, r.workspace)),
    };
    let input = match input::read(&ws) {
        Ok(input) => input,
        Err(err) => {
            status.problem = Some(format!("{err:#}"));
            return status;
        }
    };
    status.workflow = Some(input.workflow().name().into());
    match input {
        Input::Kit(_) => phases_of::<KitPhase>(&ws, &mut status),
        Input::Variant(_) => phases_of::<VariantPhase>(&ws, &mut status),
    }
    status
}

/// Fills in the phases of workflow `P` and where the workspace stands.
fn phases_of<P: PhaseKind>(ws: &Workspace, status: &mut WorkspaceStatus) {
    // Read without the lock: status must not wait behind a running next-step.
    let progress = match fsx::read_json::<Progress>(&ws.progress_path()) {
        Ok(Some(p)) => p,
        Ok(None) => Progress::new::<P>(fsx::now_unix()),
        Err(err) => {
            status.problem = Some(format!("{err:#}"));
            return;
        }
    };
    status.age_seconds = fsx::now_unix()
        .checked_sub(progress.updated_at)
        .filter(|_| ws.progress_path().is_file());
    for (&phase, p) in P::ALL.iter().zip(&progress.phases) {
        let result = fsx::read_json::<serde_json::Value>(&ws.result_path(phase))
            .ok()
            .flatten()
            .map(|r| r["ok"].as_bool() == Some(true));
        status.phases.push(PhaseStatus {
            phase: p.id.clone(),
            state: p.state,
            attempts: p.attempts,
            result,
        });
        if let Some(f) = p.failures.last() {
            status.last_error = Some(format!("{} attempt {}: {}", phase.title(), f.attempt, f.reason));
        }
    }
    status.state = match progress.current_entry() {
        None => "done".into(),
        Some(p) if p.state == PhaseState::GaveUp => format!("gave up at {}", p.id),
        Some(p) => p.id.clone(),
    };
}

fn print_status(s: &WorkspaceStatus) {
    println!("{}", s.workspace.display());
    if let Some(problem) = &s.problem {
        println!("  problem: {problem}");
        return;
    }
    let inputs = s.inputs.as_ref().map(|v| v.to_string()).unwrap_or_default();
    println!(
        "  {} workflow, {}; inputs {inputs}",
        s.workflow.as_deref().unwrap_or("?"),
        s.state
    );
    for p in &s.phases {
        let result = match p.result {
            Some(true) => "result ok",
            Some(false) => "result failed",
            None => "no result",
        };
        println!(
            "    {:<14} {:<8} attempts {}  {result}",
            p.phase,
            format!("{:?}", p.state).to_lowercase(),
            p.attempts
        );
    }
    if let Some(err) = &s.last_error {
        println!("  last error: {}", err.lines().next().unwrap_or(""));
    }
    if let Some(builder) = &s.built_on {
        println!("  built on {builder}");
    }
    if let Some(age) = s.age_seconds {
        println!("  updated {} ago", ui::duration(std::time::Duration::from_secs(age)));
    }
}
