//! VALIDATE: the images are this build's (`latest` names the variant repo's build id now),
//! complete and intact (see `image`), and the kit the build fetched is the one the local
//! registry serves, which is the one this checkout or its forest published (see [`pin`]): the
//! image was built from the kit that was published. How old the images are does not matter: a
//! build that had nothing to redo leaves them as they were.
//!
//! [`pin`]: super::pin

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::pin::{self, Pin, Served};
use super::{Strategy, Variant};
use crate::arch::Arch;
use crate::image::{self, Expect, ImageReport};
use crate::oci::Manifest;
use crate::twoliter::{lock, LOCAL_VENDOR};
use crate::workflow::{Phase, PhaseKind, VariantPhase};
use crate::{fsx, ui};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FetchedKit {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) vendor: String,
    /// `build/external-kits/<vendor>/<kit>/<arch>/digest`
    pub(crate) digest_file: std::path::PathBuf,
    /// The registry digest of the arch's image the build fetched.
    pub(crate) digest: String,
    /// The registry's digest of the index it serves for the version.
    pub(crate) index_digest: String,
    /// The lock digest of that index, which `Twoliter.lock` holds.
    pub(crate) lock_digest: String,
    /// How it stands against what this checkout or its forest published.
    pub(crate) pin: Pin,
}

/// Whether the repo's files still point at the local kits (while the workflow runs), so that
/// `Twoliter.lock` must lock them, or were put back (after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RepoFiles {
    Edited,
    Restored,
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
        let kits = check_fetched_kits(v, RepoFiles::Edited)?;
        let stamps = stamps(&images)?;
        let report = final_report(v, &config.registry, &images, &kits);
        Ok((ValidateData { images, kits, stamps }, report))
    }

    /// The images are the ones validated (same size and time), still those of the repo's build
    /// id, and the fetched kits still match what is served and was published, as recorded.
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
        let kits = check_fetched_kits(v, RepoFiles::Edited)?;
        same_kits(&kits, &data.kits)
    }
}

/// The fetched kits are still the ones VALIDATE reported, judged the same way against what was
/// published, so FINAL.md still says what holds.
fn same_kits(now: &[FetchedKit], then: &[FetchedKit]) -> Result<()> {
    if now.len() != then.len() {
        bail!("the kits are not those VALIDATE reported: run VALIDATE again");
    }
    for (now, then) in now.iter().zip(then) {
        if now.digest != then.digest || now.index_digest != then.index_digest || !now.pin.agrees(&then.pin) {
            bail!(
                "kit {} {} is now image {} of index {}, {}; VALIDATE reported image {} of index {}, {}: run \
                 VALIDATE again",
                now.name,
                now.version,
                now.digest,
                now.index_digest,
                now.pin.summary(),
                then.digest,
                then.index_digest,
                then.pin.summary()
            );
        }
    }
    Ok(())
}

/// After the repo's files were put back (which changes its build id), what VALIDATE proved still
/// holds: the images it checked are there, untouched, and the fetched kits are the ones the
/// registry serves.
pub(crate) fn images_unchanged(v: &Variant) -> Result<()> {
    let data = v.ws.succeeded::<Validate>()?;
    if stamps(&data.images)? != data.stamps {
        bail!("the images changed since VALIDATE");
    }
    let kits = check_fetched_kits(v, RepoFiles::Restored)?;
    same_kits(&kits, &data.kits)
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
/// in the index the local registry serves for the kit's version, and that index is the one
/// this checkout or its forest published (unless the registry is trusted, or nothing was
/// published here). While the repo's files are edited, `Twoliter.lock` locks that index too.
fn check_fetched_kits(v: &Variant, files: RepoFiles) -> Result<Vec<FetchedKit>> {
    let config = v.config()?;
    let client = crate::registry::connect(&crate::registry::Address::parse(&config.registry)?)?;
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
        let served = Served::of(&kit.name, &kit.version, &config.registry, &index)?;
        // First what is served against what was published: that names both digests.
        let pin = pin::check(&served, v.given_digest(&kit.name), v.input.trust_registry)?;
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
        if bare(found) != bare(&ours.digest) {
            bail!(
                "{} says the build used kit image {found}, but the local registry serves {} for {}:{tag} ({}): the \
                 image was not built from the published kit; run UPDATE_LOCK and BUILD again",
                digest_file.display(),
                ours.digest,
                kit.name,
                v.arch
            );
        }
        // The published index is the served one, so it lists this image; VERIFY also recorded
        // the image of its own arch, which must be it.
        if let Pin::Pinned { published } = &pin {
            if published.arch == v.arch.name() && bare(&published.arch_digest) != bare(&ours.digest) {
                bail!(
                    "kit {} {}: VERIFY recorded {} image {} {}, but the build used {}: rebuild and republish the \
                     kit with `cargo xtask build-kit --kit {}`",
                    kit.name,
                    kit.version,
                    published.arch,
                    published.arch_digest,
                    published.origin(),
                    ours.digest,
                    kit.name
                );
            }
        }
        kits.push(FetchedKit {
            name: kit.name.clone(),
            version: kit.version.clone(),
            vendor,
            digest_file,
            digest: ours.digest.clone(),
            index_digest: served.index_digest,
            lock_digest: served.lock_digest,
            pin,
        });
    }
    if files == RepoFiles::Edited {
        check_lock(v, &kits)?;
    }
    Ok(kits)
}

/// A digest without its `sha256:` prefix (the fetched kit's `digest` file may have none).
fn bare(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// `Twoliter.lock` locks the index of every fetched kit.
fn check_lock(v: &Variant, kits: &[FetchedKit]) -> Result<()> {
    let path = v.repo.join("Twoliter.lock");
    let parsed = lock::parse_lock(&fsx::read_required(&path)?).with_context(|| format!("in {}", path.display()))?;
    let wanted: Vec<lock::ExpectedKit> = kits
        .iter()
        .map(|k| lock::ExpectedKit {
            name: k.name.clone(),
            version: k.version.clone(),
            digest: k.lock_digest.clone(),
        })
        .collect();
    lock::check_lock(&parsed, &wanted).with_context(|| {
        format!(
            "{} does not lock the kits the build fetched: run UPDATE_LOCK and BUILD again",
            path.display()
        )
    })
}

/// Each kit's chain: published (VERIFY) = served by the registry = locked = fetched.
fn kits_section(arch: Arch, registry: &str, kits: &[FetchedKit]) -> String {
    let mut out = format!(
        "\n## Kits\n\nFrom the registry `{registry}`, each as published (the newest VERIFY of this checkout or its \
         forest) = the index the registry serves = the digest `Twoliter.lock` locks = the image the build fetched.\n\n"
    );
    for k in kits {
        let head = format!("- `{}` {} (vendor `{}`)", k.name, k.version, k.vendor);
        let fetched = format!("fetched {arch} image `{}` (`{}`)", k.digest, k.digest_file.display());
        let fetched = match &k.pin {
            Pin::Pinned { published } => {
                let listed = if published.arch == arch.name() {
                    format!("the published {} image", published.arch)
                } else {
                    "in the published index".to_string()
                };
                out.push_str(&format!(
                    "{head}: **pinned**\n  - published: index `{}`, lock digest `{}`, VERIFY {} (workspace `{}`)\n  \
                     - = registry index `{}`\n",
                    published.index_digest,
                    published.lock_digest,
                    published.origin(),
                    published.workspace.display(),
                    k.index_digest
                ));
                format!("{fetched}, {listed}")
            }
            Pin::Trusted { published } => {
                out.push_str(&format!(
                    "{head}: **registry trusted** (`--trust-registry`), not the kit published here\n  \
                     - published: index `{}`, lock digest `{}`, VERIFY {} (workspace `{}`)\n  \
                     - ≠ registry index `{}`, taken as the registry serves it\n",
                    published.index_digest,
                    published.lock_digest,
                    published.origin(),
                    published.workspace.display(),
                    k.index_digest
                ));
                fetched
            }
            Pin::Given { index_digest } => {
                out.push_str(&format!(
                    "{head}: **pinned by digest** (given as `{}@{}@{index_digest}`, published elsewhere)\n  \
                     - given: index `{index_digest}`\n  - = registry index `{}`\n",
                    k.name, k.version, k.index_digest
                ));
                fetched
            }
            Pin::Unpinned => {
                out.push_str(&format!(
                    "{head}: **unpinned**: no VERIFY of this checkout or its forest published it to {registry}, so \
                     it was taken as the registry serves it\n  - registry index `{}`\n",
                    k.index_digest
                ));
                fetched
            }
        };
        out.push_str(&format!(
            "  - = `Twoliter.lock` digest `{}`\n  - = {fetched}\n",
            k.lock_digest
        ));
    }
    out
}

fn final_report(v: &Variant, registry: &str, images: &ImageReport, kits: &[FetchedKit]) -> String {
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
    out.push_str(&kits_section(v.arch, registry, kits));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variant::pin::Published;

    fn kit(name: &str, pin: Pin, index: &str) -> FetchedKit {
        FetchedKit {
            name: name.into(),
            version: "1.2.3".into(),
            vendor: "bottlerocket".into(),
            digest_file: format!("/v/build/external-kits/bottlerocket/{name}/x86_64/digest").into(),
            digest: "sha256:a1".into(),
            index_digest: index.into(),
            lock_digest: "L1=".into(),
            pin,
        }
    }

    fn published(arch: &str) -> Published {
        Published {
            kit: "k".into(),
            version: "1.2.3".into(),
            index_digest: "sha256:i0".into(),
            lock_digest: "L0=".into(),
            arch: arch.into(),
            arch_digest: "sha256:a1".into(),
            verified_at: 1_795_000_000,
            workspace: "/k/planning/build-kit-k-x86_64".into(),
            kit_dir: Some("/k".into()),
            build_id: Some("1a2b3c4d".into()),
        }
    }

    #[test]
    fn final_md_shows_each_kits_chain() {
        let mut same = published("x86_64");
        same.index_digest = "sha256:i1".into();
        same.lock_digest = "L1=".into();
        let mut other_arch = same.clone();
        other_arch.arch = "aarch64".into();
        let kits = [
            kit("core-kit", Pin::Pinned { published: same }, "sha256:i1"),
            kit("arm-kit", Pin::Pinned { published: other_arch }, "sha256:i1"),
            kit(
                "kernel-kit",
                Pin::Trusted {
                    published: published("x86_64"),
                },
                "sha256:i1",
            ),
            kit("their-kit", Pin::Unpinned, "sha256:i1"),
        ];
        expect_test::expect![[r#"

            ## Kits

            From the registry `localhost:5123`, each as published (the newest VERIFY of this checkout or its forest) = the index the registry serves = the digest `Twoliter.lock` locks = the image the build fetched.

            - `core-kit` 1.2.3 (vendor `bottlerocket`): **pinned**
              - published: index `sha256:i1`, lock digest `L1=`, VERIFY at 2026-11-18 11:06:40 UTC, build `1a2b3c4d` of `/k` (workspace `/k/planning/build-kit-k-x86_64`)
              - = registry index `sha256:i1`
              - = `Twoliter.lock` digest `L1=`
              - = fetched x86_64 image `sha256:a1` (`/v/build/external-kits/bottlerocket/core-kit/x86_64/digest`), the published x86_64 image
            - `arm-kit` 1.2.3 (vendor `bottlerocket`): **pinned**
              - published: index `sha256:i1`, lock digest `L1=`, VERIFY at 2026-11-18 11:06:40 UTC, build `1a2b3c4d` of `/k` (workspace `/k/planning/build-kit-k-x86_64`)
              - = registry index `sha256:i1`
              - = `Twoliter.lock` digest `L1=`
              - = fetched x86_64 image `sha256:a1` (`/v/build/external-kits/bottlerocket/arm-kit/x86_64/digest`), in the published index
            - `kernel-kit` 1.2.3 (vendor `bottlerocket`): **registry trusted** (`--trust-registry`), not the kit published here
              - published: index `sha256:i0`, lock digest `L0=`, VERIFY at 2026-11-18 11:06:40 UTC, build `1a2b3c4d` of `/k` (workspace `/k/planning/build-kit-k-x86_64`)
              - ≠ registry index `sha256:i1`, taken as the registry serves it
              - = `Twoliter.lock` digest `L1=`
              - = fetched x86_64 image `sha256:a1` (`/v/build/external-kits/bottlerocket/kernel-kit/x86_64/digest`)
            - `their-kit` 1.2.3 (vendor `bottlerocket`): **unpinned**: no VERIFY of this checkout or its forest published it to localhost:5123, so it was taken as the registry serves it
              - registry index `sha256:i1`
              - = `Twoliter.lock` digest `L1=`
              - = fetched x86_64 image `sha256:a1` (`/v/build/external-kits/bottlerocket/their-kit/x86_64/digest`)
        "#]]
        .assert_eq(&kits_section(Arch::X86_64, "localhost:5123", &kits));
    }
}
