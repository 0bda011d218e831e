//! One owner per repo: a kit or variant repo is worked on by one xtask process at a time, and a
//! variant repo holds the edits of one workspace at a time.
//!
//! - [`RepoLock`]: an exclusive lock held for a whole run (`build-kit`, `variant`, a phase
//!   command). A second run is refused at once, naming the holder (workspace, pid, start time).
//!   The lock dies with its process, so a killed run's lock is taken over by the next one.
//! - [`claim`]: the workspace whose journal holds a variant repo's originals. Another workspace
//!   must not back up those edits as "originals"; it is refused until the owner restores, and
//!   takes over when the owner's journal is gone.
//!
//! Both live in the repo's git directory (`.git/xtask/`), which is never tracked and survives
//! reboots; outside a git checkout, in the system temp directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsx;

/// Who holds a repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub(crate) workspace: PathBuf,
    pub(crate) pid: u32,
    pub(crate) started_at: u64,
}

impl Holder {
    pub(crate) fn this_process(workspace: &Path) -> Holder {
        Holder {
            workspace: workspace.to_path_buf(),
            pid: std::process::id(),
            started_at: fsx::now_unix(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "workspace {} (pid {}, since {})",
            self.workspace.display(),
            self.pid,
            crate::ui::utc(std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.started_at))
        )
    }
}

/// Where the xtask keeps what it knows about a repo.
fn state_dir(repo: &Path) -> PathBuf {
    let git = repo.join(".git");
    if git.is_dir() {
        return git.join("xtask");
    }
    let canonical = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf());
    let hash = fsx::sha256_hex(canonical.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("xtask-repo-{}", &hash[..16]))
}

/// Repos this process holds: a run that holds its repo may run phases that take it again.
static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Held while a run works on a repo; released when dropped or when the process dies.
#[derive(Debug)]
pub(crate) struct RepoLock {
    /// None when this process already held the repo.
    _lock: Option<fsx::Lock>,
    repo: Option<PathBuf>,
}

impl RepoLock {
    /// Takes the repo for `workspace`, or fails naming who has it.
    pub(crate) fn acquire(repo: &Path, workspace: &Path) -> Result<RepoLock> {
        let key = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf());
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if held.contains(&key) {
            return Ok(RepoLock {
                _lock: None,
                repo: None,
            });
        }
        let dir = state_dir(repo);
        fs_err::create_dir_all(&dir)?;
        let holder_path = dir.join("holder.json");
        let lock = match fsx::Lock::try_acquire(&dir.join("run.lock"))? {
            Some(lock) => lock,
            None => {
                let holder: Option<Holder> = fsx::read_json(&holder_path).ok().flatten();
                let who = holder.map_or_else(|| "another xtask process".to_string(), |h| h.describe());
                bail!(
                    "{} is in use by {who}: wait for that run to end (or stop it), then run this again",
                    repo.display()
                );
            }
        };
        fsx::write_json_state(&holder_path, &Holder::this_process(workspace))?;
        held.insert(key.clone());
        Ok(RepoLock {
            _lock: Some(lock),
            repo: Some(key),
        })
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if let Some(repo) = &self.repo {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).remove(repo);
        }
    }
}

/// Makes `workspace` the owner of the variant repo's edits, unless another workspace still
/// holds them: that one is named, with how to give them back. An owner whose journal is gone
/// (restored, or its workspace deleted) has nothing left to protect, and is taken over.
pub(crate) fn claim(repo: &Path, workspace: &Path, owns: impl Fn(&Path) -> bool) -> Result<()> {
    let dir = state_dir(repo);
    let path = dir.join("owner.json");
    if let Some(owner) = fsx::read_json::<Holder>(&path).ok().flatten() {
        if owner.workspace != workspace && owns(&owner.workspace) {
            bail!(
                "{} holds the edits of {}: put its files back first (`cargo xtask restore {}`), \
                 or keep working in that workspace",
                repo.display(),
                owner.describe(),
                owner.workspace.display()
            );
        }
    }
    fs_err::create_dir_all(&dir)?;
    fsx::write_json_atomic(&path, &Holder::this_process(workspace)).context("cannot record the repo's owner")
}

/// Gives the repo back once `workspace` restored it.
pub(crate) fn release(repo: &Path, workspace: &Path) -> Result<()> {
    let path = state_dir(repo).join("owner.json");
    if fsx::read_json::<Holder>(&path)
        .ok()
        .flatten()
        .is_some_and(|o| o.workspace == workspace)
    {
        fs_err::remove_file(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_naming_the_first() {
        let repo = tempfile::tempdir().unwrap();
        fs_err::create_dir(repo.path().join(".git")).unwrap();
        let held = RepoLock::acquire(repo.path(), Path::new("/ws/one")).unwrap();
        // The same process may take it again (a run and the phases it runs).
        let again = RepoLock::acquire(repo.path(), Path::new("/ws/one")).unwrap();
        drop(again);
        // Another process is refused: simulated by the lock file taken through another handle.
        HELD.lock().unwrap().clear();
        let err = RepoLock::acquire(repo.path(), Path::new("/ws/two"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/ws/one") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        RepoLock::acquire(repo.path(), Path::new("/ws/two")).unwrap();
    }

    #[test]
    fn edits_have_one_owner_until_given_back() {
        let repo = tempfile::tempdir().unwrap();
        fs_err::create_dir(repo.path().join(".git")).unwrap();
        let (one, two) = (Path::new("/ws/one"), Path::new("/ws/two"));
        claim(repo.path(), one, |_| true).unwrap();
        claim(repo.path(), one, |_| true).unwrap();
        let err = claim(repo.path(), two, |_| true).unwrap_err().to_string();
        assert!(err.contains("cargo xtask restore /ws/one"), "{err}");
        // The owner's journal is gone: nothing to protect, taken over.
        claim(repo.path(), two, |_| false).unwrap();
        release(repo.path(), one).unwrap();
        assert!(claim(repo.path(), one, |_| true).is_err(), "only the owner releases");
        release(repo.path(), two).unwrap();
        claim(repo.path(), one, |_| true).unwrap();
    }
}
