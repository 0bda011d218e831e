//! BUILD: the repo's own entry point builds the kit for the arch (`make build ARCH=… KIT=…`,
//! else `twoliter fetch` + `twoliter build kit`); the result is the kit archive named with the
//! current build id, computed as the repo's twoliter computes it (its length depends on the
//! twoliter version, see `compat::build_id_abbrev`).
//!
//! A build is judged by identity, never by time: twoliter rebuilds a kit only when something
//! buildsys watches changed, and otherwise leaves the archive as it was, however old. So the
//! archive for this build id must exist, and what BUILD recorded (its size and the digest of the
//! image it holds, the repo's fingerprint) must still hold.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::Kit;
use crate::oci::{self, Manifest};
use crate::workflow::{KitPhase, Phase};
use crate::{git, ui};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BuildData {
    pub(crate) archive: PathBuf,
    pub(crate) build_id: String,
    pub(crate) release_version: String,
    pub(crate) size: u64,
    /// The registry digest of the image the archive holds (its manifest's `sha256:…`), which
    /// publishing pushes unchanged.
    pub(crate) image_digest: String,
    /// Tracked files differed from the commit: publish finds this archive only as long as
    /// the tree stays exactly as it is.
    pub(crate) dirty: bool,
    /// What the build depended on (see `fingerprint`).
    pub(crate) fingerprint: String,
    /// The version of the twoliter that built it, when it could be told.
    #[serde(default)]
    pub(crate) twoliter: Option<String>,
}

/// `build/kits/<kit>/<kit>-v<version>-<build-id>-<arch>.tar`
pub(crate) fn archive_path(kit: &Kit, version: &str, build_id: &str) -> PathBuf {
    kit.repo
        .join("build/kits")
        .join(&kit.name)
        .join(format!("{}-v{version}-{build_id}-{}.tar", kit.name, kit.arch))
}

/// The registry digest of the one image an OCI image-layout archive holds, after checking that
/// the manifest stored in it has that digest.
pub(crate) fn archive_image(archive: &Path) -> Result<String> {
    let index = crate::tar::read_member(archive, &|name| name == "index.json", 1 << 20)?
        .with_context(|| format!("{} has no index.json: it is not an OCI image layout", archive.display()))?;
    let Manifest::Index { manifests, .. } = Manifest::parse(&index, Some(oci::OCI_INDEX))
        .with_context(|| format!("index.json of {}", archive.display()))?
    else {
        bail!("index.json of {} is not an image index", archive.display());
    };
    let [image] = manifests.as_slice() else {
        bail!(
            "{} holds {} images, where a kit archive holds one",
            archive.display(),
            manifests.len()
        );
    };
    let blob_name = format!(
        "blobs/sha256/{}",
        image.digest.strip_prefix("sha256:").unwrap_or(&image.digest)
    );
    let manifest = crate::tar::read_member(archive, &|name| name == blob_name, 16 << 20)?
        .with_context(|| format!("{} lacks {blob_name}, the manifest its index names", archive.display()))?;
    if oci::content_digest(&manifest) != image.digest {
        bail!(
            "{} is damaged: {blob_name} does not have the digest its name says",
            archive.display()
        );
    }
    Ok(image.digest.clone())
}

/// BUILD: the kit archive of this build id.
pub(crate) struct Build;

impl Phase for Build {
    type Flow = Kit;
    type Data = BuildData;
    const PHASE: KitPhase = KitPhase::Build;

    fn run(sh: &Shell, kit: &Kit) -> Result<(BuildData, String)> {
        let phase = KitPhase::Build;
        crate::docker_engine::require_local_for("BUILD")?;
        let version = kit.release_version()?;
        let arch = kit.arch.to_string();
        let twoliter = kit.twoliter_version();
        let expected = archive_path(kit, &version, &kit.build_id(sh, twoliter.as_ref())?);
        if !is_recorded_archive(kit, &expected) {
            invalidate_kit_build(kit)?;
        }
        super::run_in_repo(
            kit,
            phase,
            &["build".into(), format!("ARCH={arch}"), format!("KIT={}", kit.name)],
            &[
                vec!["fetch".into(), "--arch".into(), arch.clone()],
                vec![
                    "build".into(),
                    "kit".into(),
                    kit.name.clone(),
                    "--arch".into(),
                    arch.clone(),
                ],
            ],
        )?;
        // `make build` may have installed another twoliter (the pinned one).
        let twoliter = kit.twoliter_version();
        let build_id = kit.build_id(sh, twoliter.as_ref())?;
        let fingerprint = crate::fingerprint::compute(sh, &kit.repo, kit.arch, &version_text(twoliter.as_ref()))?;
        let archive = archive_path(kit, &version, &build_id);
        let meta =
            std::fs::metadata(&archive).map_err(|_| missing_archive(kit, &version, &build_id, twoliter.as_ref()))?;
        let image_digest = archive_image(&archive)?;
        let dirty = build_id.ends_with("-dirty");
        if dirty {
            ui::warn(format!(
                "the kit repo has uncommitted changes, so the build id is `{build_id}`: if a tracked \
                 file changes before PUBLISH, publish looks for another archive name and fails"
            ));
        }
        let data = BuildData {
            archive: archive.clone(),
            build_id,
            release_version: version,
            size: meta.len(),
            image_digest,
            dirty,
            fingerprint,
            twoliter: twoliter.map(|v| v.to_string()),
        };
        let report = format!(
            "# BUILD\n\n- archive: `{}` ({}), image `{}`\n- build id: `{}`{}\n- twoliter: {}\n- log: `{}`\n",
            archive.display(),
            ui::bytes(data.size),
            data.image_digest,
            data.build_id,
            if dirty {
                " (tree dirty: commit or keep it unchanged until PUBLISH)"
            } else {
                ""
            },
            data.twoliter.as_deref().unwrap_or("version unknown"),
            kit.ws.log_path(phase).display()
        );
        Ok((data, report))
    }

    /// The tree still has the build id the archive was built at, the archive of that id still
    /// holds the image recorded, and nothing the build depends on changed.
    fn gate(sh: &Shell, kit: &Kit, data: &BuildData) -> Result<()> {
        let twoliter = kit.twoliter_version();
        let now = kit.build_id(sh, twoliter.as_ref())?;
        if now != data.build_id {
            bail!(
                "the kit repo changed since BUILD (build id was `{}`, now `{now}`): publish would look for \
                 {} — run BUILD again",
                data.build_id,
                archive_path(kit, &data.release_version, &now).display()
            );
        }
        check_archive(data)?;
        if crate::fingerprint::compute(sh, &kit.repo, kit.arch, &version_text(twoliter.as_ref()))? != data.fingerprint {
            bail!(
                "the kit repo's content changed since BUILD (uncommitted edits, new files or another \
                 twoliter): run BUILD again"
            );
        }
        Ok(())
    }
}

/// The archive BUILD recorded is there, of the same size, holding the same image.
fn check_archive(data: &BuildData) -> Result<()> {
    let Ok(meta) = std::fs::metadata(&data.archive) else {
        bail!("{} is gone: run BUILD again", data.archive.display());
    };
    let image =
        archive_image(&data.archive).map(Some).or_else(
            |err| {
                if meta.len() == data.size {
                    Err(err)
                } else {
                    Ok(None)
                }
            },
        )?;
    if meta.len() != data.size || image.as_deref() != Some(data.image_digest.as_str()) {
        bail!(
            "{} is not the archive BUILD made (it was {} holding image {}, it is now {}{}): run BUILD again",
            data.archive.display(),
            ui::bytes(data.size),
            data.image_digest,
            ui::bytes(meta.len()),
            image.map(|d| format!(" holding {d}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// Whether `archive` is the one the last BUILD recorded, unchanged.
fn is_recorded_archive(kit: &Kit, archive: &Path) -> bool {
    kit.ws
        .succeeded::<Build>()
        .is_ok_and(|data| data.archive == archive && check_archive(&data).is_ok())
}

/// buildsys reruns a kit build only when something it watches changed, the kit's Cargo.toml
/// among them (by modification time), never because the archive is missing or was replaced:
/// touching Cargo.toml makes it build the kit again (its packages are not rebuilt).
fn invalidate_kit_build(kit: &Kit) -> Result<()> {
    let manifest = kit.repo.join("kits").join(&kit.name).join("Cargo.toml");
    if !manifest.is_file() {
        return Ok(());
    }
    ui::info(format!(
        "no archive of this build is on record: touching {} so that the kit is built again",
        manifest.display()
    ));
    fs_err::File::options()
        .write(true)
        .open(&manifest)?
        .set_modified(std::time::SystemTime::now())
        .with_context(|| format!("cannot touch {}", manifest.display()))
}

fn version_text(twoliter: Option<&semver::Version>) -> String {
    twoliter.map(|v| v.to_string()).unwrap_or_default()
}

/// Why the archive of this build id is not there, with the archives the kit has for the arch:
/// most likely the build id was computed otherwise than the twoliter that built it does, or the
/// tree changed during the build.
fn missing_archive(kit: &Kit, version: &str, build_id: &str, twoliter: Option<&semver::Version>) -> anyhow::Error {
    let expected = archive_path(kit, version, build_id);
    let dir = expected.parent().unwrap_or(&kit.repo).to_path_buf();
    let suffix = format!("-{}.tar", kit.arch);
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&format!("{}-v", kit.name)) && name.ends_with(&suffix))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let which = match twoliter {
        Some(v) => format!("twoliter {v}"),
        None => "a twoliter of unknown version (taken as the newest)".to_string(),
    };
    anyhow::anyhow!(
        "the build finished but {} is missing. For {which} the build id is `{build_id}` (`{}`); {} \
         (did the tree change during the build, or does the repo's twoliter name builds otherwise?); \
         see {}",
        expected.display(),
        git::build_id_command(crate::twoliter::compat::build_id_abbrev(twoliter)),
        if found.is_empty() {
            format!("{} holds no archive for {}", dir.display(), kit.arch)
        } else {
            format!("{} holds {}", dir.display(), found.join(", "))
        },
        kit.ws.log_path(KitPhase::Build).display()
    )
}
