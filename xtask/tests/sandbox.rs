//! `cargo xtask sandbox …` and in-VM runs, against the stand-in smolvm (tests/standins/smolvm),
//! which keeps a fake guest root per machine: the tests assert the resulting guest tree and every
//! argv the xtask gave smolvm.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    state: PathBuf,
    kvm: PathBuf,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A checkout with this project's phase skills, committed, and a HOME with one skill.
fn fixture() -> Fixture {
    fixture_at("checkout")
}

fn fixture_at(checkout: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(checkout);
    write(&root.join("phases/kit/SKILL.md"), "# kit phases\n");
    write(&root.join("phases/variant/SKILL.md"), "# variant phases\n");
    write(&root.join("README.md"), "fixture\n");
    support::git(&root, &["init", "-q"]);
    support::git(&root, &["add", "."]);
    support::git(&root, &["commit", "-q", "-m", "fixture"]);
    let home = dir.path().join("home");
    write(&home.join(".claude/skills/mine/SKILL.md"), "# mine\n");
    write(&home.join(".claude/skills/mine/nested/notes.txt"), "notes\n");
    let kvm = dir.path().join("kvm");
    write(&kvm, "");
    let state = dir.path().join("state");
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    Fixture {
        root,
        home,
        state,
        kvm,
        _dir: dir,
    }
}

/// The image `sandbox up` and `--in-vm` use unless told otherwise.
const DEFAULT_IMAGE: &str = "docker.io/library/rust:1-bookworm";

fn standin() -> PathBuf {
    support::standins_dir().join("smolvm")
}

impl Fixture {
    /// `cargo xtask ARGS…` with the stand-in smolvm, a fake KVM device and a private HOME.
    fn xtask(&self, args: &[&str]) -> Command {
        let mut cmd = support::xtask(&self.root, &[]);
        cmd.args(args)
            .env("SMOLVM", standin())
            .env("SMOLVM_STANDIN_STATE", &self.state)
            .env("HOME", &self.home)
            .env("XTASK_KVM_DEVICE", &self.kvm)
            // Host temp files and machine locks stay in this fixture.
            .env("TMPDIR", self.root.parent().unwrap().join("tmp"))
            .env_remove("XTASK_SANDBOX_SKILLS_DIR")
            .env_remove("FOREST_ROOT")
            .env_remove("XTASK_VM_IMAGE")
            .env_remove("SMOLVM_STANDIN_NOT_READY")
            .env_remove("SMOLVM_STANDIN_VERSION");
        cmd
    }

    /// The stand-in itself, sharing this fixture's state.
    fn smolvm(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(standin());
        cmd.args(args).env("SMOLVM_STANDIN_STATE", &self.state);
        cmd
    }

    /// Every argv smolvm was given, in order.
    fn log(&self) -> Vec<Vec<String>> {
        let Ok(text) = std::fs::read_to_string(self.state.join("log.jsonl")) else {
            return Vec::new();
        };
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The fake guest root of a machine.
    fn guest(&self, name: &str) -> PathBuf {
        self.state.join("roots").join(name)
    }
}

fn has(argv: &[String], items: &[&str]) -> bool {
    argv.windows(items.len())
        .any(|w| w.iter().zip(items).all(|(a, b)| a == b))
}

fn count(log: &[Vec<String>], items: &[&str]) -> usize {
    log.iter().filter(|argv| has(argv, items)).count()
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn skills_tree(f: &Fixture) -> BTreeMap<PathBuf, Vec<u8>> {
    support::snapshot(&f.guest("xtask-agent").join("root/.claude/skills"))
}

fn failing(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    support::stderr(output)
}

#[test]
fn up_provisions_checkout_and_skills() {
    let f = fixture();
    support::run_ok(&mut f.xtask(&["sandbox", "up", "--skill", "mine", "--cpus", "2", "--mem", "1024"]));
    let guest = f.guest("xtask-agent");
    let skills = skills_tree(&f);
    let names: Vec<_> = skills.keys().map(|p| p.to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        [
            "bottlerocket-kit/SKILL.md",
            "bottlerocket-variant/SKILL.md",
            "mine/SKILL.md",
            "mine/nested/notes.txt"
        ]
    );
    assert_eq!(
        text(&guest.join("root/.claude/skills/bottlerocket-kit/SKILL.md")),
        "# kit phases\n"
    );
    assert_eq!(text(&guest.join("workspace/checkout/README.md")), "fixture\n");
    assert!(
        guest.join("workspace/checkout/.git").is_dir(),
        "the checkout is a git clone"
    );
    assert!(
        !guest.join("workspace/.xtask-skills.tar").exists() && !guest.join("workspace/.xtask-checkout.bundle").exists()
    );

    let log = f.log();
    assert_eq!(log[0], ["--version"]);
    assert!(
        has(&log[1], &["machine", "status", "--name", "xtask-agent", "--json"]),
        "{:?}",
        log[1]
    );
    // The default image, which has git and tar, pulled inside the machine: hence --net.
    assert_eq!(
        log[2],
        [
            "machine",
            "create",
            "--name",
            "xtask-agent",
            "--image",
            DEFAULT_IMAGE,
            "--cpus",
            "2",
            "--mem",
            "1024",
            "--net"
        ]
    );
    assert_eq!(log[3], ["machine", "start", "--name", "xtask-agent"]);
    for argv in log.iter().filter(|a| a.get(1).is_some_and(|c| c == "exec")) {
        assert_eq!(argv[2..4], ["--name", "xtask-agent"], "{argv:?}");
        assert!(argv.contains(&"--".to_string()), "{argv:?}");
    }
    // Single files only, from a host temp dir that is gone afterwards.
    let uploads: Vec<_> = log.iter().filter(|a| a.get(1).is_some_and(|c| c == "cp")).collect();
    assert_eq!(uploads.len(), 2, "{uploads:?}");
    for argv in uploads {
        assert!(
            argv[2].ends_with("checkout.bundle") || argv[2].ends_with("skills.tar"),
            "{argv:?}"
        );
        assert!(
            argv[3].starts_with("xtask-agent:/workspace/"),
            "uploads go to the storage disk, never /tmp: {argv:?}"
        );
        assert!(
            !Path::new(&argv[2]).exists(),
            "host temp file {} is left behind",
            argv[2]
        );
    }
    let mut left: Vec<_> = std::fs::read_dir(f.root.parent().unwrap().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["xtask-smolvm-xtask-agent.lock"], "the host temp dir is removed");
    assert_eq!(count(&log, &["git", "clone"]), 1);
    assert!(has(
        log.iter().find(|a| has(a, &["git", "clone"])).unwrap(),
        &["--stream"]
    ));
}

#[test]
fn up_again_wipes_old_copies_and_gives_the_same_tree() {
    let f = fixture();
    support::run_ok(&mut f.xtask(&["sandbox", "up", "--skill", "mine"]));
    let first = skills_tree(&f);
    let guest_skills = f.guest("xtask-agent").join("root/.claude/skills");
    write(&guest_skills.join("mine/stale.md"), "left over\n");
    write(&guest_skills.join("bottlerocket-kit/old/step.md"), "left over\n");
    write(&guest_skills.join("someone-else/SKILL.md"), "not ours\n");
    write(
        &f.guest("xtask-agent").join("workspace/checkout/scratch.txt"),
        "guest work\n",
    );

    support::run_ok(&mut f.xtask(&["sandbox", "up", "--skill", "mine"]));
    let mut second = skills_tree(&f);
    assert_eq!(
        second.remove(Path::new("someone-else/SKILL.md")).as_deref(),
        Some(&b"not ours\n"[..])
    );
    assert_eq!(first, second, "re-running up gives the same skills");
    assert!(
        !f.guest("xtask-agent").join("workspace/checkout/scratch.txt").exists(),
        "the checkout is a fresh clone"
    );
    let kept = f.guest("xtask-agent").join("workspace/checkout.previous/scratch.txt");
    assert_eq!(text(&kept), "guest work\n", "the previous clone is kept aside");
    let log = f.log();
    assert_eq!(count(&log, &["machine", "create"]), 1, "the existing machine is reused");
    assert_eq!(count(&log, &["machine", "start"]), 2);
}

#[test]
fn skills_dir_can_be_moved() {
    let f = fixture();
    write(&f.root.join("README.md"), "changed on the host\n");
    let output = support::run(
        f.xtask(&["sandbox", "up"])
            .env("XTASK_SANDBOX_SKILLS_DIR", "/home/agent/skills"),
    );
    assert!(output.status.success());
    assert!(
        support::stderr(&output).contains("uncommitted changes"),
        "a dirty checkout is reported"
    );
    let dir = f.guest("xtask-agent").join("home/agent/skills");
    assert!(dir.join("bottlerocket-kit/SKILL.md").is_file() && dir.join("bottlerocket-variant/SKILL.md").is_file());
    assert!(!f.guest("xtask-agent").join("root/.claude/skills").exists());
}

#[test]
fn a_skill_missing_on_the_host_fails_before_anything_is_copied() {
    let f = fixture();
    let err = failing(&support::run(
        &mut f.xtask(&["sandbox", "up", "--skill", "mine", "--skill", "gone"]),
    ));
    assert!(
        err.contains("skill `gone` is not on this host") && err.contains("--skill gone"),
        "{err}"
    );
    let log = f.log();
    assert_eq!(
        count(&log, &["machine", "create"]) + count(&log, &["machine", "cp"]) + count(&log, &["machine", "exec"]),
        0,
        "{log:?}"
    );
}

#[test]
fn exec_not_ready_is_polled_until_it_answers() {
    let f = fixture();
    support::run_ok(f.xtask(&["sandbox", "up"]).env("SMOLVM_STANDIN_NOT_READY", "3"));
    let probes = count(&f.log(), &["--", "true"]);
    assert_eq!(probes, 4, "three failed probes, then one that answers");
    assert!(f
        .guest("xtask-agent")
        .join("root/.claude/skills/bottlerocket-kit")
        .is_dir());
}

#[test]
fn exec_never_ready_fails_within_its_bound() {
    let f = fixture();
    let start = std::time::Instant::now();
    let output = support::run(
        f.xtask(&["sandbox", "up"])
            .env("SMOLVM_STANDIN_NOT_READY", "1000")
            .env("XTASK_SANDBOX_READY_SECS", "1"),
    );
    let err = failing(&output);
    assert!(
        err.contains("does not answer `exec`") && err.contains("sandbox down --name xtask-agent"),
        "{err}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(count(&f.log(), &["machine", "cp"]), 0);
}

#[test]
fn an_existing_machine_is_not_created_again() {
    let f = fixture();
    let create = [
        "machine",
        "create",
        "--name",
        "xtask-agent",
        "--image",
        DEFAULT_IMAGE,
        "--net",
    ];
    support::run_ok(&mut f.smolvm(&create));
    // The trap the xtask avoids: a second create of the same name fails.
    let again = support::run(&mut f.smolvm(&create));
    assert_eq!(again.status.code(), Some(1));
    assert!(support::stderr(&again).contains("already exists"));

    let output = support::run(&mut f.xtask(&["sandbox", "up", "--image", "alpine"]));
    assert!(output.status.success());
    assert!(
        support::stderr(&output).contains("apply when it is created"),
        "the ignored --image is reported"
    );
    assert_eq!(
        count(&f.log(), &["machine", "create"]),
        2,
        "only the two direct creates"
    );
}

#[test]
fn exec_streams_and_passes_the_exit_code_through() {
    let f = fixture();
    support::run_ok(&mut f.xtask(&["sandbox", "up"]));
    let out = support::run_ok(&mut f.xtask(&["sandbox", "exec", "--", "cat", "/workspace/checkout/README.md"]));
    assert_eq!(out, "fixture\n");
    let output = support::run(&mut f.xtask(&[
        "sandbox",
        "exec",
        "-w",
        "/workspace/checkout",
        "--",
        "sh",
        "-c",
        "ls; exit 7",
    ]));
    assert_eq!(output.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&output.stdout).contains("README.md"));
    let log = f.log();
    assert_eq!(
        log.last().unwrap(),
        &[
            "machine",
            "exec",
            "--name",
            "xtask-agent",
            "--stream",
            "-w",
            "/workspace/checkout",
            "--",
            "sh",
            "-c",
            "ls; exit 7"
        ]
    );

    let err = failing(&support::run(
        &mut f.xtask(&["sandbox", "exec", "--name", "nope", "--", "true"]),
    ));
    assert!(
        err.contains("machine nope does not exist") && err.contains("sandbox up --name nope"),
        "{err}"
    );
}

#[test]
fn status_and_down() {
    let f = fixture();
    let absent = support::run(&mut f.xtask(&["sandbox", "status", "--json"]));
    assert_eq!(absent.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&absent.stdout).unwrap();
    assert_eq!(doc["state"], "absent");

    support::run_ok(&mut f.xtask(&["sandbox", "up"]));
    assert_eq!(
        support::run_ok(&mut f.xtask(&["sandbox", "status"])),
        "xtask-agent: running\n"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&support::run_ok(&mut f.xtask(&["sandbox", "status", "--json"]))).unwrap();
    assert_eq!(doc["name"], "xtask-agent");

    support::run_ok(&mut f.xtask(&["sandbox", "down"]));
    let log = f.log();
    let stop = log
        .iter()
        .position(|a| has(a, &["machine", "stop", "--name", "xtask-agent"]))
        .unwrap();
    let delete = log
        .iter()
        .position(|a| a[..] == ["machine", "delete", "--name", "xtask-agent", "-f"])
        .unwrap();
    assert!(stop < delete);
    assert!(!f.guest("xtask-agent").exists());
    assert_eq!(
        support::run(&mut f.xtask(&["sandbox", "status"])).status.code(),
        Some(2)
    );
    support::run_ok(&mut f.xtask(&["sandbox", "down"]));
}

#[test]
fn standin_keeps_the_engine_traps() {
    let f = fixture();
    support::run_ok(&mut f.smolvm(&["machine", "create", "--name", "m"]));
    support::run_ok(&mut f.smolvm(&["machine", "start", "--name", "m"]));
    // delete without -f and without a terminal: "Cancelled", exit 0, nothing deleted.
    let out = support::run_ok(
        f.smolvm(&["machine", "delete", "--name", "m"])
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(out, "Cancelled\n");
    support::run_ok(&mut f.smolvm(&["machine", "status", "--name", "m", "--json"]));
    // cp of a directory fails like the real one.
    let dir = f.root.join("phases");
    let cp = support::run(&mut f.smolvm(&["machine", "cp", dir.to_str().unwrap(), "m:/tmp/phases"]));
    assert_eq!(cp.status.code(), Some(1));
    assert!(support::stderr(&cp).contains("Is a directory (os error 21)"));
    // exec takes only the long --name; guest exit codes pass through; --timeout kills with 124.
    assert_eq!(
        support::run(&mut f.smolvm(&["machine", "exec", "-n", "m", "--", "true"]))
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        support::run(&mut f.smolvm(&["machine", "exec", "--name", "m", "--", "sh", "-c", "exit 5"]))
            .status
            .code(),
        Some(5)
    );
    let slow = support::run(&mut f.smolvm(&["machine", "exec", "--name", "m", "--timeout", "1s", "--", "sleep", "5"]));
    assert_eq!(slow.status.code(), Some(124));
    let missing = support::run(&mut f.smolvm(&["machine", "status", "--name", "nope", "--json"]));
    assert_eq!(missing.status.code(), Some(1));
    assert!(support::stderr(&missing).contains("not found"));
}

#[test]
fn the_wrong_smolvm_is_named() {
    let f = fixture();
    let bin = tempfile::tempdir().unwrap();
    let impostor = bin.path().join("smolvm");
    write(&impostor, "#!/bin/sh\necho 'smolvm-py 0.1.0'\n");
    std::fs::set_permissions(&impostor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = support::xtask(&f.root, &[bin.path()]);
    cmd.args(["sandbox", "status"])
        .env_remove("SMOLVM")
        .env("XTASK_KVM_DEVICE", &f.kvm);
    let err = failing(&support::run(&mut cmd));
    assert!(
        err.contains("another program called smolvm") && err.contains("smolvm-py 0.1.0"),
        "{err}"
    );

    let err = failing(&support::run(
        f.xtask(&["sandbox", "status"]).env("SMOLVM_STANDIN_VERSION", "1.8.9"),
    ));
    assert!(
        err.contains("smolvm 1.8.9, older than 1.9.0") && err.contains("install smolvm 1.9.0 or later"),
        "{err}"
    );
    support::run_ok(f.xtask(&["sandbox", "up"]).env("SMOLVM_STANDIN_VERSION", "1.10.0"));

    // Without $SMOLVM, the smolvm first on PATH is used.
    let mut on_path = support::xtask(&f.root, &[&support::standins_dir()]);
    on_path
        .args(["sandbox", "status"])
        .env_remove("SMOLVM")
        .env("SMOLVM_STANDIN_STATE", &f.state);
    on_path.env("XTASK_KVM_DEVICE", &f.kvm);
    assert_eq!(
        support::run(&mut on_path).status.code(),
        Some(0),
        "found on PATH, and it sees the machine `up` made"
    );

    let err = failing(&support::run(
        f.xtask(&["sandbox", "up"]).env("SMOLVM", f.root.join("no-such-smolvm")),
    ));
    assert!(
        err.contains("is not an executable file") && err.contains("install smolvm"),
        "{err}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn no_kvm_device_stops_before_smolvm_runs() {
    let f = fixture();
    let missing = f.root.join("no-kvm");
    let err = failing(&support::run(
        f.xtask(&["sandbox", "up"]).env("XTASK_KVM_DEVICE", &missing),
    ));
    assert!(
        err.contains("no-kvm does not exist") && err.contains("modprobe"),
        "{err}"
    );
    assert!(f.log().is_empty(), "smolvm was called: {:?}", f.log());
}

#[test]
fn host_paths_with_colon_are_rejected() {
    let f = fixture_at("a:b");
    let err = failing(&support::run(&mut f.xtask(&["build-kit", "--in-vm"])));
    assert!(err.contains("contains `:`") && err.contains("a:b"), "{err}");
    assert!(f.log().is_empty(), "{:?}", f.log());

    let tmp = f.root.parent().unwrap().join("tmp:dir");
    std::fs::create_dir_all(&tmp).unwrap();
    let err = failing(&support::run(f.xtask(&["sandbox", "up"]).env("TMPDIR", &tmp)));
    assert!(err.contains("contains `:`") && err.contains("TMPDIR"), "{err}");
    assert_eq!(
        count(&f.log(), &["machine", "cp"]) + count(&f.log(), &["machine", "create"]),
        0
    );
}

#[test]
fn in_vm_runs_the_xtask_in_the_build_machine() {
    let f = fixture();
    let output = support::run(
        f.xtask(&["build-kit", "--kit", "k", "--in-vm", "--json"])
            .env("SMOLVM_STANDIN_CARGO_EXIT", "3"),
    );
    assert_eq!(output.status.code(), Some(3), "the build's exit code is passed through");
    let ran: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the guest's stdout is ours");
    assert_eq!(
        ran["guest_argv"],
        serde_json::json!(["cargo", "xtask", "build-kit", "--kit", "k", "--json"])
    );
    assert_eq!(ran["workdir"], "/workspace");
    assert_eq!(ran["env"], serde_json::json!(["CARGO_TARGET_DIR=/storage/target"]));

    let log = f.log();
    let create = log.iter().find(|a| has(a, &["machine", "create"])).unwrap();
    let name = create[3].clone();
    assert!(name.starts_with("xtask-build-"), "{create:?}");
    let mount = format!("{}:/workspace", f.root.display());
    assert!(
        has(create, &["-v", &mount]) && has(create, &["--storage"]),
        "{create:?}"
    );
    // Docker in the machine: a virtio-net device, as smolvm's docker-in-VM example has it.
    assert!(
        has(create, &["--image", DEFAULT_IMAGE]) && has(create, &["--net", "--net-backend", "virtio-net"]),
        "{create:?}"
    );
    let dockerd = "nohup dockerd --data-root=/storage/docker >/var/log/dockerd.log 2>&1 &";
    assert_eq!(count(&log, &["sh", "-c", dockerd]), 1);
    let build = log.last().unwrap();
    assert!(
        has(
            build,
            &["machine", "exec", "--name", &name, "--stream", "-w", "/workspace"]
        ),
        "{build:?}"
    );

    // The machine persists: a second run reuses it and its running Docker.
    support::run_ok(&mut f.xtask(&["variant", "--in-vm"]));
    let log = f.log();
    assert_eq!(count(&log, &["machine", "create"]), 1);
    assert_eq!(count(&log, &["sh", "-c", dockerd]), 1);
}

#[test]
fn in_vm_mounts_the_forest_too() {
    let f = fixture();
    let forest = f.root.parent().unwrap().join("forest");
    std::fs::create_dir_all(forest.join("kits")).unwrap();
    let out = support::run_ok(f.xtask(&["variant", "--in-vm"]).env("FOREST_ROOT", &forest));
    let ran: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        ran["env"],
        serde_json::json!(["CARGO_TARGET_DIR=/storage/target", "FOREST_ROOT=/forest"])
    );
    let log = f.log();
    let create = log.iter().find(|a| has(a, &["machine", "create"])).unwrap();
    assert!(
        has(create, &["-v", &format!("{}:/forest", forest.display())]),
        "{create:?}"
    );
    // The stand-in maps the mount: the guest sees the host's forest.
    let ls = support::run_ok(&mut f.smolvm(&["machine", "exec", "--name", &create[3], "--", "ls", "/forest"]));
    assert_eq!(ls, "kits\n");
}

#[test]
fn up_with_a_registry_image_provisions_checkout_and_skills() {
    let f = fixture();
    let image = "docker.io/library/buildpack-deps:bookworm-scm";
    support::run_ok(&mut f.xtask(&["sandbox", "up", "--image", image]));
    let guest = f.guest("xtask-agent");
    assert_eq!(text(&guest.join("workspace/checkout/README.md")), "fixture\n");
    assert_eq!(
        support::git(&guest.join("workspace/checkout"), &["log", "--format=%s"]),
        "fixture\n",
        "the clone has the checkout's history"
    );
    let names: Vec<_> = skills_tree(&f).into_keys().collect();
    assert_eq!(
        names,
        [
            Path::new("bottlerocket-kit/SKILL.md"),
            Path::new("bottlerocket-variant/SKILL.md")
        ]
    );
    let log = f.log();
    let create = log.iter().find(|a| has(a, &["machine", "create"])).unwrap();
    assert_eq!(
        create[..],
        ["machine", "create", "--name", "xtask-agent", "--image", image, "--net"]
    );
    let status: serde_json::Value =
        serde_json::from_str(&support::run_ok(&mut f.xtask(&["sandbox", "status", "--json"]))).unwrap();
    assert_eq!(
        (&status["state"], &status["network"]),
        (&"running".into(), &true.into())
    );
}

#[test]
fn an_image_without_git_is_named_with_the_fix() {
    let f = fixture();
    let err = failing(&support::run(&mut f.xtask(&[
        "sandbox",
        "up",
        "--image",
        "docker.io/library/alpine:3.20",
    ])));
    assert!(
        err.contains("machine xtask-agent has no git")
            && err.contains("such as the default docker.io/library/rust:1-bookworm")
            && err.contains("cargo xtask sandbox down --name xtask-agent")
            && err.contains("cargo xtask sandbox exec --name xtask-agent -- apk add git"),
        "{err}"
    );
    assert_eq!(count(&f.log(), &["machine", "cp"]), 0, "nothing is copied into it");

    // The fix it names works: git from Alpine's packages (the machine has the network), then up.
    support::run_ok(&mut f.xtask(&["sandbox", "exec", "--", "apk", "add", "git"]));
    support::run_ok(&mut f.xtask(&["sandbox", "up"]));
    assert!(f.guest("xtask-agent").join("workspace/checkout/.git").is_dir());
}

#[test]
fn no_net_is_for_local_images_only() {
    let f = fixture();
    let err = failing(&support::run(&mut f.xtask(&["sandbox", "up", "--no-net"])));
    assert!(
        err.contains("image docker.io/library/rust:1-bookworm is pulled from a registry")
            && err.contains("drop --no-net"),
        "{err}"
    );
    assert!(f.log().is_empty(), "refused before smolvm runs: {:?}", f.log());

    // A root filesystem directory with git and tar needs no network.
    let rootfs = f.root.parent().unwrap().join("rootfs");
    for program in ["sh", "true", "mkdir", "rm", "mv", "git", "tar"] {
        write(&rootfs.join("usr/bin").join(program), "");
    }
    let image = rootfs.to_str().unwrap();
    support::run_ok(&mut f.xtask(&["sandbox", "up", "--no-net", "--image", image]));
    let create = f.log().into_iter().find(|a| has(a, &["machine", "create"])).unwrap();
    assert_eq!(create, ["machine", "create", "--name", "xtask-agent", "--image", image]);
    assert!(f.guest("xtask-agent").join("workspace/checkout/.git").is_dir());
    assert!(skills_tree(&f).contains_key(Path::new("bottlerocket-kit/SKILL.md")));
}

#[test]
fn smolvm_limits_are_checked_before_it_runs() {
    let f = fixture();
    let refused = |args: &[&str], expected: &[&str]| {
        let err = failing(&support::run(&mut f.xtask(args)));
        for part in expected {
            assert!(err.contains(part), "{args:?}: {err}");
        }
    };
    refused(
        &["sandbox", "up", "--name", "_agent"],
        &["`_agent` does not start with a letter or digit", "--name"],
    );
    refused(&["sandbox", "up", "--name", "agent-"], &["`agent-` ends with `-`"]);
    refused(
        &["sandbox", "up", "--name", "my--agent"],
        &["`my--agent` contains `--`"],
    );
    refused(
        &["sandbox", "up", "--name", &"a".repeat(129)],
        &["is 129 characters long"],
    );
    refused(
        &["sandbox", "exec", "--name", "a.b", "--", "true"],
        &["`a.b` contains `.`"],
    );
    refused(
        &["sandbox", "status", "--name=-x"],
        &["`-x` does not start with a letter or digit"],
    );
    refused(&["sandbox", "down", "--name", "a:b"], &["`a:b` contains `:`"]);
    refused(&["sandbox", "up", "--cpus", "0"], &["--cpus 0", "give --cpus 1 to 16"]);
    refused(&["sandbox", "up", "--cpus", "256"], &["--cpus 256", "at most 255"]);
    refused(&["sandbox", "up", "--mem", "63"], &["--mem 63", "at least 64 MiB"]);
    assert!(f.log().is_empty(), "smolvm was called: {:?}", f.log());

    // 128 characters is smolvm's longest name; more vCPUs than it runs are clamped, with a note.
    let long = "a".repeat(128);
    let output = support::run(&mut f.xtask(&["sandbox", "up", "--name", &long, "--cpus", "32"]));
    assert!(output.status.success());
    assert!(
        support::stderr(&output).contains("--cpus 32, but smolvm runs a machine with at most 16 vCPUs: using 16"),
        "the clamp is noted"
    );
    let create = f.log().into_iter().find(|a| has(a, &["machine", "create"])).unwrap();
    assert!(
        has(&create, &["--name", &long, "--image", DEFAULT_IMAGE, "--cpus", "16"]),
        "{create:?}"
    );
}

#[test]
fn protected_mount_sources_are_refused_before_smolvm_runs() {
    let f = fixture();
    let link = f.root.parent().unwrap().join("forest-link");
    std::os::unix::fs::symlink("/usr/share", &link).unwrap();
    for forest in [Path::new("/usr/share"), link.as_path()] {
        let err = failing(&support::run(
            f.xtask(&["variant", "--in-vm"]).env("FOREST_ROOT", forest),
        ));
        assert!(
            err.contains("cannot be mounted into the build machine")
                && err.contains("/usr/share is under /usr")
                && err.contains("use a directory elsewhere"),
            "{err}"
        );
    }
    let missing = f.root.parent().unwrap().join("no-forest");
    let err = failing(&support::run(
        f.xtask(&["variant", "--in-vm"]).env("FOREST_ROOT", &missing),
    ));
    assert!(err.contains("no-forest") && err.contains("must exist"), "{err}");
    assert!(f.log().is_empty(), "smolvm was called: {:?}", f.log());
}

#[test]
fn standin_is_as_strict_as_smolvm() {
    let f = fixture();
    let run = |args: &[&str]| support::run(&mut f.smolvm(args));
    let fails = |args: &[&str], code: i32, message: &str| {
        let output = run(args);
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        let err = support::stderr(&output);
        assert!(err.contains(message), "{args:?}: {err}");
    };

    // Without --image: smolvm's bare Alpine root filesystem, without git, created then running.
    support::run_ok(&mut f.smolvm(&["machine", "create", "--name", "bare"]));
    let status = support::run_ok(&mut f.smolvm(&["machine", "status", "--name", "bare", "--json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&status).unwrap()["state"],
        "created"
    );
    fails(
        &["machine", "exec", "--name", "bare", "--", "true"],
        1,
        "is not running",
    );
    support::run_ok(&mut f.smolvm(&["machine", "start", "--name", "bare"]));
    fails(
        &["machine", "exec", "--name", "bare", "--", "git", "--version"],
        1,
        "failed to spawn command: No such file",
    );
    fails(
        &["machine", "exec", "--name", "bare", "--stream", "--", "bash"],
        1,
        "No such file or directory",
    );
    // No network: no packages either.
    fails(
        &["machine", "exec", "--name", "bare", "--", "apk", "add", "git"],
        1,
        "unable to select packages",
    );

    // A registry image is pulled inside the machine: refused without --net.
    fails(
        &["machine", "create", "--name", "img", "--image", "alpine"],
        1,
        "must be pulled from a registry, but this machine has no network",
    );
    support::run_ok(&mut f.smolvm(&["machine", "create", "--name", "img", "--image", "alpine", "--net"]));
    support::run_ok(&mut f.smolvm(&["machine", "start", "--name", "img"]));
    fails(
        &["machine", "exec", "--name", "img", "--", "git"],
        127,
        "executable file `git` not found",
    );
    support::run_ok(&mut f.smolvm(&["machine", "exec", "--name", "img", "--", "apk", "add", "git"]));
    support::run_ok(&mut f.smolvm(&["machine", "exec", "--name", "img", "--", "git", "--version"]));

    // cp creates missing parents and replaces a file; an image machine's /tmp is each exec's own.
    let file = f.root.join("README.md");
    let file = file.to_str().unwrap();
    support::run_ok(&mut f.smolvm(&["machine", "cp", file, "img:/workspace/a/b/readme"]));
    support::run_ok(&mut f.smolvm(&["machine", "cp", file, "img:/workspace/a/b/readme"]));
    let out =
        support::run_ok(&mut f.smolvm(&["machine", "exec", "--name", "img", "--", "cat", "/workspace/a/b/readme"]));
    assert_eq!(out, "fixture\n");
    support::run_ok(&mut f.smolvm(&["machine", "cp", file, "img:/tmp/readme"]));
    fails(
        &["machine", "exec", "--name", "img", "--", "cat", "/tmp/readme"],
        1,
        "No such file",
    );
    support::run_ok(&mut f.smolvm(&["machine", "cp", file, "bare:/tmp/readme"]));
    support::run_ok(&mut f.smolvm(&["machine", "exec", "--name", "bare", "--", "cat", "/tmp/readme"]));

    // --timeout needs a unit, and more than zero.
    fails(
        &["machine", "exec", "--name", "img", "--timeout", "10", "--", "true"],
        2,
        "time unit needed",
    );
    fails(
        &["machine", "exec", "--name", "img", "--timeout", "0s", "--", "true"],
        2,
        "greater than 0",
    );
    support::run_ok(&mut f.smolvm(&["machine", "exec", "--name", "img", "--timeout", "1m 30s", "--", "true"]));

    // Names, vCPUs, memory and mounts, as smolvm checks them.
    fails(
        &["machine", "create", "--name", "_x"],
        1,
        "must start with a letter or digit",
    );
    fails(&["machine", "create", "--name", "x-"], 1, "cannot end with a hyphen");
    fails(&["machine", "create", "--name", "x--y"], 1, "consecutive hyphens");
    fails(&["machine", "create", "--name", &"x".repeat(129)], 1, "too long");
    fails(
        &["machine", "create", "--name", "c", "--cpus", "256"],
        2,
        "256 is not in 0..=255",
    );
    fails(
        &["machine", "create", "--name", "c", "--cpus", "0"],
        1,
        "CPU count must be at least 1",
    );
    fails(
        &["machine", "create", "--name", "c", "--mem", "32"],
        1,
        "at least 64 MiB",
    );
    fails(
        &["machine", "create", "--name", "c", "-v", "/usr/share:/x"],
        1,
        "protected system path",
    );
    fails(
        &["machine", "create", "--name", "c", "-v", "/:/x"],
        1,
        "protected system path",
    );
    let many = support::run(&mut f.smolvm(&["machine", "create", "--name", "c", "--cpus", "32"]));
    assert!(many.status.success() && support::stderr(&many).contains("at most 16"));
    fails(
        &["machine", "create", "--name", "d", "--net-backend", "virtio"],
        2,
        "possible values: tsi, virtio-net",
    );
}
