//! The variant repo files the workflow edits (`Twoliter.toml`, `Twoliter.lock`,
//! `Twoliter.override`), journalled so that a kill at any moment, a signal or a full disk leaves
//! a state from which the originals come back without `--force`.
//!
//! - Before the first edit, each original is copied to `<workspace>/backups/` (or recorded as
//!   absent) with its SHA-256 and mode, and then `journal.json` is written: the originals are
//!   recorded once per workspace and never again from files the workflow itself changed.
//! - Before each write the journal records the SHA-256 of what is about to be written, durably;
//!   then the file is replaced atomically (through a symlink, to its target). Before a tool
//!   (`twoliter update`) rewrites a file, the journal says so, and what the tool left is recorded
//!   when it ends.
//! - A file holding its original, or anything the journal says the workflow wrote (or a tool was
//!   writing), is the workflow's to put back. Only other content, an edit by someone else, needs
//!   `--force`.
//! - Restoring first marks the journal `restoring`, writes every original back, checks them, then
//!   removes the journal and then the copies: a kill at any point leaves a journal whose restore
//!   the next run (or `restore`) completes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsx;

/// The files the variant workflow may change, relative to the variant repo.
pub(crate) const FILES: [&str; 3] = ["Twoliter.toml", "Twoliter.lock", "Twoliter.override"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    /// The repo may hold the workflow's edits.
    Active,
    /// The originals are being put back; a later run finishes it.
    Restoring,
}

/// A file as it was before the workflow touched it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Original {
    pub(crate) sha256: String,
    pub(crate) mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) name: String,
    /// None when the file did not exist.
    pub(crate) original: Option<Original>,
    /// SHA-256 of every content the workflow wrote or was about to write, oldest first.
    #[serde(default)]
    pub(crate) written: Vec<String>,
    /// A tool may be rewriting the file right now: whatever it holds came from the workflow.
    #[serde(default)]
    pub(crate) tool: bool,
}

/// The process that started the journal, named when another workspace wants the repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owner {
    pub(crate) workspace: PathBuf,
    pub(crate) pid: u32,
    pub(crate) started_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub(crate) repo: PathBuf,
    pub(crate) owner: Owner,
    pub(crate) state: State,
    pub(crate) entries: Vec<Entry>,
}

/// What `restore` did or would do to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Plan {
    /// Already as it was.
    Unchanged,
    /// Write the original back.
    Restore,
    /// Remove it: it did not exist before.
    Remove,
    /// Someone else changed it since the workflow did.
    Foreign,
}

/// Decides what to do with one file from its current SHA-256 (pure).
pub(crate) fn plan(entry: &Entry, current: Option<&str>) -> Plan {
    let original = entry.original.as_ref().map(|o| o.sha256.as_str());
    if current == original {
        return Plan::Unchanged;
    }
    let ours = entry.tool || current.is_none() || current.is_some_and(|c| entry.written.iter().any(|w| w == c));
    match (ours, &entry.original) {
        (false, _) => Plan::Foreign,
        (true, Some(_)) => Plan::Restore,
        (true, None) => Plan::Remove,
    }
}

/// The journal and backups of one workspace: `<workspace>/backups/`.
pub(crate) struct Backups {
    pub(crate) dir: PathBuf,
}

impl Backups {
    pub(crate) fn new(ws_dir: &Path) -> Backups {
        Backups {
            dir: ws_dir.join("backups"),
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("journal.json")
    }

    fn copy_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn journal(&self) -> Result<Option<Journal>> {
        fsx::read_json(&self.journal_path())
    }

    fn save(&self, journal: &Journal) -> Result<()> {
        fsx::write_json_atomic(&self.journal_path(), journal)?;
        fsx::sync_dir(&self.dir)
    }

    /// Records the originals unless this workspace already holds them; returns the journal. A
    /// journal of another repo, or a restore left half-done, are dealt with first.
    pub(crate) fn begin(&self, repo: &Path) -> Result<Journal> {
        if let Some(journal) = self.journal()? {
            if journal.repo != repo {
                bail!(
                    "{} holds the originals of {}, not {}: restore them first (`cargo xtask restore {}`) or use another workspace",
                    self.dir.display(),
                    journal.repo.display(),
                    repo.display(),
                    self.workspace().display()
                );
            }
            if journal.state == State::Active {
                return Ok(journal);
            }
            // A restore was cut short: finish it, then start afresh from the true originals.
            self.restore(false)?;
        }
        // Another workspace's edits are not originals: that workspace gives them back first.
        crate::repo_lock::claim(repo, &self.workspace(), |owner| {
            Backups::new(owner)
                .journal()
                .ok()
                .flatten()
                .is_some_and(|j| j.repo == repo)
        })?;
        fs_err::create_dir_all(&self.dir)?;
        let mut entries = Vec::new();
        for name in FILES {
            let path = target(repo, name)?;
            let original = match std::fs::read(&path) {
                Ok(bytes) => {
                    fsx::write_atomic(&self.copy_path(name), &bytes)?;
                    Some(Original {
                        sha256: fsx::sha256_hex(&bytes),
                        mode: fsx::mode(&path)?,
                    })
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(err).with_context(|| format!("cannot back up {}", path.display())),
            };
            entries.push(Entry {
                name: name.to_string(),
                original,
                written: Vec::new(),
                tool: false,
            });
        }
        let journal = Journal {
            repo: repo.to_path_buf(),
            owner: Owner {
                workspace: self.workspace(),
                pid: std::process::id(),
                started_at: fsx::now_unix(),
            },
            state: State::Active,
            entries,
        };
        // Written last: until it exists, nothing in the repo has been touched.
        self.save(&journal)?;
        Ok(journal)
    }

    fn workspace(&self) -> PathBuf {
        self.dir.parent().unwrap_or(&self.dir).to_path_buf()
    }

    fn change(&self, name: &str, edit: impl FnOnce(&mut Entry)) -> Result<Journal> {
        let mut journal = self
            .journal()?
            .context("the variant repo's originals were not recorded before changing it")?;
        let entry = journal
            .entries
            .iter_mut()
            .find(|e| e.name == name)
            .with_context(|| format!("{name} is not a file the workflow changes"))?;
        edit(entry);
        self.save(&journal)?;
        Ok(journal)
    }

    /// Writes `contents` to `name` in the repo: the intent first, durably, then the file,
    /// atomically, through a symlink to its target, keeping its mode.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> Result<()> {
        let digest = fsx::sha256_hex(contents);
        let journal = self.change(name, |entry| {
            if !entry.written.contains(&digest) {
                entry.written.push(digest.clone());
            }
        })?;
        let path = target(&journal.repo, name)?;
        fsx::write_atomic_with_temp_in(&path, contents, &self.dir)
    }

    /// Runs a tool that may rewrite `name` (e.g. `twoliter update` and the lock): the journal
    /// says so while it runs, and records what it left.
    pub(crate) fn tool_writes<T>(&self, name: &str, run: impl FnOnce() -> Result<T>) -> Result<T> {
        let journal = self.change(name, |entry| entry.tool = true)?;
        let outcome = run();
        let path = target(&journal.repo, name)?;
        let now = current_sha256(&path)?;
        self.change(name, |entry| {
            if let Some(now) = now {
                if entry.original.as_ref().map(|o| &o.sha256) != Some(&now) && !entry.written.contains(&now) {
                    entry.written.push(now);
                }
            }
            entry.tool = false;
        })?;
        outcome
    }

    /// Whether the journal holds the repo's originals and their restore has not begun.
    pub(crate) fn active(&self) -> Result<bool> {
        Ok(self.journal()?.is_some_and(|j| j.state == State::Active))
    }

    /// Puts every file back byte for byte (mode included), removing those that did not exist.
    /// Refuses, naming the files, when someone else changed them since the workflow did, unless
    /// `force`. Finishes a restore that was cut short. Returns what was done to each file; the
    /// journal and the copies are removed once everything is back.
    pub(crate) fn restore(&self, force: bool) -> Result<Vec<(String, Plan)>> {
        let mut journal = self.journal()?.with_context(|| {
            format!(
                "{} holds no backup: nothing to restore (the variant repo was not changed from this workspace)",
                self.dir.display()
            )
        })?;
        let mut plans = Vec::new();
        for entry in &journal.entries {
            let path = target(&journal.repo, &entry.name)?;
            plans.push((
                entry.clone(),
                path.clone(),
                plan(entry, current_sha256(&path)?.as_deref()),
            ));
        }
        let foreign: Vec<String> = plans
            .iter()
            .filter(|(_, _, p)| *p == Plan::Foreign)
            .map(|(_, path, _)| path.display().to_string())
            .collect();
        // A restore already under way was decided before: it is finished whatever is there.
        if !foreign.is_empty() && !force && journal.state == State::Active {
            bail!(
                "{} changed since this workspace last wrote {}: restoring would lose those changes; \
                 look at them, then run `cargo xtask restore {} --force` to put the originals back anyway",
                foreign.join(", "),
                if foreign.len() == 1 { "it" } else { "them" },
                self.workspace().display()
            );
        }
        if journal.state != State::Restoring {
            journal.state = State::Restoring;
            self.save(&journal)?;
        }
        let mut done = Vec::new();
        for (entry, path, plan) in plans {
            let action = match (plan, &entry.original) {
                (Plan::Unchanged, _) => Plan::Unchanged,
                (_, Some(original)) => {
                    let bytes = fs_err::read(self.copy_path(&entry.name))?;
                    fsx::write_atomic_with_temp_in(&path, &bytes, &self.dir)?;
                    fsx::set_mode(&path, original.mode)?;
                    Plan::Restore
                }
                (_, None) => {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => return Err(err).with_context(|| format!("cannot remove {}", path.display())),
                    }
                    crate::fault::point(&format!("{} removed", path.display()));
                    Plan::Remove
                }
            };
            done.push((entry.name.clone(), action));
        }
        for entry in &journal.entries {
            let path = target(&journal.repo, &entry.name)?;
            if current_sha256(&path)? != entry.original.as_ref().map(|o| o.sha256.clone()) {
                bail!(
                    "{} is still not byte-identical to its backup after restoring",
                    path.display()
                );
            }
            if let Some(dir) = path.parent() {
                fsx::sync_dir(dir)?;
            }
        }
        // The journal goes first: copies without a journal are leftovers a later run replaces.
        fs_err::remove_file(self.journal_path())?;
        crate::fault::point("journal removed, copies not yet");
        fs_err::remove_dir_all(&self.dir)?;
        crate::fault::point("copies removed");
        crate::repo_lock::release(&journal.repo, &self.workspace())?;
        Ok(done)
    }

    /// Finishes a restore a kill cut short; nothing to do otherwise.
    pub(crate) fn recover(&self) -> Result<bool> {
        match self.journal()? {
            Some(journal) if journal.state == State::Restoring => {
                self.restore(false)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The file `name` of the repo stands for: itself, or the target of its symlink (edits go
/// through the link). A dangling link is an error naming its target.
fn target(repo: &Path, name: &str) -> Result<PathBuf> {
    let path = repo.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(&path) {
            Ok(target) => Ok(target),
            Err(_) => {
                let link = std::fs::read_link(&path).unwrap_or_default();
                bail!(
                    "{} is a symlink to {}, which does not exist: create the file it names, or \
                     replace the link with a file",
                    path.display(),
                    link.display()
                )
            }
        },
        _ => Ok(path),
    }
}

fn current_sha256(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(fsx::sha256_hex(&bytes))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(original: Option<&str>, written: &[&str], tool: bool) -> Entry {
        Entry {
            name: "f".into(),
            original: original.map(|sha256| Original {
                sha256: sha256.into(),
                mode: 0o644,
            }),
            written: written.iter().map(|s| s.to_string()).collect(),
            tool,
        }
    }

    #[test]
    fn plans() {
        assert_eq!(plan(&entry(Some("a"), &["b"], false), Some("a")), Plan::Unchanged);
        assert_eq!(plan(&entry(Some("a"), &["b"], false), Some("b")), Plan::Restore);
        assert_eq!(
            plan(&entry(Some("a"), &["b", "c"], false), Some("b")),
            Plan::Restore,
            "any content written"
        );
        assert_eq!(plan(&entry(Some("a"), &["b"], false), None), Plan::Restore);
        assert_eq!(plan(&entry(Some("a"), &["b"], false), Some("x")), Plan::Foreign);
        assert_eq!(
            plan(&entry(Some("a"), &[], true), Some("x")),
            Plan::Restore,
            "a tool was writing it"
        );
        assert_eq!(plan(&entry(None, &["b"], false), Some("b")), Plan::Remove);
        assert_eq!(plan(&entry(None, &["b"], false), Some("c")), Plan::Foreign);
        assert_eq!(plan(&entry(None, &[], false), None), Plan::Unchanged);
    }

    fn repo_and_ws() -> (tempfile::TempDir, tempfile::TempDir) {
        let repo = tempfile::tempdir().unwrap();
        fs_err::write(
            repo.path().join("Twoliter.toml"),
            "# original\r\nrelease-version = \"1.0.0\"\n",
        )
        .unwrap();
        fs_err::write(repo.path().join("Twoliter.lock"), "lock").unwrap();
        (repo, tempfile::tempdir().unwrap())
    }

    #[test]
    fn restore_is_byte_identical_and_refuses_foreign_changes() {
        let (repo, ws) = repo_and_ws();
        let toml = repo.path().join("Twoliter.toml");
        let backups = Backups::new(ws.path());
        backups.begin(repo.path()).unwrap();
        backups.write("Twoliter.toml", b"changed").unwrap();
        backups.write("Twoliter.override", b"[a.b]\n").unwrap();
        // A second begin keeps the true originals.
        backups.begin(repo.path()).unwrap();
        // Someone edits the lock behind our back.
        fs_err::write(repo.path().join("Twoliter.lock"), "edited by hand").unwrap();
        let err = backups.restore(false).unwrap_err().to_string();
        assert!(err.contains("Twoliter.lock") && err.contains("--force"), "{err}");
        assert_eq!(
            fs_err::read_to_string(&toml).unwrap(),
            "changed",
            "a refused restore changes nothing"
        );
        let done = backups.restore(true).unwrap();
        assert!(done.contains(&("Twoliter.override".to_string(), Plan::Remove)));
        assert_eq!(
            fs_err::read_to_string(&toml).unwrap(),
            "# original\r\nrelease-version = \"1.0.0\"\n"
        );
        assert_eq!(
            fs_err::read_to_string(repo.path().join("Twoliter.lock")).unwrap(),
            "lock"
        );
        assert!(!repo.path().join("Twoliter.override").exists());
        assert!(
            backups.journal().unwrap().is_none(),
            "the backup is dropped after a restore"
        );
    }

    #[test]
    fn a_write_cut_short_is_still_ours() {
        let (repo, ws) = repo_and_ws();
        let backups = Backups::new(ws.path());
        backups.begin(repo.path()).unwrap();
        // The intent was recorded, then the process died before (or after) the file changed.
        backups
            .change("Twoliter.toml", |e| e.written.push(fsx::sha256_hex(b"edited")))
            .unwrap();
        fs_err::write(repo.path().join("Twoliter.toml"), "edited").unwrap();
        backups.restore(false).unwrap();
        assert!(fs_err::read_to_string(repo.path().join("Twoliter.toml"))
            .unwrap()
            .starts_with("# original"));
        // A tool killed while rewriting the lock: whatever it left is the workflow's.
        backups.begin(repo.path()).unwrap();
        backups.change("Twoliter.lock", |e| e.tool = true).unwrap();
        fs_err::write(repo.path().join("Twoliter.lock"), "half a lock").unwrap();
        backups.restore(false).unwrap();
        assert_eq!(
            fs_err::read_to_string(repo.path().join("Twoliter.lock")).unwrap(),
            "lock"
        );
    }

    #[test]
    fn a_restore_cut_short_is_finished_by_the_next_run() {
        let (repo, ws) = repo_and_ws();
        let backups = Backups::new(ws.path());
        backups.begin(repo.path()).unwrap();
        backups.write("Twoliter.toml", b"ours").unwrap();
        let mut journal = backups.journal().unwrap().unwrap();
        journal.state = State::Restoring;
        backups.save(&journal).unwrap();
        // Someone "fixed" the file meanwhile: the restore was decided, it is finished anyway.
        fs_err::write(repo.path().join("Twoliter.toml"), "whatever").unwrap();
        assert!(backups.recover().unwrap());
        assert!(fs_err::read_to_string(repo.path().join("Twoliter.toml"))
            .unwrap()
            .starts_with("# original"));
        assert!(!backups.recover().unwrap(), "nothing left to do");
    }

    #[test]
    fn symlinks_stay_links_and_modes_come_back() {
        use std::os::unix::fs::PermissionsExt;
        let (repo, ws) = repo_and_ws();
        let real = repo.path().join("shared-Twoliter.toml");
        fs_err::rename(repo.path().join("Twoliter.toml"), &real).unwrap();
        std::os::unix::fs::symlink("shared-Twoliter.toml", repo.path().join("Twoliter.toml")).unwrap();
        fs_err::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let backups = Backups::new(ws.path());
        backups.begin(repo.path()).unwrap();
        backups.write("Twoliter.toml", b"edited").unwrap();
        let link = repo.path().join("Twoliter.toml");
        assert!(fs_err::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs_err::read_to_string(&real).unwrap(), "edited");
        fs_err::set_permissions(&real, std::fs::Permissions::from_mode(0o666)).unwrap();
        backups.restore(false).unwrap();
        assert!(fs_err::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(fs_err::read_to_string(&real).unwrap().starts_with("# original"));
        assert_eq!(fs_err::metadata(&real).unwrap().permissions().mode() & 0o777, 0o600);
        // A dangling link is named, with its target.
        fs_err::remove_file(&real).unwrap();
        let err = Backups::new(ws.path()).begin(repo.path()).unwrap_err().to_string();
        assert!(
            err.contains("shared-Twoliter.toml") && err.contains("does not exist"),
            "{err}"
        );
    }

    #[test]
    fn temp_files_stay_out_of_the_repo() {
        let (repo, ws) = repo_and_ws();
        let backups = Backups::new(ws.path());
        backups.begin(repo.path()).unwrap();
        backups.write("Twoliter.toml", b"x").unwrap();
        let names: Vec<String> = fs_err::read_dir(repo.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }
}
