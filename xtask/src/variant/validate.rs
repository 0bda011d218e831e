//! VALIDATE: the images are this build's (`latest` names the variant repo's build id now),
//! complete and intact (see `image`), and the kit the build fetched is the one the local
//! registry serves — the image was built from the kit that was published. How old the images
//! are does not matter: a build that had nothing to redo leaves them as they were.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::{Strategy, Variant};
use crate::image::{self, Expect, ImageReport};
use crate::oci::Manifest;
use crate::registry::Client;
use crate::twoliter::LOCAL_VENDOR;
use crate::ui;
use crate::workflow::{Phase, PhaseKind, VariantPhase};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FetchedKit {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) vendor: String,
    /// `build/external-kits/<vendor>/<kit>/<arch>/digest`
    pub(crate) digest_file: std::path::PathBuf,
    pub(crate) digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ValidateData {
    pub(crate) images: ImageReport,
    pub(crate) kits: Vec<FetchedKit>,
    /// Size and modification time of each image file, so the gate can tell they are untouched.
    pub(crate) stamps: Vec<(std::path::PathBuf, u64, u64)>,
}

/// VALIDATE: the images are complete and intact, built from the published kits.
pub(crate) struct Validate;

impl Phase for Validate {
    type Flow = Variant;
    type Data = ValidateData;
    const PHASE: VariantPhase = VariantPhase::Validate;

    fn run(sh: &Shell, v: &Variant) -> Result<(ValidateData, String)> {
        let config = v.config()?;
        let expect = Expect {
            variant: v.variant.clone(),
            arch: v.arch,
            release_version: config.release_version.clone(),
            build_id: Some(v.build_id(sh)?),
            built_after: None,
            data_image: v.split_partitions()?,
        };
        let images = image::validate(&v.images_root(), &expect)?;
        let kits = check_fetched_kits(v)?;
        let stamps = stamps(&images)?;
        let report = final_report(v, &images, &kits);
        Ok((ValidateData { images, kits, stamps }, report))
    }

    /// The images are the ones validated (same size and time), still those of the repo's build
    /// id, and the fetched kits still match.
    fn gate(sh: &Shell, v: &Variant, data: &ValidateData) -> Result<()> {
        if stamps(&data.images)? != data.stamps {
            bail!("the images changed since VALIDATE: run VALIDATE again");
        }
        let now = v.build_id(sh)?;
        if data.images.build_id.as_deref() != Some(now.as_str()) {
            bail!(
                "the validated images are of build `{}`, but the variant repo's build id is now `{now}`: run \
                 BUILD and VALIDATE again",
                data.images.build_id.as_deref().unwrap_or("unknown")
            );
        }
        check_fetched_kits(v)?;
        Ok(())
    }
}

/// After the repo's files were put back (which changes its build id), what VALIDATE proved still
/// holds: the images it checked are there, untouched, and the fetched kits are the ones the
/// registry serves.
pub(crate) fn images_unchanged(v: &Variant) -> Result<()> {
    let data = v.ws.succeeded::<Validate>()?;
    if stamps(&data.images)? != data.stamps {
        bail!("the images changed since VALIDATE");
    }
    check_fetched_kits(v)?;
    Ok(())
}

fn stamps(images: &ImageReport) -> Result<Vec<(std::path::PathBuf, u64, u64)>> {
    images
        .files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(&f.path).with_context(|| format!("{} is gone", f.path.display()))?;
            let mtime = meta.modified()?.duration_since(UNIX_EPOCH)?.as_nanos() as u64;
            Ok((f.path.clone(), meta.len(), mtime))
        })
        .collect()
}

/// Each kit's `build/external-kits/<vendor>/<kit>/<arch>/digest` names the image of this arch
/// that the local registry serves for the kit's version.
fn check_fetched_kits(v: &Variant) -> Result<Vec<FetchedKit>> {
    let config = v.config()?;
    let client = Client::new(config.port);
    let mut kits = Vec::new();
    for kit in &config.kits {
        let vendor = if v.strategy == Strategy::Vendor {
            LOCAL_VENDOR.to_string()
        } else {
            kit.vendor.clone()
        };
        let digest_file = v
            .repo
            .join("build/external-kits")
            .join(&vendor)
            .join(&kit.name)
            .join(v.arch.name())
            .join("digest");
        let found = std::fs::read_to_string(&digest_file).with_context(|| {
            format!(
                "{} is missing: the build did not fetch kit {}",
                digest_file.display(),
                kit.name
            )
        })?;
        let tag = format!("v{}", kit.version);
        let index = client
            .manifest(&kit.name, &tag)?
            .with_context(|| format!("{}/{}:{tag} is no longer in the registry", config.registry, kit.name))?;
        let Manifest::Index { manifests, .. } = &index.manifest else {
            bail!("{}/{}:{tag} is not an image index", config.registry, kit.name);
        };
        let ours = manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| p.architecture == v.arch.oci()))
            .with_context(|| {
                format!(
                    "{}/{}:{tag} has no linux/{} image",
                    config.registry,
                    kit.name,
                    v.arch.oci()
                )
            })?;
        let found = found.trim();
        if found.strip_prefix("sha256:").unwrap_or(found) != ours.digest.strip_prefix("sha256:").unwrap_or(&ours.digest)
        {
            bail!(
                "{} says the build used kit image {found}, but the local registry serves {} for {}:{tag} ({}): the \
                 image was not built from the published kit; run UPDATE_LOCK and BUILD again",
                digest_file.display(),
                ours.digest,
                kit.name,
                v.arch
            );
        }
        kits.push(FetchedKit {
            name: kit.name.clone(),
            version: kit.version.clone(),
            vendor,
            digest_file,
            digest: ours.digest.clone(),
        });
    }
    Ok(kits)
}

fn final_report(v: &Variant, images: &ImageReport, kits: &[FetchedKit]) -> String {
    let mut out = format!("# FINAL — {} {} images\n\n## Images\n\n", v.variant, v.arch);
    for f in &images.files {
        out.push_str(&format!("- `{}` ({})\n", f.path.display(), ui::bytes(f.bytes)));
    }
    if let Some(id) = &images.build_id {
        out.push_str(&format!("\n## Build id\n\n`{id}`"));
        if id.ends_with("-dirty") {
            out.push_str(
                ": `-dirty` because the build ran with the tracked `Twoliter.lock` (and `Twoliter.toml`) \
                 edited to take the kits from the local registry, and twoliter names images after \
                 `git describe --dirty`. The files are restored afterwards; the image names keep the suffix.",
            );
        }
        out.push('\n');
    }
    out.push_str("\n## Kits\n\n");
    for k in kits {
        out.push_str(&format!(
            "- `{}` {} (vendor `{}`): {} image `{}`\n",
            k.name, k.version, k.vendor, v.arch, k.digest
        ));
    }
    out.push_str("\n## Time per phase\n\n");
    for &phase in VariantPhase::ALL.iter().filter(|p| **p != VariantPhase::Validate) {
        if let Ok(Some(r)) = v.ws.result_value(phase) {
            out.push_str(&format!(
                "- {}: {}\n",
                phase.title(),
                ui::duration(Duration::from_millis(r.duration_ms))
            ));
        }
    }
    out.push_str(&format!(
        "- VALIDATE: this report\n\n## Next\n\n\
         - Boot it: decompress with `lz4 -d` and run the raw disk in a VM, or upload it as an AMI with \
         `cargo make -e BUILDSYS_VARIANT={var} -e BUILDSYS_ARCH={arch} ami` in {repo}.\n\
         - Restore the variant repo's files (done automatically by `cargo xtask variant` unless \
         `--keep-config`): `cargo xtask restore {ws}`\n",
        var = v.variant,
        arch = v.arch,
        repo = v.repo.display(),
        ws = v.ws.dir.display()
    ));
    out
}
