//! The Distribution API of a plain-HTTP registry on loopback: health, catalog and tags with
//! `Link` pagination, manifests with an `Accept` for all four kinds, blobs. Every request has a
//! timeout.

use anyhow::{bail, Context, Result};

use crate::oci::{self, Manifest};

/// Seconds a single request may take.
const TIMEOUT_SECS: u64 = 10;
/// Page size asked for on `_catalog` and `tags/list`.
const PAGE: usize = 100;

#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// `http://127.0.0.1:<port>`
    base: String,
    /// Seconds a single request may take.
    timeout: u64,
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
    pub(crate) fn new(port: u16) -> Client {
        Client::with_timeout(port, TIMEOUT_SECS)
    }

    /// A client whose requests each give up after `secs` seconds (health polling uses 1).
    pub(crate) fn with_timeout(port: u16, secs: u64) -> Client {
        Client {
            base: format!("http://127.0.0.1:{port}"),
            timeout: secs.max(1),
        }
    }

    fn get(&self, path: &str, accept: Option<&str>) -> Result<minreq::Response> {
        let url = format!("{}{path}", self.base);
        let mut request = minreq::get(&url).with_timeout(self.timeout);
        if let Some(accept) = accept {
            request = request.with_header("Accept", accept);
        }
        request
            .send()
            .with_context(|| format!("registry did not answer GET {url}"))
    }

    /// `GET /v2/` answers 200 (or 401, which still proves a registry is there).
    pub(crate) fn ping(&self) -> Result<()> {
        let response = self.get("/v2/", None)?;
        match response.status_code {
            200 | 401 => Ok(()),
            code => bail!("GET {}/v2/ answered {code} {}", self.base, response.reason_phrase),
        }
    }

    /// `GET /v2/` answers 200: a registry that serves without credentials, as a push needs.
    pub(crate) fn ping_ok(&self) -> Result<()> {
        let response = self.get("/v2/", None)?;
        match response.status_code {
            200 => Ok(()),
            code => bail!("GET {}/v2/ answered {code} {}", self.base, response.reason_phrase),
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
        mut response: minreq::Response,
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
                    self.base,
                    response.status_code,
                    response.reason_phrase
                );
            }
            all.extend(parse(response.as_bytes())?);
            match response.headers.get("link").and_then(|l| next_link(l)) {
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
        let response = self.get(&format!("/v2/{repo}/manifests/{reference}"), Some(oci::ACCEPT))?;
        match response.status_code {
            200 => {}
            404 => return Ok(None),
            code => bail!(
                "GET manifest {repo}:{reference} answered {code}: {}",
                response.as_str().unwrap_or("").trim()
            ),
        }
        let bytes = response.as_bytes().to_vec();
        let manifest = Manifest::parse(&bytes, response.headers.get("content-type").map(String::as_str))
            .with_context(|| format!("manifest {repo}:{reference}"))?;
        let digest = response
            .headers
            .get("docker-content-digest")
            .cloned()
            .unwrap_or_else(|| oci::content_digest(&bytes));
        Ok(Some(Fetched {
            manifest,
            bytes,
            digest,
        }))
    }

    /// A blob's bytes, checked against its digest.
    pub(crate) fn blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>> {
        let response = self.get(&format!("/v2/{repo}/blobs/{digest}"), None)?;
        if response.status_code != 200 {
            bail!(
                "GET blob {repo}@{digest} answered {} {}",
                response.status_code,
                response.reason_phrase
            );
        }
        let bytes = response.into_bytes();
        let actual = oci::content_digest(&bytes);
        if actual != digest {
            bail!("blob {repo}@{digest} has the wrong content (its digest is {actual})");
        }
        Ok(bytes)
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
