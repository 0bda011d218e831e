//! What adoption puts into a repo: this xtask's crate and phase files, its manifest as its own
//! workspace, its lock, the alias and the ignore files; every file with its bytes and mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::edits;

/// One file of the xtask as it goes into a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct File {
    pub(crate) bytes: Vec<u8>,
    pub(crate) executable: bool,
}

/// Every file adoption puts into a repo, by path relative to the repo.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) files: BTreeMap<PathBuf, File>,
}

impl Source {
    /// This xtask: the crate it was built from and the `phases/` beside it.
    pub(crate) fn current() -> Result<Source> {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let checkout = crate_dir.parent().unwrap_or(crate_dir);
        Source::read(crate_dir, &checkout.join("phases"))
    }

    /// The files of the crate at `crate_dir` and of `phases_dir`. When the crate is a member of
    /// its checkout's workspace, its manifest becomes its own workspace (with that workspace's
    /// profiles) and the workspace's `Cargo.lock` goes along; when it is its own workspace
    /// already (an adopted copy), both are taken as they are.
    pub(crate) fn read(crate_dir: &Path, phases_dir: &Path) -> Result<Source> {
        let manifest = fs_err::read_to_string(crate_dir.join("Cargo.toml"))?;
        let own = crate_dir.join("Cargo.lock");
        let (manifest, lock) = if own.is_file() {
            (manifest, fs_err::read(own)?)
        } else {
            let root = crate_dir.parent().context("the xtask crate has no parent directory")?;
            let root_manifest = fs_err::read_to_string(root.join("Cargo.toml"))?;
            let manifest = edits::own_workspace_manifest(&manifest, &root_manifest)?;
            (manifest, fs_err::read(root.join("Cargo.lock"))?)
        };
        let mut files = BTreeMap::new();
        let skip = ["target", "Cargo.toml", "Cargo.lock", ".gitignore"];
        walk(crate_dir, Path::new("xtask"), &skip, &mut files)?;
        walk(phases_dir, Path::new("phases"), &[], &mut files)?;
        let mut put = |path: &str, bytes: Vec<u8>| {
            files.insert(
                PathBuf::from(path),
                File {
                    bytes,
                    executable: false,
                },
            )
        };
        put("xtask/Cargo.toml", manifest.into_bytes());
        put("xtask/Cargo.lock", lock);
        put("xtask/.gitignore", edits::CRATE_GITIGNORE.into());
        put(".cargo/config.toml", edits::cargo_config().into_bytes());
        put("planning/.gitignore", edits::PLANNING_GITIGNORE.into());
        Ok(Source { files })
    }
}

/// Adds every file under `dir` as `prefix/<relative path>`, leaving out the top-level names in
/// `skip`.
pub(super) fn walk(dir: &Path, prefix: &Path, skip: &[&str], out: &mut BTreeMap<PathBuf, File>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let path = entry.path();
        let meta = fs_err::metadata(&path)?;
        if meta.is_dir() {
            walk(&path, &prefix.join(&name), &[], out)?;
        } else if meta.is_file() {
            out.insert(
                prefix.join(&name),
                File {
                    bytes: fs_err::read(&path)?,
                    executable: meta.permissions().mode() & 0o111 != 0,
                },
            );
        }
    }
    Ok(())
}
