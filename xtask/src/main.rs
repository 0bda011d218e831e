//! `cargo xtask`: local kit and variant builds for Bottlerocket. This file only dispatches.

// The print macros of std panic when stdout or stderr is a closed pipe (`cargo xtask variant |
// head`), which would abort a run half-way with the variant repo still edited. These replace them
// in the whole crate (they are defined before any module): what cannot be written is dropped.
macro_rules! eprintln {
    () => {{ let _ = std::io::Write::write_all(&mut std::io::stderr(), b"\n"); }};
    ($($arg:tt)+) => {{ let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("{}\n", format_args!($($arg)+))); }};
}
macro_rules! eprint {
    ($($arg:tt)+) => {{ let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!($($arg)+)); }};
}
macro_rules! println {
    () => {{ let _ = std::io::Write::write_all(&mut std::io::stdout(), b"\n"); }};
    ($($arg:tt)+) => {{ let _ = std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{}\n", format_args!($($arg)+))); }};
}
macro_rules! print {
    ($($arg:tt)+) => {{ let _ = std::io::Write::write_fmt(&mut std::io::stdout(), format_args!($($arg)+)); }};
}

mod adopt;
mod arch;
mod cmd;
mod docker_engine;
mod fault;
mod fingerprint;
mod flags;
mod fsx;
mod git;
mod image;
mod kit;
mod oci;
mod orchestrate;
mod prerequisites;
mod problems;
mod process;
mod project;
mod protocol;
mod registry;
mod remote;
mod repo_lock;
mod signals;
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
    fault::arm(args.global.test_crash_at);
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
        flags::Cmd::Adopt(cmd) => cmd.run(&sh),
        flags::Cmd::Test(cmd) => cmd.run(&sh),
    };
    // A run a signal ended exits 128 + the signal, once it has cleaned up.
    let interrupted = signals::exit_code();
    match result {
        Ok(code) => interrupted.map_or(code, ExitCode::from),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(interrupted.unwrap_or(1))
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
