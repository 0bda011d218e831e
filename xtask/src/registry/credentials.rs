//! Registry credentials as docker and krane find them: the docker config
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): `credHelpers` per registry
//! host, else the `credsStore` default helper, else `auths` (base64 `auth` of `user:pass`, or
//! `username`/`password`, or `identitytoken`). A helper is a `docker-credential-<name>` program on
//! PATH that answers `get` with `{"ServerURL","Username","Secret"}`; the user name `<token>`
//! means the secret is an identity (refresh) token.
//!
//! A secret never leaves this module's types in printable form: [`Secret`] prints as `***`, and
//! every error names where a credential came from, never what it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde::Deserialize;

use super::Address;

/// Seconds a credential helper may take (a helper that asks the cloud for a token is slow).
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// A password or token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// What a registry is offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// User name and password (Basic, and Basic to a token realm).
    Basic { username: String, password: Secret },
    /// An identity (refresh) token, exchanged at the token realm (OAuth2 `refresh_token`).
    IdentityToken(Secret),
}

/// Where the credential of a registry comes from: what `registry check` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// An `auths` entry of the docker config (the config file's path).
    ConfigAuths(PathBuf),
    /// A credential helper (`credHelpers` or `credsStore`): its name.
    Helper(String),
    /// Nothing: requests are anonymous.
    None,
}

impl Source {
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::ConfigAuths(path) => format!("`auths` in {}", path.display()),
            Source::Helper(name) => format!("credential helper docker-credential-{name}"),
            Source::None => "none (anonymous)".to_string(),
        }
    }
}

/// The parts of a docker config that name credentials.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthEntry { *** }")
    }
}

/// What the docker config says to do for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    Helper(String),
    Found(Credential),
    None,
}

/// `https://host:port/v1/` and the like → `host:port`, as docker compares `auths` keys.
fn hostname_of(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

impl DockerConfig {
    pub(crate) fn parse(text: &str) -> Result<DockerConfig> {
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("it is not a docker config ({e})"))
    }

    /// Pure: docker's order: `credHelpers[host]`, else `credsStore`, else `auths`.
    pub(crate) fn lookup(&self, authority: &str) -> Result<Lookup> {
        if let Some((_, helper)) = self.cred_helpers.iter().find(|(k, _)| hostname_of(k) == authority) {
            return Ok(Lookup::Helper(helper.clone()));
        }
        if let Some(store) = self.creds_store.as_ref().filter(|s| !s.is_empty()) {
            return Ok(Lookup::Helper(store.clone()));
        }
        let Some((key, entry)) = self.auths.iter().find(|(k, _)| hostname_of(k) == authority) else {
            return Ok(Lookup::None);
        };
        if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Lookup::Found(Credential::IdentityToken(Secret::new(token.clone()))));
        }
        if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            let Some((username, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                bail!(
                    "`auths.\"{key}\".auth` is not base64 of `user:password`: log in again with `docker login {authority}`"
                );
            };
            return Ok(Lookup::Found(Credential::Basic {
                username: username.to_string(),
                password: Secret::new(password),
            }));
        }
        match (&entry.username, &entry.password) {
            (Some(username), Some(password)) if !username.is_empty() => Ok(Lookup::Found(Credential::Basic {
                username: username.clone(),
                password: Secret::new(password.clone()),
            })),
            _ => Ok(Lookup::None),
        }
    }
}

/// The docker config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub(crate) fn config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => Some(Path::new(&dir).join("config.json")),
        None => std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker/config.json")),
    }
}

/// Pure: a helper's answer to `get`.
pub(crate) fn parse_helper_answer(stdout: &str) -> Result<Credential> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let answer: Answer = serde_json::from_str(stdout.trim())
        .map_err(|_| anyhow::anyhow!("its answer is not the JSON of a credential"))?;
    if answer.username == "<token>" {
        Ok(Credential::IdentityToken(Secret::new(answer.secret)))
    } else {
        Ok(Credential::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        })
    }
}

/// The credential for `address` and where it came from; `(None, Source::None)` when the docker
/// config names none. Helpers run here.
pub(crate) fn find(address: &Address) -> Result<(Option<Credential>, Source)> {
    let Some(path) = config_path() else {
        return Ok((None, Source::None));
    };
    let Some(text) = crate::fsx::read_optional(&path)? else {
        return Ok((None, Source::None));
    };
    let config = DockerConfig::parse(&text).with_context(|| format!("cannot read {}", path.display()))?;
    let authority = address.authority();
    match config
        .lookup(&authority)
        .with_context(|| format!("in {}", path.display()))?
    {
        Lookup::None => Ok((None, Source::None)),
        Lookup::Found(credential) => Ok((Some(credential), Source::ConfigAuths(path))),
        Lookup::Helper(name) => {
            let credential = run_helper(&name, &authority)?;
            Ok((credential, Source::Helper(name)))
        }
    }
}

/// Runs `docker-credential-<name> get` with the registry on stdin; `None` when the helper has no
/// credential for it.
fn run_helper(name: &str, authority: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{name}");
    let Some(path) = crate::tools::which(&program) else {
        bail!(
            "the docker config names the credential helper `{name}` for {authority}, but `{program}` is not on \
             PATH: install it (for ECR: `docker-credential-ecr-login`, from the amazon-ecr-credential-helper \
             package), or remove it from the docker config"
        );
    };
    let mut cmd = std::process::Command::new(path);
    cmd.arg("get");
    let output = crate::process::run_with_input(cmd, authority.as_bytes(), HELPER_TIMEOUT)
        .with_context(|| format!("credential helper `{program} get` for {authority}"))?;
    if !output.status.success() {
        // Helpers say "credentials not found" on stdout and exit 1 when they have none.
        let said = String::from_utf8_lossy(&output.stdout).to_lowercase();
        if said.contains("not found") {
            return Ok(None);
        }
        bail!(
            "credential helper `{program} get` for {authority} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_helper_answer(&String::from_utf8_lossy(&output.stdout))
        .map(Some)
        .with_context(|| format!("credential helper `{program} get` for {authority}"))
}

/// Pure: how to give a registry credentials, for errors after a 401.
pub(crate) fn login_fix(address: &Address) -> String {
    let host = address.host();
    if host.contains(".dkr.ecr.") && host.ends_with(".amazonaws.com") {
        format!(
            "install `docker-credential-ecr-login` (amazon-ecr-credential-helper) and set \
             `\"credHelpers\": {{\"{}\": \"ecr-login\"}}` in the docker config ({})",
            address.authority(),
            config_hint()
        )
    } else {
        format!(
            "log in with `docker login {}` (it writes the docker config, {})",
            address.authority(),
            config_hint()
        )
    }
}

fn config_hint() -> String {
    match config_path() {
        Some(path) => format!("read from {}", path.display()),
        None => "$DOCKER_CONFIG/config.json or ~/.docker/config.json".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_follows_docker_order() {
        let config = DockerConfig::parse(
            r#"{
              "auths": {
                "https://r.example.com/v1/": {"auth": "dXNlcjpwYTpzcw=="},
                "localhost:5000": {"username": "u", "password": "p"},
                "tok.example.com": {"identitytoken": "refresh"},
                "empty.example.com": {}
              },
              "credHelpers": {"123.dkr.ecr.us-west-2.amazonaws.com": "ecr-login"}
            }"#,
        )
        .unwrap();
        assert_eq!(
            config.lookup("r.example.com").unwrap(),
            Lookup::Found(Credential::Basic {
                username: "user".into(),
                password: Secret::new("pa:ss")
            })
        );
        assert!(matches!(
            config.lookup("localhost:5000").unwrap(),
            Lookup::Found(Credential::Basic { .. })
        ));
        assert_eq!(
            config.lookup("tok.example.com").unwrap(),
            Lookup::Found(Credential::IdentityToken(Secret::new("refresh")))
        );
        assert_eq!(config.lookup("empty.example.com").unwrap(), Lookup::None);
        assert_eq!(config.lookup("other.example.com").unwrap(), Lookup::None);
        assert_eq!(
            config.lookup("123.dkr.ecr.us-west-2.amazonaws.com").unwrap(),
            Lookup::Helper("ecr-login".into())
        );
        let store =
            DockerConfig::parse(r#"{"auths": {"localhost:5000": {"auth": "dTpw"}}, "credsStore": "desktop"}"#).unwrap();
        assert_eq!(
            store.lookup("localhost:5000").unwrap(),
            Lookup::Helper("desktop".into())
        );
    }

    #[test]
    fn secrets_never_print() {
        let c = Credential::Basic {
            username: "user".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let config = DockerConfig::parse(r#"{"auths": {"h": {"auth": "!!!hunter2"}}}"#).unwrap();
        let err = format!("{:#}", config.lookup("h").unwrap_err());
        assert!(!err.contains("hunter2") && err.contains("docker login"), "{err}");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn helper_answers() {
        assert_eq!(
            parse_helper_answer(r#"{"ServerURL":"h","Username":"AWS","Secret":"s3"}"#).unwrap(),
            Credential::Basic {
                username: "AWS".into(),
                password: Secret::new("s3")
            }
        );
        assert_eq!(
            parse_helper_answer(r#"{"ServerURL":"h","Username":"<token>","Secret":"rt"}"#).unwrap(),
            Credential::IdentityToken(Secret::new("rt"))
        );
        let err = parse_helper_answer("secret-ish garbage").unwrap_err().to_string();
        assert!(!err.contains("garbage"), "{err}");
    }

    #[test]
    fn login_fixes() {
        let ecr = Address::parse("123.dkr.ecr.us-west-2.amazonaws.com/team").unwrap();
        assert!(login_fix(&ecr).contains("docker-credential-ecr-login"));
        assert!(login_fix(&ecr).contains("credHelpers"));
        let other = Address::parse("localhost:5000/team").unwrap();
        assert!(login_fix(&other).contains("docker login localhost:5000"));
    }
}
