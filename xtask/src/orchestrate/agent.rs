//! `next-step`: the state machine's decision, carried out by sub-agents. Each call observes
//! reality, saves progress and answers one [`Action`].

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use xshell::Shell;

use super::machine::{self, Observer, Report};
use super::progress::{self, Completed, Marks, Progress};
use super::{marks, Subject};
use crate::kit::Kit;
use crate::protocol::{self, Action, ContextData, DonePhase, GateFailed, Spawn, Wait};
use crate::variant::Variant;
use crate::workflow::{Flow, Gate, PhaseKind};
use crate::{fsx, project};

/// What the agent loop needs to know of a workflow beyond its phases.
pub(crate) trait Agented: Flow {
    /// What the workflow works on, for `context_data`.
    fn subject(&self, sh: &Shell) -> protocol::Subject;
    /// The same in words, for the prompt.
    fn subject_line(&self) -> String;
    /// The command that puts the repo's files back, when the workflow changes any.
    fn restore_command(&self) -> Option<Vec<String>> {
        None
    }
    /// What happens once every phase passed; for the variant workflow, whether the repo's
    /// files were put back.
    fn after_done(&self) -> Result<Option<bool>> {
        Ok(None)
    }
    /// Once done and put back, what must still hold for the workflow to stay done.
    fn still_done(&self) -> Result<()> {
        bail!("the workflow puts nothing back")
    }
}

/// What the caller asked of this call besides the next action.
#[derive(Debug, Clone, Default)]
pub(crate) struct Call {
    pub(crate) report: Report,
    pub(crate) max_attempts: u32,
    /// `--retry`: reopen a phase that gave up, with fresh attempts.
    pub(crate) retry: bool,
}

/// Answers the next action for the workspace of `subject`.
pub(crate) fn next_step(sh: &Shell, subject: &Subject, call: &Call) -> Result<Action> {
    match subject {
        Subject::Kit(kit) => answer(sh, kit, call),
        Subject::Variant(variant) => answer(sh, variant, call),
    }
}

/// Observes reality for the state machine. A gate that passed once in a call is not checked
/// again in the same call.
struct RealObserver<'a, F> {
    sh: &'a Shell,
    flow: &'a F,
    passed: BTreeSet<usize>,
}

impl<F: Flow> Observer<F::Phase> for RealObserver<'_, F> {
    fn has_result(&mut self, phase: F::Phase) -> bool {
        self.flow.ws().result_path(phase).is_file()
    }

    fn gate(&mut self, phase: F::Phase) -> Gate {
        if self.passed.contains(&phase.index()) {
            return Gate::Passed;
        }
        let gate = self.flow.gate(self.sh, phase);
        if gate == Gate::Passed {
            self.passed.insert(phase.index());
        }
        gate
    }

    fn running(&mut self, phase: F::Phase) -> bool {
        self.flow.ws().phase_running(phase)
    }

    fn marks(&mut self, phase: F::Phase) -> Marks {
        marks(self.flow.ws(), phase)
    }
}

fn answer<F: Agented>(sh: &Shell, flow: &F, call: &Call) -> Result<Action> {
    let ws = flow.ws();
    let workflow = F::Phase::WORKFLOW;
    let _lock = ws.lock()?;
    // Orchestrators write answers here; the xtask never writes into it.
    fs_err::create_dir_all(ws.dir.join("answers"))?;
    let mut progress = progress::load::<F::Phase>(ws)?;
    let now = fsx::now_unix();
    if call.retry && progress.retry::<F::Phase>(now).is_none() {
        crate::ui::info("--retry: no phase had given up; nothing to reopen");
    }
    let mut observer = RealObserver {
        sh,
        flow,
        passed: BTreeSet::new(),
    };
    if let Some(done) = finished_and_restored(flow, &progress) {
        return Ok(done);
    }
    let decision = machine::decide(progress, &call.report, call.max_attempts, now, &mut observer);
    progress = decision.progress;
    let note = (!decision.notes.is_empty()).then(|| decision.notes.join("; "));
    let action = match decision.action {
        machine::Action::Spawn {
            phase,
            attempt,
            last_failure,
        } => Action::Spawn(Box::new(spawn(
            sh,
            flow,
            phase,
            attempt,
            call.max_attempts,
            last_failure,
            note,
        ))),
        machine::Action::Wait { phase } => Action::Wait(Wait {
            workflow,
            phase: phase.title().into(),
            reason: format!(
                "the {} phase command is running (its lock is held): call again when it ends; \
                 follow it in {}",
                phase.title(),
                ws.log_path(phase).display()
            ),
            retry_after_s: retry_after(phase),
            log_file: ws.log_path(phase),
            workspace: ws.dir.clone(),
        }),
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
                resume_command: project::xtask_command(&["next-step", &ws.dir.display().to_string(), "--retry"]),
                restore_command: flow.restore_command(),
            })
        }
        machine::Action::Done => {
            let summary = write_summary(flow)?;
            let restored = flow.after_done()?;
            progress.completed = Some(Completed { at: now, restored });
            done(flow, &progress, summary, note)
        }
    };
    progress::save(ws, &progress)?;
    Ok(action)
}

/// A variant workflow that finished and put the repo's files back cannot be re-checked phase
/// by phase (the repo no longer points at the local kits, by design): it stays done while its
/// last phase (the images and the kits they were built from) still passes its gate.
fn finished_and_restored<F: Agented>(flow: &F, progress: &Progress) -> Option<Action> {
    progress.completed.as_ref().filter(|c| c.restored == Some(true))?;
    let last = *F::Phase::ALL.last().expect("a workflow has phases");
    let summary = flow.ws().dir.join(last.output_file());
    let report = fs_err::read(flow.ws().report_path(last)).ok()?;
    if flow.still_done().is_err() || std::fs::read(&summary).ok()? != report {
        return None;
    }
    Some(done(flow, progress, summary, None))
}

fn done<F: Agented>(flow: &F, progress: &Progress, summary_file: std::path::PathBuf, note: Option<String>) -> Action {
    Action::Done(protocol::Done {
        workflow: F::Phase::WORKFLOW,
        summary_file,
        workspace: flow.ws().dir.clone(),
        phases: progress
            .phases
            .iter()
            .map(|p| DonePhase {
                phase: p.id.clone(),
                attempts: p.attempts,
                note: p.note.clone(),
            })
            .collect(),
        restored: progress.completed.as_ref().and_then(|c| c.restored),
        note,
    })
}

/// The last phase's checked report, copied where the original skills' loops read their summary:
/// `<workspace>/04-verify.md` (kit) or `<workspace>/FINAL.md` (variant).
pub(crate) fn write_summary<F: Flow>(flow: &F) -> Result<std::path::PathBuf> {
    let ws = flow.ws();
    let last = *F::Phase::ALL.last().expect("a workflow has phases");
    let path = ws.dir.join(last.output_file());
    fsx::write_atomic(&path, &fs_err::read(ws.report_path(last))?)?;
    Ok(path)
}

/// How long to wait before asking again: builds take minutes, the rest seconds.
fn retry_after(phase: impl PhaseKind) -> u32 {
    if phase.id() == "build" {
        30
    } else {
        5
    }
}

fn spawn<F: Agented>(
    sh: &Shell,
    flow: &F,
    phase: F::Phase,
    attempt: u32,
    max_attempts: u32,
    last_failure: Option<String>,
    note: Option<String>,
) -> Spawn {
    let ws = flow.ws();
    let workflow = F::Phase::WORKFLOW;
    let root = project::root();
    let phase_file = project::phases_dir()
        .join(workflow.name())
        .join(format!("{}.md", phase.title()));
    let command = project::xtask_command(&["phase", phase.id(), &ws.dir.display().to_string()]);
    let retry = match &last_failure {
        Some(reason) => format!(
            "\n\nThis is attempt {attempt} of {max_attempts}. The previous attempt failed its gate: {reason}\nFix the cause before running the command again; do not work around the check."
        ),
        None => String::new(),
    };
    let prompt = format!(
        "You run the {title} phase of the Bottlerocket {wf} workflow for {subject}.\n\
         Read {file} and follow it. Run exactly (from any directory):\n\n    {cmd}\n\n\
         It does the work and checks it; its report is written to {report} and its log to {log}. \
         If it fails, read the log, fix the cause (Docker down, port taken, build error, …) as the \
         phase file says, and run it again. Do not edit files in the workspace. Answer with what you \
         ran, whether it succeeded, and the report it printed.{retry}",
        title = phase.title(),
        wf = workflow.name(),
        subject = flow.subject_line(),
        file = phase_file.display(),
        cmd = shell_words(&command),
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
            subject: flow.subject(sh),
        },
        output_file: phase.answer_file(),
        note,
    }
}

/// An argv as one line a shell runs as it is (words quoted when they need it).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Agented for Kit {
    fn subject(&self, sh: &Shell) -> protocol::Subject {
        let registry = match self.registry() {
            Ok(address) => address.to_string(),
            Err(_) => match &self.input.registry {
                Some(registry) => registry.clone(),
                None => crate::registry::url(sh).map(|(url, _)| url).unwrap_or_default(),
            },
        };
        protocol::Subject::Kit {
            kit: self.name.clone(),
            arch: self.arch.to_string(),
            kit_dir: self.repo.clone(),
            registry: Some(registry).filter(|r| !r.is_empty()),
        }
    }

    fn subject_line(&self) -> String {
        format!("kit `{}` for {}", self.name, self.arch)
    }
}

impl Agented for Variant {
    fn subject(&self, sh: &Shell) -> protocol::Subject {
        let registry = match (self.config(), &self.input.registry) {
            (Ok(config), _) => config.registry,
            (Err(_), Some(registry)) => registry.clone(),
            (Err(_), None) => crate::registry::url(sh).map(|(url, _)| url).unwrap_or_default(),
        };
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
            registry: Some(registry).filter(|r| !r.is_empty()),
        }
    }

    fn subject_line(&self) -> String {
        format!("variant repo {}", self.repo.display())
    }

    fn restore_command(&self) -> Option<Vec<String>> {
        Some(project::xtask_command(&["restore", &self.ws.dir.display().to_string()]))
    }

    /// Like `cargo xtask variant`, a finished variant workflow puts the repo's files back unless
    /// the input asks to keep them pointed at the local kits.
    fn after_done(&self) -> Result<Option<bool>> {
        let backups = crate::variant::journal::Backups::new(&self.ws.dir);
        if self.input.keep_config || backups.journal()?.is_none() {
            return Ok(Some(false));
        }
        let _repo = crate::repo_lock::RepoLock::acquire(&self.repo, &self.ws.dir)?;
        backups.restore(false)?;
        Ok(Some(true))
    }

    fn still_done(&self) -> Result<()> {
        crate::variant::validate::images_unchanged(self)
    }
}
