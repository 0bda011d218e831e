//! Which Docker engine a build would talk to, and refusing one that is not on this machine.
//!
//! twoliter's builds need the engine to share this machine's kernel, network namespace and
//! paths: buildsys runs containers with `--network host`, a bypass container mounts the project
//! read-only by its path here, and pipesys hands file descriptors over abstract Unix sockets.
//! So an engine reached over TCP or ssh (through `DOCKER_HOST` or a docker context) cannot
//! build, and is refused before anything runs. Deciding is pure; reading the environment and
//! the docker CLI's config is thin.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The engine the docker CLI would use, as its settings select it (the CLI's own order:
/// `DOCKER_HOST` over `DOCKER_CONTEXT` over the config's `currentContext`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selected {
    /// `DOCKER_HOST`, set and not empty.
    Host(String),
    /// A named context other than `default`, and where its name came from.
    Context { name: String, from: &'static str },
    /// The default engine, `unix:///var/run/docker.sock`.
    Default,
}

/// Pure: which engine `DOCKER_HOST`, `DOCKER_CONTEXT` and the config's `currentContext` select.
pub(crate) fn selected(
    docker_host: Option<&str>,
    docker_context: Option<&str>,
    current_context: Option<&str>,
) -> Selected {
    let set = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from);
    if let Some(host) = set(docker_host) {
        return Selected::Host(host);
    }
    let context = match (set(docker_context), set(current_context)) {
        (Some(name), _) => Some((name, "$DOCKER_CONTEXT")),
        (None, Some(name)) => Some((name, "currentContext of the docker CLI config")),
        (None, None) => None,
    };
    match context {
        Some((name, from)) if name != "default" => Selected::Context { name, from },
        _ => Selected::Default,
    }
}

/// Pure: whether an engine endpoint is on this machine: a Unix socket (`unix://…`), or unset.
/// `tcp://`, `ssh://`, `npipe://` (Windows) and anything else are not.
pub(crate) fn is_local(endpoint: &str) -> bool {
    let endpoint = endpoint.trim();
    endpoint.is_empty() || endpoint.starts_with("unix://")
}

/// Pure: the refusal for an engine that is not local; `what` names the setting that chose it.
pub(crate) fn refusal(what: &str, endpoint: &str, unset: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} points Docker at {endpoint}, which is not on this machine: twoliter cannot build \
         against a remote Docker engine (buildsys runs containers with --network host, mounts \
         the project into a container by its path here, and passes file descriptors over \
         abstract Unix sockets, so the engine must share this machine's kernel, network and \
         paths). To build on that machine, run `cargo xtask build-kit` or `variant` with \
         `--on <ssh-host>`; to build here, {unset}"
    )
}

/// The docker CLI's config directory: `$DOCKER_CONFIG`, else `~/.docker`.
fn config_dir() -> Option<PathBuf> {
    let from_env = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty());
    from_env
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))
}

/// `currentContext` of the docker CLI's `config.json`, if it names one.
fn current_context(config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config.join("config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("currentContext")?.as_str().map(String::from)
}

/// The Docker endpoint of a named context, from the CLI's context store
/// (`contexts/meta/<sha256 of the name>/meta.json`, `Endpoints.docker.Host`).
fn context_endpoint(config: &Path, name: &str) -> Option<String> {
    let id = crate::fsx::hex(&hmac_sha256::Hash::hash(name.as_bytes()));
    let meta = config.join("contexts/meta").join(id).join("meta.json");
    let text = std::fs::read_to_string(meta).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.pointer("/Endpoints/docker/Host")?.as_str().map(String::from)
}

/// Refuses a Docker engine that is not on this machine, as this process's environment and the
/// docker CLI's config select it. A context the store does not know is left to docker.
pub(crate) fn require_local() -> Result<()> {
    let var = |name: &str| std::env::var(name).ok();
    let config = config_dir();
    let current = config.as_deref().and_then(current_context);
    match selected(
        var("DOCKER_HOST").as_deref(),
        var("DOCKER_CONTEXT").as_deref(),
        current.as_deref(),
    ) {
        Selected::Host(host) if !is_local(&host) => Err(refusal(
            "DOCKER_HOST",
            &host,
            "unset DOCKER_HOST (or point it at a local socket, unix:///var/run/docker.sock)",
        )),
        Selected::Context { name, from } => {
            let endpoint = config.as_deref().and_then(|c| context_endpoint(c, &name));
            match endpoint {
                Some(endpoint) if !is_local(&endpoint) => Err(refusal(
                    &format!("docker context `{name}` (from {from})"),
                    &endpoint,
                    "switch to a local engine with `docker context use default` (and unset DOCKER_CONTEXT)",
                )),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// [`require_local`] for a phase that runs Docker, naming the phase.
pub(crate) fn require_local_for(what: &str) -> Result<()> {
    if let Err(err) = require_local() {
        bail!("{what} cannot run: {err:#}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_wins_over_contexts() {
        assert_eq!(
            selected(Some("tcp://10.0.0.5:2376"), Some("remote"), Some("other")),
            Selected::Host("tcp://10.0.0.5:2376".into())
        );
        assert_eq!(
            selected(Some(""), Some("remote"), Some("other")),
            Selected::Context {
                name: "remote".into(),
                from: "$DOCKER_CONTEXT"
            }
        );
        assert_eq!(
            selected(None, None, Some("builder")),
            Selected::Context {
                name: "builder".into(),
                from: "currentContext of the docker CLI config"
            }
        );
        assert_eq!(selected(None, Some("default"), Some("builder")), Selected::Default);
        assert_eq!(selected(None, None, Some("default")), Selected::Default);
        assert_eq!(selected(None, Some(" "), None), Selected::Default);
    }

    #[test]
    fn only_unix_sockets_are_local() {
        for local in ["", "unix:///var/run/docker.sock", "unix:///run/user/1000/docker.sock"] {
            assert!(is_local(local), "{local}");
        }
        for remote in [
            "tcp://10.0.0.5:2376",
            "tcp://127.0.0.1:2375",
            "ssh://builder",
            "ssh://me@builder:2222",
            "npipe:////./pipe/docker_engine",
            "fd://",
        ] {
            assert!(!is_local(remote), "{remote}");
        }
    }

    #[test]
    fn the_refusal_says_why_and_what_to_do() {
        let err = refusal("DOCKER_HOST", "tcp://b:2375", "unset DOCKER_HOST").to_string();
        for part in [
            "DOCKER_HOST points Docker at tcp://b:2375",
            "--network host",
            "abstract Unix sockets",
            "--on <ssh-host>",
            "unset DOCKER_HOST",
        ] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
    }

    #[test]
    fn a_context_endpoint_is_read_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let id = crate::fsx::hex(&hmac_sha256::Hash::hash(b"builder"));
        let meta = dir.path().join("contexts/meta").join(id);
        fs_err::create_dir_all(&meta).unwrap();
        fs_err::write(
            meta.join("meta.json"),
            r#"{"Name":"builder","Endpoints":{"docker":{"Host":"ssh://me@builder","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        fs_err::write(dir.path().join("config.json"), r#"{"currentContext":"builder"}"#).unwrap();
        assert_eq!(current_context(dir.path()).as_deref(), Some("builder"));
        assert_eq!(
            context_endpoint(dir.path(), "builder").as_deref(),
            Some("ssh://me@builder")
        );
        assert_eq!(context_endpoint(dir.path(), "other"), None);
    }
}
