//! Every smolvm argv the xtask runs, built by pure functions; `Smolvm` in `mod.rs` only executes
//! them. Guest commands are argv arrays after `--`, never shell strings (the one exception starts
//! dockerd in the background, which needs a shell for `&` and the redirections).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::limits;

pub(crate) type Argv = Vec<String>;

/// Where `sandbox up` clones the checkout in the guest (on the machine's persistent disk).
pub(crate) const GUEST_CHECKOUT: &str = "/workspace/checkout";
/// Where the previous clone is kept when `sandbox up` runs again, so one generation of work
/// done in the guest survives a re-provisioning.
pub(crate) const GUEST_PREVIOUS_CHECKOUT: &str = "/workspace/checkout.previous";
/// Where the checkout bundle lands before the clone; removed right after it.
pub(crate) const GUEST_BUNDLE: &str = "/workspace/.xtask-checkout.bundle";
/// Where the skills tar lands before it is unpacked; removed right after it. Not under `/tmp`:
/// in an image machine each `exec` gets its own tmpfs there, and large uploads are written
/// outside the container's view, so an upload to `/tmp` is not seen by the next `exec`.
pub(crate) const GUEST_SKILLS_TAR: &str = "/workspace/.xtask-skills.tar";
/// The build machine's Docker data, on its storage disk.
pub(crate) const GUEST_DOCKER_ROOT: &str = "/storage/docker";
/// The build machine's cargo target dir: not the host's `target/`, which holds host binaries.
pub(crate) const GUEST_TARGET_DIR: &str = "/storage/target";
/// Where the build machine sees the host checkout.
pub(crate) const GUEST_WORKSPACE: &str = "/workspace";
/// Where the build machine sees `$FOREST_ROOT`, when it is set.
pub(crate) const GUEST_FOREST: &str = "/forest";

fn strings(items: &[&str]) -> Argv {
    items.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn version() -> Argv {
    strings(&["--version"])
}

/// A host path as smolvm takes it: UTF-8, and without `:`, which `cp` would read as
/// `MACHINE:/guest/path` and `-v` as the separator.
pub(crate) fn host_path(path: &Path) -> Result<&str> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8: smolvm cannot take it", path.display()))?;
    if text.contains(':') {
        bail!(
            "host path {text} contains `:`, which smolvm would read as MACHINE:PATH: move or \
             rename it to a path without `:`"
        );
    }
    Ok(text)
}

/// A directory shared with the guest (`-v HOST:GUEST[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Volume {
    pub(crate) host: PathBuf,
    pub(crate) guest: String,
    pub(crate) read_only: bool,
}

/// The network a machine gets (smolvm gives none unless asked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Network {
    #[default]
    Off,
    /// `--net`: outbound through smolvm's default backend (TSI): image pulls, git, package
    /// installs.
    Outbound,
    /// `--net --net-backend virtio-net`: a network device in the guest, as smolvm's own
    /// docker-in-VM example uses, for Docker's bridge networking.
    VirtioNet,
}

/// What `machine create` is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CreateSpec {
    pub(crate) name: String,
    pub(crate) image: Option<String>,
    pub(crate) cpus: Option<u8>,
    pub(crate) mem_mib: Option<u32>,
    pub(crate) storage_gib: Option<u32>,
    pub(crate) net: Network,
    pub(crate) volumes: Vec<Volume>,
}

/// `machine create`, after the checks smolvm would make on the spec itself (the name, the
/// network a registry image needs, the guest paths of mounts; host paths are checked by
/// [`super::limits::mount_source`], which reads the file system).
pub(crate) fn create(spec: &CreateSpec) -> Result<Argv> {
    limits::check_name(&spec.name)?;
    if let Some(image) = &spec.image {
        limits::check_network(image, spec.net != Network::Off)?;
    }
    limits::check_mount_targets(spec.volumes.iter().map(|v| v.guest.as_str()))?;
    let mut argv = strings(&["machine", "create", "--name", &spec.name]);
    if let Some(image) = &spec.image {
        argv.extend(["--image".into(), image.clone()]);
    }
    if let Some(cpus) = spec.cpus {
        argv.extend(["--cpus".into(), cpus.to_string()]);
    }
    if let Some(mem) = spec.mem_mib {
        argv.extend(["--mem".into(), mem.to_string()]);
    }
    if let Some(storage) = spec.storage_gib {
        argv.extend(["--storage".into(), storage.to_string()]);
    }
    match spec.net {
        Network::Off => {}
        Network::Outbound => argv.push("--net".into()),
        Network::VirtioNet => argv.extend(strings(&["--net", "--net-backend", "virtio-net"])),
    }
    for volume in &spec.volumes {
        let host = host_path(&volume.host)?;
        let ro = if volume.read_only { ":ro" } else { "" };
        argv.extend(["-v".into(), format!("{host}:{}{ro}", volume.guest)]);
    }
    Ok(argv)
}

pub(crate) fn start(name: &str) -> Argv {
    strings(&["machine", "start", "--name", name])
}

pub(crate) fn status(name: &str) -> Argv {
    strings(&["machine", "status", "--name", name, "--json"])
}

pub(crate) fn stop(name: &str) -> Argv {
    strings(&["machine", "stop", "--name", name])
}

/// `-f` always: without it smolvm prompts, and with no terminal it prints "Cancelled" and
/// exits 0 without deleting anything.
pub(crate) fn delete(name: &str) -> Argv {
    strings(&["machine", "delete", "--name", name, "-f"])
}

/// Options of `machine exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExecOpts {
    /// Output as it comes (without it smolvm holds everything until the command exits).
    pub(crate) stream: bool,
    pub(crate) workdir: Option<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
}

impl ExecOpts {
    pub(crate) fn streamed() -> ExecOpts {
        ExecOpts {
            stream: true,
            ..ExecOpts::default()
        }
    }
}

/// `machine exec --name N [opts] -- GUEST…`: only the long `--name` is accepted, and the guest
/// argv always follows `--` so its own flags are never read as smolvm's.
pub(crate) fn exec(name: &str, opts: &ExecOpts, guest: &[String]) -> Argv {
    let mut argv = strings(&["machine", "exec", "--name", name]);
    if opts.stream {
        argv.push("--stream".into());
    }
    if let Some(dir) = &opts.workdir {
        argv.extend(["-w".into(), dir.clone()]);
    }
    for (key, value) in &opts.env {
        argv.extend(["-e".into(), format!("{key}={value}")]);
    }
    if let Some(timeout) = opts.timeout {
        argv.extend(["--timeout".into(), timeout_arg(timeout)]);
    }
    argv.push("--".into());
    argv.extend(guest.iter().cloned());
    argv
}

/// `--timeout`'s value: smolvm refuses a bare number (it needs a unit) and zero, so whole
/// seconds, at least one, with the unit.
pub(crate) fn timeout_arg(timeout: Duration) -> String {
    format!("{}s", timeout.as_secs().max(1))
}

fn exec_plain(name: &str, guest: &[&str]) -> Argv {
    exec(name, &ExecOpts::default(), &strings(guest))
}

/// Uploads one regular file (smolvm's `cp` refuses directories).
pub(crate) fn upload(host: &Path, name: &str, guest: &str) -> Result<Argv> {
    let host = host_path(host)?;
    Ok(vec![
        "machine".into(),
        "cp".into(),
        host.into(),
        format!("{name}:{guest}"),
    ])
}

/// The probe polled after `start` until the guest agent answers.
pub(crate) fn ready_probe(name: &str, timeout: Duration) -> Argv {
    exec(
        name,
        &ExecOpts {
            timeout: Some(timeout),
            ..ExecOpts::default()
        },
        &strings(&["true"]),
    )
}

/// Whether the guest has git, which `sandbox up` needs to clone the checkout.
pub(crate) fn git_probe(name: &str) -> Argv {
    exec_plain(name, &["git", "--version"])
}

/// A skills directory in the guest: absolute, and never `/` or containing `..`, since each
/// skill's old copy under it is removed with `rm -rf`.
pub(crate) fn check_guest_dir(dir: &str) -> Result<()> {
    let trimmed = dir.trim_end_matches('/');
    if !dir.starts_with('/') || trimmed.is_empty() || dir.split('/').any(|c| c == "..") {
        bail!("guest skills directory `{dir}` must be an absolute path other than `/`, without `..`");
    }
    Ok(())
}

/// What `sandbox up` puts in a running machine.
#[derive(Debug)]
pub(crate) struct Provision<'a> {
    pub(crate) name: &'a str,
    /// `git bundle` of the checkout, on the host.
    pub(crate) bundle: &'a Path,
    /// One tar holding every skill directory at its top level, on the host.
    pub(crate) skills_tar: &'a Path,
    /// Skill names as they appear in the guest (the tar's top-level directories).
    pub(crate) skills: &'a [String],
    pub(crate) skills_dir: &'a str,
}

/// Every smolvm call that provisions a machine, in order: the checkout is replaced by a fresh
/// clone of the bundle (the previous clone moved to `checkout.previous`), each skill's old copy
/// is removed before the tar is unpacked, and the uploaded files (both under `/workspace`) are
/// removed from the guest afterwards.
pub(crate) fn provision(p: &Provision<'_>) -> Result<Vec<Argv>> {
    limits::check_name(p.name)?;
    check_guest_dir(p.skills_dir)?;
    let dir = p.skills_dir.trim_end_matches('/');
    let mut steps = vec![
        exec_plain(p.name, &["mkdir", "-p", "/workspace", dir, GUEST_CHECKOUT]),
        upload(p.bundle, p.name, GUEST_BUNDLE)?,
        exec_plain(p.name, &["rm", "-rf", GUEST_PREVIOUS_CHECKOUT]),
        exec_plain(p.name, &["mv", GUEST_CHECKOUT, GUEST_PREVIOUS_CHECKOUT]),
        exec(
            p.name,
            &ExecOpts::streamed(),
            &strings(&["git", "clone", "--quiet", GUEST_BUNDLE, GUEST_CHECKOUT]),
        ),
        exec_plain(p.name, &["rm", "-f", GUEST_BUNDLE]),
    ];
    if !p.skills.is_empty() {
        let mut wipe = strings(&["rm", "-rf"]);
        for skill in p.skills {
            crate::project::check_identifier("skill", skill)?;
            wipe.push(format!("{dir}/{skill}"));
        }
        steps.push(exec(p.name, &ExecOpts::default(), &wipe));
        steps.push(upload(p.skills_tar, p.name, GUEST_SKILLS_TAR)?);
        steps.push(exec_plain(
            p.name,
            &["tar", "--no-same-owner", "-xf", GUEST_SKILLS_TAR, "-C", dir],
        ));
        steps.push(exec_plain(p.name, &["rm", "-f", GUEST_SKILLS_TAR]));
    }
    Ok(steps)
}

/// Whether Docker answers in the build machine.
pub(crate) fn docker_probe(name: &str) -> Argv {
    exec(
        name,
        &ExecOpts {
            timeout: Some(Duration::from_secs(30)),
            ..ExecOpts::default()
        },
        &strings(&["docker", "info", "--format", "{{.ServerVersion}}"]),
    )
}

/// Installs Docker Engine in a Debian-based image that lacks it (the default image does).
pub(crate) fn docker_install(name: &str) -> Argv {
    let script = "command -v dockerd >/dev/null 2>&1 || { apt-get update -qq && \
                  apt-get install -y -qq --no-install-recommends docker.io make git; }";
    exec(name, &ExecOpts::streamed(), &["sh".into(), "-c".into(), script.into()])
}

/// Starts dockerd in the background with its data on the storage disk.
pub(crate) fn docker_start(name: &str) -> Argv {
    let script = format!("nohup dockerd --data-root={GUEST_DOCKER_ROOT} >/var/log/dockerd.log 2>&1 &");
    exec(name, &ExecOpts::default(), &["sh".into(), "-c".into(), script])
}

/// `cargo xtask ARGS…` in the mounted checkout, streamed.
/// With `forest`, `FOREST_ROOT` points at its mount, so kit and variant repos found through
/// it resolve in the guest too.
pub(crate) fn in_vm_build(name: &str, forest: bool, xtask_args: &[String]) -> Argv {
    let mut env = vec![("CARGO_TARGET_DIR".to_string(), GUEST_TARGET_DIR.to_string())];
    if forest {
        env.push(("FOREST_ROOT".into(), GUEST_FOREST.into()));
    }
    let opts = ExecOpts {
        stream: true,
        workdir: Some(GUEST_WORKSPACE.into()),
        env,
        timeout: None,
    };
    let mut guest = strings(&["cargo", "xtask"]);
    guest.extend(xtask_args.iter().cloned());
    exec(name, &opts, &guest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An argv written as words (no word of these tests contains a space).
    fn w(line: &str) -> Argv {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn lifecycle_argv() {
        assert_eq!(start("m"), w("machine start --name m"));
        assert_eq!(status("m"), w("machine status --name m --json"));
        assert_eq!(stop("m"), w("machine stop --name m"));
        assert_eq!(delete("m"), w("machine delete --name m -f"));
        assert_eq!(version(), w("--version"));
        assert_eq!(git_probe("m"), w("machine exec --name m -- git --version"));
    }

    #[test]
    fn create_argv_has_every_option() {
        let volume = Volume {
            host: "/src/repo".into(),
            guest: "/workspace".into(),
            read_only: false,
        };
        let spec = CreateSpec {
            name: "b".into(),
            image: Some("rust:1".into()),
            cpus: Some(4),
            mem_mib: Some(8192),
            storage_gib: Some(100),
            net: Network::Outbound,
            volumes: vec![volume],
        };
        assert_eq!(
            create(&spec).unwrap(),
            w(
                "machine create --name b --image rust:1 --cpus 4 --mem 8192 --storage 100 --net \
               -v /src/repo:/workspace"
            )
        );
        let minimal = CreateSpec {
            name: "a".into(),
            ..CreateSpec::default()
        };
        assert_eq!(create(&minimal).unwrap(), w("machine create --name a"));
        let volume = Volume {
            host: "/x".into(),
            guest: "/y".into(),
            read_only: true,
        };
        let ro = CreateSpec {
            name: "a".into(),
            volumes: vec![volume],
            ..CreateSpec::default()
        };
        assert_eq!(create(&ro).unwrap()[4..], w("-v /x:/y:ro"));
        let docker = CreateSpec {
            name: "d".into(),
            net: Network::VirtioNet,
            ..CreateSpec::default()
        };
        assert_eq!(
            create(&docker).unwrap(),
            w("machine create --name d --net --net-backend virtio-net")
        );
    }

    #[test]
    fn create_refuses_what_smolvm_refuses() {
        let pulled = CreateSpec {
            name: "a".into(),
            image: Some("docker.io/library/alpine:3".into()),
            ..CreateSpec::default()
        };
        let err = create(&pulled).unwrap_err().to_string();
        assert!(err.contains("pulled from a registry, which needs the network"), "{err}");
        let local = CreateSpec {
            image: Some("./rootfs".into()),
            ..pulled.clone()
        };
        assert_eq!(create(&local).unwrap(), w("machine create --name a --image ./rootfs"));
        let twice = CreateSpec {
            name: "a".into(),
            volumes: ["/x", "/y"]
                .iter()
                .map(|host| Volume {
                    host: host.into(),
                    guest: "/workspace".into(),
                    read_only: false,
                })
                .collect(),
            ..CreateSpec::default()
        };
        assert!(create(&twice)
            .unwrap_err()
            .to_string()
            .contains("same guest path /workspace"));
    }

    #[test]
    fn exec_uses_long_name_and_separator() {
        let guest = w("ls --name -n");
        assert_eq!(
            exec("m", &ExecOpts::default(), &guest),
            w("machine exec --name m -- ls --name -n")
        );
        let opts = ExecOpts {
            stream: true,
            workdir: Some("/w".into()),
            env: vec![("A".into(), "b=c".into())],
            timeout: Some(Duration::from_millis(1500)),
        };
        assert_eq!(
            exec("m", &opts, &w("true")),
            w("machine exec --name m --stream -w /w -e A=b=c --timeout 1s -- true")
        );
        assert_eq!(
            ready_probe("m", Duration::from_secs(10)),
            w("machine exec --name m --timeout 10s -- true")
        );
    }

    #[test]
    fn timeouts_always_have_a_unit() {
        for (timeout, arg) in [
            (Duration::ZERO, "1s"),
            (Duration::from_millis(1), "1s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(3600), "3600s"),
        ] {
            assert_eq!(timeout_arg(timeout), arg);
        }
    }

    #[test]
    fn long_steps_stream() {
        assert_eq!(
            in_vm_build("b", false, &w("build-kit --kit k")),
            w(
                "machine exec --name b --stream -w /workspace -e CARGO_TARGET_DIR=/storage/target \
               -- cargo xtask build-kit --kit k"
            )
        );
        assert_eq!(
            in_vm_build("b", true, &w("variant")),
            w(
                "machine exec --name b --stream -w /workspace -e CARGO_TARGET_DIR=/storage/target \
               -e FOREST_ROOT=/forest -- cargo xtask variant"
            )
        );
        assert!(docker_install("b").contains(&"--stream".to_string()));
        let steps = provision(&Provision {
            name: "m",
            bundle: Path::new("/t/checkout.bundle"),
            skills_tar: Path::new("/t/skills.tar"),
            skills: &[],
            skills_dir: "/root/.claude/skills",
        })
        .unwrap();
        let clone = steps.iter().find(|s| s.contains(&"clone".to_string())).unwrap();
        assert!(clone.contains(&"--stream".to_string()), "{clone:?}");
    }

    #[test]
    fn host_paths_with_colon_are_rejected() {
        let err = upload(Path::new("/tmp/a:b/file"), "m", "/x").unwrap_err().to_string();
        assert!(err.contains("contains `:`"), "{err}");
        let volume = Volume {
            host: "/a:b".into(),
            guest: "/workspace".into(),
            read_only: false,
        };
        let spec = CreateSpec {
            name: "b".into(),
            volumes: vec![volume],
            ..CreateSpec::default()
        };
        assert!(create(&spec).unwrap_err().to_string().contains("contains `:`"));
        assert_eq!(
            upload(Path::new("/t/f"), "m", "/g/f").unwrap(),
            w("machine cp /t/f m:/g/f")
        );
    }

    #[test]
    fn names_and_guest_dirs_are_checked() {
        for bad in ["a:b", "-n", "", "a/b", "_a", "a-", "a--b"] {
            let spec = CreateSpec {
                name: bad.into(),
                ..CreateSpec::default()
            };
            assert!(create(&spec).is_err(), "{bad}");
        }
        for bad in ["relative", "/", "//", "/a/../b"] {
            assert!(check_guest_dir(bad).is_err(), "{bad}");
        }
        check_guest_dir("/root/.claude/skills/").unwrap();
    }

    #[test]
    fn provision_plan() {
        let skills = w("bottlerocket-kit bottlerocket-variant mine");
        let plan = |skills: &[String]| {
            provision(&Provision {
                name: "m",
                bundle: Path::new("/t/checkout.bundle"),
                skills_tar: Path::new("/t/skills.tar"),
                skills,
                skills_dir: "/root/.claude/skills/",
            })
        };
        let expected: Vec<Argv> = [
            "machine exec --name m -- mkdir -p /workspace /root/.claude/skills /workspace/checkout",
            "machine cp /t/checkout.bundle m:/workspace/.xtask-checkout.bundle",
            "machine exec --name m -- rm -rf /workspace/checkout.previous",
            "machine exec --name m -- mv /workspace/checkout /workspace/checkout.previous",
            "machine exec --name m --stream -- git clone --quiet /workspace/.xtask-checkout.bundle \
             /workspace/checkout",
            "machine exec --name m -- rm -f /workspace/.xtask-checkout.bundle",
            "machine exec --name m -- rm -rf /root/.claude/skills/bottlerocket-kit \
             /root/.claude/skills/bottlerocket-variant /root/.claude/skills/mine",
            "machine cp /t/skills.tar m:/workspace/.xtask-skills.tar",
            "machine exec --name m -- tar --no-same-owner -xf /workspace/.xtask-skills.tar -C \
             /root/.claude/skills",
            "machine exec --name m -- rm -f /workspace/.xtask-skills.tar",
        ]
        .iter()
        .map(|line| w(line))
        .collect();
        assert_eq!(plan(&skills).unwrap(), expected);
        assert!(plan(&w("../etc")).is_err(), "a skill name cannot leave the skills dir");
    }

    #[test]
    fn docker_argv() {
        let start = docker_start("b");
        assert_eq!(start[..7], w("machine exec --name b -- sh -c"));
        assert_eq!(
            start[7],
            "nohup dockerd --data-root=/storage/docker >/var/log/dockerd.log 2>&1 &"
        );
        assert_eq!(docker_probe("b")[..6], w("machine exec --name b --timeout 30s"));
    }
}
