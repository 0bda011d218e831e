//! `build-kit` and `variant`: the same state machine as `next-step`, with the phases run right
//! here instead of by sub-agents. Every phase is re-checked first; one whose gate passes is
//! skipped (the machine's one skip rule), the others run in order until one fails.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{anyhow, Result};
use xshell::Shell;

use super::machine::{self, Observer, Report};
use super::progress::{self, Completed, Marks};
use crate::protocol::{Outcome, PhaseOutcome};
use crate::workflow::{Flow, Gate, PhaseKind};
use crate::{fsx, ui};

/// Runs every phase of `flow` that needs it; `force` runs every one. Returns what each phase
/// did, and how the run ended.
pub(crate) fn run_all<F: Flow>(sh: &Shell, flow: &F, force: bool) -> (Vec<PhaseOutcome>, Result<()>) {
    let mut observer = Direct {
        sh,
        flow,
        force,
        ran: BTreeSet::new(),
        passed: BTreeSet::new(),
        outcomes: Vec::new(),
    };
    let result = drive(&mut observer);
    (observer.outcomes, result)
}

fn drive<F: Flow>(observer: &mut Direct<'_, F>) -> Result<()> {
    let ws = observer.flow.ws();
    // One run per repo, for the whole run (phases it runs take the same lock again).
    let _repo = crate::repo_lock::RepoLock::acquire(observer.flow.repo(), &ws.dir)?;
    // Nothing counts as passed until its gate is checked again in this run.
    progress::update::<F::Phase>(ws, |p, now| p.reopen_all::<F::Phase>(now))?;
    loop {
        let action = {
            let _lock = ws.lock()?;
            let progress = progress::load::<F::Phase>(ws)?;
            let now = fsx::now_unix();
            let mut decision = machine::decide(progress, &Report::default(), u32::MAX, now, observer);
            if decision.action == machine::Action::Done {
                super::agent::write_summary(observer.flow)?;
                decision.progress.completed = Some(Completed {
                    at: now,
                    restored: None,
                });
            }
            progress::save(ws, &decision.progress)?;
            decision.action
        };
        match action {
            machine::Action::Done => return Ok(()),
            machine::Action::Spawn { phase, .. } => observer.run(phase)?,
            machine::Action::Wait { phase } => {
                return Err(anyhow!(
                    "{} is running in another process for this workspace: wait for it to end \
                     (its log: {}), then run this again",
                    phase.title(),
                    ws.log_path(phase).display()
                ))
            }
            machine::Action::GateFailed { phase, failures } => {
                let last = failures.last().map_or("no reason recorded", |f| f.reason.as_str());
                return Err(anyhow!("{} gave up: {last}", phase.title()));
            }
        }
    }
}

/// Observes gates for the machine, and runs the phases it asks for.
struct Direct<'a, F: Flow> {
    sh: &'a Shell,
    flow: &'a F,
    force: bool,
    /// Phases run in this invocation (with `force`, only their results count).
    ran: BTreeSet<usize>,
    /// Phases whose gate passed in this invocation (a phase that ran passed its gate while
    /// running), so none is checked twice.
    passed: BTreeSet<usize>,
    outcomes: Vec<PhaseOutcome>,
}

impl<F: Flow> Direct<'_, F> {
    fn run(&mut self, phase: F::Phase) -> Result<()> {
        let ws = self.flow.ws();
        ui::step(phase.title());
        let start = Instant::now();
        let result = crate::signals::check().and_then(|()| self.flow.run(self.sh, phase));
        let seconds = start.elapsed().as_secs_f64();
        self.ran.insert(phase.index());
        match result {
            Ok(()) => {
                self.passed.insert(phase.index());
                self.outcomes.push(PhaseOutcome {
                    phase: phase.id().into(),
                    outcome: Outcome::Ran,
                    seconds,
                    reason: None,
                });
                Ok(())
            }
            Err(err) => {
                let reason = format!("{err:#}");
                progress::update::<F::Phase>(ws, |p, now| {
                    p.fail(phase, reason.clone(), u32::MAX, now);
                })?;
                self.outcomes.push(PhaseOutcome {
                    phase: phase.id().into(),
                    outcome: Outcome::Failed,
                    seconds,
                    reason: Some(reason),
                });
                Err(err)
            }
        }
    }
}

impl<F: Flow> Observer<F::Phase> for Direct<'_, F> {
    fn has_result(&mut self, phase: F::Phase) -> bool {
        if self.force && !self.ran.contains(&phase.index()) {
            return false;
        }
        self.flow.ws().result_path(phase).is_file()
    }

    fn gate(&mut self, phase: F::Phase) -> Gate {
        if self.passed.contains(&phase.index()) {
            return Gate::Passed;
        }
        // Any other gate is the check of a pending phase: passing means it is skipped.
        let start = Instant::now();
        let gate = self.flow.gate(self.sh, phase);
        if gate == Gate::Passed {
            self.passed.insert(phase.index());
            let reason = phase.skip_reason();
            ui::step(format!("{}: skipped, {reason}", phase.title()));
            self.outcomes.push(PhaseOutcome {
                phase: phase.id().into(),
                outcome: Outcome::Skipped,
                seconds: start.elapsed().as_secs_f64(),
                reason: Some(reason.into()),
            });
        }
        gate
    }

    fn running(&mut self, phase: F::Phase) -> bool {
        self.flow.ws().phase_running(phase)
    }

    fn marks(&mut self, phase: F::Phase) -> Marks {
        super::marks(self.flow.ws(), phase)
    }
}
