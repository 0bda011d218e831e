//! Tests of the image checks on sample builds, each fault made on purpose.

use super::*;
use crate::image::sample_disk::{write_sample_build, SampleDisk, SampleOptions};
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
        let dir = write_sample_build(&root, "aws-dev", Arch::X86_64, VERSION, BUILD_ID, OS_SIZE, with_data).unwrap();
        let expect = Expect {
            variant: "aws-dev".to_string(),
            arch: Arch::X86_64,
            release_version: VERSION.to_string(),
            build_id: Some(BUILD_ID.to_string()),
            built_after: Some(built_after),
            data_image: false,
        };
        Fixture {
            _tmp: tmp,
            root,
            dir,
            expect,
        }
    }

    fn os(&self) -> PathBuf {
        self.dir
            .join(format!("bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}.img.lz4"))
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
        lz4_flex::frame::FrameDecoder::new(file).read_to_end(&mut raw).unwrap();
        edit(&mut raw);
        let mut enc = lz4_flex::frame::FrameEncoder::new(std::fs::File::create(self.os()).unwrap());
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
    let os = report.files.iter().find(|f| f.kind == FileKind::Os).unwrap();
    assert_eq!(os.decoded_bytes, Some(OS_SIZE));
    assert_eq!(os.path, fx.os());
    assert!(os.bytes < OS_SIZE / 2, "compressed");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["files"][0]["kind"], "os", "the OS disk comes first: {json}");
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
        found.contains(&format!("{}: LZ4 block checksum mismatch", fx.os().display())),
        "{found}"
    );
}

#[test]
fn truncated_image() {
    let fx = Fixture::new(true);
    let data = fx
        .dir
        .join(format!("bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}-data.img.lz4"));
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let found = fx.problems();
    assert!(found.contains(&format!("{}: truncated", data.display())), "{found}");
    assert!(found.contains("(1 problem)"), "only the data disk is wrong: {found}");
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
        found.contains(&format!("{}: older than the build: modified", fx.os().display())),
        "{found}"
    );
    assert!(found.contains("left over from an earlier build"), "{found}");
}

#[test]
fn images_of_another_build_id() {
    let fx = Fixture::new(false);
    let expect = Expect {
        build_id: Some("e5f6a7b8-dirty".to_string()),
        ..fx.expect.clone()
    };
    let err = format!("{:#}", validate(&fx.root, &expect).unwrap_err());
    assert!(
        err.contains(&format!(
            "latest: points to {VERSION}-{BUILD_ID}, the images of build `{BUILD_ID}`, but the variant repo's \
             build id is now `e5f6a7b8-dirty`: these images are from another build"
        )),
        "{err}"
    );
    assert!(err.contains("(1 problem)"), "the images themselves are fine: {err}");
    // Without a build id or a time asked for, any build's intact images pass, old or new.
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(fx.os())
        .unwrap()
        .set_modified(old)
        .unwrap();
    let any = Expect {
        build_id: None,
        built_after: None,
        ..fx.expect.clone()
    };
    validate(&fx.root, &any).unwrap();
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
        report
            .problems
            .iter()
            .next()
            .unwrap()
            .contains("no build of this variant and arch has finished"),
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
        fx.problems().contains("backup GPT header missing at LBA 8191"),
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
        Err(Problems::from("package 0 in \"Content\" has no \"Version\""))
    );
    assert!(count_inventory("nope")
        .unwrap_err()
        .to_string()
        .contains("not valid JSON"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let fx = Fixture::new(true);
    std::fs::remove_file(
        fx.dir
            .join(format!("bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}-data.img.lz4")),
    )
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
    assert!(!found.contains("OS image"), "the OS image is present: {found}");
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
    let raw_path = fx
        .dir
        .join(format!("bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}.img"));
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
        found.contains(&format!("{}: primary GPT header CRC mismatch", raw_path.display())),
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
    let qcow = fx
        .dir
        .join(format!("bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}.qcow2"));
    std::fs::write(&qcow, b"QFI\xfb not really").unwrap();
    remove_lz4_images(&fx.dir);
    let report = validate(&fx.root, &fx.expect).unwrap();
    assert!(
        report.notes[0].contains("only raw images (.img.lz4) are validated in depth"),
        "{:?}",
        report.notes
    );
    assert_eq!(report.files.iter().find(|f| f.kind == FileKind::Os).unwrap().path, qcow);
    std::fs::remove_file(&qcow).unwrap();
    assert!(fx.problems().contains("OS image missing"), "{}", fx.problems());
}

/// A disk partitioned by sgdisk and compressed by the lz4 tool: two independent writers.
#[test]
fn sgdisk_disk_compressed_by_lz4_validates() {
    let fx = Fixture::new(false);
    let tmp = tempfile::tempdir().unwrap();
    let Some(raw) = crate::image::gpt::sgdisk_disk(tmp.path()) else {
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
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "lz4 is needed in CI: {err}");
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
    let os = report.files.iter().find(|f| f.kind == FileKind::Os).unwrap();
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

/// Where the data image should be, something else: a directory, a device (through a link, as a
/// stray `/dev/urandom` would be), a dangling link; and none at all where the plan makes one.
#[test]
fn a_data_image_that_is_not_an_image_file_is_a_fault() {
    let data_name = format!("bottlerocket-aws-dev-x86_64-{VERSION}-{BUILD_ID}-data.img.lz4");
    for (what, expected) in [
        ("directory", "is a directory, not an image file"),
        ("device", "is a device, not an image file (it leads to /dev/urandom)"),
        ("dangling", "dangling symlink to nowhere.img.lz4"),
        ("missing", "data image missing"),
    ] {
        let mut fx = Fixture::new(true);
        let data = fx.dir.join(&data_name);
        std::fs::remove_file(&data).unwrap();
        match what {
            "directory" => std::fs::create_dir(&data).unwrap(),
            "device" => std::os::unix::fs::symlink("/dev/urandom", &data).unwrap(),
            "dangling" => std::os::unix::fs::symlink("nowhere.img.lz4", &data).unwrap(),
            _ => fx.expect.data_image = true,
        }
        let found = fx.problems();
        assert!(found.contains(expected), "{what}: {found}");
    }
}
