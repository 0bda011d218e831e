//! BUILD: `cargo make -e BUILDSYS_VARIANT=<variant> -e BUILDSYS_ARCH=<arch>` in the variant
//! repo, streamed and logged. Both are always passed: twoliter's own arch default is x86_64,
//! whatever the host.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::Variant;
use crate::workflow::{Phase, VariantPhase};
use crate::{process, tools, ui};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BuildData {
    pub(crate) variant: String,
    pub(crate) arch: String,
    /// When the build started, in milliseconds since the epoch: images must be newer.
    pub(crate) started_at_ms: u64,
    pub(crate) seconds: f64,
    pub(crate) argv: Vec<String>,
    /// What the build depended on (see `kit::fingerprint`): the gate notices later edits.
    pub(crate) fingerprint: String,
    /// The build id the images are named with (`<release-version>-<build-id>`).
    #[serde(default)]
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

/// BUILD: cargo make built the variant's images.
pub(crate) struct Build;

impl Phase for Build {
    type Flow = Variant;
    type Data = BuildData;
    const PHASE: VariantPhase = VariantPhase::Build;

    fn run(sh: &Shell, v: &Variant) -> Result<(BuildData, String)> {
        let phase = VariantPhase::Build;
        // No twoliter is needed here: the repo's Makefile.toml installs the one it pins.
        tools::require("cargo-make", tools::CARGO_MAKE_REMEDY)?;
        let argv = argv(v);
        let started = std::time::SystemTime::now();
        let started_at_ms = started.duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
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
            started_at_ms,
            seconds: clock.elapsed().as_secs_f64(),
            argv,
            fingerprint,
            build_id,
        };
        let report = format!(
            "# BUILD\n\n- ran `{}` in {} ({})\n- build id: `{}`\n- log: `{}`\n",
            data.argv.join(" "),
            v.repo.display(),
            ui::duration(clock.elapsed()),
            data.build_id,
            log.display()
        );
        Ok((data, report))
    }

    /// The build's `latest` link is there and the repo has not changed since.
    fn gate(sh: &Shell, v: &Variant, data: &BuildData) -> Result<()> {
        let latest = v.images_root().join(format!("{}-{}", v.arch, v.variant)).join("latest");
        if std::fs::metadata(&latest).is_err() {
            bail!(
                "{} does not exist: the build did not finish; run BUILD again",
                latest.display()
            );
        }
        if crate::fingerprint::compute(sh, &v.repo, v.arch, &twoliter_text(v))? != data.fingerprint {
            bail!("the variant repo changed since BUILD: run BUILD again");
        }
        Ok(())
    }
}

fn twoliter_text(v: &Variant) -> String {
    v.twoliter_version().map(|v| v.to_string()).unwrap_or_default()
}
