//! BUILD: the repo's own entry point builds the kit for the arch (`make build ARCH=… KIT=…`,
//! else `twoliter fetch` + `twoliter build kit`); the result is the kit archive named with the
//! current build id.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::Kit;
use crate::workflow::{KitPhase, Phase};
use crate::{git, ui};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BuildData {
    pub(crate) archive: PathBuf,
    pub(crate) build_id: String,
    pub(crate) release_version: String,
    pub(crate) size: u64,
    /// Tracked files differed from the commit: publish finds this archive only as long as
    /// the tree stays exactly as it is.
    pub(crate) dirty: bool,
    /// What the build depended on (see `fingerprint`).
    pub(crate) fingerprint: String,
}

/// `build/kits/<kit>/<kit>-v<version>-<build-id>-<arch>.tar`
pub(crate) fn archive_path(kit: &Kit, version: &str, build_id: &str) -> PathBuf {
    kit.repo
        .join("build/kits")
        .join(&kit.name)
        .join(format!("{}-v{version}-{build_id}-{}.tar", kit.name, kit.arch))
}

/// BUILD: the kit archive of this build id.
pub(crate) struct Build;

impl Phase for Build {
    type Flow = Kit;
    type Data = BuildData;
    const PHASE: KitPhase = KitPhase::Build;

    fn run(sh: &Shell, kit: &Kit) -> Result<(BuildData, String)> {
        let phase = KitPhase::Build;
        let version = kit.release_version()?;
        let started = std::time::SystemTime::now();
        let arch = kit.arch.to_string();
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
        let build_id = git::build_id(sh, &kit.repo)?;
        let fingerprint = crate::fingerprint::compute(sh, &kit.repo, kit.arch)?;
        let archive = archive_path(kit, &version, &build_id);
        let meta = std::fs::metadata(&archive).map_err(|_| {
            anyhow::anyhow!(
                "the build finished but {} is missing: the build wrote another archive name (did the \
                 tree change during the build?); see {}",
                archive.display(),
                kit.ws.log_path(phase).display()
            )
        })?;
        if meta.modified()? < started {
            bail!(
                "{} is older than this build: the build did not write it; see {}",
                archive.display(),
                kit.ws.log_path(phase).display()
            );
        }
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
            dirty,
            fingerprint,
        };
        let report = format!(
            "# BUILD\n\n- archive: `{}` ({})\n- build id: `{}`{}\n- log: `{}`\n",
            archive.display(),
            ui::bytes(data.size),
            data.build_id,
            if dirty {
                " (tree dirty: commit or keep it unchanged until PUBLISH)"
            } else {
                ""
            },
            kit.ws.log_path(phase).display()
        );
        Ok((data, report))
    }

    /// The archive is still there and the tree still has the build id it was built at.
    fn gate(sh: &Shell, kit: &Kit, data: &BuildData) -> Result<()> {
        if !data.archive.is_file() {
            bail!("{} is gone: run BUILD again", data.archive.display());
        }
        let now = git::build_id(sh, &kit.repo)?;
        if now != data.build_id {
            bail!(
                "the kit repo changed since BUILD (build id was `{}`, now `{now}`): publish would look for \
                 {} — run BUILD again",
                data.build_id,
                archive_path(kit, &data.release_version, &now).display()
            );
        }
        if crate::fingerprint::compute(sh, &kit.repo, kit.arch)? != data.fingerprint {
            bail!(
                "the kit repo's content changed since BUILD (uncommitted edits, new files or another \
                 twoliter): run BUILD again"
            );
        }
        Ok(())
    }
}
