//! Command-line arguments: plain data, no behaviour. Each command's `run` lives in its own file.

use std::path::PathBuf;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::arch::Arch;
use crate::registry::Backend;
use crate::variant::Strategy;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build Bottlerocket kits and variants against a local OCI registry",
    long_about = "Build Bottlerocket kits and variants against a local OCI registry.\n\n\
        `build-kit` builds a kit and publishes it to a registry on 127.0.0.1; `variant` builds a \
        variant image from those local kits and restores the variant repo afterwards. \
        `next-step` drives the same workflows one phase at a time for agent orchestrators.",
    version
)]
pub(crate) struct Xtask {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

/// A path that may come from an environment variable set to the empty string, which callers
/// take as not set (clap's own path parser refuses empty values).
fn path_or_empty() -> impl TypedValueParser<Value = PathBuf> {
    OsStringValueParser::new().map(PathBuf::from)
}

/// Settings every command shares, each also read from its environment variable.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The checkout this xtask acts for: its planning/ workspaces and its registry (default: the
    /// checkout the xtask was built in)
    #[arg(long, global = true, env = "XTASK_ROOT", value_name = "DIR", value_parser = path_or_empty())]
    pub(crate) root: Option<PathBuf>,
    /// A forest checkout: kit repos under kits/<kit>/, the variant repo at bottlerocket/; every
    /// checkout inside it shares the forest's one registry
    #[arg(long, global = true, env = "FOREST_ROOT", value_name = "DIR", value_parser = path_or_empty())]
    pub(crate) forest_root: Option<PathBuf>,
    /// Image for the registry's docker backend when a workflow starts it [default: registry:2,
    /// or the one the registry was last started with]
    #[arg(long, global = true, env = "XTASK_REGISTRY_IMAGE", value_name = "IMAGE")]
    pub(crate) registry_image: Option<String>,
    /// For the crash tests, given before the command: kill this process with SIGKILL at the N-th
    /// point where its state on disk changes (each point passed is named on stderr)
    // Not global, unlike the others: clap copies a global argument into every subcommand on each
    // call (78 k instructions of a debug `next-step` for this one, callgrind), and the tests set it
    // through the environment.
    #[arg(long, env = "XTASK_TEST_CRASH_AT", value_name = "N", hide_short_help = true)]
    pub(crate) test_crash_at: Option<u64>,
}

// Where smolvm is and how long to wait for it (sandboxes and `--in-vm`). A plain comment: a doc
// comment would become the `about` of every command that flattens it (subcommands are deferred).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "smolvm")]
pub(crate) struct SmolvmArgs {
    /// The smolvm binary [default: smolvm on PATH]
    #[arg(long = "smolvm", env = "SMOLVM", value_name = "PATH", value_parser = path_or_empty())]
    pub(crate) bin: Option<PathBuf>,
    /// The KVM device smolvm needs on Linux, checked before it runs
    #[arg(long, env = "XTASK_KVM_DEVICE", value_name = "PATH", default_value = "/dev/kvm")]
    pub(crate) kvm_device: PathBuf,
    /// How long a started machine may take before it answers `exec`, in seconds
    #[arg(long, env = "XTASK_SANDBOX_READY_SECS", value_name = "SECONDS", default_value_t = 60)]
    pub(crate) ready_secs: u64,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum Cmd {
    /// Build a kit and publish it to the local registry, verifying what the registry holds
    BuildKit(BuildKit),
    /// Build a variant image from locally published kits, then restore the repo's files
    Variant(Variant),
    /// Run one phase of a workflow in a workspace, deterministically
    Phase(Phase),
    /// Answer the next action for an agent orchestrator, as one JSON object on stdout.
    ///
    /// Actions: `spawn` (run a sub-agent with `prompt`, `context_files` and `context_data`, and
    /// write its answer to `<workspace>/<output_file>`), `gate_failed` (the phase failed its gate
    /// on every attempt; `reason` has each attempt's), `done` (read `summary_file`). Gates check
    /// the phase command's own result and reality, never the sub-agent's prose. Exit status 0
    /// for these; an unusable call (no workspace, bad input.json) answers `error` and exits 2.
    NextStep(NextStep),
    /// Show workspaces under planning/: workflow, inputs, phase states, attempts, last error
    Status(Status),
    /// Put back the variant repo files a workspace backed up
    ///
    /// A workspace brought back from a builder (`--on`) is restored there, over ssh: the files
    /// it changed are the builder's copies.
    Restore(Restore),
    /// Manage the local OCI registry (one per checkout, or one per forest; on 127.0.0.1 only)
    ///
    /// A checkout inside the forest (--forest-root, $FOREST_ROOT) uses the forest's registry,
    /// shared by every checkout in it, with its state in $FOREST_ROOT/.xtask/registry/;
    /// any other checkout has its own, with its state in planning/.registry/.
    Registry(Registry),
    /// Agent sandboxes in smolvm microVMs
    Sandbox(Sandbox),
    /// Check a variant build's images as VALIDATE does: LZ4 frames, GPT, inventory
    Images(Images),
    /// Measure the tool's own overhead on this machine (`cargo bench` underneath)
    Bench(Bench),
    /// Put this xtask into a kit repo, a variant repo, or every repo of a forest.
    ///
    /// Copies the crate (as its own Cargo workspace, with its Cargo.lock) to xtask/ and the phase
    /// files to phases/, writes the alias `xtask = "run --quiet --manifest-path xtask/Cargo.toml
    /// --"` as the only content of .cargo/config.toml, creates planning/ with its .gitignore, and
    /// splits a `/.cargo` rule in .gitignore into `/.cargo/*` and `!/.cargo/config.toml` so that
    /// the alias is tracked. The repo's own Cargo.toml and Cargo.lock are never touched (twoliter
    /// builds against that lock with `--offline --locked`). Prints, on stdout, the one git command
    /// per repo that commits the adoption; until it is committed, the edited .gitignore makes the
    /// build id `-dirty`. Running it again changes nothing unless this xtask changed.
    Adopt(Adopt),
    /// Run this xtask's own tests, first checking (with --install, installing) what they need.
    ///
    /// Checks cargo-nextest, git, make, gcc, python3 (3.11 or newer), docker-registry, lz4,
    /// sgdisk, ss, openssl, curl, htpasswd, kill, docker, ssh, ssh-keygen, sshd and a Docker daemon that
    /// answers, naming each missing one with the command that installs it; builds the registry test image
    /// (xtask/tests/registry-image/build.sh); then runs `cargo nextest run --workspace` with the
    /// arguments after `--`, and exits with its status.
    Test(Test),
}

#[derive(Debug, Args)]
pub(crate) struct BuildKit {
    /// Kit to build (default: the Makefile's KIT, else the only directory under kits/)
    #[arg(long)]
    pub(crate) kit: Option<String>,
    /// Architecture (default: the host's, like the kit Makefile)
    #[arg(long)]
    pub(crate) arch: Option<Arch>,
    /// Workspace directory (default: planning/build-kit-<kit>-<arch>/)
    #[arg(long)]
    pub(crate) workspace: Option<PathBuf>,
    /// Kit repo (default: this checkout if it is a kit repo, else $FOREST_ROOT/kits/<kit>)
    #[arg(long)]
    pub(crate) kit_dir: Option<PathBuf>,
    /// Publish to the registry at host[:port][/namespace], as twoliter takes it (no scheme):
    /// this checkout's (or forest's) own at localhost:<port>, or one that runs already (another
    /// checkout's, or a team's shared registry) and passes every step of `registry check`,
    /// which is then never started, stopped or cleaned from here (default: the registry of this
    /// checkout, or of the forest it lies in). HTTPS, plain HTTP only on localhost, 127.0.0.1
    /// and ::1; credentials from the docker config ($DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json, its credHelpers and credsStore)
    #[arg(long, value_name = "HOST[:PORT][/NAMESPACE]")]
    pub(crate) registry: Option<String>,
    /// CA certificate (PEM) the registry's TLS certificate is signed with, remembered for that
    /// registry address in this checkout (or forest): trusted with the system's roots, by the
    /// xtask and the tools it runs (as SSL_CERT_FILE)
    #[arg(long, value_name = "PEM", requires = "registry")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Run every phase again even when nothing changed since the last verified publish (twoliter
    /// itself rebuilds only what changed)
    #[arg(long)]
    pub(crate) force: bool,
    /// Print one JSON summary object on stdout
    #[arg(long)]
    pub(crate) json: bool,
    /// Run inside a persistent smolvm Linux machine (opt-in; unverified on real hardware)
    #[arg(long)]
    pub(crate) in_vm: bool,
    #[command(flatten)]
    pub(crate) vm: InVm,
    #[command(flatten)]
    pub(crate) on: On,
}

#[derive(Debug, Args)]
pub(crate) struct Variant {
    /// Kit to take from the registry, as NAME, NAME@VERSION, or NAME@VERSION@sha256:… to build
    /// only from that index digest (`build-kit` prints it as the pinned kit) (repeatable)
    #[arg(long = "kit", value_name = "NAME[@VERSION[@DIGEST]]")]
    pub(crate) kits: Vec<String>,
    /// Variant to build (default: the only directory under variants/)
    #[arg(long, env = "BUILDSYS_VARIANT")]
    pub(crate) variant: Option<String>,
    /// Architecture (default: the host's)
    #[arg(long)]
    pub(crate) arch: Option<Arch>,
    /// How the variant repo is pointed at the local registry
    #[arg(long, value_enum, default_value_t)]
    pub(crate) strategy: Strategy,
    /// Leave the repo pointed at the local kits instead of restoring its files
    #[arg(long)]
    pub(crate) keep_config: bool,
    /// Build from what the registry serves even where it is not the kit this checkout or its
    /// forest published (the newest VERIFY of that version); recorded as such in the results
    /// and FINAL.md
    #[arg(long)]
    pub(crate) trust_registry: bool,
    /// Workspace directory (default: planning/variant-<variant>-<arch>/)
    #[arg(long)]
    pub(crate) workspace: Option<PathBuf>,
    /// Variant repo (default: this checkout if it is a variant repo, else $FOREST_ROOT/bottlerocket)
    #[arg(long)]
    pub(crate) variant_dir: Option<PathBuf>,
    /// Take the kits from the registry at host[:port][/namespace] (default: the registry of this
    /// checkout, or of the forest it lies in; `cargo xtask registry url` in the checkout that
    /// published them prints theirs; a team's shared registry as twoliter names it). HTTPS,
    /// plain HTTP only on localhost, 127.0.0.1 and ::1; credentials from the docker config
    #[arg(long, value_name = "HOST[:PORT][/NAMESPACE]")]
    pub(crate) registry: Option<String>,
    /// CA certificate (PEM) of the registry's TLS certificate, remembered for that registry
    /// address (see `registry check --ca-file`)
    #[arg(long, value_name = "PEM", requires = "registry")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Print one JSON summary object on stdout
    #[arg(long)]
    pub(crate) json: bool,
    /// Run inside a persistent smolvm Linux machine (opt-in; unverified on real hardware)
    #[arg(long)]
    pub(crate) in_vm: bool,
    #[command(flatten)]
    pub(crate) vm: InVm,
    #[command(flatten)]
    pub(crate) on: On,
}

// Building on another Linux machine over ssh (`--on`). (A plain comment, as above.)
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Remote builder")]
pub(crate) struct On {
    /// Run this command on a Linux builder over ssh (a host as `ssh` takes it)
    ///
    /// The repos the command needs go there as git bundles, with uncommitted changes and
    /// untracked files, into one directory per checkout under --remote-dir that later runs
    /// reuse; `cargo xtask` runs there with the same arguments (its Docker, and its registry on
    /// the builder's 127.0.0.1, which --registry then names); its output is streamed, its exit
    /// status is this command's, and the workspace comes back here; interrupting this command
    /// stops the run there too. A --ca-file goes along; credentials do not (the builder's own
    /// docker login is used). ssh runs with BatchMode=yes. The builder needs git, tar, make,
    /// cargo and Docker, and curl for a registry served over HTTPS
    #[arg(long, value_name = "SSH-HOST", conflicts_with = "in_vm")]
    pub(crate) on: Option<String>,
    /// ssh client config file for --on (`ssh -F FILE`) [default: ~/.ssh/config]
    #[arg(long, env = "XTASK_SSH_CONFIG", value_name = "FILE", value_parser = path_or_empty())]
    pub(crate) ssh_config: Option<PathBuf>,
    /// Where --on keeps checkouts on the builder (one directory per checkout, reused by later
    /// runs): absolute, or relative to the login directory
    #[arg(
        long,
        env = "XTASK_REMOTE_DIR",
        value_name = "DIR",
        default_value = ".cache/xtask-remote"
    )]
    pub(crate) remote_dir: String,
}

// The build machine of `--in-vm`. (A plain comment, as above.)
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "smolvm")]
pub(crate) struct InVm {
    /// Image of the build machine; it must provide cargo, git and make, and Docker Engine or
    /// apt-get to install it (the default, Debian bookworm with stable Rust, installs docker.io)
    #[arg(
        long,
        env = "XTASK_VM_IMAGE",
        value_name = "IMAGE",
        default_value = crate::smolvm::DEFAULT_IMAGE
    )]
    pub(crate) vm_image: String,
    #[command(flatten)]
    pub(crate) smolvm: SmolvmArgs,
}

#[derive(Debug, Args)]
pub(crate) struct Test {
    /// Install what is missing first: apt-get for packages (Debian and Ubuntu; through sudo
    /// unless root), `cargo install --locked cargo-nextest`
    #[arg(long)]
    pub(crate) install: bool,
    /// Arguments for `cargo nextest run --workspace`
    #[arg(last = true, value_name = "NEXTEST_ARGS")]
    pub(crate) nextest_args: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct Adopt {
    /// A kit repo (Twoliter.toml and kits/), a variant repo (Twoliter.toml and variants/), or a
    /// forest root (kit repos under kits/, the variant repo at bottlerocket/)
    pub(crate) target: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct Phase {
    /// Phase name: setup, build, publish, verify (kit) or update-config, update-lock, build,
    /// validate (variant)
    pub(crate) phase: String,
    /// Workspace directory holding input.json
    pub(crate) workspace: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PhaseResultFlag {
    Success,
    Failure,
}

#[derive(Debug, Args)]
pub(crate) struct NextStep {
    /// Workspace directory holding input.json
    pub(crate) workspace: PathBuf,
    /// What the sub-agent reported for the phase it was spawned for
    #[arg(long)]
    pub(crate) phase_result: Option<PhaseResultFlag>,
    /// Why the phase failed, as the sub-agent said it
    #[arg(long)]
    pub(crate) reason: Option<String>,
    /// Attempts per phase before answering gate_failed (a larger number gives a phase that
    /// gave up more attempts)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_attempts: u32,
    /// Reopen a phase that gave up, with fresh attempts (its history is kept)
    #[arg(long)]
    pub(crate) retry: bool,
}

#[derive(Debug, Args)]
pub(crate) struct Status {
    /// One workspace (default: every workspace under planning/)
    pub(crate) workspace: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct Restore {
    /// Workspace whose backups to restore
    pub(crate) workspace: PathBuf,
    /// Restore even files changed by someone since the backup
    #[arg(long)]
    pub(crate) force: bool,
    /// ssh client config file (`ssh -F FILE`) for a workspace built on a builder with --on,
    /// whose restore runs there [default: ~/.ssh/config]
    #[arg(long, env = "XTASK_SSH_CONFIG", value_name = "FILE", value_parser = path_or_empty())]
    pub(crate) ssh_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct Registry {
    #[command(subcommand)]
    pub(crate) cmd: RegistryCmd,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum RegistryCmd {
    /// Start the registry, or reuse it when it is already healthy; prints localhost:<port>.
    ///
    /// Port, backend and image are remembered per checkout (or forest): a later start without
    /// flags (and every workflow) uses the same ones. A container on another port or image is
    /// recreated; its data volume is kept.
    Start(RegistryStart),
    /// Show the registry's state (exit status 0 healthy, 1 stopped or unhealthy, 2 not created)
    ///
    /// Shows the backend, URL, image, volume or data directory, log and repository count.
    /// Exit status: 0 running and healthy, 1 stopped or unhealthy, 2 not created.
    Status(RegistryStatus),
    /// Print the registry address as twoliter wants it: localhost:<port>
    Url,
    /// List repositories, tags, digests, platforms and sizes
    List(RegistryList),
    /// Show the registry's log (also for a stopped registry)
    Logs(RegistryLogs),
    /// Stop the registry, keeping its data
    Stop,
    /// Remove the registry and its data (container and volume, or process and data directory)
    Clean,
    /// Check that a registry (a team's shared one, or any) is usable from here, step by step.
    ///
    /// In order: DNS resolution, TCP connection, TLS (HTTPS with a verified certificate; plain
    /// HTTP only for localhost, 127.0.0.1 and ::1, as twoliter allows), GET /v2/, the
    /// authentication it asks for (none, Basic, or a Bearer token realm), and the credentials
    /// the docker config gives for it (auths, a credential helper, or none: where they come
    /// from, never what they are). Each failure is named with its fix. Exit status 0 when every
    /// step passes, 1 otherwise.
    Check(RegistryCheck),
}

#[derive(Debug, Args)]
pub(crate) struct RegistryCheck {
    /// The registry as twoliter takes it: host[:port][/namespace], no scheme
    #[arg(value_name = "HOST[:PORT][/NAMESPACE]")]
    pub(crate) registry: String,
    /// CA certificate (PEM) the registry's TLS certificate is signed with: remembered for this
    /// address in this checkout (or forest), and trusted with the system's roots from then on
    /// by build-kit, variant, next-step and the tools they run
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Print the result as one JSON object
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RegistryStart {
    /// Port on 127.0.0.1 (default: stable per checkout or forest, remembered)
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Backend (default: docker when a Docker daemon answers, else native)
    #[arg(long, value_enum)]
    pub(crate) backend: Option<Backend>,
    /// Registry image for the docker backend [default: --registry-image, else the one the registry
    /// was last started with, else registry:2]
    #[arg(long)]
    pub(crate) image: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RegistryStatus {
    /// Print the status as one JSON object
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RegistryList {
    /// Print the rows as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RegistryLogs {
    /// Keep printing new lines
    #[arg(long, short)]
    pub(crate) follow: bool,
}

#[derive(Debug, Args)]
pub(crate) struct Sandbox {
    #[command(subcommand)]
    pub(crate) cmd: SandboxCmd,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum SandboxCmd {
    /// Create (if absent) and start a machine, copy this checkout in, provision skills.
    ///
    /// The machine runs docker.io/library/rust:1-bookworm unless --image says otherwise: Debian
    /// bookworm with git, tar, bash, curl, make, gcc, apt and stable Rust (cargo, rustc, rustup);
    /// no Docker, no Node.js. It is pulled inside the machine, which gets the network (--net);
    /// --no-net is for local images only. Another image must have git and tar.
    ///
    /// The checkout goes in as a git bundle (committed history only) and is cloned at
    /// /workspace/checkout; running `up` again clones afresh and keeps the previous clone at
    /// /workspace/checkout.previous. phases/kit and phases/variant become the skills
    /// bottlerocket-kit and bottlerocket-variant, next to each --skill from ~/.claude/skills/,
    /// in the guest's skills directory (--skills-dir); each skill's old copy is replaced.
    /// smolvm ≥ 1.9.0 is taken from --smolvm ($SMOLVM), else PATH.
    Up(SandboxUp),
    /// Run a command in the machine, streaming its output; its exit code is passed through
    Exec(SandboxExec),
    /// Show the machine's state.
    ///
    /// Exit status: 0 the machine exists, 2 no machine has that name.
    Status(SandboxStatus),
    /// Stop and delete the machine
    Down(SandboxName),
}

pub(crate) const DEFAULT_SANDBOX: &str = "xtask-agent";

#[derive(Debug, Args)]
pub(crate) struct SandboxName {
    /// Machine name
    #[arg(long, default_value = DEFAULT_SANDBOX)]
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) smolvm: SmolvmArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SandboxStatus {
    /// Machine name
    #[arg(long, default_value = DEFAULT_SANDBOX)]
    pub(crate) name: String,
    /// Print smolvm's status document as JSON on stdout
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) smolvm: SmolvmArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SandboxUp {
    /// Machine name (letters, digits, `-`, `_`; as smolvm takes it)
    #[arg(long, default_value = DEFAULT_SANDBOX)]
    pub(crate) name: String,
    /// Image for the machine: a registry reference, a `docker save` archive (.tar) or a root
    /// filesystem directory (./DIR, /DIR); it needs git and tar [default:
    /// docker.io/library/rust:1-bookworm]
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
    /// Create the machine without the network (only with a local --image: a registry image is
    /// pulled inside the machine)
    #[arg(long)]
    pub(crate) no_net: bool,
    /// A skill from ~/.claude/skills/<NAME>/ to provision as well (repeatable)
    #[arg(long = "skill", value_name = "NAME")]
    pub(crate) skills: Vec<String>,
    /// Virtual CPUs, 1 to 16: smolvm runs no more, so 17 to 255 become 16 [default: smolvm's, 4]
    #[arg(long, value_name = "N")]
    pub(crate) cpus: Option<u32>,
    /// Memory in MiB, at least 64 [default: smolvm's, 8192]
    #[arg(long, value_name = "MiB")]
    pub(crate) mem: Option<u32>,
    /// The guest directory the skills go to
    #[arg(
        long,
        env = "XTASK_SANDBOX_SKILLS_DIR",
        value_name = "DIR",
        default_value = "/root/.claude/skills"
    )]
    pub(crate) skills_dir: String,
    #[command(flatten)]
    pub(crate) smolvm: SmolvmArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SandboxExec {
    /// Machine name
    #[arg(long, default_value = DEFAULT_SANDBOX)]
    pub(crate) name: String,
    /// Working directory in the guest (the checkout is at /workspace/checkout)
    #[arg(long, short = 'w')]
    pub(crate) workdir: Option<String>,
    /// The command to run in the guest
    #[arg(last = true, required = true)]
    pub(crate) argv: Vec<String>,
    #[command(flatten)]
    pub(crate) smolvm: SmolvmArgs,
}

#[derive(Debug, Args)]
pub(crate) struct Images {
    #[command(subcommand)]
    pub(crate) cmd: ImagesCmd,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub(crate) enum ImagesCmd {
    /// Validate the images of a variant build, as the VALIDATE phase does.
    ///
    /// Follows `<arch>-<variant>/latest` to the build directory; every `.lz4` file must be
    /// complete LZ4 frames whose checksums verify, the OS disk must have a valid GPT with
    /// Bottlerocket's partitions, and `application-inventory.json` must list packages. Every
    /// problem is listed with its file; the exit status is 1 when there is any. Images are only
    /// checked for freshness when `--built-after` is given.
    Check(ImagesCheck),
    /// Write a sample variant build (GPT disks in LZ4 frames) for benchmarks and diagnosis
    #[command(hide = true)]
    Sample(ImagesSample),
}

#[derive(Debug, Args)]
pub(crate) struct ImagesCheck {
    /// A variant repo (its build/images/ is checked) or a directory holding <arch>-<variant>/
    /// (default: this checkout if it is a variant repo, else $FOREST_ROOT/bottlerocket)
    pub(crate) path: Option<PathBuf>,
    /// Variant (default: the only one built for the arch)
    #[arg(long)]
    pub(crate) variant: Option<String>,
    /// Architecture (default: the only one built for the variant)
    #[arg(long)]
    pub(crate) arch: Option<Arch>,
    /// Release version in the image names (default: the repo's Twoliter.toml, else the version
    /// in the name of the directory `latest` points to)
    #[arg(long)]
    pub(crate) release_version: Option<String>,
    /// Also fail on images modified before this time, in seconds since the Unix epoch
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub(crate) built_after: Option<u64>,
    /// Print the report as one JSON object on stdout
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ImagesSample {
    /// Where to write `<arch>-<variant>/<release-version>-<build-id>/` and `latest`
    pub(crate) images_root: PathBuf,
    /// Size of the OS disk in MiB (its LZ4 file is much smaller)
    #[arg(long, default_value_t = 64)]
    pub(crate) size_mib: u64,
    /// Also write a data disk (the split partition plan)
    #[arg(long)]
    pub(crate) data: bool,
    #[arg(long, default_value = "aws-dev")]
    pub(crate) variant: String,
    #[arg(long, value_enum, default_value = "x86_64")]
    pub(crate) arch: Arch,
    #[arg(long, default_value = "1.24.0")]
    pub(crate) release_version: String,
    #[arg(long, default_value = "a1b2c3d4")]
    pub(crate) build_id: String,
}

#[derive(Debug, Args)]
pub(crate) struct Bench {
    /// Also write the results as JSON on stdout
    #[arg(long)]
    pub(crate) json: bool,
    /// Runs per measurement (the median is reported)
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: u32,
    /// Size of the generated disk image for the validation benchmark, in MiB
    #[arg(long, default_value_t = 2048)]
    pub(crate) image_mib: u64,
    /// Only run the named benchmarks (next-step, pipeline, validate, noop, build)
    #[arg(long = "only")]
    pub(crate) only: Vec<String>,
}
