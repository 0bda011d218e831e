//! The few git facts the workflows need, read through the one Shell.

use std::path::Path;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::process;

/// The build id in artifact names: `git describe --always --dirty --exclude '*'`, i.e. the
/// short commit, with `-dirty` when tracked files differ from it. `abbrev` is the `--abbrev=N`
/// the build passes (twoliter since 0.7.3 passes 8); without it the length is git's default,
/// which grows with the repo (7 in a small one) and follows `core.abbrev`.
pub(crate) fn build_id(sh: &Shell, repo: &Path, abbrev: Option<u32>) -> Result<String> {
    let _dir = sh.push_dir(repo);
    let abbrev = abbrev.map(|n| format!("--abbrev={n}"));
    process::read(cmd!(sh, "git describe --always --dirty --exclude * {abbrev...}"))
        .with_context(|| format!("cannot read the build id of {} (is it a git checkout?)", repo.display()))
}

/// The command [`build_id`] runs, as a person would type it.
pub(crate) fn build_id_command(abbrev: Option<u32>) -> String {
    let mut command = "git describe --always --dirty --exclude '*'".to_string();
    if let Some(n) = abbrev {
        command.push_str(&format!(" --abbrev={n}"));
    }
    command
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

/// Whether `repo` has uncommitted changes, tracked or untracked (ignored files aside).
pub(crate) fn is_dirty(sh: &Shell, repo: &Path) -> Result<bool> {
    crate::tools::require("git", crate::tools::GIT_REMEDY)?;
    let status = process::read(cmd!(sh, "git -C {repo} status --porcelain"))
        .with_context(|| format!("{} is not a git checkout", repo.display()))?;
    Ok(!status.is_empty())
}

/// Writes a git bundle of `refs` of `repo` (e.g. `HEAD --all`, or `HEAD ^<commit>` for only
/// what a holder of `<commit>` lacks) to `dest`.
pub(crate) fn bundle(sh: &Shell, repo: &Path, dest: &Path, refs: &[&str]) -> Result<()> {
    crate::tools::require("git", crate::tools::GIT_REMEDY)?;
    process::read(cmd!(sh, "git -C {repo} bundle create --quiet {dest} {refs...}"))
        .with_context(|| format!("cannot bundle {}: commit something first", repo.display()))?;
    Ok(())
}

/// The commit HEAD of `repo` is at.
pub(crate) fn head(sh: &Shell, repo: &Path) -> Result<String> {
    let head = "HEAD^{commit}";
    process::read(cmd!(sh, "git -C {repo} rev-parse --verify {head}"))
        .with_context(|| format!("{} has no commit yet: commit something first", repo.display()))
}

/// Whether `repo` has `commit`.
pub(crate) fn has_commit(sh: &Shell, repo: &Path, commit: &str) -> bool {
    let object = format!("{commit}^{{commit}}");
    cmd!(sh, "git -C {repo} cat-file -e {object}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// What the working tree of `repo` changes in tracked files, staged or not, as a binary patch
/// against HEAD (empty when nothing changed).
pub(crate) fn diff_against_head(sh: &Shell, repo: &Path) -> Result<Vec<u8>> {
    let output = cmd!(sh, "git -C {repo} diff --binary --no-color --no-ext-diff HEAD")
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| format!("cannot run git diff in {}", repo.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "`git diff HEAD` failed in {}: {}",
            repo.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

/// The untracked files of `repo` that git does not ignore, relative to it.
pub(crate) fn untracked(sh: &Shell, repo: &Path) -> Result<Vec<std::path::PathBuf>> {
    let listed = process::read(cmd!(sh, "git -C {repo} ls-files -z --others --exclude-standard"))?;
    Ok(listed
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .collect())
}
