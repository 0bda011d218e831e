//! Before any smolvm call: the right program (an unrelated PyPI package installs a `smolvm`
//! command too), a supported version, and on Linux a usable `/dev/kvm`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use semver::Version;

pub(crate) const MIN_VERSION: Version = Version::new(1, 9, 0);

pub(crate) const INSTALL_REMEDY: &str = "install smolvm 1.9.0 or later from \
     https://github.com/smol-machines/smolvm, or set SMOLVM to its path";

/// `--smolvm` (`$SMOLVM`) when given, else `smolvm` on PATH.
pub(crate) fn find_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given.filter(|p| !p.as_os_str().is_empty()) {
        if !crate::tools::is_executable(path) {
            bail!(
                "--smolvm / SMOLVM={} is not an executable file: {INSTALL_REMEDY}",
                path.display()
            );
        }
        return Ok(path.to_path_buf());
    }
    crate::tools::require("smolvm", INSTALL_REMEDY)
}

/// Reads `smolvm --version` output: `smolvm X.Y.Z` (anything after the version is ignored).
pub(crate) fn parse_version(bin: &Path, output: &str) -> Result<Version> {
    let first = output.lines().next().unwrap_or("").trim();
    let mut words = first.split_whitespace();
    let (Some("smolvm"), Some(version)) = (words.next(), words.next()) else {
        bail!(
            "{} is another program called smolvm (its --version printed `{first}`, not `smolvm \
             X.Y.Z`), for example the unrelated PyPI package: uninstall it or put the real smolvm \
             first on PATH; {INSTALL_REMEDY}",
            bin.display()
        );
    };
    let version = Version::parse(version.trim_start_matches('v')).with_context(|| {
        format!(
            "{} printed `{first}`, whose version is not semver: {INSTALL_REMEDY}",
            bin.display()
        )
    })?;
    if version < MIN_VERSION {
        bail!(
            "{} is smolvm {version}, older than {MIN_VERSION}: {INSTALL_REMEDY}",
            bin.display()
        );
    }
    Ok(version)
}

/// smolvm on Linux needs read-write access to KVM.
pub(crate) fn check_kvm(device: &Path) -> Result<()> {
    match std::fs::OpenOptions::new().read(true).write(true).open(device) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} does not exist, and smolvm needs KVM on Linux: enable virtualization in the \
             firmware (or nested virtualization for a VM) and load the kvm module (`modprobe kvm_intel` \
             or `modprobe kvm_amd`)",
            device.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "{} is not usable by this user: add yourself to the kvm group (`sudo usermod -aG kvm \
             $USER`, then log in again)",
            device.display()
        ),
        Err(err) => Err(err).with_context(|| format!("cannot open {}, which smolvm needs", device.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(out: &str) -> Result<Version> {
        parse_version(Path::new("/bin/smolvm"), out)
    }

    #[test]
    fn versions() {
        assert_eq!(parse("smolvm 1.9.0\n").unwrap(), Version::new(1, 9, 0));
        assert_eq!(parse("smolvm 1.10.0").unwrap(), Version::new(1, 10, 0));
        assert_eq!(
            parse("smolvm v2.0.1 (abc123 2026-01-01)").unwrap(),
            Version::new(2, 0, 1)
        );
        let old = parse("smolvm 1.8.9").unwrap_err().to_string();
        assert!(
            old.contains("older than 1.9.0") && old.contains("install smolvm"),
            "{old}"
        );
        for other in ["smolvm-py 0.1", "usage: smolvm [-h]", ""] {
            let err = parse(other).unwrap_err().to_string();
            assert!(err.contains("another program called smolvm"), "{other}: {err}");
        }
        assert!(parse("smolvm one").unwrap_err().to_string().contains("not semver"));
    }

    #[test]
    fn kvm() {
        let dir = tempfile::tempdir().unwrap();
        let missing = check_kvm(&dir.path().join("kvm")).unwrap_err().to_string();
        assert!(
            missing.contains("does not exist") && missing.contains("modprobe"),
            "{missing}"
        );
        let device = dir.path().join("kvm-ok");
        fs_err::write(&device, "").unwrap();
        check_kvm(&device).unwrap();
    }

    #[test]
    fn smolvm_env_must_be_executable() {
        let err = find_binary(Some(Path::new("/nonexistent/smolvm")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SMOLVM=/nonexistent/smolvm") && err.contains("install smolvm"),
            "{err}"
        );
    }
}
