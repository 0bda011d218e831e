//! What a kit or variant build depends on, as one hash: the committed tree, uncommitted changes
//! to tracked files, untracked files git does not ignore, the arch and the twoliter version.
//! Two builds with the same fingerprint produce the same kit; the build id alone cannot tell,
//! since every uncommitted edit shares the same `<commit>-dirty` id.
//!
//! The xtask's own files in a repo it was adopted into ([`OWN_PATHS`]) are left out: no build
//! reads them, so editing the xtask or a note in `planning/` must not rebuild the kit.

use std::path::Path;

use anyhow::{Context, Result};
use hmac_sha256::Hash as Sha256;
use xshell::{cmd, Shell};

use crate::arch::Arch;
use crate::process;

/// The xtask's own paths in a repo, relative to its top: the crate, the phase files, the cargo
/// alias and the workspaces. `cargo xtask adopt` writes exactly these (and `.gitignore` lines).
pub(crate) const OWN_PATHS: [&str; 4] = ["xtask", "phases", ".cargo/config.toml", "planning"];

/// `twoliter` is the version the repo builds with, as its workflow found it (empty when unknown).
pub(crate) fn compute(sh: &Shell, repo: &Path, arch: Arch, twoliter: &str) -> Result<String> {
    let _dir = sh.push_dir(repo);
    let mut hasher = Sha256::new();
    hasher.update(format!("arch={arch}\n"));
    hasher.update(committed(sh, repo)?);
    let excluded = &exclude_pathspecs();
    // Uncommitted changes to tracked files, staged or not, binary-safe.
    let diff = cmd!(sh, "git diff HEAD --binary --no-ext-diff -- . {excluded...}")
        .quiet()
        .output()?;
    hasher.update(&diff.stdout);
    let untracked = cmd!(sh, "git ls-files -z --others --exclude-standard -- . {excluded...}")
        .quiet()
        .output()?;
    for path in untracked.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        hasher.update(format!("untracked={path}\n"));
        if let Ok(bytes) = std::fs::read(repo.join(&path)) {
            hasher.update(Sha256::hash(&bytes));
        }
    }
    hasher.update(format!("twoliter={twoliter}\n"));
    Ok(crate::fsx::hex(&hasher.finalize()))
}

/// `:(exclude)<path>` for each of [`OWN_PATHS`].
fn exclude_pathspecs() -> Vec<String> {
    OWN_PATHS.iter().map(|p| format!(":(exclude){p}")).collect()
}

/// The committed tree without the xtask's own paths: the repo's top-level entries (a directory
/// stands for everything under it by its tree id), `.cargo/` entry by entry.
fn committed(sh: &Shell, repo: &Path) -> Result<Vec<u8>> {
    let top = process::read(cmd!(sh, "git ls-tree -z HEAD")).with_context(|| {
        format!(
            "cannot fingerprint {}: is it a git checkout with a commit?",
            repo.display()
        )
    })?;
    let cargo_dir = process::read(cmd!(sh, "git ls-tree -z -r HEAD .cargo/"))?;
    Ok(keep_build_inputs(&top, &cargo_dir).into_bytes())
}

/// Pure: the `git ls-tree -z` entries of the top level and of `.cargo/` that are not the
/// xtask's own, one per line.
fn keep_build_inputs(top: &str, cargo_dir: &str) -> String {
    let own = |path: &str| OWN_PATHS.contains(&path) || path == ".cargo";
    let mut out = String::new();
    let entries = top.split('\0').chain(cargo_dir.split('\0'));
    for entry in entries.filter(|e| !e.is_empty()) {
        let path = entry.split_once('\t').map_or("", |(_, path)| path);
        if !own(path) {
            out.push_str(entry);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(status.status.success(), "git {args:?}: {status:?}");
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn only_the_xtask_s_own_top_level_entries_are_dropped() {
        let top = "100644 blob aa\tMakefile\x00040000 tree bb\txtask\x00040000 tree cc\tphases\x00\
                   040000 tree dd\tpackages\x00040000 tree ee\t.cargo\x00040000 tree ff\tplanning\x00\
                   040000 tree 11\txtask-notes\x00";
        let cargo = "100644 blob 22\t.cargo/config.toml\x00100644 blob 33\t.cargo/other.toml\x00";
        assert_eq!(
            keep_build_inputs(top, cargo),
            "100644 blob aa\tMakefile\n040000 tree dd\tpackages\n040000 tree 11\txtask-notes\n\
             100644 blob 33\t.cargo/other.toml\n"
        );
    }

    #[test]
    fn editing_the_xtask_changes_nothing_and_a_package_edit_does() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path();
        write(repo, "packages/a/a.spec", "Version: 1\n");
        write(repo, ".gitignore", "/build/\n");
        git(repo, &["init", "-q"]);
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-q", "-m", "kit"]);
        let sh = Shell::new().unwrap();
        let fingerprint = || compute(&sh, repo, Arch::X86_64, "").unwrap();
        let before = fingerprint();

        // Adopted, untracked: the crate, its lock, the phases, the alias, a workspace note.
        write(repo, "xtask/Cargo.toml", "[package]\nname = \"xtask\"\n");
        write(repo, "xtask/Cargo.lock", "version = 3\n");
        write(repo, "phases/kit/SETUP.md", "# SETUP\n");
        write(repo, ".cargo/config.toml", "[alias]\nxtask = \"run\"\n");
        write(repo, "planning/notes.md", "a note\n");
        assert_eq!(fingerprint(), before);
        // Committed, then edited again.
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-q", "-m", "Add cargo xtask"]);
        assert_eq!(fingerprint(), before);
        write(repo, "xtask/src/main.rs", "fn main() {}\n");
        write(repo, "phases/kit/SETUP.md", "# SETUP, edited\n");
        assert_eq!(fingerprint(), before);

        // What the build reads still counts: committed, edited or new.
        write(repo, "packages/a/a.spec", "Version: 2\n");
        let edited = fingerprint();
        assert_ne!(edited, before);
        write(repo, "packages/b/b.spec", "Version: 1\n");
        assert_ne!(fingerprint(), edited);
        write(repo, ".cargo/other.toml", "x = 1\n");
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-q", "-m", "more"]);
        let committed = fingerprint();
        write(repo, ".cargo/other.toml", "x = 2\n");
        assert_ne!(fingerprint(), committed);
        assert_ne!(compute(&sh, repo, Arch::Aarch64, "").unwrap(), fingerprint());
    }
}
