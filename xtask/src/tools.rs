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

/// The repo's own twoliter, as `make prep` installs it: `<repo>/tools/twoliter/twoliter`.
pub(crate) fn twoliter(repo: &Path) -> Result<PathBuf> {
    let path = repo.join("tools/twoliter/twoliter");
    if is_executable(&path) {
        return Ok(path);
    }
    bail!(
        "twoliter is not installed in {}: run `make prep` in {} (it installs \
         tools/twoliter/twoliter), then run this again",
        path.display(),
        repo.display()
    )
}
