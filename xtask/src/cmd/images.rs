//! `images check`: VALIDATE's image checks on any build, e.g. images built by hand with
//! `cargo make`; `images sample` (hidden): a sample build for benchmarks and diagnosis.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::json;
use xshell::Shell;

use crate::arch::Arch;
use crate::flags::{self, ImagesCmd};
use crate::image::{self, Expect, FileKind, ImageReport};
use crate::{ui, variant};

impl flags::Images {
    pub(crate) fn run(self, _sh: &Shell) -> Result<ExitCode> {
        match self.cmd {
            ImagesCmd::Check(check) => check.run(),
            ImagesCmd::Sample(sample) => sample.run(),
        }
    }
}

impl flags::ImagesCheck {
    fn run(self) -> Result<ExitCode> {
        let path = match &self.path {
            Some(path) => crate::project::absolute(path),
            None => variant::default_repo()?,
        };
        let (images_root, repo) = if variant::is_variant_repo(&path) {
            (path.join("build/images"), Some(path.clone()))
        } else {
            (path.clone(), None)
        };
        if !images_root.is_dir() {
            bail!(
                "{} does not exist: no variant build has run there (build one with `cargo xtask variant`), \
                 or pass the variant repo or its build/images directory",
                images_root.display()
            );
        }
        let (arch, variant) = pick_build(&images_root, self.arch, self.variant.as_deref())?;
        let release_version = match (&self.release_version, &repo) {
            (Some(version), _) => version.clone(),
            (None, Some(repo)) => {
                let path = repo.join("Twoliter.toml");
                let text = crate::fsx::read_required(&path)?;
                crate::twoliter::project::release_version(&text)
                    .with_context(|| format!("in {}", path.display()))?
                    .to_string()
            }
            (None, None) => version_from_latest(&images_root.join(format!("{arch}-{variant}")))?,
        };
        let expect = Expect {
            variant: variant.clone(),
            arch,
            release_version: release_version.clone(),
            build_id: None,
            built_after: self.built_after.map(|secs| UNIX_EPOCH + Duration::from_secs(secs)),
            // A variant repo says whether its images include a data disk.
            data_image: match &repo {
                Some(repo) => crate::variant::split_partitions(repo, &variant)?,
                None => false,
            },
        };
        let start = Instant::now();
        let report = image::inspect(&images_root, &expect);
        let seconds = start.elapsed().as_secs_f64();
        if self.json {
            let summary = json!({
                "ok": report.problems.is_empty(),
                "images_root": images_root,
                "variant": variant,
                "arch": arch,
                "release_version": release_version,
                "freshness_checked": self.built_after.is_some(),
                "seconds": seconds,
                "report": report,
            });
            println!("{summary}");
        } else {
            print!("{}", render(&report, seconds));
        }
        if report.problems.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        let list: Vec<String> = report.problems.iter().map(|p| format!("  - {p}")).collect();
        bail!(
            "the {arch} {variant} images are not valid ({} problem{}):\n{}",
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" },
            list.join("\n")
        )
    }
}

/// The (arch, variant) whose build to check: `<arch>-<variant>/` directories under the images
/// root, narrowed by what was asked; exactly one must remain.
fn pick_build(images_root: &Path, arch: Option<Arch>, variant: Option<&str>) -> Result<(Arch, String)> {
    let mut builds: Vec<(Arch, String)> = fs_err::read_dir(images_root)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (a, v) = name.split_once('-')?;
            Some((Arch::parse(a).ok()?, v.to_string()))
        })
        .filter(|(a, v)| arch.is_none_or(|want| want == *a) && variant.is_none_or(|want| want == v))
        .collect();
    builds.sort_by(|a, b| (a.0.name(), &a.1).cmp(&(b.0.name(), &b.1)));
    match builds.as_slice() {
        [only] => Ok(only.clone()),
        [] => match (arch, variant) {
            (Some(arch), Some(variant)) => Ok((arch, variant.to_string())),
            _ => bail!(
                "{} holds no <arch>-<variant>/ build directory{}: build the variant first, or pass \
                 --variant and --arch",
                images_root.display(),
                if arch.is_some() || variant.is_some() {
                    " matching"
                } else {
                    ""
                }
            ),
        },
        many => {
            let names: Vec<String> = many.iter().map(|(a, v)| format!("{a}-{v}")).collect();
            bail!(
                "{} holds several builds ({}): pass --variant and --arch",
                images_root.display(),
                names.join(", ")
            )
        }
    }
}

/// The release version in the name of the directory `latest` points to (`<version>-<build-id>`).
fn version_from_latest(arch_dir: &Path) -> Result<String> {
    let latest = arch_dir.join("latest");
    let target = fs_err::read_link(&latest)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.split_once('-') {
        Some((version, _)) if semver::Version::parse(version).is_ok() => Ok(version.to_string()),
        _ => bail!(
            "{} points to `{name}`, which does not start with a release version: pass --release-version",
            latest.display()
        ),
    }
}

/// The report as a person reads it.
fn render(report: &ImageReport, seconds: f64) -> String {
    let mut out = String::new();
    if let (Some(dir), Some(id)) = (&report.dir, &report.build_id) {
        out.push_str(&format!("build {id}: {}\n", dir.display()));
    }
    for file in &report.files {
        let kind = match file.kind {
            FileKind::Os => "os",
            FileKind::Data => "data",
            FileKind::Other => "file",
        };
        let decoded = file
            .decoded_bytes
            .map(|n| format!(", {} decoded", ui::bytes(n)))
            .unwrap_or_default();
        let name = file.path.file_name().unwrap_or_default().to_string_lossy();
        out.push_str(&format!("  {kind:<5} {name} ({}{decoded})\n", ui::bytes(file.bytes)));
    }
    if !report.partitions.is_empty() {
        out.push_str(&format!("  partitions: {}\n", report.partitions.join(", ")));
    }
    if report.inventory_packages > 0 {
        out.push_str(&format!("  inventory: {} packages\n", report.inventory_packages));
    }
    for note in &report.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    let took = ui::duration(Duration::from_secs_f64(seconds));
    if report.problems.is_empty() {
        out.push_str(&format!("ok: the images are valid (checked in {took})\n"));
    } else {
        out.push_str(&format!(
            "FAILED: {} problem(s) (checked in {took})\n",
            report.problems.len()
        ));
    }
    out
}

impl flags::ImagesSample {
    fn run(self) -> Result<ExitCode> {
        crate::project::check_identifier("variant", &self.variant)?;
        semver::Version::parse(&self.release_version)
            .with_context(|| format!("release version `{}` is not semver", self.release_version))?;
        let start = Instant::now();
        let dir: PathBuf = crate::image::sample_disk::write_sample_build(
            &crate::project::absolute(&self.images_root),
            &self.variant,
            self.arch,
            &self.release_version,
            &self.build_id,
            self.size_mib << 20,
            self.data,
        )?;
        ui::info(format!("wrote {} in {}", dir.display(), ui::duration(start.elapsed())));
        println!("{}", dir.display());
        Ok(ExitCode::SUCCESS)
    }
}
