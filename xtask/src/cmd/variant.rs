//! `variant`: the four variant phases in order, resuming, then the repo's files restored.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use xshell::Shell;

use crate::arch::Arch;
use crate::flags::{self, Strategy};
use crate::phases::{self, Ctx};
use crate::variant::{self, backup::Backup, validate::ValidateData};
use crate::workflow::workspace::{KitSpec, VariantInput, Workspace};
use crate::workflow::Workflow;
use crate::{project, ui};

impl flags::Variant {
    pub fn run(self, sh: &Shell) -> Result<ExitCode> {
        if self.in_vm {
            return crate::smolvm::run_in_vm(sh, &super::args_without("--in-vm"));
        }
        let json = self.json;
        super::finish(json, self.execute(sh))
    }

    /// Runs the workflow and the restore; returns the summary and how it ended.
    fn execute(self, sh: &Shell) -> Result<(serde_json::Value, Result<()>)> {
        let start = std::time::Instant::now();
        let kits = self.kits.iter().map(|k| parse_kit(k)).collect::<Result<Vec<_>>>()?;
        let repo = match &self.variant_dir {
            Some(dir) => project::absolute(dir),
            None => variant::default_repo()?,
        };
        variant::check_repo(&repo)?;
        let variant_name = match &self.variant {
            Some(v) => v.clone(),
            None => variant::default_variant(&repo)?,
        };
        project::check_identifier("variant", &variant_name)?;
        let arch = match self.arch {
            Some(arch) => Arch::from(arch),
            None => Arch::host()?,
        };
        let kits = if kits.is_empty() { kits_of(&repo)? } else { kits };
        let ws_dir = self
            .workspace
            .clone()
            .unwrap_or_else(|| project::planning_dir().join(format!("variant-{variant_name}-{arch}")));
        let ws = Workspace::new(&ws_dir);
        let input = VariantInput {
            kits,
            variant: Some(variant_name.clone()),
            arch: Some(arch),
            registry: self.registry.clone(),
            variant_dir: (repo != project::root()).then(|| repo.clone()),
            strategy: Some(match self.strategy {
                Strategy::Override => "override".into(),
                Strategy::Vendor => "vendor".into(),
            }),
            keep_config: self.keep_config,
        };
        // Check the inputs fully before writing anything.
        let text = serde_json::to_string(&input)?;
        crate::workflow::workspace::Input::parse(&text)?;
        variant::Variant::resolve(&ws, &input)?;
        ws.write_input(&input)?;
        let ctx = Ctx::load(&ws)?;
        ui::step(format!(
            "variant {variant_name} for {arch} in {} (workspace {})",
            repo.display(),
            ws.dir.display()
        ));
        let mut outcomes = Vec::new();
        let result = phases::run_all(sh, &ctx, false, &mut outcomes);
        let restored = if self.keep_config { None } else { Some(restore(&ws)) };
        let validated = ws.succeeded::<ValidateData>(Workflow::Variant, "validate").ok();
        eprintln!();
        for o in &outcomes {
            eprintln!(
                "  {:<14} {:<8} {}",
                o.phase,
                o.outcome,
                ui::duration(std::time::Duration::from_secs_f64(o.seconds))
            );
        }
        match &restored {
            Some(Ok(())) => eprintln!("\nvariant repo files restored"),
            Some(Err(err)) => ui::warn(format!("restoring the variant repo failed: {err:#}")),
            None => eprintln!(
                "\nvariant repo left pointed at the local kits (--keep-config); restore with `cargo xtask restore {}`",
                ws.dir.display()
            ),
        }
        if result.is_ok() {
            eprintln!(
                "summary: {}",
                ws.report_path(Workflow::Variant.phase("validate").expect("variant phase"))
                    .display()
            );
        }
        let summary = json!({
            "ok": result.is_ok() && !matches!(restored, Some(Err(_))),
            "error": result.as_ref().err().or(restored.as_ref().and_then(|r| r.as_ref().err())).map(|e| format!("{e:#}")),
            "workspace": ws.dir,
            "variant": variant_name,
            "arch": arch,
            "seconds": start.elapsed().as_secs_f64(),
            "phases": outcomes,
            "images": validated.as_ref().map(|v| &v.images),
            "kits": validated.as_ref().map(|v| &v.kits),
            "restored": restored.as_ref().map(|r| r.is_ok()),
        });
        let ended = match (result, restored) {
            (Err(err), _) => Err(err),
            (Ok(()), Some(Err(err))) => Err(err),
            (Ok(()), _) => Ok(()),
        };
        Ok((summary, ended))
    }
}

fn restore(ws: &Workspace) -> Result<()> {
    let backup = Backup::new(&ws.dir);
    if backup.manifest()?.is_none() {
        return Ok(());
    }
    backup.restore(false).map(|_| ())
}

/// `NAME` or `NAME@VERSION`.
fn parse_kit(text: &str) -> Result<KitSpec> {
    let (name, version) = match text.split_once('@') {
        Some((name, version)) => (name, Some(version.trim_start_matches('v').to_string())),
        None => (text, None),
    };
    project::check_identifier("kit", name)?;
    if let Some(version) = &version {
        semver::Version::parse(version)
            .with_context(|| format!("--kit {text}: `{version}` is not a semver version (e.g. {name}@1.2.3)"))?;
    }
    Ok(KitSpec {
        name: name.to_string(),
        version,
    })
}

/// Without `--kit`: every kit the repo's `Twoliter.toml` lists.
fn kits_of(repo: &std::path::Path) -> Result<Vec<KitSpec>> {
    let path = repo.join("Twoliter.toml");
    let info = crate::twoliter::project::parse(&fs_err::read_to_string(&path)?)
        .with_context(|| format!("in {}", path.display()))?;
    if info.kits.is_empty() {
        anyhow::bail!(
            "{} lists no [[kit]]: nothing to take from the local registry",
            path.display()
        );
    }
    Ok(info
        .kits
        .iter()
        .map(|k| KitSpec {
            name: k.name.clone(),
            version: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::parse_kit;

    #[test]
    fn kit_flags() {
        let k = parse_kit("core-kit@v1.2.3").unwrap();
        assert_eq!((k.name.as_str(), k.version.as_deref()), ("core-kit", Some("1.2.3")));
        assert_eq!(parse_kit("core-kit").unwrap().version, None);
        assert!(parse_kit("core-kit@latest")
            .unwrap_err()
            .to_string()
            .contains("not a semver"));
        assert!(parse_kit("../x").is_err());
    }
}
