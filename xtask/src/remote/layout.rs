//! Where the repos of this checkout go on the builder, and translating paths both ways. Pure.
//!
//! Everything of one checkout lives under `<remote-dir>/<checkout-id>/`, reused by every run
//! from that checkout: the checkout itself at `root/`, a forest's repos at `forest/<path in the
//! forest>` (so that they share the forest's registry and records there as here), any other
//! repo at `repos/<name>-<hash>`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// One repo sent to the builder: its top directory here and its path on the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placed {
    pub(crate) local: PathBuf,
    pub(crate) remote: String,
    /// A git checkout, sent as such; otherwise a plain directory (a checkout the xtask acts for
    /// that only holds `planning/`), created there and left as it is.
    pub(crate) git: bool,
}

/// Where everything goes on the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// `<remote-dir>/<checkout-id>`: the per-checkout directory.
    pub(crate) dir: String,
    /// The checkout's own place (the command runs there); also `repos[0]`.
    pub(crate) root: String,
    /// The forest, when there is one: local and remote.
    pub(crate) forest: Option<(PathBuf, String)>,
    /// Every repo sent, the checkout first.
    pub(crate) repos: Vec<Placed>,
}

fn hash8(parts: &[&[u8]]) -> String {
    let mut hasher = hmac_sha256::Hash::new();
    for part in parts {
        hasher.update(part);
        hasher.update(b"\0");
    }
    crate::fsx::hex(&hasher.finalize())[..8].to_string()
}

/// A name made of letters, digits, `-`, `_` and `.` only, for a directory on the builder.
fn tidy(name: &str) -> String {
    let tidy: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    match tidy.trim_start_matches('.') {
        "" => "checkout".to_string(),
        name => name.to_string(),
    }
}

fn base_name(path: &Path) -> String {
    tidy(
        &path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

/// The directory name of a checkout (and forest) on the builder: readable, and distinct for
/// each checkout of each machine that uses the builder.
pub(crate) fn checkout_id(machine: &str, root: &Path, forest: Option<&Path>) -> String {
    let forest_bytes = forest.map(|f| f.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let name = base_name(forest.unwrap_or(root));
    let hash = hash8(&[machine.as_bytes(), root.as_os_str().as_encoded_bytes(), forest_bytes]);
    format!("{name}-{hash}")
}

fn join(base: &str, rel: &Path) -> String {
    let mut out = base.trim_end_matches('/').to_string();
    for part in rel.components() {
        out.push('/');
        out.push_str(&part.as_os_str().to_string_lossy());
    }
    out
}

/// Places the checkout `root` (the top of its git checkout when `root_git`, else the directory
/// itself) and the other repos (top directories, absolute, duplicates allowed) under `dir`
/// (`<remote-dir>/<checkout-id>`, absolute on the builder).
pub(crate) fn plan(dir: &str, root: &Path, root_git: bool, forest: Option<&Path>, others: &[PathBuf]) -> Layout {
    let place = |repo: &Path| -> String {
        if let Some(rel) = forest.and_then(|f| repo.strip_prefix(f).ok()) {
            return join(&format!("{dir}/forest"), rel);
        }
        if repo == root {
            return format!("{dir}/root");
        }
        let hash = hash8(&[repo.as_os_str().as_encoded_bytes()]);
        format!("{dir}/repos/{}-{hash}", base_name(repo))
    };
    let mut repos = vec![Placed {
        local: root.to_path_buf(),
        remote: place(root),
        git: root_git,
    }];
    for repo in others {
        if !repos.iter().any(|p| &p.local == repo) {
            repos.push(Placed {
                local: repo.clone(),
                remote: place(repo),
                git: true,
            });
        }
    }
    Layout {
        dir: dir.to_string(),
        root: repos[0].remote.clone(),
        forest: forest.map(|f| (f.to_path_buf(), format!("{dir}/forest"))),
        repos,
    }
}

impl Layout {
    /// Every place sent, as (path here, path on the builder): the repos, then the forest.
    fn places(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.repos
            .iter()
            .map(|p| (p.local.as_path(), p.remote.as_str()))
            .chain(self.forest.iter().map(|(l, r)| (l.as_path(), r.as_str())))
    }

    /// The builder's path for a path here (absolute), inside a repo sent or the forest.
    pub(crate) fn to_remote(&self, path: &Path) -> Option<String> {
        self.places()
            .filter_map(|(local, remote)| path.strip_prefix(local).ok().map(|rel| (local, join(remote, rel))))
            .max_by_key(|(local, _)| local.as_os_str().len())
            .map(|(_, remote)| remote)
    }

    /// The path here for a path on the builder, inside a repo sent or the forest.
    pub(crate) fn to_local(&self, remote: &str) -> Option<PathBuf> {
        self.places()
            .filter_map(|(local, place)| {
                let rest = remote.strip_prefix(place)?;
                match rest {
                    "" => Some((place, local.to_path_buf())),
                    _ if rest.starts_with('/') => Some((place, local.join(rest.trim_start_matches('/')))),
                    _ => None,
                }
            })
            .max_by_key(|(place, _)| place.len())
            .map(|(_, local)| local)
    }

    /// [`Layout::to_remote`] for a path argument, failing with what to do when it lies outside
    /// everything sent.
    pub(crate) fn translate(&self, flag: &str, path: &Path) -> Result<String> {
        match self.to_remote(path) {
            Some(remote) => Ok(remote),
            None => bail!(
                "{flag} {} is outside the repos sent to the builder ({}): with --on, give a path \
                 inside one of them",
                path.display(),
                self.repos
                    .iter()
                    .map(|p| p.local.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkouts_get_their_own_directory() {
        let a = checkout_id("laptop", Path::new("/src/core-kit"), None);
        assert!(a.starts_with("core-kit-") && a.len() == "core-kit-".len() + 8, "{a}");
        assert_ne!(a, checkout_id("desktop", Path::new("/src/core-kit"), None));
        assert_ne!(a, checkout_id("laptop", Path::new("/other/core-kit"), None));
        let f = checkout_id("laptop", Path::new("/f/kits/core-kit"), Some(Path::new("/f/my forest")));
        assert!(f.starts_with("my_forest-"), "{f}");
        assert_eq!(tidy("..."), "checkout");
    }

    #[test]
    fn paths_are_translated_both_ways() {
        let layout = plan(
            "/home/b/.cache/xtask-remote/k-1",
            Path::new("/src/kit"),
            true,
            None,
            &[PathBuf::from("/src/kit"), PathBuf::from("/elsewhere/variant")],
        );
        assert_eq!(layout.repos.len(), 2, "the checkout is sent once");
        assert_eq!(layout.root, "/home/b/.cache/xtask-remote/k-1/root");
        assert!(layout.repos[1]
            .remote
            .starts_with("/home/b/.cache/xtask-remote/k-1/repos/variant-"));
        assert_eq!(
            layout.to_remote(Path::new("/src/kit/planning/ws")).as_deref(),
            Some("/home/b/.cache/xtask-remote/k-1/root/planning/ws")
        );
        assert_eq!(
            layout.to_local("/home/b/.cache/xtask-remote/k-1/root/planning/ws"),
            Some(PathBuf::from("/src/kit/planning/ws"))
        );
        assert_eq!(
            layout.to_local("/home/b/.cache/xtask-remote/k-1/root"),
            Some(PathBuf::from("/src/kit"))
        );
        assert_eq!(layout.to_local("/home/b/.cache/xtask-remote/k-1/rootless"), None);
        assert_eq!(layout.to_remote(Path::new("/src/kitchen")), None);
        let err = layout
            .translate("--workspace", Path::new("/tmp/ws"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--workspace /tmp/ws is outside the repos sent"), "{err}");
    }

    #[test]
    fn a_forest_keeps_its_shape() {
        let layout = plan(
            "/r/f-1",
            Path::new("/f/bottlerocket"),
            true,
            Some(Path::new("/f")),
            &[PathBuf::from("/f/kits/core-kit")],
        );
        assert_eq!(layout.root, "/r/f-1/forest/bottlerocket");
        assert_eq!(layout.repos[1].remote, "/r/f-1/forest/kits/core-kit");
        assert_eq!(layout.forest, Some((PathBuf::from("/f"), "/r/f-1/forest".to_string())));
        assert_eq!(
            layout.to_remote(Path::new("/f/kits/core-kit/planning")).as_deref(),
            Some("/r/f-1/forest/kits/core-kit/planning")
        );
        assert_eq!(layout.to_local("/r/f-1/forest"), Some(PathBuf::from("/f")));

        // A checkout outside the forest that is no git checkout, as a forest's xtask may be.
        let layout = plan("/r/f-2", Path::new("/x"), false, Some(Path::new("/f")), &[]);
        assert_eq!(layout.root, "/r/f-2/root");
        assert!(!layout.repos[0].git);
    }
}
