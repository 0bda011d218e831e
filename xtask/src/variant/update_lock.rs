//! UPDATE_LOCK: `twoliter update` regenerates `Twoliter.lock`; every kit's lock entry must then
//! have the version asked for and the digest computed from the index the local registry serves,
//! in the lock schema the repo's twoliter loads. When the lock already says exactly that,
//! twoliter is not run. Before anything is written, what the registry serves must be what this
//! checkout or its forest published (see [`pin`]).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::journal::Backups;
use super::pin::{self, Pin, Served};
use super::Variant;
use crate::twoliter::{compat, lock};
use crate::workflow::{Phase, VariantPhase};
use crate::{fsx, process, tools, ui};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LockedKit {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) lock_digest: String,
    pub(crate) index_digest: String,
    /// How what the registry serves stands against what was published here.
    pub(crate) pin: Pin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LockData {
    pub(crate) kits: Vec<LockedKit>,
    /// False when the lock already matched and `twoliter update` was skipped.
    pub(crate) update_ran: bool,
    /// SHA-256 of Twoliter.lock as the phase left it.
    #[serde(default)]
    pub(crate) lock_sha256: String,
}

fn lock_sha256(v: &Variant) -> Result<String> {
    Ok(fsx::sha256_hex(&fs_err::read(v.repo.join("Twoliter.lock"))?))
}

/// What the registry serves now for each kit of UPDATE_CONFIG, each judged against its pin: a
/// kit that is not what was published stops here, unless the registry is trusted.
fn expected(v: &Variant) -> Result<Vec<LockedKit>> {
    let config = v.config()?;
    let client = crate::registry::connect(&crate::registry::Address::parse(&config.registry)?)?;
    config
        .kits
        .iter()
        .map(|kit| {
            let tag = format!("v{}", kit.version);
            let index = client.manifest(&kit.name, &tag)?.with_context(|| {
                format!(
                    "{}/{}:{tag} is no longer in the registry: publish it again with `cargo xtask build-kit`",
                    config.registry, kit.name
                )
            })?;
            let served = Served::of(&kit.name, &kit.version, &config.registry, &index)?;
            let pin = pin::check(&served, v.given_digest(&kit.name), v.input.trust_registry)?;
            Ok(LockedKit {
                name: served.kit,
                version: served.version,
                lock_digest: served.lock_digest,
                index_digest: served.index_digest,
                pin,
            })
        })
        .collect()
}

/// One line of the report per kit: the lock digest, the registry's index, and the pin.
fn report_line(k: &LockedKit, registry: &str) -> String {
    let chain = format!(
        "- `{}` {}: lock digest `{}` = registry index `{}`",
        k.name, k.version, k.lock_digest, k.index_digest
    );
    match &k.pin {
        Pin::Pinned { published } => format!("{chain} = published {}\n", published.origin()),
        Pin::Trusted { published } => format!(
            "{chain}; **not** the published index `{}` ({}): taken because the registry is trusted \
             (`--trust-registry`)\n",
            published.index_digest,
            published.origin()
        ),
        Pin::Given { index_digest } => format!("{chain} = the given index `{index_digest}`\n"),
        Pin::Unpinned => format!(
            "{chain}; **unpinned**: no VERIFY of this checkout or its forest published it to {registry}, so \
             it is taken as the registry serves it\n"
        ),
    }
}

/// The twoliter `update` runs with: the repo's, else the one on PATH.
fn twoliter(v: &Variant) -> Result<std::path::PathBuf> {
    tools::twoliter(&v.repo, &super::makefile::install_twoliter_remedy(&v.repo))
}

/// Why the lock's schema-version is not the one the repo's twoliter loads (twoliter 0.12 and
/// later load only schema 2, and fail on a schema-1 lock at BUILD); `None` when it is, or when
/// no twoliter version can be told.
fn schema_mismatch(v: &Variant, lock: &lock::Lock) -> Option<String> {
    let version = twoliter(v)
        .ok()
        .and_then(|path| compat::installed_version(&path))
        .or_else(|| v.twoliter_version())?;
    let wanted = compat::lock_schema(&version);
    (lock.schema_version != wanted).then(|| {
        format!(
            "Twoliter.lock has schema-version {} but twoliter {version} loads only schema-version {wanted} \
             (\"failed to deserialize lockfile\"): run `twoliter update` in the variant repo to rewrite it",
            lock.schema_version
        )
    })
}

/// Compares `Twoliter.lock` with what the registry serves, and its schema with the one the
/// repo's twoliter loads.
fn check(v: &Variant, kits: &[LockedKit]) -> Result<()> {
    let path = v.repo.join("Twoliter.lock");
    let text = fsx::read_required(&path)
        .with_context(|| "run `tools/twoliter/twoliter update` in the variant repo".to_string())?;
    let parsed = lock::parse_lock(&text).with_context(|| format!("in {}", path.display()))?;
    if let Some(mismatch) = schema_mismatch(v, &parsed) {
        bail!("{mismatch}");
    }
    let wanted: Vec<lock::ExpectedKit> = kits
        .iter()
        .map(|k| lock::ExpectedKit {
            name: k.name.clone(),
            version: k.version.clone(),
            digest: k.lock_digest.clone(),
        })
        .collect();
    lock::check_lock(&parsed, &wanted)
        .with_context(|| format!("{} does not lock what the local registry serves", path.display()))
}

/// UPDATE_LOCK: Twoliter.lock holds the digests the registry serves.
pub(crate) struct UpdateLock;

impl Phase for UpdateLock {
    type Flow = Variant;
    type Data = LockData;
    const PHASE: VariantPhase = VariantPhase::UpdateLock;

    fn run(_sh: &Shell, v: &Variant) -> Result<(LockData, String)> {
        let phase = VariantPhase::UpdateLock;
        let kits = expected(v)?;
        let update_ran = if check(v, &kits).is_ok() {
            ui::info("Twoliter.lock already holds the digests the registry serves: `twoliter update` skipped");
            false
        } else {
            let twoliter = twoliter(v)?;
            let mut cmd = process::tool(&twoliter);
            cmd.arg("update").current_dir(&v.repo);
            ui::info("twoliter update");
            let log = v.ws.log_path(phase);
            Backups::new(&v.ws.dir).tool_writes("Twoliter.lock", || {
                process::stream(cmd, "[update-lock] ", &log)?.check("`twoliter update`", &log)
            })?;
            true
        };
        check(v, &kits)?;
        let mut report = String::from("# UPDATE_LOCK\n\n");
        report.push_str(if update_ran {
            "- ran `twoliter update`\n"
        } else {
            "- `twoliter update` skipped: the lock already matched\n"
        });
        let registry = v.config()?.registry;
        for k in &kits {
            report.push_str(&report_line(k, &registry));
            if let Pin::Trusted { published } = &k.pin {
                ui::warn(format!(
                    "kit {} {}: building from index {} that the registry serves, not the published {} \
                     (--trust-registry)",
                    k.name, k.version, k.index_digest, published.index_digest
                ));
            }
        }
        let lock_sha256 = lock_sha256(v)?;
        Ok((
            LockData {
                kits,
                update_ran,
                lock_sha256,
            },
            report,
        ))
    }

    /// The lock still matches what the registry serves now, which is still what was published
    /// (or trusted, or unpinned) as recorded.
    fn gate(_sh: &Shell, v: &Variant, data: &LockData) -> Result<()> {
        if lock_sha256(v)? != data.lock_sha256 {
            bail!("Twoliter.lock is not what UPDATE_LOCK left (changed since, or put back): run UPDATE_LOCK again");
        }
        let now = expected(v)?;
        check(v, &now)?;
        for (now, then) in now.iter().zip(&data.kits) {
            if !now.pin.agrees(&then.pin) {
                bail!(
                    "kit {} {} is {} now, but was {} when UPDATE_LOCK ran: run UPDATE_LOCK again",
                    now.name,
                    now.version,
                    now.pin.summary(),
                    then.pin.summary()
                );
            }
        }
        Ok(())
    }
}
