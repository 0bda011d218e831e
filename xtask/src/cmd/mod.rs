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
