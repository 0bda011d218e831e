//! The shell scripts run on the builder, as text. Pure: every value is quoted here, and ssh
//! hands the builder one command string, which its login shell parses.

use anyhow::{bail, Result};

/// `value` quoted for a POSIX shell.
pub(crate) fn quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The command string that runs `script` with `sh`, whatever the login shell is.
pub(crate) fn sh_command(script: &str) -> String {
    format!("sh -c {}", quote(script))
}

/// Programs the builder needs: the rebuilt command is `cargo xtask`, the checkouts arrive as
/// git bundles in a tar, the kit repos build through make and every build through Docker.
pub(crate) const NEEDED: [&str; 5] = ["git", "tar", "cargo", "make", "docker"];

/// Cargo's own install directory, looked in after the login PATH (non-interactive ssh sessions
/// often lack what a profile adds).
const PATH_TAIL: &str = r#"PATH="$PATH:$HOME/.cargo/bin"; export PATH"#;

/// What the builder is: its kernel (`uname -s`), the directory the checkouts go to (made
/// absolute), the programs it lacks, and the commit each repo's copy there is at.
pub(crate) fn probe(remote_dir: &str, dir_name: &str, repos: &[String]) -> String {
    let mut script = format!(
        "{PATH_TAIL}\nprintf 'os=%s\\n' \"$(uname -s)\"\nbase={}\ncase $base in /*) ;; *) base=\"$HOME/$base\";; esac\n\
         printf 'dir=%s\\n' \"$base/{}\"\nfor tool in {}; do command -v \"$tool\" >/dev/null 2>&1 || printf 'missing=%s\\n' \"$tool\"; done\n",
        quote(remote_dir),
        dir_name,
        NEEDED.join(" ")
    );
    for (i, rel) in repos.iter().enumerate() {
        script.push_str(&format!(
            "printf 'head{i}=%s\\n' \"$(git -C \"$base/{dir_name}/\"{} rev-parse --verify -q HEAD 2>/dev/null)\"\n",
            quote(rel)
        ));
    }
    script
}

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) os: String,
    /// `<remote-dir>/<checkout-id>`, absolute.
    pub(crate) dir: String,
    pub(crate) missing: Vec<String>,
    /// Per repo, the commit its copy is at, if there is a copy.
    pub(crate) heads: Vec<Option<String>>,
}

/// Reads [`probe`]'s output for `repos` repos.
pub(crate) fn parse_probe(output: &str, repos: usize) -> Result<Probe> {
    let mut probe = Probe {
        os: String::new(),
        dir: String::new(),
        missing: Vec::new(),
        heads: vec![None; repos],
    };
    for line in output.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "os" => probe.os = value.to_string(),
            "dir" => probe.dir = value.to_string(),
            "missing" => probe.missing.push(value.to_string()),
            _ => {
                let index = key.strip_prefix("head").and_then(|i| i.parse::<usize>().ok());
                if let (Some(i), false) = (index, value.is_empty()) {
                    if i < repos {
                        probe.heads[i] = Some(value.to_string());
                    }
                }
            }
        }
    }
    if probe.os.is_empty() || !probe.dir.starts_with('/') {
        bail!("the builder's answer to the probe is not understood:\n{output}");
    }
    Ok(probe)
}

/// One repo to bring up to date on the builder from the files of the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoUpdate {
    /// Its path on the builder.
    pub(crate) remote: String,
    /// The commit to check out; `None` for a plain directory, only created.
    pub(crate) head: Option<String>,
    /// The bundle holding what the copy lacks, when it lacks anything.
    pub(crate) bundle: Option<String>,
    /// A binary patch of uncommitted changes to tracked files.
    pub(crate) patch: Option<String>,
    /// A tar of untracked files.
    pub(crate) untracked: Option<String>,
}

/// A command run in a repo on the builder before the command itself, unless a file exists:
/// a fresh copy installs the twoliter its repo pins, as a person would after cloning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepare {
    /// The repo, on the builder.
    pub(crate) dir: String,
    /// Relative to `dir`: when it exists, nothing is run.
    pub(crate) unless: String,
    pub(crate) argv: Vec<String>,
}

/// The directory, under a checkout's directory on the builder and in the upload, of the files
/// sent along with the repos.
pub(crate) const SENT_FILES: &str = "files";

/// What the upload (a tar, first on the script's stdin) holds.
pub(crate) struct Upload<'a> {
    /// Its size.
    pub(crate) bytes: u64,
    /// What brings each repo's copy to the local state.
    pub(crate) repos: &'a [RepoUpdate],
    /// The names of the files under [`SENT_FILES`] in it.
    pub(crate) files: &'a [String],
}

/// Unpacks the upload (first on stdin) into a temp dir under `dir`, keeps the files sent along
/// in `dir/files/`, brings each repo to the local state (HEAD, then uncommitted changes and
/// untracked files on top; ignored files such as `build/`, `tools/` and `planning/` are kept, so
/// later runs reuse them), then runs
/// `cargo xtask ARGS…` in the checkout with `env` and exits with its status. Its stdout (the
/// JSON summary) is the script's; everything else goes to stderr. One run per checkout at a
/// time (`flock` on `dir/.lock` where util-linux has it): a second waits. The command gets
/// neither the lock nor the script's stdout as extra descriptors, so a server it leaves running
/// (the registry) holds neither the lock nor the ssh session.
///
/// The rest of stdin stays open for as long as the local xtask runs: when it closes (the local
/// run was interrupted or killed, or the connection dropped), a watcher sends the command
/// SIGTERM, so it stops its tools and puts the repo's files back as it does for Ctrl-C, instead
/// of building on for nobody.
pub(crate) fn update_and_run(
    dir: &str,
    upload: &Upload<'_>,
    prepare: &[Prepare],
    checkout: &str,
    env: &[(String, String)],
    args: &[String],
) -> String {
    let mut script = format!(
        "set -e\nexec 3>&1 1>&2 4<&0\n{PATH_TAIL}\ndir={}\nmkdir -p \"$dir/incoming\"\n\
         exec 9>\"$dir/.lock\"\nif command -v flock >/dev/null 2>&1 && ! flock -n 9; then\n\
         echo \"another run from this checkout is using $dir on this builder: waiting for it\"\nflock 9\nfi\n\
         upload=$(mktemp -d \"$dir/incoming/upload.XXXXXX\")\n\
         trap 'rm -rf \"$upload\"' EXIT\n\
         head -c {bytes} >\"$upload/upload.tar\"\n\
         if [ \"$(wc -c <\"$upload/upload.tar\")\" -ne {bytes} ]; then\n\
         echo \"the upload arrived incomplete: the connection ended early; run again\"; exit 1\nfi\n\
         tar -xf \"$upload/upload.tar\" -C \"$upload\"\nrm -f \"$upload/upload.tar\"\nexec </dev/null\n",
        quote(dir),
        bytes = upload.bytes
    );
    for repo in upload.repos {
        let path = quote(&repo.remote);
        let Some(head) = &repo.head else {
            script.push_str(&format!("mkdir -p {path}\n"));
            continue;
        };
        script.push_str(&format!(
            "if [ ! -d {path}/.git ]; then mkdir -p {path} && git -C {path} init -q; fi\n"
        ));
        if let Some(bundle) = &repo.bundle {
            script.push_str(&format!("git -C {path} fetch -q \"$upload\"/{} HEAD\n", quote(bundle)));
        }
        script.push_str(&format!(
            "git -C {path} checkout -q -f --detach {}\ngit -C {path} clean -q -f -d -e /planning/\n",
            quote(head)
        ));
        if let Some(patch) = &repo.patch {
            script.push_str(&format!(
                "git -C {path} apply --binary --whitespace=nowarn \"$upload\"/{}\n",
                quote(patch)
            ));
        }
        if let Some(untracked) = &repo.untracked {
            script.push_str(&format!("tar -xf \"$upload\"/{} -C {path}\n", quote(untracked)));
        }
    }
    for name in upload.files {
        script.push_str(&format!(
            "mkdir -p \"$dir\"/{SENT_FILES}\ncp \"$upload\"/{SENT_FILES}/{name} \"$dir\"/{SENT_FILES}/{name}\n",
            name = quote(name)
        ));
    }
    for step in prepare {
        let argv: Vec<String> = step.argv.iter().map(|a| quote(a)).collect();
        script.push_str(&format!(
            "if [ ! -e {dir}/{unless} ]; then (cd {dir} && {argv}); fi\n",
            dir = quote(&step.dir),
            unless = quote(&step.unless),
            argv = argv.join(" ")
        ));
    }
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    // A background job's stdin is /dev/null unless redirected: the watcher reads fd 4, the
    // session's stdin. Killing the watcher ends its wait; its `cat` ends with the session.
    script.push_str(&format!(
        "cd {}\nset +e\nenv {} cargo xtask {} >&3 3>&- 4<&- 9>&- </dev/null &\npid=$!\n\
         (cat >/dev/null; kill -TERM \"$pid\" 2>/dev/null) <&4 >/dev/null 2>&1 3>&- 4<&- 9>&- &\n\
         watch=$!\nexec 4<&-\nwait \"$pid\"\nstatus=$?\nkill \"$watch\" 2>/dev/null\nexit $status\n",
        quote(checkout),
        env.join(" "),
        args.join(" ")
    ));
    script
}

/// Runs `cargo xtask restore WORKSPACE [--force]` in the checkout, with its environment.
pub(crate) fn restore(checkout: &str, env: &[(String, String)], workspace: &str, force: bool) -> String {
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    format!(
        "{PATH_TAIL}\ncd {} || exit 1\nexec env {} cargo xtask restore {}{}\n",
        quote(checkout),
        env.join(" "),
        quote(workspace),
        if force { " --force" } else { "" }
    )
}

/// Writes a tar of `dir/name` to stdout.
pub(crate) fn pack(parent: &str, name: &str) -> String {
    format!("tar -C {} -cf - {}", quote(parent), quote(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a script with the local `sh`, as the builder would.
    fn sh(script: &str) -> std::process::Output {
        std::process::Command::new("sh").args(["-c", script]).output().unwrap()
    }

    #[test]
    fn quoting_survives_a_shell() {
        for value in ["plain", "two words", "it's", "$HOME", "`x`", "a\nb", "", "--kit=x y"] {
            let out = sh(&format!("printf %s {}", quote(value)));
            assert_eq!(String::from_utf8_lossy(&out.stdout), value);
        }
        assert_eq!(quote("localhost:5000"), "localhost:5000");
        let command = sh_command("printf '%s' \"it's\"");
        let out = std::process::Command::new("sh")
            .args(["-c", &command])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's");
    }

    #[test]
    fn the_probe_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().display().to_string();
        let out = sh(&probe(&base, "c-1", &["root".into(), "repos/x".into()]));
        let probe = parse_probe(&String::from_utf8_lossy(&out.stdout), 2).unwrap();
        assert_eq!(probe.dir, format!("{base}/c-1"));
        assert_eq!(probe.heads, [None, None]);
        assert!(!probe.os.is_empty());
        let parsed = parse_probe("os=Linux\ndir=/h/.cache/x/c\nmissing=docker\nhead1=abc\nhead0=\n", 2).unwrap();
        assert_eq!(parsed.missing, ["docker"]);
        assert_eq!(parsed.heads, [None, Some("abc".into())]);
        assert!(parse_probe("Welcome!\n", 1).is_err());
    }

    /// The run script on the local `sh`, with a stand-in `cargo` on PATH that records its start
    /// and a SIGTERM in a mark file, then exits with `status`, or without one runs until stopped.
    /// The upload goes on stdin, which stays open while the command runs with a `status` and is
    /// closed once the command started without one. Returns the script's exit status and the mark.
    fn run_script(status: Option<i32>) -> (Option<i32>, String) {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let cargo = bin.join("cargo");
        std::fs::write(
            &cargo,
            "#!/bin/sh\ntrap 'echo term >\"$MARK\"; exit 143' TERM\necho started >\"$MARK\"\n\
             [ -n \"$FAKE_STATUS\" ] && exit \"$FAKE_STATUS\"\nwhile :; do sleep 0.1; done\n",
        )
        .unwrap();
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut upload = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_cksum();
        upload.append_data(&mut header, "hello", &b"hello"[..]).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_cksum();
        upload.append_data(&mut header, "files/ca.pem", &b"PEM"[..]).unwrap();
        let upload = upload.into_inner().unwrap();
        let mark = dir.path().join("mark");
        let base = dir.path().display().to_string();
        let script = update_and_run(
            &base,
            &Upload {
                bytes: upload.len() as u64,
                repos: &[],
                files: &["ca.pem".to_string()],
            },
            &[],
            &base,
            &[("MARK".into(), mark.display().to_string())],
            &["build-kit".into()],
        );
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", &script])
            .env("PATH", path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(status) = status {
            cmd.env("FAKE_STATUS", status.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&upload).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::read_to_string(&mark).unwrap_or_default().trim() != "started" {
            assert!(std::time::Instant::now() < deadline, "the command never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut stdin = Some(stdin);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                drop(stdin.take());
                // The file sent along was kept beside the repos before the command ran.
                assert_eq!(std::fs::read_to_string(dir.path().join("files/ca.pem")).unwrap(), "PEM");
                return (status.code(), std::fs::read_to_string(&mark).unwrap_or_default());
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the run script did not end");
            }
            if status.is_none() {
                // The session ends: stdin closes.
                drop(stdin.take());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The command's status is the script's while the session is still open; a session that
    /// ends under a running command stops it with SIGTERM.
    #[test]
    fn the_run_ends_with_its_command_and_stops_when_the_session_ends() {
        let (status, mark) = run_script(Some(3));
        assert_eq!((status, mark.trim()), (Some(3), "started"));
        let (status, mark) = run_script(None);
        assert_eq!((status, mark.trim()), (Some(143), "term"));
    }

    #[test]
    fn the_run_script_updates_each_repo_then_runs_the_command() {
        let script = update_and_run(
            "/r/c",
            &Upload {
                bytes: 4096,
                repos: &[RepoUpdate {
                    remote: "/r/c/root".into(),
                    head: Some("abc123".into()),
                    bundle: Some("0.bundle".into()),
                    patch: Some("0.patch".into()),
                    untracked: None,
                }],
                files: &["ca.pem".to_string()],
            },
            &[Prepare {
                dir: "/r/c/root".into(),
                unless: "tools/twoliter/twoliter".into(),
                argv: vec!["cargo".into(), "make".into(), "install-twoliter".into()],
            }],
            "/r/c/root",
            &[("XTASK_ROOT".into(), "/r/c/root".into())],
            &["build-kit".into(), "--kit".into(), "my kit".into()],
        );
        for part in [
            "git -C /r/c/root fetch -q \"$upload\"/0.bundle HEAD",
            "checkout -q -f --detach abc123",
            "clean -q -f -d -e /planning/",
            "if [ ! -e /r/c/root/tools/twoliter/twoliter ]; then (cd /r/c/root && cargo make install-twoliter); fi",
            "apply --binary",
            "flock -n 9",
            "head -c 4096 >\"$upload/upload.tar\"",
            // What runs next (git, a repo's `make prep`) reads no stdin: the session's is fd 4.
            "exec </dev/null",
            "env XTASK_ROOT=/r/c/root cargo xtask build-kit --kit 'my kit' >&3 3>&- 4<&- 9>&- </dev/null &",
            // A file sent along stays beside the repos once the upload is gone.
            "cp \"$upload\"/files/ca.pem \"$dir\"/files/ca.pem",
            "<&4 >/dev/null",
        ] {
            assert!(script.contains(part), "{part} missing from:\n{script}");
        }
        assert!(!script.contains("untracked"));
    }
}
