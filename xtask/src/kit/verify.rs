//! VERIFY: through the registry's HTTP API, `<kit>:v<version>` exists, is an image index with
//! the arch's platform, and every image's kit label names this kit and version. Records the
//! digests the variant workflow checks its lock and fetched kits against.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::publish::{Publish, PublishData};
use super::Kit;
use crate::oci::{self, Manifest};
use crate::registry::Address;
use crate::workflow::{KitPhase, Phase};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VerifyData {
    pub(crate) kit: String,
    pub(crate) version: String,
    pub(crate) arch: String,
    pub(crate) registry: String,
    pub(crate) repository: String,
    pub(crate) tag: String,
    pub(crate) media_type: String,
    /// The registry's digest of the index (`sha256:…`).
    pub(crate) index_digest: String,
    /// The digest `twoliter update` writes into `Twoliter.lock` for this index.
    pub(crate) lock_digest: String,
    /// The registry digest of this arch's image manifest.
    pub(crate) arch_digest: String,
    pub(crate) platforms: Vec<String>,
    pub(crate) label: String,
}

/// VERIFY: what the registry serves is this kit, as an image index with the arch.
pub(crate) struct Verify;

impl Phase for Verify {
    type Flow = Kit;
    type Data = VerifyData;
    const PHASE: KitPhase = KitPhase::Verify;

    fn run(_sh: &Shell, kit: &Kit) -> Result<(VerifyData, String)> {
        let published: PublishData = kit.ws.succeeded::<Publish>()?;
        let version = kit.release_version()?;
        let data = check(kit, &published.registry, &version)?;
        let report = format!(
            "# VERIFY\n\n\
             - `{registry}/{repo}:{tag}` is an image index ({media}) with platforms {platforms}\n\
             - every image's `{label}` label names `{kit}` version `{version}`\n\
             - registry digest: `{index}`\n\
             - Twoliter.lock digest: `{lock}`\n\
             - {arch} image digest: `{arch_digest}`\n\n\
             Next, build a variant with this kit:\n\n    cargo xtask variant --kit {kit}@{version} --arch {arch}\n",
            registry = data.registry,
            repo = data.repository,
            tag = data.tag,
            media = data.media_type,
            platforms = data.platforms.join(", "),
            label = data.label,
            kit = data.kit,
            version = data.version,
            index = data.index_digest,
            lock = data.lock_digest,
            arch = data.arch,
            arch_digest = data.arch_digest,
        );
        Ok((data, report))
    }

    /// Asks the registry again, and the answer must still be the one recorded.
    fn gate(_sh: &Shell, kit: &Kit, data: &VerifyData) -> Result<()> {
        let now = check(kit, &data.registry, &data.version)?;
        if now.index_digest != data.index_digest {
            bail!(
                "the registry now serves {}:{} as {}, not the verified {}: the kit was re-published; run VERIFY again",
                data.repository,
                data.tag,
                now.index_digest,
                data.index_digest
            );
        }
        Ok(())
    }
}

/// The whole check against the registry.
pub(crate) fn check(kit: &Kit, registry: &str, version: &str) -> Result<VerifyData> {
    let client = crate::registry::connect(&Address::parse(registry)?)?;
    let tag = format!("v{version}");
    let index = client
        .manifest(&kit.name, &tag)?
        .with_context(|| format!("{registry}/{}:{tag} is not in the registry: run PUBLISH", kit.name))?;
    let Manifest::Index { manifests, media_type } = &index.manifest else {
        bail!(
            "{registry}/{}:{tag} is a single image ({}), not an image index: twoliter publishes kits as an index",
            kit.name,
            index.manifest.media_type()
        );
    };
    if media_type != oci::OCI_INDEX && media_type != oci::DOCKER_LIST {
        bail!(
            "{registry}/{}:{tag} has media type `{media_type}`, not an image index",
            kit.name
        );
    }
    let platforms: Vec<String> = manifests.iter().map(|m| m.platform_name()).collect();
    let ours = manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.architecture == kit.arch.oci() && p.os == "linux")
        })
        .with_context(|| {
            format!(
                "{registry}/{}:{tag} has no linux/{} image (platforms: {}): build and publish for {}",
                kit.name,
                kit.arch.oci(),
                platforms.join(", "),
                kit.arch
            )
        })?;
    let mut label = String::new();
    for entry in manifests {
        let image = client
            .manifest(&kit.name, &entry.digest)?
            .with_context(|| format!("the index lists {} but the registry does not serve it", entry.digest))?;
        let Manifest::Image { config, .. } = &image.manifest else {
            bail!("{} in {}:{tag} is not an image manifest", entry.digest, kit.name);
        };
        let blob = client.blob(&kit.name, &config.digest)?;
        let meta = oci::kit_metadata(&blob).with_context(|| {
            format!(
                "image {} ({}) of {}:{tag}",
                entry.digest,
                entry.platform_name(),
                kit.name
            )
        })?;
        if meta.name != kit.name || meta.version != version {
            bail!(
                "image {} ({}) of {}:{tag} carries kit `{}` version `{}` in its {} label, expected `{}` `{version}`",
                entry.digest,
                entry.platform_name(),
                kit.name,
                meta.name,
                meta.version,
                meta.label,
                kit.name
            );
        }
        label = meta.label;
    }
    Ok(VerifyData {
        kit: kit.name.clone(),
        version: version.to_string(),
        arch: kit.arch.to_string(),
        registry: registry.to_string(),
        repository: kit.name.clone(),
        tag,
        media_type: media_type.clone(),
        index_digest: index.digest.clone(),
        lock_digest: index.lock_digest()?,
        arch_digest: ours.digest.clone(),
        platforms,
        label,
    })
}
