//! The local OCI registry of this checkout: one per checkout, on 127.0.0.1 only, run by Docker
//! (a named container of the registry image) or natively (Debian's `docker-registry`).
//! Every command that needs the registry goes through this module.

pub mod client;

use anyhow::Result;
use xshell::Shell;

pub use client::Client;

/// Which server runs the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Docker,
    Native,
}

/// How to start the registry; `None` fields take the remembered or default value.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub port: Option<u16>,
    pub backend: Option<Backend>,
    /// Image for the docker backend (default `registry:2`, or `XTASK_REGISTRY_IMAGE`).
    pub image: Option<String>,
}

/// A running, healthy registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub port: u16,
    pub backend: Backend,
}

impl Endpoint {
    /// The address twoliter accepts over plain HTTP: `localhost:<port>`.
    pub fn url(&self) -> String {
        format!("localhost:{}", self.port)
    }

    pub fn client(&self) -> Client {
        Client::new(self.port)
    }
}

/// Starts the registry, or reuses it when it is already healthy; returns once `GET /v2/`
/// answers.
pub fn ensure_running(sh: &Shell, options: &StartOptions) -> Result<Endpoint> {
    let _ = (sh, options);
    anyhow::bail!("the registry module is not built yet")
}

/// The registry when it is running and healthy, without starting it; otherwise an error that
/// says to run `cargo xtask registry start`.
pub fn running(sh: &Shell) -> Result<Endpoint> {
    let _ = sh;
    anyhow::bail!("the registry module is not built yet")
}
