//! smolvm microVMs: preflight, argv builders and the operations `sandbox` and `--in-vm` use.

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

pub fn run_in_vm(sh: &Shell, xtask_args: &[String]) -> Result<ExitCode> {
    let _ = (sh, xtask_args);
    anyhow::bail!("--in-vm is not built yet")
}
