//! The state machine both kinds of caller share: `next-step` (sub-agents do the phases) and
//! `build-kit` / `variant` (the phases run right here). Deciding only: it runs nothing and
//! reads nothing. The caller observes reality (gates, running commands, what changed in the
//! workspace) through [`Observer`] and carries out the returned [`Action`].

use super::progress::{Failure, Marks, PhaseState, Progress, Reported};
use crate::workflow::{Gate, PhaseKind};

/// Looks at reality for the machine.
pub(crate) trait Observer<P: PhaseKind> {
    /// Whether the phase command left a result at all (cheap).
    fn has_result(&mut self, phase: P) -> bool;
    /// Re-checks the phase's result and what it claims against reality.
    fn gate(&mut self, phase: P) -> Gate;
    /// Whether the phase command is running now (its lock is held).
    fn running(&mut self, phase: P) -> bool;
    /// What is in the workspace for the phase now (its result, its answer file).
    fn marks(&mut self, phase: P) -> Marks;
}

/// What the caller reported about the phase it was spawned for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Report {
    /// `Some(true)` success, `Some(false)` failure, `None` not said.
    pub(crate) success: Option<bool>,
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action<P> {
    Spawn {
        phase: P,
        attempt: u32,
        last_failure: Option<String>,
    },
    /// The phase command is running: ask again later.
    Wait {
        phase: P,
    },
    GateFailed {
        phase: P,
        failures: Vec<Failure>,
    },
    Done,
}

/// What [`decide`] returns: the progress to save, the action, and notes for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision<P> {
    pub(crate) progress: Progress,
    pub(crate) action: Action<P>,
    pub(crate) notes: Vec<String>,
}

/// Decides the next action.
///
/// - The first phase that has not passed is the current one.
/// - Evidence, not calls, spends attempts: a spawned phase is gated only once something changed
///   since the spawn (its result, its answer file) or a result was reported; otherwise the same
///   spawn is answered again. While its command runs, the answer is to wait.
/// - A gated phase that passes moves on; one that fails gets another attempt, or `GateFailed`
///   once `max_attempts` attempts failed. The gate, not the report, decides; a report is kept
///   with the gate's verdict either way.
/// - A pending phase whose command already left a result is gated first, so work done outside
///   the loop (by `build-kit` or by hand) is not redone: this is the one skip rule, and the
///   phase's skip reason is noted. A failing gate there costs no attempt.
/// - A phase that gave up moves on by itself once its result passes its gate, and gets more
///   attempts when `max_attempts` grows.
/// - Before `done`, every gate is checked again: a phase that no longer passes (a tampered
///   progress.json, a lost image) is reopened, and so is every phase after it.
pub(crate) fn decide<P: PhaseKind>(
    mut progress: Progress,
    report: &Report,
    max_attempts: u32,
    now: u64,
    observer: &mut dyn Observer<P>,
) -> Decision<P> {
    let max_attempts = max_attempts.max(1);
    let mut report = Some(report.clone()).filter(|r| r.success.is_some());
    let mut notes = Vec::new();
    loop {
        let Some(phase) = progress.current::<P>() else {
            match P::ALL.iter().copied().find_map(|p| match observer.gate(p) {
                Gate::Passed => None,
                Gate::Failed(reason) => Some((p, reason)),
            }) {
                None => return decision(progress, Action::Done, notes),
                Some((failed, reason)) => {
                    notes.push(format!(
                        "{} no longer passes its gate, so it and the phases after it are checked again: {reason}",
                        failed.title()
                    ));
                    progress.reopen_from(failed, now);
                    continue;
                }
            }
        };
        let current = progress.phase(phase).clone();
        match current.state {
            PhaseState::Passed => unreachable!("current() skips passed phases"),
            PhaseState::GaveUp => {
                if observer.has_result(phase) && observer.gate(phase) == Gate::Passed {
                    progress.pass(phase, Some("its result passes its gate now".into()), now);
                    continue;
                }
                if current.counted_attempts() < max_attempts {
                    progress.phase_mut(phase).state = PhaseState::Pending;
                    continue;
                }
                let action = Action::GateFailed {
                    phase,
                    failures: current.failures,
                };
                return decision(progress, action, notes);
            }
            PhaseState::Spawned => {
                if observer.running(phase) {
                    return decision(progress, Action::Wait { phase }, notes);
                }
                let marks = observer.marks(phase);
                let changed = current
                    .spawn_marks
                    .as_ref()
                    .is_none_or(|before| marks.changed_since(before));
                if !changed && report.is_none() {
                    // Nothing new since the spawn: the same spawn again, no attempt spent.
                    let action = Action::Spawn {
                        phase,
                        attempt: current.attempts,
                        last_failure: current.failures.last().map(|f| f.reason.clone()),
                    };
                    return decision(progress, action, notes);
                }
                if marks.answer.is_none_or(|(bytes, _)| bytes == 0) {
                    notes.push(format!(
                        "no answer from the {} sub-agent in {}: write each sub-agent's answer to                          <workspace>/<output_file>",
                        phase.title(),
                        phase.answer_file()
                    ));
                }
                let said = report.take().unwrap_or_default();
                let gate = observer.gate(phase);
                if let Some(success) = said.success {
                    progress.phase_mut(phase).reports.push(Reported {
                        attempt: current.attempts,
                        success,
                        reason: said.reason.clone(),
                        gate_passed: gate == Gate::Passed,
                        at: now,
                    });
                }
                match gate {
                    Gate::Passed => progress.pass(phase, None, now),
                    Gate::Failed(gate_reason) => {
                        let reason = match (said.success, said.reason) {
                            (Some(false), Some(r)) => format!("sub-agent reported failure: {r}; gate: {gate_reason}"),
                            (Some(false), None) => format!("sub-agent reported failure; gate: {gate_reason}"),
                            (Some(true), _) => {
                                format!("sub-agent reported success, but the gate failed: {gate_reason}")
                            }
                            (None, _) => gate_reason,
                        };
                        if progress.fail(phase, reason, max_attempts, now) {
                            let failures = progress.phase(phase).failures.clone();
                            return decision(progress, Action::GateFailed { phase, failures }, notes);
                        }
                        return spawn(progress, phase, now, observer, notes);
                    }
                }
            }
            PhaseState::Pending => {
                if observer.running(phase) {
                    return decision(progress, Action::Wait { phase }, notes);
                }
                if observer.has_result(phase) && observer.gate(phase) == Gate::Passed {
                    progress.pass(phase, Some(phase.skip_reason().to_string()), now);
                    continue;
                }
                if current.counted_attempts() >= max_attempts {
                    // Attempts were used up outside the loop (direct runs).
                    progress.phase_mut(phase).state = PhaseState::GaveUp;
                    let action = Action::GateFailed {
                        phase,
                        failures: current.failures,
                    };
                    return decision(progress, action, notes);
                }
                return spawn(progress, phase, now, observer, notes);
            }
        }
        // A later call's report is about the phase it was spawned for, not the next one.
        report = None;
    }
}

fn decision<P>(progress: Progress, action: Action<P>, notes: Vec<String>) -> Decision<P> {
    Decision {
        progress,
        action,
        notes,
    }
}

fn spawn<P: PhaseKind>(
    mut progress: Progress,
    phase: P,
    now: u64,
    observer: &mut dyn Observer<P>,
    notes: Vec<String>,
) -> Decision<P> {
    let marks = observer.marks(phase);
    let attempt = progress.start(phase, marks, now);
    let last_failure = progress.phase(phase).failures.last().map(|f| f.reason.clone());
    let action = Action::Spawn {
        phase,
        attempt,
        last_failure,
    };
    decision(progress, action, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{KitPhase, VariantPhase};

    /// Reality as a script: which phases pass and have results, which are running, and what the
    /// sub-agents changed in the workspace.
    #[derive(Default)]
    struct Script {
        passing: Vec<&'static str>,
        with_result: Vec<&'static str>,
        running: Vec<&'static str>,
        /// Per phase, a counter standing for the result id and the answer file.
        touched: std::collections::BTreeMap<&'static str, (u32, u32)>,
        gated: Vec<String>,
    }

    impl Script {
        fn passing(passing: &[&'static str]) -> Script {
            Script {
                passing: passing.to_vec(),
                ..Script::default()
            }
        }

        /// The sub-agent ran the phase command (a new result) and wrote its answer.
        fn ran(&mut self, phase: &'static str, passes: bool) {
            let t = self.touched.entry(phase).or_default();
            t.0 += 1;
            t.1 += 1;
            if !self.with_result.contains(&phase) {
                self.with_result.push(phase);
            }
            if passes && !self.passing.contains(&phase) {
                self.passing.push(phase);
            }
        }

        /// The sub-agent wrote an answer without running anything.
        fn answered(&mut self, phase: &'static str) {
            self.touched.entry(phase).or_default().1 += 1;
        }
    }

    impl<P: PhaseKind> Observer<P> for Script {
        fn has_result(&mut self, phase: P) -> bool {
            self.with_result.contains(&phase.id())
        }
        fn gate(&mut self, phase: P) -> Gate {
            self.gated.push(phase.id().to_string());
            if self.passing.contains(&phase.id()) {
                Gate::Passed
            } else {
                Gate::Failed(format!("{} not done", phase.id()))
            }
        }
        fn running(&mut self, phase: P) -> bool {
            self.running.contains(&phase.id())
        }
        fn marks(&mut self, phase: P) -> Marks {
            let (result, answer) = self.touched.get(phase.id()).copied().unwrap_or_default();
            Marks {
                result: (result > 0).then(|| format!("r{result}")),
                answer: (answer > 0).then_some((10, u128::from(answer))),
                answer_sha256: None,
            }
        }
    }

    fn step(p: Progress, obs: &mut Script) -> Decision<KitPhase> {
        decide(p, &Report::default(), 3, 100, obs)
    }

    fn spawned(d: &Decision<KitPhase>) -> (&'static str, u32) {
        match &d.action {
            Action::Spawn { phase, attempt, .. } => (phase.id(), *attempt),
            other => panic!("expected a spawn, got {other:?}"),
        }
    }

    #[test]
    fn honest_run_is_four_spawns_then_done() {
        let mut progress = Progress::new::<KitPhase>(0);
        let mut obs = Script::default();
        let mut spawned = Vec::new();
        for _ in 0..10 {
            let d = step(progress, &mut obs);
            progress = d.progress;
            match d.action {
                Action::Spawn {
                    phase,
                    attempt,
                    last_failure,
                } => {
                    assert_eq!((attempt, last_failure), (1, None));
                    spawned.push(phase.id());
                    obs.ran(phase.id(), true);
                }
                Action::Done => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(spawned, ["setup", "build", "publish", "verify"]);
        assert!(progress
            .phases
            .iter()
            .all(|p| p.state == PhaseState::Passed && p.attempts == 1));
        // Done is stable, and re-checks every gate each time.
        obs.gated.clear();
        assert_eq!(step(progress, &mut obs).action, Action::Done);
        assert_eq!(obs.gated, ["setup", "build", "publish", "verify"]);
    }

    #[test]
    fn calls_with_nothing_new_spend_no_attempt() {
        let mut obs = Script::default();
        let d = step(Progress::new::<KitPhase>(0), &mut obs);
        assert_eq!(spawned(&d), ("setup", 1));
        let mut progress = d.progress;
        for _ in 0..5 {
            let d = step(progress, &mut obs);
            assert_eq!(spawned(&d), ("setup", 1), "the same spawn again");
            progress = d.progress;
        }
        assert_eq!(progress.phase(KitPhase::Setup).attempts, 1);
        assert!(progress.phase(KitPhase::Setup).failures.is_empty());
        assert!(obs.gated.is_empty(), "no evidence, no gate: {:?}", obs.gated);
    }

    #[test]
    fn a_running_phase_command_means_wait() {
        let mut obs = Script::default();
        let d = step(Progress::new::<KitPhase>(0), &mut obs);
        obs.running.push("setup");
        obs.answered("setup");
        let d = step(d.progress, &mut obs);
        assert_eq!(d.action, Action::Wait { phase: KitPhase::Setup });
        assert_eq!(d.progress.phase(KitPhase::Setup).attempts, 1);
        obs.running.clear();
        obs.ran("setup", true);
        let d = step(d.progress, &mut obs);
        assert_eq!(spawned(&d), ("build", 1));
        // Someone running a pending phase by hand: wait for it too.
        let mut obs = Script::default();
        obs.running.push("setup");
        let d = step(Progress::new::<KitPhase>(0), &mut obs);
        assert_eq!(d.action, Action::Wait { phase: KitPhase::Setup });
        assert_eq!(d.progress.phase(KitPhase::Setup).attempts, 0);
    }

    #[test]
    fn lying_subagent_gives_up_after_three_attempts_with_every_reason() {
        let mut progress = Progress::new::<KitPhase>(0);
        let mut obs = Script::default();
        let mut actions = Vec::new();
        for _ in 0..5 {
            let d = step(progress, &mut obs);
            progress = d.progress;
            actions.push(d.action);
            obs.answered("setup"); // "It worked!", without running the phase command
        }
        let spawns: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Spawn {
                    phase,
                    attempt,
                    last_failure,
                } => Some((phase.id(), *attempt, last_failure.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            spawns,
            [
                ("setup", 1, None),
                ("setup", 2, Some("setup not done".to_string())),
                ("setup", 3, Some("setup not done".to_string()))
            ]
        );
        let Action::GateFailed { phase, failures } = &actions[3] else {
            panic!("{:?}", actions[3])
        };
        assert_eq!(phase.id(), "setup");
        assert_eq!(failures.iter().map(|f| f.attempt).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(actions[4], actions[3], "gate_failed is repeated, not reset");
        assert_eq!(progress.phase(KitPhase::Build).attempts, 0, "no later phase advanced");
    }

    #[test]
    fn gave_up_phases_come_back() {
        let mut progress = Progress::new::<KitPhase>(0);
        let mut obs = Script::default();
        for _ in 0..4 {
            progress = step(progress, &mut obs).progress;
            obs.answered("setup");
        }
        assert_eq!(progress.phase(KitPhase::Setup).state, PhaseState::GaveUp);
        // More attempts allowed: it is spawned again, as attempt 4.
        let d = decide::<KitPhase>(progress.clone(), &Report::default(), 5, 1, &mut obs);
        assert_eq!(spawned(&d), ("setup", 4));
        // `--retry`: fresh attempts, the history kept.
        let mut retried = progress.clone();
        assert_eq!(retried.retry::<KitPhase>(1), Some(KitPhase::Setup));
        let d = step(retried, &mut obs);
        assert_eq!(spawned(&d), ("setup", 4));
        assert_eq!(d.progress.phase(KitPhase::Setup).failures.len(), 3);
        assert_eq!(d.progress.phase(KitPhase::Setup).counted_attempts(), 1);
        // Run by hand successfully: it moves on by itself.
        obs.ran("setup", true);
        let d = step(progress, &mut obs);
        assert_eq!(spawned(&d), ("build", 1));
    }

    #[test]
    fn reported_failure_is_kept_with_the_gate_reason_and_success_is_not_trusted() {
        let mut obs = Script::default();
        let d = step(Progress::new::<KitPhase>(0), &mut obs);
        let report = Report {
            success: Some(false),
            reason: Some("docker is down".into()),
        };
        let d = decide::<KitPhase>(d.progress, &report, 3, 1, &mut obs);
        let Action::Spawn {
            last_failure: Some(reason),
            attempt: 2,
            ..
        } = &d.action
        else {
            panic!("{:?}", d.action)
        };
        assert!(
            reason.contains("docker is down") && reason.contains("setup not done"),
            "{reason}"
        );
        let report = Report {
            success: Some(true),
            reason: None,
        };
        let d = decide::<KitPhase>(d.progress, &report, 3, 2, &mut obs);
        let Action::Spawn {
            last_failure: Some(reason),
            attempt: 3,
            ..
        } = &d.action
        else {
            panic!("{:?}", d.action)
        };
        assert!(reason.contains("reported success, but the gate failed"), "{reason}");
        // A reported failure whose gate passes is kept too, with the verdict.
        obs.ran("setup", true);
        let report = Report {
            success: Some(false),
            reason: Some("it looked slow".into()),
        };
        let d = decide::<KitPhase>(d.progress, &report, 3, 3, &mut obs);
        assert_eq!(spawned(&d), ("build", 1));
        let reports = &d.progress.phase(KitPhase::Setup).reports;
        assert_eq!(reports.len(), 3);
        assert_eq!(
            (reports[2].success, reports[2].gate_passed, reports[2].reason.as_deref()),
            (false, true, Some("it looked slow"))
        );
    }

    #[test]
    fn a_missing_answer_file_is_noted() {
        let mut obs = Script::default();
        let d = step(Progress::new::<KitPhase>(0), &mut obs);
        // The phase command ran, but the answer went elsewhere.
        obs.ran("setup", true);
        obs.touched.get_mut("setup").unwrap().1 = 0;
        let d = step(d.progress, &mut obs);
        assert_eq!(spawned(&d), ("build", 1));
        assert!(
            d.notes.iter().any(|n| n.contains("answers/01-setup.md")),
            "{:?}",
            d.notes
        );
    }

    #[test]
    fn work_done_outside_the_loop_is_not_redone() {
        let mut obs = Script::passing(&["setup", "build"]);
        obs.with_result = vec!["setup", "build"];
        let d = step(Progress::new::<KitPhase>(0), &mut obs);
        assert_eq!(spawned(&d), ("publish", 1));
        assert_eq!(d.progress.phase(KitPhase::Setup).state, PhaseState::Passed);
        assert_eq!(d.progress.phase(KitPhase::Build).attempts, 0);
        // A stale result whose gate fails costs no attempt.
        let mut obs = Script {
            with_result: vec!["setup"],
            ..Script::default()
        };
        let d = step(Progress::new::<KitPhase>(0), &mut obs);
        assert_eq!(spawned(&d), ("setup", 1));
        assert!(d.progress.phase(KitPhase::Setup).failures.is_empty());
    }

    #[test]
    fn a_hand_edited_progress_never_reaches_done() {
        let mut progress = Progress::new::<KitPhase>(0);
        for &p in KitPhase::ALL {
            progress.pass(p, None, 0);
        }
        let mut obs = Script::passing(&["setup"]);
        obs.with_result = vec!["setup"];
        let d = step(progress, &mut obs);
        assert_eq!(spawned(&d), ("build", 1));
        assert!(d.notes[0].contains("BUILD no longer passes its gate"), "{:?}", d.notes);
        assert_eq!(d.progress.phase(KitPhase::Verify).state, PhaseState::Pending);
    }

    #[test]
    fn only_the_spawned_phase_is_gated() {
        let mut obs = Script::default();
        let d = decide::<VariantPhase>(Progress::new::<VariantPhase>(0), &Report::default(), 3, 0, &mut obs);
        assert!(
            obs.gated.is_empty(),
            "a fresh phase is spawned without a gate: {:?}",
            obs.gated
        );
        obs.ran("update-config", true);
        let d = decide::<VariantPhase>(d.progress, &Report::default(), 3, 1, &mut obs);
        assert_eq!(obs.gated, ["update-config"]);
        let Action::Spawn { phase, .. } = d.action else {
            panic!("{:?}", d.action)
        };
        assert_eq!(phase.answer_file(), "answers/02-lock-updated.md");
    }
}
