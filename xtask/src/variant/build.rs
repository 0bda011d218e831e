//! BUILD: `cargo make -e BUILDSYS_VARIANT=<variant> -e BUILDSYS_ARCH=<arch>` in the variant
//! repo, streamed and logged. Both are always passed: twoliter's own arch default is x86_64,
//! whatever the host.
//!
//! A build is judged by identity, never by time: buildsys redoes a variant build only when
//! something it watches changed, and otherwise leaves the images as they were (re-linking
//! `latest`). So `latest` must resolve to the directory named with the repo's build id now.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::Variant;
use crate::workflow::{Phase, VariantPhase};
use crate::{process, tools, ui};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BuildData {
    pub(crate) variant: String,
    pub(crate) arch: String,
    pub(crate) seconds: f64,
    pub(crate) argv: Vec<String>,
    /// What the build depended on (see `kit::fingerprint`): the gate notices later edits.
    pub(crate) fingerprint: String,
    /// The build id the images are named with (`<release-version>-<build-id>`).
    pub(crate) build_id: String,
}

pub(crate) fn argv(v: &Variant) -> Vec<String> {
    vec![
        "cargo".into(),
        "make".into(),
        "-e".into(),
        format!("BUILDSYS_VARIANT={}", v.variant),
        "-e".into(),
        format!("BUILDSYS_ARCH={}", v.arch),
    ]
}

/// `build/images/<arch>-<variant>/`
fn arch_dir(v: &Variant) -> PathBuf {
    v.images_root().join(format!("{}-{}", v.arch, v.variant))
}

/// The directory of this build's images: `<arch>-<variant>/<release-version>-<build-id>`.
fn image_dir(v: &Variant, build_id: &str) -> Result<PathBuf> {
    let release_version = v.config()?.release_version;
    Ok(arch_dir(v).join(format!("{release_version}-{build_id}")))
}

/// BUILD: cargo make built the variant's images.
pub(crate) struct Build;

impl Phase for Build {
    type Flow = Variant;
    type Data = BuildData;
    const PHASE: VariantPhase = VariantPhase::Build;

    fn run(sh: &Shell, v: &Variant) -> Result<(BuildData, String)> {
        let phase = VariantPhase::Build;
        crate::docker_engine::require_local_for("BUILD")?;
        // No twoliter is needed here: the repo's Makefile.toml installs the one it pins.
        tools::require("cargo-make", tools::CARGO_MAKE_REMEDY)?;
        if !image_dir(v, &v.build_id(sh)?)?.is_dir() {
            invalidate_variant_build(v)?;
        }
        let argv = argv(v);
        let clock = std::time::Instant::now();
        let mut cmd = process::tool(&argv[0]);
        cmd.args(&argv[1..]).current_dir(&v.repo);
        ui::info(argv.join(" "));
        let log = v.ws.log_path(phase);
        process::stream(cmd, "[build] ", &log)?.check(&format!("`{}`", argv.join(" ")), &log)?;
        let fingerprint = crate::fingerprint::compute(sh, &v.repo, v.arch, &twoliter_text(v))?;
        let build_id = v.build_id(sh)?;
        let data = BuildData {
            variant: v.variant.clone(),
            arch: v.arch.to_string(),
            seconds: clock.elapsed().as_secs_f64(),
            argv,
            fingerprint,
            build_id,
        };
        let report = format!(
            "# BUILD\n\n- ran `{}` in {} ({})\n- images: `{}`\n- log: `{}`\n",
            data.argv.join(" "),
            v.repo.display(),
            ui::duration(clock.elapsed()),
            image_dir(v, &data.build_id)?.display(),
            log.display()
        );
        Ok((data, report))
    }

    /// `latest` resolves to the images of the repo's build id now, and the repo has not changed
    /// since the build.
    fn gate(sh: &Shell, v: &Variant, data: &BuildData) -> Result<()> {
        let latest = arch_dir(v).join("latest");
        let Ok(target) = std::fs::read_link(&latest) else {
            bail!(
                "{} does not exist: the build did not finish; run BUILD again",
                latest.display()
            );
        };
        let build_id = v.build_id(sh)?;
        let wanted = image_dir(v, &build_id)?;
        let wanted_name = wanted.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if target != std::path::Path::new(&wanted_name) && arch_dir(v).join(&target) != wanted {
            bail!(
                "{} points to {}, but this build's images are {wanted_name} (the repo's build id is `{build_id}`, \
                 `{}` as its Makefile.toml computes it); {} holds {}: run BUILD again",
                latest.display(),
                target.display(),
                crate::git::build_id_command(
                    super::makefile::read(&v.repo).and_then(|doc| super::makefile::build_id_abbrev(&doc))
                ),
                arch_dir(v).display(),
                list_dirs(&arch_dir(v))
            );
        }
        if !wanted.is_dir() {
            bail!(
                "{} points to {wanted_name}, which does not exist: run BUILD again",
                latest.display()
            );
        }
        if crate::fingerprint::compute(sh, &v.repo, v.arch, &twoliter_text(v))? != data.fingerprint {
            bail!("the variant repo changed since BUILD: run BUILD again");
        }
        Ok(())
    }
}

/// The image directories under `dir`, for messages.
fn list_dirs(dir: &std::path::Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        "no image directory".to_string()
    } else {
        names.join(", ")
    }
}

/// buildsys redoes a variant build only when something it watches changed, the variant's
/// Cargo.toml among them (by modification time), never because its images are missing: when
/// this build's image directory is not there, touching Cargo.toml makes it build them again.
fn invalidate_variant_build(v: &Variant) -> Result<()> {
    let manifest = v.repo.join("variants").join(&v.variant).join("Cargo.toml");
    if !manifest.is_file() {
        return Ok(());
    }
    ui::info(format!(
        "this build's images are not there: touching {} so that the variant is built again",
        manifest.display()
    ));
    fs_err::File::options()
        .write(true)
        .open(&manifest)?
        .set_modified(std::time::SystemTime::now())
        .with_context(|| format!("cannot touch {}", manifest.display()))
}

fn twoliter_text(v: &Variant) -> String {
    v.twoliter_version().map(|v| v.to_string()).unwrap_or_default()
}
