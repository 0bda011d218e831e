//! Builds on another Linux machine over ssh (`build-kit --on`, `variant --on`): twoliter needs
//! a Docker engine that shares its kernel, network and paths, so instead of pointing Docker
//! elsewhere the whole command runs on the builder.
//!
//! Each repo the command needs goes over as a git bundle (only what the builder's copy lacks),
//! with the uncommitted changes as a patch and the untracked files as a tar, into a directory
//! per checkout that later runs reuse (`layout`); the builder runs `cargo xtask …` there
//! (`script`), its output streamed; the workspace comes back into the local one, replaced
//! whole. `ssh` decides the command lines and reads ssh's failures.

pub(crate) mod layout;
pub(crate) mod script;
pub(crate) mod ssh;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::{fsx, git, project, tools, ui};
use layout::Layout;
use ssh::Target;

/// The file in a workspace brought back from a builder that says where it was built.
pub(crate) const RECORD: &str = "remote.json";

/// Where a workspace brought back from a builder lives there (`remote.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    /// The builder, as `--on` named it.
    pub(crate) host: String,
    /// The workspace on the builder.
    pub(crate) workspace: String,
    /// The checkout's directory on the builder.
    pub(crate) dir: String,
    /// The checkout the command ran in there, and its environment (`XTASK_ROOT`,
    /// `FOREST_ROOT`); absent in records written before they were kept.
    #[serde(default)]
    pub(crate) checkout: Option<String>,
    #[serde(default)]
    pub(crate) env: Vec<(String, String)>,
}

/// The record of a workspace brought back from a builder, if it is one.
pub(crate) fn record(ws_dir: &Path) -> Result<Option<Record>> {
    fsx::read_json(&ws_dir.join(RECORD))
}

/// Drops the record: the workspace is this machine's from now on.
pub(crate) fn forget(ws_dir: &Path) -> Result<()> {
    fs_err::remove_file(ws_dir.join(RECORD))?;
    Ok(())
}

/// `restore` of a workspace built on a builder: the files it changed are there, so the
/// restore runs there (`cargo xtask restore` in the same checkout), its output streamed and its
/// exit status this command's; the workspace then comes back again, as the builder left it.
pub(crate) fn restore_there(
    record: &Record,
    local: &Path,
    ssh_config: Option<PathBuf>,
    force: bool,
) -> Result<ExitCode> {
    let Some(checkout) = &record.checkout else {
        bail!(
            "this workspace was built on {} and its files were changed there, but it does not say in \
             which checkout (it was brought back by an older xtask): run `cargo xtask restore {}` on {} \
             in that checkout (under {})",
            record.host,
            record.workspace,
            record.host,
            record.dir
        );
    };
    let target = Target {
        host: record.host.clone(),
        config: ssh_config.filter(|c| !c.as_os_str().is_empty()),
        remote_dir: record.dir.clone(),
    };
    ssh::check_host(&target.host)?;
    tools::require("ssh", ssh::INSTALL_REMEDY)?;
    ui::step(format!(
        "restoring on {} (the workspace was built there): {}",
        target.host, record.workspace
    ));
    let run = script::restore(checkout, &record.env, &record.workspace, force);
    let status = crate::process::tool("ssh")
        .args(ssh::argv(&target, &script::sh_command(&run)))
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run ssh: {}", ssh::INSTALL_REMEDY))?;
    match status.code() {
        Some(ssh::SSH_FAILED) | None => bail!(
            "ssh to {} failed (exit status {status}): try `ssh {} true` to see why",
            target.host,
            target.host
        ),
        Some(0) => {
            fetch_workspace(&target, record, local)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
    }
}

/// This machine's name, which keeps two machines' checkouts apart on one builder.
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|n| n.trim().to_string())
        .unwrap_or_default()
}

/// The top directory of the git checkout holding `path`, refusing one that is not in any.
fn repo_top(sh: &Shell, path: &Path, what: &str) -> Result<PathBuf> {
    if !path.is_dir() {
        bail!("{what} {} is not a directory", path.display());
    }
    match git::toplevel(sh, path) {
        Some(top) => Ok(top),
        None => bail!(
            "{what} {} is not in a git checkout: --on sends each repo the command needs to the \
             builder as a git bundle; make it one (`git init`, commit), or build here without --on",
            path.display()
        ),
    }
}

/// A path as it is here: absolute, symlinks resolved where it exists (git names checkouts so).
pub(crate) fn real(path: &Path) -> PathBuf {
    let path = project::absolute(path);
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// Runs one ssh command, captured. ssh's own failures become their diagnosis. ssh, like every
/// tool, runs in the user's environment rather than the one cargo gave `cargo xtask`.
fn capture(target: &Target, command: &str) -> Result<String> {
    let output = crate::process::tool("ssh")
        .args(ssh::argv(target, command))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run ssh: {}", ssh::INSTALL_REMEDY))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        Some(ssh::SSH_FAILED) | None => Err(ssh::diagnose(&target.host, &stderr)),
        Some(code) => bail!(
            "the probe of {} failed (exit status {code}): {}",
            target.host,
            stderr.trim()
        ),
    }
}

/// What the builder lacks, said plainly.
fn check_probe(host: &str, probe: &script::Probe) -> Result<()> {
    if probe.os != "Linux" {
        bail!(
            "{host} runs {}, not Linux: twoliter builds only on Linux; choose a Linux builder",
            probe.os
        );
    }
    if !probe.missing.is_empty() {
        bail!(
            "{host} lacks {} (not on the PATH of an ssh session, nor in ~/.cargo/bin): install \
             them there (git, tar, make: the distribution's packages; cargo: rustup; docker: \
             Docker Engine with its daemon running)",
            probe.missing.join(", ")
        );
    }
    Ok(())
}

/// Adds the files that bring one repo's copy on the builder to the state of `repo` here.
fn stage_repo(
    sh: &Shell,
    repo: &layout::Placed,
    remote_head: Option<&str>,
    index: usize,
    upload: &mut tar::Builder<std::fs::File>,
    tmp: &Path,
) -> Result<script::RepoUpdate> {
    if !repo.git {
        return Ok(script::RepoUpdate {
            remote: repo.remote.clone(),
            head: None,
            bundle: None,
            patch: None,
            untracked: None,
        });
    }
    let head = git::head(sh, &repo.local)?;
    let name = |ext: &str| format!("{index}.{ext}");
    // Only what the builder's copy lacks; all of HEAD's history when it has no copy (or one
    // this checkout does not know).
    let bundle = match remote_head {
        Some(known) if known == head => None,
        known => {
            let path = tmp.join(name("bundle"));
            let basis = known
                .filter(|k| git::has_commit(sh, &repo.local, k))
                .map(|k| format!("^{k}"));
            let incremental = basis
                .as_deref()
                .map(|basis| git::bundle(sh, &repo.local, &path, &["HEAD", basis]));
            if !matches!(incremental, Some(Ok(()))) {
                git::bundle(sh, &repo.local, &path, &["HEAD"])?;
            }
            upload.append_path_with_name(&path, name("bundle"))?;
            Some(name("bundle"))
        }
    };
    let diff = git::diff_against_head(sh, &repo.local)?;
    let patch = if diff.is_empty() {
        None
    } else {
        append_bytes(upload, &name("patch"), &diff)?;
        Some(name("patch"))
    };
    let files: Vec<PathBuf> = git::untracked(sh, &repo.local)?
        .into_iter()
        .filter(|p| !p.starts_with("planning"))
        .collect();
    let untracked = if files.is_empty() {
        None
    } else {
        let path = tmp.join(name("untracked.tar"));
        let mut inner = tar::Builder::new(create(&path)?);
        inner.follow_symlinks(false);
        for file in &files {
            inner
                .append_path_with_name(repo.local.join(file), file)
                .with_context(|| format!("cannot pack the untracked file {}", repo.local.join(file).display()))?;
        }
        inner.finish()?;
        upload.append_path_with_name(&path, name("untracked.tar"))?;
        Some(name("untracked.tar"))
    };
    if patch.is_some() || untracked.is_some() {
        ui::info(format!(
            "{}: uncommitted changes go along ({} untracked files)",
            repo.local.display(),
            files.len()
        ));
    }
    Ok(script::RepoUpdate {
        remote: repo.remote.clone(),
        head: Some(head),
        bundle,
        patch,
        untracked,
    })
}

fn create(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

fn append_bytes(upload: &mut tar::Builder<std::fs::File>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    upload.append_data(&mut header, name, bytes)?;
    Ok(())
}

/// What a command run with `--on` asks for.
pub(crate) struct Request<'a> {
    pub(crate) target: Target,
    /// The repos the command needs besides this checkout (kit or variant repo), any path
    /// inside each.
    pub(crate) repos: Vec<PathBuf>,
    /// Commands run in a repo (a path here, any inside it) before the command, unless a file
    /// exists there.
    pub(crate) prepare: Vec<(PathBuf, script::Prepare)>,
    /// CA files the command names (`--ca-file`), outside the repos: each is checked here, sent
    /// along and kept on the builder at [`sent_file`] under the name given.
    pub(crate) files: Vec<(PathBuf, &'static str)>,
    /// The command's arguments for the builder, with paths translated; `--json` is added.
    pub(crate) args: &'a dyn Fn(&Layout) -> Result<Vec<String>>,
    /// Whether the user asked for `--json`: the builder's summary is printed here.
    pub(crate) json: bool,
}

/// Where a file sent along with the repos (`Request::files`) is on the builder.
pub(crate) fn sent_file(layout: &Layout, name: &str) -> String {
    format!("{}/{}/{name}", layout.dir, script::SENT_FILES)
}

/// Runs the command on the builder and brings its workspace back; the exit status is the
/// builder's.
pub(crate) fn run_on(sh: &Shell, request: Request<'_>) -> Result<ExitCode> {
    let target = &request.target;
    ssh::check_host(&target.host)?;
    let sent: Vec<(String, &str)> = request
        .files
        .iter()
        .map(|(local, name)| Ok((crate::registry::trust::read_ca_file(local)?, *name)))
        .collect::<Result<_>>()?;
    tools::require("ssh", ssh::INSTALL_REMEDY)?;
    tools::require("git", tools::GIT_REMEDY)?;
    // The checkout the xtask acts for: a git checkout is sent; a plain directory (as a forest's
    // xtask checkout may be) only holds planning/, kept on the builder between runs.
    let checkout = real(&project::root());
    let (root, root_git) = match git::toplevel(sh, &checkout) {
        Some(top) => (top, true),
        None => (checkout.clone(), false),
    };
    let forest = project::forest_root().map(|f| real(&f));
    let mut others = Vec::new();
    for repo in &request.repos {
        others.push(repo_top(sh, &real(repo), "the repo")?);
    }
    let id = layout::checkout_id(&machine_name(), &root, forest.as_deref());
    // Placed relative to the directory first: the probe says where that is.
    let relative = layout::plan("", &root, root_git, forest.as_deref(), &others);
    let rels: Vec<String> = relative
        .repos
        .iter()
        .map(|p| p.remote.trim_start_matches('/').to_string())
        .collect();
    ui::step(format!("checking {} (ssh)", target.host));
    let answer = capture(
        target,
        &script::sh_command(&script::probe(&target.remote_dir, &id, &rels)),
    )?;
    let probe = script::parse_probe(&answer, rels.len())?;
    check_probe(&target.host, &probe)?;
    let layout = layout::plan(&probe.dir, &root, root_git, forest.as_deref(), &others);
    let Some(remote_checkout) = layout.to_remote(&checkout) else {
        bail!("{} has no place on the builder", checkout.display());
    };
    let mut args = (request.args)(&layout)?;
    if !args.iter().any(|a| a == "--json") {
        args.push("--json".into());
    }

    let tmp = fsx::TempDir::new("xtask-remote")?;
    let upload_path = tmp.path().join("upload.tar");
    let mut upload = tar::Builder::new(create(&upload_path)?);
    let mut updates = Vec::new();
    for (index, repo) in layout.repos.iter().enumerate() {
        let known = probe.heads.get(index).cloned().flatten();
        updates.push(stage_repo(sh, repo, known.as_deref(), index, &mut upload, tmp.path())?);
    }
    let mut files = Vec::new();
    for (text, name) in &sent {
        append_bytes(&mut upload, &format!("{}/{name}", script::SENT_FILES), text.as_bytes())?;
        files.push(name.to_string());
    }
    upload.finish()?;
    drop(upload);
    let reused = probe.heads.iter().filter(|h| h.is_some()).count();
    ui::step(format!(
        "sending {} repos to {}:{} ({} reused there)",
        layout.repos.iter().filter(|r| r.git).count(),
        target.host,
        layout.dir,
        reused
    ));

    let mut env = vec![("XTASK_ROOT".to_string(), remote_checkout.clone())];
    if let Some((_, remote)) = &layout.forest {
        env.push(("FOREST_ROOT".into(), remote.clone()));
    }
    let mut prepare = Vec::new();
    for (repo, step) in &request.prepare {
        let top = repo_top(sh, &real(repo), "the repo")?;
        let dir = layout.translate("the repo", &top)?;
        prepare.push(script::Prepare { dir, ..step.clone() });
    }
    let upload_bytes = std::fs::metadata(&upload_path)
        .with_context(|| format!("cannot read {}", upload_path.display()))?
        .len();
    let run = script::update_and_run(
        &layout.dir,
        &script::Upload {
            bytes: upload_bytes,
            repos: &updates,
            files: &files,
        },
        &prepare,
        &remote_checkout,
        &env,
        &args,
    );
    ui::step(format!("cargo xtask {} (on {})", args.join(" "), target.host));
    let output = run_streamed(target, &script::sh_command(&run), &upload_path)?;
    if let Some(interrupted) = crate::signals::received() {
        return Err(anyhow::Error::new(interrupted).context(format!(
            "the run on {} was stopped there too (it puts the repos' files back on the builder, \
             which keeps what it built)",
            target.host
        )));
    }
    let code = match output.status.code() {
        Some(ssh::SSH_FAILED) | None => bail!(
            "the connection to {} failed during the run (ssh exit status {}): run again; the \
             builder keeps what it built",
            target.host,
            output.status
        ),
        Some(code) => code,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Option<serde_json::Value> = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok());
    let mut summary = match summary {
        Some(summary) => summary,
        None => bail!(
            "the run on {} printed no summary (exit status {code}); its output is above",
            target.host
        ),
    };
    let mut code = code;
    if let Some(remote_ws) = summary.get("workspace").and_then(|w| w.as_str()).map(String::from) {
        let record = Record {
            host: target.host.clone(),
            workspace: remote_ws.clone(),
            dir: layout.dir.clone(),
            checkout: Some(remote_checkout.clone()),
            env: env.clone(),
        };
        match bring_back(sh, target, &layout, &record) {
            Ok(local) => summary["workspace"] = serde_json::Value::String(local.display().to_string()),
            Err(err) => {
                ui::warn(format!("{err:#}"));
                code = code.max(1);
            }
        }
    }
    if request.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Runs `command` over ssh with the upload on its stdin, its stdout captured and its stderr
/// streamed. stdin stays open until ssh ends: the builder's run watches it and stops when it
/// closes, which happens when this process is interrupted (ssh, in a process group of its own,
/// is stopped by the signal thread), killed, or loses the connection.
fn run_streamed(target: &Target, command: &str, upload_path: &Path) -> Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    let mut upload =
        std::fs::File::open(upload_path).with_context(|| format!("cannot open {}", upload_path.display()))?;
    crate::signals::install()?;
    crate::signals::check()?;
    let mut child = crate::process::tool("ssh")
        .args(ssh::argv(target, command))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot run ssh: {}", ssh::INSTALL_REMEDY))?;
    crate::signals::running_group(Some(child.id()));
    let mut stdin = child.stdin.take().context("no stdin for ssh")?;
    let (done, ended) = std::sync::mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        // A failed write means ssh ended early; its exit status says why.
        let _ = std::io::copy(&mut upload, &mut stdin);
        let _ = ended.recv();
        drop(stdin);
    });
    let output = child.wait_with_output();
    crate::signals::running_group(None);
    drop(done);
    let _ = feeder.join();
    output.with_context(|| format!("cannot wait for ssh to {}", target.host))
}

/// Copies the builder's workspace into the local one, replacing it whole: extracted beside it,
/// then swapped in with one rename, so no half-copied workspace is ever in its place.
fn bring_back(sh: &Shell, target: &Target, layout: &Layout, record: &Record) -> Result<PathBuf> {
    let Some(local) = layout.to_local(&record.workspace) else {
        bail!(
            "the builder's workspace {} is outside the repos sent; it stays there",
            record.workspace
        );
    };
    fetch_workspace(target, record, &local)?;
    if let Some(top) = local.parent().and_then(|parent| git::toplevel(sh, parent)) {
        if let Ok(rel) = local.strip_prefix(&top) {
            if let Some(first) = rel.components().next() {
                let first = first.as_os_str().to_string_lossy();
                git::exclude_locally(sh, &top, &format!("/{first}/"))?;
            }
        }
    }
    ui::step(format!("workspace brought back to {}", local.display()));
    Ok(local)
}

/// The builder's workspace of `record`, copied to `local` with the record in it.
fn fetch_workspace(target: &Target, record: &Record, local: &Path) -> Result<()> {
    let remote_ws = record.workspace.as_str();
    let (Some(parent), Some(name)) = (local.parent(), local.file_name()) else {
        bail!("cannot bring a workspace back to {}", local.display());
    };
    let remote_parent = remote_ws.rsplit_once('/').map(|(p, _)| p).unwrap_or("/");
    let remote_name = remote_ws.rsplit('/').next().unwrap_or(remote_ws);
    let incoming = fsx::TempDir::new_in(parent, &format!(".{}.incoming", name.to_string_lossy()))?;
    let mut child = crate::process::tool("ssh")
        .args(ssh::argv(target, &script::pack(remote_parent, remote_name)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run ssh: {}", ssh::INSTALL_REMEDY))?;
    let unpacked = match child.stdout.take() {
        Some(stdout) => tar::Archive::new(stdout).unpack(incoming.path()),
        None => Ok(()),
    };
    let output = child.wait_with_output()?;
    if !output.status.success() || unpacked.is_err() {
        bail!(
            "cannot bring the workspace back from {}:{remote_ws} ({}{}): it is still there",
            target.host,
            String::from_utf8_lossy(&output.stderr).trim(),
            unpacked.err().map(|e| format!("; {e}")).unwrap_or_default()
        );
    }
    let arrived = incoming.path().join(remote_name);
    let mut file = fs_err::File::create(arrived.join(RECORD))?;
    file.write_all(serde_json::to_string_pretty(record)?.as_bytes())?;
    fsx::swap_in(&arrived, local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_builder_that_cannot_build_is_named_with_what_it_lacks() {
        let probe = |os: &str, missing: &[&str]| script::Probe {
            os: os.into(),
            dir: "/home/b/.cache/xtask-remote/c".into(),
            missing: missing.iter().map(|m| m.to_string()).collect(),
            heads: vec![None],
        };
        check_probe("b", &probe("Linux", &[])).unwrap();
        let err = check_probe("b", &probe("Linux", &["cargo", "docker"]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("b lacks cargo, docker"), "{err}");
        assert!(err.contains("rustup") && err.contains("Docker Engine"), "{err}");
        let err = check_probe("mac", &probe("Darwin", &[])).unwrap_err().to_string();
        assert!(err.contains("runs Darwin, not Linux"), "{err}");
    }
}
