//! `bench`: runs the benchmark harness (`xtask/benches/bench.rs`, a `cargo bench` target that
//! reuses the test fixtures) with the same cargo. Its table goes to stderr; with `--json`, the
//! one results object it prints is relayed on stdout.

use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{flags, project, ui};

/// The measurements the harness knows, for `--only`.
const NAMES: [&str; 5] = ["next-step", "pipeline", "validate", "noop", "build"];

impl flags::Bench {
    pub(crate) fn run(self, _sh: &Shell) -> Result<ExitCode> {
        for name in &self.only {
            if !NAMES.contains(&name.as_str()) {
                bail!("unknown benchmark `{name}`: use one of {}", NAMES.join(", "));
            }
        }
        if self.runs == 0 {
            bail!("--runs must be at least 1");
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(&cargo);
        cmd.args(["bench", "-p", "xtask", "--bench", "bench", "--"])
            .args(self.harness_args())
            .current_dir(project::xtask_workspace())
            .stdin(Stdio::null());
        // The harness's table and cargo's progress both go to our stderr; stdout is kept for
        // the one JSON object.
        if self.json {
            cmd.stdout(Stdio::piped());
        } else {
            let stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
            cmd.stdout(Stdio::from(stderr));
        }
        ui::step(format!(
            "cargo bench -p xtask --bench bench -- {}",
            self.harness_args().join(" ")
        ));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", cargo.to_string_lossy()))?;
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout.read_to_string(&mut out)?;
        }
        let status = child.wait()?;
        if self.json {
            let object = out.lines().rev().find(|l| l.trim_start().starts_with('{'));
            match object {
                Some(line) => println!("{}", line.trim()),
                None if status.success() => bail!("the benchmark harness printed no JSON object"),
                None => {}
            }
        }
        if status.success() {
            Ok(ExitCode::SUCCESS)
        } else {
            // The harness has said which targets were missed, or cargo why it could not run.
            Ok(ExitCode::from(status.code().map_or(1, |c| c.clamp(1, 255) as u8)))
        }
    }

    fn harness_args(&self) -> Vec<String> {
        let mut args = vec![
            "--runs".to_string(),
            self.runs.to_string(),
            "--image-mib".to_string(),
            self.image_mib.to_string(),
        ];
        if self.json {
            args.push("--json".to_string());
        }
        for name in &self.only {
            args.push("--only".to_string());
            args.push(name.clone());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_harness_gets_every_option() {
        let bench = crate::flags::Bench {
            json: true,
            runs: 3,
            image_mib: 512,
            only: vec!["validate".into(), "noop".into()],
        };
        assert_eq!(
            bench.harness_args().join(" "),
            "--runs 3 --image-mib 512 --json --only validate --only noop"
        );
    }
}
