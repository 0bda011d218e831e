//! What this xtask's own test suite needs on the machine, each with the command that installs
//! it, and installing what is missing on Debian and Ubuntu. Deciding (which are missing, what to
//! install) is pure; probing and installing are thin.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::{tools, ui};

/// How a prerequisite is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// A program on PATH.
    Program(&'static str),
    /// `python3` that has `tomllib` (Python 3.11 or newer), which the stand-ins are written for.
    Python,
    /// A Docker daemon that answers `docker info`.
    DockerDaemon,
    /// The OpenSSH server, at `/usr/sbin/sshd` (off a non-root PATH on Debian) or on PATH.
    Sshd,
}

/// How a missing prerequisite is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Install {
    /// A Debian/Ubuntu package.
    Apt(&'static str),
    /// `cargo install --locked <crate>`.
    Cargo(&'static str),
    /// Not installable here; what to do instead.
    ByHand(&'static str),
}

impl Install {
    /// The command (or the instruction) that installs it.
    pub(crate) fn remedy(self) -> String {
        match self {
            Install::Apt(package) => format!("apt-get install {package}"),
            Install::Cargo(krate) => format!("cargo install --locked {krate}"),
            Install::ByHand(what) => what.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prerequisite {
    pub(crate) name: &'static str,
    /// What the tests use it for.
    pub(crate) why: &'static str,
    pub(crate) check: Check,
    pub(crate) install: Install,
}

const fn apt(name: &'static str, package: &'static str, why: &'static str) -> Prerequisite {
    Prerequisite {
        name,
        why,
        check: Check::Program(name),
        install: Install::Apt(package),
    }
}

/// Everything the test suite runs, in the order it is checked.
pub(crate) const ALL: [Prerequisite; 18] = [
    Prerequisite {
        name: "cargo-nextest",
        why: "running the suite",
        check: Check::Program("cargo-nextest"),
        install: Install::Cargo("cargo-nextest"),
    },
    apt("git", "git", "the fixture repos and build ids"),
    apt("make", "make", "the kit repos' Makefile"),
    apt("gcc", "gcc", "liblz4's C code, which lz4-sys compiles"),
    Prerequisite {
        name: "python3",
        why: "the twoliter, cargo-make and smolvm stand-ins, which need Python 3.11 or newer (tomllib)",
        check: Check::Python,
        install: Install::Apt("python3"),
    },
    apt(
        "docker-registry",
        "docker-registry",
        "the native registry backend and the test image",
    ),
    apt("lz4", "lz4", "checking LZ4 frames independently"),
    apt("sgdisk", "gdisk", "checking GPT disks independently"),
    apt("ss", "iproute2", "who holds a port"),
    apt(
        "openssl",
        "openssl",
        "the CA and server certificate of the TLS registry tests",
    ),
    apt("curl", "curl", "HTTPS to the TLS registry of the tests"),
    apt(
        "htpasswd",
        "apache2-utils",
        "the bcrypt password file of the TLS registry tests",
    ),
    apt("kill", "procps", "killing servers in the tests"),
    apt("docker", "docker.io", "the docker registry backend"),
    apt("ssh", "openssh-client", "the --on builds, which run over ssh"),
    apt("ssh-keygen", "openssh-client", "the keys of the test ssh server"),
    Prerequisite {
        name: "sshd",
        why: "the ssh server on 127.0.0.1 the --on tests build through",
        check: Check::Sshd,
        install: Install::Apt("openssh-server"),
    },
    Prerequisite {
        name: "Docker daemon",
        why: "the docker backend tests and the registry test image",
        check: Check::DockerDaemon,
        install: Install::ByHand(
            "start the Docker daemon (`systemctl start docker`, or `dockerd &` where there is no systemd)",
        ),
    },
];

/// Pure: the prerequisites `present` says are missing.
pub(crate) fn missing(all: &[Prerequisite], present: impl Fn(Check) -> bool) -> Vec<Prerequisite> {
    all.iter().copied().filter(|p| !present(p.check)).collect()
}

/// What installing the missing prerequisites takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct InstallPlan {
    pub(crate) apt: Vec<&'static str>,
    pub(crate) cargo: Vec<&'static str>,
    /// Missing prerequisites no command installs.
    pub(crate) by_hand: Vec<Prerequisite>,
}

/// Pure: the packages and crates to install for `missing`, each once.
pub(crate) fn install_plan(missing: &[Prerequisite]) -> InstallPlan {
    let mut plan = InstallPlan::default();
    for p in missing {
        match p.install {
            Install::Apt(package) if !plan.apt.contains(&package) => plan.apt.push(package),
            Install::Cargo(krate) if !plan.cargo.contains(&krate) => plan.cargo.push(krate),
            Install::ByHand(_) => plan.by_hand.push(*p),
            _ => {}
        }
    }
    plan
}

/// Pure: whether `/etc/os-release` says Debian, Ubuntu or a derivative of either.
pub(crate) fn is_debian_like(os_release: &str) -> bool {
    os_release.lines().any(|line| {
        let Some((key, value)) = line.split_once('=') else {
            return false;
        };
        (key == "ID" || key == "ID_LIKE")
            && value
                .trim_matches('"')
                .split_whitespace()
                .any(|id| id == "debian" || id == "ubuntu")
    })
}

/// Whether a prerequisite is on this machine.
pub(crate) fn present(check: Check) -> bool {
    match check {
        Check::Program(name) => tools::which(name).is_some(),
        Check::Python => quiet_success(Command::new("python3").args(["-c", "import tomllib"])),
        Check::DockerDaemon => crate::registry::docker_answers(),
        Check::Sshd => tools::is_executable(std::path::Path::new("/usr/sbin/sshd")) || tools::which("sshd").is_some(),
    }
}

fn quiet_success(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the plan's packages (apt-get, through sudo unless root) and crates. Refuses where
/// apt-get cannot be used, naming what to install by hand.
pub(crate) fn install(plan: &InstallPlan) -> Result<()> {
    if !plan.apt.is_empty() {
        let by_hand = format!("install them by hand: {}", plan.apt.join(", "));
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        if !is_debian_like(&os_release) {
            bail!("--install installs packages on Debian and Ubuntu only, which this machine is not; {by_hand}");
        }
        if tools::which("apt-get").is_none() {
            bail!("--install needs apt-get, which is not on PATH; {by_hand}");
        }
        let mut prefix = Vec::new();
        if !is_root() {
            if tools::which("sudo").is_none() {
                bail!("installing packages needs root, and sudo is not on PATH: run as root, or {by_hand}");
            }
            prefix.push("sudo");
        }
        let apt_get = |args: &[&str]| -> Result<()> {
            let mut argv: Vec<&str> = prefix.clone();
            argv.extend(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            argv.extend(args);
            ui::step(argv.join(" "));
            run(Command::new(argv[0]).args(&argv[1..]))
        };
        apt_get(&["update", "-qq"])?;
        let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
        args.extend(&plan.apt);
        apt_get(&args)?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for krate in &plan.cargo {
        ui::step(format!("cargo install --locked {krate}"));
        run(Command::new(&cargo).args(["install", "--locked", krate]))?;
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a command with its output on our stderr; fails unless it succeeds.
fn run(cmd: &mut Command) -> Result<()> {
    let stderr = std::io::stderr();
    let shown = format!("{cmd:?}");
    let status = cmd
        .stdin(Stdio::null())
        .stdout(std::os::fd::AsFd::as_fd(&stderr).try_clone_to_owned()?)
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ones_are_named_with_their_install_command() {
        let absent = ["docker-registry", "sgdisk", "cargo-nextest"];
        let absent_ones = missing(&ALL, |check| match check {
            Check::Program(name) => !absent.contains(&name),
            Check::Python | Check::Sshd => true,
            Check::DockerDaemon => false,
        });
        let named: Vec<(&str, String)> = absent_ones.iter().map(|p| (p.name, p.install.remedy())).collect();
        assert_eq!(
            named,
            [
                ("cargo-nextest", "cargo install --locked cargo-nextest".to_string()),
                ("docker-registry", "apt-get install docker-registry".to_string()),
                ("sgdisk", "apt-get install gdisk".to_string()),
                (
                    "Docker daemon",
                    "start the Docker daemon (`systemctl start docker`, or `dockerd &` where there is no \
                     systemd)"
                        .to_string()
                ),
            ]
        );
        let plan = install_plan(&absent_ones);
        assert_eq!(plan.apt, ["docker-registry", "gdisk"]);
        assert_eq!(plan.cargo, ["cargo-nextest"]);
        assert_eq!(
            plan.by_hand.iter().map(|p| p.name).collect::<Vec<_>>(),
            ["Docker daemon"]
        );
        assert!(missing(&ALL, |_| true).is_empty());
    }

    #[test]
    fn a_package_needed_twice_is_installed_once() {
        let twice = [apt("a", "pkg", ""), apt("b", "pkg", ""), apt("c", "other", "")];
        assert_eq!(install_plan(&twice).apt, ["pkg", "other"]);
    }

    #[test]
    fn debian_and_ubuntu_and_their_derivatives() {
        assert!(is_debian_like(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
        ));
        assert!(is_debian_like("ID=ubuntu\nID_LIKE=debian\n"));
        assert!(is_debian_like("ID=pop\nID_LIKE=\"ubuntu debian\"\n"));
        assert!(!is_debian_like("ID=fedora\nID_LIKE=\"rhel centos\"\n"));
        assert!(!is_debian_like("NAME=debian\n"));
        assert!(!is_debian_like(""));
    }
}
