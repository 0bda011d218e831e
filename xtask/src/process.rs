//! Running external programs: captured (their stderr quoted in the error) or streamed (to our
//! stderr with a prefix, and into a log file kept in the workspace).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

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

/// Runs `cmd` with its stdout and stderr copied line by line to our stderr (each line prefixed
/// with `prefix`) and appended to `log`. Our stdout is never written to.
pub(crate) fn stream(mut cmd: Command, prefix: &str, log: &Path) -> Result<Streamed> {
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
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
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
    let status = child.wait().with_context(|| format!("cannot wait for {shown}"))?;
    let _ = out.join();
    let _ = err.join();
    let tail = tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
    Ok(Streamed { status, tail })
}

#[cfg(test)]
mod tests {
    use super::*;

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
