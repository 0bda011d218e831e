//! smolvm microVMs: agent sandboxes (`cargo xtask sandbox …`) and builds re-run inside a Linux
//! machine (`--in-vm`). `argv` decides every command line, `limits` checks what smolvm would
//! refuse, `preflight` checks the engine, `provision` prepares what goes into a sandbox; `Smolvm`
//! here is the one runner.

pub(crate) mod argv;
pub(crate) mod limits;
pub(crate) mod preflight;
pub(crate) mod provision;

use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use semver::Version;
use xshell::Shell;

pub(crate) use provision::{up, UpOptions};

use crate::ui;
use argv::{CreateSpec, Network};

/// The image of sandboxes and of the `--in-vm` build machine unless another is given: Debian
/// bookworm (through `buildpack-deps`) with git, tar, bash, curl, make, a C toolchain, apt, and
/// stable Rust (cargo, rustc, rustup), so an agent can clone, build and run `cargo xtask` in it.
/// No Docker and no Node.js. smolvm's own default, a bare Alpine root filesystem with busybox,
/// has no git and no Rust; this one is pulled inside the machine, which needs the network.
pub(crate) const DEFAULT_IMAGE: &str = "docker.io/library/rust:1-bookworm";

/// Where the engine is and how patient to be with it (from the command line or environment).
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    /// The binary, when not `smolvm` on PATH.
    pub(crate) bin: Option<PathBuf>,
    /// Checked on Linux before smolvm runs.
    pub(crate) kvm_device: PathBuf,
    /// How long `start` may take before `exec` answers.
    pub(crate) ready: Duration,
}

/// The engine, found and checked by [`Smolvm::preflight`].
#[derive(Debug)]
pub(crate) struct Smolvm {
    bin: PathBuf,
    pub(crate) version: Version,
    ready: Duration,
}

/// Polls `probe` with a doubling delay (100 ms up to 2 s) until it succeeds or `deadline`
/// passes; the number of probes, or the last failure.
fn poll(deadline: Duration, mut probe: impl FnMut() -> Result<()>) -> Result<u32> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match probe() {
            Ok(()) => return Ok(attempts),
            Err(last) if start.elapsed() + delay > deadline => return Err(last),
            Err(_) => {}
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

fn describe(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr);
    let text = text.trim();
    if text.is_empty() {
        output.status.to_string()
    } else {
        format!("{} ({})", text.lines().last().unwrap_or(text), output.status)
    }
}

/// The exit code of a streamed child, passed through (a signal becomes a plain failure).
pub(crate) fn exit_code(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(code) => ExitCode::from(code.clamp(0, 255) as u8),
        None => ExitCode::FAILURE,
    }
}

impl Smolvm {
    /// The binary from `$SMOLVM` or PATH; on Linux a usable KVM device; `--version` printing
    /// `smolvm X.Y.Z` with X.Y.Z ≥ 1.9.0.
    pub(crate) fn preflight(sh: &Shell, engine: &Engine) -> Result<Smolvm> {
        let bin = preflight::find_binary(engine.bin.as_deref())?;
        if cfg!(target_os = "linux") {
            preflight::check_kvm(&engine.kvm_device)?;
        }
        let output = sh
            .cmd(&bin)
            .args(argv::version())
            .ignore_status()
            .quiet()
            .output()
            .with_context(|| format!("cannot run {} --version: {}", bin.display(), preflight::INSTALL_REMEDY))?;
        let printed = if output.status.success() {
            &output.stdout
        } else {
            &output.stderr
        };
        let version = preflight::parse_version(&bin, &String::from_utf8_lossy(printed))?;
        Ok(Smolvm {
            bin,
            version,
            ready: engine.ready,
        })
    }

    /// Runs one smolvm argv, captured; fails with its stderr unless it succeeds.
    pub(crate) fn run(&self, sh: &Shell, argv: &[String]) -> Result<String> {
        crate::process::read(sh.cmd(&self.bin).args(argv))
    }

    /// Runs one smolvm argv, captured, whatever its exit status.
    fn probe(&self, sh: &Shell, argv: &[String]) -> Result<Output> {
        sh.cmd(&self.bin)
            .args(argv)
            .ignore_status()
            .quiet()
            .output()
            .with_context(|| format!("cannot run {}", self.bin.display()))
    }

    /// Runs one smolvm argv with our stdin, stdout and stderr, and passes its exit code through.
    pub(crate) fn stream(&self, argv: &[String]) -> Result<ExitCode> {
        let status = std::process::Command::new(&self.bin)
            .args(argv)
            .status()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        Ok(exit_code(status))
    }

    /// The machine's `status --json` document, or `None` when no machine has that name.
    pub(crate) fn status(&self, sh: &Shell, name: &str) -> Result<Option<serde_json::Value>> {
        let output = self.probe(sh, &argv::status(name))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.to_lowercase().contains("not found") {
                return Ok(None);
            }
            bail!("`smolvm machine status --name {name}` failed: {}", describe(&output));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let value = serde_json::from_str(text.trim())
            .with_context(|| format!("`smolvm machine status --name {name} --json` printed no JSON: {text}"))?;
        Ok(Some(value))
    }

    /// Creates the machine unless it exists, starts it and waits until `exec` answers.
    /// Returns whether it was created.
    pub(crate) fn ensure_running(&self, sh: &Shell, spec: &CreateSpec) -> Result<bool> {
        let create = argv::create(spec)?;
        let created = self.status(sh, &spec.name)?.is_none();
        if created {
            ui::step(format!("creating machine {}", spec.name));
            self.run(sh, &create)
                .with_context(|| format!("cannot create machine {}", spec.name))?;
        }
        ui::step(format!("starting machine {}", spec.name));
        self.run(sh, &argv::start(&spec.name)).with_context(|| {
            format!(
                "cannot start machine {0}: see `smolvm machine status --name {0} --json`",
                spec.name
            )
        })?;
        self.wait_ready(sh, &spec.name)?;
        Ok(created)
    }

    /// Right after `start` the guest agent may not answer yet: poll `exec -- true`.
    pub(crate) fn wait_ready(&self, sh: &Shell, name: &str) -> Result<()> {
        let deadline = self.ready;
        let probe = argv::ready_probe(name, Duration::from_secs(10));
        let started = Instant::now();
        match poll(deadline, || match self.probe(sh, &probe)? {
            output if output.status.success() => Ok(()),
            output => bail!("{}", describe(&output)),
        }) {
            Ok(attempts) => {
                ui::info(format!(
                    "{name} answers (after {attempts} probes, {})",
                    ui::duration(started.elapsed())
                ));
                Ok(())
            }
            Err(last) => bail!(
                "machine {name} does not answer `exec` {}s after start (last: {last:#}): retry, or \
                 recreate it with `cargo xtask sandbox down --name {name}`",
                deadline.as_secs()
            ),
        }
    }

    /// Starts dockerd in the build machine unless Docker already answers, and waits for it.
    fn ensure_docker(&self, sh: &Shell, name: &str) -> Result<()> {
        let probe = argv::docker_probe(name);
        let answers = || match self.probe(sh, &probe)? {
            output if output.status.success() => Ok(()),
            output => bail!("{}", describe(&output)),
        };
        if answers().is_ok() {
            return Ok(());
        }
        ui::step(format!(
            "starting dockerd in {name} (data in {})",
            argv::GUEST_DOCKER_ROOT
        ));
        self.run(sh, &argv::docker_install(name))
            .with_context(|| format!("cannot install Docker in {name}"))?;
        self.run(sh, &argv::docker_start(name))
            .with_context(|| format!("cannot start dockerd in {name}"))?;
        if let Err(last) = poll(self.ready, answers) {
            bail!(
                "Docker does not answer in machine {name} (last: {last:#}): read \
                 `cargo xtask sandbox exec --name {name} -- cat /var/log/dockerd.log`; the image \
                 (--vm-image) must provide Docker Engine, cargo, git and make"
            );
        }
        Ok(())
    }
}

/// Held while a machine is created, started and provisioned, so that two xtask processes do
/// not race on one machine (smolvm machine names are per user, hence the system temp dir).
pub(crate) fn lock_machine(name: &str) -> Result<crate::fsx::Lock> {
    limits::check_name(name)?;
    let path = std::env::temp_dir().join(format!("xtask-smolvm-{name}.lock"));
    crate::fsx::Lock::acquire(&path, Duration::from_secs(600))
}

/// One build machine per checkout (and forest), since both are mounted when the machine is
/// created.
pub(crate) fn build_machine_name(root: &Path, forest: Option<&Path>) -> String {
    use hmac_sha256::Hash as Sha256;
    let mut hasher = Sha256::new();
    hasher.update(root.as_os_str().as_encoded_bytes());
    if let Some(forest) = forest {
        hasher.update(b"\0");
        hasher.update(forest.as_os_str().as_encoded_bytes());
    }
    format!("xtask-build-{}", &crate::fsx::hex(&hasher.finalize())[..8])
}

/// The build machine: the checkout at `/workspace` and `$FOREST_ROOT` at `/forest` (writable:
/// builds write `build/` and `planning/` there), a storage disk for Docker and cargo, and the
/// network for the image pull and twoliter's fetches, through a virtio-net device as smolvm's
/// docker-in-VM example has it (Docker's bridge networking under the default TSI is unproven).
pub(crate) fn build_machine_spec(root: &Path, forest: Option<&Path>, image: &str, cpus: u8) -> CreateSpec {
    let mount = |host: &Path, guest: &str| argv::Volume {
        host: host.to_path_buf(),
        guest: guest.into(),
        read_only: false,
    };
    let mut volumes = vec![mount(root, argv::GUEST_WORKSPACE)];
    volumes.extend(forest.map(|forest| mount(forest, argv::GUEST_FOREST)));
    CreateSpec {
        name: build_machine_name(root, forest),
        image: Some(image.to_string()),
        cpus: Some(cpus),
        mem_mib: Some(8192),
        storage_gib: Some(100),
        net: Network::VirtioNet,
        volumes,
    }
}

/// Re-runs `cargo xtask XTASK_ARGS…` inside this checkout's persistent Linux build machine
/// (created on first use, Docker started on its storage disk, the checkout at `/workspace`,
/// `$FOREST_ROOT` at `/forest`), streaming its output and passing its exit code through.
/// Opt-in and unverified on real hardware. `xtask_args` is the command line without `--in-vm`;
/// host paths in it are not translated, so repos are best found through the checkout or
/// `$FOREST_ROOT`.
pub(crate) fn run_in_vm(sh: &Shell, engine: &Engine, image: &str, xtask_args: &[String]) -> Result<ExitCode> {
    let root = crate::project::root();
    let forest = crate::project::forest_root();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4);
    let cpus = limits::clamp_cpus(cores, &format!("this host has {cores} cores"));
    let spec = build_machine_spec(&root, forest.as_deref(), image, cpus.count);
    // Checked before anything runs: the mounts' host paths, and everything smolvm checks.
    let unmountable = "the checkout or $FOREST_ROOT cannot be mounted into the build machine";
    argv::create(&spec).context(unmountable)?;
    for volume in &spec.volumes {
        limits::mount_source(&volume.host).context(unmountable)?;
    }
    let vm = Smolvm::preflight(sh, engine)?;
    ui::step(format!(
        "running in build machine {} with smolvm {} (--in-vm is unverified on real hardware)",
        spec.name, vm.version
    ));
    {
        let _lock = lock_machine(&spec.name)?;
        if let Some(note) = cpus.note {
            ui::info(note);
        }
        vm.ensure_running(sh, &spec)?;
        vm.ensure_docker(sh, &spec.name)?;
    }
    ui::step(format!(
        "cargo xtask {} (in {}:{})",
        xtask_args.join(" "),
        spec.name,
        argv::GUEST_WORKSPACE
    ));
    vm.stream(&argv::in_vm_build(&spec.name, forest.is_some(), xtask_args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_backs_off_and_gives_up() {
        let mut calls = 0;
        let attempts = poll(Duration::from_secs(5), || {
            calls += 1;
            if calls < 3 {
                bail!("not ready {calls}")
            } else {
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(attempts, 3);
        let last = poll(Duration::from_millis(250), || bail!("never")).unwrap_err();
        assert_eq!(last.to_string(), "never");
    }

    #[test]
    fn build_machine_is_per_checkout() {
        let a = build_machine_spec(Path::new("/src/a"), None, DEFAULT_IMAGE, 16);
        let b = build_machine_spec(Path::new("/src/b"), None, "img", 2);
        let c = build_machine_spec(Path::new("/src/a"), Some(Path::new("/forest")), DEFAULT_IMAGE, 16);
        assert_ne!(a.name, c.name, "a forest gets its own machine");
        assert_eq!(c.volumes.len(), 2);
        assert!(argv::create(&c)
            .unwrap()
            .windows(2)
            .any(|w| w == ["-v", "/forest:/forest"]));
        assert_ne!(a.name, b.name);
        assert!(a.name.starts_with("xtask-build-") && a.name.len() == "xtask-build-".len() + 8);
        assert_eq!(a.image.as_deref(), Some(DEFAULT_IMAGE));
        assert_eq!(b.image.as_deref(), Some("img"));
        let create = argv::create(&a).unwrap();
        assert!(
            create.windows(2).any(|w| w == ["-v", "/src/a:/workspace"]),
            "{create:?}"
        );
        assert!(create.contains(&"--storage".to_string()));
        assert!(
            create.windows(3).any(|w| w == ["--net", "--net-backend", "virtio-net"]),
            "Docker in the machine gets a virtio-net device: {create:?}"
        );
        assert!(create.windows(2).any(|w| w == ["--cpus", "16"]), "{create:?}");
    }
}
