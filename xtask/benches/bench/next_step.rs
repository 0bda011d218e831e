//! `next-step` latency, mid-way through the kit workflow, against a Python reference of the same
//! protocol (`xtask/benches/reference/next_step.py`).
//!
//! State: `build-kit` ran to the end in a fixture kit repo with a native registry; then
//! progress.json is rewritten to SETUP and BUILD passed, PUBLISH spawned (attempt 1, its phase
//! command already ran: results/publish.json is there), VERIFY pending with no result (its result
//! file is removed). Each call therefore re-checks PUBLISH's gate against the registry (the
//! per-arch tag and the index tag are fetched and compared), passes it, and answers
//! `spawn VERIFY attempt 1`. progress.json is restored before every call, outside the timing.
//! The same rounds time what no implementation avoids: starting a process, and that gate's
//! registry request (an info row, the floor).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::common::{self, median, ms, Env, Row};
use crate::pipeline::KitFixture;

const EXPECTED: (&str, &str, u64) = ("spawn", "VERIFY", 1);

pub fn measure(env: &Env) -> Result<Vec<Row>> {
    let fixture = KitFixture::published(env)?;
    let ws = fixture.workspace();
    let progress = bench_progress(&ws)?;
    let python = python_interpreter()?;
    let script = env.root.join("xtask/benches/reference/next_step.py");

    let binary = || {
        let mut cmd = fixture.xtask(env);
        cmd.arg("next-step").arg(&ws);
        cmd
    };
    let release = || {
        let mut cmd = fixture.xtask(env);
        cmd.arg("next-step").arg(&ws);
        let mut release = Command::new(&env.xtask_release);
        release.args(cmd.get_args()).current_dir(fixture.repo.path());
        for (key, value) in cmd.get_envs() {
            if let Some(value) = value {
                release.env(key, value);
            }
        }
        release
    };
    let through_cargo = || {
        let mut cmd = Command::new(&env.cargo);
        cmd.args(["xtask", "next-step"])
            .arg(&ws)
            .current_dir(&env.root)
            .env("XTASK_ROOT", fixture.repo.path())
            .envs(fixture.repo.env());
        cmd
    };
    let reference = || {
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg(&ws)
            .current_dir(&env.root)
            .env("XTASK_ROOT", fixture.repo.path())
            .envs(fixture.repo.env());
        cmd
    };
    let variants: [(&str, &dyn Fn() -> Command); 4] = [
        ("binary", &binary),
        ("cargo xtask", &through_cargo),
        ("python", &reference),
        ("release binary", &release),
    ];
    agree_on_finished_work(&ws, &variants)?;
    std::fs::remove_file(ws.join("results/verify.json")).context("results/verify.json")?;
    let manifest = manifest_url(&ws)?;
    // Short calls: more of them, interleaved so that load from elsewhere hits all three alike.
    let calls = env.runs * 4;
    let mut times: [Vec<f64>; 4] = Default::default();
    let (mut spawns, mut gets) = (Vec::new(), Vec::new());
    for round in 0..=calls {
        // What any implementation pays: starting a process, and the registry's answer to the
        // PUBLISH gate's one request.
        let spawn = common::run(&mut Command::new("true"))?.check("true")?;
        let get = registry_get(&manifest)?;
        if round > 0 {
            spawns.push(spawn.seconds);
            gets.push(get);
        }
        for (i, (name, make)) in variants.iter().enumerate() {
            std::fs::write(ws.join("progress.json"), &progress)?;
            let run = common::run(&mut make())?.check(&format!("next-step ({name})"))?;
            let action = run.json()?;
            let got = (
                action["action"].as_str().unwrap_or_default(),
                action["phase"].as_str().unwrap_or_default(),
                action["attempt"].as_u64().unwrap_or_default(),
            );
            if got != EXPECTED {
                bail!("next-step ({name}) answered {got:?}, expected {EXPECTED:?}: {action}");
            }
            // Round 0 warms caches (and lets cargo see the build is fresh); it is not counted.
            if round > 0 {
                times[i].push(run.seconds);
            }
        }
    }
    let interpreter = python.display().to_string();
    let [binary, cargo, python, release] = times.map(|t| median(&t));
    eprintln!(
        "    medians of {calls} calls: binary {}, cargo xtask {}, python {}, release binary {}",
        ms(binary),
        ms(cargo),
        ms(python),
        ms(release)
    );
    let state = "PUBLISH spawned (gate re-checked on the registry) -> spawn VERIFY";
    let row = |what: &str, ours: f64, limit: f64| Row {
        group: "next-step",
        measurement: format!("next-step, {what}"),
        ours: ms(ours),
        reference: format!("{} (python)", ms(python)),
        compared: format!("{:.1}%", ours / python * 100.0),
        target: format!("<= {:.0}%", limit * 100.0),
        pass: Some(ours / python <= limit),
        data: json!({ "seconds": ours, "python_seconds": python, "ratio": ours / python, "limit": limit,
                      "calls": calls, "state": state, "python": interpreter }),
    };
    let mut info = Row::info(
        "next-step",
        "next-step, release binary",
        format!("{} ({:.1}% of python)", ms(release), release / python * 100.0),
        json!({ "seconds": release, "python_seconds": python, "ratio": release / python, "calls": calls }),
    );
    info.reference = format!("{} (python)", ms(python));
    let (spawn, get) = (median(&spawns), median(&gets));
    let mut floor = Row::info(
        "next-step",
        "next-step floor: spawn of `true` + the gate's registry GET",
        format!(
            "{} + {} = {} ({:.1}% of python)",
            ms(spawn),
            ms(get),
            ms(spawn + get),
            (spawn + get) / python * 100.0
        ),
        json!({ "spawn_seconds": spawn, "get_seconds": get, "python_seconds": python,
                "ratio": (spawn + get) / python, "url": manifest }),
    );
    floor.reference = format!("{} (python)", ms(python));
    Ok(vec![
        row("debug binary", binary, 0.05),
        row("through cargo xtask", cargo, 0.70),
        info,
        floor,
    ])
}

/// The URL of the index manifest the PUBLISH gate fetches, from the workspace's publish result.
fn manifest_url(ws: &Path) -> Result<String> {
    let text = std::fs::read_to_string(ws.join("results/publish.json")).context("results/publish.json")?;
    let result: Value = serde_json::from_str(&text)?;
    let data = &result["data"];
    let (Some(registry), Some(repository), Some(tag)) = (
        data["registry"].as_str(),
        data["repository"].as_str(),
        data["tag"].as_str(),
    ) else {
        bail!("results/publish.json has no registry, repository and tag: {text}");
    };
    let port = registry
        .rsplit_once(':')
        .map(|(_, port)| port)
        .context("registry without a port")?;
    Ok(format!("http://127.0.0.1:{port}/v2/{repository}/manifests/{tag}"))
}

/// Seconds one GET of `url` takes on a new connection, as the gate's does; it must answer 200.
fn registry_get(url: &str) -> Result<f64> {
    let start = std::time::Instant::now();
    let response = minreq::get(url)
        .with_header("Accept", "application/vnd.oci.image.index.v1+json")
        .with_timeout(10)
        .send()
        .with_context(|| format!("GET {url}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if response.status_code != 200 {
        bail!("GET {url} answered {}", response.status_code);
    }
    Ok(seconds)
}

/// With every phase's result present and no progress.json, each implementation must gate all
/// four phases against reality (the BUILD fingerprint included) and answer `done`: a check that
/// the reference's gates are the same as ours, not only on the benchmark state.
fn agree_on_finished_work(ws: &Path, variants: &[(&str, &dyn Fn() -> Command)]) -> Result<()> {
    for (name, make) in variants {
        std::fs::remove_file(ws.join("progress.json")).context("progress.json")?;
        let action = common::run(&mut make())?
            .check(&format!("next-step ({name})"))?
            .json()?;
        if action["action"] != "done" {
            bail!("next-step ({name}) on finished work answered {action}, expected done");
        }
    }
    Ok(())
}

/// progress.json of the benchmark state, from the finished workflow's own.
fn bench_progress(ws: &Path) -> Result<String> {
    let text = std::fs::read_to_string(ws.join("progress.json"))?;
    let mut progress: Value = serde_json::from_str(&text)?;
    for phase in progress["phases"].as_array_mut().context("phases")? {
        match phase["id"].as_str() {
            Some("publish") => {
                phase["state"] = json!("spawned");
                phase["attempts"] = json!(1);
                phase["passed_at"] = Value::Null;
                phase.as_object_mut().unwrap().remove("note");
            }
            Some("verify") => {
                phase["state"] = json!("pending");
                phase["attempts"] = json!(0);
                phase["passed_at"] = Value::Null;
                phase["started_at"] = Value::Null;
                phase.as_object_mut().unwrap().remove("note");
            }
            _ => {}
        }
    }
    Ok(serde_json::to_string_pretty(&progress)? + "\n")
}

/// The interpreter itself, not a version manager's shim in front of it (pyenv's shim alone costs
/// more than the whole call).
fn python_interpreter() -> Result<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .context("python3 is needed for the reference implementation")?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !path.is_file() {
        bail!("cannot find the python3 interpreter");
    }
    Ok(path)
}
