//! One HTTP request to a registry or its token service, and what went wrong on the way.
//!
//! Plain HTTP (the xtask's own registry, and a loopback registry without TLS) goes through
//! minreq, in this process. HTTPS goes through the `curl` program, as Bottlerocket's own
//! `make prep` already needs it to install twoliter: a TLS stack compiled into the xtask
//! (rustls, ring, webpki and the native-certs loader) cost every `cargo xtask` call about 7 ms
//! while cargo checked its units were fresh, and every first build about 4 s (measured). curl
//! trusts what twoliter trusts: the system roots, or `SSL_CERT_FILE` when it is set (which
//! replaces them). Both ways follow redirects alike, without sending the credentials to another
//! host (ECR answers blob requests with a redirect to S3).
//!
//! Secrets never reach a command line: curl reads the URL, the headers and the body from its
//! stdin (`--config -`), so `ps` shows only `curl … --config -`.

use std::collections::BTreeMap;
use std::time::Duration;

/// A request: GET, or POST with a form body.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    /// `Some` makes it a POST.
    pub(crate) body: Option<String>,
    /// Seconds the whole request may take.
    pub(crate) timeout: u64,
}

impl Request {
    pub(crate) fn get(url: impl Into<String>, timeout: u64) -> Request {
        Request {
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: timeout.max(1),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub(crate) fn post_form(mut self, form: String) -> Request {
        self.body = Some(form);
        self.header("Content-Type", "application/x-www-form-urlencoded")
    }

    fn is_https(&self) -> bool {
        self.url.starts_with("https://")
    }
}

/// A response: status, headers (names in lower case) and the whole body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status_code: i32,
    pub(crate) reason_phrase: String,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text, for error messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What kind of failure kept a request from an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The host name does not resolve.
    Dns,
    /// Nothing accepts connections there.
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// The certificate is not trusted, or not for this host.
    Certificate,
    /// The TLS handshake failed (for instance a plain-HTTP server).
    Tls,
    /// `curl` is not installed.
    NoCurl,
    Other,
}

/// A request that got no answer: its kind and the transport's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: Kind,
    pub(crate) text: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Sends `request`: HTTPS through curl, plain HTTP through minreq. Redirects are followed both
/// ways alike (curl follows its own): at most [`MAX_REDIRECTS`], the credentials only to the
/// origin they were given for.
pub(crate) fn send(request: &Request) -> Result<Response, Failure> {
    if request.is_https() {
        return send_curl(request);
    }
    let mut request = std::borrow::Cow::Borrowed(request);
    for _ in 0..=MAX_REDIRECTS {
        let response = send_plain(&request)?;
        let Some(next) = redirect(&request, &response) else {
            return Ok(response);
        };
        if next.is_https() {
            return send_curl(&next);
        }
        request = std::borrow::Cow::Owned(next);
    }
    Err(Failure {
        kind: Kind::Other,
        text: format!("more than {MAX_REDIRECTS} redirects, the last to {}", request.url),
    })
}

/// Pure: the request a redirect answer leads to, as curl makes it: the Location resolved against
/// the request's URL; without the Authorization header when it leads to another origin (scheme,
/// host or port); a GET without the form after a 301, 302 or 303 answer to a POST. `None` when
/// the answer is not a redirect.
fn redirect(request: &Request, response: &Response) -> Option<Request> {
    if !matches!(response.status_code, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let url = resolve(&request.url, response.header("location")?.trim())?;
    let mut next = request.clone();
    if origin(&url) != origin(&request.url) {
        next.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
    }
    if next.body.is_some() && (301..=303).contains(&response.status_code) {
        next.body = None;
        next.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
    }
    next.url = url;
    Some(next)
}

/// Pure: `location` as an absolute URL, relative to `base` (an `http://` or `https://` URL).
fn resolve(base: &str, location: &str) -> Option<String> {
    if location.is_empty() {
        return None;
    }
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    let scheme_end = base.find("://")? + 3;
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{}{rest}", &base[..scheme_end]));
    }
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    if location.starts_with('/') {
        return Some(format!("{}{location}", &base[..path_start]));
    }
    // Relative to the request's directory: its path, without query or fragment, up to the last '/'.
    let path_end = base[path_start..]
        .find(['?', '#'])
        .map_or(base.len(), |i| path_start + i);
    match base[path_start..path_end].rfind('/') {
        Some(i) => Some(format!("{}{location}", &base[..path_start + i + 1])),
        None => Some(format!("{}/{location}", &base[..path_start])),
    }
}

/// Pure: the scheme and authority of a URL, the host in lower case.
fn origin(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    url[..end].to_ascii_lowercase()
}

fn send_plain(request: &Request) -> Result<Response, Failure> {
    let mut out = match &request.body {
        Some(body) => minreq::post(&request.url).with_body(body.as_bytes()),
        None => minreq::get(&request.url),
    }
    .with_timeout(request.timeout)
    // `send` follows redirects, so that one to HTTPS goes through curl and credentials stay
    // with their origin (minreq would send them on, and cannot speak HTTPS here).
    .with_follow_redirects(false);
    for (name, value) in &request.headers {
        out = out.with_header(name, value);
    }
    let response = out.send().map_err(|err| {
        let text = err.to_string();
        Failure {
            kind: classify_text(&text),
            text,
        }
    })?;
    Ok(Response {
        status_code: response.status_code,
        reason_phrase: response.reason_phrase.clone(),
        headers: response
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        body: response.into_bytes(),
    })
}

/// Pure: the kind of a transport error from its words (minreq's, or the system's).
pub(crate) fn classify_text(text: &str) -> Kind {
    let lower = text.to_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") || lower.contains("notvalidforname") {
        Kind::Certificate
    } else if lower.contains("connection refused") {
        Kind::Refused
    } else if lower.contains("lookup") || lower.contains("name or service") || lower.contains("resolve") {
        Kind::Dns
    } else if lower.contains("timed out") || lower.contains("timeout") {
        Kind::Timeout
    } else if lower.contains("corrupt message") || lower.contains("handshake") || lower.contains("tls") {
        Kind::Tls
    } else {
        Kind::Other
    }
}

/// Redirects curl may follow (registries redirect blobs to object storage once).
const MAX_REDIRECTS: u32 = 10;

/// Pure: the curl arguments; everything else goes in [`curl_config`].
pub(crate) fn curl_args(request: &Request) -> Vec<String> {
    let mut args: Vec<String> = [
        // First, so that no ~/.curlrc changes what is sent.
        "-q",
        "--silent",
        "--show-error",
        "--include",
        "--location",
        "--http1.1",
    ]
    .map(String::from)
    .to_vec();
    args.extend([
        "--max-redirs".to_string(),
        MAX_REDIRECTS.to_string(),
        "--max-time".to_string(),
        request.timeout.to_string(),
        "--config".to_string(),
        "-".to_string(),
    ]);
    args
}

/// Pure: curl's config (read from its stdin): the URL, the headers, the body, the CA bundle.
pub(crate) fn curl_config(request: &Request, ca_bundle: Option<&str>) -> String {
    let quote = |value: &str| {
        let mut out = String::with_capacity(value.len() + 2);
        out.push('"');
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    let mut config = format!("url = {}\n", quote(&request.url));
    for (name, value) in &request.headers {
        config.push_str(&format!("header = {}\n", quote(&format!("{name}: {value}"))));
    }
    if let Some(body) = &request.body {
        // `data-raw`: a body starting with `@` is not a file name.
        config.push_str(&format!("data-raw = {}\n", quote(body)));
    }
    if let Some(bundle) = ca_bundle {
        config.push_str(&format!("cacert = {}\n", quote(bundle)));
    }
    config
}

/// Pure: the final response out of curl's `--include --location` output, which holds the header
/// block of every response on the way (interim `1xx`, followed redirects) and the last body.
pub(crate) fn parse_curl_output(output: &[u8]) -> Option<Response> {
    let mut rest = output;
    loop {
        let end = find(rest, b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| find(rest, b"\n\n").map(|i| (i, 2)));
        let (head, body) = match end {
            Some((i, n)) => (&rest[..i], &rest[i + n..]),
            None => (rest, &rest[rest.len()..]),
        };
        let head = String::from_utf8_lossy(head);
        let mut lines = head.lines();
        let status_line = lines.next()?;
        let mut parts = status_line.splitn(3, ' ');
        if !parts.next()?.starts_with("HTTP/") {
            return None;
        }
        let status_code: i32 = parts.next()?.trim().parse().ok()?;
        let reason_phrase = parts.next().unwrap_or("").trim().to_string();
        let mut headers = BTreeMap::new();
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        // Another header block follows an interim answer or a redirect curl followed.
        let followed = (100..200).contains(&status_code)
            || ((300..400).contains(&status_code) && headers.contains_key("location"));
        if followed && body.starts_with(b"HTTP/") {
            rest = body;
            continue;
        }
        return Some(Response {
            status_code,
            reason_phrase,
            headers,
            body: body.to_vec(),
        });
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Pure: the kind of a curl failure from its exit status (see curl's `EXIT CODES`).
pub(crate) fn classify_curl(exit: Option<i32>, stderr: &str) -> Kind {
    match exit {
        Some(6) => Kind::Dns,
        Some(7) => Kind::Refused,
        Some(28) => Kind::Timeout,
        Some(35) => Kind::Tls,
        // Peer certificate not valid for the host, not verified, CA file unusable, issuer check.
        Some(51 | 60 | 77 | 83) => Kind::Certificate,
        _ => classify_text(stderr),
    }
}

/// The CA bundle curl is given: `SSL_CERT_FILE` when set (this process sets it for a team CA,
/// see [`super::trust`]), else curl's own default, the system roots.
fn ca_bundle() -> Option<String> {
    std::env::var("SSL_CERT_FILE").ok().filter(|f| !f.is_empty())
}

/// Every HTTPS request of the process, a redirect's included: from the first one on, its trust
/// is fixed (see [`super::trust`]).
fn send_curl(request: &Request) -> Result<Response, Failure> {
    super::trust::note_https();
    send_curl_trusting(request, ca_bundle().as_deref())
}

pub(crate) fn send_curl_trusting(request: &Request, ca_bundle: Option<&str>) -> Result<Response, Failure> {
    let Some(curl) = crate::tools::which("curl") else {
        return Err(Failure {
            kind: Kind::NoCurl,
            text: "`curl` is not on PATH".to_string(),
        });
    };
    // In the user's environment, not the one cargo gave `cargo xtask` (its LD_LIBRARY_PATH).
    let mut cmd = crate::process::tool(curl);
    cmd.args(curl_args(request));
    let config = curl_config(request, ca_bundle);
    // curl stops itself at --max-time; this only guards against a curl that does not.
    let guard = Duration::from_secs(request.timeout + 5);
    let output = crate::process::run_with_input(cmd, config.as_bytes(), guard).map_err(|err| Failure {
        kind: Kind::Other,
        text: format!("{err:#}"),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(Failure {
            kind: classify_curl(output.status.code(), &stderr),
            text: if stderr.is_empty() {
                format!("curl failed ({})", output.status)
            } else {
                stderr
            },
        });
    }
    parse_curl_output(&output.stdout).ok_or_else(|| Failure {
        kind: Kind::Other,
        text: "curl printed no HTTP response".to_string(),
    })
}

/// A plain-HTTP server for the tests of this module and of the registry client.
#[cfg(test)]
pub(crate) mod test_server {
    /// One HTTP request as [`stub`] passes it on: method, path, Authorization header, body.
    pub(crate) struct Seen {
        pub(crate) method: String,
        pub(crate) path: String,
        pub(crate) auth: String,
        pub(crate) body: String,
    }

    /// A plain-HTTP server on 127.0.0.1, one request per connection, answering each with
    /// `handle(request, port)` = (status line, extra header lines, body); returns the port.
    pub(crate) fn stub(handle: impl Fn(&Seen, u16) -> (&'static str, String, String) + Send + 'static) -> u16 {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // The client's TLS attempt comes first: not HTTP, so no line.
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let (mut auth, mut length) = (String::new(), 0);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        match k.to_ascii_lowercase().as_str() {
                            "authorization" => auth = v.trim().to_string(),
                            "content-length" => length = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let seen = Seen {
                    method,
                    path,
                    auth,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let (status, extra, body) = handle(&seen, port);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        port
    }

    /// An HTTPS server (python's `ssl`) with a self-signed certificate for `localhost` and
    /// `127.0.0.1`, made by `openssl`: its own CA.
    pub(crate) struct HttpsStub {
        child: std::process::Child,
        pub(crate) port: u16,
        dir: tempfile::TempDir,
    }

    const STUB: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        port = self.server.server_address[1]
        if self.path == "/v2/blob":
            self.send_response(307)
            self.send_header("Location", "https://127.0.0.1:%d/storage" % port)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ("authorization=" + self.headers.get("Authorization", "")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = self.rfile.read(length).decode()
        body = ("type=" + self.headers.get("Content-Type", "") + "&" + form).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

    impl HttpsStub {
        pub(crate) fn start() -> HttpsStub {
            use std::io::BufRead;
            let dir = tempfile::tempdir().unwrap();
            let status = std::process::Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=localhost",
                ])
                .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
                .args(["-keyout", "key.pem", "-out", "cert.pem"])
                .current_dir(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "openssl req");
            let mut child = std::process::Command::new("python3")
                .args(["-c", STUB, "cert.pem", "key.pem"])
                .current_dir(dir.path())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let port = line.trim().parse().unwrap();
            HttpsStub { child, port, dir }
        }

        /// The certificate, in PEM.
        pub(crate) fn cert(&self) -> String {
            self.dir.path().join("cert.pem").display().to_string()
        }
    }

    impl Drop for HttpsStub {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::HttpsStub;
    use super::*;

    #[test]
    fn the_final_response_after_interim_answers_and_redirects() {
        let output = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 307 Temporary Redirect\r\nLocation: https://bucket.example/blob?sig=1\r\nContent-Length: 0\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nDocker-Content-Digest: sha256:ab\r\n\r\n\
            body\r\n\r\nwith a blank line";
        let response = parse_curl_output(output).unwrap();
        assert_eq!(response.status_code, 200);
        assert_eq!(response.reason_phrase, "OK");
        assert_eq!(response.header("docker-content-digest"), Some("sha256:ab"));
        assert_eq!(response.body, b"body\r\n\r\nwith a blank line");

        // A redirect curl did not follow (no Location) is the answer, body and all.
        let response = parse_curl_output(b"HTTP/1.1 302 Found\r\nX: y\r\n\r\nHTTP/1.1 is in the body").unwrap();
        assert_eq!(response.status_code, 302);
        assert_eq!(response.body, b"HTTP/1.1 is in the body");

        let response =
            parse_curl_output(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\n\r\n").unwrap();
        assert_eq!(response.status_code, 401);
        assert_eq!(response.header("www-authenticate"), Some("Basic realm=\"r\""));
        assert!(response.body.is_empty());

        assert_eq!(parse_curl_output(b""), None);
        assert_eq!(parse_curl_output(b"garbage\r\n\r\n"), None);
    }

    #[test]
    fn a_redirect_is_followed_as_curl_follows_it() {
        let answer = |status: i32, location: &str| Response {
            status_code: status,
            headers: [("location".to_string(), location.to_string())].into(),
            ..Response::default()
        };
        let get = Request::get("http://localhost:5000/v2/kit/blobs/sha256:ab?n=1", 3)
            .header("Accept", "*/*")
            .header("Authorization", "Basic dTpw");
        let auth = |r: &Request| r.headers.iter().any(|(n, _)| n == "Authorization");

        let next = redirect(&get, &answer(307, "http://bucket.example/blob?sig=1")).unwrap();
        assert_eq!(next.url, "http://bucket.example/blob?sig=1");
        assert!(!auth(&next), "the credentials stay with the registry");
        assert_eq!(next.headers, [("Accept".to_string(), "*/*".to_string())]);
        assert_eq!(next.timeout, 3);
        // Another port, another scheme, or the same host in other letters.
        assert!(!auth(&redirect(&get, &answer(302, "http://localhost:5001/x")).unwrap()));
        assert!(!auth(
            &redirect(&get, &answer(302, "https://localhost:5000/x")).unwrap()
        ));
        assert!(auth(&redirect(&get, &answer(302, "http://LOCALHOST:5000/x")).unwrap()));

        for (location, url) in [
            ("/storage/a", "http://localhost:5000/storage/a"),
            ("data?x=1", "http://localhost:5000/v2/kit/blobs/data?x=1"),
            ("//localhost:5000/b", "http://localhost:5000/b"),
            ("https://mirror.example/c", "https://mirror.example/c"),
        ] {
            assert_eq!(redirect(&get, &answer(308, location)).unwrap().url, url, "{location}");
        }
        assert_eq!(resolve("http://h:1", "x"), Some("http://h:1/x".to_string()));
        assert_eq!(resolve("http://h:1/a/b#f", "c"), Some("http://h:1/a/c".to_string()));
        assert_eq!(origin("HTTP://Host:1?q"), "http://host:1");

        // A POST becomes a GET without its form after 301, 302 and 303, not after 307 and 308.
        let post = Request::get("http://localhost:5000/token", 3).post_form("grant_type=x".to_string());
        for status in [301, 302, 303] {
            let next = redirect(&post, &answer(status, "/token2")).unwrap();
            assert_eq!((next.body, next.headers.len()), (None, 0), "{status}");
        }
        for status in [307, 308] {
            let next = redirect(&post, &answer(status, "/token2")).unwrap();
            assert_eq!(next.body.as_deref(), Some("grant_type=x"), "{status}");
            assert_eq!(next.headers, post.headers);
        }

        // Not a redirect, or one without a place to go: the answer itself.
        assert!(redirect(&get, &answer(200, "/x")).is_none());
        assert!(redirect(&get, &answer(304, "/x")).is_none());
        assert!(redirect(&get, &answer(302, "")).is_none());
        assert!(redirect(
            &get,
            &Response {
                status_code: 302,
                ..Response::default()
            }
        )
        .is_none());
    }

    /// Against a real server: minreq's own redirects are off, `send` follows them.
    #[test]
    fn plain_http_redirects_keep_credentials_with_their_origin() {
        let other = test_server::stub(|seen, _| ("200 OK", String::new(), format!("authorization={}", seen.auth)));
        let port = test_server::stub(move |seen, port| match seen.path.as_str() {
            "/v2/blob" => (
                "307 Temporary Redirect",
                format!("Location: http://127.0.0.1:{other}/storage?sig=1\r\n"),
                String::new(),
            ),
            "/v2/same" => ("302 Found", "Location: /v2/echo\r\n".to_string(), String::new()),
            "/v2/echo" => (
                "200 OK",
                String::new(),
                format!("{} authorization={} body={}", seen.method, seen.auth, seen.body),
            ),
            "/v2/token" => ("303 See Other", "Location: echo\r\n".to_string(), String::new()),
            "/v2/loop" => (
                "302 Found",
                format!("Location: http://localhost:{port}/v2/loop\r\n"),
                String::new(),
            ),
            "/v2/tls" => (
                "302 Found",
                format!("Location: https://127.0.0.1:{port}/v2/\r\n"),
                String::new(),
            ),
            _ => ("404 Not Found", String::new(), String::new()),
        });
        let get = |path: &str| {
            Request::get(format!("http://localhost:{port}{path}"), 5).header("Authorization", "Basic dTpw")
        };

        assert_eq!(send(&get("/v2/blob")).unwrap().text(), "authorization=");
        assert_eq!(
            send(&get("/v2/same")).unwrap().text(),
            "GET authorization=Basic dTpw body="
        );
        let form = get("/v2/token").post_form("grant_type=x".to_string());
        assert_eq!(send(&form).unwrap().text(), "GET authorization=Basic dTpw body=");

        let err = send(&get("/v2/loop")).unwrap_err();
        assert!(err.text.starts_with("more than 10 redirects"), "{err}");
        // A redirect to HTTPS goes through curl, which finds a plain-HTTP server there.
        let err = send(&get("/v2/tls")).unwrap_err();
        assert_eq!(err.kind, Kind::Tls, "{err}");
    }

    #[test]
    fn secrets_go_to_curls_stdin_never_its_arguments() {
        let request = Request::get("https://registry.example.com/token?scope=a", 7)
            .header("Authorization", "Basic c2VjcmV0")
            .post_form("grant_type=refresh_token&refresh_token=RT\"1\\".to_string());
        let args = curl_args(&request).join(" ");
        assert!(
            !args.contains("c2VjcmV0") && !args.contains("RT") && !args.contains("registry.example.com"),
            "{args}"
        );
        assert!(args.starts_with("-q "), "{args}");
        assert!(args.contains("--max-time 7") && args.ends_with("--config -"), "{args}");
        let config = curl_config(&request, Some("/tmp/bundle.pem"));
        assert_eq!(
            config,
            "url = \"https://registry.example.com/token?scope=a\"\n\
             header = \"Authorization: Basic c2VjcmV0\"\n\
             header = \"Content-Type: application/x-www-form-urlencoded\"\n\
             data-raw = \"grant_type=refresh_token&refresh_token=RT\\\"1\\\\\"\n\
             cacert = \"/tmp/bundle.pem\"\n"
        );
        assert!(!curl_config(&Request::get("https://r.example/v2/", 1), None).contains("cacert"));
    }

    #[test]
    fn failures_are_classified_by_curls_exit_status() {
        assert_eq!(classify_curl(Some(6), "curl: (6) Could not resolve host: x"), Kind::Dns);
        assert_eq!(classify_curl(Some(7), "curl: (7) Failed to connect"), Kind::Refused);
        assert_eq!(classify_curl(Some(28), ""), Kind::Timeout);
        assert_eq!(classify_curl(Some(35), "curl: (35) wrong version number"), Kind::Tls);
        for code in [51, 60, 77, 83] {
            assert_eq!(classify_curl(Some(code), ""), Kind::Certificate, "{code}");
        }
        assert_eq!(classify_curl(None, "killed"), Kind::Other);
        assert_eq!(classify_text("Connection refused (os error 111)"), Kind::Refused);
        assert_eq!(classify_text("failed to lookup address information"), Kind::Dns);
        assert_eq!(classify_text("the timeout of the request was reached"), Kind::Timeout);
    }

    /// An HTTPS server on 127.0.0.1 (Python's `ssl`, with a certificate for `localhost` and
    /// `127.0.0.1` made by `openssl`): `/v2/blob` redirects to `https://127.0.0.1:<port>/storage`,
    /// another host as curl sees it, which answers with the Authorization header it was sent.
    /// Through the real curl: a redirect to another host is followed without the credentials
    /// (S3 refuses a presigned request that also carries them), an untrusted certificate and a
    /// plain-HTTP server are told apart, and nothing listening is a refusal.
    #[test]
    fn https_through_curl_against_a_real_tls_server() {
        let stub = HttpsStub::start();
        let request =
            Request::get(format!("https://localhost:{}/v2/blob", stub.port), 5).header("Authorization", "Basic dTpw");
        let response = send_curl_trusting(&request, Some(&stub.cert())).unwrap();
        assert_eq!(response.status_code, 200);
        assert_eq!(
            response.text(),
            "authorization=",
            "the credentials stay with the registry's host"
        );
        let same_host =
            Request::get(format!("https://localhost:{}/storage", stub.port), 5).header("Authorization", "Basic dTpw");
        let response = send_curl_trusting(&same_host, Some(&stub.cert())).unwrap();
        assert_eq!(response.text(), "authorization=Basic dTpw");

        // A form POST (the OAuth2 refresh-token grant): the body and its type arrive as given.
        let form = Request::get(format!("https://localhost:{}/token", stub.port), 5)
            .post_form("grant_type=refresh_token&refresh_token=%40RT".to_string());
        let response = send_curl_trusting(&form, Some(&stub.cert())).unwrap();
        assert_eq!(
            response.text(),
            "type=application/x-www-form-urlencoded&grant_type=refresh_token&refresh_token=%40RT"
        );

        // The system roots do not include the stub's certificate.
        let err = send_curl_trusting(&request, Some("/etc/ssl/certs/ca-certificates.crt")).unwrap_err();
        assert_eq!(err.kind, Kind::Certificate, "{err}");

        // HTTPS to a plain-HTTP server: the handshake fails.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let plain_port = plain.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::Write;
            for stream in plain.incoming().flatten().take(1) {
                let mut stream = stream;
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let err =
            send_curl_trusting(&Request::get(format!("https://127.0.0.1:{plain_port}/v2/"), 5), None).unwrap_err();
        assert_eq!(err.kind, Kind::Tls, "{err}");

        let nothing = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = send_curl_trusting(&Request::get(format!("https://127.0.0.1:{nothing}/v2/"), 5), None).unwrap_err();
        assert_eq!(err.kind, Kind::Refused, "{err}");
    }
}
