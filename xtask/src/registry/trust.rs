//! Trusting a team registry's own CA. A CA file given once (`--ca-file`) is remembered per
//! registry address in the registry state directory of the checkout or forest; each use builds
//! an `SSL_CERT_FILE` bundle of the system's roots plus that CA, never the CA alone: the same
//! processes fetch the SDK and upstream kits from public.ecr.aws.
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

/// Pure: the system roots followed by the team CA.
pub(crate) fn bundle(system_roots: &str, ca: &str) -> String {
    let mut out = system_roots.trim_end().to_string();
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(ca.trim_end());
    out.push('\n');
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

fn bundle_path(paths: &Paths, address: &Address) -> PathBuf {
    dir(paths).join(format!("{}.bundle.pem", address.file_key()))
}

/// Remembers `ca_file` as the CA of `address` for this checkout or forest (a copy, written
/// atomically under the registry lock).
pub(crate) fn remember(address: &Address, ca_file: &Path) -> Result<()> {
    let text = fsx::read_required(ca_file)?;
    check_pem(&text).with_context(|| format!("--ca-file {}", ca_file.display()))?;
    let owner = Owner::current();
    let paths = Paths::current(&owner);
    state::ignore_forest_dir(&owner)?;
    let _lock = state::lock(&paths)?;
    let path = ca_path(&paths, address);
    if fsx::read_optional(&path)?.as_deref() != Some(text.as_str()) {
        fs_err::create_dir_all(dir(&paths))?;
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

/// When a CA is remembered for `address`: writes the bundle (system roots + CA) and makes it the
/// trust of this process and its tools. Returns the bundle.
pub(crate) fn use_for(address: &Address) -> Result<Option<PathBuf>> {
    let Some(ca) = remembered(address) else {
        return Ok(None);
    };
    let paths = Paths::current(&Owner::current());
    let bundle_file = bundle_path(&paths, address);
    if ACTIVE.get() == Some(&bundle_file) {
        return Ok(Some(bundle_file));
    }
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let roots = system_roots(env.as_deref(), Path::exists);
    let roots_text = match &roots {
        Some(path) => fsx::read_required(path)?,
        None => {
            crate::ui::warn(
                "no system CA bundle found (SSL_CERT_FILE unset, no /etc/ssl/certs/ca-certificates.crt or the \
                 like): only the team CA is trusted, so public registries will fail TLS; install ca-certificates",
            );
            String::new()
        }
    };
    let text = bundle(&roots_text, &fsx::read_required(&ca)?);
    let _lock = state::lock(&paths)?;
    if fsx::read_optional(&bundle_file)?.as_deref() != Some(text.as_str()) {
        fsx::write_atomic(&bundle_file, text.as_bytes())?;
    }
    activate(&bundle_file, address)?;
    Ok(Some(bundle_file))
}

/// Makes `bundle` this process's `SSL_CERT_FILE`. The one place the xtask sets an environment
/// variable of its own process: every HTTPS request reads it, so it must happen before the first
/// one, and only once.
fn activate(bundle: &Path, address: &Address) -> Result<()> {
    if let Some(active) = ACTIVE.get() {
        if active != bundle {
            bail!(
                "this run already trusts {} and cannot also trust the CA remembered for {address}: run one \
                 registry's work per command",
                active.display()
            );
        }
        return Ok(());
    }
    if HTTPS_USED.load(Ordering::SeqCst) {
        bail!(
            "the CA remembered for {address} cannot be trusted after this run has spoken HTTPS already: \
             run the command again"
        );
    }
    std::env::set_var("SSL_CERT_FILE", bundle);
    let _ = ACTIVE.set(bundle.to_path_buf());
    Ok(())
}

/// The bundle this process trusts, for the tools it runs.
pub(crate) fn active() -> Option<&'static Path> {
    ACTIVE.get().map(PathBuf::as_path)
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
        let ca = "-----BEGIN CERTIFICATE-----\nteam\n-----END CERTIFICATE-----";
        let b = bundle(roots, ca);
        assert!(b.starts_with(roots));
        assert!(b.ends_with("team\n-----END CERTIFICATE-----\n"));
        assert_eq!(bundle("", ca), format!("{ca}\n"));
        assert!(check_pem(ca).is_ok());
        assert!(check_pem("not a cert").unwrap_err().to_string().contains("PEM"));
    }
}
