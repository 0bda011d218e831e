//! The docker backend: a named container of the registry image, published on 127.0.0.1 only,
//! with a named data volume and a restart policy.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::health::{self, Server};
use super::state::{Desired, Identity, Owner, DEFAULT_IMAGE, LABEL, LABEL_CHECKOUT};
use crate::{process, tools, ui};

/// Where the registry image keeps its data and listens.
const DATA_PATH: &str = "/var/lib/registry";
const CONTAINER_PORT: u16 = 5000;

/// Whether a Docker daemon answers, within a few seconds.
pub(crate) fn answers() -> bool {
    if tools::which("docker").is_none() {
        return false;
    }
    let mut cmd = Command::new("docker");
    cmd.args(["info", "--format", "{{.ServerVersion}}"]);
    run_bounded(cmd, Duration::from_secs(10)).is_ok_and(|ok| ok)
}

/// Runs `cmd` with its output discarded; `Ok(success)`, or an error when it outlives `timeout`.
fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<bool> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.success());
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {}s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `docker container inspect` says about our container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Container {
    /// Running and not in a restart loop.
    pub(crate) running: bool,
    /// How often Docker restarted it after it exited (the restart policy at work).
    pub(crate) restart_count: u64,
    /// `created`, `running`, `exited`, …
    pub(crate) status: String,
    pub(crate) image: String,
    /// The host address and port that container port 5000 is published on.
    pub(crate) host_ip: Option<String>,
    pub(crate) host_port: Option<u16>,
    /// The volume mounted at /var/lib/registry.
    pub(crate) volume: Option<String>,
}

/// Pure: the facts of `docker container inspect <name> --format '{{json .}}'`.
pub(crate) fn parse_inspect(json: &str) -> Result<Container> {
    let v: serde_json::Value = serde_json::from_str(json).context("docker inspect printed invalid JSON")?;
    let v = if let Some(first) = v.as_array().and_then(|a| a.first()) {
        first.clone()
    } else {
        v
    };
    let binding = &v["HostConfig"]["PortBindings"][format!("{CONTAINER_PORT}/tcp")][0];
    let volume = v["Mounts"].as_array().and_then(|mounts| {
        mounts
            .iter()
            .find(|m| m["Destination"] == DATA_PATH && m["Type"] == "volume")
            .and_then(|m| m["Name"].as_str().map(str::to_string))
    });
    Ok(Container {
        running: v["State"]["Running"].as_bool().unwrap_or(false)
            && !v["State"]["Restarting"].as_bool().unwrap_or(false),
        restart_count: v["RestartCount"].as_u64().unwrap_or(0),
        status: v["State"]["Status"].as_str().unwrap_or("unknown").to_string(),
        image: v["Config"]["Image"].as_str().unwrap_or_default().to_string(),
        host_ip: binding["HostIp"].as_str().map(str::to_string),
        host_port: binding["HostPort"].as_str().and_then(|p| p.parse().ok()),
        volume,
    })
}

/// Our container, or `None` when there is none.
pub(crate) fn inspect(sh: &Shell, name: &str) -> Result<Option<Container>> {
    let format = "{{json .}}";
    let output = cmd!(sh, "docker container inspect --format {format} {name}")
        .quiet()
        .ignore_status()
        .output()
        .context("cannot run `docker container inspect`")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No such container") || stderr.contains("no such container") {
            return Ok(None);
        }
        bail!("`docker container inspect {name}` failed: {}", stderr.trim());
    }
    parse_inspect(&String::from_utf8_lossy(&output.stdout)).map(Some)
}

pub(crate) fn server(container: Option<&Container>) -> Server {
    match container {
        None => Server::Absent,
        Some(c) if c.running => Server::Running,
        Some(_) => Server::Stopped,
    }
}

pub(crate) fn volume_exists(sh: &Shell, volume: &str) -> bool {
    cmd!(sh, "docker volume inspect {volume}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// What to do to get the desired container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    Reuse,
    Start,
    /// Remove the container (its volume stays) and create it again, for this reason.
    Recreate(String),
    Create,
}

/// Pure: the plan from the observed container and the desired one.
pub(crate) fn plan(container: Option<&Container>, desired: &Desired, identity: &Identity) -> Plan {
    let Some(c) = container else {
        return Plan::Create;
    };
    let mut wrong = Vec::new();
    if c.image != desired.image {
        wrong.push(format!("it runs image {} instead of {}", c.image, desired.image));
    }
    if c.host_port != Some(desired.port) || c.host_ip.as_deref() != Some("127.0.0.1") {
        let was = match (&c.host_ip, c.host_port) {
            (Some(ip), Some(port)) => {
                format!("{}:{port}", if ip.is_empty() { "0.0.0.0" } else { ip })
            }
            _ => "no port".to_string(),
        };
        wrong.push(format!(
            "it is published on {was} instead of 127.0.0.1:{}",
            desired.port
        ));
    }
    if c.volume.as_deref() != Some(identity.volume.as_str()) {
        wrong.push(format!("it does not keep its data in volume {}", identity.volume));
    }
    if !wrong.is_empty() {
        Plan::Recreate(wrong.join(", "))
    } else if c.running {
        Plan::Reuse
    } else {
        Plan::Start
    }
}

/// Pure: the `docker run` arguments of our container.
pub(crate) fn run_args(identity: &Identity, desired: &Desired) -> Vec<String> {
    let checkout = identity.checkout.display();
    [
        "run",
        "--detach",
        "--name",
        &identity.container,
        "--restart",
        "unless-stopped",
        "--publish",
        &format!("127.0.0.1:{}:{CONTAINER_PORT}", desired.port),
        "--volume",
        &format!("{}:{DATA_PATH}", identity.volume),
        "--label",
        &format!("{LABEL}=1"),
        "--label",
        &format!("{LABEL_CHECKOUT}={checkout}"),
        &desired.image,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Brings our container to the desired state; returns what was done.
pub(crate) fn ensure(sh: &Shell, owner: &Owner, identity: &Identity, desired: &Desired) -> Result<&'static str> {
    let name = identity.container.as_str();
    let container = inspect(sh, name)?;
    let plan = plan(container.as_ref(), desired, identity);
    // Does our running container already hold the wanted port? Then it is not "taken".
    let ours_holds_port = container
        .as_ref()
        .is_some_and(|c| c.running && c.host_port == Some(desired.port));
    if !ours_holds_port && !matches!(plan, Plan::Reuse) {
        health::ensure_port_free(sh, desired.port, owner)?;
    }
    if matches!(plan, Plan::Create | Plan::Recreate(_)) {
        // Before anything is removed: a missing image must not cost the working container.
        ensure_image(sh, &desired.image)?;
    }
    if plan == Plan::Reuse && super::Client::with_timeout(desired.port, 2).ping().is_ok() {
        return Ok("reused");
    }
    let done = match plan {
        Plan::Reuse => "reused",
        Plan::Start => {
            ui::info(format!("starting container {name}"));
            process::read(cmd!(sh, "docker start {name}")).context("cannot start the registry container")?;
            "started"
        }
        Plan::Recreate(reason) => {
            ui::info(format!(
                "recreating container {name} (data kept in volume {}): {reason}",
                identity.volume
            ));
            process::read(cmd!(sh, "docker rm --force {name}")).context("cannot remove the old registry container")?;
            health::ensure_port_free(sh, desired.port, owner)?;
            create(sh, identity, desired)?;
            "recreated"
        }
        Plan::Create => {
            ui::info(format!(
                "creating container {name} from {} with volume {}",
                desired.image, identity.volume
            ));
            create(sh, identity, desired)?;
            "created"
        }
    };
    // The server exits on a bad config or port; the restart policy would hide that in a loop.
    let baseline = inspect(sh, name)?.map_or(0, |c| c.restart_count);
    let waited = health::wait_until_healthy(desired.port, health::START_TIMEOUT, || match inspect(sh, name)? {
        Some(c) if c.running && c.restart_count == baseline => Ok(()),
        Some(c) => bail!("the registry container {name} exited ({})", c.status),
        None => bail!("the registry container {name} disappeared"),
    });
    if let Err(err) = waited {
        if done != "reused" {
            // Leave it stopped rather than restarting forever; its log stays readable.
            let _ = cmd!(sh, "docker stop {name}")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
        bail!(
            "the registry in container {name} is not healthy: {err:#}; its log:\n{}\nfull log: \
             `cargo xtask registry logs` (or `docker logs {name}`)",
            log_tail(sh, name)
        );
    }
    Ok(done)
}

fn create(sh: &Shell, identity: &Identity, desired: &Desired) -> Result<()> {
    let volume = &identity.volume;
    let label = format!("{LABEL}=1");
    let checkout = format!("{LABEL_CHECKOUT}={}", identity.checkout.display());
    process::read(cmd!(
        sh,
        "docker volume create --label {label} --label {checkout} {volume}"
    ))
    .context("cannot create the registry data volume")?;
    let args = run_args(identity, desired);
    if let Err(err) = process::read(cmd!(sh, "docker {args...}")) {
        // `docker run` leaves a created container behind when publishing the port fails.
        let name = &identity.container;
        let _ = cmd!(sh, "docker rm --force {name}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run();
        return Err(err).context("cannot run the registry container");
    }
    Ok(())
}

/// The image is present, or pulled; otherwise an error naming the ways out.
fn ensure_image(sh: &Shell, image: &str) -> Result<()> {
    if cmd!(sh, "docker image inspect {image}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Ok(());
    }
    ui::info(format!("pulling {image}"));
    if let Err(err) = process::read(cmd!(sh, "docker pull {image}")) {
        let hint = if image == DEFAULT_IMAGE {
            " (the default image)"
        } else {
            ""
        };
        bail!(
            "the registry image {image}{hint} is not present and cannot be pulled: {err:#}; use \
             `cargo xtask registry start --backend native` (Debian's docker-registry), or \
             `--image <IMAGE>` (or XTASK_REGISTRY_IMAGE) with an image that is present"
        );
    }
    Ok(())
}

/// The last lines of the container's log, for error messages.
pub(crate) fn log_tail(sh: &Shell, name: &str) -> String {
    let output = cmd!(sh, "docker logs --tail 20 {name}")
        .quiet()
        .ignore_status()
        .output();
    match output {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
        }
        Err(err) => format!("    (cannot read it: {err})"),
    }
}

pub(crate) fn stop(sh: &Shell, name: &str) -> Result<()> {
    process::read(cmd!(sh, "docker stop {name}")).context("cannot stop the registry container")?;
    Ok(())
}

/// Removes the container and the volume; says which existed.
pub(crate) fn remove(sh: &Shell, identity: &Identity) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let name = &identity.container;
    if inspect(sh, name)?.is_some() {
        process::read(cmd!(sh, "docker rm --force {name}")).context("cannot remove the registry container")?;
        removed.push(format!("container {name}"));
    }
    let volume = &identity.volume;
    if volume_exists(sh, volume) {
        process::read(cmd!(sh, "docker volume rm {volume}")).context("cannot remove the registry volume")?;
        removed.push(format!("volume {volume}"));
    }
    Ok(removed)
}

/// `docker logs [--follow]`, streamed to our stdout and stderr.
pub(crate) fn logs(name: &str, follow: bool) -> Result<()> {
    let mut cmd = Command::new("docker");
    cmd.arg("logs");
    if follow {
        cmd.arg("--follow");
    }
    let status = cmd
        .arg(name)
        .stdin(Stdio::null())
        .status()
        .context("cannot run `docker logs`")?;
    if !status.success() {
        bail!("`docker logs {name}` failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn desired(port: u16, image: &str) -> Desired {
        Desired {
            backend: super::super::Backend::Docker,
            port,
            image: image.into(),
        }
    }

    #[test]
    fn run_args_publish_on_loopback_with_volume_and_labels() {
        let id = Identity::of(Path::new("/src/kit"));
        let args = run_args(&id, &desired(24000, "registry:2"));
        let expected: Vec<String> = [
            "run",
            "--detach",
            "--name",
            &id.container,
            "--restart",
            "unless-stopped",
            "--publish",
            "127.0.0.1:24000:5000",
            "--volume",
            &format!("{}:/var/lib/registry", id.volume),
            "--label",
            "dev.bottlerocket.xtask.registry=1",
            "--label",
            "dev.bottlerocket.xtask.registry.checkout=/src/kit",
            "registry:2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(args, expected);
    }

    fn inspect_json(running: bool, ip: &str, port: &str, image: &str, volume: &str) -> String {
        serde_json::json!([{
            "State": {"Status": if running {"running"} else {"exited"}, "Running": running, "Restarting": false},
            "RestartCount": 2,
            "Config": {"Image": image},
            "HostConfig": {"PortBindings": {"5000/tcp": [{"HostIp": ip, "HostPort": port}]}},
            "Mounts": [{"Type": "volume", "Name": volume, "Destination": "/var/lib/registry"}]
        }])
        .to_string()
    }

    #[test]
    fn plans_from_inspect() {
        let id = Identity::of(Path::new("/src/kit"));
        let want = desired(24000, "registry:2");
        assert_eq!(plan(None, &want, &id), Plan::Create);
        let c = parse_inspect(&inspect_json(true, "127.0.0.1", "24000", "registry:2", &id.volume)).unwrap();
        assert_eq!((c.host_port, c.restart_count), (Some(24000), 2));
        // A container in a restart loop is not running, whatever `Running` says.
        let looping = inspect_json(true, "127.0.0.1", "24000", "registry:2", &id.volume)
            .replace(r#""Restarting":false"#, r#""Restarting":true"#);
        assert!(!parse_inspect(&looping).unwrap().running);
        assert_eq!(plan(Some(&c), &want, &id), Plan::Reuse);
        let c = parse_inspect(&inspect_json(false, "127.0.0.1", "24000", "registry:2", &id.volume)).unwrap();
        assert_eq!((c.status.as_str(), plan(Some(&c), &want, &id)), ("exited", Plan::Start));
        let c = parse_inspect(&inspect_json(true, "127.0.0.1", "24001", "registry:2", &id.volume)).unwrap();
        let Plan::Recreate(why) = plan(Some(&c), &want, &id) else {
            panic!()
        };
        assert!(why.contains("127.0.0.1:24001 instead of 127.0.0.1:24000"), "{why}");
        // Published on every interface, as the old helper did: recreated on loopback.
        let c = parse_inspect(&inspect_json(true, "", "24000", "registry:2", &id.volume)).unwrap();
        let Plan::Recreate(why) = plan(Some(&c), &want, &id) else {
            panic!()
        };
        assert!(why.contains("0.0.0.0:24000"), "{why}");
        let c = parse_inspect(&inspect_json(true, "127.0.0.1", "24000", "other:1", &id.volume)).unwrap();
        let Plan::Recreate(why) = plan(Some(&c), &want, &id) else {
            panic!()
        };
        assert!(why.contains("image other:1 instead of registry:2"), "{why}");
    }
}
