//! One file per command, each `impl flags::X { fn run(self, sh: &Shell) -> Result<ExitCode> }`.

mod adopt;
mod bench;
mod build_kit;
mod images;
mod next_step;
mod phase;
mod registry;
mod restore;
mod sandbox;
mod status;
mod test;
mod variant;

use crate::protocol::{NotStarted, PhaseOutcome};

/// Our own command line, without `flag`: what `--in-vm` re-runs inside the machine.
fn args_without(flag: &str) -> Vec<String> {
    std::env::args().skip(1).filter(|a| a != flag).collect()
}

/// Ends a workflow command: with `--json`, exactly one summary object on stdout, also when the
/// command failed before any phase ran; the error (if any) still goes to stderr via `main`.
fn finish<S: serde::Serialize>(
    json: bool,
    outcome: anyhow::Result<(S, anyhow::Result<()>)>,
) -> anyhow::Result<std::process::ExitCode> {
    match outcome {
        Ok((summary, result)) => {
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            }
            result.map(|()| std::process::ExitCode::SUCCESS)
        }
        Err(err) => {
            if json {
                let summary = NotStarted {
                    ok: false,
                    error: format!("{err:#}"),
                };
                println!("{}", serde_json::to_string(&summary)?);
            }
            Err(err)
        }
    }
}

/// What each phase of a direct run did, one line each, to stderr.
fn print_outcomes(outcomes: &[PhaseOutcome], width: usize) {
    for o in outcomes {
        eprintln!(
            "  {:<width$} {:<8} {}",
            o.phase,
            o.outcome.word(),
            crate::ui::duration(std::time::Duration::from_secs_f64(o.seconds))
        );
    }
}
