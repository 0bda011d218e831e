//! PUBLISH: the repo's publish entry point pushes the kit to the local vendor
//! (`make publish VENDOR=local KIT=…`, else `twoliter publish kit <kit> local`). A registry
//! whose tags are immutable (ECR, Harbor) refuses a second push of a version: that refusal is
//! named with its fix.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::build::{self, BuildData};
use super::Kit;
use crate::registry::Address;
use crate::twoliter::LOCAL_VENDOR;
use crate::workflow::{KitPhase, Phase};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PublishData {
    pub(crate) registry: String,
    pub(crate) repository: String,
    pub(crate) tag: String,
    pub(crate) vendor: String,
    pub(crate) build_id: String,
    /// The registry digest of this build's image for the arch.
    pub(crate) image_digest: String,
}

/// PUBLISH: this build's image pushed under the index tag.
pub(crate) struct Publish;

impl Phase for Publish {
    type Flow = Kit;
    type Data = PublishData;
    const PHASE: KitPhase = KitPhase::Publish;

    fn run(sh: &Shell, kit: &Kit) -> Result<(PublishData, String)> {
        let phase = KitPhase::Publish;
        let address = kit.registry()?;
        let built: BuildData = kit.ws.succeeded::<build::Build>()?;
        // Publishing an archive of another build id fails inside twoliter with a less clear message.
        build::Build::gate(sh, kit, &built)?;
        let published = super::run_in_repo(
            kit,
            phase,
            &[
                "publish".into(),
                format!("VENDOR={LOCAL_VENDOR}"),
                format!("KIT={}", kit.name),
            ],
            &[vec![
                "publish".into(),
                "kit".into(),
                kit.name.clone(),
                LOCAL_VENDOR.into(),
            ]],
        );
        let tag = format!("v{}", built.release_version);
        if let Err(err) = published {
            let log = crate::fsx::read_tail(&kit.ws.log_path(phase), 64 * 1024).unwrap_or_default();
            if let Some(line) = immutable_tag_refusal(&log) {
                bail!(
                    "{address} refused to overwrite a tag of {kit} {tag}: its tags are immutable, and this version \
                     was pushed there before (the registry said: `{line}`): bump `release-version` in the kit repo's \
                     Twoliter.toml and build again, or delete the tags {address}/{kit}:{tag} and \
                     {address}/{kit}:{tag}-* in the registry and run again",
                    kit = kit.name,
                );
            }
            return Err(err);
        }
        let registry = address.to_string();
        let client = crate::registry::connect(&address)?;
        // This build's image, under the per-arch tag publish pushed it as.
        let arch_tag = format!("{tag}-{}-{}", built.build_id, kit.arch);
        let Some(image) = client.manifest(&kit.name, &arch_tag)? else {
            bail!(
                "{registry}/{}:{arch_tag} is not in the registry: publishing did not push this build (see {})",
                kit.name,
                kit.ws.log_path(phase).display()
            );
        };
        if image.digest != built.image_digest {
            bail!(
                "{registry}/{}:{arch_tag} is image {}, not {} that {} holds: publishing pushed another build \
                 (see {})",
                kit.name,
                image.digest,
                built.image_digest,
                built.archive.display(),
                kit.ws.log_path(phase).display()
            );
        }
        let data = PublishData {
            registry,
            repository: kit.name.clone(),
            tag,
            vendor: LOCAL_VENDOR.to_string(),
            build_id: built.build_id,
            image_digest: image.digest,
        };
        let report = format!(
            "# PUBLISH\n\n- pushed `{}/{}:{}` (vendor `{}`, build `{}`, {} image `{}`)\n- log: `{}`\n",
            data.registry,
            data.repository,
            data.tag,
            data.vendor,
            data.build_id,
            kit.arch,
            data.image_digest,
            kit.ws.log_path(phase).display()
        );
        Ok((data, report))
    }

    /// The index tag references this build's image (not one published from another build).
    fn gate(_sh: &Shell, kit: &Kit, data: &PublishData) -> Result<()> {
        let client = crate::registry::connect(&Address::parse(&data.registry)?)?;
        let log = kit.ws.log_path(KitPhase::Publish);
        let Some(index) = client.manifest(&data.repository, &data.tag)? else {
            bail!(
                "{}/{}:{} is not in the registry (see {})",
                data.registry,
                data.repository,
                data.tag,
                log.display()
            );
        };
        let referenced = match &index.manifest {
            crate::oci::Manifest::Index { manifests, .. } => manifests.iter().any(|m| m.digest == data.image_digest),
            crate::oci::Manifest::Image { .. } => false,
        };
        if !referenced {
            bail!(
                "{}/{}:{} does not reference this build's image {}: it was published from another build, or lost",
                data.registry,
                data.repository,
                data.tag,
                data.image_digest
            );
        }
        Ok(())
    }
}

/// Pure: the line of a publish log where the registry refused to overwrite a tag (immutable
/// tags: ECR's `TAG_INVALID` "tag … already exists", Harbor's `MANIFEST_TAG_IMMUTABLE` or 403
/// "immutable"), if any.
pub(crate) fn immutable_tag_refusal(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find(|line| {
            let lower = line.to_lowercase();
            line.contains("TAG_INVALID")
                || line.contains("MANIFEST_TAG_IMMUTABLE")
                || (lower.contains("tag") && lower.contains("already exists"))
                || (lower.contains("tag") && lower.contains("immutable"))
        })
        .map(|line| line.trim().chars().take(400).collect())
}

#[cfg(test)]
mod tests {
    use super::immutable_tag_refusal;

    #[test]
    fn immutable_tag_refusals_are_recognised() {
        for line in [
            "[publish] Error: failed to push manifest r/k:v1.0.0: 400 TAG_INVALID: The image tag 'v1.0.0' already exists in the 'k' repository and cannot be overwritten because the repository is immutable.",
            "Error: PUT manifest: 403 MANIFEST_TAG_IMMUTABLE: configured as immutable",
            "unexpected status code 400 Bad Request: tag v1.0.0 already exists",
        ] {
            let log = format!("pushed something\n{line}\nmake: *** [publish] Error 1\n");
            assert_eq!(immutable_tag_refusal(&log).as_deref(), Some(line.trim()), "{line}");
        }
        assert_eq!(immutable_tag_refusal("Error: cannot reach registry\n"), None);
    }
}
