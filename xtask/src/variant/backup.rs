//! Backups of the variant repo files the workflow changes, and putting them back.
//!
//! Before the first edit, `Twoliter.toml`, `Twoliter.lock` and `Twoliter.override` are copied
//! into `<workspace>/backups/` (or recorded as absent) with their SHA-256. Each phase that
//! changes one of them records the hash it left, so `restore` can tell our changes from
//! someone else's and refuses to overwrite the latter unless forced.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsx;

/// The files the variant workflow may change, relative to the variant repo.
pub(crate) const FILES: [&str; 3] = ["Twoliter.toml", "Twoliter.lock", "Twoliter.override"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) name: String,
    /// SHA-256 of the original, or None when the file did not exist.
    pub(crate) original: Option<String>,
    /// SHA-256 of what the workflow last left in the file (None: removed or never touched).
    pub(crate) ours: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) repo: PathBuf,
    pub(crate) created_at: u64,
    pub(crate) entries: Vec<Entry>,
}

pub(crate) struct Backup {
    pub(crate) dir: PathBuf,
}

/// What `restore` did or would do to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Decides what to do with one file from its hashes (pure).
pub(crate) fn plan(entry: &Entry, current: Option<&str>) -> Plan {
    if current == entry.original.as_deref() {
        return Plan::Unchanged;
    }
    let ours = current.is_some() && current == entry.ours.as_deref();
    if !ours && current.is_some() {
        return Plan::Foreign;
    }
    match (&entry.original, current) {
        (Some(_), _) => Plan::Restore,
        (None, Some(_)) => Plan::Remove,
        (None, None) => Plan::Unchanged,
    }
}

impl Backup {
    pub(crate) fn new(ws_dir: &Path) -> Backup {
        Backup {
            dir: ws_dir.join("backups"),
        }
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    pub(crate) fn manifest(&self) -> Result<Option<Manifest>> {
        fsx::read_json(&self.manifest_path())
    }

    /// Takes the backup unless one is already held (a rerun must keep the true originals).
    pub(crate) fn take(&self, repo: &Path) -> Result<Manifest> {
        if let Some(existing) = self.manifest()? {
            if existing.repo != repo {
                bail!(
                    "{} holds a backup of {}, not {}: restore it first (`cargo xtask restore {}`) or use another workspace",
                    self.dir.display(),
                    existing.repo.display(),
                    repo.display(),
                    self.dir.parent().unwrap_or(&self.dir).display()
                );
            }
            return Ok(existing);
        }
        fs_err::create_dir_all(&self.dir)?;
        let mut entries = Vec::new();
        for name in FILES {
            let path = repo.join(name);
            let original = match std::fs::read(&path) {
                Ok(bytes) => {
                    fsx::write_atomic(&self.dir.join(name), &bytes)?;
                    Some(sha256(&bytes))
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(err).with_context(|| format!("cannot back up {}", path.display())),
            };
            entries.push(Entry {
                name: name.to_string(),
                original: original.clone(),
                ours: original,
            });
        }
        let manifest = Manifest {
            repo: repo.to_path_buf(),
            created_at: fsx::now_unix(),
            entries,
        };
        fsx::write_json_atomic(&self.manifest_path(), &manifest)?;
        Ok(manifest)
    }

    /// Records what the workflow left in `name` (call after every write the workflow makes).
    pub(crate) fn record_ours(&self, repo: &Path, name: &str) -> Result<()> {
        let mut manifest = self
            .manifest()?
            .context("no backup was taken before changing the variant repo")?;
        let current = current_hash(&repo.join(name))?;
        for entry in &mut manifest.entries {
            if entry.name == name {
                entry.ours = current.clone();
            }
        }
        fsx::write_json_atomic(&self.manifest_path(), &manifest)
    }

    /// Puts every file back byte for byte, removing those that did not exist. Refuses, naming
    /// the files, when someone else changed them since the workflow did, unless `force`.
    /// Returns the names restored or removed; the backup is dropped once everything is back.
    pub(crate) fn restore(&self, force: bool) -> Result<Vec<(String, Plan)>> {
        let manifest = self.manifest()?.with_context(|| {
            format!(
                "{} holds no backup: nothing to restore (the variant repo was not changed from this workspace)",
                self.dir.display()
            )
        })?;
        let mut plans = Vec::new();
        for entry in &manifest.entries {
            let path = manifest.repo.join(&entry.name);
            plans.push((entry, path.clone(), plan(entry, current_hash(&path)?.as_deref())));
        }
        let foreign: Vec<String> = plans
            .iter()
            .filter(|(_, _, p)| *p == Plan::Foreign)
            .map(|(_, path, _)| path.display().to_string())
            .collect();
        if !foreign.is_empty() && !force {
            bail!(
                "{} changed since this workspace last wrote {}: restoring would lose those changes; \
                 look at them, then run `cargo xtask restore {} --force` to put the originals back anyway",
                foreign.join(", "),
                if foreign.len() == 1 { "it" } else { "them" },
                self.dir.parent().unwrap_or(&self.dir).display()
            );
        }
        let mut done = Vec::new();
        for (entry, path, plan) in plans {
            let action = match (plan, &entry.original) {
                (Plan::Unchanged, _) => Plan::Unchanged,
                (_, Some(_)) => {
                    let bytes = fs_err::read(self.dir.join(&entry.name))?;
                    fsx::write_atomic(&path, &bytes)?;
                    Plan::Restore
                }
                (_, None) => {
                    if path.exists() {
                        fs_err::remove_file(&path)?;
                    }
                    Plan::Remove
                }
            };
            done.push((entry.name.clone(), action));
        }
        // Verify, then drop the backup: a later run takes a fresh one.
        for entry in &manifest.entries {
            let now = current_hash(&manifest.repo.join(&entry.name))?;
            if now != entry.original {
                bail!(
                    "{} is still not byte-identical to its backup after restoring",
                    entry.name
                );
            }
        }
        fs_err::remove_dir_all(&self.dir)?;
        Ok(done)
    }
}

fn sha256(bytes: &[u8]) -> String {
    use hmac_sha256::Hash as Sha256;
    fsx::hex(&Sha256::hash(bytes))
}

fn current_hash(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(sha256(&bytes))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(original: Option<&str>, ours: Option<&str>) -> Entry {
        Entry {
            name: "f".into(),
            original: original.map(String::from),
            ours: ours.map(String::from),
        }
    }

    #[test]
    fn plans() {
        assert_eq!(plan(&entry(Some("a"), Some("b")), Some("a")), Plan::Unchanged);
        assert_eq!(plan(&entry(Some("a"), Some("b")), Some("b")), Plan::Restore);
        assert_eq!(plan(&entry(Some("a"), Some("b")), None), Plan::Restore);
        assert_eq!(plan(&entry(Some("a"), Some("b")), Some("c")), Plan::Foreign);
        assert_eq!(plan(&entry(None, Some("b")), Some("b")), Plan::Remove);
        assert_eq!(plan(&entry(None, Some("b")), Some("c")), Plan::Foreign);
        assert_eq!(plan(&entry(None, None), None), Plan::Unchanged);
    }

    #[test]
    fn restore_is_byte_identical_and_refuses_foreign_changes() {
        let repo = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let toml = repo.path().join("Twoliter.toml");
        fs_err::write(&toml, "# original\r\nrelease-version = \"1.0.0\"\n").unwrap();
        fs_err::write(repo.path().join("Twoliter.lock"), "lock").unwrap();
        let backup = Backup::new(ws.path());
        backup.take(repo.path()).unwrap();
        fs_err::write(&toml, "changed").unwrap();
        backup.record_ours(repo.path(), "Twoliter.toml").unwrap();
        fs_err::write(repo.path().join("Twoliter.override"), "[a.b]\n").unwrap();
        backup.record_ours(repo.path(), "Twoliter.override").unwrap();
        // A second take keeps the true originals.
        backup.take(repo.path()).unwrap();
        // Someone edits the lock behind our back.
        fs_err::write(repo.path().join("Twoliter.lock"), "edited by hand").unwrap();
        let err = backup.restore(false).unwrap_err().to_string();
        assert!(err.contains("Twoliter.lock") && err.contains("--force"), "{err}");
        assert_eq!(
            fs_err::read_to_string(&toml).unwrap(),
            "changed",
            "a refused restore changes nothing"
        );
        let done = backup.restore(true).unwrap();
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
            backup.manifest().unwrap().is_none(),
            "the backup is dropped after a restore"
        );
    }
}
