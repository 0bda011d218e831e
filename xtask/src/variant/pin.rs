//! The pin: what ties a variant build to the kit the user published.
//!
//! The local registry listens on loopback without authentication, so any process on the
//! machine can push `<kit>:v<version>` again. When this checkout or its forest published a kit
//! version (a VERIFY record exists for that kit, version and registry), the newest such record
//! is the pin: UPDATE_LOCK and VALIDATE require the index the registry serves, the lock digest
//! and the fetched kit to be what it recorded. A later `build-kit` of the same version is a
//! newer VERIFY record, and so moves the pin. A kit published elsewhere has no record here: it
//! is taken as the registry serves it, and named as unpinned. A mismatch is accepted only when
//! the user says to trust the registry, and is then recorded as such.
//!
//! Across machines there is no VERIFY record to find: a teammate or CI names the index digest
//! `build-kit` printed (`--kit NAME@VERSION@sha256:…`). A kit pinned so is taken only when the
//! registry serves exactly that index; `--trust-registry` does not loosen a digest the user gave.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::kit::publish::PublishData;
use crate::kit::setup::Setup;
use crate::kit::verify::VerifyData;
use crate::workflow::record::PhaseResult;
use crate::workflow::{KitPhase, Workspace};
use crate::{fsx, project, registry, ui};

/// What VERIFY recorded when this checkout or its forest published a kit version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Published {
    pub(crate) kit: String,
    pub(crate) version: String,
    /// The registry's digest of the index (`sha256:…`).
    pub(crate) index_digest: String,
    /// The digest `twoliter update` writes into `Twoliter.lock` for that index.
    pub(crate) lock_digest: String,
    /// The arch VERIFY checked, and the digest of its image in the index.
    pub(crate) arch: String,
    pub(crate) arch_digest: String,
    /// When VERIFY saw it, in seconds since the epoch.
    pub(crate) verified_at: u64,
    /// The kit workspace holding the VERIFY record.
    pub(crate) workspace: PathBuf,
    /// The kit repo that published it (from the workspace's SETUP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kit_dir: Option<PathBuf>,
    /// The build id published (from the PUBLISH that VERIFY checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) build_id: Option<String>,
}

impl Published {
    /// `at <time>, build <id> of <repo>`, as far as it is known.
    pub(crate) fn origin(&self) -> String {
        let mut out = format!("at {}", when(self.verified_at));
        match (&self.build_id, &self.kit_dir) {
            (Some(id), Some(dir)) => out.push_str(&format!(", build `{id}` of `{}`", dir.display())),
            (Some(id), None) => out.push_str(&format!(", build `{id}`")),
            (None, Some(dir)) => out.push_str(&format!(", from `{}`", dir.display())),
            (None, None) => {}
        }
        out
    }
}

/// How the kit a variant takes stands against what this checkout or its forest published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum Pin {
    /// The registry serves exactly what the newest VERIFY record of the version recorded.
    Pinned { published: Published },
    /// The registry serves something other than what VERIFY recorded, and the user chose to
    /// trust the registry (`--trust-registry`).
    Trusted { published: Published },
    /// The registry serves exactly the index digest the user gave (`NAME@VERSION@sha256:…`),
    /// published elsewhere (no VERIFY record here has it).
    #[serde(rename = "digest")]
    Given { index_digest: String },
    /// No VERIFY record of this checkout or its forest for the kit, version and registry (it
    /// was published elsewhere): taken as the registry serves it.
    Unpinned,
}

impl Pin {
    pub(crate) fn state(&self) -> &'static str {
        match self {
            Pin::Pinned { .. } => "pinned",
            Pin::Trusted { .. } => "trusted",
            Pin::Given { .. } => "digest",
            Pin::Unpinned => "unpinned",
        }
    }

    /// The state in words, with the published index it is about.
    pub(crate) fn summary(&self) -> String {
        match self {
            Pin::Pinned { published } => format!("pinned to the published index {}", published.index_digest),
            Pin::Trusted { published } => format!(
                "taken from the trusted registry over the published index {}",
                published.index_digest
            ),
            Pin::Given { index_digest } => format!("pinned to the given index {index_digest}"),
            Pin::Unpinned => "unpinned (published elsewhere)".to_string(),
        }
    }

    pub(crate) fn published(&self) -> Option<&Published> {
        match self {
            Pin::Pinned { published } | Pin::Trusted { published } => Some(published),
            Pin::Given { .. } | Pin::Unpinned => None,
        }
    }

    /// The same judgement about the same published digests (whichever VERIFY record of them).
    pub(crate) fn agrees(&self, other: &Pin) -> bool {
        let digests = |p: &Pin| match p {
            Pin::Given { index_digest } => Some((index_digest.clone(), String::new())),
            _ => p.published().map(|p| (p.index_digest.clone(), p.lock_digest.clone())),
        };
        self.state() == other.state() && digests(self) == digests(other)
    }
}

/// A kit version as the registry serves it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Served {
    pub(crate) kit: String,
    pub(crate) version: String,
    /// `localhost:<port>`
    pub(crate) registry: String,
    pub(crate) index_digest: String,
    pub(crate) lock_digest: String,
}

impl Served {
    /// What the registry at `registry` serves for `kit` `version`: its index as fetched.
    pub(crate) fn of(kit: &str, version: &str, registry: &str, index: &registry::client::Fetched) -> Result<Served> {
        Ok(Served {
            kit: kit.to_string(),
            version: version.to_string(),
            registry: registry.to_string(),
            index_digest: index.digest.clone(),
            lock_digest: index.lock_digest()?,
        })
    }
}

/// Judges what the registry serves against the pin of the kit version now: the index digest the
/// user gave, else the newest VERIFY record of it in this checkout or its forest.
pub(crate) fn check(served: &Served, given: Option<&str>, trust_registry: bool) -> Result<Pin> {
    let address = registry::Address::parse(&served.registry)?;
    let published = verified(&address, &served.kit)
        .into_iter()
        .find(|p| p.version == served.version);
    match given {
        Some(digest) => judge_given(served, digest, published),
        None => judge(served, published, trust_registry, fsx::now_unix()),
    }
}

/// The pure judgement of a kit pinned by the user's digest: the registry must serve that index,
/// whatever else is trusted. A VERIFY record of the same index here adds where it came from.
pub(crate) fn judge_given(served: &Served, digest: &str, published: Option<Published>) -> Result<Pin> {
    if served.index_digest != digest {
        bail!(
            "kit `{kit}` {version} at {registry} is not the pinned one: `--kit {kit}@{version}@{digest}` asks for \
             index {digest}, but the registry serves index {index} for `v{version}` now (the tag was pushed again \
             since the digest was taken). Ask whoever published it for the digest `build-kit` printed, or build \
             and publish the kit again with `cargo xtask build-kit --kit {kit}` and use the digest it prints",
            kit = served.kit,
            version = served.version,
            registry = served.registry,
            index = served.index_digest,
        );
    }
    Ok(match published {
        Some(published) if published.index_digest == digest && published.lock_digest == served.lock_digest => {
            Pin::Pinned { published }
        }
        _ => Pin::Given {
            index_digest: digest.to_string(),
        },
    })
}

/// The pure judgement: what is served must be what was published, unless the registry is
/// trusted; with nothing published here the kit is unpinned.
pub(crate) fn judge(served: &Served, published: Option<Published>, trust_registry: bool, now: u64) -> Result<Pin> {
    let Some(published) = published else {
        return Ok(Pin::Unpinned);
    };
    if published.index_digest == served.index_digest && published.lock_digest == served.lock_digest {
        return Ok(Pin::Pinned { published });
    }
    if trust_registry {
        return Ok(Pin::Trusted { published });
    }
    let rebuild_in = match &published.kit_dir {
        Some(dir) => format!("in {}", dir.display()),
        None => "in its kit repo".to_string(),
    };
    bail!(
        "kit `{kit}` {version} at {registry} is not the one published here: VERIFY recorded index {pub_index} \
         (lock digest {pub_lock}) {origin} (workspace {ws}), but the registry serves index {index} (lock digest \
         {lock}) now, at {now}: the tag was pushed again from elsewhere since (the local registry has no \
         authentication). Rebuild and republish the kit with `cargo xtask build-kit --kit {kit}` {rebuild_in}, \
         or, to build from what the registry serves now, pass `--trust-registry` (`\"trust_registry\": true` \
         in input.json)",
        kit = served.kit,
        version = served.version,
        registry = served.registry,
        pub_index = published.index_digest,
        pub_lock = published.lock_digest,
        origin = published.origin(),
        ws = published.workspace.display(),
        index = served.index_digest,
        lock = served.lock_digest,
        now = when(now),
    )
}

/// A time in seconds since the epoch, as people read it.
pub(crate) fn when(secs: u64) -> String {
    ui::utc(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Every successful VERIFY of `kit` against the registry at `address`, newest first, among the
/// workspaces of this checkout and, in a forest, of every repo in it (each kit repo keeps its
/// own `planning/`).
pub(crate) fn verified(address: &registry::Address, kit: &str) -> Vec<Published> {
    let mut found: Vec<((u64, u128), Published)> = project::planning_dirs()
        .into_iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| record(&Workspace::new(&entry.path()), address, kit))
        .collect();
    found.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    found.into_iter().map(|(_, published)| published).collect()
}

/// The VERIFY record of one kit workspace, when it is a success for `kit` at `address`, with the
/// time it was made (seconds, then the nanoseconds of its run id, which tell apart records made
/// in the same second).
fn record(ws: &Workspace, address: &registry::Address, kit: &str) -> Option<((u64, u128), Published)> {
    let result: PhaseResult<VerifyData> = fsx::read_json(&ws.result_path(KitPhase::Verify)).ok()??;
    if !result.ok {
        return None;
    }
    let data = result.data?;
    if data.kit != kit || !registry::Address::parse(&data.registry).ok()?.same_registry(address) {
        return None;
    }
    let published: Option<PhaseResult<PublishData>> = fsx::read_json(&ws.result_path(KitPhase::Publish)).ok()?;
    let build_id = published
        .filter(|p| p.ok && result.upstream.as_deref() == Some(p.id.as_str()))
        .and_then(|p| p.data)
        .map(|p| p.build_id);
    let nanos = result
        .id
        .split('-')
        .next()
        .and_then(|n| n.parse::<u128>().ok())
        .unwrap_or(0);
    Some((
        (result.finished_at, nanos),
        Published {
            kit: data.kit,
            version: data.version,
            index_digest: data.index_digest,
            lock_digest: data.lock_digest,
            arch: data.arch,
            arch_digest: data.arch_digest,
            verified_at: result.finished_at,
            workspace: ws.dir.clone(),
            kit_dir: ws.succeeded::<Setup>().ok().map(|setup| setup.kit_dir),
            build_id,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(index: &str, lock: &str) -> Served {
        Served {
            kit: "core-kit".into(),
            version: "2.3.4".into(),
            registry: "localhost:5123".into(),
            index_digest: index.into(),
            lock_digest: lock.into(),
        }
    }

    fn published(index: &str, lock: &str) -> Published {
        Published {
            kit: "core-kit".into(),
            version: "2.3.4".into(),
            index_digest: index.into(),
            lock_digest: lock.into(),
            arch: "x86_64".into(),
            arch_digest: "sha256:aa".into(),
            verified_at: 1_795_000_000,
            workspace: "/forest/kits/core-kit/planning/build-kit-core-kit-x86_64".into(),
            kit_dir: Some("/forest/kits/core-kit".into()),
            build_id: Some("1a2b3c4d".into()),
        }
    }

    #[test]
    fn what_was_published_is_pinned() {
        let pin = judge(&served("sha256:11", "L1"), Some(published("sha256:11", "L1")), false, 0).unwrap();
        assert_eq!(pin.state(), "pinned");
        assert_eq!(pin.published().unwrap().build_id.as_deref(), Some("1a2b3c4d"));
    }

    #[test]
    fn nothing_published_here_is_unpinned_whatever_is_served() {
        assert_eq!(
            judge(&served("sha256:11", "L1"), None, false, 0).unwrap(),
            Pin::Unpinned
        );
    }

    #[test]
    fn another_push_is_refused_with_both_digests_both_times_and_the_fixes() {
        let now = 1_795_000_600;
        let err = judge(
            &served("sha256:22", "L2"),
            Some(published("sha256:11", "L1")),
            false,
            now,
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "kit `core-kit` 2.3.4 at localhost:5123 is not the one published here",
            "VERIFY recorded index sha256:11 (lock digest L1) at 2026-11-18 11:06:40 UTC, build `1a2b3c4d` of \
             `/forest/kits/core-kit`",
            "the registry serves index sha256:22 (lock digest L2) now, at 2026-11-18 11:16:40 UTC",
            "`cargo xtask build-kit --kit core-kit` in /forest/kits/core-kit",
            "`--trust-registry`",
            "\"trust_registry\": true",
        ] {
            assert!(err.contains(needle), "lacks {needle}: {err}");
        }
        // A lock digest that differs alone is a mismatch too.
        assert!(judge(
            &served("sha256:11", "L2"),
            Some(published("sha256:11", "L1")),
            false,
            now
        )
        .is_err());
    }

    #[test]
    fn a_trusted_registry_is_taken_and_says_so() {
        let pin = judge(&served("sha256:22", "L2"), Some(published("sha256:11", "L1")), true, 0).unwrap();
        assert_eq!(pin.state(), "trusted");
        assert_eq!(pin.published().unwrap().index_digest, "sha256:11");
        // Trust changes nothing when the registry serves what was published.
        let same = judge(&served("sha256:11", "L1"), Some(published("sha256:11", "L1")), true, 0).unwrap();
        assert_eq!(same.state(), "pinned");
    }

    #[test]
    fn a_given_digest_must_be_served_whatever_is_trusted_or_published() {
        let served = served(&format!("sha256:{}", "2".repeat(64)), "L2");
        let wanted = format!("sha256:{}", "1".repeat(64));
        let err = judge_given(&served, &wanted, None).unwrap_err().to_string();
        for needle in [
            "kit `core-kit` 2.3.4 at localhost:5123 is not the pinned one",
            &format!("asks for index {wanted}"),
            &format!("serves index {} for `v2.3.4`", served.index_digest),
            "`cargo xtask build-kit --kit core-kit`",
        ] {
            assert!(err.contains(needle), "lacks {needle}: {err}");
        }
        // A VERIFY record of the served index does not override the digest the user gave.
        let recorded = published(&served.index_digest, "L2");
        assert!(judge_given(&served, &wanted, Some(recorded.clone())).is_err());
        // The given digest served: pinned by it, or by the record when the record is of it.
        let pin = judge_given(&served, &served.index_digest, None).unwrap();
        assert_eq!(
            pin,
            Pin::Given {
                index_digest: served.index_digest.clone()
            }
        );
        assert_eq!(pin.state(), "digest");
        let pin = judge_given(&served, &served.index_digest, Some(recorded)).unwrap();
        assert_eq!(pin.state(), "pinned");
        let older = published(&wanted, "L1");
        let pin = judge_given(&served, &served.index_digest, Some(older)).unwrap();
        assert_eq!(pin.state(), "digest");
    }

    #[test]
    fn pins_agree_on_state_and_digests_not_on_the_record() {
        let a = Pin::Pinned {
            published: published("sha256:11", "L1"),
        };
        let mut again = published("sha256:11", "L1");
        again.verified_at += 60;
        again.workspace = "/elsewhere".into();
        assert!(a.agrees(&Pin::Pinned { published: again }));
        assert!(!a.agrees(&Pin::Pinned {
            published: published("sha256:33", "L3")
        }));
        assert!(!a.agrees(&Pin::Trusted {
            published: published("sha256:11", "L1")
        }));
        assert!(!a.agrees(&Pin::Unpinned));
        assert!(Pin::Unpinned.agrees(&Pin::Unpinned));
    }

    #[test]
    fn the_record_is_written_as_a_tagged_state() {
        let json = serde_json::to_value(Pin::Unpinned).unwrap();
        assert_eq!(json, serde_json::json!({"state": "unpinned"}));
        let pinned = Pin::Pinned {
            published: published("sha256:11", "L1"),
        };
        let json = serde_json::to_value(&pinned).unwrap();
        assert_eq!(json["state"], "pinned");
        assert_eq!(json["published"]["index_digest"], "sha256:11");
        assert_eq!(serde_json::from_value::<Pin>(json).unwrap(), pinned);
    }
}
