use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::flags;

impl flags::Variant {
    pub fn run(self, sh: &Shell) -> Result<ExitCode> {
        let _ = sh;
        anyhow::bail!("not built yet")
    }
}
