//! What smolvm refuses, checked before it runs so that each limit fails with an error naming the
//! fix instead of smolvm's own halfway through `create` (rules read in smolvm 1.9.3's source).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// smolvm's longest machine name.
pub(crate) const MAX_NAME_LEN: usize = 128;
/// The vCPUs a machine runs with at most: smolvm takes up to 255 (a u8) but the hypervisor runs
/// no more than 16, and smolvm only warns.
pub(crate) const MAX_CPUS: u8 = 16;
/// The least memory smolvm boots a machine with.
pub(crate) const MIN_MEM_MIB: u32 = 64;

const NAME_RULE: &str = "smolvm takes letters, digits, `-` and `_`, starting with a letter or \
     digit, not ending with `-`, without `--`, at most 128 characters";

/// A machine name as smolvm accepts it. Such a name is also safe in `cp`'s `NAME:/path` and
/// as an argument (it cannot start with `-`).
pub(crate) fn check_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        "is empty".to_string()
    } else if name.len() > MAX_NAME_LEN {
        format!("is {} characters long", name.len())
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        "does not start with a letter or digit".to_string()
    } else if name.ends_with('-') {
        "ends with `-`".to_string()
    } else if name.contains("--") {
        "contains `--`".to_string()
    } else if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        format!("contains `{bad}`")
    } else {
        return Ok(());
    };
    bail!("machine name `{name}` {problem}: {NAME_RULE}; choose another with --name")
}

/// The vCPUs a machine is created with, and a note when fewer than asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cpus {
    pub(crate) count: u8,
    pub(crate) note: Option<String>,
}

/// A vCPU count asked for on the command line: 0 and anything smolvm cannot parse (256 and more)
/// are errors; above 16 it is clamped to 16, with a note.
pub(crate) fn cpus_flag(requested: u32) -> Result<Cpus> {
    if requested == 0 {
        bail!("--cpus 0: a machine needs at least 1 vCPU; give --cpus 1 to {MAX_CPUS}");
    }
    if requested > u32::from(u8::MAX) {
        bail!(
            "--cpus {requested}: smolvm takes at most 255, and runs at most {MAX_CPUS}; give \
             --cpus 1 to {MAX_CPUS}"
        );
    }
    Ok(clamp_cpus(requested as usize, &format!("--cpus {requested}")))
}

/// A vCPU count clamped to 1..=16, with a note (starting with `what`, which says where the count
/// came from) when clamped down. For a count taken from the host's cores, which smolvm would
/// refuse outright above 255.
pub(crate) fn clamp_cpus(wanted: usize, what: &str) -> Cpus {
    let count = wanted.clamp(1, usize::from(MAX_CPUS)) as u8;
    let note = (wanted > usize::from(MAX_CPUS))
        .then(|| format!("{what}, but smolvm runs a machine with at most {MAX_CPUS} vCPUs: using {MAX_CPUS}"));
    Cpus { count, note }
}

/// Memory asked for on the command line, in MiB.
pub(crate) fn check_mem(mib: u32) -> Result<()> {
    if mib < MIN_MEM_MIB {
        bail!(
            "--mem {mib}: smolvm needs at least {MIN_MEM_MIB} MiB to boot a machine; give --mem {MIN_MEM_MIB} or more"
        );
    }
    Ok(())
}

/// Host directories smolvm refuses to share with `-v`, as (path, whole subtree), for the host
/// it runs on. It compares the canonical source, so `/etc` on macOS is `/private/etc`.
pub(crate) const PROTECTED_LINUX: &[(&str, bool)] = &[
    ("/", false),
    ("/var", false),
    ("/var/run", true),
    ("/var/log", true),
    ("/etc", true),
    ("/boot", true),
    ("/usr", true),
    ("/bin", true),
    ("/sbin", true),
    ("/lib", true),
    ("/proc", true),
    ("/sys", true),
    ("/dev", true),
    ("/run", true),
];
pub(crate) const PROTECTED_MACOS: &[(&str, bool)] = &[
    ("/", false),
    ("/private/var", false),
    ("/private/var/run", true),
    ("/private/var/log", true),
    ("/private/etc", true),
    ("/usr", true),
    ("/bin", true),
    ("/sbin", true),
    ("/lib", true),
    ("/System", true),
    ("/Library", true),
];

/// The protected sources of this host's smolvm.
pub(crate) fn protected_sources() -> &'static [(&'static str, bool)] {
    if cfg!(target_os = "macos") {
        PROTECTED_MACOS
    } else {
        PROTECTED_LINUX
    }
}

/// Whether smolvm would refuse to mount the (canonical) host directory `source`.
pub(crate) fn check_mount_source(source: &Path, protected: &[(&str, bool)]) -> Result<()> {
    for (path, subtree) in protected {
        let path = Path::new(path);
        if source == path || (*subtree && source.starts_with(path)) {
            let how = if source == path { "is" } else { "is under" };
            bail!(
                "{} {how} {}, a system directory smolvm refuses to mount into a machine: use a \
                 directory elsewhere (for example under your home directory)",
                source.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// A host directory for `-v`, checked as smolvm checks it: it exists, is a directory, and its
/// canonical path is not protected. Returns the canonical path.
pub(crate) fn mount_source(host: &Path) -> Result<PathBuf> {
    let canonical = fs_err::canonicalize(host).context("a directory shared with a machine must exist")?;
    if !canonical.is_dir() {
        bail!(
            "{} is not a directory, and smolvm shares only directories with a machine",
            host.display()
        );
    }
    check_mount_source(&canonical, protected_sources())?;
    Ok(canonical)
}

/// Guest paths of `-v` must be absolute and distinct.
pub(crate) fn check_mount_targets<'a>(targets: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = Vec::new();
    for target in targets {
        if !target.starts_with('/') {
            bail!("guest path `{target}` of a shared directory is not absolute");
        }
        if seen.contains(&target) {
            bail!("two directories are shared at the same guest path {target}");
        }
        seen.push(target);
    }
    Ok(())
}

/// Whether smolvm pulls `image` from a registry (inside the machine, which then needs the
/// network), as opposed to a local `docker save` archive (`-`, `*.tar`, `*.tar.gz`, `*.tgz`) or
/// a root filesystem directory (a path starting with `/`, `./` or `../`).
pub(crate) fn is_pulled(image: &str) -> bool {
    let local = image == "-"
        || ["/", "./", "../"].iter().any(|prefix| image.starts_with(prefix))
        || [".tar", ".tar.gz", ".tgz"].iter().any(|suffix| image.ends_with(suffix));
    !local
}

/// smolvm refuses to create a machine whose image must be pulled when it has no network.
pub(crate) fn check_network(image: &str, net: bool) -> Result<()> {
    if !net && is_pulled(image) {
        bail!(
            "image {image} is pulled from a registry, which needs the network: drop --no-net, or \
             give --image a local image (a `docker save` archive ending in .tar, or a root \
             filesystem directory as ./DIR or /DIR)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_smolvm() {
        for good in ["a", "xtask-agent", "my_vm", "123", "A-b_c-1", &"n".repeat(128)] {
            check_name(good).unwrap();
        }
        for (bad, problem) in [
            ("", "is empty"),
            (&"n".repeat(129), "is 129 characters long"),
            ("_vm", "does not start with a letter or digit"),
            ("-n", "does not start with a letter or digit"),
            ("vm-", "ends with `-`"),
            ("a--b", "contains `--`"),
            ("a:b", "contains `:`"),
            ("a/b", "contains `/`"),
            ("a.b", "contains `.`"),
            ("a b", "contains ` `"),
            ("é", "does not start with a letter or digit"),
        ] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(
                err.contains(problem) && err.contains("--name") && err.contains("at most 128"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn cpus_are_clamped_to_what_smolvm_runs() {
        assert_eq!(cpus_flag(1).unwrap(), Cpus { count: 1, note: None });
        assert_eq!(cpus_flag(16).unwrap(), Cpus { count: 16, note: None });
        for asked in [17, 255] {
            let cpus = cpus_flag(asked).unwrap();
            assert_eq!(cpus.count, 16);
            let note = cpus.note.unwrap();
            assert_eq!(
                note,
                format!("--cpus {asked}, but smolvm runs a machine with at most 16 vCPUs: using 16")
            );
        }
        for bad in [0, 256, 10_000] {
            let err = cpus_flag(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("--cpus {bad}")) && err.contains("give --cpus 1 to 16"),
                "{err}"
            );
        }
        assert_eq!(clamp_cpus(0, "host").count, 1);
        assert_eq!(clamp_cpus(8, "host"), Cpus { count: 8, note: None });
        let many = clamp_cpus(512, "this host has 512 cores");
        assert_eq!(
            many.count, 16,
            "a host count smolvm would refuse is clamped, not passed on"
        );
        assert!(many
            .note
            .unwrap()
            .starts_with("this host has 512 cores, but smolvm runs"));
    }

    #[test]
    fn memory_has_a_floor() {
        check_mem(64).unwrap();
        check_mem(8192).unwrap();
        let err = check_mem(63).unwrap_err().to_string();
        assert!(err.contains("at least 64 MiB") && err.contains("--mem 64"), "{err}");
    }

    #[test]
    fn protected_mount_sources_are_refused() {
        let refused = |path: &str, list| check_mount_source(Path::new(path), list).is_err();
        for path in [
            "/",
            "/var",
            "/var/run",
            "/var/log/x",
            "/etc",
            "/etc/ssh",
            "/usr",
            "/usr/local/src",
            "/run/user/1000",
            "/boot/efi",
            "/proc/1",
            "/sys",
            "/dev/shm",
            "/bin",
            "/sbin/x",
            "/lib",
            "/lib/modules",
        ] {
            assert!(refused(path, PROTECTED_LINUX), "{path} is protected on Linux");
        }
        for path in [
            "/var/lib/src",
            "/home/me/src",
            "/tmp/x",
            "/lib64",
            "/usrx",
            "/srv",
            "/opt/src",
        ] {
            assert!(!refused(path, PROTECTED_LINUX), "{path} may be mounted on Linux");
        }
        for path in [
            "/",
            "/private/var",
            "/private/etc/hosts",
            "/System/Library",
            "/Library/x",
            "/usr/local",
        ] {
            assert!(refused(path, PROTECTED_MACOS), "{path} is protected on macOS");
        }
        for path in ["/Users/me/src", "/private/var/folders/x", "/private/tmp/x"] {
            assert!(!refused(path, PROTECTED_MACOS), "{path} may be mounted on macOS");
        }
        let err = check_mount_source(Path::new("/usr/local/src"), PROTECTED_LINUX)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/usr/local/src is under /usr") && err.contains("use a directory elsewhere"),
            "{err}"
        );
        let err = check_mount_source(Path::new("/var"), PROTECTED_LINUX)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/var is /var,"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn mount_sources_are_canonicalized_first() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("looks-harmless");
        std::os::unix::fs::symlink("/usr/share", &link).unwrap();
        let err = format!("{:#}", mount_source(&link).unwrap_err());
        assert!(err.contains("/usr/share is under /usr"), "{err}");
        let err = format!("{:#}", mount_source(&dir.path().join("missing")).unwrap_err());
        assert!(err.contains("must exist"), "{err}");
        let file = dir.path().join("file");
        fs_err::write(&file, "").unwrap();
        assert!(mount_source(&file).unwrap_err().to_string().contains("not a directory"));
        assert_eq!(
            mount_source(dir.path()).unwrap(),
            fs_err::canonicalize(dir.path()).unwrap()
        );
    }

    #[test]
    fn mount_targets_are_absolute_and_distinct() {
        check_mount_targets(["/workspace", "/forest"]).unwrap();
        assert!(check_mount_targets(["workspace"]).is_err());
        let err = check_mount_targets(["/w", "/w"]).unwrap_err().to_string();
        assert!(err.contains("same guest path /w"), "{err}");
    }

    #[test]
    fn registry_images_need_the_network() {
        for pulled in [
            "alpine",
            "docker.io/library/rust:1-bookworm",
            "ghcr.io/o/i@sha256:ab",
            "localhost:5000/x",
        ] {
            assert!(is_pulled(pulled), "{pulled}");
        }
        for local in [
            "-",
            "/images/rootfs",
            "./rootfs",
            "../img",
            "img.tar",
            "img.tar.gz",
            "img.tgz",
        ] {
            assert!(!is_pulled(local), "{local}");
        }
        check_network("alpine", true).unwrap();
        check_network("./rootfs", false).unwrap();
        let err = check_network("alpine", false).unwrap_err().to_string();
        assert!(
            err.contains("image alpine is pulled from a registry") && err.contains("drop --no-net"),
            "{err}"
        );
    }
}
