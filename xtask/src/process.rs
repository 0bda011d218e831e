//! Running external programs: captured (their stderr quoted in the error) or streamed (to our
//! stderr with a prefix, and into a log file kept in the workspace); and the environment the
//! build tools get ([`tool`]).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use std::os::unix::process::CommandExt;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A command for one of the build tools the workflows run (`make`, `cargo make`, twoliter), in
/// the user's environment rather than the one `cargo xtask` runs in.
///
/// cargo and rustup add variables to the environment of the program they run, and a child
/// inherits them: `RUSTUP_TOOLCHAIN` would override the toolchain file of the repo whose cargo
/// twoliter runs, `CARGO_MANIFEST_DIR` and `CARGO_PKG_*` would describe this crate to theirs, and
/// `LD_LIBRARY_PATH` would point their programs at this toolchain's libraries. So every one of
/// those is removed (see [`injected_env`] for the rule); everything else, `CARGO_HOME` and
/// `RUSTUP_HOME` included, is passed on. When team registries' CAs are remembered,
/// `SSL_CERT_FILE` is the bundle of the system's roots and those CAs (see `registry::trust`), as
/// for the xtask itself.
pub(crate) fn tool(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if let Some(bundle) = crate::registry::trust::for_tools() {
        cmd.env("SSL_CERT_FILE", bundle);
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    for fix in injected_env(std::env::vars_os(), exe_dir.as_deref()) {
        match fix {
            EnvFix::Remove(key) => cmd.env_remove(key),
            EnvFix::Set(key, value) => cmd.env(key, value),
        };
    }
    cmd
}

/// A change [`tool`] makes to the inherited environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvFix {
    Remove(OsString),
    Set(OsString, OsString),
}

/// Variables cargo sets for the program `cargo run` starts (those of `CARGO_PKG_` as a prefix).
const CARGO_RUN_VARS: [&str; 6] = [
    "CARGO",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_BIN_NAME",
    "CARGO_CRATE_NAME",
];

/// What cargo and rustup injected into `vars`, the environment of `cargo xtask`:
/// - cargo's own variables for the program it runs: `CARGO`, `CARGO_MANIFEST_DIR`,
///   `CARGO_MANIFEST_PATH`, `CARGO_PKG_*`, `CARGO_PRIMARY_PACKAGE`, `CARGO_BIN_NAME`,
///   `CARGO_CRATE_NAME`;
/// - rustup's `RUSTUP_TOOLCHAIN_SOURCE` and `RUST_RECURSION_COUNT`, and `RUSTUP_TOOLCHAIN`
///   unless it is the user's: rustup says so with `RUSTUP_TOOLCHAIN_SOURCE=env`. Without a
///   `RUSTUP_TOOLCHAIN_SOURCE` (rustup before 1.28, or no rustup), `RUSTUP_TOOLCHAIN` is taken as
///   injected when `RUST_RECURSION_COUNT` shows a rustup proxy ran us, and as the user's otherwise;
/// - `LD_LIBRARY_PATH` entries inside rustup's toolchains (`$RUSTUP_HOME/toolchains`, by default
///   `~/.rustup/toolchains`) or inside the cargo target directory the xtask runs from
///   (`exe_dir`, e.g. `target/debug`, and below it `deps`); the user's other entries stay, in
///   their order, and the variable goes when none is left.
pub(crate) fn injected_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    exe_dir: Option<&Path>,
) -> Vec<EnvFix> {
    let vars: Vec<(OsString, OsString)> = vars.into_iter().collect();
    let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_os_str());
    let mut fixes = Vec::new();
    for (key, _) in &vars {
        let Some(name) = key.to_str() else { continue };
        if CARGO_RUN_VARS.contains(&name)
            || name.starts_with("CARGO_PKG_")
            || name == "RUSTUP_TOOLCHAIN_SOURCE"
            || name == "RUST_RECURSION_COUNT"
        {
            fixes.push(EnvFix::Remove(key.clone()));
        }
    }
    if get("RUSTUP_TOOLCHAIN").is_some() {
        let injected = match get("RUSTUP_TOOLCHAIN_SOURCE") {
            Some(source) => source != "env",
            None => get("RUST_RECURSION_COUNT").is_some(),
        };
        if injected {
            fixes.push(EnvFix::Remove("RUSTUP_TOOLCHAIN".into()));
        }
    }
    if let Some(paths) = get("LD_LIBRARY_PATH") {
        let rustup_home = get("RUSTUP_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| get("HOME").map(|home| Path::new(home).join(".rustup")));
        let toolchains = rustup_home.map(|home| home.join("toolchains"));
        let injected = |entry: &Path| {
            toolchains.as_deref().is_some_and(|t| entry.starts_with(t)) || exe_dir.is_some_and(|d| entry.starts_with(d))
        };
        let all: Vec<PathBuf> = std::env::split_paths(paths).collect();
        let kept: Vec<&PathBuf> = all.iter().filter(|entry| !injected(entry)).collect();
        if kept.len() != all.len() {
            match std::env::join_paths(kept) {
                Ok(joined) if !joined.is_empty() => fixes.push(EnvFix::Set("LD_LIBRARY_PATH".into(), joined)),
                _ => fixes.push(EnvFix::Remove("LD_LIBRARY_PATH".into())),
            }
        }
    }
    fixes
}

/// Runs a [`tool`] command and returns its stdout (trimmed); on failure the error quotes its
/// stderr.
pub(crate) fn read_tool(mut cmd: Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !output.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Runs `cmd` with `input` on its stdin and its output captured, killing it after `timeout`. The
/// output is returned whatever the exit status; the caller decides what it may quote (a
/// credential helper's stdout holds a secret).
pub(crate) fn run_with_input(
    mut cmd: Command,
    input: &[u8],
    timeout: std::time::Duration,
) -> Result<std::process::Output> {
    let shown = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let input = input.to_vec();
    // A writer thread: a child that does not read its stdin must not block us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    // Both pipes drained at once, so a child filling one cannot stall on the other.
    let errors = std::thread::spawn(move || {
        let mut err = Vec::new();
        let _ = stderr.read_to_end(&mut err);
        err
    });
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        let err = errors.join().unwrap_or_default();
        let _ = tx.send((out, err));
    });
    let (out, err) = match rx.recv_timeout(timeout) {
        Ok(output) => output,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{shown} did not finish within {}s and was killed", timeout.as_secs());
        }
    };
    let _ = writer.join();
    let status = child.wait().with_context(|| format!("cannot wait for {shown}"))?;
    Ok(std::process::Output {
        status,
        stdout: out,
        stderr: err,
    })
}

/// Runs `cmd` and returns its stdout (trimmed). On failure the error quotes the program's stderr.
pub(crate) fn read(cmd: xshell::Cmd<'_>) -> Result<String> {
    let shown = cmd.to_string();
    let output = cmd
        .ignore_status()
        .quiet()
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// How a streamed command ended.
#[derive(Debug)]
pub(crate) struct Streamed {
    pub(crate) status: ExitStatus,
    /// Its last lines of output (stdout and stderr interleaved), for error messages.
    pub(crate) tail: Vec<String>,
}

impl Streamed {
    /// Fails with the last lines and the log path unless the command succeeded.
    pub(crate) fn check(&self, what: &str, log: &Path) -> Result<()> {
        if self.status.success() {
            return Ok(());
        }
        bail!(
            "{what} failed ({}); its last lines:\n{}\nfull log: {}",
            self.status,
            self.tail
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            log.display()
        )
    }
}

const TAIL_LINES: usize = 20;

/// A tool running in its own process group, recorded beside its log
/// (`logs/<phase>.running.json`) while it runs: a later run that finds the record while its
/// owner is dead stops the group, so no build is left running beside the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Running {
    /// The tool's process group (its pid).
    pub(crate) group: u32,
    /// The xtask process that started it, and that process's start time (a reused pid is not it).
    pub(crate) owner: u32,
    pub(crate) owner_start: Option<u64>,
    pub(crate) command: String,
    pub(crate) started_at: u64,
}

/// Where the record of the tool writing `log` goes.
fn running_path(log: &Path) -> PathBuf {
    log.with_extension("running.json")
}

/// The start time of a process (clock ticks since boot, from /proc), to tell it from a later
/// process with the same pid; none where /proc does not say.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is alive and (where /proc can tell) the very process that had `start`.
fn alive(pid: u32, start: Option<u64>) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid as i32, 0) } == 0;
    exists && (start.is_none() || start_time(pid) == start)
}

/// Whether any process of the group is alive. Zombies do not count: they are gone but for
/// their exit status, and in a container nobody may reap an orphan's for a while. Read from
/// /proc where there is one, else by kill(2) with signal 0.
pub(crate) fn group_alive(group: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // SAFETY: kill(2) with signal 0 on a process group only checks that it exists.
        return unsafe { libc::kill(-(group as i32), 0) == 0 };
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the command name: state, ppid, pgrp.
            let mut fields = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace())
                .into_iter()
                .flatten();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
            pgrp == Some(group) && state != Some("Z") && state != Some("X")
        })
}

/// Ends what is left of a tool's process group: TERM, then KILL when anything of it is still
/// alive after `grace`.
pub(crate) fn end_group(group: u32, grace: std::time::Duration) {
    if !group_alive(group) {
        return;
    }
    // SAFETY: kill(2) on the process group.
    unsafe { libc::kill(-(group as i32), libc::SIGTERM) };
    let deadline = std::time::Instant::now() + grace;
    while group_alive(group) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if group_alive(group) {
        // SAFETY: as above.
        unsafe { libc::kill(-(group as i32), libc::SIGKILL) };
    }
}

/// Stops the tools that runs killed before they could left running (their records in
/// `logs_dir`, owners gone); returns a line for each one stopped. A record whose owner runs is
/// a live run, and left alone.
pub(crate) fn stop_orphans(logs_dir: &Path) -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(logs_dir) else {
        return Ok(Vec::new());
    };
    let mut stopped = Vec::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if !path.to_string_lossy().ends_with(".running.json") {
            continue;
        }
        let Some(running) = crate::fsx::read_json::<Running>(&path).ok().flatten() else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        if alive(running.owner, running.owner_start) {
            continue;
        }
        if group_alive(running.group) {
            end_group(running.group, std::time::Duration::from_secs(10));
            stopped.push(format!(
                "stopped {} (process group {}), which a run killed before it ended had left running",
                running.command, running.group
            ));
        }
        fs_err::remove_file(&path)?;
    }
    Ok(stopped)
}

/// Runs `cmd` with its stdout and stderr copied line by line to our stderr (each line prefixed
/// with `prefix`) and appended to `log`. Our stdout is never written to. The tool runs in its
/// own process group, recorded beside the log, and a signal stops that group
/// ([`crate::signals`]): the run then fails as interrupted.
pub(crate) fn stream(mut cmd: Command, prefix: &str, log: &Path) -> Result<Streamed> {
    crate::signals::check()?;
    if let Some(dir) = log.parent() {
        fs_err::create_dir_all(dir)?;
    }
    let mut log_file = fs_err::OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(log_file, "$ {cmd:?}")?;
    let log_file = Arc::new(Mutex::new(log_file));
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
    let record = running_path(log);
    let running = Running {
        group: child.id(),
        owner: std::process::id(),
        owner_start: start_time(std::process::id()),
        command: shown.clone(),
        started_at: crate::fsx::now_unix(),
    };
    crate::fsx::write_json_state(&record, &running)?;
    crate::signals::running_group(Some(child.id()));
    crate::fault::point(&format!("{shown} runs"));
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let pump = |reader: Box<dyn Read + Send>| {
        let log_file = Arc::clone(&log_file);
        let tail = Arc::clone(&tail);
        let prefix = prefix.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
                eprintln!("{prefix}{line}");
                if let Ok(mut file) = log_file.lock() {
                    let _ = writeln!(file, "{line}");
                }
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        })
    };
    let out = pump(Box::new(child.stdout.take().expect("piped stdout")));
    let err = pump(Box::new(child.stderr.take().expect("piped stderr")));
    let status = child.wait().with_context(|| format!("cannot wait for {shown}"));
    if crate::signals::received().is_some() {
        // The tool's own children get the signal too; the run ends only when they are gone.
        end_group(running.group, crate::signals::GRACE);
    }
    crate::signals::running_group(None);
    let _ = out.join();
    let _ = err.join();
    // The group may outlive its leader (a tool's own children): it is ours to end either way.
    let _ = std::fs::remove_file(&record);
    let status = status?;
    crate::signals::check()?;
    let tail = tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
    Ok(Streamed { status, tail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_given_and_a_slow_program_is_killed() {
        let mut cat = Command::new("sh");
        cat.args(["-c", "cat; echo oops >&2; exit 3"]);
        let output = run_with_input(cat, b"localhost:5000", std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(output.stdout, b"localhost:5000");
        assert_eq!(output.stderr, b"oops\n");
        assert_eq!(output.status.code(), Some(3));
        let mut slow = Command::new("sleep");
        slow.arg("30");
        let started = std::time::Instant::now();
        let err = run_with_input(slow, b"", std::time::Duration::from_millis(300)).unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    /// What `cargo run` measured on a rustup install gives the program it runs.
    const CARGO_RUN: [(&str, &str); 14] = [
        (
            "CARGO",
            "/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/cargo",
        ),
        ("CARGO_HOME", "/home/u/.cargo"),
        ("CARGO_MANIFEST_DIR", "/src/kit/xtask"),
        ("CARGO_MANIFEST_PATH", "/src/kit/xtask/Cargo.toml"),
        ("CARGO_PKG_NAME", "xtask"),
        ("CARGO_PKG_VERSION", "0.1.0"),
        ("CARGO_PRIMARY_PACKAGE", "1"),
        ("HOME", "/home/u"),
        (
            "LD_LIBRARY_PATH",
            "/src/kit/target/debug:/src/kit/target/debug/deps:/opt/mine/lib:\
             /home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib",
        ),
        ("PATH", "/home/u/.cargo/bin:/usr/bin"),
        ("RUSTUP_HOME", "/home/u/.rustup"),
        ("RUSTUP_TOOLCHAIN", "stable-x86_64-unknown-linux-gnu"),
        ("RUSTUP_TOOLCHAIN_SOURCE", "default"),
        ("RUST_RECURSION_COUNT", "1"),
    ];

    #[test]
    fn what_cargo_and_rustup_injected_is_removed() {
        let fixes = injected_env(env(&CARGO_RUN), Some(Path::new("/src/kit/target/debug")));
        let removed: Vec<&str> = fixes
            .iter()
            .filter_map(|f| match f {
                EnvFix::Remove(k) => k.to_str(),
                EnvFix::Set(..) => None,
            })
            .collect();
        assert_eq!(
            removed,
            [
                "CARGO",
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_PKG_NAME",
                "CARGO_PKG_VERSION",
                "CARGO_PRIMARY_PACKAGE",
                "RUSTUP_TOOLCHAIN_SOURCE",
                "RUST_RECURSION_COUNT",
                "RUSTUP_TOOLCHAIN"
            ]
        );
        // The user's library directory stays; the target dir's and the toolchain's go.
        assert!(fixes.contains(&EnvFix::Set("LD_LIBRARY_PATH".into(), "/opt/mine/lib".into())));
        assert_eq!(fixes.len(), removed.len() + 1);
    }

    #[test]
    fn what_the_user_set_is_kept() {
        // RUSTUP_TOOLCHAIN chosen by the user, as rustup reports it.
        let mut vars = CARGO_RUN.to_vec();
        vars.retain(|(k, _)| *k != "RUSTUP_TOOLCHAIN_SOURCE" && *k != "LD_LIBRARY_PATH");
        vars.push(("RUSTUP_TOOLCHAIN_SOURCE", "env"));
        let fixes = injected_env(env(&vars), None);
        assert!(!fixes.contains(&EnvFix::Remove("RUSTUP_TOOLCHAIN".into())), "{fixes:?}");
        assert!(fixes.contains(&EnvFix::Remove("RUSTUP_TOOLCHAIN_SOURCE".into())));
        // Not run by cargo or rustup at all: nothing is touched.
        let plain = env(&[
            ("HOME", "/home/u"),
            ("RUSTUP_TOOLCHAIN", "nightly"),
            ("LD_LIBRARY_PATH", "/opt/mine/lib"),
            ("CARGO_HOME", "/home/u/.cargo"),
            ("CARGO_TARGET_DIR", "/tmp/t"),
        ]);
        assert_eq!(injected_env(plain, Some(Path::new("/usr/local/bin"))), []);
        // Run by an older rustup (no RUSTUP_TOOLCHAIN_SOURCE): its recursion count gives it away.
        let old = env(&[("RUSTUP_TOOLCHAIN", "stable"), ("RUST_RECURSION_COUNT", "1")]);
        assert_eq!(
            injected_env(old, None),
            [
                EnvFix::Remove("RUST_RECURSION_COUNT".into()),
                EnvFix::Remove("RUSTUP_TOOLCHAIN".into())
            ]
        );
    }

    #[test]
    fn a_library_path_of_only_injected_entries_goes() {
        let vars = env(&[
            ("HOME", "/root"),
            ("LD_LIBRARY_PATH", "/root/.rustup/toolchains/x/lib:/t/debug/deps"),
        ]);
        assert_eq!(
            injected_env(vars, Some(Path::new("/t/debug"))),
            [EnvFix::Remove("LD_LIBRARY_PATH".into())]
        );
    }

    #[test]
    fn tools_run_without_the_injected_variables() {
        let mut cmd = tool("sh");
        cmd.args(["-c", "echo \"${CARGO_MANIFEST_DIR-unset} ${HOME:+home}\""]);
        // Whatever runs this test (cargo or nextest) set CARGO_MANIFEST_DIR for it.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        assert_eq!(read_tool(cmd).unwrap(), "unset home");
        let mut failing = tool("sh");
        failing.args(["-c", "echo no >&2; exit 4"]);
        let err = read_tool(failing).unwrap_err();
        assert!(format!("{err:#}").contains("no"), "{err:#}");
    }

    #[test]
    fn stream_keeps_log_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/build.log");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "for i in $(seq 1 30); do echo out$i; done; sleep 0.3; echo oops >&2; exit 3",
        ]);
        let done = stream(cmd, "[build] ", &log).unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.tail.len(), TAIL_LINES);
        assert!(done.tail.contains(&"oops".to_string()));
        let text = fs_err::read_to_string(&log).unwrap();
        assert!(text.contains("out1\n") && text.contains("out30\n") && text.contains("oops\n"));
        let err = done.check("make build", &log).unwrap_err().to_string();
        assert!(err.contains("make build failed") && err.contains("oops") && err.contains("build.log"));
    }

    #[test]
    fn read_quotes_stderr() {
        let sh = xshell::Shell::new().unwrap();
        let err = read(xshell::cmd!(sh, "sh -c 'echo broken >&2; exit 1'")).unwrap_err();
        assert!(format!("{err:#}").contains("broken"), "{err:#}");
        assert_eq!(read(xshell::cmd!(sh, "echo hi")).unwrap(), "hi");
    }
}
