//! Where things are: the checkout holding the xtask, its planning/ directory, a forest checkout;
//! and the settings every command shares, read once from the command line and environment.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Result};

/// What `--root`, `--forest-root` and `--registry-image` (or their environment variables) say.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub(crate) root: Option<PathBuf>,
    pub(crate) forest_root: Option<PathBuf>,
    pub(crate) registry_image: Option<String>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The checkout a workspace recorded on its first call, used when `--root` is not given.
static RECORDED_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// The forest a workspace recorded on its first call, used when `--forest-root` is not given.
static RECORDED_FOREST_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Acts for the checkout a workspace recorded, unless `--root` says otherwise.
pub(crate) fn use_recorded_root(root: &Path) {
    if settings().root.as_ref().is_none_or(|r| r.as_os_str().is_empty()) {
        let _ = RECORDED_ROOT.set(root.to_path_buf());
    }
}

/// Acts in the forest a workspace recorded, unless `--forest-root` (`FOREST_ROOT`) says
/// otherwise: its registry and its repos' VERIFY records stay those of the first call.
pub(crate) fn use_recorded_forest_root(forest: &Path) {
    if settings().forest_root.as_ref().is_none_or(|r| r.as_os_str().is_empty()) {
        let _ = RECORDED_FOREST_ROOT.set(forest.to_path_buf());
    }
}

/// Records the settings; `main` calls it once, before any command runs.
pub(crate) fn init(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

/// The settings, or none (as in unit tests, which never call [`init`]).
pub(crate) fn settings() -> &'static Settings {
    static NONE: Settings = Settings {
        root: None,
        forest_root: None,
        registry_image: None,
    };
    SETTINGS.get().unwrap_or(&NONE)
}

/// The checkout that holds this xtask. `--root` (`XTASK_ROOT`) overrides it, so that the same
/// binary can act for another checkout (tests use it to run inside a fixture repo).
pub(crate) fn root() -> PathBuf {
    if let Some(root) = settings().root.clone().filter(|r| !r.as_os_str().is_empty()) {
        return root;
    }
    if let Some(root) = RECORDED_ROOT.get() {
        return root.clone();
    }
    builtin_root()
}

/// The checkout this xtask was built in.
fn builtin_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The phase instruction files: `phases/` of the root when it has them (an adopted repo copies
/// them in), else those this xtask was built with.
pub(crate) fn phases_dir() -> PathBuf {
    let here = root().join("phases");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("phases"))
        .unwrap_or(here)
}

/// The xtask's own command line with `args`, runnable from any directory: `cargo run` of this
/// crate's manifest (what the `cargo xtask` alias does in the checkout), with `--root` when this
/// process acts for another checkout.
pub(crate) fn xtask_command(args: &[&str]) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut argv: Vec<String> = ["cargo", "run", "--quiet", "--manifest-path"]
        .into_iter()
        .map(String::from)
        .chain([manifest.display().to_string(), "--".into()])
        .collect();
    let root = root();
    if root != builtin_root() {
        argv.extend(["--root".into(), root.display().to_string()]);
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// The Cargo workspace this xtask was built in: its checkout, or the crate itself where it is
/// its own workspace (adopted into a kit or variant repo).
pub(crate) fn xtask_workspace() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = std::fs::read_to_string(crate_dir.join("Cargo.toml"))
        .is_ok_and(|manifest| manifest.lines().any(|l| l.trim() == "[workspace]"));
    if own {
        crate_dir.to_path_buf()
    } else {
        crate_dir.parent().unwrap_or(crate_dir).to_path_buf()
    }
}

/// `planning/` under the root: workspaces and per-checkout state, ignored by git.
pub(crate) fn planning_dir() -> PathBuf {
    root().join("planning")
}

/// `--forest-root` (`$FOREST_ROOT`), else the one the workspace recorded, when set: kit repos
/// under `kits/<kit>/`, the variant repo at `bottlerocket/`.
pub(crate) fn forest_root() -> Option<PathBuf> {
    settings()
        .forest_root
        .clone()
        .filter(|r| !r.as_os_str().is_empty())
        .or_else(|| RECORDED_FOREST_ROOT.get().cloned())
}

/// A value of `input.json` as orchestrators write it: an empty string means "not given".
pub(crate) fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The repos of a forest: each directory under `kits/`, then `bottlerocket/`, those that exist.
pub(crate) fn forest_repos(forest: &Path) -> Vec<PathBuf> {
    let mut kits: Vec<PathBuf> = std::fs::read_dir(forest.join("kits"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    kits.sort();
    let variant = forest.join("bottlerocket");
    kits.extend(variant.is_dir().then_some(variant));
    kits
}

/// The `planning/` directories whose workspaces count for this run: this checkout's and, with a
/// forest, each of its repos'; each once, in that order.
pub(crate) fn planning_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![planning_dir()];
    if let Some(forest) = forest_root() {
        dirs.extend(forest_repos(&forest).into_iter().map(|repo| repo.join("planning")));
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|dir| seen.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone())));
    dirs
}

/// A name twoliter accepts for kits, vendors and variants: non-empty, `A-Z a-z 0-9 _ -` only.
/// Also what keeps names safe to use as path components.
pub(crate) fn check_identifier(what: &str, name: &str) -> Result<()> {
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
pub(crate) fn absolute(path: &Path) -> PathBuf {
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
