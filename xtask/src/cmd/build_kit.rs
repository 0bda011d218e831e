//! `build-kit`: the four kit phases in order, resuming, from a terminal.

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::flags;
use crate::kit::verify::{Verify, VerifyData};
use crate::kit::{Kit, KitInput};
use crate::orchestrate::direct;
use crate::protocol::{BuildKitSummary, PhaseOutcome};
use crate::workflow::Workspace;
use crate::{project, ui};

impl flags::BuildKit {
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        if self.in_vm {
            let args = super::args_without("--in-vm");
            return crate::smolvm::run_in_vm(sh, &self.vm.smolvm.engine(), &self.vm.vm_image, &args);
        }
        if let Some(target) = self.on.target() {
            let run = || {
                let repo = match &self.kit_dir {
                    Some(dir) => dir.clone(),
                    None => crate::kit::default_repo(self.kit.as_deref())?,
                };
                crate::remote::run_on(
                    sh,
                    crate::remote::Request {
                        target,
                        repos: vec![repo],
                        // The kit's `make build` runs its `make prep`, which installs twoliter.
                        prepare: Vec::new(),
                        files: self.ca_file.iter().map(|ca| (ca.clone(), super::SENT_CA)).collect(),
                        args: &|layout| self.remote_args(layout),
                        json: self.json,
                    },
                )
            };
            return super::finish_remote(self.json, run());
        }
        let json = self.json;
        super::finish(json, self.execute(sh))
    }

    /// This command line for the builder of `--on`: paths translated to the builder's.
    pub(super) fn remote_args(&self, layout: &crate::remote::layout::Layout) -> Result<Vec<String>> {
        let mut args = super::remote_global_args();
        args.push("build-kit".into());
        let path = |flag: &str, p: &std::path::Path| layout.translate(flag, &crate::remote::real(p));
        if let Some(kit) = &self.kit {
            args.extend(["--kit".into(), kit.clone()]);
        }
        if let Some(arch) = self.arch {
            args.extend(["--arch".into(), arch.to_string()]);
        }
        if let Some(ws) = &self.workspace {
            args.extend(["--workspace".into(), path("--workspace", ws)?]);
        }
        if let Some(dir) = &self.kit_dir {
            args.extend(["--kit-dir".into(), path("--kit-dir", dir)?]);
        }
        if let Some(registry) = &self.registry {
            args.extend(["--registry".into(), registry.clone()]);
        }
        if self.ca_file.is_some() {
            args.extend(["--ca-file".into(), crate::remote::sent_file(layout, super::SENT_CA)]);
        }
        if self.force {
            args.push("--force".into());
        }
        args.push("--json".into());
        Ok(args)
    }

    /// Runs the workflow; returns the summary and how it ended.
    fn execute(self, sh: &Shell) -> Result<(BuildKitSummary, Result<()>)> {
        // Refused before anything is written: the build would fail late, half-way.
        crate::docker_engine::require_local()?;
        let start = std::time::Instant::now();
        let input = KitInput::with_defaults(self.kit, self.arch, self.kit_dir.as_deref(), self.registry)?;
        let ws_dir = self
            .workspace
            .clone()
            .unwrap_or_else(|| project::planning_dir().join(format!("build-kit-{}-{}", input.kit_name, input.arch)));
        let ws = Workspace::new(&ws_dir);
        // Check the inputs fully before writing anything. twoliter is the repo's business: its
        // `make build` installs the version it pins.
        let kit = Kit::resolve(&ws, &input)?;
        // Trust for the registry is set before any request and before other threads start.
        if let Some(address) = kit.wanted_registry()? {
            crate::registry::prepare(&address, self.ca_file.as_deref())?;
        }
        crate::signals::install()?;
        ws.stop_orphans()?;
        super::claim_local(&ws.dir)?;
        ws.write_input(&input)?;
        crate::orchestrate::Subject::Kit(kit.clone()).record()?;
        ui::step(format!(
            "build-kit {} for {} (workspace {})",
            kit.name,
            kit.arch,
            ws.dir.display()
        ));
        let (outcomes, result) = direct::run_all(sh, &kit, self.force);
        let verified = ws.succeeded::<Verify>().ok();
        print_summary(
            &ws,
            &outcomes,
            verified.as_ref(),
            start.elapsed(),
            result.as_ref().err(),
        );
        let summary = BuildKitSummary {
            ok: result.is_ok(),
            error: result.as_ref().err().map(|e| format!("{e:#}")),
            workspace: ws.dir.clone(),
            kit: kit.name.clone(),
            arch: kit.arch,
            seconds: start.elapsed().as_secs_f64(),
            phases: outcomes,
            next: verified.as_ref().map(next_command),
            pinned_kit: verified.as_ref().map(pinned_kit),
            verified,
        };
        Ok((summary, result))
    }
}

/// `<kit>@<version>@<index digest>`: the kit as `variant --kit` takes it pinned by digest.
fn pinned_kit(v: &VerifyData) -> String {
    format!("{}@{}@{}", v.kit, v.version, v.index_digest)
}

/// `cargo xtask variant --kit <kit>@<version> --arch <arch>`, as argv.
fn next_command(v: &VerifyData) -> Vec<String> {
    ["cargo", "xtask", "variant", "--kit"]
        .into_iter()
        .map(String::from)
        .chain([format!("{}@{}", v.kit, v.version), "--arch".into(), v.arch.clone()])
        .collect()
}

fn print_summary(
    ws: &Workspace,
    outcomes: &[PhaseOutcome],
    verified: Option<&VerifyData>,
    elapsed: std::time::Duration,
    error: Option<&anyhow::Error>,
) {
    eprintln!();
    super::print_outcomes(outcomes, 10);
    match (error, verified) {
        (None, Some(v)) => {
            eprintln!(
                "\n{}/{}:{} verified in {} (lock digest {})",
                v.registry,
                v.repository,
                v.tag,
                ui::duration(elapsed),
                v.lock_digest
            );
            eprintln!("index digest: {}", v.index_digest);
            eprintln!("next: {}", next_command(v).join(" "));
            eprintln!(
                "elsewhere (a teammate, CI), pinned to exactly this index: cargo xtask variant --registry {} --kit {}",
                v.registry,
                pinned_kit(v)
            );
        }
        _ => eprintln!(
            "\nworkspace: {} (`cargo xtask status {}`)",
            ws.dir.display(),
            ws.dir.display()
        ),
    }
}
