//! Pipeline overhead: `build-kit` and `variant` end to end with the stand-in tools and a real
//! registry, minus the stand-ins' own time (the same stand-in commands run directly, in the
//! same fixture, right after each workflow run). The stand-ins are Python scripts doing real
//! work (archives, registry pushes, LZ4 disks), not instant: their time is measured and
//! subtracted rather than assumed to be zero. Also the no-op rerun of `build-kit`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::common::{self, median, ms, secs, Env, Row};
use crate::support::kit_repo::KitRepo;
use crate::support::registry::TestRegistry;
use crate::support::variant_repo::VariantRepo;

const KIT: &str = "core-kit";
const KIT_VERSION: &str = "2.3.4";
const UPSTREAM_VERSION: &str = "2.0.0";
const VARIANT: &str = "aws-dev";
const OVERHEAD_LIMIT: f64 = 2.0;
const NOOP_LIMIT: f64 = 1.0;
/// The OS disk the cargo-make stand-in writes (the smallest its partitions fit in).
const IMAGE_MIB: &str = "44";

/// A prepped kit repo (twoliter stand-in installed) with its own native registry.
pub struct KitFixture {
    // Dropped first: its cleanup runs `registry clean` in the repo, which must still exist.
    _registry: TestRegistry,
    pub repo: KitRepo,
}

impl KitFixture {
    pub fn new(env: &Env) -> Result<KitFixture> {
        let _quiet = common::Quiet::new(env)?;
        let repo = KitRepo::create(KIT, KIT_VERSION);
        repo.prep();
        let registry = TestRegistry::start_native(repo.path());
        Ok(KitFixture {
            _registry: registry,
            repo,
        })
    }

    /// A fixture after one successful `build-kit`.
    pub fn published(env: &Env) -> Result<KitFixture> {
        let fixture = KitFixture::new(env)?;
        fixture.build_kit(env, &[])?;
        Ok(fixture)
    }

    pub fn xtask(&self, env: &Env) -> Command {
        let mut cmd = common::xtask(env, self.repo.path(), &[]);
        cmd.envs(self.repo.env());
        cmd
    }

    pub fn workspace(&self) -> PathBuf {
        self.repo.path().join(format!("planning/build-kit-{KIT}-x86_64"))
    }

    /// `build-kit --arch x86_64 --json`: (seconds, phase outcomes).
    pub fn build_kit(&self, env: &Env, extra: &[&str]) -> Result<(f64, Vec<String>)> {
        let run = common::run(
            self.xtask(env)
                .args(["build-kit", "--arch", "x86_64", "--json"])
                .args(extra),
        )?
        .check("build-kit")?;
        let summary = run.json()?;
        if summary["ok"] != true {
            bail!("build-kit did not succeed: {summary}");
        }
        Ok((run.seconds, outcomes(&summary)))
    }

    /// The stand-in commands BUILD and PUBLISH run, directly: (seconds, each).
    fn standins(&self) -> Result<f64> {
        let mut total = 0.0;
        for args in [
            vec!["build", "ARCH=x86_64", &format!("KIT={KIT}")],
            vec!["publish", "VENDOR=local", &format!("KIT={KIT}")],
        ] {
            let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
            total += common::run(&mut self.repo.make(&args))?
                .check(&format!("make {}", args.join(" ")))?
                .seconds;
        }
        Ok(total)
    }
}

fn outcomes(summary: &Value) -> Vec<String> {
    summary["phases"]
        .as_array()
        .map(|phases| {
            phases
                .iter()
                .map(|p| p["outcome"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub fn measure(env: &Env) -> Result<(Vec<Row>, KitFixture)> {
    let (mut rows, fixture) = kit(env)?;
    rows.push(variant(env)?);
    Ok((rows, fixture))
}

fn overhead_row(what: &str, totals: &[f64], standins: &[f64], extra: Value) -> Row {
    let overheads: Vec<f64> = totals.iter().zip(standins).map(|(t, s)| t - s).collect();
    let (total, standin, overhead) = (median(totals), median(standins), median(&overheads));
    Row {
        group: "pipeline",
        measurement: format!("{what} overhead (xtask - stand-ins)"),
        ours: format!("{} total", secs(total)),
        reference: format!("{} stand-ins", secs(standin)),
        compared: secs(overhead),
        target: format!("<= {OVERHEAD_LIMIT:.0} s"),
        pass: Some(overhead <= OVERHEAD_LIMIT),
        data: json!({ "total_seconds": totals, "standin_seconds": standins, "overhead_seconds": overheads,
                      "median_overhead": overhead, "limit": OVERHEAD_LIMIT, "details": extra }),
    }
}

/// `build-kit --force` runs every phase; each run is followed by `make build` + `make publish`
/// in the same repo, the commands its BUILD and PUBLISH phases run.
fn kit(env: &Env) -> Result<(Vec<Row>, KitFixture)> {
    let fixture = KitFixture::new(env)?;
    let (first, phases) = fixture.build_kit(env, &[])?;
    if phases != ["ran"; 4] {
        bail!("the first build-kit did not run every phase: {phases:?}");
    }
    let first_standins = fixture.standins()?;
    eprintln!(
        "    first build-kit {} (stand-ins {})",
        secs(first),
        secs(first_standins)
    );
    let (mut totals, mut standins) = (vec![first], vec![first_standins]);
    for _ in 1..env.runs {
        let (seconds, phases) = fixture.build_kit(env, &["--force"])?;
        if phases != ["ran"; 4] {
            bail!("build-kit --force did not run every phase: {phases:?}");
        }
        totals.push(seconds);
        standins.push(fixture.standins()?);
        eprintln!(
            "    build-kit --force {} (stand-ins {})",
            secs(seconds),
            secs(*standins.last().unwrap())
        );
    }
    let row = overhead_row(
        "build-kit",
        &totals,
        &standins,
        json!({ "standins": ["make build ARCH=x86_64 KIT=core-kit", "make publish VENDOR=local KIT=core-kit"],
                "runs": "the first build-kit, then build-kit --force" }),
    );
    Ok((vec![row], fixture))
}

/// The forest of tests/variant.rs: the xtask's own checkout with the registry, the kit repo at
/// $FOREST_ROOT/kits/<kit> (published once by `build-kit`), the variant repo at
/// $FOREST_ROOT/bottlerocket. Each `variant` run uses a fresh workspace so that every phase runs;
/// it is followed by `twoliter update` + `cargo make` run directly on the same configuration.
fn variant(env: &Env) -> Result<Row> {
    let quiet = common::Quiet::new(env)?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("xtask-checkout");
    let forest = tmp.path().join("forest");
    std::fs::create_dir_all(&root)?;
    let kit = KitRepo::create_at(&forest.join("kits").join(KIT), KIT, KIT_VERSION);
    kit.prep();
    let repo = VariantRepo::create_at(
        &forest.join("bottlerocket"),
        VARIANT,
        &[(KIT, UPSTREAM_VERSION)],
        "1.26.1",
    );
    let registry = TestRegistry::start_native(&root);
    drop(quiet);
    let xtask = || {
        let mut cmd = common::xtask(env, &root, &[repo.bin_dir()]);
        cmd.env("FOREST_ROOT", &forest)
            .env("CARGO_MAKE_STANDIN_IMAGE_MIB", IMAGE_MIB)
            .envs(kit.env());
        cmd
    };
    common::run(xtask().args(["build-kit", "--kit", KIT, "--arch", "x86_64", "--json"]))?.check("build-kit")?;
    let (mut totals, mut standins) = (Vec::new(), Vec::new());
    for i in 0..env.runs {
        let ws = root.join(format!("planning/bench-variant-{i}"));
        let run = common::run(
            xtask()
                .args(["variant", "--kit", KIT, "--arch", "x86_64", "--json", "--workspace"])
                .arg(&ws),
        )?
        .check("variant")?;
        let summary = run.json()?;
        if summary["ok"] != true || outcomes(&summary) != ["ran"; 4] {
            bail!("variant did not run every phase: {summary}");
        }
        totals.push(run.seconds);
        let quiet = common::Quiet::new(env)?;
        standins.push(variant_standins(&repo, &registry, &kit)?);
        drop(quiet);
        eprintln!(
            "    variant {} (stand-ins {})",
            secs(run.seconds),
            secs(*standins.last().unwrap())
        );
    }
    Ok(overhead_row(
        "variant",
        &totals,
        &standins,
        json!({ "standins": ["tools/twoliter/twoliter update", "cargo make -e BUILDSYS_VARIANT=aws-dev -e BUILDSYS_ARCH=x86_64"],
                "image_mib": IMAGE_MIB }),
    ))
}

/// The variant repo pointed at the local kit as UPDATE_CONFIG does it (Twoliter.toml's version,
/// Twoliter.override), `twoliter update` and `cargo make` timed, then the files put back.
fn variant_standins(repo: &VariantRepo, registry: &TestRegistry, kit: &KitRepo) -> Result<f64> {
    let toml_path = repo.path().join("Twoliter.toml");
    let toml = std::fs::read_to_string(&toml_path)?;
    let pinned = toml.replace(
        &format!("version = \"{UPSTREAM_VERSION}\""),
        &format!("version = \"{KIT_VERSION}\""),
    );
    std::fs::write(&toml_path, pinned)?;
    repo.write_override(&[KIT], &registry.url());
    let update = common::run(repo.twoliter(&["update"]).envs(kit.env()))?.check("twoliter update")?;
    let build = common::run(
        repo.cargo_make("x86_64")
            .env("CARGO_MAKE_STANDIN_IMAGE_MIB", IMAGE_MIB)
            .envs(kit.env()),
    )?
    .check("cargo make")?;
    restore(repo.path())?;
    Ok(update.seconds + build.seconds)
}

fn restore(repo: &Path) -> Result<()> {
    crate::support::git(repo, &["checkout", "--", "Twoliter.toml", "Twoliter.lock"]);
    match std::fs::remove_file(repo.join("Twoliter.override")) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err).context("Twoliter.override"),
        _ => Ok(()),
    }
}

/// `build-kit` again right after a verified publish, nothing changed: every phase must be
/// skipped.
pub fn noop(env: &Env, fixture: Option<KitFixture>) -> Result<Vec<Row>> {
    let fixture = match fixture {
        Some(fixture) => fixture,
        None => KitFixture::published(env)?,
    };
    // The previous run may have been a forced one; this one settles the state.
    fixture.build_kit(env, &[])?;
    let mut times = Vec::new();
    for _ in 0..env.runs {
        let (seconds, phases) = fixture.build_kit(env, &[])?;
        if phases != ["skipped"; 4] {
            bail!("build-kit with nothing changed did not skip every phase: {phases:?}");
        }
        times.push(seconds);
    }
    let m = median(&times);
    eprintln!("    median {} of {} reruns", ms(m), times.len());
    Ok(vec![Row {
        group: "noop",
        measurement: "build-kit rerun, nothing changed (all skipped)".to_string(),
        ours: ms(m),
        reference: String::new(),
        compared: secs(m),
        target: format!("<= {NOOP_LIMIT:.0} s"),
        pass: Some(m <= NOOP_LIMIT),
        data: json!({ "seconds": times, "median": m, "limit": NOOP_LIMIT }),
    }])
}
