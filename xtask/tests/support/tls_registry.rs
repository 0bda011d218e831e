//! A team registry on this machine: Debian's `docker-registry` serving HTTPS with a certificate
//! of a test CA (for `IP:127.0.0.1` and `DNS:localhost`, made with the `openssl` CLI) and asking
//! for Basic credentials from an htpasswd file (bcrypt, `htpasswd -B`); docker config
//! directories with the right and a wrong password, and one naming a credential helper
//! (`docker-credential-test`, a script in a directory to put on PATH). Plus stub servers on
//! 127.0.0.1: a Bearer-token registry, and one whose tags are immutable.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

pub const USER: &str = "kit-publisher";
/// Distinctive, so a test can grep every file for it.
pub const PASSWORD: &str = "pw-Zq81xT3s-never-written";
pub const NAMESPACE: &str = "team";

pub struct TlsRegistry {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    _tmp: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    super::run_ok(Command::new("openssl").args(args).current_dir(dir));
}

impl TlsRegistry {
    pub fn start() -> TlsRegistry {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=xtask test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&dir, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
        openssl(&dir, &csr);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        let htpasswd = super::run_ok(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
        std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();

        let port = super::free_port();
        let q = |p: &str| serde_json::to_string(&dir.join(p).to_string_lossy()).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n\
             auth:\n  htpasswd:\n    realm: xtask-test\n    path: {}\n",
            q("data"),
            q("server.pem"),
            q("server.key"),
            q("htpasswd"),
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(dir.join("config.yml"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(key);
            }
        }
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry runs");
        let registry = TlsRegistry {
            port,
            dir,
            child,
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the TLS registry did not start: {}",
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry.write_docker_configs();
        registry
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// `localhost:<port>/team`, as twoliter wants it.
    pub fn address(&self) -> String {
        format!("localhost:{}/{NAMESPACE}", self.port)
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A docker config directory with the right credentials (`auths`, base64 `auth`).
    pub fn good_config(&self) -> PathBuf {
        self.dir.join("docker-good")
    }

    /// A docker config directory with a wrong password.
    pub fn wrong_config(&self) -> PathBuf {
        self.dir.join("docker-wrong")
    }

    /// A docker config directory naming the `test` credential helper for this registry.
    pub fn helper_config(&self) -> PathBuf {
        self.dir.join("docker-helper")
    }

    /// A directory holding `docker-credential-test`, to put on PATH.
    pub fn helper_bin(&self) -> PathBuf {
        self.dir.join("helper-bin")
    }

    fn write_docker_configs(&self) {
        let host = format!("localhost:{}", self.port);
        write_auths(&self.good_config(), &host, USER, PASSWORD);
        write_auths(&self.wrong_config(), &host, USER, "not-the-password");
        std::fs::create_dir_all(self.helper_config()).unwrap();
        std::fs::write(
            self.helper_config().join("config.json"),
            serde_json::json!({"credHelpers": {host.clone(): "test"}}).to_string(),
        )
        .unwrap();
        std::fs::create_dir_all(self.helper_bin()).unwrap();
        let script = self.helper_bin().join("docker-credential-test");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nif [ \"$server\" = \"{host}\" ]; then\n  \
                 printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}\\n' \"$server\"\nelse\n  \
                 echo 'credentials not found in native keychain'; exit 1\nfi\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `<dir>/config.json` with an `auths` entry for `host`.
pub fn write_auths(dir: &Path, host: &str, user: &str, password: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
    )
    .unwrap();
}

/// One HTTP request as a stub sees it.
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a stub answers: status line, extra headers, body.
pub type Answer = (&'static str, Vec<(String, String)>, Vec<u8>);

/// Serves plain HTTP on 127.0.0.1 (a loopback registry may, as twoliter allows), one request per
/// connection, answering with `handle`; returns the port.
pub fn serve(handle: impl Fn(&Request, u16) -> Answer + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim_end().split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let request = Request { method, path, headers };
            let length: usize = request
                .header("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let (status, extra, body) = handle(&request, port);
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    port
}

pub const TOKEN: &str = "stub-token-4a7c";

/// A registry that demands a Bearer token from its realm `/token`, which hands one out for
/// Basic [`USER`]:[`PASSWORD`] only.
pub fn bearer_stub() -> u16 {
    serve(|request, port| {
        let json = || vec![("Content-Type".to_string(), "application/json".to_string())];
        if request.path.starts_with("/token") {
            let wanted = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
            );
            if request.header("authorization") == Some(wanted.as_str()) {
                return ("200 OK", json(), format!(r#"{{"token":"{TOKEN}"}}"#).into_bytes());
            }
            return ("401 Unauthorized", json(), br#"{"details":"bad credentials"}"#.to_vec());
        }
        if request.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            let scope = request
                .path
                .strip_prefix("/v2/")
                .and_then(|rest| rest.split_once("/tags/"))
                .map(|(repo, _)| format!(",scope=\"repository:{repo}:pull\""))
                .unwrap_or_default();
            return (
                "401 Unauthorized",
                vec![(
                    "WWW-Authenticate".to_string(),
                    format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"stub\"{scope}"),
                )],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
            );
        }
        match request.path.as_str() {
            "/v2/" => ("200 OK", json(), b"{}".to_vec()),
            p if p.starts_with("/v2/team/core-kit/tags/list") => (
                "200 OK",
                json(),
                br#"{"name":"team/core-kit","tags":["v1.0.0","v1.2.0"]}"#.to_vec(),
            ),
            _ => (
                "404 Not Found",
                json(),
                br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#.to_vec(),
            ),
        }
    })
}

/// A registry (no authentication) that has every blob and refuses to overwrite any tag, as ECR
/// with immutable tags does: PUT manifest answers 400 `TAG_INVALID`.
pub fn immutable_stub() -> u16 {
    serve(|request, _| {
        let json = || vec![("Content-Type".to_string(), "application/json".to_string())];
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/v2/") => ("200 OK", json(), b"{}".to_vec()),
            ("HEAD", p) if p.contains("/blobs/") => ("200 OK", Vec::new(), Vec::new()),
            ("PUT", p) if p.contains("/manifests/") => {
                let tag = p.rsplit('/').next().unwrap_or("");
                (
                    "400 Bad Request",
                    json(),
                    format!(
                        r#"{{"errors":[{{"code":"TAG_INVALID","message":"The image tag '{tag}' already exists in the repository and cannot be overwritten because the repository is immutable."}}]}}"#
                    )
                    .into_bytes(),
                )
            }
            _ => (
                "404 Not Found",
                json(),
                br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#.to_vec(),
            ),
        }
    })
}
