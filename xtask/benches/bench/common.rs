//! What every measurement shares: the binaries under test, timing, medians, peak memory, and
//! the rows of the results table.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// What the measurements run and how often.
pub struct Env {
    /// The debug binary `cargo xtask` runs (built by the harness first).
    pub xtask: PathBuf,
    /// The optimised binary of this bench build, for generating big sample images quickly.
    pub xtask_release: PathBuf,
    pub cargo: OsString,
    /// This repository's root.
    pub root: PathBuf,
    /// The target directory `cargo xtask` builds into.
    pub target_dir: PathBuf,
    pub runs: usize,
    pub image_mib: u64,
}

/// One line of the results table.
pub struct Row {
    /// The benchmark it belongs to (`--only` name).
    pub group: &'static str,
    pub measurement: String,
    pub ours: String,
    pub reference: String,
    /// The ratio or value compared with the target.
    pub compared: String,
    pub target: String,
    /// `None`: reported for information, no target.
    pub pass: Option<bool>,
    /// The raw numbers, for the JSON file.
    pub data: Value,
}

impl Row {
    pub fn info(group: &'static str, measurement: impl Into<String>, ours: impl Into<String>, data: Value) -> Row {
        Row {
            group,
            measurement: measurement.into(),
            ours: ours.into(),
            reference: String::new(),
            compared: String::new(),
            target: String::new(),
            pass: None,
            data,
        }
    }

    /// A benchmark that could not run: a failed row naming why.
    pub fn error(group: &'static str, err: &anyhow::Error) -> Row {
        Row {
            group,
            measurement: format!("{group}: could not run"),
            ours: String::new(),
            reference: String::new(),
            compared: String::new(),
            target: String::new(),
            pass: Some(false),
            data: json!({ "error": format!("{err:#}") }),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "group": self.group,
            "measurement": self.measurement,
            "ours": self.ours,
            "reference": self.reference,
            "compared": self.compared,
            "target": self.target,
            "pass": self.pass,
            "data": self.data,
        })
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

pub fn ms(seconds: f64) -> String {
    if seconds < 0.1 {
        format!("{:.1} ms", seconds * 1000.0)
    } else {
        format!("{:.0} ms", seconds * 1000.0)
    }
}

pub fn secs(seconds: f64) -> String {
    format!("{seconds:.2} s")
}

/// What a finished child did: its output, wall time and peak resident memory.
pub struct Run {
    pub output: Output,
    pub seconds: f64,
    pub peak_rss_kib: u64,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Fails with the command and its stderr unless it exited 0.
    pub fn check(self, what: &str) -> Result<Run> {
        if !self.output.status.success() {
            let stderr = String::from_utf8_lossy(&self.output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{what} failed ({}):\n{}", self.output.status, tail.join("\n"));
        }
        Ok(self)
    }

    pub fn json(&self) -> Result<Value> {
        let text = self.stdout();
        serde_json::from_str(text.trim()).with_context(|| format!("not one JSON object: {text}"))
    }
}

/// Runs `cmd` to completion, timing it from spawn to exit and reading its peak RSS from
/// `wait4` (the child's own, not the harness's).
///
/// Its stdout and stderr go to unlinked temporary files that are read after the clock stops, so
/// no reader thread competes with the child for the CPUs while it runs (pipes would need them: a
/// chatty child blocks on a full pipe). `LD_LIBRARY_PATH` loses the directories `cargo xtask`
/// and `cargo bench` put in front of it (target directories, the toolchain's libraries): each
/// one is searched for every shared library a program loads, and a command should run as it
/// does from a user's shell (`cargo xtask` adds its own again).
pub fn run(cmd: &mut Command) -> Result<Run> {
    use std::io::{Read, Seek};
    let (mut out_file, mut err_file) = (tempfile::tempfile()?, tempfile::tempfile()?);
    cmd.stdin(Stdio::null())
        .stdout(out_file.try_clone()?)
        .stderr(err_file.try_clone()?);
    if !cmd.get_envs().any(|(key, _)| key == "LD_LIBRARY_PATH") {
        match shell_library_path() {
            Some(paths) => cmd.env("LD_LIBRARY_PATH", paths),
            None => cmd.env_remove("LD_LIBRARY_PATH"),
        };
    }
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned and reaped here
    // (std's Child is not waited on afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    if reaped != pid {
        bail!("wait4 failed for {cmd:?}: {}", std::io::Error::last_os_error());
    }
    drop(child);
    let read = |file: &mut std::fs::File| -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        file.rewind()?;
        file.read_to_end(&mut buf)?;
        Ok(buf)
    };
    let output = Output {
        status: ExitStatus::from_raw(status),
        stdout: read(&mut out_file)?,
        stderr: read(&mut err_file)?,
    };
    Ok(Run {
        output,
        seconds,
        peak_rss_kib: usage.ru_maxrss as u64,
    })
}

/// `LD_LIBRARY_PATH` without the entries cargo added to it (under a `target` directory of this
/// repository or under the toolchain's sysroot); `None` when nothing is left.
fn shell_library_path() -> Option<OsString> {
    static PATHS: std::sync::OnceLock<Option<OsString>> = std::sync::OnceLock::new();
    PATHS
        .get_or_init(|| {
            let current = std::env::var_os("LD_LIBRARY_PATH")?;
            let sysroot = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
                .args(["--print", "sysroot"])
                .output()
                .ok()
                .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
                .filter(|path| path.is_absolute());
            let target = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(|root| root.join("target"));
            let added_by_cargo = |path: &Path| {
                [
                    &sysroot,
                    &target,
                    &std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
                ]
                .into_iter()
                .flatten()
                .any(|dir| path.starts_with(dir))
            };
            let kept: Vec<PathBuf> = std::env::split_paths(&current).filter(|p| !added_by_cargo(p)).collect();
            (!kept.is_empty()).then(|| std::env::join_paths(kept).expect("paths that came from one"))
        })
        .clone()
}

/// The debug xtask as if it lived in `root` (`XTASK_ROOT`), like the integration tests run it.
pub fn xtask(env: &Env, root: &Path, extra_path: &[&Path]) -> Command {
    let mut cmd = Command::new(&env.xtask);
    cmd.env("XTASK_ROOT", root)
        .env("PATH", path_with(extra_path))
        .current_dir(root);
    cmd
}

/// PATH with `extra` directories first.
pub fn path_with(extra: &[&Path]) -> OsString {
    let mut paths: Vec<PathBuf> = extra.iter().map(|p| p.to_path_buf()).collect();
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).expect("PATH entries without ':'")
}

/// 1-, 5- and 15-minute load averages: the machine may be shared while measuring.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// While held, this process's stderr goes to `target/bench/fixtures.log`: the test fixtures
/// narrate every command they run, which would bury the table. Restored when dropped; a panic
/// meanwhile says where its message went.
pub struct Quiet {
    saved: libc::c_int,
    log: PathBuf,
}

impl Quiet {
    pub fn new(env: &Env) -> Result<Quiet> {
        use std::os::fd::IntoRawFd;
        let log = env.target_dir.join("bench/fixtures.log");
        std::fs::create_dir_all(log.parent().expect("in target/bench"))?;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        // SAFETY: plain descriptor juggling on fds this process owns; stderr is restored on drop.
        let saved = unsafe { libc::dup(2) };
        if saved < 0 {
            bail!("dup(2): {}", std::io::Error::last_os_error());
        }
        let fd = file.into_raw_fd();
        unsafe {
            libc::dup2(fd, 2);
            libc::close(fd);
        }
        Ok(Quiet { saved, log })
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        // SAFETY: `saved` is the original stderr duplicated in `new`.
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
        if std::thread::panicking() {
            eprintln!("a fixture failed while being set up: see {}", self.log.display());
        }
    }
}
