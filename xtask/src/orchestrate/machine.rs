//! The state machine both kinds of caller share: `next-step` (sub-agents do the phases) and
//! `build-kit` / `variant` (the phases run right here). Deciding only: it runs nothing and
//! reads nothing. The caller observes gates (registry, files, lock digests, images) through
//! [`Observer`] and carries out the returned [`Action`].

use super::progress::{Failure, PhaseState, Progress};
use crate::workflow::{Gate, PhaseKind};

/// Looks at reality for the machine. `has_result` is cheap (is there a phase result at all?);
/// `gate` re-checks the phase's result and what it claims.
pub(crate) trait Observer<P: PhaseKind> {
    fn has_result(&mut self, phase: P) -> bool;
    fn gate(&mut self, phase: P) -> Gate;
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
    GateFailed {
        phase: P,
        failures: Vec<Failure>,
    },
    Done,
}

/// Decides the next action and the progress to save.
///
/// - The first phase that has not passed is the current one.
/// - A spawned phase is gated: passed → the next phase; failed → another attempt, or
///   `GateFailed` once `max_attempts` attempts failed. The gate, not the report, decides; a
///   reported failure's reason is kept with the gate's.
/// - A pending phase whose command already left a result is gated first, so work done outside
///   the loop (by `build-kit` or by hand) is not redone: this is the one skip rule, and the
///   phase's skip reason is noted. A failing gate there costs no attempt.
pub(crate) fn decide<P: PhaseKind>(
    mut progress: Progress,
    report: &Report,
    max_attempts: u32,
    now: u64,
    observer: &mut dyn Observer<P>,
) -> (Progress, Action<P>) {
    let max_attempts = max_attempts.max(1);
    let mut report = Some(report.clone());
    loop {
        let Some(phase) = progress.current::<P>() else {
            return (progress, Action::Done);
        };
        let current = progress.phase(phase).clone();
        match current.state {
            PhaseState::Passed => unreachable!("current() skips passed phases"),
            PhaseState::GaveUp => {
                return (
                    progress,
                    Action::GateFailed {
                        phase,
                        failures: current.failures,
                    },
                );
            }
            PhaseState::Spawned => match observer.gate(phase) {
                Gate::Passed => progress.pass(phase, None, now),
                Gate::Failed(gate_reason) => {
                    let said = report.take().unwrap_or_default();
                    let reason = match (said.success, said.reason) {
                        (Some(false), Some(r)) => format!("sub-agent reported failure: {r}; gate: {gate_reason}"),
                        (Some(false), None) => format!("sub-agent reported failure; gate: {gate_reason}"),
                        (Some(true), _) => format!("sub-agent reported success, but the gate failed: {gate_reason}"),
                        (None, _) => gate_reason,
                    };
                    if progress.fail(phase, reason, max_attempts, now) {
                        let failures = progress.phase(phase).failures.clone();
                        return (progress, Action::GateFailed { phase, failures });
                    }
                    return spawn(progress, phase, now);
                }
            },
            PhaseState::Pending => {
                if observer.has_result(phase) && observer.gate(phase) == Gate::Passed {
                    progress.pass(phase, Some(phase.skip_reason().to_string()), now);
                    continue;
                }
                if current.attempts >= max_attempts {
                    // Attempts were used up outside the loop (direct runs).
                    progress.phase_mut(phase).state = PhaseState::GaveUp;
                    return (
                        progress,
                        Action::GateFailed {
                            phase,
                            failures: current.failures,
                        },
                    );
                }
                return spawn(progress, phase, now);
            }
        }
        // A later call's report is about the phase it was spawned for, not the next one.
        report = None;
    }
}

fn spawn<P: PhaseKind>(mut progress: Progress, phase: P, now: u64) -> (Progress, Action<P>) {
    let attempt = progress.start(phase, now);
    let last_failure = progress.phase(phase).failures.last().map(|f| f.reason.clone());
    (
        progress,
        Action::Spawn {
            phase,
            attempt,
            last_failure,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{KitPhase, VariantPhase};

    /// An observer answering from a script: which phases have results and pass.
    struct Script {
        passing: Vec<&'static str>,
        with_result: Vec<&'static str>,
        gated: Vec<String>,
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
    }

    fn script(passing: &[&'static str]) -> Script {
        Script {
            passing: passing.to_vec(),
            with_result: Vec::new(),
            gated: Vec::new(),
        }
    }

    fn step(p: Progress, obs: &mut Script) -> (Progress, Action<KitPhase>) {
        decide(p, &Report::default(), 3, 100, obs)
    }

    #[test]
    fn honest_run_is_four_spawns_then_done() {
        let mut progress = Progress::new::<KitPhase>(0);
        let mut passing = Vec::new();
        let mut spawned = Vec::new();
        for _ in 0..10 {
            let mut obs = script(&passing);
            let (next, action) = step(progress, &mut obs);
            progress = next;
            match action {
                Action::Spawn {
                    phase,
                    attempt,
                    last_failure,
                } => {
                    assert_eq!((attempt, last_failure), (1, None));
                    spawned.push(phase.id());
                    passing.push(phase.id()); // the sub-agent ran the phase command
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
        // Done is stable.
        assert_eq!(step(progress, &mut script(&[])).1, Action::Done);
    }

    #[test]
    fn lying_subagent_gives_up_after_three_attempts_with_every_reason() {
        let mut progress = Progress::new::<KitPhase>(0);
        let mut actions = Vec::new();
        for _ in 0..5 {
            let (next, action) = step(progress, &mut script(&[]));
            progress = next;
            actions.push(action);
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
    fn reported_failure_is_kept_with_the_gate_reason_and_success_is_not_trusted() {
        let (progress, _) = step(Progress::new::<KitPhase>(0), &mut script(&[]));
        let report = Report {
            success: Some(false),
            reason: Some("docker is down".into()),
        };
        let (progress, action) = decide::<KitPhase>(progress, &report, 3, 1, &mut script(&[]));
        let Action::Spawn {
            last_failure: Some(reason),
            attempt: 2,
            ..
        } = action
        else {
            panic!("{action:?}")
        };
        assert!(
            reason.contains("docker is down") && reason.contains("setup not done"),
            "{reason}"
        );
        let report = Report {
            success: Some(true),
            reason: None,
        };
        let (_, action) = decide::<KitPhase>(progress, &report, 3, 2, &mut script(&[]));
        let Action::Spawn {
            last_failure: Some(reason),
            attempt: 3,
            ..
        } = action
        else {
            panic!("{action:?}")
        };
        assert!(reason.contains("reported success, but the gate failed"), "{reason}");
    }

    #[test]
    fn work_done_outside_the_loop_is_not_redone() {
        let mut obs = script(&["setup", "build"]);
        obs.with_result = vec!["setup", "build"];
        let (progress, action) = step(Progress::new::<KitPhase>(0), &mut obs);
        let Action::Spawn { phase, attempt: 1, .. } = action else {
            panic!("{action:?}")
        };
        assert_eq!(phase.id(), "publish");
        assert_eq!(progress.phase(KitPhase::Setup).state, PhaseState::Passed);
        assert_eq!(progress.phase(KitPhase::Build).attempts, 0);
        // A stale result whose gate fails costs no attempt.
        let mut obs = script(&[]);
        obs.with_result = vec!["setup"];
        let (progress, action) = step(Progress::new::<KitPhase>(0), &mut obs);
        assert!(matches!(action, Action::Spawn { attempt: 1, .. }));
        assert!(progress.phase(KitPhase::Setup).failures.is_empty());
    }

    #[test]
    fn only_the_spawned_phase_is_gated() {
        let mut obs = script(&[]);
        let (progress, _) =
            decide::<VariantPhase>(Progress::new::<VariantPhase>(0), &Report::default(), 3, 0, &mut obs);
        assert!(
            obs.gated.is_empty(),
            "a fresh phase is spawned without a gate: {:?}",
            obs.gated
        );
        let mut obs = script(&["update-config"]);
        let (_, action) = decide::<VariantPhase>(progress, &Report::default(), 3, 1, &mut obs);
        assert_eq!(obs.gated, ["update-config"]);
        let Action::Spawn { phase, .. } = action else {
            panic!("{action:?}")
        };
        assert_eq!(phase.output_file(), "02-lock-updated.md");
    }
}
