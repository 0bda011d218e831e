//! `variant`: the four variant phases in order, resuming, then the repo's files restored.

use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::flags;
use crate::orchestrate::{direct, progress};
use crate::protocol::VariantSummary;
use crate::variant::journal::Backups;
use crate::variant::validate::Validate;
use crate::variant::{KitSpec, Variant, VariantInput, VariantRequest};
use crate::workflow::{VariantPhase, Workspace};
use crate::{project, ui};

impl flags::Variant {
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        if self.in_vm {
            let args = super::args_without("--in-vm");
            return crate::smolvm::run_in_vm(sh, &self.vm.smolvm.engine(), &self.vm.vm_image, &args);
        }
        if let Some(target) = self.on.target() {
            let run = || {
                let repo = match &self.variant_dir {
                    Some(dir) => dir.clone(),
                    None => crate::variant::default_repo()?,
                };
                // A fresh copy on the builder has no twoliter: the repo's own task installs the
                // one it pins (UPDATE_LOCK runs twoliter itself).
                let prepare = crate::variant::makefile::installs_twoliter(&repo)
                    .then(|| {
                        let step = crate::remote::script::Prepare {
                            dir: String::new(),
                            unless: crate::tools::REPO_TWOLITER.into(),
                            argv: ["cargo", "make", "install-twoliter"].map(String::from).to_vec(),
                        };
                        (repo.clone(), step)
                    })
                    .into_iter()
                    .collect();
                crate::remote::run_on(
                    sh,
                    crate::remote::Request {
                        target,
                        repos: vec![repo],
                        prepare,
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
        use clap::ValueEnum;
        let mut args = super::remote_global_args();
        args.push("variant".into());
        let path = |flag: &str, p: &std::path::Path| layout.translate(flag, &crate::remote::real(p));
        for kit in &self.kits {
            args.extend(["--kit".into(), kit.clone()]);
        }
        if let Some(variant) = self.variant.as_ref().filter(|v| !v.is_empty()) {
            args.extend(["--variant".into(), variant.clone()]);
        }
        if let Some(arch) = self.arch {
            args.extend(["--arch".into(), arch.to_string()]);
        }
        if let Some(strategy) = self.strategy.to_possible_value() {
            args.extend(["--strategy".into(), strategy.get_name().to_string()]);
        }
        if self.keep_config {
            args.push("--keep-config".into());
        }
        if self.trust_registry {
            args.push("--trust-registry".into());
        }
        if let Some(ws) = &self.workspace {
            args.extend(["--workspace".into(), path("--workspace", ws)?]);
        }
        if let Some(dir) = &self.variant_dir {
            args.extend(["--variant-dir".into(), path("--variant-dir", dir)?]);
        }
        if let Some(registry) = &self.registry {
            args.extend(["--registry".into(), registry.clone()]);
        }
        if self.ca_file.is_some() {
            args.extend(["--ca-file".into(), crate::remote::sent_file(layout, super::SENT_CA)]);
        }
        args.push("--json".into());
        Ok(args)
    }

    /// Runs the workflow and the restore; returns the summary and how it ended.
    fn execute(self, sh: &Shell) -> Result<(VariantSummary, Result<()>)> {
        // Refused before anything is written: the build would fail late, half-way.
        crate::docker_engine::require_local()?;
        let start = std::time::Instant::now();
        let input = VariantInput::with_defaults(VariantRequest {
            kits: self.kits.iter().map(|k| KitSpec::parse(k)).collect::<Result<_>>()?,
            // BUILDSYS_VARIANT may be set but empty.
            variant: self.variant.filter(|v| !v.is_empty()),
            arch: self.arch,
            variant_dir: self.variant_dir,
            registry: self.registry,
            strategy: self.strategy,
            keep_config: self.keep_config,
            trust_registry: self.trust_registry,
        })?;
        let ws_dir = self.workspace.clone().unwrap_or_else(|| {
            let variant = input.variant.as_deref().unwrap_or_default();
            let arch = input.arch.map(|a| a.to_string()).unwrap_or_default();
            project::planning_dir().join(format!("variant-{variant}-{arch}"))
        });
        let ws = Workspace::new(&ws_dir);
        // Check the inputs fully before writing anything.
        let variant = Variant::resolve(&ws, &input)?;
        // Trust for the registry is set before any request and before other threads start.
        if let Some(registry) = &input.registry {
            crate::registry::prepare(&crate::registry::Address::parse(registry)?, self.ca_file.as_deref())?;
        }
        // One run per repo, from the first edit to the last restore.
        let _repo = crate::repo_lock::RepoLock::acquire(&variant.repo, &ws.dir)?;
        crate::signals::install()?;
        ws.stop_orphans()?;
        super::claim_local(&ws.dir)?;
        variant.recover()?;
        ws.write_input(&input)?;
        crate::orchestrate::Subject::Variant(variant.clone()).record()?;
        ui::step(format!(
            "variant {} for {} in {} (workspace {})",
            variant.variant,
            variant.arch,
            variant.repo.display(),
            ws.dir.display()
        ));
        let (outcomes, result) = direct::run_all(sh, &variant, false);
        let restored = if self.keep_config { None } else { Some(restore(&ws)) };
        if result.is_ok() && matches!(restored, Some(Ok(()))) {
            // A later `next-step` answers `done` from the images, not from the restored repo.
            progress::update::<VariantPhase>(&ws, |p, _| {
                if let Some(completed) = &mut p.completed {
                    completed.restored = Some(true);
                }
            })?;
        }
        // Only this run's images: after a failure an earlier run's VALIDATE is not news.
        let validated = result.is_ok().then(|| ws.succeeded::<Validate>().ok()).flatten();
        eprintln!();
        super::print_outcomes(&outcomes, 14);
        match &restored {
            Some(Ok(())) => eprintln!("\nvariant repo files restored"),
            Some(Err(err)) => ui::warn(format!("restoring the variant repo failed: {err:#}")),
            None => eprintln!(
                "\nvariant repo left pointed at the local kits (--keep-config); restore with `cargo xtask restore {}`",
                ws.dir.display()
            ),
        }
        if result.is_ok() {
            eprintln!("summary: {}", ws.report_path(VariantPhase::Validate).display());
        }
        let restore_error = restored.as_ref().and_then(|r| r.as_ref().err());
        let summary = VariantSummary {
            ok: result.is_ok() && restore_error.is_none(),
            error: result.as_ref().err().or(restore_error).map(|e| format!("{e:#}")),
            workspace: ws.dir.clone(),
            variant: variant.variant.clone(),
            arch: variant.arch,
            seconds: start.elapsed().as_secs_f64(),
            phases: outcomes,
            images: validated.as_ref().map(|v| v.images.clone()),
            kits: validated.map(|v| v.kits),
            restored: restored.as_ref().map(|r| r.is_ok()),
        };
        let ended = match (result, restored) {
            (Err(err), _) => Err(err),
            (Ok(()), Some(Err(err))) => Err(err),
            (Ok(()), _) => Ok(()),
        };
        Ok((summary, ended))
    }
}

fn restore(ws: &Workspace) -> Result<()> {
    let backups = Backups::new(&ws.dir);
    if backups.journal()?.is_none() {
        return Ok(());
    }
    backups.restore(false).map(|_| ())
}
