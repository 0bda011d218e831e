//! Every external program is found here, with the remedy to give when it is missing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Finds `name` on `PATH` (as the process sees it).
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds `name` on `PATH` or fails with `remedy`.
pub(crate) fn require(name: &str, remedy: &str) -> Result<PathBuf> {
    match which(name) {
        Some(path) => Ok(path),
        None => bail!("`{name}` is not on PATH: {remedy}"),
    }
}

pub(crate) const DOCKER_REMEDY: &str = "install Docker Engine and start its daemon \
     (https://docs.docker.com/engine/install/), or use `--backend native`";
pub(crate) const GIT_REMEDY: &str = "install git (`apt-get install git`)";
pub(crate) const CARGO_MAKE_REMEDY: &str = "install it with `cargo install cargo-make`";

/// Where a repo's entry point installs twoliter: `make prep` in a kit repo, `cargo make
/// install-twoliter` in a variant repo.
pub(crate) const REPO_TWOLITER: &str = "tools/twoliter/twoliter";

/// The twoliter to run where the xtask calls twoliter itself (`twoliter update`, a kit repo
/// without a Makefile): the repo's own `tools/twoliter/twoliter` (which its entry point
/// installs, at the version the repo pins), else twoliter on `PATH`. `install` says how to get
/// one when there is neither.
pub(crate) fn twoliter(repo: &Path, install: &str) -> Result<PathBuf> {
    let installed = repo.join(REPO_TWOLITER);
    if is_executable(&installed) {
        return Ok(installed);
    }
    if let Some(path) = which("twoliter") {
        return Ok(path);
    }
    bail!(
        "twoliter is not installed: there is no {} and no twoliter on PATH; {install}",
        installed.display()
    )
}

/// How to install twoliter when a repo gives no way of its own.
pub(crate) fn twoliter_remedy(repo: &Path) -> String {
    format!(
        "install the twoliter release the repo expects (https://github.com/bottlerocket-os/twoliter/releases) \
         as {}, or put it on PATH",
        repo.join(REPO_TWOLITER).display()
    )
}
