//! The ssh command lines of `--on`, and what ssh's failures mean. Pure.

use std::path::PathBuf;

use anyhow::{bail, Result};

/// The builder, as the user named it, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// As `ssh` takes it: a `Host` of the ssh config, a host name, or `user@host`.
    pub(crate) host: String,
    /// An ssh client config file (`ssh -F`) instead of `~/.ssh/config`.
    pub(crate) config: Option<PathBuf>,
    /// Where checkouts go on the builder: absolute, or relative to the login directory.
    pub(crate) remote_dir: String,
}

pub(crate) const INSTALL_REMEDY: &str =
    "install the OpenSSH client (`apt-get install openssh-client`, on macOS it is built in)";

/// Refuses a host that `ssh` would take as an option or that no shell could pass on.
pub(crate) fn check_host(host: &str) -> Result<()> {
    if host.is_empty() || host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "--on {host:?} is not an ssh destination: give a host name, `user@host`, or a Host of \
             your ssh config (a port goes in the config: `Port 2222`)"
        );
    }
    if let Some((name, port)) = host.rsplit_once(':') {
        let bare = !host.contains("://") && !name.contains(':') && !name.contains(']');
        if bare && !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) {
            bail!(
                "--on {host}: ssh takes no port after a colon; write `ssh://{host}`, or set \
                 `Port {port}` for the host in ~/.ssh/config"
            );
        }
    }
    Ok(())
}

/// `ssh` arguments running `command` on the target: no prompts (`BatchMode`), no terminal, a
/// bounded wait for the connection, and keep-alives so a dead link ends a long build.
pub(crate) fn argv(target: &Target, command: &str) -> Vec<String> {
    let mut argv: Vec<String> = Vec::new();
    if let Some(config) = &target.config {
        argv.extend(["-F".into(), config.display().to_string()]);
    }
    for option in [
        "BatchMode=yes",
        "ConnectTimeout=20",
        "ServerAliveInterval=30",
        "ServerAliveCountMax=4",
    ] {
        argv.extend(["-o".into(), option.into()]);
    }
    argv.extend(["-T".into(), "--".into(), target.host.clone(), command.into()]);
    argv
}

/// ssh exits with 255 when it fails itself (the remote command's status otherwise).
pub(crate) const SSH_FAILED: i32 = 255;

/// What a failed ssh connection means, from its stderr, with what to do.
pub(crate) fn diagnose(host: &str, stderr: &str) -> anyhow::Error {
    let said = stderr.trim().lines().last().unwrap_or("").trim();
    let has = |needle: &str| stderr.contains(needle);
    if has("Permission denied") || has("Too many authentication failures") {
        anyhow::anyhow!(
            "ssh to {host} failed: authentication failed ({said}). --on logs in without prompts \
             (BatchMode): install your key on the builder with `ssh-copy-id {host}`, or load it \
             into ssh-agent (`ssh-add`)"
        )
    } else if has("Host key verification failed") || has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        anyhow::anyhow!(
            "ssh to {host} failed: its host key is not known or has changed ({said}): connect once \
             with `ssh {host}` to check and accept it"
        )
    } else if has("Could not resolve hostname") || has("Name or service not known") {
        anyhow::anyhow!(
            "ssh to {host} failed: the name does not resolve ({said}): check the name, or add a \
             `Host {host}` entry with its HostName to ~/.ssh/config"
        )
    } else if has("Connection refused")
        || has("timed out")
        || has("No route to host")
        || has("Network is unreachable")
        || has("Connection closed")
        || has("Connection reset")
    {
        anyhow::anyhow!(
            "ssh to {host} failed: the host is unreachable ({said}): check that it is up and runs \
             sshd, and the port (`Port` in ~/.ssh/config)"
        )
    } else {
        anyhow::anyhow!("ssh to {host} failed: {said}: try `ssh {host} true` to see why")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(config: Option<&str>) -> Target {
        Target {
            host: "me@builder".into(),
            config: config.map(PathBuf::from),
            remote_dir: ".cache/xtask-remote".into(),
        }
    }

    #[test]
    fn ssh_never_prompts_and_keeps_the_host_as_given() {
        let argv = argv(&target(None), "true");
        assert_eq!(argv[argv.len() - 3..], ["--", "me@builder", "true"]);
        assert!(argv.windows(2).any(|w| w == ["-o", "BatchMode=yes"]), "{argv:?}");
        assert!(argv.contains(&"-T".to_string()));
        assert!(!argv.contains(&"-F".to_string()));
        let argv = super::argv(&target(Some("/tmp/ssh config")), "true");
        assert_eq!(argv[..2], ["-F", "/tmp/ssh config"]);
    }

    #[test]
    fn hosts_ssh_would_misread_are_refused() {
        for bad in ["", "-oProxyCommand=x", "two words", "a\nb"] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
        let err = check_host("me@builder:2222").unwrap_err().to_string();
        assert!(
            err.contains("ssh://me@builder:2222") && err.contains("Port 2222"),
            "{err}"
        );
        for good in [
            "builder",
            "me@builder",
            "10.0.0.5",
            "build-1.example.com",
            "ssh://me@builder:2222",
            "fe80::1",
        ] {
            check_host(good).unwrap();
        }
    }

    #[test]
    fn failures_name_the_fix() {
        let cases = [
            ("me@b: Permission denied (publickey).", "ssh-copy-id b"),
            (
                "ssh: connect to host 127.0.0.1 port 9: Connection refused",
                "unreachable",
            ),
            (
                "ssh: Could not resolve hostname nowhere: Name or service not known",
                "does not resolve",
            ),
            ("Host key verification failed.", "connect once"),
            (
                "kex_exchange_identification: read: Connection reset by peer",
                "unreachable",
            ),
            ("something else", "ssh b true"),
        ];
        for (stderr, fix) in cases {
            let err = diagnose("b", stderr).to_string();
            assert!(err.contains(fix), "{stderr} -> {err}");
        }
    }
}
