//! PUBLISH: the repo's publish entry point pushes the kit to the local vendor
//! (`make publish VENDOR=local KIT=…`, else `twoliter publish kit <kit> local`).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::{build::BuildData, Kit, LOCAL_VENDOR};
use crate::registry::Client;
use crate::workflow::Workflow;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishData {
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub vendor: String,
    pub build_id: String,
}

pub fn run(sh: &Shell, kit: &Kit) -> Result<(PublishData, String)> {
    let phase = Workflow::Kit.phase("publish").expect("kit phase");
    let port = kit.registry_port()?;
    let built: BuildData = kit.ws.succeeded(Workflow::Kit, "build")?;
    // Publishing an archive of another build id fails inside twoliter with a less clear message.
    super::build::gate(sh, kit, &built)?;
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
    let data = PublishData {
        registry: format!("localhost:{port}"),
        repository: kit.name.clone(),
        tag: format!("v{}", built.release_version),
        vendor: LOCAL_VENDOR.to_string(),
        build_id: built.build_id,
    };
    gate(sh, kit, &data)?;
    let report = format!(
        "# PUBLISH\n\n- pushed `{}/{}:{}` (vendor `{}`, build `{}`)\n- log: `{}`\n",
        data.registry,
        data.repository,
        data.tag,
        data.vendor,
        data.build_id,
        kit.ws.log_path(phase).display()
    );
    Ok((data, report))
}

/// The registry serves this build's image under its per-arch tag, and the index tag
/// references exactly that image (not one published from another build).
pub fn gate(_sh: &Shell, kit: &Kit, data: &PublishData) -> Result<()> {
    let port = crate::workflow::workspace::registry_port(&data.registry)?;
    let client = Client::new(port);
    let log = kit.ws.log_path(Workflow::Kit.phase("publish").expect("kit phase"));
    let arch_tag = format!("{}-{}-{}", data.tag, data.build_id, kit.arch);
    let Some(image) = client.manifest(&data.repository, &arch_tag)? else {
        bail!(
            "{}/{}:{arch_tag} is not in the registry: publishing did not push this build (see {})",
            data.registry,
            data.repository,
            log.display()
        );
    };
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
        crate::oci::Manifest::Index { manifests, .. } => manifests.iter().any(|m| m.digest == image.digest),
        crate::oci::Manifest::Image { .. } => false,
    };
    if !referenced {
        bail!(
            "{}/{}:{} does not reference this build's image {} ({arch_tag}): it was published from another build",
            data.registry,
            data.repository,
            data.tag,
            image.digest
        );
    }
    Ok(())
}
