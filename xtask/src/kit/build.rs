//! BUILD: the repo's own entry point builds the kit for the arch (`make build ARCH=… KIT=…`,
//! else `twoliter fetch` + `twoliter build kit`); the result is the kit archive named with the
//! current build id, computed as the repo's twoliter computes it (its length depends on the
//! twoliter version, see `compat::build_id_abbrev`).

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
        let twoliter = kit.twoliter_version();
        let build_id = kit.build_id(sh, twoliter.as_ref())?;
        let fingerprint = crate::fingerprint::compute(sh, &kit.repo, kit.arch, &version_text(twoliter.as_ref()))?;
        let archive = archive_path(kit, &version, &build_id);
        let meta =
            std::fs::metadata(&archive).map_err(|_| missing_archive(kit, &version, &build_id, twoliter.as_ref()))?;
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
            twoliter: twoliter.map(|v| v.to_string()),
        };
        let report = format!(
            "# BUILD\n\n- archive: `{}` ({})\n- build id: `{}`{}\n- twoliter: {}\n- log: `{}`\n",
            archive.display(),
            ui::bytes(data.size),
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

    /// The archive is still there and the tree still has the build id it was built at.
    fn gate(sh: &Shell, kit: &Kit, data: &BuildData) -> Result<()> {
        if !data.archive.is_file() {
            bail!("{} is gone: run BUILD again", data.archive.display());
        }
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
        if crate::fingerprint::compute(sh, &kit.repo, kit.arch, &version_text(twoliter.as_ref()))? != data.fingerprint {
            bail!(
                "the kit repo's content changed since BUILD (uncommitted edits, new files or another \
                 twoliter): run BUILD again"
            );
        }
        Ok(())
    }
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
