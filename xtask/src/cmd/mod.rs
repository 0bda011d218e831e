//! One file per command, each `impl flags::X { fn run(self, sh: &Shell) -> Result<ExitCode> }`.

mod bench;
mod build_kit;
mod next_step;
mod phase;
mod registry;
mod restore;
mod sandbox;
mod status;
mod variant;

/// Our own command line, without `flag`: what `--in-vm` re-runs inside the machine.
fn args_without(flag: &str) -> Vec<String> {
    std::env::args().skip(1).filter(|a| a != flag).collect()
}
