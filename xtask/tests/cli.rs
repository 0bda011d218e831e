//! The command line as a user meets it.

mod support;

#[test]
fn help_lists_every_command() {
    let out = support::run_ok(std::process::Command::new(support::xtask_bin()).arg("--help"));
    for cmd in [
        "build-kit",
        "variant",
        "phase",
        "next-step",
        "status",
        "restore",
        "registry",
        "sandbox",
        "bench",
        "adopt",
    ] {
        assert!(out.contains(cmd), "--help does not mention {cmd}:\n{out}");
    }
}
