//! VALIDATE's image checks: the images a variant build left under
//! `build/images/<arch>-<variant>/latest/` are from this build, complete and intact.
//!
//! - `latest` resolves to `<release-version>-<build-id>`, of the build id asked for when there is
//!   one (VALIDATE asks for the variant repo's current one);
//! - the OS image `bottlerocket-<variant>-<arch>-<version>-<build-id>.img.lz4` exists (or an
//!   uncompressed `.img`, checked the same way, or a `.qcow2`/`.vmdk`/`.ova`, only checked for
//!   presence); a `-data` image is validated when present, as the variant's partition plan
//!   decides whether there is one;
//! - when asked (`images check --built-after`), every image file (`.lz4`, `.img`, `.qcow2`,
//!   `.vmdk`, `.ova`) was modified after a given time. VALIDATE does not ask: an incremental
//!   build leaves the images it did not need to redo as they were, however old;
//! - every `.lz4` file is one or more complete LZ4 frames whose checksums verify; a symlink to a
//!   file already checked is not decoded again, and a dangling one is a fault;
//! - the OS disk has a valid GPT (see `gpt`) with a `BOTTLEROCKET-ROOT-*` partition;
//! - `application-inventory.json` lists packages with names and versions.
//!
//! Every problem is collected and reported together, each naming its file, so one run shows
//! everything that is wrong. Decoding is streamed (bounded memory whatever the image size) and
//! independent files are decoded in parallel.

pub(crate) mod gpt;
pub(crate) mod liblz4;
pub(crate) mod lz4check;
pub(crate) mod sample_disk;

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};

use crate::problems::Problems;
use crate::ui::utc;
use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use gpt::GptScanner;

/// What the build was asked to make.
#[derive(Debug, Clone)]
pub(crate) struct Expect {
    pub(crate) variant: String,
    pub(crate) arch: Arch,
    pub(crate) release_version: String,
    /// The build id the images must be named with (`latest` → `<release-version>-<build-id>`).
    pub(crate) build_id: Option<String>,
    /// A time every image must be modified after, for checks by hand.
    pub(crate) built_after: Option<SystemTime>,
    /// The variant's partition plan is `split`, so a data image must be there too.
    pub(crate) data_image: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileKind {
    Os,
    Data,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImageFile {
    pub(crate) path: PathBuf,
    pub(crate) kind: FileKind,
    /// Size on disk (compressed, for `.lz4`).
    pub(crate) bytes: u64,
    /// Size after decoding, for files that were decoded and intact.
    pub(crate) decoded_bytes: Option<u64>,
}

/// What VALIDATE found. `problems` is empty when the images are good.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ImageReport {
    /// The version directory `latest` resolves to.
    pub(crate) dir: Option<PathBuf>,
    /// Its name, `<release-version>-<build-id>`.
    pub(crate) version_dir: Option<String>,
    pub(crate) build_id: Option<String>,
    pub(crate) files: Vec<ImageFile>,
    /// Partition names of the OS disk, in table order.
    pub(crate) partitions: Vec<String>,
    pub(crate) inventory_packages: usize,
    /// Things worth saying that are not faults (an image format checked less deeply).
    pub(crate) notes: Vec<String>,
    /// Every fault found, each naming its file.
    pub(crate) problems: Problems,
}

/// Filesystems and the kernel's coarse clock may stamp a file slightly before the moment a
/// build start was recorded; a leftover image from an earlier build is minutes or days older.
const MTIME_SLACK: Duration = Duration::from_secs(1);
/// Files decoded at once. Each holds about 17 MiB (a 1 MiB read buffer, one compressed and three
/// decoded 4 MiB blocks), so peak memory stays under 64 MiB on any machine.
const MAX_DECODERS: usize = 3;
const READ_BUFFER: usize = 1 << 20;
const IMAGE_SUFFIXES: [&str; 5] = [".img.lz4", ".img", ".qcow2", ".vmdk", ".ova"];
const INVENTORY: &str = "application-inventory.json";
const REMEDY: &str = "rebuild the variant (`cargo xtask variant`, or `cargo xtask phase build <workspace>`; \
     twoliter redoes a build only when its inputs changed, so delete a damaged image directory first: \
     BUILD then has it built again)";

/// Checks the images and fails with every problem listed; the report when all is well.
pub(crate) fn validate(images_root: &Path, expect: &Expect) -> Result<ImageReport> {
    let report = inspect(images_root, expect);
    if !report.problems.is_empty() {
        let list: Vec<String> = report.problems.iter().map(|p| format!("  - {p}")).collect();
        bail!(
            "the {} {} images are not valid ({} problem{}):\n{}\n{REMEDY} to replace them",
            expect.arch,
            expect.variant,
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" },
            list.join("\n")
        );
    }
    Ok(report)
}

/// Checks the images and reports what was found, faults included; never stops at the first.
pub(crate) fn inspect(images_root: &Path, expect: &Expect) -> ImageReport {
    let mut report = ImageReport::default();
    let arch_dir = images_root.join(format!("{}-{}", expect.arch, expect.variant));
    let Some((dir, name)) = resolve_latest(&arch_dir, &mut report.problems) else {
        return report;
    };
    let latest = arch_dir.join("latest");
    let build_id = match build_id(&name, &expect.release_version) {
        Ok(id) => id.to_string(),
        Err(fault) => {
            report.problems.extend(fault.prefixed(&latest.display().to_string()));
            return report;
        }
    };
    if let Some(wanted) = expect.build_id.as_deref().filter(|wanted| *wanted != build_id) {
        report.problems.push(format!(
            "{}: points to {name}, the images of build `{build_id}`, but the variant repo's build id is \
             now `{wanted}`: these images are from another build",
            latest.display()
        ));
    }
    let base = format!(
        "bottlerocket-{}-{}-{}-{build_id}",
        expect.variant, expect.arch, expect.release_version
    );
    report.dir = Some(dir.clone());
    report.version_dir = Some(name);
    report.build_id = Some(build_id);

    let files = list_files(&dir, &mut report.problems);
    let os = find_image(&files, &base, "");
    let data = find_image(&files, &base, "-data");
    if os.is_none() {
        report.problems.push(format!(
            "{}: OS image missing (no {base}.img.lz4, nor a .qcow2/.vmdk/.ova image)",
            dir.display()
        ));
    }
    if expect.data_image && data.is_none() {
        report.problems.push(format!(
            "{}: data image missing (no {base}-data.img.lz4), which the variant's split partition plan makes",
            dir.display()
        ));
    }
    let mut jobs = Vec::new();
    for (path, bytes, modified) in &files {
        let kind = if Some(path) == os.as_ref() {
            FileKind::Os
        } else if Some(path) == data.as_ref() {
            FileKind::Data
        } else {
            FileKind::Other
        };
        let file_name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        let is_image = kind != FileKind::Other
            || file_name.ends_with(".lz4")
            || IMAGE_SUFFIXES.iter().any(|s| file_name.ends_with(s));
        if let Some(fault) = expect
            .built_after
            .filter(|_| is_image)
            .and_then(|after| stale(*modified, after))
        {
            report.problems.push(format!("{}: {fault}", path.display()));
        }
        let raw_os = kind == FileKind::Os && file_name.ends_with(".img");
        if file_name.ends_with(".lz4") || raw_os {
            jobs.push(Job {
                path: path.clone(),
                kind,
                lz4: !raw_os,
            });
        } else if kind != FileKind::Other {
            report.notes.push(format!(
                "{}: only raw images (.img.lz4) are validated in depth; this one was checked \
                 for presence only",
                path.display()
            ));
        }
        report.files.push(ImageFile {
            path: path.clone(),
            kind,
            bytes: *bytes,
            decoded_bytes: None,
        });
    }
    report.files.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
    for (job, outcome) in jobs.iter().zip(decode_all(&jobs)) {
        let entry = report
            .files
            .iter_mut()
            .find(|f| f.path == job.path)
            .expect("every job is a listed file");
        match outcome {
            Ok(decoded) => {
                entry.decoded_bytes = Some(decoded.bytes);
                if job.kind == FileKind::Os {
                    report.partitions = decoded.partitions;
                }
            }
            Err(faults) => report.problems.extend(faults.prefixed(&job.path.display().to_string())),
        }
    }
    let inventory = dir.join(INVENTORY);
    match crate::fsx::read_required(&inventory) {
        Ok(text) => match count_inventory(&text) {
            Ok(n) => report.inventory_packages = n,
            Err(fault) => report.problems.extend(fault.prefixed(&inventory.display().to_string())),
        },
        Err(err) => report
            .problems
            .push(format!("{}: cannot read the inventory ({err:#})", inventory.display())),
    }
    report
}

/// `<arch>-<variant>/latest` → (the directory, its name).
fn resolve_latest(arch_dir: &Path, problems: &mut Problems) -> Option<(PathBuf, String)> {
    let latest = arch_dir.join("latest");
    let target = match std::fs::read_link(&latest) {
        Ok(target) => target,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let why = if arch_dir.is_dir() {
                "missing: the last build did not finish (twoliter removes `latest` before building)"
            } else {
                "missing, and so is its directory: no build of this variant and arch has finished"
            };
            problems.push(format!("{}: {why}", latest.display()));
            return None;
        }
        Err(err) => {
            problems.push(format!(
                "{}: not a symlink to a build directory ({err})",
                latest.display()
            ));
            return None;
        }
    };
    let dir = arch_dir.join(&target);
    let name = target.file_name().map(|n| n.to_string_lossy().to_string());
    match name {
        Some(name) if dir.is_dir() => Some((dir, name)),
        _ => {
            problems.push(format!(
                "{}: points to {}, which is not a directory",
                latest.display(),
                target.display()
            ));
            None
        }
    }
}

/// The build id in a version directory name `<release-version>-<build-id>`.
pub(crate) fn build_id<'a>(dir_name: &'a str, release_version: &str) -> Result<&'a str, Problems> {
    match dir_name
        .strip_prefix(release_version)
        .and_then(|rest| rest.strip_prefix('-'))
    {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(id),
        _ => Err(format!(
            "points to {dir_name}, not a build of release version {release_version} \
             (expected {release_version}-<build-id>): these images are from another build"
        )
        .into()),
    }
}

/// Regular files of the version directory, as (path, size, mtime); symlinks are followed to
/// check that they resolve, and files reached through them are listed once.
fn list_files(dir: &Path, problems: &mut Problems) -> Vec<(PathBuf, u64, SystemTime)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            problems.push(format!("{}: cannot list the build directory ({err})", dir.display()));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut files: Vec<(PathBuf, u64, SystemTime)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let real_dir = std::fs::canonicalize(dir).ok();
    for path in paths {
        let Ok(link) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let real = if link.file_type().is_symlink() {
            match std::fs::canonicalize(&path) {
                Ok(real) => real,
                Err(_) => {
                    let target = std::fs::read_link(&path).unwrap_or_default();
                    problems.push(format!(
                        "{}: dangling symlink to {} (the file it names is missing)",
                        path.display(),
                        target.display()
                    ));
                    continue;
                }
            }
        } else {
            std::fs::canonicalize(&path).unwrap_or(path.clone())
        };
        let Ok(meta) = std::fs::metadata(&real) else {
            continue;
        };
        // Where an image is named, an image file must be: not a directory, a device or a FIFO
        // (which would read forever), whatever links lead there.
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let names_an_image = name.ends_with(".lz4") || IMAGE_SUFFIXES.iter().any(|s| name.ends_with(s));
        if !meta.is_file() && names_an_image {
            problems.push(format!(
                "{}: {} an image file{}",
                path.display(),
                match crate::fsx::kind_of(&meta) {
                    "a directory" => "is a directory, not",
                    "a device" => "is a device, not",
                    "a FIFO" => "is a FIFO, not",
                    _ => "is not",
                },
                if real != path {
                    format!(" (it leads to {})", real.display())
                } else {
                    String::new()
                }
            ));
            continue;
        }
        if !meta.is_file() || !seen.insert(real.clone()) {
            continue;
        }
        // A symlink to a file in this directory is an alias of that file: list the file itself.
        let listed = if real.parent() == real_dir.as_deref() {
            dir.join(real.file_name().unwrap_or_default())
        } else {
            real
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        files.push((listed, meta.len(), modified));
    }
    files.sort();
    files.dedup_by(|a, b| a.0 == b.0);
    files
}

fn find_image(files: &[(PathBuf, u64, SystemTime)], base: &str, part: &str) -> Option<PathBuf> {
    IMAGE_SUFFIXES.iter().find_map(|suffix| {
        let name = format!("{base}{part}{suffix}");
        files
            .iter()
            .find(|(p, _, _)| p.file_name().is_some_and(|n| n == name.as_str()))
            .map(|(p, _, _)| p.clone())
    })
}

/// Why an image modified at `modified` cannot come from a build started at `built_after`.
pub(crate) fn stale(modified: SystemTime, built_after: SystemTime) -> Option<String> {
    if modified + MTIME_SLACK >= built_after {
        return None;
    }
    Some(format!(
        "older than the build: modified {}, build started {}; it is left over from an earlier build",
        utc(modified),
        utc(built_after)
    ))
}

/// The number of packages in `application-inventory.json`, checking each has a name and version.
pub(crate) fn count_inventory(text: &str) -> Result<usize, Problems> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|err| format!("not valid JSON ({err})"))?;
    let Some(content) = value.get("Content").and_then(|c| c.as_array()) else {
        return Err("has no \"Content\" array of packages".into());
    };
    if content.is_empty() {
        return Err("lists no packages (empty \"Content\")".into());
    }
    for (index, package) in content.iter().enumerate() {
        for field in ["Name", "Version"] {
            let named = package
                .get(field)
                .and_then(|v| v.as_str())
                .is_some_and(|s| !s.is_empty());
            if !named {
                return Err(format!("package {index} in \"Content\" has no \"{field}\"").into());
            }
        }
    }
    Ok(content.len())
}

struct Job {
    path: PathBuf,
    kind: FileKind,
    /// An LZ4 frame (otherwise a raw disk image).
    lz4: bool,
}

struct Decoded {
    bytes: u64,
    partitions: Vec<String>,
}

/// Decodes every job, several files at once, in job order.
fn decode_all(jobs: &[Job]) -> Vec<Result<Decoded, Problems>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(MAX_DECODERS).min(jobs.len()).max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<Decoded, Problems>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(index) else {
                            break done;
                        };
                        done.push((index, decode(job)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a decoder thread panicked"))
            .collect()
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Streams one file through the frame check and, for the OS disk, the GPT check.
fn decode(job: &Job) -> Result<Decoded, Problems> {
    let file = std::fs::File::open(&job.path).map_err(|err| format!("cannot open ({err})"))?;
    let mut input = BufReader::with_capacity(READ_BUFFER, file);
    let mut gpt = (job.kind == FileKind::Os).then(GptScanner::new);
    let mut bytes = 0u64;
    let mut sink = |chunk: &[u8]| {
        if let Some(gpt) = gpt.as_mut() {
            gpt.feed(chunk);
        }
        bytes += chunk.len() as u64;
    };
    if job.lz4 {
        lz4check::check_frames(&mut input, &mut sink).map_err(|err| format!("{err:#}"))?;
    } else {
        copy_to_sink(&mut input, &mut sink).map_err(|err| format!("cannot read ({err})"))?;
    }
    let partitions = match gpt {
        Some(gpt) => gpt.finish()?.partitions.into_iter().map(|p| p.name).collect(),
        None => Vec::new(),
    };
    Ok(Decoded { bytes, partitions })
}

fn copy_to_sink(input: &mut impl std::io::BufRead, sink: &mut dyn FnMut(&[u8])) -> std::io::Result<()> {
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        let n = chunk.len();
        sink(chunk);
        input.consume(n);
    }
}

#[cfg(test)]
mod tests;
