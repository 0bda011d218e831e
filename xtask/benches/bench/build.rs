//! Cold debug build: `cargo build -p xtask` into an empty target directory (dependencies are
//! already downloaded, so `--offline`), timed once, with `--timings` to name what dominates.

use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::common::{self, secs, Env, Row};

const LIMIT: f64 = 40.0;

pub fn measure(env: &Env) -> Result<Vec<Row>> {
    let target = tempfile::Builder::new().prefix("xtask-bench-target-").tempdir()?;
    eprintln!(
        "    cargo build -p xtask --offline --timings, CARGO_TARGET_DIR={}",
        target.path().display()
    );
    let load_before = common::load_average();
    let run = common::run(
        Command::new(&env.cargo)
            .args(["build", "-p", "xtask", "--offline", "--timings"])
            .current_dir(&env.root)
            .env("CARGO_TARGET_DIR", target.path()),
    )?;
    if !run.output.status.success() {
        bail!(
            "cargo build failed: {}",
            String::from_utf8_lossy(&run.output.stderr)
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // Keep the report: the build's target directory is removed with the temp dir.
    let kept = env.target_dir.join("bench/cold-build-timing.html");
    if let Err(err) = std::fs::copy(target.path().join("cargo-timings/cargo-timing.html"), &kept) {
        eprintln!("    cannot keep the --timings report: {err}");
    } else {
        eprintln!("    --timings report: {}", kept.display());
    }
    let slowest = slowest_units(target.path()).unwrap_or_else(|err| {
        eprintln!("    cannot read the --timings report: {err:#}");
        Vec::new()
    });
    let named: Vec<String> = slowest.iter().take(4).map(|(n, s)| format!("{n} {s:.1}s")).collect();
    eprintln!("    {} (slowest: {})", secs(run.seconds), named.join(", "));
    let mut rows = vec![Row {
        group: "build",
        measurement: "cold debug build of the xtask".to_string(),
        ours: secs(run.seconds),
        reference: String::new(),
        compared: secs(run.seconds),
        target: format!("<= {LIMIT:.0} s"),
        pass: Some(run.seconds <= LIMIT),
        data: json!({ "seconds": run.seconds, "limit": LIMIT, "load_average_before": load_before,
                      "slowest_units": slowest.iter().map(|(n, s)| json!({"unit": n, "seconds": s})).collect::<Vec<_>>() }),
    }];
    if !named.is_empty() {
        rows.push(Row::info(
            "build",
            "slowest units (cargo --timings)",
            named.join(", "),
            json!({}),
        ));
    }
    Ok(rows)
}

/// (unit, seconds) from the `--timings` report, slowest first. The HTML embeds the units as
/// `const UNIT_DATA = [...];`.
fn slowest_units(target: &std::path::Path) -> Result<Vec<(String, f64)>> {
    let report = target.join("cargo-timings/cargo-timing.html");
    let html = std::fs::read_to_string(&report).with_context(|| format!("{}", report.display()))?;
    let start = html.find("const UNIT_DATA = ").context("no UNIT_DATA")? + "const UNIT_DATA = ".len();
    let end = start + html[start..].find(";\n").context("UNIT_DATA does not end")?;
    let units: Vec<Value> = serde_json::from_str(&html[start..end]).context("UNIT_DATA is not JSON")?;
    let mut out: Vec<(String, f64)> = units
        .iter()
        .map(|u| {
            let name = u["name"].as_str().unwrap_or("?");
            let target = u["target"].as_str().unwrap_or("").trim();
            let label = if target.is_empty() || target == "lib" {
                name.to_string()
            } else {
                format!("{name} ({target})")
            };
            (label, u["duration"].as_f64().unwrap_or(0.0))
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out)
}
