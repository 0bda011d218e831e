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
        "test",
    ] {
        assert!(out.contains(cmd), "--help does not mention {cmd}:\n{out}");
    }
}

/// `test` on a machine without what the suite needs: each missing tool is named with the
/// command that installs it, and nothing is run or installed.
#[test]
fn test_names_what_is_missing_with_the_command_that_installs_it() {
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/usr/bin/git", bin.path().join("git")).unwrap();
    let run = |args: &[&str]| {
        support::run(
            std::process::Command::new(support::xtask_bin())
                .arg("test")
                .args(args)
                .env("PATH", bin.path()),
        )
    };
    let output = run(&[]);
    assert_eq!(output.status.code(), Some(1));
    let err = support::stderr(&output);
    for needle in [
        "missing cargo-nextest, for running the suite: cargo install --locked cargo-nextest",
        "missing docker-registry, for",
        "apt-get install docker-registry",
        "missing sgdisk, for checking GPT disks independently: apt-get install gdisk",
        "apt-get install lz4",
        "apt-get install iproute2",
        "missing Docker daemon",
        "run `cargo xtask test --install`",
    ] {
        assert!(err.contains(needle), "{needle}:\n{err}");
    }
    assert!(!err.contains("missing git"), "git is on PATH:\n{err}");
    assert!(!err.contains("nextest run"), "the suite is not run:\n{err}");
    // --install, where apt-get cannot be run: the packages to install by hand, nothing installed.
    let output = run(&["--install"]);
    assert_eq!(output.status.code(), Some(1));
    let err = support::stderr(&output);
    assert!(
        err.contains("install them by hand: make, gcc, python3, docker-registry, lz4, gdisk, iproute2"),
        "{err}"
    );
}
