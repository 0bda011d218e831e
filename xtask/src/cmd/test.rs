//! `test`: this xtask's own test suite, from a fresh machine. Checks what the suite needs
//! (installing what is missing with `--install`), builds the registry test image, then runs
//! `cargo nextest run --workspace` in the xtask's workspace, its exit status passed through.

use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::prerequisites::{self, Prerequisite};
use crate::{flags, project, ui};

impl flags::Test {
    pub(crate) fn run(self, _sh: &Shell) -> Result<ExitCode> {
        let mut missing = prerequisites::missing(&prerequisites::ALL, prerequisites::present);
        if !missing.is_empty() {
            report(&missing);
            if !self.install {
                bail!(
                    "the tests need {}: install as listed, or run `cargo xtask test --install` (Debian and \
                     Ubuntu: apt-get, and cargo install)",
                    names(&missing)
                );
            }
            prerequisites::install(&prerequisites::install_plan(&missing))?;
            missing = prerequisites::missing(&prerequisites::ALL, prerequisites::present);
            if !missing.is_empty() {
                report(&missing);
                bail!("still missing after installing: {}", names(&missing));
            }
        }
        ui::step(format!(
            "all {} prerequisites of the tests are here",
            prerequisites::ALL.len()
        ));
        let workspace = project::xtask_workspace();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry-image/build.sh");
        ui::step(format!("bash {}", script.display()));
        let status = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", script.display()))?;
        if !status.success() {
            bail!(
                "{} failed ({status}): the docker backend tests need its image",
                script.display()
            );
        }
        let argv = nextest_argv(&self.nextest_args);
        ui::step(format!("cargo {} (in {})", argv.join(" "), workspace.display()));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(&cargo)
            .args(&argv)
            .current_dir(&workspace)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", cargo.to_string_lossy()))?;
        Ok(match status.code() {
            Some(0) => ExitCode::SUCCESS,
            code => ExitCode::from(code.map_or(1, |c| c.clamp(1, 255) as u8)),
        })
    }
}

fn names(missing: &[Prerequisite]) -> String {
    missing.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

/// Each missing prerequisite, what the tests use it for, and the command that installs it.
fn report(missing: &[Prerequisite]) {
    for p in missing {
        ui::warn(format!("missing {}, for {}: {}", p.name, p.why, p.install.remedy()));
    }
}

/// `nextest run --workspace`, then whatever was given after `--`.
fn nextest_argv(extra: &[String]) -> Vec<String> {
    ["nextest", "run", "--workspace"]
        .into_iter()
        .map(String::from)
        .chain(extra.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn extra_arguments_go_to_nextest() {
        assert_eq!(super::nextest_argv(&[]), ["nextest", "run", "--workspace"]);
        let extra = ["--no-fail-fast".to_string(), "-E".into(), "binary(kit)".into()];
        assert_eq!(
            super::nextest_argv(&extra),
            ["nextest", "run", "--workspace", "--no-fail-fast", "-E", "binary(kit)"]
        );
    }
}
