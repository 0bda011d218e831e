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

    /// Subcommands' arguments are deferred (built only for the command used: `next-step` no
    /// longer builds every other command's arguments). Built that late, a flattened argument
    /// struct's doc comment would replace the command's own description in its help.
    #[test]
    fn every_command_helps_with_its_own_description() {
        use super::flags::Xtask;
        use clap::Parser;
        fn walk(cmd: &clap::Command, path: &mut Vec<String>, checked: &mut usize) {
            // clap's own `help` subcommand has no `-h`.
            for sub in cmd.get_subcommands().filter(|sub| sub.get_name() != "help") {
                path.push(sub.get_name().to_string());
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                let mut argv = vec!["cargo xtask".to_string()];
                argv.extend(path.iter().cloned());
                argv.push("-h".to_string());
                let help = Xtask::try_parse_from(&argv).unwrap_err().to_string();
                assert!(!about.is_empty(), "`{}` has no description", path.join(" "));
                assert_eq!(
                    help.lines().next(),
                    Some(about.as_str()),
                    "help of `{}`",
                    path.join(" ")
                );
                *checked += 1;
                // Its own subcommands are deferred too: build it to see them.
                let mut built = sub.clone();
                built.build();
                walk(&built, path, checked);
                path.pop();
            }
        }
        let (mut path, mut checked) = (Vec::new(), 0);
        walk(&Xtask::command(), &mut path, &mut checked);
        assert!(checked > 20, "only {checked} commands found");
    }
}
