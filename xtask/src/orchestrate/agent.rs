//! `next-step`: the state machine's decision, carried out by sub-agents. Each call observes
//! the gates, saves progress and answers one [`Action`].

use anyhow::Result;
use xshell::Shell;

use super::machine::{self, Observer, Report};
use super::{progress, Subject};
use crate::kit::Kit;
use crate::protocol::{self, Action, ContextData, DonePhase, GateFailed, Spawn};
use crate::variant::Variant;
use crate::workflow::record::command;
use crate::workflow::{Flow, Gate, PhaseKind};
use crate::{fsx, project};

/// What the agent loop needs to know of a workflow beyond its phases.
pub(crate) trait Agented: Flow {
    /// What the workflow works on, for `context_data`.
    fn subject(&self) -> protocol::Subject;
    /// The same in words, for the prompt.
    fn subject_line(&self) -> String;
    /// Extra advice when a phase gave up.
    fn restore_command(&self) -> Option<Vec<String>> {
        None
    }
    /// What happens once every phase passed; for the variant workflow, whether the repo's
    /// files were put back.
    fn after_done(&self) -> Result<Option<bool>> {
        Ok(None)
    }
}

/// Answers the next action for the workspace of `subject`.
pub(crate) fn next_step(sh: &Shell, subject: &Subject, report: &Report, max_attempts: u32) -> Result<Action> {
    match subject {
        Subject::Kit(kit) => answer(sh, kit, report, max_attempts),
        Subject::Variant(variant) => answer(sh, variant, report, max_attempts),
    }
}

/// Observes gates for the state machine.
struct RealObserver<'a, F> {
    sh: &'a Shell,
    flow: &'a F,
}

impl<F: Flow> Observer<F::Phase> for RealObserver<'_, F> {
    fn has_result(&mut self, phase: F::Phase) -> bool {
        self.flow.ws().result_path(phase).is_file()
    }

    fn gate(&mut self, phase: F::Phase) -> Gate {
        self.flow.gate(self.sh, phase)
    }
}

fn answer<F: Agented>(sh: &Shell, flow: &F, report: &Report, max_attempts: u32) -> Result<Action> {
    let ws = flow.ws();
    let workflow = F::Phase::WORKFLOW;
    let _lock = ws.lock()?;
    let progress = progress::load::<F::Phase>(ws)?;
    let mut observer = RealObserver { sh, flow };
    let (progress, action) = machine::decide(progress, report, max_attempts, fsx::now_unix(), &mut observer);
    progress::save(ws, &progress)?;
    Ok(match action {
        machine::Action::Spawn {
            phase,
            attempt,
            last_failure,
        } => Action::Spawn(Box::new(spawn(flow, phase, attempt, max_attempts, last_failure))),
        machine::Action::GateFailed { phase, failures } => {
            let reasons: Vec<String> = failures
                .iter()
                .map(|f| format!("attempt {}: {}", f.attempt, f.reason))
                .collect();
            Action::GateFailed(GateFailed {
                workflow,
                phase: phase.title().into(),
                reason: format!(
                    "{} did not pass its gate after {} attempts. {}",
                    phase.title(),
                    failures.len(),
                    reasons.join(" | ")
                ),
                attempts: failures,
                workspace: ws.dir.clone(),
                restore_command: flow.restore_command(),
            })
        }
        machine::Action::Done => {
            let last = *F::Phase::ALL.last().expect("a workflow has phases");
            Action::Done(protocol::Done {
                workflow,
                summary_file: ws.report_path(last),
                workspace: ws.dir.clone(),
                phases: progress
                    .phases
                    .iter()
                    .map(|p| DonePhase {
                        phase: p.id.clone(),
                        attempts: p.attempts,
                        note: p.note.clone(),
                    })
                    .collect(),
                restored: flow.after_done()?,
            })
        }
    })
}

fn spawn<F: Agented>(
    flow: &F,
    phase: F::Phase,
    attempt: u32,
    max_attempts: u32,
    last_failure: Option<String>,
) -> Spawn {
    let ws = flow.ws();
    let workflow = F::Phase::WORKFLOW;
    let root = project::root();
    let phase_file = project::phases_dir()
        .join(workflow.name())
        .join(format!("{}.md", phase.title()));
    let command = command(ws, phase);
    let retry = match &last_failure {
        Some(reason) => format!(
            "\n\nThis is attempt {attempt} of {max_attempts}. The previous attempt failed its gate: {reason}\nFix the cause before running the command again; do not work around the check."
        ),
        None => String::new(),
    };
    let prompt = format!(
        "You run the {title} phase of the Bottlerocket {wf} workflow for {subject}.\n\
         Read {file} and follow it. In {cwd}, run exactly:\n\n    {cmd}\n\n\
         It does the work and checks it; its report is written to {report} and its log to {log}. \
         If it fails, read the log, fix the cause (Docker down, port taken, build error, …) as the \
         phase file says, and run it again. Do not edit files in the workspace. Answer with what you \
         ran, whether it succeeded, and the report it printed.{retry}",
        title = phase.title(),
        wf = workflow.name(),
        subject = flow.subject_line(),
        file = phase_file.display(),
        cwd = root.display(),
        cmd = command.join(" "),
        report = ws.report_path(phase).display(),
        log = ws.log_path(phase).display(),
    );
    Spawn {
        workflow,
        phase: phase.title().into(),
        attempt,
        prompt,
        context_files: vec![phase_file],
        context_data: ContextData {
            workspace: ws.dir.clone(),
            workflow,
            phase: phase.id().into(),
            phase_command: command,
            cwd: root,
            attempt,
            max_attempts,
            last_failure,
            result_file: ws.result_path(phase),
            report_file: ws.report_path(phase),
            log_file: ws.log_path(phase),
            subject: flow.subject(),
        },
        output_file: phase.output_file().into(),
    }
}

impl Agented for Kit {
    fn subject(&self) -> protocol::Subject {
        protocol::Subject::Kit {
            kit: self.name.clone(),
            arch: self.arch.to_string(),
            kit_dir: self.repo.clone(),
            registry: self
                .registry_port()
                .ok()
                .map(|p| format!("localhost:{p}"))
                .or(self.input.registry.clone()),
        }
    }

    fn subject_line(&self) -> String {
        format!("kit `{}` for {}", self.name, self.arch)
    }
}

impl Agented for Variant {
    fn subject(&self) -> protocol::Subject {
        protocol::Subject::Variant {
            variant_dir: self.repo.clone(),
            variant: self.variant.clone(),
            arch: self.arch.to_string(),
            kits: self
                .input
                .kits
                .iter()
                .map(|k| protocol::KitRequest {
                    name: k.name.clone(),
                    version: k.version.clone(),
                })
                .collect(),
            strategy: self.strategy.name().into(),
            registry: self.input.registry.clone(),
        }
    }

    fn subject_line(&self) -> String {
        format!("variant repo {}", self.repo.display())
    }

    fn restore_command(&self) -> Option<Vec<String>> {
        Some(vec![
            "cargo".into(),
            "xtask".into(),
            "restore".into(),
            self.ws.dir.display().to_string(),
        ])
    }

    /// Like `cargo xtask variant`, a finished variant workflow puts the repo's files back unless
    /// the input asks to keep them pointed at the local kits.
    fn after_done(&self) -> Result<Option<bool>> {
        let backup = crate::variant::backup::Backup::new(&self.ws.dir);
        if self.input.keep_config || backup.manifest()?.is_none() {
            return Ok(Some(false));
        }
        backup.restore(false)?;
        Ok(Some(true))
    }
}
