//! The local OCI registry: one per checkout, or one per forest shared by every checkout inside
//! it; on 127.0.0.1 only, run by Docker (a named container of the registry image) or natively
//! (Debian's `docker-registry`). Every command that needs the registry goes through this module.
//!
//! Layout: `state` (owner, names, port, remembered choices), `health` (status decision,
//! waiting, port checks), `docker` and `native` (the backends), `list` (what the registry
//! holds), `client` (the Distribution API, over TLS with credentials for a shared registry),
//! `address` (`host[:port][/namespace]`), `credentials` (the docker config and its helpers),
//! `trust` (a team CA, remembered per registry), `check` (`registry check`, and SETUP's check of
//! a registry the xtask does not run).

pub(crate) mod address;
pub(crate) mod check;
pub(crate) mod client;
pub(crate) mod credentials;
mod docker;
mod health;
mod http;
pub(crate) mod list;
mod native;
mod state;
pub(crate) mod trust;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use xshell::Shell;

pub(crate) use address::Address;
pub(crate) use client::Client;
pub(crate) use docker::answers as docker_answers;
pub(crate) use health::Condition;

use health::Server;
use state::{Identity, Paths, State};

pub(crate) use state::Owner;

/// Which server runs the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// A container of the registry image, published on 127.0.0.1 only
    Docker,
    /// Debian's `docker-registry` (or a `registry` binary) run as a detached process
    Native,
}

impl Backend {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Docker => "docker",
            Backend::Native => "native",
        }
    }
}

/// How to start the registry; `None` fields take the remembered or default value.
#[derive(Debug, Clone, Default)]
pub(crate) struct StartOptions {
    pub(crate) port: Option<u16>,
    pub(crate) backend: Option<Backend>,
    /// Image for the docker backend (default `registry:2`, or `XTASK_REGISTRY_IMAGE`).
    pub(crate) image: Option<String>,
}

/// A running, healthy registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) port: u16,
    pub(crate) backend: Backend,
}

impl Endpoint {
    /// The address twoliter accepts over plain HTTP: `localhost:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("localhost:{}", self.port)
    }

    pub(crate) fn client(&self) -> Client {
        Client::new(self.port)
    }
}

/// What [`start`] found and did.
#[derive(Debug, Clone)]
pub(crate) struct Started {
    pub(crate) endpoint: Endpoint,
    /// `reused`, `started`, `restarted`, `recreated` or `created`.
    pub(crate) action: &'static str,
    /// The container (docker) or the data directory (native).
    pub(crate) location: String,
}

/// Starts the registry, or reuses it when it is already healthy; returns once `GET /v2/`
/// answers. Idempotent, and fast when the registry is healthy: this is what workflows call.
pub(crate) fn ensure_running(sh: &Shell, options: &StartOptions) -> Result<Endpoint> {
    start(sh, options).map(|started| started.endpoint)
}

/// [`ensure_running`], saying what it did.
pub(crate) fn start(sh: &Shell, options: &StartOptions) -> Result<Started> {
    if options.port == Some(0) {
        bail!("port 0 cannot be published: give a port from 1024 to 65535 with `--port`");
    }
    let owner = Owner::current();
    let identity = Identity::current(&owner);
    let paths = Paths::current(&owner);
    state::ignore_forest_dir(&owner)?;
    let _lock = state::lock(&paths)?;
    let remembered = state::load(&paths)?;
    let env_image = crate::project::settings().registry_image.clone();
    let desired = state::desired(
        options,
        env_image.as_deref(),
        remembered.as_ref(),
        &identity,
        docker::answers,
    );

    // One server per owner: switching backends stops the other one (its data stays).
    if let Some(old) = remembered.as_ref().filter(|old| old.backend != desired.backend) {
        stop_backend(sh, &paths, &identity, old.backend)
            .with_context(|| format!("cannot stop the {} registry to switch backends", old.backend.name()))?;
    }
    let (action, location) = match desired.backend {
        Backend::Docker => {
            crate::tools::require("docker", crate::tools::DOCKER_REMEDY)?;
            let action = docker::ensure(sh, &owner, &identity, &desired).map_err(|err| docker_hint(err, options))?;
            (
                action,
                format!("container {}, volume {}", identity.container, identity.volume),
            )
        }
        Backend::Native => (
            native::ensure(sh, &owner, &paths, &desired)?,
            format!("data in {}", paths.data().display()),
        ),
    };
    let image = (desired.backend == Backend::Docker).then(|| desired.image.clone());
    let unchanged = remembered.as_ref().is_some_and(|old| {
        old.backend == desired.backend
            && old.port == desired.port
            && old.image == image
            && old.checkout == identity.checkout
    });
    if action != "reused" || !unchanged {
        let state = State {
            backend: desired.backend,
            port: desired.port,
            image,
            checkout: identity.checkout.clone(),
            started_at: crate::fsx::now_unix(),
        };
        state::save(&paths, &state)?;
    }
    Ok(Started {
        endpoint: Endpoint {
            port: desired.port,
            backend: desired.backend,
        },
        action,
        location,
    })
}

/// A docker failure when the user did not ask for docker also names the native backend.
fn docker_hint(err: anyhow::Error, options: &StartOptions) -> anyhow::Error {
    let text = format!("{err:#}");
    if options.backend.is_none()
        && (text.contains("Cannot connect") || text.contains("daemon"))
        && !text.contains("--backend")
    {
        err.context("the Docker daemon did not do what was asked: fix Docker, or use `--backend native`")
    } else {
        err
    }
}

/// The registry when it is running and healthy, without starting it; otherwise an error that
/// says to run `cargo xtask registry start`.
pub(crate) fn running(sh: &Shell) -> Result<Endpoint> {
    let report = observe(sh, false)?;
    match (&report.condition, report.backend) {
        (Condition::Healthy, Some(backend)) => Ok(Endpoint {
            port: report.port,
            backend,
        }),
        (condition, _) => {
            let why = match condition {
                Condition::Unhealthy(reason) => format!(" ({reason})"),
                _ => String::new(),
            };
            bail!(
                "the local registry of {} is {}{why}: run `cargo xtask registry start`",
                Owner::current().describe(),
                condition.word()
            )
        }
    }
}

/// Whether `port` is where the owner's registry runs or would run (the remembered port, else the
/// owner's default): only such a registry is ever started from here.
pub(crate) fn is_own_port(port: u16) -> Result<bool> {
    let owner = Owner::current();
    let remembered = state::load(&Paths::current(&owner))?;
    let own = remembered.map_or(Identity::current(&owner).default_port, |state| state.port);
    Ok(own == port)
}

/// A client for the registry at `address`: the xtask's own plain-HTTP client for the registry
/// of this checkout or forest, else HTTPS (plain HTTP only on loopback) with the docker config's
/// credentials, trusting the CA remembered for the address (see [`trust`]).
pub(crate) fn connect(address: &Address) -> Result<Client> {
    if let Some(port) = address.loopback_port() {
        if is_own_port(port)? {
            return Ok(own_client(address, port));
        }
    }
    trust::use_for(address)?;
    Ok(Client::for_address(address, client::TIMEOUT_SECS))
}

/// The registry at `address` is this checkout's or forest's own: a plain-HTTP client, in the
/// address's namespace.
fn own_client(address: &Address, port: u16) -> Client {
    Client::new(port).in_namespace_of(address)
}

/// Before a command speaks to `address`: remembers `ca_file` as its CA when given, and makes the
/// CA remembered for it (if any) the trust of this process and its tools, before any HTTPS.
/// Returns the client.
pub(crate) fn prepare(address: &Address, ca_file: Option<&std::path::Path>) -> Result<Client> {
    if let Some(ca_file) = ca_file {
        trust::remember(address, ca_file)?;
    }
    connect(address)
}

/// Whether `address` is the registry of this checkout or forest (which the xtask starts when
/// needed); every other registry is only used, never started, stopped or cleaned.
pub(crate) fn is_own(address: &Address) -> Result<bool> {
    match address.loopback_port() {
        Some(port) => is_own_port(port),
        None => Ok(false),
    }
}

/// A registry that another checkout, a team or anything else runs at `address`: usable when
/// every step of `registry check` passes. It is never started, stopped or cleaned from here.
pub(crate) fn existing(address: &Address) -> Result<check::Report> {
    let client = connect(address)?;
    let report = check::run(&client);
    let Some(step) = report.failure() else {
        return Ok(report);
    };
    let owner = Owner::current();
    if address.is_loopback() && matches!(step.step.as_str(), "tcp" | "tls" | "api") {
        bail!(
            "no healthy registry answers at {address} ({} check: {}), which is not the registry of {}, so it is \
             not started from here: start it where it belongs (`cargo xtask registry start` in the checkout \
             that runs it; `cargo xtask registry url` there prints its address), or leave out the registry \
             address to use the registry of {}",
            step.step,
            step.detail,
            owner.describe(),
            owner.describe()
        );
    }
    bail!(
        "registry {address} fails its {} check: {} (see `cargo xtask registry check {address}`)",
        step.step,
        step.detail
    )
}

/// What `registry status` shows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    #[serde(flatten)]
    pub(crate) condition: Condition,
    pub(crate) backend: Option<Backend>,
    /// `localhost:<port>`
    pub(crate) url: String,
    pub(crate) port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) volume: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pid: Option<u32>,
    /// Repositories in the catalog (when healthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) repositories: Option<usize>,
    /// The team CAs remembered beside it (`--ca-file`), which every run trusts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) team_cas: Vec<PathBuf>,
}

pub(crate) fn status(sh: &Shell) -> Result<Report> {
    observe(sh, true)
}

/// The backend of the registry: the remembered one, else whichever left a trace
/// (a failed first start leaves a container or native files but no state).
fn backend_of(sh: &Shell, paths: &Paths, identity: &Identity, remembered: Option<&State>) -> Option<Backend> {
    if let Some(state) = remembered {
        return Some(state.backend);
    }
    if native::server(paths) != Server::Absent || paths.log().exists() {
        return Some(Backend::Native);
    }
    let has_container =
        crate::tools::which("docker").is_some() && docker::inspect(sh, &identity.container).ok().flatten().is_some();
    has_container.then_some(Backend::Docker)
}

fn observe(sh: &Shell, count: bool) -> Result<Report> {
    let owner = Owner::current();
    let identity = Identity::current(&owner);
    let paths = Paths::current(&owner);
    let remembered = state::load(&paths)?;
    let backend = backend_of(sh, &paths, &identity, remembered.as_ref());
    let mut report = Report {
        condition: Condition::NotCreated,
        backend,
        url: String::new(),
        port: remembered.as_ref().map_or(identity.default_port, |s| s.port),
        image: remembered.as_ref().and_then(|s| s.image.clone()),
        container: None,
        volume: None,
        data_dir: None,
        log: None,
        pid: None,
        repositories: None,
        team_cas: trust::remembered_cas(&paths)?,
    };
    let server = match backend {
        None => Server::Absent,
        Some(Backend::Docker) => {
            let container = match docker::inspect(sh, &identity.container) {
                Ok(container) => container,
                Err(err) => {
                    report.condition = Condition::Unhealthy(format!("Docker does not answer: {err:#}"));
                    report.url = format!("localhost:{}", report.port);
                    return Ok(report);
                }
            };
            if let Some(c) = &container {
                report.port = c.host_port.unwrap_or(report.port);
                report.image = Some(c.image.clone());
            }
            report.container = Some(identity.container.clone());
            report.volume = Some(identity.volume.clone());
            report.log = Some(format!("docker logs {}", identity.container));
            docker::server(container.as_ref())
        }
        Some(Backend::Native) => {
            report.pid = native::running_pid(&paths);
            report.port = native::running_port(&paths).unwrap_or(report.port);
            report.data_dir = Some(paths.data());
            report.log = Some(paths.log().display().to_string());
            native::server(&paths)
        }
    };
    report.url = format!("localhost:{}", report.port);
    let ping = (server == Server::Running).then(|| Client::with_timeout(report.port, 2).ping());
    report.condition = health::condition(server, remembered.is_some(), ping.as_ref());
    if count && report.condition == Condition::Healthy {
        report.repositories = Client::new(report.port).catalog().ok().map(|c| c.len());
    }
    Ok(report)
}

/// The address of the registry (remembered, else the owner's default port), and whether it is
/// healthy.
pub(crate) fn url(sh: &Shell) -> Result<(String, bool)> {
    let report = observe(sh, false)?;
    Ok((report.url, report.condition == Condition::Healthy))
}

fn stop_backend(sh: &Shell, paths: &Paths, identity: &Identity, backend: Backend) -> Result<bool> {
    match backend {
        Backend::Native => native::stop(sh, paths),
        Backend::Docker => match docker::inspect(sh, &identity.container)? {
            Some(c) if c.running => docker::stop(sh, &identity.container).map(|()| true),
            _ => Ok(false),
        },
    }
}

/// Stops the registry, keeping its data; `Ok(false)` when it was not running.
pub(crate) fn stop(sh: &Shell) -> Result<bool> {
    let owner = Owner::current();
    let identity = Identity::current(&owner);
    let paths = Paths::current(&owner);
    let _lock = state::lock(&paths)?;
    let remembered = state::load(&paths)?;
    let mut stopped = native::stop(sh, &paths)?;
    // Without state (deleted with planning/), the container is found by its name all the same.
    let docker = match &remembered {
        Some(state) => state.backend == Backend::Docker,
        None => crate::tools::which("docker").is_some() && docker::answers(),
    };
    if docker {
        stopped |= stop_backend(sh, &paths, &identity, Backend::Docker)?;
    }
    Ok(stopped)
}

/// Removes the server and its data; returns what was removed.
pub(crate) fn clean(sh: &Shell) -> Result<Vec<String>> {
    let owner = Owner::current();
    let identity = Identity::current(&owner);
    let paths = Paths::current(&owner);
    let _lock = state::lock(&paths)?;
    let remembered = state::load(&paths)?;
    let mut removed = Vec::new();
    if native::stop(sh, &paths)? {
        removed.push("the native registry process".to_string());
    }
    let docker_used = remembered.as_ref().is_some_and(|s| s.backend == Backend::Docker);
    if docker_used || (crate::tools::which("docker").is_some() && docker::answers()) {
        removed.extend(docker::remove(sh, &identity)?);
    }
    if paths.data().exists() {
        removed.push(format!("data directory {}", paths.data().display()));
    }
    // Everything in the state directory but the lock file, which other processes may wait on.
    if let Ok(entries) = std::fs::read_dir(&paths.dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            // Remembered CAs belong to registries the xtask does not run.
            if path == paths.lock() || path == paths.dir.join(trust::TRUST_DIR) {
                continue;
            }
            let result = if path.is_dir() {
                fs_err::remove_dir_all(&path)
            } else {
                fs_err::remove_file(&path)
            };
            result.context("cannot remove the registry's state")?;
        }
    }
    if remembered.is_some() {
        removed.push(format!("state {}", paths.state().display()));
    }
    Ok(removed)
}

/// Prints the registry's log (also for a stopped registry); `follow` keeps printing.
pub(crate) fn logs(sh: &Shell, follow: bool) -> Result<()> {
    let owner = Owner::current();
    let identity = Identity::current(&owner);
    let paths = Paths::current(&owner);
    let remembered = state::load(&paths)?;
    match backend_of(sh, &paths, &identity, remembered.as_ref()) {
        Some(Backend::Docker) => {
            if docker::inspect(sh, &identity.container)?.is_none() {
                bail!(
                    "the registry container {} does not exist (its log went with it): run \
                     `cargo xtask registry start`",
                    identity.container
                );
            }
            docker::logs(&identity.container, follow)
        }
        Some(Backend::Native) => native::logs(&paths, follow),
        None => bail!(
            "{} has no registry yet: run `cargo xtask registry start`",
            owner.describe()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_carries_state_and_reason() {
        let report = Report {
            condition: Condition::Unhealthy("GET /v2/ answered 503".into()),
            backend: Some(Backend::Native),
            url: "localhost:21806".into(),
            port: 21806,
            image: None,
            container: None,
            volume: None,
            data_dir: Some("/c/planning/.registry/native/data".into()),
            log: None,
            pid: Some(42),
            repositories: None,
            team_cas: Vec::new(),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "state": "unhealthy",
                "reason": "GET /v2/ answered 503",
                "backend": "native",
                "url": "localhost:21806",
                "port": 21806,
                "data_dir": "/c/planning/.registry/native/data",
                "pid": 42
            })
        );
        let healthy = Report {
            condition: Condition::Healthy,
            ..report
        };
        let json = serde_json::to_value(&healthy).unwrap();
        assert_eq!(json["state"], "healthy");
        assert!(json.get("reason").is_none());
        assert_eq!(
            Endpoint {
                port: 21806,
                backend: Backend::Docker
            }
            .url(),
            "localhost:21806"
        );
    }
}
