//! PUBLISH: the repo's publish entry point pushes the kit to the local vendor
//! (`make publish VENDOR=local KIT=…`, else `twoliter publish kit <kit> local`).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::build::{self, BuildData};
use super::Kit;
use crate::registry::Client;
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
        let port = kit.registry_port()?;
        let built: BuildData = kit.ws.succeeded::<build::Build>()?;
        // Publishing an archive of another build id fails inside twoliter with a less clear message.
        build::Build::gate(sh, kit, &built)?;
        super::run_in_repo(
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
        )?;
        let registry = format!("localhost:{port}");
        let tag = format!("v{}", built.release_version);
        // This build's image, under the per-arch tag publish pushed it as.
        let arch_tag = format!("{tag}-{}-{}", built.build_id, kit.arch);
        let Some(image) = Client::new(port).manifest(&kit.name, &arch_tag)? else {
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
        let port = crate::registry::local_port(&data.registry)?;
        let log = kit.ws.log_path(KitPhase::Publish);
        let Some(index) = Client::new(port).manifest(&data.repository, &data.tag)? else {
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
