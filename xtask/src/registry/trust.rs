//! Trusting a team registry's own CA. A CA file given once (`--ca-file`) is remembered per
//! registry address in the registry state directory of the checkout or forest. A run that speaks
//! to a registry other than the xtask's own builds one `SSL_CERT_FILE` bundle of the system's
//! roots plus every CA remembered there, never the CAs alone: the same processes fetch the SDK and
//! upstream kits from public.ecr.aws, and twoliter may fetch kits of other vendors from other
//! team registries than the one the run publishes to or builds from.
//!
//! One bundle serves the whole process and its tools: every HTTPS request of a run (curl, given
//! `SSL_CERT_FILE` as its `cacert`, which replaces the system roots rather than adding to them),
//! twoliter and cargo make ([`crate::process::tool`] passes the same bundle), and python's
//! `ssl.create_default_context()`, which honours it too. So [`activate`] is the one place that
//! sets `SSL_CERT_FILE` in this process, and it must run before any HTTPS request (it refuses
//! otherwise): a run never trusts different roots for different requests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use super::state::{self, Owner, Paths};
use super::Address;
use crate::fsx;

/// The bundle this process trusts, once activated.
static ACTIVE: OnceLock<PathBuf> = OnceLock::new();
/// Set on the first HTTPS request: from then on the trust of this process is fixed.
static HTTPS_USED: AtomicBool = AtomicBool::new(false);

/// Where distributions keep their CA bundle, in openssl-probe's order.
const SYSTEM_BUNDLES: [&str; 9] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
    "/etc/openssl/certs/ca-certificates.crt",
    "/usr/local/ssl/cert.pem",
];

/// Pure: the file of system roots, found as openssl-probe finds it: `SSL_CERT_FILE` when set
/// (and present), else the first distro bundle that exists.
pub(crate) fn system_roots(ssl_cert_file: Option<&Path>, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    if let Some(file) = ssl_cert_file.filter(|f| !f.as_os_str().is_empty() && exists(f)) {
        return Some(file.to_path_buf());
    }
    SYSTEM_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| exists(p))
        .map(Path::to_path_buf)
}

/// Pure: the system roots followed by the team CAs.
pub(crate) fn bundle(system_roots: &str, cas: &[String]) -> String {
    let mut out = String::new();
    for part in std::iter::once(system_roots).chain(cas.iter().map(String::as_str)) {
        let part = part.trim_end();
        if !part.is_empty() {
            out.push_str(part);
            out.push('\n');
        }
    }
    out
}

/// Pure: `text` holds at least one PEM certificate.
pub(crate) fn check_pem(text: &str) -> Result<()> {
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        bail!("it holds no PEM certificate (`-----BEGIN CERTIFICATE-----`): give the CA certificate in PEM form");
    }
    Ok(())
}

fn dir(paths: &Paths) -> PathBuf {
    paths.dir.join(TRUST_DIR)
}

/// The directory under the registry state directory that holds remembered CAs; `registry clean`
/// keeps it (it belongs to registries the xtask does not run).
pub(crate) const TRUST_DIR: &str = "trust";

fn ca_path(paths: &Paths, address: &Address) -> PathBuf {
    dir(paths).join(format!("{}.ca.pem", address.file_key()))
}

/// The bundle of the system roots and every remembered CA.
fn bundle_path(paths: &Paths) -> PathBuf {
    dir(paths).join("bundle.pem")
}

/// Remembers `ca_file` as the CA of `address` for this checkout or forest (a copy, written
/// atomically under the registry lock).
pub(crate) fn remember(address: &Address, ca_file: &Path) -> Result<()> {
    let owner = Owner::current();
    state::ignore_forest_dir(&owner)?;
    remember_in(&Paths::current(&owner), address, ca_file)
}

/// The text of a `--ca-file`, refused unless it holds a PEM certificate.
pub(crate) fn read_ca_file(ca_file: &Path) -> Result<String> {
    let text = fsx::read_required(ca_file)?;
    check_pem(&text).with_context(|| format!("--ca-file {}", ca_file.display()))?;
    Ok(text)
}

fn remember_in(paths: &Paths, address: &Address, ca_file: &Path) -> Result<()> {
    let text = read_ca_file(ca_file)?;
    let _lock = state::lock(paths)?;
    let path = ca_path(paths, address);
    if fsx::read_optional(&path)?.as_deref() != Some(text.as_str()) {
        fs_err::create_dir_all(dir(paths))?;
        fsx::write_atomic(&path, text.as_bytes())?;
        crate::ui::info(format!(
            "remembered {} as the CA of {address} ({})",
            ca_file.display(),
            path.display()
        ));
    }
    Ok(())
}

/// The remembered CA of `address`, if any.
pub(crate) fn remembered(address: &Address) -> Option<PathBuf> {
    let path = ca_path(&Paths::current(&Owner::current()), address);
    path.is_file().then_some(path)
}

/// The CAs remembered in `paths`, in the order of their file names.
pub(crate) fn remembered_cas(paths: &Paths) -> Result<Vec<PathBuf>> {
    let dir = dir(paths);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut cas: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".ca.pem"))
        })
        .collect();
    cas.sort();
    Ok(cas)
}

/// Writes the bundle of `paths` (the system roots, found from `ssl_cert_file` as openssl finds
/// them, plus every CA remembered there) when a CA is remembered; returns it.
fn write_bundle(paths: &Paths, ssl_cert_file: Option<&Path>) -> Result<Option<PathBuf>> {
    let cas = remembered_cas(paths)?;
    if cas.is_empty() {
        return Ok(None);
    }
    let roots_text = match system_roots(ssl_cert_file, Path::exists) {
        Some(path) => fsx::read_required(&path)?,
        None => {
            crate::ui::warn(
                "no system CA bundle found (SSL_CERT_FILE unset, no /etc/ssl/certs/ca-certificates.crt or the \
                 like): only the team CAs are trusted, so public registries will fail TLS; install ca-certificates",
            );
            String::new()
        }
    };
    let cas = cas
        .iter()
        .map(|ca| fsx::read_required(ca))
        .collect::<Result<Vec<_>>>()?;
    let text = bundle(&roots_text, &cas);
    let file = bundle_path(paths);
    // Without the registry lock (tools start while it is held): the file is replaced atomically,
    // and every writer writes the whole bundle it read.
    if fsx::read_optional(&file)?.as_deref() != Some(text.as_str()) {
        fsx::write_atomic(&file, text.as_bytes())?;
    }
    Ok(Some(file))
}

/// Before this process speaks to `address` (not the xtask's own registry): when any CA is
/// remembered in this checkout or forest, writes the bundle and makes it the trust of this
/// process and its tools. Returns the bundle. The first call decides for the whole run; a CA
/// remembered later counts from the next run on.
pub(crate) fn use_for(address: &Address) -> Result<Option<PathBuf>> {
    if let Some(active) = ACTIVE.get() {
        return Ok(Some(active.clone()));
    }
    let Some(file) = current_bundle()? else {
        return Ok(None);
    };
    activate(&file, address)?;
    Ok(Some(file))
}

/// The bundle of this checkout or forest, written now, when a CA is remembered there. A tool of
/// a run that trusts it already (`SSL_CERT_FILE` is that file) takes it as it is.
fn current_bundle() -> Result<Option<PathBuf>> {
    let paths = Paths::current(&Owner::current());
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let file = bundle_path(&paths);
    if env.as_deref() == Some(file.as_path()) && file.is_file() {
        return Ok(Some(file));
    }
    write_bundle(&paths, env.as_deref())
}

/// The bundle the build tools get as `SSL_CERT_FILE`: the one this process trusts, or, when it
/// has spoken to no registry that needed one, the bundle of every CA remembered here all the
/// same, so that twoliter reaches a team registry that other kits of the variant come from.
pub(crate) fn for_tools() -> Option<PathBuf> {
    static FOR_TOOLS: OnceLock<Option<PathBuf>> = OnceLock::new();
    if let Some(active) = ACTIVE.get() {
        return Some(active.clone());
    }
    FOR_TOOLS
        .get_or_init(|| {
            current_bundle().unwrap_or_else(|err| {
                crate::ui::warn(format!("the team CAs are not passed on to the tools: {err:#}"));
                None
            })
        })
        .clone()
}

/// Makes `bundle` this process's `SSL_CERT_FILE`. The one place the xtask sets an environment
/// variable of its own process: every HTTPS request reads it, so it must happen before the first
/// one, and only once.
fn activate(bundle: &Path, address: &Address) -> Result<()> {
    if HTTPS_USED.load(Ordering::SeqCst) {
        bail!(
            "the team CAs cannot be trusted for {address} after this run has spoken HTTPS already: run the \
             command again"
        );
    }
    std::env::set_var("SSL_CERT_FILE", bundle);
    let _ = ACTIVE.set(bundle.to_path_buf());
    Ok(())
}

/// Called by the client before each HTTPS request.
pub(crate) fn note_https() {
    HTTPS_USED.store(true, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_roots_as_openssl_probe_finds_them() {
        let exists = |p: &Path| p == Path::new("/etc/pki/tls/certs/ca-bundle.crt") || p == Path::new("/mine.pem");
        assert_eq!(
            system_roots(None, exists).unwrap(),
            Path::new("/etc/pki/tls/certs/ca-bundle.crt")
        );
        assert_eq!(
            system_roots(Some(Path::new("/mine.pem")), exists).unwrap(),
            Path::new("/mine.pem")
        );
        // SSL_CERT_FILE naming a missing file: the distro bundle, as openssl-probe does.
        assert_eq!(
            system_roots(Some(Path::new("/gone.pem")), exists).unwrap(),
            Path::new("/etc/pki/tls/certs/ca-bundle.crt")
        );
        assert_eq!(system_roots(None, |_| false), None);
    }

    #[test]
    fn bundle_keeps_the_system_roots() {
        let roots = "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n";
        let ca = "-----BEGIN CERTIFICATE-----\nteam\n-----END CERTIFICATE-----".to_string();
        let other = "-----BEGIN CERTIFICATE-----\nother\n-----END CERTIFICATE-----\n\n".to_string();
        let b = bundle(roots, &[ca.clone(), other]);
        assert_eq!(
            b,
            format!("{roots}{ca}\n-----BEGIN CERTIFICATE-----\nother\n-----END CERTIFICATE-----\n")
        );
        assert_eq!(bundle("", std::slice::from_ref(&ca)), format!("{ca}\n"));
        let ca = ca.as_str();
        assert!(check_pem(ca).is_ok());
        assert!(check_pem("not a cert").unwrap_err().to_string().contains("PEM"));
    }

    /// Two team registries, each with a CA of its own, remembered for each: the one bundle of a
    /// run trusts both (through the real curl), and the system roots stay in it.
    #[test]
    fn one_bundle_trusts_every_remembered_ca() {
        use crate::registry::http::{send_curl_trusting, test_server::HttpsStub, Kind, Request};
        let (a, b) = (HttpsStub::start(), HttpsStub::start());
        let state = tempfile::tempdir().unwrap();
        let paths = Paths {
            dir: state.path().to_path_buf(),
        };
        assert_eq!(write_bundle(&paths, None).unwrap(), None, "no CA remembered, no bundle");
        let address = |stub: &HttpsStub| Address::parse(&format!("localhost:{}/team", stub.port)).unwrap();
        let get = |stub: &HttpsStub, bundle: &Path| {
            let request = Request::get(format!("https://localhost:{}/v2/", stub.port), 5);
            send_curl_trusting(&request, Some(&bundle.display().to_string()))
        };

        remember_in(&paths, &address(&a), Path::new(&a.cert())).unwrap();
        let only_a = write_bundle(&paths, None).unwrap().unwrap();
        assert_eq!(get(&a, &only_a).unwrap().status_code, 200);
        assert_eq!(get(&b, &only_a).unwrap_err().kind, Kind::Certificate);

        remember_in(&paths, &address(&b), Path::new(&b.cert())).unwrap();
        let both = write_bundle(&paths, None).unwrap().unwrap();
        assert_eq!(both, only_a, "one bundle, rewritten");
        assert_eq!(get(&a, &both).unwrap().status_code, 200);
        assert_eq!(get(&b, &both).unwrap().status_code, 200);

        let text = std::fs::read_to_string(&both).unwrap();
        if let Some(roots) = system_roots(None, Path::exists) {
            assert!(text.starts_with(std::fs::read_to_string(roots).unwrap().trim_end()));
        }
        for stub in [&a, &b] {
            assert!(text.contains(std::fs::read_to_string(stub.cert()).unwrap().trim_end()));
        }
    }
}
