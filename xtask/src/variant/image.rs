//! VALIDATE's image checks: the images a variant build left under
//! `build/images/<arch>-<variant>/latest/` are from this build, complete and intact.
//!
//! - `latest` resolves to `<release-version>-<build-id>` (the build id is reported);
//! - the OS image `bottlerocket-<variant>-<arch>-<version>-<build-id>.img.lz4` exists (or a
//!   `.img`, `.qcow2`, `.vmdk`, `.ova` one: those but raw ones are only checked for presence and
//!   freshness); a `-data` image is validated when present, as the variant's partition plan
//!   decides whether there is one;
//! - every image file (`.lz4`, `.img`, `.qcow2`, `.vmdk`, `.ova`) was modified after the build
//!   started;
//! - every `.lz4` file is one or more complete LZ4 frames whose checksums verify; a symlink to a
//!   file already checked is not decoded again, and a dangling one is a fault;
//! - the OS disk has a valid GPT (see `gpt`) with a `BOTTLEROCKET-ROOT-*` partition;
//! - `application-inventory.json` lists packages with names and versions.
//!
//! Every problem is collected and reported together, each naming its file, so one run shows
//! everything that is wrong. Decoding is streamed (bounded memory whatever the image size) and
//! independent files are decoded in parallel.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::arch::Arch;
use crate::variant::gpt::GptScanner;
use crate::variant::lz4check;

/// What the build was asked to make.
#[derive(Debug, Clone)]
pub struct Expect {
    pub variant: String,
    pub arch: Arch,
    pub release_version: String,
    /// When the build started: every image must be modified after it.
    pub built_after: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Os,
    Data,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageFile {
    pub path: PathBuf,
    pub kind: FileKind,
    /// Size on disk (compressed, for `.lz4`).
    pub bytes: u64,
    /// Size after decoding, for files that were decoded and intact.
    pub decoded_bytes: Option<u64>,
}

/// What VALIDATE found. `problems` is empty when the images are good.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageReport {
    /// The version directory `latest` resolves to.
    pub dir: Option<PathBuf>,
    /// Its name, `<release-version>-<build-id>`.
    pub version_dir: Option<String>,
    pub build_id: Option<String>,
    pub files: Vec<ImageFile>,
    /// Partition names of the OS disk, in table order.
    pub partitions: Vec<String>,
    pub inventory_packages: usize,
    /// Things worth saying that are not faults (an image format checked less deeply).
    pub notes: Vec<String>,
    /// Every fault found, each naming its file.
    pub problems: Vec<String>,
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
const REMEDY: &str =
    "rebuild the variant (`cargo xtask variant`, or `cargo xtask phase build <workspace>`)";

/// Checks the images and fails with every problem listed; the report when all is well.
pub fn validate(images_root: &Path, expect: &Expect) -> Result<ImageReport> {
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
pub fn inspect(images_root: &Path, expect: &Expect) -> ImageReport {
    let mut report = ImageReport::default();
    let arch_dir = images_root.join(format!("{}-{}", expect.arch, expect.variant));
    let Some((dir, name)) = resolve_latest(&arch_dir, &mut report.problems) else {
        return report;
    };
    let build_id = match build_id(&name, &expect.release_version) {
        Ok(id) => id.to_string(),
        Err(fault) => {
            report
                .problems
                .push(format!("{}: {fault}", arch_dir.join("latest").display()));
            return report;
        }
    };
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
    let mut jobs = Vec::new();
    for (path, bytes, modified) in &files {
        let kind = if Some(path) == os.as_ref() {
            FileKind::Os
        } else if Some(path) == data.as_ref() {
            FileKind::Data
        } else {
            FileKind::Other
        };
        let file_name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let is_image = kind != FileKind::Other
            || file_name.ends_with(".lz4")
            || IMAGE_SUFFIXES.iter().any(|s| file_name.ends_with(s));
        if is_image {
            if let Some(fault) = stale(*modified, expect.built_after) {
                report.problems.push(format!("{}: {fault}", path.display()));
            }
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
                "{}: only raw images (.img.lz4) are validated in depth; this one was checked for presence and freshness only",
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
    report
        .files
        .sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
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
            Err(faults) => report.problems.extend(
                faults
                    .into_iter()
                    .map(|f| format!("{}: {f}", job.path.display())),
            ),
        }
    }
    let inventory = dir.join(INVENTORY);
    match std::fs::read_to_string(&inventory) {
        Ok(text) => match count_inventory(&text) {
            Ok(n) => report.inventory_packages = n,
            Err(fault) => report
                .problems
                .push(format!("{}: {fault}", inventory.display())),
        },
        Err(err) => report.problems.push(format!(
            "{}: cannot read the inventory ({err})",
            inventory.display()
        )),
    }
    report
}

/// `<arch>-<variant>/latest` → (the directory, its name).
fn resolve_latest(arch_dir: &Path, problems: &mut Vec<String>) -> Option<(PathBuf, String)> {
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
pub fn build_id<'a>(dir_name: &'a str, release_version: &str) -> Result<&'a str, String> {
    match dir_name
        .strip_prefix(release_version)
        .and_then(|rest| rest.strip_prefix('-'))
    {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(id),
        _ => Err(format!(
            "points to {dir_name}, not a build of release version {release_version} \
             (expected {release_version}-<build-id>): these images are from another build"
        )),
    }
}

/// Regular files of the version directory, as (path, size, mtime); symlinks are followed to
/// check that they resolve, and files reached through them are listed once.
fn list_files(dir: &Path, problems: &mut Vec<String>) -> Vec<(PathBuf, u64, SystemTime)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            problems.push(format!(
                "{}: cannot list the build directory ({err})",
                dir.display()
            ));
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
pub fn stale(modified: SystemTime, built_after: SystemTime) -> Option<String> {
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
pub fn count_inventory(text: &str) -> Result<usize, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| format!("not valid JSON ({err})"))?;
    let Some(content) = value.get("Content").and_then(|c| c.as_array()) else {
        return Err("has no \"Content\" array of packages".to_string());
    };
    if content.is_empty() {
        return Err("lists no packages (empty \"Content\")".to_string());
    }
    for (index, package) in content.iter().enumerate() {
        for field in ["Name", "Version"] {
            let named = package
                .get(field)
                .and_then(|v| v.as_str())
                .is_some_and(|s| !s.is_empty());
            if !named {
                return Err(format!("package {index} in \"Content\" has no \"{field}\""));
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
fn decode_all(jobs: &[Job]) -> Vec<Result<Decoded, Vec<String>>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(MAX_DECODERS).min(jobs.len()).max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<Decoded, Vec<String>>)> = std::thread::scope(|scope| {
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
fn decode(job: &Job) -> Result<Decoded, Vec<String>> {
    let file =
        std::fs::File::open(&job.path).map_err(|err| vec![format!("cannot open ({err})")])?;
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
        lz4check::check_frames(&mut input, &mut sink).map_err(|err| vec![format!("{err:#}")])?;
    } else {
        copy_to_sink(&mut input, &mut sink).map_err(|err| vec![format!("cannot read ({err})")])?;
    }
    let partitions = match gpt {
        Some(gpt) => gpt
            .finish()?
            .partitions
            .into_iter()
            .map(|p| p.name)
            .collect(),
        None => Vec::new(),
    };
    Ok(Decoded { bytes, partitions })
}

fn copy_to_sink(
    input: &mut impl std::io::BufRead,
    sink: &mut dyn FnMut(&[u8]),
) -> std::io::Result<()> {
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

/// A time as `2026-11-22 03:08:10 UTC`.
fn utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variant::sample_disk::{write_sample_build, SampleDisk, SampleOptions};
    use std::io::{Read, Write};

    const OS_SIZE: u64 = 4 << 20;
    const VERSION: &str = "1.24.0";
    const BUILD_ID: &str = "a1b2c3d4";

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        dir: PathBuf,
        expect: Expect,
    }

    impl Fixture {
        fn new(with_data: bool) -> Fixture {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("build/images");
            let built_after = SystemTime::now() - Duration::from_secs(5);
            let dir = write_sample_build(
                &root,
                "aws-dev",
                Arch::X86_64,
                VERSION,
                BUILD_ID,
                OS_SIZE,
                with_data,
            )
            .unwrap();
            let expect = Expect {
                variant: "aws-dev".to_string(),
                arch: Arch::X86_64,
                release_version: VERSION.to_string(),
                built_after,
            };
            Fixture {
                _tmp: tmp,
                root,
                dir,
                expect,
            }
        }

        fn os(&self) -> PathBuf {
            self.dir.join(format!(
                "bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}.img.lz4"
            ))
        }

        fn problems(&self) -> String {
            let err = validate(&self.root, &self.expect).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains("rebuild the variant"), "{text}");
            text
        }

        /// Decodes the OS disk, lets `edit` change it, and writes it back as a valid frame.
        fn edit_os_disk(&self, edit: impl FnOnce(&mut Vec<u8>)) {
            let mut raw = Vec::new();
            let file = std::fs::File::open(self.os()).unwrap();
            lz4_flex::frame::FrameDecoder::new(file)
                .read_to_end(&mut raw)
                .unwrap();
            edit(&mut raw);
            let mut enc =
                lz4_flex::frame::FrameEncoder::new(std::fs::File::create(self.os()).unwrap());
            enc.write_all(&raw).unwrap();
            enc.finish().unwrap();
        }
    }

    #[test]
    fn a_good_build_validates() {
        let fx = Fixture::new(true);
        let report = validate(&fx.root, &fx.expect).unwrap();
        assert_eq!(report.build_id.as_deref(), Some(BUILD_ID));
        assert_eq!(report.version_dir.as_deref(), Some("1.24.0-a1b2c3d4"));
        assert_eq!(report.inventory_packages, 3);
        assert!(
            report.partitions.iter().any(|p| p == "BOTTLEROCKET-ROOT-A"),
            "{:?}",
            report.partitions
        );
        assert!(report.notes.is_empty() && report.problems.is_empty());
        // OS, data and inventory: the four friendly symlinks are aliases, not more files.
        let kinds: Vec<FileKind> = report.files.iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), 3, "{:?}", report.files);
        assert!(kinds.contains(&FileKind::Os) && kinds.contains(&FileKind::Data));
        let os = report
            .files
            .iter()
            .find(|f| f.kind == FileKind::Os)
            .unwrap();
        assert_eq!(os.decoded_bytes, Some(OS_SIZE));
        assert_eq!(os.path, fx.os());
        assert!(os.bytes < OS_SIZE / 2, "compressed");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["files"][0]["kind"], "os",
            "the OS disk comes first: {json}"
        );
        assert_eq!(json["files"][1]["kind"], "data", "{json}");
        assert_eq!(json["build_id"], BUILD_ID);
    }

    #[test]
    fn flipped_byte_in_the_image() {
        let fx = Fixture::new(false);
        let mut bytes = std::fs::read(fx.os()).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(fx.os(), bytes).unwrap();
        let found = fx.problems();
        assert!(
            found.contains(&format!(
                "{}: LZ4 block checksum mismatch",
                fx.os().display()
            )),
            "{found}"
        );
    }

    #[test]
    fn truncated_image() {
        let fx = Fixture::new(true);
        let data = fx.dir.join(format!(
            "bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}-data.img.lz4"
        ));
        let len = std::fs::metadata(&data).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&data)
            .unwrap()
            .set_len(len - 100)
            .unwrap();
        let found = fx.problems();
        assert!(
            found.contains(&format!("{}: truncated", data.display())),
            "{found}"
        );
        assert!(
            found.contains("(1 problem)"),
            "only the data disk is wrong: {found}"
        );
    }

    #[test]
    fn image_older_than_the_build() {
        let fx = Fixture::new(false);
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(fx.os())
            .unwrap()
            .set_modified(old)
            .unwrap();
        let found = fx.problems();
        assert!(
            found.contains(&format!(
                "{}: older than the build: modified",
                fx.os().display()
            )),
            "{found}"
        );
        assert!(found.contains("left over from an earlier build"), "{found}");
    }

    #[test]
    fn missing_latest() {
        let fx = Fixture::new(false);
        std::fs::remove_file(fx.root.join("x86_64-aws-dev/latest")).unwrap();
        let found = fx.problems();
        assert!(
            found.contains("x86_64-aws-dev/latest: missing: the last build did not finish"),
            "{found}"
        );
        let other = Expect {
            variant: "metal-dev".to_string(),
            ..fx.expect.clone()
        };
        let report = inspect(&fx.root, &other);
        assert!(
            report.problems[0].contains("no build of this variant and arch has finished"),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn latest_of_another_version() {
        let fx = Fixture::new(false);
        let expect = Expect {
            release_version: "1.24.1".to_string(),
            ..fx.expect.clone()
        };
        let err = format!("{:#}", validate(&fx.root, &expect).unwrap_err());
        assert!(
            err.contains("points to 1.24.0-a1b2c3d4, not a build of release version 1.24.1"),
            "{err}"
        );
        assert_eq!(build_id("1.24.0-abc", "1.24.0"), Ok("abc"));
        assert!(build_id("1.24.0", "1.24.0").is_err());
        assert!(build_id("1.24.01-abc", "1.24.0").is_err());
    }

    #[test]
    fn gpt_faults_reach_the_report() {
        let fx = Fixture::new(false);
        fx.edit_os_disk(|raw| raw[512 + 40] ^= 1);
        let found = fx.problems();
        assert!(
            found.contains(&format!(
                "{}: primary GPT header CRC mismatch at LBA 1",
                fx.os().display()
            )),
            "{found}"
        );

        fx.edit_os_disk(|raw| {
            raw[512 + 40] ^= 1;
            raw[1024 + 60] ^= 1;
        });
        assert!(
            fx.problems().contains("partition entries CRC mismatch"),
            "{}",
            fx.problems()
        );

        fx.edit_os_disk(|raw| {
            raw[1024 + 60] ^= 1;
            raw.truncate(raw.len() - 4096);
        });
        assert!(
            fx.problems()
                .contains("backup GPT header missing at LBA 8191"),
            "{}",
            fx.problems()
        );
    }

    #[test]
    fn no_root_partition() {
        let fx = Fixture::new(false);
        // A well-formed GPT whose only partition is DATA.
        let mut raw = Vec::new();
        SampleDisk::data(OS_SIZE, SampleOptions::default())
            .unwrap()
            .write_raw(&mut raw)
            .unwrap();
        fx.edit_os_disk(|disk| *disk = raw);
        let found = fx.problems();
        assert!(
            found.contains("no BOTTLEROCKET-ROOT-* partition (partitions: BOTTLEROCKET-DATA)"),
            "{found}"
        );
    }

    #[test]
    fn empty_inventory() {
        let fx = Fixture::new(false);
        std::fs::write(fx.dir.join(INVENTORY), r#"{"Content": []}"#).unwrap();
        let found = fx.problems();
        assert!(
            found.contains("application-inventory.json: lists no packages"),
            "{found}"
        );
        assert_eq!(
            count_inventory(r#"{"Content":[{"Name":"a"}]}"#),
            Err("package 0 in \"Content\" has no \"Version\"".to_string())
        );
        assert!(count_inventory("nope")
            .unwrap_err()
            .contains("not valid JSON"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let fx = Fixture::new(true);
        std::fs::remove_file(fx.dir.join(format!(
            "bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}-data.img.lz4"
        )))
        .unwrap();
        std::fs::remove_file(fx.dir.join(INVENTORY)).unwrap();
        let old = SystemTime::now() - Duration::from_secs(86_400);
        std::fs::File::options()
            .write(true)
            .open(fx.os())
            .unwrap()
            .set_modified(old)
            .unwrap();
        let found = fx.problems();
        assert!(found.contains("(4 problems)"), "{found}");
        assert!(
            found.contains("bottlerocket-aws-dev-x86_64-data.img.lz4: dangling symlink to"),
            "{found}"
        );
        assert!(
            found.contains("bottlerocket-aws-dev-x86_64-v1.24.0-data.img.lz4: dangling symlink"),
            "{found}"
        );
        assert!(
            found.contains("application-inventory.json: cannot read the inventory"),
            "{found}"
        );
        assert!(found.contains("older than the build"), "{found}");
        assert!(
            !found.contains("OS image"),
            "the OS image is present: {found}"
        );
    }

    /// Removes the `.img.lz4` images and the friendly symlinks to them.
    fn remove_lz4_images(dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(".img.lz4") {
                std::fs::remove_file(path).unwrap();
            }
        }
    }

    #[test]
    fn an_uncompressed_raw_os_image_is_checked_in_depth() {
        let fx = Fixture::new(false);
        let raw_path = fx.dir.join(format!(
            "bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}.img"
        ));
        let mut raw = Vec::new();
        SampleDisk::os(OS_SIZE, SampleOptions::default())
            .unwrap()
            .write_raw(&mut raw)
            .unwrap();
        raw[512 + 40] ^= 1;
        std::fs::write(&raw_path, &raw).unwrap();
        remove_lz4_images(&fx.dir);
        let found = fx.problems();
        assert!(
            found.contains(&format!(
                "{}: primary GPT header CRC mismatch",
                raw_path.display()
            )),
            "{found}"
        );
        raw[512 + 40] ^= 1;
        std::fs::write(&raw_path, &raw).unwrap();
        let report = validate(&fx.root, &fx.expect).unwrap();
        assert_eq!(report.partitions.len(), 12);
    }

    #[test]
    fn non_raw_images_are_checked_for_presence_only() {
        let fx = Fixture::new(false);
        let qcow = fx.dir.join(format!(
            "bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}.qcow2"
        ));
        std::fs::write(&qcow, b"QFI\xfb not really").unwrap();
        remove_lz4_images(&fx.dir);
        let report = validate(&fx.root, &fx.expect).unwrap();
        assert!(
            report.notes[0].contains("only raw images (.img.lz4) are validated in depth"),
            "{:?}",
            report.notes
        );
        assert_eq!(
            report
                .files
                .iter()
                .find(|f| f.kind == FileKind::Os)
                .unwrap()
                .path,
            qcow
        );
        std::fs::remove_file(&qcow).unwrap();
        assert!(
            fx.problems().contains("OS image missing"),
            "{}",
            fx.problems()
        );
    }

    /// A disk partitioned by sgdisk and compressed by the lz4 tool: two independent writers.
    #[test]
    fn sgdisk_disk_compressed_by_lz4_validates() {
        let fx = Fixture::new(false);
        let tmp = tempfile::tempdir().unwrap();
        let Some(raw) = crate::variant::gpt::sgdisk_disk(tmp.path()) else {
            return;
        };
        let status = std::process::Command::new("lz4")
            .args(["-q", "-f", "-z"])
            .arg(&raw)
            .arg(fx.os())
            .status();
        match status {
            Ok(status) => assert!(status.success()),
            Err(err) => {
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "lz4 is needed in CI: {err}"
                );
                eprintln!("skipped: the lz4 tool is not installed ({err})");
                return;
            }
        }
        let report = validate(&fx.root, &fx.expect).unwrap();
        assert_eq!(
            report.partitions,
            [
                "BOTTLEROCKET-EFI-A",
                "BOTTLEROCKET-BOOT-A",
                "BOTTLEROCKET-ROOT-A",
                "BOTTLEROCKET-DATA"
            ]
        );
        let os = report
            .files
            .iter()
            .find(|f| f.kind == FileKind::Os)
            .unwrap();
        assert_eq!(os.decoded_bytes, Some(64 << 20));
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_316_890)),
            "2026-11-22 03:08:10 UTC"
        );
        let leap_day = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap_day), "2000-02-29 00:00:00 UTC");
        assert!(stale(SystemTime::UNIX_EPOCH, SystemTime::now()).is_some());
        let now = SystemTime::now();
        assert!(
            stale(now - Duration::from_millis(500), now).is_none(),
            "coarse clocks are tolerated"
        );
    }

    /// Hand measurement, not a test: `IMAGE_BENCH_ROOT=/tmp/bench IMAGE_BENCH_SIZE_MIB=2048
    /// [IMAGE_BENCH_DATA=1] cargo test … -- --ignored make_bench_images`, then `validate_bench_images` under
    /// `/usr/bin/time -v`, and `lz4 -t` on the same file to compare.
    #[test]
    #[ignore]
    fn make_bench_images() {
        let root = PathBuf::from(std::env::var("IMAGE_BENCH_ROOT").expect("IMAGE_BENCH_ROOT"));
        let mib: u64 = std::env::var("IMAGE_BENCH_SIZE_MIB").map_or(2048, |v| v.parse().unwrap());
        let start = std::time::Instant::now();
        let dir = write_sample_build(
            &root,
            "aws-dev",
            Arch::X86_64,
            VERSION,
            BUILD_ID,
            mib << 20,
            std::env::var_os("IMAGE_BENCH_DATA").is_some(),
        )
        .unwrap();
        eprintln!("wrote {} in {:?}", dir.display(), start.elapsed());
    }

    #[test]
    #[ignore]
    fn validate_bench_images() {
        let root = PathBuf::from(std::env::var("IMAGE_BENCH_ROOT").expect("IMAGE_BENCH_ROOT"));
        let expect = Expect {
            variant: "aws-dev".to_string(),
            arch: Arch::X86_64,
            release_version: VERSION.to_string(),
            built_after: SystemTime::UNIX_EPOCH,
        };
        let start = std::time::Instant::now();
        let report = validate(&root, &expect).unwrap();
        let elapsed = start.elapsed();
        let decoded: u64 = report.files.iter().filter_map(|f| f.decoded_bytes).sum();
        eprintln!(
            "validated {} MiB in {:?}: {:.0} MiB/s",
            decoded >> 20,
            elapsed,
            (decoded >> 20) as f64 / elapsed.as_secs_f64()
        );
    }
}
