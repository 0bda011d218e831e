//! `restore`: put back the variant repo files a workspace backed up.

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::flags;
use crate::variant::journal::{Backups, Plan};
use crate::workflow::Workspace;

impl flags::Restore {
    pub(crate) fn run(self, _sh: &Shell) -> Result<ExitCode> {
        // A restore half-done is finished by the next one; a signal must not cut it short.
        crate::signals::install()?;
        let ws = Workspace::new(&self.workspace);
        let _lock = ws.lock()?;
        if let Some(record) = crate::remote::record(&ws.dir)? {
            return crate::remote::restore_there(&record, &ws.dir, self.ssh_config, self.force);
        }
        // A tool a killed run left running could rewrite a file after it is put back.
        ws.stop_orphans()?;
        let done = Backups::new(&ws.dir).restore(self.force)?;
        for (name, plan) in done {
            let what = match plan {
                Plan::Restore => "restored",
                Plan::Remove => "removed (it did not exist before)",
                _ => "unchanged",
            };
            println!("{name}: {what}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
