//! Deciding what state the registry is in from what was observed (pure), waiting for it to
//! answer, and telling whether a port is free.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use xshell::{cmd, Shell};

use super::state::Owner;
use super::Client;

/// What the server process or container looks like, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// No container, or no live process of ours.
    Absent,
    /// The container exists but is not running, or the process died and left its files.
    Stopped,
    Running,
}

/// The registry's condition as `registry status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub(crate) enum Condition {
    Healthy,
    /// Running but `GET /v2/` does not answer as a registry.
    Unhealthy(String),
    Stopped,
    NotCreated,
}

impl Condition {
    /// The exit status of `registry status`: 0 healthy, 1 stopped or unhealthy, 2 not created.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Condition::Healthy => 0,
            Condition::Unhealthy(_) | Condition::Stopped => 1,
            Condition::NotCreated => 2,
        }
    }

    pub(crate) fn word(&self) -> &'static str {
        match self {
            Condition::Healthy => "running",
            Condition::Unhealthy(_) => "unhealthy",
            Condition::Stopped => "stopped",
            Condition::NotCreated => "not created",
        }
    }
}

/// Pure: the condition from the observed server, whether anything of ours is left (state file,
/// volume, data directory) and, for a running server, what `GET /v2/` said.
pub(crate) fn condition(server: Server, leftovers: bool, ping: Option<&Result<()>>) -> Condition {
    match server {
        Server::Running => match ping {
            Some(Ok(())) => Condition::Healthy,
            Some(Err(err)) => Condition::Unhealthy(format!("{err:#}")),
            None => Condition::Unhealthy("not checked".into()),
        },
        Server::Stopped => Condition::Stopped,
        Server::Absent if leftovers => Condition::Stopped,
        Server::Absent => Condition::NotCreated,
    }
}

/// How long a registry may take to answer after it was started.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `GET /v2/` with a bounded backoff until it answers, `alive` reports the server gone,
/// or `timeout` passes. `alive` returns an error describing why the server is not running.
pub(crate) fn wait_until_healthy(port: u16, timeout: Duration, mut alive: impl FnMut() -> Result<()>) -> Result<()> {
    let client = Client::with_timeout(port, 1);
    let start = Instant::now();
    let mut delay = Duration::from_millis(25);
    loop {
        let last = match client.ping() {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        alive()?;
        if start.elapsed() >= timeout {
            bail!(
                "the registry did not answer GET http://127.0.0.1:{port}/v2/ within {}s: {last:#}",
                timeout.as_secs()
            );
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// Whether nothing listens on 127.0.0.1:`port` (nor on the wildcard address for that port).
/// `localhost` may resolve to ::1 first, so a listener there would take twoliter's requests:
/// that counts as taken too (a host without IPv6 cannot have one).
pub(crate) fn port_is_free(port: u16) -> bool {
    let v6_free = match TcpListener::bind(("::1", port)) {
        Ok(_) => true,
        Err(err) => err.kind() != std::io::ErrorKind::AddrInUse,
    };
    v6_free && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Fails with a message naming the port, who holds it (as `ss -ltnp` shows) and the fix.
pub(crate) fn ensure_port_free(sh: &Shell, port: u16, owner: &Owner) -> Result<()> {
    if port_is_free(port) {
        return Ok(());
    }
    let filter = format!("sport = :{port}");
    let holder = cmd!(sh, "ss -ltnpH {filter}")
        .quiet()
        .ignore_status()
        .read()
        .ok()
        .map(|out| {
            out.lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
        })
        .filter(|lines| !lines.is_empty())
        .map(|lines| format!(" (`ss -ltnp` shows: {})", lines.join("; ")))
        .unwrap_or_default();
    bail!(
        "port {port} on 127.0.0.1 is taken by a program that is not the registry of {}{holder}: \
         choose another port with `cargo xtask registry start --port <PORT>`, or stop that program",
        owner.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_from_facts() {
        let ok = Ok(());
        let bad = Err(anyhow::anyhow!("answered 404"));
        assert_eq!(condition(Server::Running, true, Some(&ok)), Condition::Healthy);
        let c = condition(Server::Running, true, Some(&bad));
        assert_eq!(c, Condition::Unhealthy("answered 404".into()));
        assert_eq!(c.exit_code(), 1);
        assert_eq!(condition(Server::Stopped, false, None).exit_code(), 1);
        assert_eq!(condition(Server::Absent, true, None), Condition::Stopped);
        assert_eq!(condition(Server::Absent, false, None), Condition::NotCreated);
        assert_eq!(Condition::NotCreated.exit_code(), 2);
        assert_eq!(Condition::Healthy.exit_code(), 0);
        let json = serde_json::to_value(Condition::Unhealthy("x".into())).unwrap();
        assert_eq!(json, serde_json::json!({"state": "unhealthy", "reason": "x"}));
    }

    #[test]
    fn held_port_is_not_free() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!port_is_free(port));
        let sh = Shell::new().unwrap();
        let owner = Owner::Checkout("/c".into());
        let err = ensure_port_free(&sh, port, &owner).unwrap_err().to_string();
        assert!(err.contains(&format!("port {port}")) && err.contains("--port"), "{err}");
        drop(listener);
        assert!(port_is_free(port));
        // Held on ::1 only (where `localhost` may resolve first): taken as well.
        if let Ok(v6) = TcpListener::bind(("::1", port)) {
            assert!(!port_is_free(port));
            drop(v6);
        }
    }

    #[test]
    fn waiting_stops_when_the_server_is_gone() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = wait_until_healthy(port, Duration::from_secs(5), || bail!("process exited")).unwrap_err();
        assert_eq!(err.to_string(), "process exited");
    }
}
