//! The few git facts the workflows need, read through the one Shell.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::process;

/// The build id twoliter puts in artifact names: `git describe --always --dirty --exclude '*'`,
/// i.e. the short commit, with `-dirty` when tracked files differ from it.
pub(crate) fn build_id(sh: &Shell, repo: &Path) -> Result<String> {
    let _dir = sh.push_dir(repo);
    process::read(cmd!(sh, "git describe --always --dirty --exclude *"))
        .with_context(|| format!("cannot read the build id of {} (is it a git checkout?)", repo.display()))
}

/// Whether git ignores `path` in `repo` (false when `repo` is not a git checkout).
pub(crate) fn is_ignored(sh: &Shell, repo: &Path, path: &Path) -> bool {
    let _dir = sh.push_dir(repo);
    cmd!(sh, "git check-ignore -q {path}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// Whether `path` is tracked in `repo`.
pub(crate) fn is_tracked(sh: &Shell, repo: &Path, path: &Path) -> bool {
    let _dir = sh.push_dir(repo);
    cmd!(sh, "git ls-files --error-unmatch {path}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// The top of the checkout holding `dir`, if any.
pub(crate) fn toplevel(sh: &Shell, dir: &Path) -> Option<std::path::PathBuf> {
    let _dir = sh.push_dir(dir);
    let out = cmd!(sh, "git rev-parse --show-toplevel")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    Some(std::path::PathBuf::from(out.trim()))
}

/// Makes git ignore `pattern` through `.git/info/exclude`, which is never tracked, so that
/// files the xtask writes leave `git status` untouched without editing any tracked file.
pub(crate) fn exclude_locally(sh: &Shell, repo: &Path, pattern: &str) -> Result<()> {
    let _dir = sh.push_dir(repo);
    let path = process::read(cmd!(sh, "git rev-parse --git-path info/exclude"))?;
    let path = repo.join(path);
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    if existing.lines().any(|l| l.trim() == pattern) {
        return Ok(());
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(pattern);
    text.push('\n');
    crate::fsx::write_atomic(&path, text.as_bytes())
}
