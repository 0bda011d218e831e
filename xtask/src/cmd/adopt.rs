//! `adopt`: this xtask into a kit repo, a variant repo, or every repo of a forest. The work is
//! in `crate::adopt`; stdout gets only the git commands that commit it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use xshell::Shell;

use crate::adopt::{self, Plan, RepoKind};
use crate::{flags, project, ui};

impl flags::Adopt {
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        let target = project::absolute(&self.target);
        let target = std::fs::canonicalize(&target).unwrap_or(target);
        let repos = adopt::repos_of(&target)?;
        let source = adopt::Source::current()?;
        // Every repo is checked before any is written: a refusal leaves all of them as they were.
        let plans = repos
            .iter()
            .map(|(kind, repo)| adopt::plan(sh, &source, *kind, repo))
            .collect::<Result<Vec<Plan>>>()?;
        let mut commits = Vec::new();
        for plan in &plans {
            if plan.is_empty() {
                ui::step(format!(
                    "{} ({}): already adopted, nothing changed",
                    plan.repo.display(),
                    plan.kind.name()
                ));
            } else {
                ui::step(format!(
                    "adopting the xtask into {} ({})",
                    plan.repo.display(),
                    plan.kind.name()
                ));
                adopt::apply(sh, plan)?;
                describe(plan);
            }
            if let Some(pending) = adopt::pending(sh, &plan.repo)? {
                commits.push(pending);
            }
        }
        if commits.is_empty() {
            ui::step("the adoption is committed");
        } else {
            let why = if commits.iter().any(|p| p.dirty) {
                ": until then the edited .gitignore makes the build id `-dirty`"
            } else {
                ""
            };
            let count = if commits.len() == 1 {
                "one command"
            } else {
                "one command per repo"
            };
            ui::step(format!("commit it ({count}){why}"));
            for pending in &commits {
                println!("{}", pending.command);
            }
        }
        let kinds: Vec<RepoKind> = plans.iter().map(|p| p.kind).collect();
        if kinds.contains(&RepoKind::Kit) {
            ui::info("then, in a kit repo: `make prep` (installs its twoliter) and `cargo xtask build-kit`");
        }
        if kinds.contains(&RepoKind::Variant) {
            ui::info("then, in the variant repo: `cargo xtask variant --kit <kit> …`");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What one adoption wrote, a line per part.
fn describe(plan: &Plan) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for rel in plan.writes.keys() {
        let part = match rel.components().next() {
            Some(first)
                if rel.components().count() > 1 && first.as_os_str() != ".cargo" && first.as_os_str() != "planning" =>
            {
                format!("{}/", first.as_os_str().to_string_lossy())
            }
            _ => rel.display().to_string(),
        };
        *counts.entry(part).or_default() += 1;
    }
    for (part, n) in counts {
        let what = match part.as_str() {
            "xtask/" => " (its own workspace, with its Cargo.lock)",
            ".cargo/config.toml" => " (the `cargo xtask` alias, nothing else)",
            "planning/.gitignore" => " (workspaces stay out of git)",
            _ => "",
        };
        if n > 1 {
            ui::info(format!("wrote {part}: {n} files{what}"));
        } else {
            ui::info(format!("wrote {part}{what}"));
        }
    }
    if !plan.removals.is_empty() {
        ui::info(format!(
            "removed {} files of the earlier copy that this xtask no longer has",
            plan.removals.len()
        ));
    }
    if plan.gitignore.is_some() {
        ui::info(
            ".gitignore: `/.cargo` became `/.cargo/*` and `!/.cargo/config.toml` (CARGO_HOME stays \
             ignored, the alias is tracked)",
        );
    }
    ui::info("Cargo.toml and Cargo.lock of the repo: untouched");
}
