//! `cargo xtask bench`: the tool's own cost on this machine, each measurement side by side with
//! its reference, repeated, as medians. Prints a table to stderr, writes the results to
//! `target/bench/bench-<unix time>.json` and `target/bench/latest.json`, prints them on stdout
//! with `--json`, and exits 1 when a target is missed.
//!
//!     cargo bench -p xtask --bench bench -- [--json] [--runs N] [--image-mib M] [--only NAME]…
//!
//! Names: next-step, pipeline, validate, noop, build. The fixtures (kit and variant repos,
//! stand-in tools, a real registry) are the integration tests' own.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "bench/build.rs"]
mod build;
#[path = "bench/common.rs"]
mod common;
#[path = "bench/next_step.rs"]
mod next_step;
#[path = "bench/pipeline.rs"]
mod pipeline;
#[path = "bench/validate.rs"]
mod validate;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use common::{Env, Row};
use serde_json::json;

const NAMES: [&str; 5] = ["next-step", "pipeline", "validate", "noop", "build"];

struct Args {
    json: bool,
    runs: usize,
    image_mib: u64,
    only: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        json: false,
        runs: 5,
        image_mib: 2048,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--json" => args.json = true,
            "--runs" => args.runs = value("--runs")?.parse().context("--runs")?,
            "--image-mib" => args.image_mib = value("--image-mib")?.parse().context("--image-mib")?,
            "--only" => {
                let name = value("--only")?;
                if !NAMES.contains(&name.as_str()) {
                    bail!("unknown benchmark `{name}`: use one of {}", NAMES.join(", "));
                }
                args.only.push(name);
            }
            // `cargo bench` passes --bench to every bench target.
            "--bench" => {}
            other => bail!("unknown argument `{other}`"),
        }
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(args)
}

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn try_main() -> Result<ExitCode> {
    let args = parse_args()?;
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|n| n == name);
    let env = prepare(&args)?;
    eprintln!(
        "bench: {} run(s) per measurement, debug binary {}, load average {}",
        env.runs,
        env.xtask.display(),
        common::load_average()
    );
    let mut rows: Vec<Row> = Vec::new();
    if wanted("next-step") {
        section("next-step latency");
        rows.extend(next_step::measure(&env).unwrap_or_else(|e| vec![Row::error("next-step", &e)]));
    }
    let mut kit_fixture = None;
    if wanted("pipeline") {
        section("pipeline overhead");
        match pipeline::measure(&env) {
            Ok((more, fixture)) => {
                rows.extend(more);
                kit_fixture = Some(fixture);
            }
            Err(e) => rows.push(Row::error("pipeline", &e)),
        }
    }
    if wanted("noop") {
        section("no-op rerun");
        rows.extend(pipeline::noop(&env, kit_fixture.take()).unwrap_or_else(|e| vec![Row::error("noop", &e)]));
    }
    drop(kit_fixture);
    if wanted("validate") {
        section("image validation");
        rows.extend(validate::measure(&env).unwrap_or_else(|e| vec![Row::error("validate", &e)]));
    }
    if wanted("build") {
        section("cold debug build");
        rows.extend(build::measure(&env).unwrap_or_else(|e| vec![Row::error("build", &e)]));
    }

    eprintln!("\n{}", table(&rows));
    if rows.iter().any(|r| r.group == "pipeline") {
        eprintln!(
            "The stand-ins (twoliter, cargo-make) are Python scripts doing real work, not instant: the \n\
             same commands are run directly in the same fixture and their time is subtracted.\n"
        );
    }
    let missed: Vec<&Row> = rows.iter().filter(|r| r.pass == Some(false)).collect();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let results = json!({
        "schema_version": 1,
        "unix_time": unix,
        "runs": env.runs,
        "image_mib": env.image_mib,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "load_average": common::load_average(),
        "xtask": env.xtask,
        "ok": missed.is_empty(),
        "missed": missed.iter().map(|r| r.measurement.clone()).collect::<Vec<_>>(),
        "results": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    let dir = env.target_dir.join("bench");
    let file = dir.join(format!("bench-{unix}.json"));
    write_atomic(&file, &results)?;
    write_atomic(&dir.join("latest.json"), &results)?;
    eprintln!("results: {} (and latest.json)", file.display());
    if args.json {
        println!("{results}");
    }
    if missed.is_empty() {
        eprintln!("all targets met");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("targets missed:");
        for row in &missed {
            eprintln!("  - {}: {} (target {})", row.measurement, row.compared, row.target);
        }
        Ok(ExitCode::FAILURE)
    }
}

fn section(name: &str) {
    eprintln!("\n==> {name}");
}

/// Builds the debug binary `cargo xtask` runs, and finds it and the target directory.
fn prepare(args: &Args) -> Result<Env> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = support::repo_root();
    eprintln!("==> cargo build -p xtask (the debug binary `cargo xtask` runs)");
    let output = Command::new(&cargo)
        .args([
            "build",
            "-p",
            "xtask",
            "--bin",
            "xtask",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(&root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run cargo build")?;
    if !output.status.success() {
        bail!("cargo build -p xtask failed");
    }
    let xtask = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "xtask")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo build did not name the xtask executable")?;
    let target_dir = xtask
        .parent()
        .and_then(Path::parent)
        .context("the xtask executable is not in <target>/debug/")?
        .to_path_buf();
    // A fresh log of what the fixtures ran (see `common::Quiet`).
    let _ = std::fs::remove_file(target_dir.join("bench/fixtures.log"));
    Ok(Env {
        xtask,
        xtask_release: support::xtask_bin(),
        cargo,
        root,
        target_dir,
        runs: args.runs,
        image_mib: args.image_mib,
    })
}

fn table(rows: &[Row]) -> String {
    let header = ["measurement", "ours", "reference", "ratio / value", "target", "result"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let result = match r.pass {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "info",
            };
            [
                r.measurement.clone(),
                r.ours.clone(),
                r.reference.clone(),
                r.compared.clone(),
                r.target.clone(),
                result.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let mut out = line(&header.map(String::from));
    out.push_str(&format!("|{}|\n", widths.map(|w| "-".repeat(w + 2)).join("|")));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

fn write_atomic(path: &Path, value: &serde_json::Value) -> Result<()> {
    let dir = path.parent().context("no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, format!("{}\n", serde_json::to_string_pretty(value)?))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
