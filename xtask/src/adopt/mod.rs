//! Adopting this xtask into a kit or variant repo, or into every repo of a forest: the crate
//! goes in as its own Cargo workspace with its own `Cargo.lock` (twoliter builds against the
//! repo's root `Cargo.lock` with `--offline --locked`, so that lock must never list the xtask's
//! crates), with the phase files, the `cargo xtask` alias, an ignored `planning/`, and the
//! `.gitignore` rule for `/.cargo` split so that the alias is tracked. The repo's root
//! `Cargo.toml` and `Cargo.lock` are never touched.
//!
//! [`plan`] reads everything and decides (refusing before anything is written); [`apply`]
//! writes. A second adoption with nothing new plans nothing.

pub(crate) mod edits;
mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::{fsx, git, kit, process, variant};

use source::walk;
pub(crate) use source::{File, Source};

/// The kinds of repo the xtask works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepoKind {
    Kit,
    Variant,
}

impl RepoKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RepoKind::Kit => "kit repo",
            RepoKind::Variant => "variant repo",
        }
    }

    fn of(dir: &Path) -> Option<RepoKind> {
        if kit::is_kit_repo(dir) {
            Some(RepoKind::Kit)
        } else if variant::is_variant_repo(dir) {
            Some(RepoKind::Variant)
        } else {
            None
        }
    }
}

/// The repos to adopt into: `dir` itself when it is a kit or variant repo, else, for a forest
/// root, each repo under `kits/` and `bottlerocket/`. Anything else is refused.
pub(crate) fn repos_of(dir: &Path) -> Result<Vec<(RepoKind, PathBuf)>> {
    if !dir.is_dir() {
        bail!(
            "{} does not exist: name a kit repo, a variant repo or a forest root",
            dir.display()
        );
    }
    if let Some(kind) = RepoKind::of(dir) {
        return Ok(vec![(kind, dir.to_path_buf())]);
    }
    let repos = crate::project::forest_repos(dir);
    if repos.is_empty() {
        bail!(
            "{} is neither a kit repo (Twoliter.toml and kits/), a variant repo (Twoliter.toml and \
             variants/) nor a forest root (kit repos under kits/, the variant repo at bottlerocket/): \
             name one of those",
            dir.display()
        );
    }
    let mut found = Vec::new();
    for repo in repos {
        let expected = if repo.ends_with("bottlerocket") && repo.parent() == Some(dir) {
            RepoKind::Variant
        } else {
            RepoKind::Kit
        };
        match RepoKind::of(&repo) {
            Some(kind) if kind == expected => found.push((kind, repo)),
            _ => bail!(
                "{} in the forest {} is not a {}: a forest holds kit repos under kits/ and the \
                 variant repo at bottlerocket/; move it out of the forest, or name the repos one by one",
                repo.display(),
                dir.display(),
                expected.name()
            ),
        }
    }
    Ok(found)
}

/// The adopted xtask's own directories, which a later adoption replaces as a whole.
const OWN_DIRS: [&str; 2] = ["xtask", "phases"];

/// What adopting changes in one repo.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) repo: PathBuf,
    pub(crate) kind: RepoKind,
    /// Files to write, by path relative to the repo: those missing or different.
    pub(crate) writes: BTreeMap<PathBuf, File>,
    /// Files of an earlier adoption under `xtask/` or `phases/` that this xtask does not have.
    pub(crate) removals: Vec<PathBuf>,
    /// The new `.gitignore`, when its `/.cargo` rule has to be split.
    pub(crate) gitignore: Option<String>,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.removals.is_empty() && self.gitignore.is_none()
    }
}

/// The paths the adoption commit adds, relative to the repo.
pub(crate) const COMMITTED: [&str; 5] = [
    ".cargo/config.toml",
    ".gitignore",
    "phases",
    "planning/.gitignore",
    "xtask",
];

/// Decides what adopting `source` into `repo` changes, refusing (with the fix) whatever would
/// go wrong; reads only.
pub(crate) fn plan(sh: &Shell, source: &Source, kind: RepoKind, repo: &Path) -> Result<Plan> {
    if git::toplevel(sh, repo).is_none() {
        bail!(
            "{} is not a git checkout: adopt into a clone of the {}, whose commit then records the xtask",
            repo.display(),
            kind.name()
        );
    }
    let root_manifest = repo.join("Cargo.toml");
    if fsx::read_optional(&root_manifest)?.is_some_and(|text| edits::root_lists_xtask(&text)) {
        bail!(
            "{} lists \"xtask\" as a workspace member, which puts the xtask's crates into the repo's \
             Cargo.lock, and twoliter builds against that lock with `cargo --offline --locked`: remove \
             \"xtask\" from [workspace] members and restore Cargo.lock (`git -C {} checkout -- Cargo.toml \
             Cargo.lock`), then run adopt again",
            root_manifest.display(),
            edits::shell_word(&repo.display().to_string())
        );
    }
    let crate_dir = repo.join("xtask");
    let upgrading = is_adopted_crate(&crate_dir)?;
    if !upgrading && crate_dir.join("Cargo.toml").exists() {
        bail!(
            "{} holds another crate than this xtask: move it away, then run adopt again",
            crate_dir.display()
        );
    }
    // Without a manifest of ours, a directory is taken over only if everything in it is ours
    // (an adoption that was interrupted before it wrote the manifest, which comes last).
    for dir in OWN_DIRS {
        let path = repo.join(dir);
        let foreign = !upgrading && files_under(&path)?.iter().any(|rel| !source.files.contains_key(rel));
        if foreign {
            bail!(
                "{} exists and is not this xtask's: move it away, then run adopt again",
                path.display()
            );
        }
    }
    let config = repo.join(".cargo/config.toml");
    if let Some(text) = fsx::read_optional(&config)? {
        edits::check_cargo_config(&text, &config.display().to_string())?;
    }
    let gitignore = fsx::read_optional(&repo.join(".gitignore"))?
        .as_deref()
        .and_then(edits::unignore_cargo_config);

    let mut writes = BTreeMap::new();
    for (rel, file) in &source.files {
        if !same_file(&repo.join(rel), file) {
            writes.insert(rel.clone(), file.clone());
        }
    }
    let mut removals = Vec::new();
    if upgrading {
        for dir in OWN_DIRS {
            removals.extend(
                files_under(&repo.join(dir))?
                    .into_iter()
                    .filter(|rel| !source.files.contains_key(rel)),
            );
        }
    }
    Ok(Plan {
        repo: repo.to_path_buf(),
        kind,
        writes,
        removals,
        gitignore,
    })
}

/// Whether `dir` holds this xtask from an earlier adoption (its manifest names the crate).
fn is_adopted_crate(dir: &Path) -> Result<bool> {
    let Some(text) = fsx::read_optional(&dir.join("Cargo.toml"))? else {
        return Ok(false);
    };
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return Ok(false);
    };
    let field = |key: &str| doc.get("package").and_then(|p| p.get(key)).and_then(|v| v.as_str());
    Ok(field("name") == Some(env!("CARGO_PKG_NAME")) && field("description") == Some(env!("CARGO_PKG_DESCRIPTION")))
}

/// The files under `repo/<dir>` (not under a top-level `target/` of the crate), relative to the
/// repo; none when it does not exist.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = BTreeMap::new();
    if dir.is_dir() {
        let name = dir.file_name().map(PathBuf::from).unwrap_or_default();
        walk(dir, &name, &["target"], &mut found)?;
    }
    Ok(found.into_keys().collect())
}

fn same_file(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let executable = meta.permissions().mode() & 0o111 != 0;
    executable == file.executable && std::fs::read(path).is_ok_and(|bytes| bytes == file.bytes)
}

/// Carries out a plan. The `.gitignore` edit comes first and is undone when git would still
/// ignore a file the commit must add; then the files are written, each atomically.
pub(crate) fn apply(sh: &Shell, plan: &Plan) -> Result<()> {
    let gitignore_path = plan.repo.join(".gitignore");
    let original = fsx::read_optional(&gitignore_path)?;
    if let Some(text) = &plan.gitignore {
        fsx::write_atomic(&gitignore_path, text.as_bytes())?;
    }
    let must_track = [
        ".cargo/config.toml",
        "planning/.gitignore",
        "xtask/Cargo.toml",
        "xtask/Cargo.lock",
        "xtask/src/main.rs",
        "phases/kit/SKILL.md",
    ];
    let ignored: Vec<&str> = must_track
        .into_iter()
        .filter(|rel| git::is_ignored(sh, &plan.repo, Path::new(rel)))
        .collect();
    if !ignored.is_empty() {
        if plan.gitignore.is_some() {
            if let Some(original) = &original {
                fsx::write_atomic(&gitignore_path, original.as_bytes())?;
            }
        }
        bail!(
            "git would ignore {} in {}, so the adoption commit would miss it: find the rule with `git -C {} \
             check-ignore -v {}`, un-ignore it, then run adopt again",
            ignored.join(", "),
            plan.repo.display(),
            edits::shell_word(&plan.repo.display().to_string()),
            ignored.join(" ")
        );
    }
    // The crate's manifest last: until it is there, a rerun takes the copy for unfinished.
    let manifest = Path::new("xtask/Cargo.toml");
    let last = plan.writes.get_key_value(manifest);
    for (rel, file) in plan
        .writes
        .iter()
        .filter(|(rel, _)| rel.as_path() != manifest)
        .chain(last)
    {
        let path = plan.repo.join(rel);
        fsx::write_atomic(&path, &file.bytes)?;
        set_executable(&path, file.executable)?;
    }
    for rel in &plan.removals {
        fs_err::remove_file(plan.repo.join(rel))?;
    }
    Ok(())
}

fn set_executable(path: &Path, executable: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = fs_err::metadata(path)?.permissions();
    let mode = perms.mode();
    let wanted = if executable {
        mode | ((mode & 0o444) >> 2)
    } else {
        mode & !0o111
    };
    if wanted != mode {
        perms.set_mode(wanted);
        fs_err::set_permissions(path, perms)?;
    }
    Ok(())
}

/// The adoption's files that are not committed yet in a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The one command that commits them.
    pub(crate) command: String,
    /// Whether a tracked file (`.gitignore`) differs from the commit: the build id is `-dirty`
    /// until it is committed.
    pub(crate) dirty: bool,
}

/// What of the adoption in `repo` is not committed yet; `None` when it all is.
pub(crate) fn pending(sh: &Shell, repo: &Path) -> Result<Option<Pending>> {
    let _dir = sh.push_dir(repo);
    let paths = COMMITTED;
    let status = process::read(cmd!(sh, "git status --porcelain -- {paths...}"))?;
    if status.trim().is_empty() {
        return Ok(None);
    }
    let dirty = status
        .lines()
        .any(|l| !l.trim_start().starts_with("??") && l.split_whitespace().last() == Some(".gitignore"));
    let add: Vec<&str> = COMMITTED.into_iter().filter(|p| *p != ".gitignore" || dirty).collect();
    let repo = edits::shell_word(&repo.display().to_string());
    Ok(Some(Pending {
        command: format!(
            "git -C {repo} add -- {} && git -C {repo} commit -m {}",
            add.join(" "),
            edits::shell_word(COMMIT_MESSAGE)
        ),
        dirty,
    }))
}

pub(crate) const COMMIT_MESSAGE: &str = "Add cargo xtask for local kit and variant builds";

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_forest_is_its_repos_and_anything_else_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let forest = tmp.path();
        for kit in ["core-kit", "kernel-kit"] {
            write(forest, &format!("kits/{kit}/Twoliter.toml"), "");
            std::fs::create_dir_all(forest.join(format!("kits/{kit}/kits/{kit}"))).unwrap();
        }
        write(forest, "bottlerocket/Twoliter.toml", "");
        std::fs::create_dir_all(forest.join("bottlerocket/variants")).unwrap();
        let found = repos_of(forest).unwrap();
        assert_eq!(
            found,
            vec![
                (RepoKind::Kit, forest.join("kits/core-kit")),
                (RepoKind::Kit, forest.join("kits/kernel-kit")),
                (RepoKind::Variant, forest.join("bottlerocket")),
            ]
        );
        assert_eq!(
            repos_of(&forest.join("kits/core-kit")).unwrap(),
            vec![(RepoKind::Kit, forest.join("kits/core-kit"))]
        );
        // Neither a repo nor a forest.
        let err = repos_of(&forest.join("kits")).unwrap_err().to_string();
        assert!(err.contains("neither a kit repo"), "{err}");
        // A forest with something that is not a kit repo under kits/.
        std::fs::create_dir_all(forest.join("kits/notes")).unwrap();
        let err = repos_of(forest).unwrap_err().to_string();
        assert!(err.contains("kits/notes") && err.contains("is not a kit repo"), "{err}");
        assert!(repos_of(&forest.join("nowhere")).is_err());
    }

    #[test]
    fn this_xtask_goes_in_as_its_own_workspace_with_its_lock() {
        let source = Source::current().unwrap();
        let manifest = String::from_utf8(source.files[Path::new("xtask/Cargo.toml")].bytes.clone()).unwrap();
        let doc: toml_edit::DocumentMut = manifest.parse().unwrap();
        assert!(
            doc.get("workspace").is_some() && doc.get("profile").is_some(),
            "{manifest}"
        );
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert_eq!(
            source.files[Path::new("xtask/Cargo.lock")].bytes,
            std::fs::read(checkout.join("Cargo.lock")).unwrap()
        );
        assert_eq!(
            source.files[Path::new(".cargo/config.toml")].bytes,
            b"[alias]\nxtask = \"run --quiet --manifest-path xtask/Cargo.toml --\"\n"
        );
        assert!(source.files.contains_key(Path::new("xtask/src/main.rs")));
        assert!(source.files.contains_key(Path::new("phases/kit/SKILL.md")));
        assert!(source.files[Path::new("xtask/tests/standins/twoliter")].executable);
        assert!(!source.files.keys().any(|p| p.starts_with("xtask/target")));
        // Every path adoption writes is one the build fingerprint leaves out.
        for path in source.files.keys() {
            assert!(
                crate::fingerprint::OWN_PATHS.iter().any(|own| path.starts_with(own)),
                "{}",
                path.display()
            );
        }
    }
}
