//! `sandbox up`: what goes into an agent's machine. The checkout goes in as one `git bundle`
//! (never a writable mount: a guest could plant git hooks that later run on the host), skills as
//! one tar, because smolvm's `cp` copies single files only.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::argv::{self, CreateSpec, Network};
use super::{describe, limits, Engine, Smolvm, DEFAULT_IMAGE};
use crate::{project, tools, ui};

/// This project's phase instructions, provisioned as skills: (directory under `phases/`, skill
/// name in the guest). Prefixed so they stand out among a user's own skills.
pub(crate) const PROJECT_SKILLS: [(&str, &str); 2] = [("kit", "bottlerocket-kit"), ("variant", "bottlerocket-variant")];

#[derive(Debug, Clone, Default)]
pub(crate) struct UpOptions {
    pub(crate) name: String,
    /// The machine's image; `None` for [`DEFAULT_IMAGE`].
    pub(crate) image: Option<String>,
    /// Without the network (`--no-net`): only for a local image, since a registry image is
    /// pulled inside the machine.
    pub(crate) no_net: bool,
    /// Names of skills under the host's `~/.claude/skills/`.
    pub(crate) skills: Vec<String>,
    pub(crate) cpus: Option<u32>,
    pub(crate) mem_mib: Option<u32>,
    /// The guest directory the skills go to.
    pub(crate) skills_dir: String,
}

impl UpOptions {
    /// Whether a setting that only applies when the machine is created was given.
    fn sets_creation(&self) -> bool {
        self.image.is_some() || self.no_net || self.cpus.is_some() || self.mem_mib.is_some()
    }
}

/// The sandbox machine: the image (the default one unless given), the network unless
/// `--no-net`, and the resources asked for, checked against smolvm's limits. Also a note when the
/// vCPUs were clamped.
pub(crate) fn sandbox_spec(opts: &UpOptions) -> Result<(CreateSpec, Option<String>)> {
    let cpus = opts.cpus.map(limits::cpus_flag).transpose()?;
    if let Some(mem) = opts.mem_mib {
        limits::check_mem(mem)?;
    }
    let spec = CreateSpec {
        name: opts.name.clone(),
        image: Some(opts.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.to_string())),
        cpus: cpus.as_ref().map(|c| c.count),
        mem_mib: opts.mem_mib,
        net: if opts.no_net { Network::Off } else { Network::Outbound },
        ..CreateSpec::default()
    };
    argv::create(&spec)?;
    Ok((spec, cpus.and_then(|c| c.note)))
}

/// A skill directory on the host and the name it gets in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SkillSource {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
}

/// Every skill to provision, checked on the host before anything is copied.
pub(crate) fn skill_sources(root: &Path, home: Option<&Path>, requested: &[String]) -> Result<Vec<SkillSource>> {
    let mut sources = Vec::new();
    for (phase, name) in PROJECT_SKILLS {
        let dir = root.join("phases").join(phase);
        if !dir.is_dir() {
            bail!(
                "{} is missing: the sandbox provisions it as the `{name}` skill; restore it with \
                 `git checkout -- phases/{phase}` or check XTASK_ROOT",
                dir.display()
            );
        }
        sources.push(SkillSource { name: name.into(), dir });
    }
    for name in requested {
        project::check_identifier("skill", name)?;
        if PROJECT_SKILLS.iter().any(|(_, own)| own == name) {
            bail!("skill `{name}` is this project's own and is always provisioned: drop `--skill {name}`");
        }
        if sources.iter().any(|s| &s.name == name) {
            continue;
        }
        let home = home.context("HOME is not set, so ~/.claude/skills cannot be found: set HOME")?;
        let dir = home.join(".claude/skills").join(name);
        if !dir.is_dir() {
            bail!(
                "skill `{name}` is not on this host: {} is not a directory; create it (with its \
                 SKILL.md) or drop `--skill {name}`",
                dir.display()
            );
        }
        sources.push(SkillSource {
            name: name.clone(),
            dir,
        });
    }
    Ok(sources)
}

use crate::fsx::TempDir;

/// Copies a tree, keeping symlinks as symlinks.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    fs_err::create_dir_all(dst)?;
    for entry in fs_err::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs_err::read_link(&from)?, &to)
                .with_context(|| format!("cannot copy the symlink {}", from.display()))?;
        } else if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            fs_err::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// Packs the skills into one tar whose top-level directories are the guest skill names.
fn pack_skills(sh: &Shell, sources: &[SkillSource], tmp: &Path) -> Result<PathBuf> {
    let stage = tmp.join("skills");
    for source in sources {
        copy_tree(&source.dir, &stage.join(&source.name))
            .with_context(|| format!("cannot stage skill `{}` from {}", source.name, source.dir.display()))?;
    }
    tools::require("tar", "install tar (`apt-get install tar`)")?;
    let tar = tmp.join("skills.tar");
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    // COPYFILE_DISABLE keeps macOS tar from adding `._*` metadata files.
    crate::process::read(cmd!(sh, "tar -cf {tar} -C {stage} {names...}").env("COPYFILE_DISABLE", "1"))
        .context("cannot pack the skills")?;
    Ok(tar)
}

/// Bundles the checkout's committed history (every ref, and HEAD so the clone checks it out).
fn bundle_checkout(sh: &Shell, root: &Path, tmp: &Path) -> Result<PathBuf> {
    if crate::git::is_dirty(sh, root).context("the sandbox copies the checkout in as a git bundle")? {
        ui::warn(format!(
            "{} has uncommitted changes; the machine gets the committed history only",
            root.display()
        ));
    }
    let bundle = tmp.join("checkout.bundle");
    crate::git::bundle(sh, root, &bundle, &["HEAD", "--all"])?;
    Ok(bundle)
}

/// `sandbox up`: the machine exists and answers, holds a fresh clone of the checkout at
/// `/workspace/checkout` (the previous one moved to `/workspace/checkout.previous`) and the
/// skills (old copies replaced) in the guest skills directory.
/// Everything smolvm would refuse, and every skill, is checked before smolvm runs.
pub(crate) fn up(sh: &Shell, engine: &Engine, opts: &UpOptions) -> Result<()> {
    let (spec, cpus_note) = sandbox_spec(opts)?;
    let root = project::root();
    argv::check_guest_dir(&opts.skills_dir).context("fix --skills-dir (XTASK_SANDBOX_SKILLS_DIR)")?;
    let skills_dir = &opts.skills_dir;
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
    let sources = skill_sources(&root, home.as_deref(), &opts.skills)?;
    let vm = Smolvm::preflight(sh, engine)?;

    let tmp = TempDir::new("xtask-sandbox")?;
    argv::host_path(tmp.path()).context("the system temp dir cannot be used with smolvm: set TMPDIR")?;
    let bundle = bundle_checkout(sh, &root, tmp.path())?;
    let skills_tar = pack_skills(sh, &sources, tmp.path())?;
    let names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
    let steps = argv::provision(&argv::Provision {
        name: &opts.name,
        bundle: &bundle,
        skills_tar: &skills_tar,
        skills: &names,
        skills_dir,
    })?;

    let _lock = super::lock_machine(&opts.name)?;
    if let Some(note) = cpus_note {
        ui::info(note);
    }
    let created = vm.ensure_running(sh, &spec)?;
    if !created && opts.sets_creation() {
        ui::warn(format!(
            "machine {} already exists: --image, --no-net, --cpus and --mem apply when it is \
             created (`cargo xtask sandbox down --name {}` first to change them)",
            opts.name, opts.name
        ));
    }
    require_git(sh, &vm, &opts.name)?;
    ui::step(format!(
        "copying the checkout and {} skills into {}",
        names.len(),
        opts.name
    ));
    for step in &steps {
        vm.run(sh, step)
            .with_context(|| format!("cannot provision machine {} (its image needs git and tar)", opts.name))?;
    }
    ui::step(format!(
        "machine {} is up: checkout at {}, skills in {}: {}",
        opts.name,
        argv::GUEST_CHECKOUT,
        skills_dir,
        names.join(", ")
    ));
    Ok(())
}

/// The clone needs git in the guest; without it, say how to get an image that has it.
fn require_git(sh: &Shell, vm: &Smolvm, name: &str) -> Result<()> {
    let output = vm.probe(sh, &argv::git_probe(name))?;
    if output.status.success() {
        return Ok(());
    }
    bail!(
        "machine {name} has no git ({}), which `sandbox up` needs to clone the checkout: recreate \
         it with an image that has git and tar, such as the default {DEFAULT_IMAGE} \
         (`cargo xtask sandbox down --name {name}`, then `cargo xtask sandbox up --name {name}` \
         without --image), or install git in it and run `sandbox up` again (on Alpine \
         `cargo xtask sandbox exec --name {name} -- apk add git`, on Debian `… -- sh -c \
         'apt-get update && apt-get install -y git'`; both need the network)",
        describe(&output)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in ["root/phases/kit", "root/phases/variant", "home/.claude/skills/mine"] {
            fs_err::create_dir_all(dir.path().join(d)).unwrap();
        }
        dir
    }

    #[test]
    fn skills_are_resolved_on_the_host() {
        let dir = fixture();
        let (root, home) = (dir.path().join("root"), dir.path().join("home"));
        let got = skill_sources(&root, Some(&home), &["mine".into(), "mine".into()]).unwrap();
        let names: Vec<_> = got.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["bottlerocket-kit", "bottlerocket-variant", "mine"]);
        assert_eq!(got[2].dir, home.join(".claude/skills/mine"));

        let err = skill_sources(&root, Some(&home), &["gone".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("skill `gone` is not on this host") && err.contains("--skill gone"),
            "{err}"
        );
        let err = skill_sources(&root, Some(&home), &["../x".into()])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("skill"), "{err}");
        let err = skill_sources(&root, Some(&home), &["bottlerocket-kit".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("always provisioned"), "{err}");
        fs_err::remove_dir_all(root.join("phases/variant")).unwrap();
        let err = skill_sources(&root, Some(&home), &[]).unwrap_err().to_string();
        assert!(err.contains("phases/variant is missing"), "{err}");
    }

    fn options(name: &str) -> UpOptions {
        UpOptions {
            name: name.into(),
            skills_dir: "/root/.claude/skills".into(),
            ..UpOptions::default()
        }
    }

    #[test]
    fn the_sandbox_gets_the_default_image_and_the_network() {
        let (spec, note) = sandbox_spec(&options("agent")).unwrap();
        assert_eq!(spec.image.as_deref(), Some(DEFAULT_IMAGE));
        assert_eq!(
            spec.net,
            Network::Outbound,
            "the default image is pulled, and the agent needs the network"
        );
        assert_eq!((spec.cpus, spec.mem_mib, note), (None, None, None));
        assert_eq!(
            argv::create(&spec).unwrap(),
            [
                "machine",
                "create",
                "--name",
                "agent",
                "--image",
                DEFAULT_IMAGE,
                "--net"
            ]
        );

        let local = UpOptions {
            image: Some("/images/rootfs".into()),
            no_net: true,
            cpus: Some(64),
            mem_mib: Some(2048),
            ..options("agent")
        };
        let (spec, note) = sandbox_spec(&local).unwrap();
        assert_eq!(spec.net, Network::Off, "a local image can go without the network");
        assert_eq!((spec.cpus, spec.mem_mib), (Some(16), Some(2048)));
        assert!(note.unwrap().contains("--cpus 64"));
    }

    #[test]
    fn the_sandbox_spec_is_checked_before_smolvm_runs() {
        let check = |opts: UpOptions| sandbox_spec(&opts).unwrap_err().to_string();
        let offline = UpOptions {
            no_net: true,
            ..options("agent")
        };
        assert!(check(offline).contains("drop --no-net"));
        assert!(check(options("agent-")).contains("ends with `-`"));
        let cpus = UpOptions {
            cpus: Some(0),
            ..options("agent")
        };
        assert!(check(cpus).contains("--cpus 0"));
        let mem = UpOptions {
            mem_mib: Some(32),
            ..options("agent")
        };
        assert!(check(mem).contains("--mem 32"));
    }

    #[test]
    fn copy_keeps_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs_err::create_dir_all(src.join("sub")).unwrap();
        fs_err::write(src.join("sub/a"), "a").unwrap();
        std::os::unix::fs::symlink("sub/a", src.join("link")).unwrap();
        copy_tree(&src, &dir.path().join("dst")).unwrap();
        assert_eq!(fs_err::read_to_string(dir.path().join("dst/sub/a")).unwrap(), "a");
        assert_eq!(
            fs_err::read_link(dir.path().join("dst/link")).unwrap(),
            Path::new("sub/a")
        );
    }
}
