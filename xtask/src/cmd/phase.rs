//! `phase`: one phase of a workspace's workflow, run deterministically.

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::flags;
use crate::orchestrate::Subject;
use crate::workflow::record::run_named;
use crate::workflow::Workspace;

impl flags::Phase {
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        crate::signals::install()?;
        let ws = Workspace::new(&self.workspace);
        super::claim_local(&ws.dir)?;
        match Subject::load(&ws)? {
            Subject::Kit(kit) => run_named(sh, &kit, &self.phase)?,
            Subject::Variant(variant) => run_named(sh, &variant, &self.phase)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}
