//! Whose registry it is (a checkout's, or a forest's shared by every checkout inside it), what
//! identifies it (its port, container and volume names, all derived from one stable hash of the
//! owner's path) and what is remembered about it between runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use hmac_sha256::Hash as Sha256;
use serde::{Deserialize, Serialize};

use super::Backend;
use crate::fsx;

/// Default ports are picked in this range: above the usual development ports, below the
/// kernel's ephemeral range (32768 and up), so an outgoing connection rarely holds one.
pub(crate) const PORT_BASE: u16 = 20000;
pub(crate) const PORT_SPAN: u16 = 10000;

/// The image of the docker backend when neither `--image` nor `--registry-image`
/// (`XTASK_REGISTRY_IMAGE`) says.
pub(crate) const DEFAULT_IMAGE: &str = "registry:2";

/// Docker labels put on the container and the volume.
pub(crate) const LABEL: &str = "dev.bottlerocket.xtask.registry";
pub(crate) const LABEL_CHECKOUT: &str = "dev.bottlerocket.xtask.registry.checkout";

/// Whose registry this is. Inside a forest (`--forest-root`) every checkout shares the forest's
/// one registry, so that kits built in their own repos land where the variant repo finds them;
/// elsewhere each checkout has its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    Checkout(PathBuf),
    Forest(PathBuf),
}

impl Owner {
    /// Pure: the forest when `checkout` lies inside it (or is it), else the checkout. Both paths
    /// are taken as given (canonical, when [`Owner::current`] calls it).
    pub(crate) fn of(checkout: &Path, forest: Option<&Path>) -> Owner {
        match forest {
            Some(forest) if checkout.starts_with(forest) => Owner::Forest(forest.to_path_buf()),
            _ => Owner::Checkout(checkout.to_path_buf()),
        }
    }

    /// The owner for this run: `project::root()` and `project::forest_root()`, canonicalised
    /// when they exist (so that `..` or a symlink cannot make a second registry).
    pub(crate) fn current() -> Owner {
        let canonical = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
        let root = canonical(crate::project::root());
        let forest = crate::project::forest_root().map(canonical);
        Owner::of(&root, forest.as_deref())
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Owner::Checkout(path) | Owner::Forest(path) => path,
        }
    }

    /// For messages: `this checkout` or `the forest <path>`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Owner::Checkout(_) => "this checkout".to_string(),
            Owner::Forest(path) => format!("the forest {}", path.display()),
        }
    }
}

/// Names derived from the owner's path; the same path always gives the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The canonical path of the owner (checkout or forest) the names are derived from.
    pub(crate) checkout: PathBuf,
    /// First 8 hex digits of SHA-256 of the path.
    pub(crate) hash: String,
    pub(crate) default_port: u16,
    pub(crate) container: String,
    pub(crate) volume: String,
}

impl Identity {
    /// Pure: the identity of the checkout or forest at `checkout` (already canonical).
    pub(crate) fn of(checkout: &Path) -> Identity {
        let digest = Sha256::hash(checkout.as_os_str().as_encoded_bytes());
        let hash = fsx::hex(&digest[..4]);
        let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let default_port = PORT_BASE + (n % u32::from(PORT_SPAN)) as u16;
        Identity {
            checkout: checkout.to_path_buf(),
            container: format!("xtask-registry-{hash}"),
            volume: format!("xtask-registry-{hash}-data"),
            hash,
            default_port,
        }
    }

    /// The identity of the registry's owner.
    pub(crate) fn current(owner: &Owner) -> Identity {
        Identity::of(owner.path())
    }
}

/// Where the registry's files live: a checkout's `planning/.registry/`, a forest's
/// `.xtask/registry/`.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) dir: PathBuf,
}

/// The forest's own directory for the xtask's state, beside `kits/` and `bottlerocket/`.
pub(crate) const FOREST_DIR: &str = ".xtask";

impl Paths {
    pub(crate) fn current(owner: &Owner) -> Paths {
        match owner {
            Owner::Checkout(_) => Paths {
                dir: crate::project::planning_dir().join(".registry"),
            },
            Owner::Forest(forest) => Paths {
                dir: forest.join(FOREST_DIR).join("registry"),
            },
        }
    }
    pub(crate) fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub(crate) fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub(crate) fn native_dir(&self) -> PathBuf {
        self.dir.join("native")
    }
    pub(crate) fn config(&self) -> PathBuf {
        self.native_dir().join("config.yml")
    }
    pub(crate) fn data(&self) -> PathBuf {
        self.native_dir().join("data")
    }
    pub(crate) fn log(&self) -> PathBuf {
        self.native_dir().join("registry.log")
    }
    pub(crate) fn pid(&self) -> PathBuf {
        self.native_dir().join("registry.pid")
    }
}

/// What was last started, remembered in `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) backend: Backend,
    pub(crate) port: u16,
    /// The image, for the docker backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<String>,
    /// The checkout or forest this state belongs to, to spot a copied state directory.
    pub(crate) checkout: PathBuf,
    /// When it was last started (Unix seconds).
    #[serde(default)]
    pub(crate) started_at: u64,
}

pub(crate) fn load(paths: &Paths) -> Result<Option<State>> {
    fsx::read_json(&paths.state())
}

pub(crate) fn save(paths: &Paths, state: &State) -> Result<()> {
    fsx::write_json_atomic(&paths.state(), state)
}

/// Held while a start, stop or clean changes the registry, so two at once give one server (also
/// when they come from two checkouts of one forest).
pub(crate) fn lock(paths: &Paths) -> Result<fsx::Lock> {
    fsx::Lock::acquire(&paths.lock(), Duration::from_secs(180))
}

/// A forest's state directory ignores itself, in case the forest is a git checkout too.
pub(crate) fn ignore_forest_dir(owner: &Owner) -> Result<()> {
    let Owner::Forest(forest) = owner else {
        return Ok(());
    };
    let ignore = forest.join(FOREST_DIR).join(".gitignore");
    if ignore.exists() {
        return Ok(());
    }
    fsx::write_atomic(&ignore, b"*\n")
}

/// What to start: explicit options win, then what was remembered, then the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Desired {
    pub(crate) backend: Backend,
    pub(crate) port: u16,
    pub(crate) image: String,
}

/// Pure: combines the options, the environment's image, the remembered state and the checkout's
/// defaults. `docker_answers` is only asked when nothing else names a backend.
pub(crate) fn desired(
    options: &super::StartOptions,
    env_image: Option<&str>,
    remembered: Option<&State>,
    identity: &Identity,
    docker_answers: impl FnOnce() -> bool,
) -> Desired {
    let backend = options.backend.or(remembered.map(|s| s.backend)).unwrap_or_else(|| {
        if docker_answers() {
            Backend::Docker
        } else {
            Backend::Native
        }
    });
    let port = options
        .port
        .or(remembered.map(|s| s.port))
        .unwrap_or(identity.default_port);
    let image = options
        .image
        .clone()
        .or(env_image.filter(|s| !s.is_empty()).map(str::to_string))
        .or(remembered.and_then(|s| s.image.clone()))
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    Desired { backend, port, image }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::StartOptions;

    #[test]
    fn identity_is_stable_and_in_range() {
        let a = Identity::of(Path::new("/home/dev/bottlerocket-core-kit"));
        assert_eq!(a, Identity::of(Path::new("/home/dev/bottlerocket-core-kit")));
        // SHA-256 of the path, not a per-process hasher: these values are fixed forever (a
        // change would move every checkout's registry to another port and container).
        assert_eq!((a.hash.as_str(), a.default_port), ("45716eae", 21806));
        assert_eq!(a.container, format!("xtask-registry-{}", a.hash));
        assert_eq!(a.volume, format!("xtask-registry-{}-data", a.hash));
        let b = Identity::of(Path::new("/home/dev/bottlerocket-kernel-kit"));
        assert_ne!(a.hash, b.hash);
        for i in 0..2000 {
            let id = Identity::of(Path::new(&format!("/checkouts/{i}")));
            assert!(
                (PORT_BASE..PORT_BASE + PORT_SPAN).contains(&id.default_port),
                "{}",
                id.default_port
            );
        }
    }

    #[test]
    fn a_checkout_inside_a_forest_shares_the_forest_registry() {
        let forest = Path::new("/src/forest");
        for inside in ["/src/forest/kits/core-kit", "/src/forest/bottlerocket", "/src/forest"] {
            let owner = Owner::of(Path::new(inside), Some(forest));
            assert_eq!(owner, Owner::Forest(forest.into()), "{inside}");
            assert_eq!(Identity::of(owner.path()), Identity::of(forest));
        }
        // Outside the forest, or without one: the checkout's own registry. A sibling whose
        // name merely starts with the forest's is outside it.
        for (checkout, forest) in [
            ("/src/xtask", Some(forest)),
            ("/src/forest-2/kits/core-kit", Some(forest)),
            ("/src/forest/kits/core-kit", None),
        ] {
            let owner = Owner::of(Path::new(checkout), forest);
            assert_eq!(owner, Owner::Checkout(checkout.into()));
            assert_eq!(owner.describe(), "this checkout");
        }
        assert_eq!(Owner::Forest(forest.into()).describe(), "the forest /src/forest");
    }

    #[test]
    fn desired_prefers_options_then_memory_then_defaults() {
        let id = Identity::of(Path::new("/x"));
        let none = StartOptions::default();
        let d = desired(&none, None, None, &id, || true);
        assert_eq!(
            d,
            Desired {
                backend: Backend::Docker,
                port: id.default_port,
                image: DEFAULT_IMAGE.into()
            }
        );
        let d = desired(&none, None, None, &id, || false);
        assert_eq!(d.backend, Backend::Native);

        let remembered = State {
            backend: Backend::Native,
            port: 23456,
            image: Some("mine:1".into()),
            checkout: "/x".into(),
            started_at: 0,
        };
        let d = desired(&none, None, Some(&remembered), &id, || panic!("docker is not asked"));
        assert_eq!(
            d,
            Desired {
                backend: Backend::Native,
                port: 23456,
                image: "mine:1".into()
            }
        );
        let d = desired(&none, Some("env:2"), Some(&remembered), &id, || true);
        assert_eq!(d.image, "env:2");

        let explicit = StartOptions {
            port: Some(21000),
            backend: Some(Backend::Docker),
            image: Some("flag:3".into()),
        };
        let d = desired(&explicit, Some("env:2"), Some(&remembered), &id, || false);
        assert_eq!(
            d,
            Desired {
                backend: Backend::Docker,
                port: 21000,
                image: "flag:3".into()
            }
        );
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            dir: dir.path().join(".registry"),
        };
        assert_eq!(load(&paths).unwrap(), None);
        let state = State {
            backend: Backend::Docker,
            port: 20001,
            image: Some("registry:2".into()),
            checkout: "/c".into(),
            started_at: 5,
        };
        save(&paths, &state).unwrap();
        assert_eq!(load(&paths).unwrap(), Some(state));
    }
}
