//! `cargo xtask`: local kit and variant builds for Bottlerocket. This file only dispatches.

mod arch;
mod cmd;
mod fingerprint;
mod flags;
mod fsx;
mod git;
mod image;
mod kit;
mod oci;
mod orchestrate;
mod problems;
mod process;
mod project;
mod protocol;
mod registry;
mod smolvm;
mod tar;
mod tools;
mod twoliter;
mod ui;
mod variant;
mod workflow;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = flags::Xtask::parse();
    project::init(project::Settings {
        root: args.global.root,
        forest_root: args.global.forest_root,
        registry_image: args.global.registry_image.filter(|image| !image.is_empty()),
    });
    let sh = match xshell::Shell::new() {
        Ok(sh) => sh,
        Err(err) => {
            eprintln!("error: cannot start a shell: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.cmd {
        flags::Cmd::BuildKit(cmd) => cmd.run(&sh),
        flags::Cmd::Variant(cmd) => cmd.run(&sh),
        flags::Cmd::Phase(cmd) => cmd.run(&sh),
        flags::Cmd::NextStep(cmd) => cmd.run(&sh),
        flags::Cmd::Status(cmd) => cmd.run(&sh),
        flags::Cmd::Restore(cmd) => cmd.run(&sh),
        flags::Cmd::Registry(cmd) => cmd.run(&sh),
        flags::Cmd::Sandbox(cmd) => cmd.run(&sh),
        flags::Cmd::Images(cmd) => cmd.run(&sh),
        flags::Cmd::Bench(cmd) => cmd.run(&sh),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::flags::Xtask::command().debug_assert();
    }
}
