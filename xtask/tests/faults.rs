//! Faults a user's files must survive: `kill -9` at every point where a run changes something on
//! disk, followed by a plain rerun, by `restore`, or by a rerun killed in turn; signals during a
//! build; an orphaned build; two runs on one repo; special files as input; a full disk. Each ends
//! with the variant repo's files byte for byte as they were, without `--force`.
//!
//! The kills are made by the xtask itself at its fault points (`--test-crash-at N`, SIGKILL at
//! the N-th point): the points are where the state on disk changes (before and after each file
//! is replaced, while a tool runs), so sweeping them all reaches every state a kill at any
//! instruction can leave.

mod support;

use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::kit_repo::KitRepo;
use support::published::{Forest, KIT, KIT_VERSION};
use support::registry::TestRegistry;

/// The variant repo's own files (not `build/`), with symlinks as links.
fn files(forest: &Forest) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    walk(forest.repo(), forest.repo(), &mut out);
    out.sort();
    out
}

/// `variant` in workspace `ws` (a fresh one per case), crashing at point `crash_at`.
fn run_variant(forest: &Forest, ws: &Path, crash_at: Option<u64>) -> Output {
    let mut cmd = forest.xtask();
    cmd.args([
        "variant",
        "--arch",
        "x86_64",
        "--kit",
        &format!("{KIT}@{KIT_VERSION}"),
        "--json",
        "--workspace",
    ])
    .arg(ws);
    if let Some(n) = crash_at {
        cmd.env("XTASK_TEST_CRASH_AT", n.to_string());
    }
    cmd.output().unwrap()
}

/// Files and links under `dir` (skipping `.git` and `build/`), as (path, content or link target).
fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path.strip_prefix(base).unwrap().to_path_buf();
        if rel == Path::new(".git") || rel == Path::new("build") || rel == Path::new("target") {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            out.push((rel, format!("-> {}", std::fs::read_link(&path).unwrap().display())));
        } else if kind.is_dir() {
            walk(base, &path, out);
        } else {
            out.push((
                rel,
                String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
            ));
        }
    }
}

/// The points to kill a run at: every point where a file is replaced, a file removed or a tool
/// runs (each leaves a state of its own), and one in four of the points where only a temp file
/// was written (the state before, plus a stray temp file).
fn sweep(points: &[String]) -> Vec<u64> {
    let mut temp_points = 0;
    (1..=points.len() as u64)
        .filter(|n| {
            if !points[*n as usize - 1].contains("not yet in place") {
                return true;
            }
            temp_points += 1;
            temp_points % 4 == 1
        })
        .collect()
}

/// The fault points a complete run passes, as the run names them on stderr.
fn points(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("xtask fault point "))
        .map(String::from)
        .collect()
}

/// The live (not zombie) processes of a process group, from /proc.
fn live_in_group(group: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let rest: Vec<&str> = stat
                .rsplit_once(')')
                .map_or(vec![], |(_, r)| r.split_whitespace().collect());
            rest.len() > 2 && rest[2] == group.to_string() && rest[0] != "Z" && rest[0] != "X"
        })
        .collect()
}

fn killed(output: &Output) -> bool {
    output.status.signal() == Some(9)
}

/// `progress.json` (when there is one) parses and `status` reads the workspace.
fn assert_valid_workspace(forest: &Forest, ws: &Path) {
    if let Ok(text) = std::fs::read_to_string(ws.join("progress.json")) {
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", ws.display()));
    }
    support::run_ok(forest.xtask().arg("status").arg(ws).arg("--json"));
}

/// Every process left running with the fixture's stand-ins in their command line.
fn standins_running(forest: &Forest) -> Vec<u32> {
    support::registry::processes_mentioning(&forest.forest.display().to_string())
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            !cmdline.contains("registry") && !cmdline.contains("serve")
        })
        .collect()
}

#[test]
fn a_kill_at_any_point_of_a_variant_run_leaves_the_repo_recoverable() {
    let forest = Forest::published();
    let before = files(&forest);
    // A complete run, counting its points; it restores the repo at its end.
    let full = run_variant(&forest, &forest.root.join("planning/count"), Some(u64::MAX));
    assert!(full.status.success(), "{}", support::stderr(&full));
    let total = points(&full).len() as u64;
    assert!(total > 20, "a run passes many points: {:?}", points(&full));
    assert_eq!(files(&forest), before);
    let started = Instant::now();
    let mut recovered = 0;
    let swept = sweep(&points(&full));
    for &n in &swept {
        let ws = forest.root.join(format!("planning/kill-{n}"));
        let crashed = run_variant(&forest, &ws, Some(n));
        assert!(
            killed(&crashed),
            "point {n} of {total}: not killed: {}",
            support::stderr(&crashed)
        );
        let point = points(&crashed).pop().unwrap_or_default();
        match n % 3 {
            // A plain rerun finishes the work and restores the repo.
            0 => {
                let rerun = run_variant(&forest, &ws, None);
                let summary: Value = serde_json::from_slice(&rerun.stdout).unwrap_or(Value::Null);
                assert!(
                    rerun.status.success() && summary["ok"] == true,
                    "point {point}: the rerun failed: {}",
                    support::stderr(&rerun)
                );
            }
            // restore, without --force, gives the originals back.
            1 => {
                let restore = support::run(forest.xtask().arg("restore").arg(&ws));
                let said = support::stderr(&restore);
                assert!(
                    restore.status.success() || said.contains("holds no backup"),
                    "point {point}: restore failed: {said}"
                );
            }
            // Killed, then the rerun killed too, then restore.
            _ => {
                let again = run_variant(&forest, &ws, Some(n.div_ceil(2)));
                assert!(
                    killed(&again) || again.status.success(),
                    "point {point}: {}",
                    support::stderr(&again)
                );
                let restore = support::run(forest.xtask().arg("restore").arg(&ws));
                let said = support::stderr(&restore);
                assert!(
                    restore.status.success() || said.contains("holds no backup"),
                    "point {point}: restore after two kills failed: {said}"
                );
            }
        }
        assert_eq!(
            files(&forest),
            before,
            "point {n}/{total} ({point}): the repo's files are not the originals"
        );
        assert_valid_workspace(&forest, &ws);
        assert!(
            standins_running(&forest).is_empty(),
            "point {point}: a tool was left running"
        );
        recovered += 1;
    }
    eprintln!(
        "kill sweep: {recovered} of {} points swept ({total} in a run) recovered with the original bytes in {:.1}s",
        swept.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_kill_at_any_point_of_a_kit_run_leaves_a_run_that_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = KitRepo::create_at(&tmp.path().join("core-kit"), KIT, KIT_VERSION);
    repo.prep();
    let _registry = TestRegistry::start_native(repo.path());
    // Forced, so that every phase runs and passes its points.
    let build_kit = |crash_at: Option<u64>, force: bool| {
        let mut cmd = support::xtask(repo.path(), &[]);
        cmd.envs(repo.env()).args(["build-kit", "--arch", "x86_64", "--json"]);
        if force {
            cmd.arg("--force");
        }
        if let Some(n) = crash_at {
            cmd.env("XTASK_TEST_CRASH_AT", n.to_string());
        }
        cmd.output().unwrap()
    };
    // The first run also writes what later ones find in place (the git excludes, resolved.json):
    // the points of a forced run come from the second.
    assert!(build_kit(None, true).status.success());
    let full = build_kit(Some(u64::MAX), true);
    assert!(full.status.success(), "{}", support::stderr(&full));
    let tracked = support::snapshot(repo.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with("build") && !p.starts_with("planning") && !p.starts_with("tools"))
        .collect::<Vec<_>>();
    let mut swept = 0;
    let planned = sweep(&points(&full));
    for &n in &planned {
        let crashed = build_kit(Some(n), true);
        // A forced run after an interrupted one may pass fewer points (work a kill left done).
        if !killed(&crashed) {
            assert!(crashed.status.success(), "point {n}: {}", support::stderr(&crashed));
            assert!(points(&crashed).len() < n as usize);
            continue;
        }
        swept += 1;
        let point = points(&crashed).pop().unwrap_or_default();
        let rerun = build_kit(None, false);
        let summary: Value = serde_json::from_slice(&rerun.stdout).unwrap_or(Value::Null);
        assert!(
            rerun.status.success() && summary["ok"] == true,
            "point {point}: the rerun failed: {}",
            support::stderr(&rerun)
        );
        assert!(
            repo.is_clean(),
            "point {point}: {}",
            support::git(repo.path(), &["status", "--porcelain"])
        );
        let now: Vec<_> = support::snapshot(repo.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with("build") && !p.starts_with("planning") && !p.starts_with("tools"))
            .collect();
        assert_eq!(now, tracked, "point {point}: the kit repo's files changed");
    }
    assert!(
        swept * 10 >= planned.len() * 9,
        "only {swept} of {} points were reached",
        planned.len()
    );
}

/// Starts `variant` in workspace `ws` with a BUILD that lasts `seconds`, and returns once the
/// build runs: the run, and the process group of its build.
fn variant_in_build(forest: &Forest, ws: &Path, seconds: u32, stderr: Stdio) -> (std::process::Child, u64) {
    let child = forest
        .xtask()
        .args([
            "variant",
            "--arch",
            "x86_64",
            "--kit",
            &format!("{KIT}@{KIT_VERSION}"),
            "--workspace",
        ])
        .arg(ws)
        .env("CARGO_MAKE_STANDIN_SECONDS", seconds.to_string())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let running = ws.join("logs/build.running.json");
    let started = Instant::now();
    while !running.is_file() {
        assert!(started.elapsed() < Duration::from_secs(30), "BUILD never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let running: Value = serde_json::from_str(&std::fs::read_to_string(running).unwrap()).unwrap();
    (child, running["group"].as_u64().unwrap())
}

/// Sends `signal` to a `variant` run once its BUILD runs; the run must stop its build, put the
/// repo back, record the phase as interrupted and exit 128 + the signal.
fn interrupted_during_build(signal: &str, code: i32) {
    let forest = Forest::published();
    let before = files(&forest);
    let ws = forest.root.join(format!("planning/{signal}"));
    let (child, group) = variant_in_build(&forest, &ws, 30, Stdio::piped());
    let group = group as i32;
    assert!(Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(code), "{}", support::stderr(&output));
    let said = support::stderr(&output);
    assert!(said.contains("variant repo files restored"), "{said}");
    assert_eq!(files(&forest), before);
    // The build's whole process group is gone (zombies an init has yet to reap aside).
    assert!(
        live_in_group(group as u32).is_empty(),
        "the build's process group {group} outlived the run"
    );
    let progress: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("progress.json")).unwrap()).unwrap();
    let failures = progress["phases"][2]["failures"].as_array().unwrap();
    assert!(
        failures.last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("interrupted by SIG{signal}")),
        "{progress}"
    );
}

#[test]
fn sigint_during_build_restores_and_stops_the_build() {
    interrupted_during_build("INT", 130);
}

#[test]
fn sigterm_during_build_restores_and_stops_the_build() {
    interrupted_during_build("TERM", 143);
}

#[test]
fn an_orphaned_build_is_stopped_by_the_rerun() {
    let forest = Forest::published();
    let before = files(&forest);
    let ws = forest.root.join("planning/orphan");
    let (mut child, group) = variant_in_build(&forest, &ws, 60, Stdio::null());
    // kill -9 the xtask alone: its build, in a process group of its own, keeps running.
    child.kill().unwrap();
    child.wait().unwrap();
    let group_alive = || !live_in_group(group as u32).is_empty();
    assert!(group_alive(), "the build outlives its run");
    let rerun = run_variant(&forest, &ws, None);
    assert!(rerun.status.success(), "{}", support::stderr(&rerun));
    let said = support::stderr(&rerun);
    assert!(
        said.contains(&format!("process group {group}")) && said.contains("left running"),
        "{said}"
    );
    assert!(!group_alive(), "the orphaned build was stopped");
    assert_eq!(files(&forest), before);
}

#[test]
fn a_second_run_on_one_repo_is_refused_naming_the_first() {
    let forest = Forest::published();
    let before = files(&forest);
    let first_ws = forest.root.join("planning/first");
    let (mut first, _) = variant_in_build(&forest, &first_ws, 8, Stdio::null());
    let second = run_variant(&forest, &forest.root.join("planning/second"), None);
    assert!(!second.status.success());
    let said = support::stderr(&second);
    assert!(
        said.contains("is in use by workspace")
            && said.contains(&first_ws.display().to_string())
            && said.contains(&format!("pid {}", first.id())),
        "{said}"
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(files(&forest), before);
}

#[test]
fn symlinked_config_files_stay_symlinks() {
    let forest = Forest::published();
    let shared = forest.forest.join("shared-Twoliter.toml");
    std::fs::rename(forest.repo().join("Twoliter.toml"), &shared).unwrap();
    std::os::unix::fs::symlink(&shared, forest.repo().join("Twoliter.toml")).unwrap();
    let before = files(&forest);
    let shared_before = std::fs::read(&shared).unwrap();
    let run = run_variant(&forest, &forest.root.join("planning/links"), None);
    assert!(run.status.success(), "{}", support::stderr(&run));
    let link = forest.repo().join("Twoliter.toml");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(files(&forest), before);
    assert_eq!(std::fs::read(&shared).unwrap(), shared_before);
}

#[test]
fn special_files_as_input_are_errors_within_a_second() {
    let forest = Forest::published();
    for (name, make) in [
        (
            "fifo",
            &(|path: &Path| {
                assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
            }) as &dyn Fn(&Path),
        ),
        ("zero", &|path: &Path| {
            std::os::unix::fs::symlink("/dev/zero", path).unwrap()
        }),
    ] {
        let ws = forest.root.join(format!("planning/special-{name}"));
        std::fs::create_dir_all(&ws).unwrap();
        make(&ws.join("input.json"));
        assert!(std::fs::metadata(ws.join("input.json")).unwrap().file_type().is_fifo() || name == "zero");
        let started = Instant::now();
        let output = support::run(forest.xtask().arg("next-step").arg(&ws));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{name}: took {:?}",
            started.elapsed()
        );
        assert_eq!(output.status.code(), Some(2), "{name}");
        let answer = support::answer(&String::from_utf8_lossy(&output.stdout));
        assert!(
            answer["reason"].as_str().unwrap().contains("not a regular file"),
            "{answer}"
        );
    }
}

#[test]
fn a_closed_stderr_pipe_does_not_abort_the_run() {
    let forest = Forest::published();
    let before = files(&forest);
    let ws = forest.root.join("planning/head");
    // `cargo xtask variant … 2>&1 | head -3`: the reader goes away after three lines.
    let mut child = forest
        .xtask()
        .args([
            "variant",
            "--arch",
            "x86_64",
            "--kit",
            &format!("{KIT}@{KIT_VERSION}"),
            "--workspace",
        ])
        .arg(&ws)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        for _ in 0..3 {
            lines.next();
        }
    }
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let progress: Value = serde_json::from_str(&std::fs::read_to_string(ws.join("progress.json")).unwrap()).unwrap();
    assert!(progress["completed"].is_object(), "the run went to its end: {progress}");
    assert_eq!(files(&forest), before);
}

/// A variant run whose workspace sits on a tiny filesystem that fills up: the run fails, and
/// the repo's files are as they were. Needs a tmpfs mount (root in a machine that allows it).
#[test]
fn a_full_disk_leaves_the_repo_as_it_was() {
    let forest = Forest::published();
    let before = files(&forest);
    let mnt = forest.root.join("planning/small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must be able to mount a tmpfs"
        );
        eprintln!("SKIP: cannot mount a tmpfs here");
        return;
    }
    let _unmount = Unmount(mnt.clone());
    // Fill it almost up, so the journal, results or logs cannot be written somewhere in the run.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 60 * 1024]);
    let ws = mnt.join("ws");
    let run = run_variant(&forest, &ws, None);
    assert!(!run.status.success(), "a run on a full disk cannot succeed");
    assert_eq!(files(&forest), before, "{}", support::stderr(&run));
    // With room again, a restore (or a rerun) finishes cleanly.
    std::fs::remove_file(&filler).unwrap();
    let _ = support::run(forest.xtask().arg("restore").arg(&ws));
    assert_eq!(files(&forest), before);
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
