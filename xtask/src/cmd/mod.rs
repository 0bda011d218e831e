//! One file per command, each `impl flags::X { fn run(self, sh: &Shell) -> Result<ExitCode> }`.

mod bench;
mod build_kit;
mod images;
mod next_step;
mod phase;
mod registry;
mod restore;
mod sandbox;
mod status;
mod variant;

/// Our own command line, without `flag`: what `--in-vm` re-runs inside the machine.
fn args_without(flag: &str) -> Vec<String> {
    std::env::args().skip(1).filter(|a| a != flag).collect()
}

/// Ends a workflow command: with `--json`, exactly one summary object on stdout, also when the
/// command failed before any phase ran; the error (if any) still goes to stderr via `main`.
fn finish(
    json: bool,
    outcome: anyhow::Result<(serde_json::Value, anyhow::Result<()>)>,
) -> anyhow::Result<std::process::ExitCode> {
    let (summary, result) = match outcome {
        Ok(done) => done,
        Err(err) => (
            serde_json::json!({ "ok": false, "error": format!("{err:#}") }),
            Err(err),
        ),
    };
    if json {
        println!("{summary}");
    }
    result.map(|()| std::process::ExitCode::SUCCESS)
}
