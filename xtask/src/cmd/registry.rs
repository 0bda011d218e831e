//! `cargo xtask registry …`: the local registry of the checkout, or of the forest it lies in.
//! The work is in `crate::registry`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use xshell::Shell;

use crate::flags::{self, RegistryCmd};
use crate::registry::{self, Backend, Condition, StartOptions};
use crate::ui;

impl flags::Registry {
    pub(crate) fn run(self, sh: &Shell) -> Result<ExitCode> {
        match self.cmd {
            RegistryCmd::Start(args) => start(sh, args),
            RegistryCmd::Status(args) => status(sh, args.json),
            RegistryCmd::Url => {
                let (url, healthy) = registry::url(sh)?;
                if !healthy {
                    ui::warn("the registry is not running: run `cargo xtask registry start`");
                }
                println!("{url}");
                Ok(ExitCode::SUCCESS)
            }
            RegistryCmd::List(args) => list(sh, args.json),
            RegistryCmd::Check(args) => check(args),
            RegistryCmd::Logs(args) => registry::logs(sh, args.follow).map(|()| ExitCode::SUCCESS),
            RegistryCmd::Stop => {
                if registry::stop(sh)? {
                    ui::step("stopped the registry (its data is kept)");
                } else {
                    ui::step("the registry was not running");
                }
                Ok(ExitCode::SUCCESS)
            }
            RegistryCmd::Clean => {
                let removed = registry::clean(sh)?;
                if removed.is_empty() {
                    ui::step(format!(
                        "nothing to remove: {} has no registry",
                        registry::Owner::current().describe()
                    ));
                } else {
                    ui::step("removed:");
                    for what in removed {
                        ui::info(what);
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn start(sh: &Shell, args: flags::RegistryStart) -> Result<ExitCode> {
    let options = StartOptions {
        port: args.port,
        backend: args.backend,
        // Without --image: --registry-image, else the remembered image, else the default, so a
        // registry started with `--image X` keeps X on the next start.
        image: args.image,
    };
    let began = Instant::now();
    let started = registry::start(sh, &options)?;
    ui::step(format!(
        "registry {} ({} backend, {}) at {} in {}",
        started.action,
        started.endpoint.backend.name(),
        started.location,
        started.endpoint.url(),
        ui::duration(began.elapsed())
    ));
    println!("{}", started.endpoint.url());
    Ok(ExitCode::SUCCESS)
}

fn status(sh: &Shell, json: bool) -> Result<ExitCode> {
    let report = registry::status(sh)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let mut lines = vec![format!("state:        {}", report.condition.word())];
        if let Condition::Unhealthy(reason) = &report.condition {
            lines.push(format!("reason:       {reason}"));
        }
        lines.push(format!("backend:      {}", report.backend.map_or("-", Backend::name)));
        lines.push(format!("url:          {}", report.url));
        let fields = [
            ("image", report.image.clone()),
            ("container", report.container.clone()),
            ("volume", report.volume.clone()),
            ("data dir", report.data_dir.as_ref().map(|d| d.display().to_string())),
            ("pid", report.pid.map(|p| p.to_string())),
            ("log", report.log.clone()),
            ("repositories", report.repositories.map(|n| n.to_string())),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                lines.push(format!("{:<14}{value}", format!("{name}:")));
            }
        }
        for (i, ca) in report.team_cas.iter().enumerate() {
            let name = if i == 0 { "team CAs:" } else { "" };
            lines.push(format!("{name:<14}{}", ca.display()));
        }
        if !report.team_cas.is_empty() {
            lines.push(format!(
                "{:<14}every run trusts these with the system's roots; delete one to forget it",
                ""
            ));
        }
        println!("{}", lines.join("\n"));
    }
    Ok(ExitCode::from(report.condition.exit_code()))
}

fn list(sh: &Shell, json: bool) -> Result<ExitCode> {
    let endpoint = registry::running(sh)?;
    let rows = registry::list::rows(&endpoint.client())?;
    let broken = rows.iter().filter(|r| r.error.is_some()).count();
    if json {
        let value = serde_json::json!({ "registry": endpoint.url(), "images": rows });
        println!("{value}");
    } else {
        print!("{}", registry::list::table(&rows));
    }
    if broken > 0 {
        ui::warn(format!(
            "{broken} of {} rows could not be read in full (see their errors)",
            rows.len()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn check(args: flags::RegistryCheck) -> Result<ExitCode> {
    let address = registry::Address::parse(&args.registry)?;
    let client = registry::prepare(&address, args.ca_file.as_deref())?;
    let report = registry::check::run(&client);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.text());
    }
    if let Some(step) = report.failure() {
        ui::warn(format!("{} fails its {} check", report.registry, step.step));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
