//! The Distribution API of a registry: health, catalog and tags with `Link` pagination,
//! manifests with an `Accept` for all four kinds, blobs. Every request has a timeout.
//!
//! Scheme, as krane decides it: HTTPS first; plain HTTP only for a loopback host
//! ([`Address::is_loopback`]) whose TLS handshake fails, decided once per client. The registry the
//! xtask runs itself is plain HTTP from the start ([`Client::new`]).
//!
//! Authentication on a 401: `Basic` with the docker config's credential, or `Bearer`: a token
//! from the challenge's realm (with the credential when there is one, else anonymous), cached
//! per scope in the client. Repository names given to a client are relative to the address's
//! namespace.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use base64::Engine;

use super::credentials::{self, Credential, Secret, Source};
use super::http::{self, Failure, Kind, Request, Response};
use super::Address;
use crate::oci::{self, Manifest};

/// Seconds a single request may take.
pub(crate) const TIMEOUT_SECS: u64 = 10;
/// Page size asked for on `_catalog` and `tags/list`.
const PAGE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Https,
    Http,
}

impl Scheme {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    address: Address,
    /// `host[:port]` in URLs (`127.0.0.1:<port>` for the xtask's own registry).
    origin: String,
    /// Seconds a single request may take.
    timeout: u64,
    /// The registry the xtask runs itself: plain HTTP, no authentication.
    own: bool,
    session: Arc<Mutex<Session>>,
}

/// What a client learns as it goes: the scheme, the credential, tokens per scope.
#[derive(Debug, Default)]
struct Session {
    scheme: Option<Scheme>,
    credential: Option<(Option<Credential>, Source)>,
    /// Bearer tokens by scope (`repository:<repo>:pull`, or `` for `/v2/`).
    tokens: BTreeMap<String, Secret>,
    /// The registry asked for Basic: send it on every request.
    basic: bool,
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// A manifest as served, with the bytes the digests are computed from.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) manifest: Manifest,
    pub(crate) bytes: Vec<u8>,
    /// The registry's content digest (`Docker-Content-Digest`, else computed from the bytes).
    pub(crate) digest: String,
}

impl Fetched {
    /// The digest twoliter writes into `Twoliter.lock` for this manifest.
    pub(crate) fn lock_digest(&self) -> Result<String> {
        oci::lock_digest(&self.bytes)
    }
}

impl Client {
    /// The plain-HTTP registry the xtask runs on `127.0.0.1:<port>`.
    pub(crate) fn new(port: u16) -> Client {
        Client::with_timeout(port, TIMEOUT_SECS)
    }

    /// [`Client::new`] whose requests each give up after `secs` seconds (health polling uses 1).
    pub(crate) fn with_timeout(port: u16, secs: u64) -> Client {
        let client = Client {
            address: Address::local(port),
            origin: format!("127.0.0.1:{port}"),
            timeout: secs.max(1),
            own: true,
            session: Arc::default(),
        };
        client.session.lock().expect("fresh").scheme = Some(Scheme::Http);
        client
    }

    /// A registry at `address`: scheme, credentials and tokens found as krane finds them. The
    /// trust of a remembered CA is set up by [`super::connect`], which should be used instead.
    pub(crate) fn for_address(address: &Address, secs: u64) -> Client {
        Client {
            address: address.clone(),
            origin: address.authority(),
            timeout: secs.max(1),
            own: false,
            session: Arc::default(),
        }
    }

    /// This client with its credential given instead of looked up.
    #[cfg(test)]
    pub(crate) fn with_credential(self, credential: Option<Credential>) -> Client {
        self.session().credential = Some((credential, Source::None));
        self
    }

    /// This client, for repositories under `address`'s namespace.
    pub(crate) fn in_namespace_of(mut self, address: &Address) -> Client {
        self.address = address.clone();
        self
    }

    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One request, no authentication logic.
    fn raw(&self, scheme: Scheme, path: &str, accept: Option<&str>, auth: Option<String>) -> Result<Response, Failure> {
        let url = format!("{}://{}{path}", scheme.name(), self.origin);
        let mut request = Request::get(url, self.timeout);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        http::send(&request)
    }

    /// The scheme, decided on first use: HTTPS, or for a loopback host whose TLS fails, plain
    /// HTTP when it answers there as a registry does.
    pub(crate) fn scheme(&self) -> Result<Scheme> {
        if let Some(scheme) = self.session().scheme {
            return Ok(scheme);
        }
        let scheme = decide_scheme(
            &self.address,
            self.raw(Scheme::Https, "/v2/", None, None).map(|_| ()),
            || self.raw(Scheme::Http, "/v2/", None, None).ok().map(|r| r.status_code),
        )
        .map_err(|tls| anyhow::anyhow!("{}", describe_transport(&self.address, &tls)))?;
        self.session().scheme = Some(scheme);
        Ok(scheme)
    }

    /// The credential of the registry and where it came from, looked up once.
    pub(crate) fn credential(&self) -> Result<(Option<Credential>, Source)> {
        if let Some(found) = self.session().credential.clone() {
            return Ok(found);
        }
        let found = if self.own {
            // The xtask's own registry has no authentication.
            (None, Source::None)
        } else {
            credentials::find(&self.address)?
        };
        self.session().credential = Some(found.clone());
        Ok(found)
    }

    fn authorization(&self, scope: &str) -> Result<Option<String>> {
        let (token, basic) = {
            let session = self.session();
            (session.tokens.get(scope).cloned(), session.basic)
        };
        if let Some(token) = token {
            return Ok(Some(format!("Bearer {}", token.expose())));
        }
        if basic {
            if let (Some(Credential::Basic { username, password }), _) = self.credential()? {
                return Ok(Some(basic_header(&username, &password)));
            }
        }
        Ok(None)
    }

    /// GET with authentication: answers a 401 challenge once (Basic or Bearer) and retries.
    fn get(&self, path: &str, accept: Option<&str>) -> Result<Response> {
        let scheme = self.scheme()?;
        let scope = scope_for(path);
        let shown = format!("GET {}://{}{path}", scheme.name(), self.origin);
        let response = self
            .raw(scheme, path, accept, self.authorization(&scope)?)
            .map_err(|e| anyhow::anyhow!("{}", describe_transport(&self.address, &e)))
            .with_context(|| format!("registry did not answer {shown}"))?;
        if response.status_code != 401 {
            return Ok(response);
        }
        let Some(challenge) = response.header("www-authenticate").and_then(parse_challenge) else {
            return Ok(response);
        };
        self.answer(&challenge, &scope)?;
        let retry = self
            .raw(scheme, path, accept, self.authorization(&scope)?)
            .map_err(|e| anyhow::anyhow!("{}", describe_transport(&self.address, &e)))
            .with_context(|| format!("registry did not answer {shown}"))?;
        if retry.status_code == 401 {
            let (_, source) = self.credential()?;
            bail!(
                "{} refused the credentials ({}) for {shown} (401 Unauthorized): {}",
                self.address,
                source.describe(),
                credentials::login_fix(&self.address)
            );
        }
        Ok(retry)
    }

    /// Gets what a challenge asks for: Basic needs a credential; Bearer a token for `scope`.
    pub(crate) fn answer(&self, challenge: &Challenge, scope: &str) -> Result<()> {
        let (credential, source) = self.credential()?;
        match challenge {
            Challenge::Basic => {
                if !matches!(credential, Some(Credential::Basic { .. })) {
                    bail!(
                        "{} asks for a user name and password (Basic), and the docker config has {} for it: {}",
                        self.address,
                        if credential.is_some() {
                            "only an identity token"
                        } else {
                            "none"
                        },
                        credentials::login_fix(&self.address)
                    );
                }
                self.session().basic = true;
            }
            Challenge::Bearer {
                realm,
                service,
                scope: asked,
            } => {
                let scope_param = asked.clone().unwrap_or_else(|| scope.to_string());
                let token = fetch_token(
                    &self.address,
                    realm,
                    service.as_deref(),
                    &scope_param,
                    credential.as_ref(),
                    &source,
                    self.timeout,
                )?;
                self.session().tokens.insert(scope.to_string(), token);
            }
        }
        Ok(())
    }

    /// `GET /v2/` without credentials: the status and the challenge, for `registry check`.
    pub(crate) fn v2_anonymous(&self) -> Result<(i32, Option<Challenge>)> {
        let scheme = self.scheme()?;
        let response = self
            .raw(scheme, "/v2/", None, None)
            .map_err(|e| anyhow::anyhow!("{}", describe_transport(&self.address, &e)))?;
        let challenge = response.header("www-authenticate").and_then(parse_challenge);
        Ok((response.status_code, challenge))
    }

    /// `GET /v2/` answers 200 (or 401, which still proves a registry is there).
    pub(crate) fn ping(&self) -> Result<()> {
        let response = self.get("/v2/", None)?;
        match response.status_code {
            200 | 401 => Ok(()),
            code => bail!("GET {}/v2/ answered {code} {}", self.origin, response.reason_phrase),
        }
    }

    /// `GET /v2/` answers 200 once authenticated: a registry that this user can use.
    pub(crate) fn ping_ok(&self) -> Result<()> {
        let response = self.get("/v2/", None)?;
        match response.status_code {
            200 => Ok(()),
            code => bail!("GET {}/v2/ answered {code} {}", self.origin, response.reason_phrase),
        }
    }

    /// Every repository, following `Link` pagination.
    pub(crate) fn catalog(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        self.paginate(&format!("/v2/_catalog?n={PAGE}"), |body| {
            let page: Page = serde_json::from_slice(body).context("_catalog answer is not valid JSON")?;
            Ok(page.repositories.unwrap_or_default())
        })
    }

    /// Every tag of `repo` (empty when the repository does not exist), following pagination.
    pub(crate) fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let repo = self.address.repository(repo);
        let first = format!("/v2/{repo}/tags/list?n={PAGE}");
        let response = self.get(&first, None)?;
        if response.status_code == 404 {
            return Ok(Vec::new());
        }
        self.paginate_from(response, &first, |body| {
            let page: Page = serde_json::from_slice(body).context("tags/list answer is not valid JSON")?;
            Ok(page.tags.unwrap_or_default())
        })
    }

    fn paginate(&self, first: &str, parse: impl Fn(&[u8]) -> Result<Vec<String>>) -> Result<Vec<String>> {
        let response = self.get(first, None)?;
        self.paginate_from(response, first, parse)
    }

    fn paginate_from(
        &self,
        mut response: Response,
        first: &str,
        parse: impl Fn(&[u8]) -> Result<Vec<String>>,
    ) -> Result<Vec<String>> {
        let mut all = Vec::new();
        let mut path = first.to_string();
        // A registry that keeps linking to itself must not loop forever.
        for _ in 0..100_000 {
            if response.status_code != 200 {
                bail!(
                    "GET {}{path} answered {} {}",
                    self.origin,
                    response.status_code,
                    response.reason_phrase
                );
            }
            all.extend(parse(response.as_bytes())?);
            match response.header("link").and_then(next_link) {
                Some(next) if next != path => {
                    path = next;
                    response = self.get(&path, None)?;
                }
                _ => return Ok(all),
            }
        }
        bail!("registry pagination from {first} does not end")
    }

    /// The manifest `repo:reference` (tag or digest); `Ok(None)` when the registry has none.
    pub(crate) fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Fetched>> {
        let repo = self.address.repository(repo);
        let response = self.get(&format!("/v2/{repo}/manifests/{reference}"), Some(oci::ACCEPT))?;
        match response.status_code {
            200 => {}
            404 => return Ok(None),
            code => bail!(
                "GET manifest {repo}:{reference} answered {code}: {}",
                response.text().trim()
            ),
        }
        let bytes = response.as_bytes().to_vec();
        let manifest = Manifest::parse(&bytes, response.header("content-type"))
            .with_context(|| format!("manifest {repo}:{reference}"))?;
        let digest = response
            .header("docker-content-digest")
            .map(str::to_string)
            .unwrap_or_else(|| oci::content_digest(&bytes));
        Ok(Some(Fetched {
            manifest,
            bytes,
            digest,
        }))
    }

    /// A blob's bytes, checked against its digest.
    pub(crate) fn blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>> {
        let repo = self.address.repository(repo);
        let response = self.get(&format!("/v2/{repo}/blobs/{digest}"), None)?;
        if response.status_code != 200 {
            bail!(
                "GET blob {repo}@{digest} answered {} {}",
                response.status_code,
                response.reason_phrase
            );
        }
        let bytes = response.body;
        let actual = oci::content_digest(&bytes);
        if actual != digest {
            bail!("blob {repo}@{digest} has the wrong content (its digest is {actual})");
        }
        Ok(bytes)
    }
}

/// Pure: krane's rule. HTTPS when it answers; when it fails, plain HTTP only for a loopback host
/// (`http_status` is asked only then), and only when `GET /v2/` answers there as a registry
/// does (200 or 401); otherwise the HTTPS error.
pub(crate) fn decide_scheme<E>(
    address: &Address,
    https: Result<(), E>,
    http_status: impl FnOnce() -> Option<i32>,
) -> Result<Scheme, E> {
    match https {
        Ok(()) => Ok(Scheme::Https),
        Err(_) if address.is_loopback() && matches!(http_status(), Some(200 | 401)) => Ok(Scheme::Http),
        Err(err) => Err(err),
    }
}

/// `Authorization: Basic base64(user:password)`.
fn basic_header(username: &str, password: &Secret) -> String {
    let raw = format!("{username}:{}", password.expose());
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// The token scope a request path needs: `repository:<repo>:pull`, `registry:catalog:*`, or
/// none for `/v2/`.
pub(crate) fn scope_for(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let Some(rest) = path.strip_prefix("/v2/") else {
        return String::new();
    };
    if rest.starts_with("_catalog") {
        return "registry:catalog:*".to_string();
    }
    for marker in ["/manifests/", "/blobs/", "/tags/"] {
        if let Some(i) = rest.find(marker) {
            return format!("repository:{}:pull", &rest[..i]);
        }
    }
    String::new()
}

/// Pure: a `WWW-Authenticate` header's challenge (`Basic realm=…` or `Bearer realm=…,service=…,
/// scope=…`).
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (kind, params) = header.split_once(' ').unwrap_or((header, ""));
    match kind.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(params);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            })
        }
        _ => None,
    }
}

/// `k="v",k2=v2` → map; commas inside quotes are kept.
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Bearer token from the realm: GET with Basic (or anonymous), or for an identity token the
/// OAuth2 `refresh_token` grant (POST), as docker and krane do.
fn fetch_token(
    address: &Address,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    credential: Option<&Credential>,
    source: &Source,
    timeout: u64,
) -> Result<Secret> {
    if !(realm.starts_with("https://") || realm.starts_with("http://")) {
        bail!("{address} names the token realm `{realm}`, which is not an http(s) URL");
    }
    let request = match credential {
        Some(Credential::IdentityToken(token)) => {
            let mut form = format!(
                "grant_type=refresh_token&client_id=xtask&refresh_token={}",
                encode(token.expose())
            );
            if let Some(service) = service {
                form.push_str(&format!("&service={}", encode(service)));
            }
            if !scope.is_empty() {
                form.push_str(&format!("&scope={}", encode(scope)));
            }
            Request::get(realm, timeout).post_form(form)
        }
        other => {
            let mut query = Vec::new();
            if let Some(service) = service {
                query.push(format!("service={}", encode(service)));
            }
            if !scope.is_empty() {
                query.push(format!("scope={}", encode(scope)));
            }
            let sep = if realm.contains('?') { '&' } else { '?' };
            let url = if query.is_empty() {
                realm.to_string()
            } else {
                format!("{realm}{sep}{}", query.join("&"))
            };
            let mut request = Request::get(url, timeout);
            if let Some(Credential::Basic { username, password }) = other {
                request = request.header("Authorization", basic_header(username, password));
            }
            request
        }
    };
    let response = http::send(&request)
        .map_err(|e| anyhow::anyhow!("{}", describe_transport(address, &e)))
        .with_context(|| format!("the token service {realm} of {address} did not answer"))?;
    match response.status_code {
        200 => {}
        401 | 403 => bail!(
            "the token service {realm} of {address} refused the credentials ({}): {}",
            source.describe(),
            credentials::login_fix(address)
        ),
        code => bail!(
            "the token service {realm} of {address} answered {code} {}",
            response.reason_phrase
        ),
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(response.as_bytes())
        .map_err(|_| anyhow::anyhow!("the token service {realm} of {address} did not answer with a token"))?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .with_context(|| format!("the token service {realm} of {address} did not answer with a token"))
}

/// Pure: what went wrong on the way to a registry, with the fix.
pub(crate) fn describe_transport(address: &Address, failure: &Failure) -> String {
    let text = &failure.text;
    match failure.kind {
        Kind::Certificate => format!(
            "the TLS certificate of {address} is not trusted ({text}): if the registry uses its own CA, pass \
             `--ca-file <ca.pem>` once (it is remembered for {address}; e.g. `cargo xtask registry check {address} \
             --ca-file <ca.pem>`), or set SSL_CERT_FILE to a bundle of the system's roots and that CA"
        ),
        Kind::Refused => format!(
            "nothing accepts connections at {} ({text}): is the registry running there, and is the port right?",
            address.authority()
        ),
        Kind::Dns => format!(
            "the registry host {} cannot be resolved ({text}): check the name and this machine's DNS",
            address.host()
        ),
        Kind::Timeout => format!("{} did not answer in time ({text})", address.authority()),
        Kind::Tls => format!(
            "TLS with {} failed ({text}): the registry must serve HTTPS (only localhost, 127.0.0.1 and ::1 may \
             serve plain HTTP)",
            address.authority()
        ),
        Kind::NoCurl => format!(
            "{address} is reached over HTTPS, which the xtask does with the `curl` program ({text}): install curl \
             (`apt-get install curl`, `dnf install curl`)"
        ),
        Kind::Other => format!("cannot reach {} ({text})", address.authority()),
    }
}

/// The path of a `Link: </v2/...>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        // Some registries send an absolute URL; keep only the path and query.
        let path = match target.find("://") {
            Some(i) => &target[target[i + 3..].find('/').map(|j| i + 3 + j)?..],
            None => target,
        };
        Some(path.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;
    use crate::registry::http::test_server::{stub, Seen};

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=100>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=100")
        );
        assert_eq!(
            next_link(r#"<http://127.0.0.1:5000/v2/x/tags/list?n=2&last=t>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?n=2&last=t")
        );
        assert_eq!(next_link(r#"</v2/a>; rel="prev""#), None);
    }

    /// Serves `pages` (request path → (Link header, body)) on loopback, one request per
    /// connection, and returns the port. Debian's registry ignores `n` on tags/list, so the
    /// tags pagination is checked against this stand-in.
    fn serve(pages: Vec<(&'static str, Option<&'static str>, &'static str)>) -> u16 {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut request = String::new();
                BufReader::new(&stream).read_line(&mut request).unwrap();
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let page = pages.iter().find(|(p, _, _)| *p == path);
                let (status, link, body) = match page {
                    Some((_, link, body)) => ("200 OK", *link, *body),
                    None => ("404 Not Found", None, "{}"),
                };
                let link = link.map(|l| format!("Link: {l}\r\n")).unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{link}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        port
    }

    #[test]
    fn plain_http_only_for_a_loopback_host_whose_tls_failed() {
        use super::{decide_scheme, Scheme};
        use crate::registry::Address;
        let addr = |a: &str| Address::parse(a).unwrap();
        for host in ["localhost:5000", "127.0.0.1:5000/team", "[::1]:5000"] {
            assert_eq!(
                decide_scheme(&addr(host), Err("tls"), || Some(200)),
                Ok(Scheme::Http),
                "{host}"
            );
            assert_eq!(
                decide_scheme(&addr(host), Err("tls"), || Some(401)),
                Ok(Scheme::Http),
                "{host}"
            );
            // An HTTPS server answers plain HTTP with 400: the TLS error stands.
            assert_eq!(
                decide_scheme(&addr(host), Err("tls"), || Some(400)),
                Err("tls"),
                "{host}"
            );
            assert_eq!(decide_scheme(&addr(host), Err("tls"), || None), Err("tls"), "{host}");
            assert_eq!(
                decide_scheme::<&str>(&addr(host), Ok(()), || panic!("HTTPS answered")),
                Ok(Scheme::Https)
            );
        }
        for host in [
            "registry.example.com",
            "10.0.0.1:5000",
            "127.0.0.2:5000",
            "localhost.localdomain:5000",
        ] {
            assert_eq!(
                decide_scheme(&addr(host), Err("tls"), || panic!(
                    "plain HTTP is never tried for {host}"
                )),
                Err("tls")
            );
        }
    }

    /// A registry that demands the Bearer token `T1` from its realm `/token`; `token` judges
    /// each token request.
    fn bearer_registry(token: impl Fn(&Seen) -> bool + Send + 'static) -> u16 {
        stub(move |seen, port| {
            if seen.path.starts_with("/token") {
                if token(seen) {
                    return ("200 OK", String::new(), r#"{"access_token":"T1"}"#.to_string());
                }
                return ("401 Unauthorized", String::new(), "{}".to_string());
            }
            if seen.auth != "Bearer T1" {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"s\",scope=\"repository:team/kit:pull\"\r\n"
                );
                return ("401 Unauthorized", challenge, "{}".to_string());
            }
            ("200 OK", String::new(), r#"{"tags":["v1"]}"#.to_string())
        })
    }

    fn client_with(port: u16, credential: Option<super::Credential>) -> super::Client {
        let address = crate::registry::Address::parse(&format!("localhost:{port}/team")).unwrap();
        super::Client::for_address(&address, 5).with_credential(credential)
    }

    /// A Bearer registry: the token is fetched from the realm once per scope, with the
    /// credential as Basic, and the request retried with it.
    #[test]
    fn bearer_tokens_are_fetched_once_per_scope() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let tokens = Arc::new(AtomicUsize::new(0));
        let counted = tokens.clone();
        let port = bearer_registry(move |seen| {
            counted.fetch_add(1, Ordering::SeqCst);
            // dTpw is base64 of u:p
            seen.method == "GET"
                && seen.auth == "Basic dTpw"
                && seen.path.contains("service=s&scope=repository%3Ateam%2Fkit%3Apull")
        });
        let client = client_with(
            port,
            Some(super::Credential::Basic {
                username: "u".into(),
                password: super::Secret::new("p"),
            }),
        );
        assert_eq!(client.tags("kit").unwrap(), ["v1"]);
        assert_eq!(client.tags("kit").unwrap(), ["v1"]);
        assert_eq!(tokens.load(Ordering::SeqCst), 1, "one token for the scope");
        assert_eq!(client.scheme().unwrap(), super::Scheme::Http);

        // Anonymous: the realm is asked without credentials, and its refusal names the fix.
        let err = format!("{:#}", client_with(port, None).tags("kit").unwrap_err());
        assert!(
            err.contains("refused") && err.contains("docker login localhost:"),
            "{err}"
        );
    }

    /// An identity token (`identitytoken`, or a helper's `<token>` user) is exchanged at the
    /// realm with the OAuth2 refresh-token grant, as docker does.
    #[test]
    fn identity_tokens_are_exchanged_with_a_refresh_grant() {
        let port = bearer_registry(|seen| {
            seen.method == "POST"
                && seen.auth.is_empty()
                && seen.body.contains("grant_type=refresh_token")
                && seen.body.contains("refresh_token=RT%2F1")
                && seen.body.contains("scope=repository%3Ateam%2Fkit%3Apull")
        });
        let client = client_with(port, Some(super::Credential::IdentityToken(super::Secret::new("RT/1"))));
        assert_eq!(client.tags("kit").unwrap(), ["v1"]);
    }

    #[test]
    fn transport_errors_name_the_fix() {
        use super::describe_transport;
        let address = crate::registry::Address::parse("registry.example.com/team").unwrap();
        let io = |text: &str| super::Failure {
            kind: super::http::classify_text(text),
            text: text.to_string(),
        };
        let cert = describe_transport(&address, &io("invalid peer certificate: UnknownIssuer"));
        assert!(
            cert.contains("not trusted") && cert.contains("--ca-file") && cert.contains("SSL_CERT_FILE"),
            "{cert}"
        );
        assert!(cert.contains("registry.example.com/team"), "{cert}");
        let refused = describe_transport(&address, &io("Connection refused (os error 111)"));
        assert!(refused.contains("nothing accepts connections"), "{refused}");
        let dns = describe_transport(&address, &io("failed to lookup address information"));
        assert!(dns.contains("cannot be resolved"), "{dns}");
        let tls = describe_transport(&address, &io("received corrupt message of type InvalidContentType"));
        assert!(tls.contains("must serve HTTPS"), "{tls}");
        let no_curl = describe_transport(
            &address,
            &super::Failure {
                kind: super::Kind::NoCurl,
                text: "`curl` is not on PATH".into(),
            },
        );
        assert!(
            no_curl.contains("install curl") && no_curl.contains("HTTPS"),
            "{no_curl}"
        );
    }

    #[test]
    fn challenges() {
        use super::{parse_challenge, Challenge};
        assert_eq!(parse_challenge("Basic realm=\"r\""), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(
            super::scope_for("/v2/team/kit/manifests/v1"),
            "repository:team/kit:pull"
        );
        assert_eq!(super::scope_for("/v2/_catalog?n=100"), "registry:catalog:*");
        assert_eq!(super::scope_for("/v2/"), "");
    }

    #[test]
    fn tags_and_catalog_follow_link_pagination() {
        let port = serve(vec![
            (
                "/v2/kit/tags/list?n=100",
                Some(r#"</v2/kit/tags/list?last=b&n=100>; rel="next""#),
                r#"{"tags":["a","b"]}"#,
            ),
            ("/v2/kit/tags/list?last=b&n=100", None, r#"{"tags":["c"]}"#),
            (
                "/v2/_catalog?n=100",
                Some(r#"</v2/_catalog?last=kit&n=100>; rel="next""#),
                r#"{"repositories":["kit"]}"#,
            ),
            ("/v2/_catalog?last=kit&n=100", None, r#"{"repositories":["other"]}"#),
        ]);
        let client = super::Client::new(port);
        assert_eq!(client.tags("kit").unwrap(), ["a", "b", "c"]);
        assert_eq!(client.catalog().unwrap(), ["kit", "other"]);
        assert!(client.tags("missing").unwrap().is_empty());
    }
}
