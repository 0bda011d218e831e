//! `cargo xtask sandbox up|exec|status|down`: agent sandboxes in smolvm machines.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::flags;
use crate::smolvm::{self, argv, limits, Smolvm};
use crate::ui;

impl flags::Sandbox {
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        match self.cmd {
            flags::SandboxCmd::Up(cmd) => cmd.run(sh),
            flags::SandboxCmd::Exec(cmd) => cmd.run(sh),
            flags::SandboxCmd::Status(cmd) => cmd.run(sh),
            flags::SandboxCmd::Down(cmd) => cmd.down(sh),
        }
    }
}

impl flags::SandboxUp {
    fn run(self, sh: &Shell) -> Result<ExitCode> {
        let opts = smolvm::UpOptions {
            name: self.name,
            image: self.image,
            no_net: self.no_net,
            skills: self.skills,
            cpus: self.cpus,
            mem_mib: self.mem,
            skills_dir: self.skills_dir,
        };
        smolvm::up(sh, &self.smolvm.engine(), &opts)?;
        Ok(ExitCode::SUCCESS)
    }
}

fn require_machine(sh: &Shell, vm: &Smolvm, name: &str) -> Result<serde_json::Value> {
    match vm.status(sh, name)? {
        Some(status) => Ok(status),
        None => bail!("machine {name} does not exist: create it with `cargo xtask sandbox up --name {name}`"),
    }
}

impl flags::SandboxExec {
    fn run(self, sh: &Shell) -> Result<ExitCode> {
        limits::check_name(&self.name)?;
        let vm = Smolvm::preflight(sh, &self.smolvm.engine())?;
        // Checked first, so that smolvm's own "not found" exit 1 is not taken for the command's.
        require_machine(sh, &vm, &self.name)?;
        let opts = argv::ExecOpts {
            stream: true,
            workdir: self.workdir,
            ..argv::ExecOpts::default()
        };
        vm.stream(&argv::exec(&self.name, &opts, &self.argv))
    }
}

impl flags::SmolvmArgs {
    pub(crate) fn engine(&self) -> smolvm::Engine {
        smolvm::Engine {
            bin: self.bin.clone(),
            kvm_device: self.kvm_device.clone(),
            ready: std::time::Duration::from_secs(self.ready_secs),
        }
    }
}

/// The machine's state as smolvm words it, from its status document.
fn state_of(status: &serde_json::Value) -> &str {
    ["state", "status"]
        .iter()
        .find_map(|key| status.get(key).and_then(|v| v.as_str()))
        .unwrap_or("present")
}

impl flags::SandboxStatus {
    fn run(self, sh: &Shell) -> Result<ExitCode> {
        limits::check_name(&self.name)?;
        let vm = Smolvm::preflight(sh, &self.smolvm.engine())?;
        let Some(status) = vm.status(sh, &self.name)? else {
            if self.json {
                println!("{}", serde_json::json!({ "name": self.name, "state": "absent" }));
            }
            ui::info(format!(
                "machine {0} does not exist (`cargo xtask sandbox up --name {0}` creates it)",
                self.name
            ));
            return Ok(ExitCode::from(2));
        };
        if self.json {
            println!("{status}");
        } else {
            println!("{}: {}", self.name, state_of(&status));
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl flags::SandboxName {
    /// Stops and deletes the machine, then checks that it is really gone.
    fn down(self, sh: &Shell) -> Result<ExitCode> {
        limits::check_name(&self.name)?;
        let vm = Smolvm::preflight(sh, &self.smolvm.engine())?;
        if vm.status(sh, &self.name)?.is_none() {
            ui::info(format!("machine {} does not exist: nothing to do", self.name));
            return Ok(ExitCode::SUCCESS);
        }
        ui::step(format!("stopping machine {}", self.name));
        if let Err(err) = vm.run(sh, &argv::stop(&self.name)) {
            ui::warn(format!("{err:#}; deleting it anyway"));
        }
        vm.run(sh, &argv::delete(&self.name))
            .with_context(|| format!("cannot delete machine {}", self.name))?;
        if vm.status(sh, &self.name)?.is_some() {
            bail!(
                "machine {0} still exists after `smolvm machine delete --name {0} -f`: delete it by hand",
                self.name
            );
        }
        ui::step(format!("machine {} deleted", self.name));
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_names_the_default_image() {
        use clap::Parser;
        // Subcommands are built when used (deferred): ask for the help as a user does.
        let help = flags::Xtask::try_parse_from(["cargo xtask", "sandbox", "up", "--help"])
            .unwrap_err()
            .to_string();
        assert!(
            help.contains(&format!("The machine runs {} unless --image", smolvm::DEFAULT_IMAGE))
                && help.contains(&format!("[default: {}]", smolvm::DEFAULT_IMAGE)),
            "{help}"
        );
    }

    #[test]
    fn state_words() {
        assert_eq!(state_of(&serde_json::json!({ "state": "running" })), "running");
        assert_eq!(state_of(&serde_json::json!({ "status": "stopped" })), "stopped");
        assert_eq!(state_of(&serde_json::json!({ "name": "x" })), "present");
    }
}
