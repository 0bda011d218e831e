//! Command-line arguments: plain data, no behaviour. Each command's `run` lives in its own file.

use std::path::PathBuf;

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
pub struct Xtask {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
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
    Restore(Restore),
    /// Manage the local OCI registry (one per checkout, on 127.0.0.1 only)
    Registry(Registry),
    /// Agent sandboxes in smolvm microVMs
    Sandbox(Sandbox),
    /// Check a variant build's images as VALIDATE does: LZ4 frames, GPT, inventory
    Images(Images),
    /// Measure the tool's own overhead on this machine (`cargo bench` underneath)
    Bench(Bench),
}

#[derive(Debug, Args)]
pub struct BuildKit {
    /// Kit to build (default: the Makefile's KIT, else the only directory under kits/)
    #[arg(long)]
    pub kit: Option<String>,
    /// Architecture (default: the host's, like the kit Makefile)
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Workspace directory (default: planning/build-kit-<kit>-<arch>/)
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Kit repo (default: this checkout if it is a kit repo, else $FOREST_ROOT/kits/<kit>)
    #[arg(long)]
    pub kit_dir: Option<PathBuf>,
    /// Publish to the registry at localhost:<port> (default: this checkout's registry)
    #[arg(long, value_name = "localhost:PORT")]
    pub registry: Option<String>,
    /// Rebuild and republish even when nothing changed since the last verified publish
    #[arg(long)]
    pub force: bool,
    /// Print one JSON summary object on stdout
    #[arg(long)]
    pub json: bool,
    /// Run inside a persistent smolvm Linux machine (opt-in; unverified on real hardware)
    #[arg(long)]
    pub in_vm: bool,
}

#[derive(Debug, Args)]
pub struct Variant {
    /// Kit to take from the local registry, as NAME or NAME@VERSION (repeatable)
    #[arg(long = "kit", value_name = "NAME[@VERSION]")]
    pub kits: Vec<String>,
    /// Variant to build (default: the only directory under variants/, or BUILDSYS_VARIANT)
    #[arg(long)]
    pub variant: Option<String>,
    /// Architecture (default: the host's)
    #[arg(long)]
    pub arch: Option<Arch>,
    /// How the variant repo is pointed at the local registry
    #[arg(long, value_enum, default_value_t)]
    pub strategy: Strategy,
    /// Leave the repo pointed at the local kits instead of restoring its files
    #[arg(long)]
    pub keep_config: bool,
    /// Workspace directory (default: planning/variant-<variant>-<arch>/)
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Variant repo (default: this checkout if it is a variant repo, else $FOREST_ROOT/bottlerocket)
    #[arg(long)]
    pub variant_dir: Option<PathBuf>,
    /// Take the kits from the registry at localhost:<port> (default: this checkout's registry;
    /// `cargo xtask registry url` in the checkout that published them prints theirs)
    #[arg(long, value_name = "localhost:PORT")]
    pub registry: Option<String>,
    /// Print one JSON summary object on stdout
    #[arg(long)]
    pub json: bool,
    /// Run inside a persistent smolvm Linux machine (opt-in; unverified on real hardware)
    #[arg(long)]
    pub in_vm: bool,
}

#[derive(Debug, Args)]
pub struct Phase {
    /// Phase name: setup, build, publish, verify (kit) or update-config, update-lock, build,
    /// validate (variant)
    pub phase: String,
    /// Workspace directory holding input.json
    pub workspace: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PhaseResultFlag {
    Success,
    Failure,
}

#[derive(Debug, Args)]
pub struct NextStep {
    /// Workspace directory holding input.json
    pub workspace: PathBuf,
    /// What the sub-agent reported for the phase it was spawned for
    #[arg(long)]
    pub phase_result: Option<PhaseResultFlag>,
    /// Why the phase failed, as the sub-agent said it
    #[arg(long)]
    pub reason: Option<String>,
    /// Attempts per phase before answering gate_failed
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
}

#[derive(Debug, Args)]
pub struct Status {
    /// One workspace (default: every workspace under planning/)
    pub workspace: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Restore {
    /// Workspace whose backups to restore
    pub workspace: PathBuf,
    /// Restore even files changed by someone since the backup
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct Registry {
    #[command(subcommand)]
    pub cmd: RegistryCmd,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Start the registry, or reuse it when it is already healthy; prints localhost:<port>.
    ///
    /// Port, backend and image are remembered per checkout: a later start without flags (and
    /// every workflow) uses the same ones. A container on another port or image is recreated;
    /// its data volume is kept.
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
}

#[derive(Debug, Args)]
pub struct RegistryStart {
    /// Port on 127.0.0.1 (default: stable per checkout, remembered)
    #[arg(long)]
    pub port: Option<u16>,
    /// Backend (default: docker when a Docker daemon answers, else native)
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Registry image for the docker backend
    #[arg(long, env = "XTASK_REGISTRY_IMAGE", default_value = "registry:2")]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct RegistryStatus {
    /// Print the status as one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RegistryList {
    /// Print the rows as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RegistryLogs {
    /// Keep printing new lines
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct Sandbox {
    #[command(subcommand)]
    pub cmd: SandboxCmd,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// Create (if absent) and start a machine, copy this checkout in, provision skills.
    ///
    /// The checkout goes in as a git bundle (committed history only) and is cloned at
    /// /workspace/checkout; running `up` again clones afresh and keeps the previous clone at
    /// /workspace/checkout.previous. phases/kit and phases/variant become the skills
    /// bottlerocket-kit and bottlerocket-variant, next to each --skill from ~/.claude/skills/,
    /// in /root/.claude/skills (XTASK_SANDBOX_SKILLS_DIR changes it); each skill's old copy is
    /// replaced. smolvm ≥ 1.9.0 is taken from $SMOLVM, else PATH.
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

pub const DEFAULT_SANDBOX: &str = "xtask-agent";

#[derive(Debug, Args)]
pub struct SandboxName {
    /// Machine name
    #[arg(long, default_value = DEFAULT_SANDBOX)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct SandboxStatus {
    /// Machine name
    #[arg(long, default_value = DEFAULT_SANDBOX)]
    pub name: String,
    /// Print smolvm's status document as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SandboxUp {
    /// Machine name
    #[arg(long, default_value = DEFAULT_SANDBOX)]
    pub name: String,
    /// OCI image for the machine
    #[arg(long)]
    pub image: Option<String>,
    /// A skill from ~/.claude/skills/<NAME>/ to provision as well (repeatable)
    #[arg(long = "skill", value_name = "NAME")]
    pub skills: Vec<String>,
    /// Virtual CPUs
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory in MiB
    #[arg(long)]
    pub mem: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SandboxExec {
    /// Machine name
    #[arg(long, default_value = DEFAULT_SANDBOX)]
    pub name: String,
    /// Working directory in the guest (the checkout is at /workspace/checkout)
    #[arg(long, short = 'w')]
    pub workdir: Option<String>,
    /// The command to run in the guest
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Images {
    #[command(subcommand)]
    pub cmd: ImagesCmd,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCmd {
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
pub struct ImagesCheck {
    /// A variant repo (its build/images/ is checked) or a directory holding <arch>-<variant>/
    /// (default: this checkout if it is a variant repo, else $FOREST_ROOT/bottlerocket)
    pub path: Option<PathBuf>,
    /// Variant (default: the only one built for the arch)
    #[arg(long)]
    pub variant: Option<String>,
    /// Architecture (default: the only one built for the variant)
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Release version in the image names (default: the repo's Twoliter.toml, else the version
    /// in the name of the directory `latest` points to)
    #[arg(long)]
    pub release_version: Option<String>,
    /// Also fail on images modified before this time, in seconds since the Unix epoch
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub built_after: Option<u64>,
    /// Print the report as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImagesSample {
    /// Where to write `<arch>-<variant>/<release-version>-<build-id>/` and `latest`
    pub images_root: PathBuf,
    /// Size of the OS disk in MiB (its LZ4 file is much smaller)
    #[arg(long, default_value_t = 64)]
    pub size_mib: u64,
    /// Also write a data disk (the split partition plan)
    #[arg(long)]
    pub data: bool,
    #[arg(long, default_value = "aws-dev")]
    pub variant: String,
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: Arch,
    #[arg(long, default_value = "1.24.0")]
    pub release_version: String,
    #[arg(long, default_value = "a1b2c3d4")]
    pub build_id: String,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Also write the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Runs per measurement (the median is reported)
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// Size of the generated disk image for the validation benchmark, in MiB
    #[arg(long, default_value_t = 2048)]
    pub image_mib: u64,
    /// Only run the named benchmarks (next-step, pipeline, validate, noop, build)
    #[arg(long = "only")]
    pub only: Vec<String>,
}
