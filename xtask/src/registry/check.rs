//! `registry check`: whether a registry is usable from here, step by step, each failure named
//! with its fix: DNS, TCP, TLS (or the loopback plain-HTTP fall back), `GET /v2/`, the
//! authentication challenge, the credentials (where they come from, never what they are).
//! SETUP runs the same check on a registry the xtask does not run.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::{Challenge, Scheme};
use super::credentials::Source;
use super::{trust, Client};

/// Seconds each network step may take.
const STEP_SECS: u64 = 10;

/// One step of the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Step {
    /// `dns`, `tcp`, `tls`, `api`, `auth`, `credentials`
    pub(crate) step: String,
    pub(crate) ok: bool,
    /// What was found, or what failed and how to fix it.
    pub(crate) detail: String,
}

/// What `registry check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) registry: String,
    pub(crate) ok: bool,
    /// `https`, or `http` for a loopback registry without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scheme: Option<String>,
    /// `none`, `basic` or `bearer <realm>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) auth: Option<String>,
    /// Where the credentials come from (never the credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) credentials: Option<String>,
    /// The CA remembered for this registry, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) steps: Vec<Step>,
}

impl Report {
    fn pass(&mut self, step: &str, detail: impl Into<String>) {
        self.steps.push(Step {
            step: step.into(),
            ok: true,
            detail: detail.into(),
        });
    }

    fn fail(mut self, step: &str, detail: impl Into<String>) -> Report {
        self.steps.push(Step {
            step: step.into(),
            ok: false,
            detail: detail.into(),
        });
        self.ok = false;
        self
    }

    /// The failed step, for an error.
    pub(crate) fn failure(&self) -> Option<&Step> {
        self.steps.iter().find(|s| !s.ok)
    }

    /// Human-readable lines.
    pub(crate) fn text(&self) -> String {
        let mut out = format!("registry {}\n", self.registry);
        for step in &self.steps {
            out.push_str(&format!(
                "{} {:<12} {}\n",
                if step.ok { "ok  " } else { "FAIL" },
                step.step,
                step.detail
            ));
        }
        out
    }
}

/// Runs every step in order, stopping at the first that fails. Trust for a remembered CA must
/// already be set up ([`super::connect`] does it).
pub(crate) fn run(client: &Client) -> Report {
    let address = client.address().clone();
    let mut report = Report {
        registry: address.to_string(),
        ok: true,
        scheme: None,
        auth: None,
        credentials: None,
        ca_file: trust::remembered(&address),
        steps: Vec::new(),
    };
    let port = address.effective_port();
    let addrs: Vec<std::net::SocketAddr> = match (address.connect_host(), port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(err) => {
            return report.fail(
                "dns",
                format!(
                    "the registry host {} cannot be resolved ({err}): check the name and this machine's DNS",
                    address.host()
                ),
            )
        }
    };
    if addrs.is_empty() {
        return report.fail("dns", format!("the registry host {} has no address", address.host()));
    }
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    report.pass("dns", format!("{} is {}", address.host(), shown.join(", ")));

    let connected = addrs
        .iter()
        .map(|a| TcpStream::connect_timeout(a, Duration::from_secs(STEP_SECS)).map(|_| *a))
        .find_map(Result::ok);
    match connected {
        Some(addr) => report.pass("tcp", format!("connected to {addr}")),
        None => {
            return report.fail(
                "tcp",
                format!(
                    "nothing accepts connections at {} (port {port}): is the registry running there, and is the \
                     port right?",
                    address.authority()
                ),
            )
        }
    }

    match client.scheme() {
        Ok(Scheme::Https) => {
            report.scheme = Some("https".into());
            report.pass(
                "tls",
                match &report.ca_file {
                    Some(ca) => format!("HTTPS, certificate verified (system roots and the CA {})", ca.display()),
                    None => "HTTPS, certificate verified".to_string(),
                },
            );
        }
        Ok(Scheme::Http) => {
            report.scheme = Some("http".into());
            report.pass(
                "tls",
                "plain HTTP: a loopback registry without TLS (as twoliter allows for localhost, 127.0.0.1, ::1)",
            );
        }
        Err(err) => return report.fail("tls", format!("{err:#}")),
    }

    let (status, challenge) = match client.v2_anonymous() {
        Ok(answer) => answer,
        Err(err) => return report.fail("api", format!("{err:#}")),
    };
    match status {
        200 => report.pass(
            "api",
            match address.namespace() {
                Some(namespace) => format!("GET /v2/ answered 200; kits go to {namespace}/<kit>"),
                None => "GET /v2/ answered 200".to_string(),
            },
        ),
        401 => report.pass("api", "GET /v2/ answered 401: the registry asks for authentication"),
        code => {
            return report.fail(
                "api",
                format!(
                    "GET /v2/ answered {code}: {} does not serve the registry API (Distribution v2) there; check \
                     the address",
                    address.authority()
                ),
            )
        }
    }
    report.auth = Some(match &challenge {
        None => "none".to_string(),
        Some(Challenge::Basic) => "basic".to_string(),
        Some(Challenge::Bearer { realm, .. }) => format!("bearer {realm}"),
    });
    match (&challenge, status) {
        (None, 401) => {
            return report.fail(
                "auth",
                "GET /v2/ answered 401 without a WWW-Authenticate challenge: the registry cannot be logged in to",
            )
        }
        (None, _) => report.pass("auth", "no authentication asked"),
        (Some(Challenge::Basic), _) => report.pass("auth", "Basic"),
        (Some(Challenge::Bearer { realm, service, .. }), _) => report.pass(
            "auth",
            format!(
                "Bearer, token realm {realm}{}",
                service.as_ref().map(|s| format!(", service {s}")).unwrap_or_default()
            ),
        ),
    }

    if challenge.is_none() {
        // Not looked up: a docker config's `credsStore` would run its helper for nothing.
        report.pass("credentials", "not needed: the registry asks for none");
        return report;
    }
    let source = match client.credential() {
        Ok((_, source)) => source,
        Err(err) => return report.fail("credentials", format!("{err:#}")),
    };
    report.credentials = Some(source.describe());
    match client.ping_ok() {
        Ok(()) => report.pass(
            "credentials",
            match source {
                Source::None => "accepted anonymously".to_string(),
                other => format!("accepted: from {}", other.describe()),
            },
        ),
        Err(err) => return report.fail("credentials", format!("{err:#}")),
    }
    report
}
