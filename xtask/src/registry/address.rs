//! A registry address as twoliter takes it in `Infra.toml`, `Twoliter.toml` and
//! `Twoliter.override`: `host[:port][/namespace]`, no scheme. Kits live at
//! `<namespace>/<kit>` in it.
//!
//! twoliter reaches registries through krane (go-containerregistry): HTTPS first, and a fall back
//! to plain HTTP only for a loopback host. [`Address::is_loopback`] is that rule.

use std::fmt;

use anyhow::{bail, Result};

/// `host[:port][/namespace]`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Address {
    /// A DNS name or an IP address; an IPv6 address without its brackets.
    host: String,
    port: Option<u16>,
    /// Path segments joined by `/`, without leading or trailing `/`.
    namespace: Option<String>,
}

/// The form every address error names.
const FORM: &str = "give the registry as host[:port][/namespace], without a scheme (e.g. \
                    `registry.example.com/team`, `localhost:5000`, `[::1]:5000/team`)";

impl Address {
    /// Parses `host[:port][/namespace]`; a scheme, credentials, a tag or an empty part is an
    /// error that names the form.
    pub(crate) fn parse(text: &str) -> Result<Address> {
        let text = text.trim();
        if let Some((scheme, _)) = text.split_once("://") {
            bail!(
                "registry `{text}` has a scheme (`{scheme}://`): twoliter takes none (it tries HTTPS, and \
                 plain HTTP only on localhost): {FORM}"
            );
        }
        if text.is_empty() {
            bail!("the registry address is empty: {FORM}");
        }
        if text.contains('@') {
            bail!("registry `{text}` holds `@`: credentials come from the docker config, never the address: {FORM}");
        }
        let (authority, namespace) = match text.split_once('/') {
            Some((authority, rest)) => (authority, Some(rest)),
            None => (text, None),
        };
        let (host, port) =
            split_authority(authority).map_err(|why| anyhow::anyhow!("registry `{text}`: {why}: {FORM}"))?;
        let namespace = match namespace {
            None => None,
            Some(rest) => {
                let rest = rest.trim_end_matches('/');
                let valid_segment = |s: &str| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                };
                if rest.is_empty() {
                    None
                } else if rest.split('/').all(valid_segment) {
                    Some(rest.to_string())
                } else {
                    bail!(
                        "registry `{text}`: namespace `{rest}` is not a repository path (lower-case letters, \
                         digits, `.`, `_`, `-`, segments split by `/`): {FORM}"
                    );
                }
            }
        };
        Ok(Address { host, port, namespace })
    }

    /// The address of the registry the xtask runs on loopback.
    pub(crate) fn local(port: u16) -> Address {
        Address {
            host: "localhost".into(),
            port: Some(port),
            namespace: None,
        }
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port a connection goes to: the given one, else HTTPS's.
    pub(crate) fn effective_port(&self) -> u16 {
        self.port.unwrap_or(443)
    }

    pub(crate) fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// krane's rule: only `localhost`, `127.0.0.1` and `::1` may be spoken to over plain HTTP
    /// (when HTTPS fails there). Every other host needs verified TLS.
    pub(crate) fn is_loopback(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
    }

    /// `host[:port]`, IPv6 in brackets: what URLs and the docker config's keys use.
    pub(crate) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    /// The host a TCP connection is made to (no brackets).
    pub(crate) fn connect_host(&self) -> &str {
        &self.host
    }

    /// The repository of a kit in this registry: `<namespace>/<name>`.
    pub(crate) fn repository(&self, name: &str) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name.to_string(),
        }
    }

    /// Whether two addresses reach the same registry and namespace. On loopback the port alone
    /// names the registry (`localhost:5000` and `127.0.0.1:5000` are one).
    pub(crate) fn same_registry(&self, other: &Address) -> bool {
        if self.is_loopback() && other.is_loopback() {
            self.port == other.port && self.namespace == other.namespace
        } else {
            self == other
        }
    }

    /// The port of the xtask's own kind of registry: a loopback address with a port and no
    /// namespace.
    pub(crate) fn loopback_port(&self) -> Option<u16> {
        self.is_loopback().then_some(self.port).flatten()
    }

    /// A file-name-safe key for this address (for remembered trust).
    pub(crate) fn file_key(&self) -> String {
        self.to_string()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// The display form twoliter wants: `host[:port][/namespace]`.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority())?;
        if let Some(namespace) = &self.namespace {
            write!(f, "/{namespace}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Address {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Address> {
        Address::parse(text)
    }
}

/// `host[:port]` or `[ipv6][:port]` → (host, port).
fn split_authority(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address is missing its closing `]`".to_string())?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("`{after}` after the IPv6 address is not `:<port>`")),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((_, rest)) if rest.contains(':') => {
                return Err("an IPv6 address must be in brackets, as `[::1]:5000`".to_string())
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".to_string());
    }
    let valid_host = host.contains(':')
        || host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if !valid_host {
        return Err(format!("`{host}` is not a host name"));
    }
    let port = match port {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => return Err(format!("`{text}` is not a port (1 to 65535)")),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::Address;

    #[test]
    fn parses_host_port_and_namespace() {
        let a = Address::parse("localhost:5000/team").unwrap();
        assert_eq!(
            (a.host(), a.port(), a.namespace()),
            ("localhost", Some(5000), Some("team"))
        );
        assert_eq!(a.repository("core-kit"), "team/core-kit");
        assert_eq!(a.to_string(), "localhost:5000/team");
        assert_eq!(a.authority(), "localhost:5000");

        let ecr = Address::parse("123456789012.dkr.ecr.us-west-2.amazonaws.com/kits/team").unwrap();
        assert_eq!(ecr.port(), None);
        assert_eq!(ecr.effective_port(), 443);
        assert_eq!(ecr.repository("k"), "kits/team/k");
        assert_eq!(
            ecr.to_string(),
            "123456789012.dkr.ecr.us-west-2.amazonaws.com/kits/team"
        );

        let public = Address::parse("public.ecr.aws/bottlerocket").unwrap();
        assert_eq!(
            public.repository("bottlerocket-core-kit"),
            "bottlerocket/bottlerocket-core-kit"
        );

        let plain = Address::parse("localhost:5000").unwrap();
        assert_eq!(plain.repository("k"), "k");
        assert_eq!(plain, Address::local(5000));
        assert_eq!(Address::parse("localhost:5000/").unwrap(), plain);
    }

    #[test]
    fn ipv6_in_brackets() {
        let a = Address::parse("[::1]:5000/team").unwrap();
        assert_eq!((a.host(), a.port()), ("::1", Some(5000)));
        assert!(a.is_loopback());
        assert_eq!(a.to_string(), "[::1]:5000/team");
        assert_eq!(a.connect_host(), "::1");
        assert!(Address::parse("::1:5000").unwrap_err().to_string().contains("brackets"));
        assert!(Address::parse("[::1:5000").is_err());
        assert!(Address::parse("[zz]:5000").is_err());
    }

    #[test]
    fn errors_name_the_form() {
        for bad in [
            "https://registry.example.com",
            "http://localhost:5000",
            "",
            "localhost:0",
            "localhost:x",
            "user:pw@host",
            "host/UPPER",
            "host//x",
            "ho st",
        ] {
            let err = format!("{:#}", Address::parse(bad).unwrap_err());
            assert!(err.contains("host[:port][/namespace]"), "{bad}: {err}");
        }
        let err = Address::parse("https://r.example.com/team").unwrap_err().to_string();
        assert!(err.contains("scheme"), "{err}");
    }

    /// The plain-HTTP fall back is for exactly these three hosts, as in krane.
    #[test]
    fn loopback_is_exactly_localhost_and_the_loopback_ips() {
        for yes in ["localhost:5000", "127.0.0.1:5000/team", "[::1]:443", "localhost"] {
            assert!(Address::parse(yes).unwrap().is_loopback(), "{yes}");
        }
        for no in [
            "registry.example.com",
            "localhost.example.com:5000",
            "127.0.0.2:5000",
            "10.0.0.1:5000",
            "192.168.1.1",
            "my-localhost:5000",
            "[::2]:5000",
            "public.ecr.aws/bottlerocket",
        ] {
            assert!(!Address::parse(no).unwrap().is_loopback(), "{no}");
        }
    }

    #[test]
    fn same_registry_on_loopback_is_the_port() {
        let a = Address::parse("localhost:5000").unwrap();
        assert!(a.same_registry(&Address::parse("127.0.0.1:5000").unwrap()));
        assert!(!a.same_registry(&Address::parse("localhost:5001").unwrap()));
        assert!(!a.same_registry(&Address::parse("localhost:5000/team").unwrap()));
        let r = Address::parse("r.example.com/team").unwrap();
        assert!(r.same_registry(&Address::parse("R.example.com/team").unwrap()));
        assert!(!r.same_registry(&Address::parse("r.example.com:443/team").unwrap()));
        assert_eq!(
            Address::parse("localhost:5000/team").unwrap().file_key(),
            "localhost_5000_team"
        );
    }
}
