//! `next-step`: one JSON action on stdout per call, for agent orchestrators.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::{json, Value};
use xshell::Shell;

use crate::flags::{self, PhaseResultFlag};
use crate::phases::{self, Ctx, RealObserver};
use crate::workflow::machine::{self, Action, Report};
use crate::workflow::workspace::Workspace;
use crate::workflow::PhaseDef;
use crate::{fsx, project};

impl flags::NextStep {
    pub fn run(self, sh: &Shell) -> Result<ExitCode> {
        let (answer, code) = match self.answer(sh) {
            Ok(answer) => (answer, ExitCode::SUCCESS),
            Err(err) => (
                json!({ "action": "error", "type": "error", "reason": format!("{err:#}") }),
                ExitCode::from(2),
            ),
        };
        println!("{answer}");
        Ok(code)
    }

    fn answer(&self, sh: &Shell) -> Result<Value> {
        let ws = Workspace::new(&self.workspace);
        let ctx = Ctx::load(&ws)?;
        let workflow = ctx.workflow();
        let _lock = ws.lock()?;
        let progress = ws.progress(workflow)?;
        let report = Report {
            success: self.phase_result.map(|r| r == PhaseResultFlag::Success),
            reason: self.reason.clone(),
        };
        let mut observer = RealObserver { sh, ctx: &ctx };
        let (progress, action) = machine::decide(
            workflow,
            progress,
            &report,
            self.max_attempts,
            fsx::now_unix(),
            &mut observer,
        );
        ws.save_progress(&progress)?;
        Ok(match action {
            Action::Spawn {
                phase,
                attempt,
                last_failure,
            } => spawn(&ctx, phase, attempt, self.max_attempts, last_failure),
            Action::GateFailed { phase, failures } => {
                let reasons: Vec<String> = failures
                    .iter()
                    .map(|f| format!("attempt {}: {}", f.attempt, f.reason))
                    .collect();
                let mut failed = json!({
                    "action": "gate_failed",
                    "type": "gate_failed",
                    "workflow": workflow.name(),
                    "phase": phase.title,
                    "reason": format!("{} did not pass its gate after {} attempts. {}", phase.title, failures.len(), reasons.join(" | ")),
                    "attempts": failures,
                    "workspace": ws.dir,
                });
                // The variant repo stays as the failed phase left it, for diagnosis.
                if workflow == crate::workflow::Workflow::Variant {
                    failed["restore_command"] = json!(["cargo", "xtask", "restore", ws.dir.display().to_string()]);
                }
                failed
            }
            Action::Done => {
                let mut done = json!({
                    "action": "done",
                    "type": "done",
                    "workflow": workflow.name(),
                    "summary_file": ws.report_path(&workflow.phases()[workflow.phases().len() - 1]),
                    "workspace": ws.dir,
                    "phases": progress.phases.iter().map(|p| json!({"phase": p.id, "attempts": p.attempts, "note": p.note})).collect::<Vec<_>>(),
                });
                if let Ctx::Variant(variant) = &ctx {
                    done["restored"] = json!(restore_after_done(variant)?);
                }
                done
            }
        })
    }
}

fn spawn(ctx: &Ctx, phase: &PhaseDef, attempt: u32, max_attempts: u32, last_failure: Option<String>) -> Value {
    let ws = ctx.ws();
    let workflow = ctx.workflow();
    let root = project::root();
    let phase_file = project::phases_dir()
        .join(workflow.name())
        .join(format!("{}.md", phase.title));
    let command = phases::command(ws, phase);
    let mut data = json!({
        "workspace": ws.dir,
        "workflow": workflow.name(),
        "phase": phase.id,
        "phase_command": command,
        "cwd": root,
        "attempt": attempt,
        "max_attempts": max_attempts,
        "last_failure": last_failure,
        "result_file": ws.result_path(phase),
        "report_file": ws.report_path(phase),
        "log_file": ws.log_path(phase),
    });
    let subject = match ctx {
        Ctx::Kit(kit) => {
            data["kit"] = json!(kit.name);
            data["arch"] = json!(kit.arch);
            data["kit_dir"] = json!(kit.repo);
            data["registry"] = json!(kit
                .registry_port()
                .ok()
                .map(|p| format!("localhost:{p}"))
                .or(kit.input.registry.clone()));
            format!("kit `{}` for {}", kit.name, kit.arch)
        }
        Ctx::Variant(variant) => {
            variant.describe(&mut data);
            format!("variant repo {}", variant.repo.display())
        }
    };
    let retry = match &data["last_failure"] {
        Value::String(reason) => format!(
            "\n\nThis is attempt {attempt} of {max_attempts}. The previous attempt failed its gate: {reason}\nFix the cause before running the command again; do not work around the check."
        ),
        _ => String::new(),
    };
    let prompt = format!(
        "You run the {title} phase of the Bottlerocket {wf} workflow for {subject}.\n\
         Read {file} and follow it. In {cwd}, run exactly:\n\n    {cmd}\n\n\
         It does the work and checks it; its report is written to {report} and its log to {log}. \
         If it fails, read the log, fix the cause (Docker down, port taken, build error, …) as the \
         phase file says, and run it again. Do not edit files in the workspace. Answer with what you \
         ran, whether it succeeded, and the report it printed.{retry}",
        title = phase.title,
        wf = workflow.name(),
        file = phase_file.display(),
        cwd = root.display(),
        cmd = command.join(" "),
        report = ws.report_path(phase).display(),
        log = ws.log_path(phase).display(),
    );
    json!({
        "action": "spawn",
        "type": "spawn",
        "workflow": workflow.name(),
        "phase": phase.title,
        "attempt": attempt,
        "prompt": prompt,
        "context_files": [phase_file],
        "context_data": data,
        "output_file": phase.output_file,
    })
}

/// Like `cargo xtask variant`, a finished variant workflow puts the repo's files back unless
/// the input asks to keep them pointed at the local kits. Returns whether files were restored.
fn restore_after_done(variant: &crate::variant::Variant) -> Result<bool> {
    let backup = crate::variant::backup::Backup::new(&variant.ws.dir);
    if variant.input.keep_config || backup.manifest()?.is_none() {
        return Ok(false);
    }
    backup.restore(false)?;
    Ok(true)
}
