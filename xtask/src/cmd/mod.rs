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

impl crate::flags::On {
    /// The builder `--on` names, and how to reach it.
    fn target(&self) -> Option<crate::remote::ssh::Target> {
        Some(crate::remote::ssh::Target {
            host: self.on.clone()?,
            config: self.ssh_config.clone().filter(|c| !c.as_os_str().is_empty()),
            remote_dir: self.remote_dir.clone(),
        })
    }
}

/// Before a run on this machine in a workspace brought back from a builder (`--on`): it becomes
/// this machine's (`status` and `restore` stop naming the builder), unless the variant repo's
/// files it changed there are not put back yet.
fn claim_local(ws_dir: &std::path::Path) -> anyhow::Result<()> {
    let Some(record) = crate::remote::record(ws_dir)? else {
        return Ok(());
    };
    if crate::variant::journal::Backups::new(ws_dir).journal()?.is_some() {
        anyhow::bail!(
            "this workspace was built on {}, where the variant repo's files it changed are not put back \
             yet: run `cargo xtask restore {}` (it restores them there), or use another workspace",
            record.host,
            ws_dir.display()
        );
    }
    crate::remote::forget(ws_dir)?;
    crate::ui::info(format!(
        "{} was built on {}; it is this machine's from now on",
        ws_dir.display(),
        record.host
    ));
    Ok(())
}

/// The name a `--ca-file` is sent to a builder under (`--on`).
const SENT_CA: &str = "ca.pem";

/// Global settings the builder's command line repeats (the environment does not travel).
fn remote_global_args() -> Vec<String> {
    let mut args = Vec::new();
    if let Some(image) = &crate::project::settings().registry_image {
        args.extend(["--registry-image".to_string(), image.clone()]);
    }
    args
}

/// Our own command line, without `flag`: what `--in-vm` re-runs inside the machine.
fn args_without(flag: &str) -> Vec<String> {
    std::env::args().skip(1).filter(|a| a != flag).collect()
}

/// Ends a workflow command run with `--on`: the builder printed its own summary; a failure
/// before or around its run still gives one summary object with `--json`.
fn finish_remote(json: bool, result: anyhow::Result<std::process::ExitCode>) -> anyhow::Result<std::process::ExitCode> {
    if let (true, Err(err)) = (json, &result) {
        let summary = NotStarted {
            ok: false,
            error: format!("{err:#}"),
        };
        println!("{}", serde_json::to_string(&summary)?);
    }
    result
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// `build-kit --on` and `variant --on`: the builder's command line names the CA file where
    /// it is kept there, never the path here.
    #[test]
    fn the_builders_command_line_names_the_ca_file_sent_along() {
        let layout = crate::remote::layout::plan("/b/c", std::path::Path::new("/r"), true, None, &[]);
        for command in ["build-kit", "variant"] {
            let flags = crate::flags::Xtask::try_parse_from([
                "xtask",
                command,
                "--on",
                "builder",
                "--registry",
                "registry.example.com/team",
                "--ca-file",
                "/here/team-ca.pem",
            ])
            .unwrap();
            let args = match flags.cmd {
                crate::flags::Cmd::BuildKit(cmd) => cmd.remote_args(&layout),
                crate::flags::Cmd::Variant(cmd) => cmd.remote_args(&layout),
                _ => unreachable!("{command}"),
            }
            .unwrap();
            let at = args.iter().position(|a| a == "--ca-file").expect("--ca-file");
            assert_eq!(args[at + 1], "/b/c/files/ca.pem", "{command}");
            assert!(!args.iter().any(|a| a.contains("/here/")), "{command}: {args:?}");
        }
    }
}
