//! Where things are: the checkout holding the xtask, its planning/ directory, a forest checkout.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The checkout that holds this xtask. `XTASK_ROOT` overrides it, so that the same binary can
/// act for another checkout (tests use it to run inside a fixture repo).
pub fn root() -> PathBuf {
    if let Some(root) = std::env::var_os("XTASK_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(root);
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The phase instruction files: `phases/` of the root when it has them (an adopted repo copies
/// them in), else those this xtask was built with.
pub fn phases_dir() -> PathBuf {
    let here = root().join("phases");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("phases"))
        .unwrap_or(here)
}

/// `planning/` under the root: workspaces and per-checkout state, ignored by git.
pub fn planning_dir() -> PathBuf {
    root().join("planning")
}

/// `$FOREST_ROOT`, when set: kit repos under `kits/<kit>/`, the variant repo at `bottlerocket/`.
pub fn forest_root() -> Option<PathBuf> {
    std::env::var_os("FOREST_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A name twoliter accepts for kits, vendors and variants: non-empty, `A-Z a-z 0-9 _ -` only.
/// Also what keeps names safe to use as path components.
pub fn check_identifier(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("{what} is empty: give a name made of letters, digits, `-` and `_`");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        bail!(
            "{what} `{name}` contains `{bad}`: twoliter names may only contain letters, digits, \
             `-` and `_`"
        );
    }
    Ok(())
}

/// A path given on the command line, made absolute against the current directory.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        check_identifier("kit", "bottlerocket-core-kit").unwrap();
        check_identifier("kit", "my_kit2").unwrap();
        for bad in ["", "a/b", "..", "a b", "kit.v1", "ü"] {
            let err = check_identifier("kit", bad).unwrap_err().to_string();
            assert!(err.starts_with("kit"), "{err}");
        }
    }
}
