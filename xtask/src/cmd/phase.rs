use std::process::ExitCode;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::flags;
use crate::phases::{self, Ctx};
use crate::workflow::workspace::Workspace;

impl flags::Phase {
    pub fn run(self, sh: &Shell) -> Result<ExitCode> {
        let ws = Workspace::new(&self.workspace);
        let ctx = Ctx::load(&ws)?;
        let workflow = ctx.workflow();
        let Some(phase) = workflow.phase(&self.phase) else {
            let names: Vec<&str> = workflow.phases().iter().map(|p| p.id).collect();
            bail!(
                "`{}` is not a phase of the {} workflow: use one of {}",
                self.phase,
                workflow.name(),
                names.join(", ")
            );
        };
        crate::ui::step(format!(
            "{} ({} workflow) in {}",
            phase.title,
            workflow.name(),
            ws.dir.display()
        ));
        phases::run(sh, &ctx, phase)?;
        Ok(ExitCode::SUCCESS)
    }
}
