//! `build-kit`: the four kit phases in order, resuming, from a terminal.

use std::process::ExitCode;

use anyhow::{bail, Result};
use serde_json::json;
use xshell::Shell;

use crate::arch::Arch;
use crate::flags;
use crate::kit::{self, verify::VerifyData};
use crate::phases::{self, Ctx, Outcome};
use crate::workflow::workspace::{KitInput, Workspace};
use crate::workflow::Workflow;
use crate::{project, ui};

impl flags::BuildKit {
    pub fn run(self, sh: &Shell) -> Result<ExitCode> {
        if self.in_vm {
            let args = super::args_without("--in-vm");
            return crate::smolvm::run_in_vm(sh, &args);
        }
        let json = self.json;
        super::finish(json, self.execute(sh))
    }

    /// Runs the workflow; returns the summary and how it ended.
    fn execute(self, sh: &Shell) -> Result<(serde_json::Value, Result<()>)> {
        let start = std::time::Instant::now();
        let (repo, explicit_repo) = match &self.kit_dir {
            Some(dir) => (project::absolute(dir), true),
            None => (kit::default_repo(self.kit.as_deref())?, false),
        };
        if !repo.join("Twoliter.toml").is_file() {
            bail!(
                "{} has no Twoliter.toml, so it is not a twoliter kit repo: pass --kit-dir <kit repo>",
                repo.display()
            );
        }
        let kit_name = match &self.kit {
            Some(kit) => kit.clone(),
            None => kit::default_kit(&repo)?,
        };
        project::check_identifier("kit", &kit_name)?;
        let arch = match self.arch {
            Some(arch) => Arch::from(arch),
            None => Arch::host()?,
        };
        let ws_dir = self
            .workspace
            .clone()
            .unwrap_or_else(|| project::planning_dir().join(format!("build-kit-{kit_name}-{arch}")));
        let ws = Workspace::new(&ws_dir);
        let input = KitInput {
            kit_name: kit_name.clone(),
            arch,
            registry: self.registry.clone(),
            kit_dir: (explicit_repo || repo != project::root()).then(|| repo.clone()),
        };
        // Check the inputs and tools fully before writing anything.
        kit::Kit::resolve(&ws, &input)?;
        crate::tools::twoliter(&repo)?;
        ws.write_input(&input)?;
        let ctx = Ctx::load(&ws)?;
        ui::step(format!(
            "build-kit {kit_name} for {arch} (workspace {})",
            ws.dir.display()
        ));
        let mut outcomes = Vec::new();
        let result = phases::run_all(sh, &ctx, self.force, &mut outcomes);
        let verified = ws.succeeded::<VerifyData>(Workflow::Kit, "verify").ok();
        print_summary(
            &ws.dir,
            &outcomes,
            verified.as_ref(),
            start.elapsed(),
            result.as_ref().err(),
        );
        let summary = summary_json(
            &ws.dir,
            &kit_name,
            arch,
            &outcomes,
            verified.as_ref(),
            start.elapsed(),
            result.as_ref().err(),
        );
        Ok((summary, result))
    }
}

fn print_summary(
    ws: &std::path::Path,
    outcomes: &[Outcome],
    verified: Option<&VerifyData>,
    elapsed: std::time::Duration,
    error: Option<&anyhow::Error>,
) {
    eprintln!();
    for o in outcomes {
        eprintln!(
            "  {:<10} {:<8} {}",
            o.phase,
            o.outcome,
            ui::duration(std::time::Duration::from_secs_f64(o.seconds))
        );
    }
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
            eprintln!(
                "next: cargo xtask variant --kit {}@{} --arch {}",
                v.kit, v.version, v.arch
            );
        }
        _ => eprintln!("\nworkspace: {} (`cargo xtask status {}`)", ws.display(), ws.display()),
    }
}

fn summary_json(
    ws: &std::path::Path,
    kit: &str,
    arch: Arch,
    outcomes: &[Outcome],
    verified: Option<&VerifyData>,
    elapsed: std::time::Duration,
    error: Option<&anyhow::Error>,
) -> serde_json::Value {
    json!({
        "ok": error.is_none(),
        "error": error.map(|e| format!("{e:#}")),
        "workspace": ws,
        "kit": kit,
        "arch": arch,
        "seconds": elapsed.as_secs_f64(),
        "phases": outcomes,
        "verified": verified,
        "next": verified.map(|v| vec!["cargo".to_string(), "xtask".into(), "variant".into(), "--kit".into(), format!("{}@{}", v.kit, v.version), "--arch".into(), v.arch.clone()]),
    })
}
