//! Sample Bottlerocket build output for tests and `cargo xtask bench`: GPT disks laid out like
//! Bottlerocket's partition plan, partly filled with compressible pseudo-random data, written
//! as LZ4 frames (block and content checksums, by liblz4) in bounded memory, and a whole
//! `build/images/<arch>-<variant>/<version>-<build-id>/` tree around them.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::arch::Arch;
use crate::image::liblz4::FrameWriter;

const SECTOR: u64 = 512;
const ENTRIES: u32 = 128;
const ENTRY_SIZE: u32 = 128;
const ENTRY_SECTORS: u64 = (ENTRIES as u64 * ENTRY_SIZE as u64) / SECTOR;
const CHUNK: usize = 1 << 20;

/// Partition sizes of a Bottlerocket OS disk, in MiB of a 2 GiB disk (scaled to the disk size);
/// the DATA partition takes what is left.
const OS_PLAN: [(&str, u64); 11] = [
    ("BOTTLEROCKET-EFI-A", 5),
    ("BOTTLEROCKET-BOOT-A", 40),
    ("BOTTLEROCKET-ROOT-A", 920),
    ("BOTTLEROCKET-HASH-A", 10),
    ("BOTTLEROCKET-RESERVED-A", 33),
    ("BOTTLEROCKET-EFI-B", 5),
    ("BOTTLEROCKET-BOOT-B", 40),
    ("BOTTLEROCKET-ROOT-B", 920),
    ("BOTTLEROCKET-HASH-B", 10),
    ("BOTTLEROCKET-RESERVED-B", 33),
    ("BOTTLEROCKET-PRIVATE", 20),
];
const PLAN_TOTAL_MIB: u64 = 2048;

#[derive(Debug, Clone, Copy)]
pub(crate) struct SampleOptions {
    /// The fraction (0.0 to 1.0) of each partition filled with data; the rest stays zero.
    pub(crate) fill: f64,
    /// Seed of the pseudo-random data and GUIDs: the same seed gives the same disk.
    pub(crate) seed: u64,
}

impl Default for SampleOptions {
    fn default() -> SampleOptions {
        SampleOptions { fill: 0.25, seed: 1 }
    }
}

/// A GPT disk to write: its layout and the sectors that hold the partition tables.
#[derive(Debug, Clone)]
pub(crate) struct SampleDisk {
    pub(crate) size: u64,
    /// Name, first LBA, last LBA.
    pub(crate) partitions: Vec<(String, u64, u64)>,
    mbr: Vec<u8>,
    /// The primary header sector followed by the entry array (LBA 1 onwards).
    primary: Vec<u8>,
    /// The backup entry array followed by the backup header (the disk's last sectors).
    backup: Vec<u8>,
    options: SampleOptions,
}

impl SampleDisk {
    /// An OS disk with Bottlerocket's A/B partitions, PRIVATE and DATA.
    pub(crate) fn os(size: u64, options: SampleOptions) -> Result<SampleDisk> {
        let mut plan: Vec<(&str, u64)> = OS_PLAN.to_vec();
        plan.push(("BOTTLEROCKET-DATA", 0));
        SampleDisk::new(size, &plan, options)
    }

    /// A data disk: one BOTTLEROCKET-DATA partition.
    pub(crate) fn data(size: u64, options: SampleOptions) -> Result<SampleDisk> {
        SampleDisk::new(size, &[("BOTTLEROCKET-DATA", 0)], options)
    }

    /// `plan` gives each partition's share in MiB of a 2 GiB disk; the last one takes the rest.
    fn new(size: u64, plan: &[(&str, u64)], options: SampleOptions) -> Result<SampleDisk> {
        if !size.is_multiple_of(SECTOR) || size < (1 << 20) {
            bail!(
                "a sample disk must be at least 1 MiB and a whole number of 512-byte \
                 sectors, not {size} bytes"
            );
        }
        if !(0.0..=1.0).contains(&options.fill) {
            bail!("the fill fraction must be between 0 and 1, not {}", options.fill);
        }
        let sectors = size / SECTOR;
        let first_usable = 2 + ENTRY_SECTORS;
        let last_usable = sectors - 2 - ENTRY_SECTORS;
        let align = if size >= 64 << 20 { 2048 } else { 8 };
        let start = first_usable.next_multiple_of(align);
        let available = last_usable + 1 - start;
        let mut partitions = Vec::new();
        let mut next = start;
        for (index, (name, share)) in plan.iter().enumerate() {
            let len = if index + 1 == plan.len() {
                (last_usable + 1).saturating_sub(next)
            } else {
                (available * share / PLAN_TOTAL_MIB / 8 * 8).max(8)
            };
            if len < 8 {
                bail!(
                    "{size} bytes is too small for a sample disk with {} partitions",
                    plan.len()
                );
            }
            partitions.push((name.to_string(), next, next + len - 1));
            next = (next + len).next_multiple_of(8);
        }
        let mut rng = XorShift::new(options.seed ^ 0x5eed);
        let disk_guid = random_guid(&mut rng);
        let mut entries = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
        for ((name, first, last), entry) in partitions.iter().zip(entries.chunks_exact_mut(ENTRY_SIZE as usize)) {
            let kind = if name.contains("-EFI-") { EFI_SYSTEM } else { LINUX_DATA };
            entry[..16].copy_from_slice(&kind);
            entry[16..32].copy_from_slice(&random_guid(&mut rng));
            entry[32..40].copy_from_slice(&first.to_le_bytes());
            entry[40..48].copy_from_slice(&last.to_le_bytes());
            for (i, unit) in name.encode_utf16().take(36).enumerate() {
                entry[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
            }
        }
        let entries_crc = crc32fast::hash(&entries);
        let header = |my_lba: u64, alternate: u64, entries_lba: u64| {
            let mut h = vec![0u8; SECTOR as usize];
            h[..8].copy_from_slice(b"EFI PART");
            h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&my_lba.to_le_bytes());
            h[32..40].copy_from_slice(&alternate.to_le_bytes());
            h[40..48].copy_from_slice(&first_usable.to_le_bytes());
            h[48..56].copy_from_slice(&last_usable.to_le_bytes());
            h[56..72].copy_from_slice(&disk_guid);
            h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
            h[80..84].copy_from_slice(&ENTRIES.to_le_bytes());
            h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
            h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
            let crc = crc32fast::hash(&h[..92]);
            h[16..20].copy_from_slice(&crc.to_le_bytes());
            h
        };
        let last_lba = sectors - 1;
        let mut primary = header(1, last_lba, 2);
        primary.extend_from_slice(&entries);
        let mut backup = entries;
        backup.extend(header(last_lba, 1, last_lba - ENTRY_SECTORS));
        Ok(SampleDisk {
            size,
            partitions,
            mbr: protective_mbr(sectors),
            primary,
            backup,
            options,
        })
    }

    /// Writes the raw disk, front to back, in 1 MiB pieces.
    pub(crate) fn write_raw(&self, out: &mut dyn Write) -> io::Result<()> {
        let zeros = vec![0u8; CHUNK];
        let mut buf = vec![0u8; CHUNK];
        let mut filler = Filler::new(self.options.seed);
        let mut pos = 0u64;
        let zero_to = |out: &mut dyn Write, pos: &mut u64, end: u64| -> io::Result<()> {
            while *pos < end {
                let n = (end - *pos).min(CHUNK as u64) as usize;
                out.write_all(&zeros[..n])?;
                *pos += n as u64;
            }
            Ok(())
        };
        out.write_all(&self.mbr)?;
        out.write_all(&self.primary)?;
        pos += (self.mbr.len() + self.primary.len()) as u64;
        for (_, first, last) in &self.partitions {
            zero_to(out, &mut pos, first * SECTOR)?;
            let len = (last + 1 - first) * SECTOR;
            let filled = ((len as f64 * self.options.fill) as u64).min(len);
            let end = pos + filled;
            while pos < end {
                let n = (end - pos).min(CHUNK as u64) as usize;
                filler.fill(&mut buf[..n]);
                out.write_all(&buf[..n])?;
                pos += n as u64;
            }
        }
        zero_to(out, &mut pos, self.size - self.backup.len() as u64)?;
        out.write_all(&self.backup)
    }

    /// Writes the disk as an LZ4 frame with block and content checksums and 4 MiB blocks (what
    /// `lz4` writes by default, plus block checksums).
    pub(crate) fn write_lz4(&self, path: &Path) -> Result<()> {
        let write = || -> io::Result<()> {
            let file = BufWriter::with_capacity(CHUNK, std::fs::File::create(path)?);
            let mut frame = FrameWriter::new(file)?;
            self.write_raw(&mut frame)?;
            frame.finish()?.flush()
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Writes a sample Bottlerocket OS disk of `size` bytes to `path` as an LZ4 frame.
pub(crate) fn write_sample_os_disk(path: &Path, size: u64, options: SampleOptions) -> Result<()> {
    SampleDisk::os(size, options)?.write_lz4(path)
}

/// Lays out `<images_root>/<arch>-<variant>/<version>-<build_id>/` as a variant build does: the OS
/// disk, the data disk when `with_data`, `application-inventory.json`, friendly symlinks, and the
/// `latest` symlink. Returns the version directory.
pub(crate) fn write_sample_build(
    images_root: &Path,
    variant: &str,
    arch: Arch,
    version: &str,
    build_id: &str,
    os_size: u64,
    with_data: bool,
) -> Result<PathBuf> {
    let arch_dir = images_root.join(format!("{arch}-{variant}"));
    let dir_name = format!("{version}-{build_id}");
    let dir = arch_dir.join(&dir_name);
    fs_err::create_dir_all(&dir)?;
    let base = format!("bottlerocket-{variant}-{arch}-{version}-{build_id}");
    let friendly = [
        format!("bottlerocket-{variant}-{arch}"),
        format!("bottlerocket-{variant}-{arch}-v{version}"),
    ];
    let options = SampleOptions::default();
    write_sample_os_disk(&dir.join(format!("{base}.img.lz4")), os_size, options)?;
    let mut suffixes = vec![".img.lz4"];
    if with_data {
        let data_size = (os_size / 4).max(4 << 20) / SECTOR * SECTOR;
        SampleDisk::data(data_size, SampleOptions { seed: 2, ..options })?
            .write_lz4(&dir.join(format!("{base}-data.img.lz4")))?;
        suffixes.push("-data.img.lz4");
    }
    for suffix in suffixes {
        for name in &friendly {
            symlink_fresh(&format!("{base}{suffix}"), &dir.join(format!("{name}{suffix}")))?;
        }
    }
    let inventory = serde_json::json!({ "Content": [
        { "Name": "kernel-6.1", "Version": "6.1.102", "Release": "1.1722370436.e4f7a4b5.br1", "Architecture": arch.name() },
        { "Name": "systemd", "Version": "252.22", "Release": "1.1722370436.e4f7a4b5.br1", "Architecture": arch.name() },
        { "Name": "glibc", "Version": "2.40", "Release": "1.1722370436.e4f7a4b5.br1", "Architecture": arch.name() },
    ]});
    crate::fsx::write_json_atomic(&dir.join("application-inventory.json"), &inventory)?;
    symlink_fresh(&dir_name, &arch_dir.join("latest"))?;
    Ok(dir)
}

/// Creates (or replaces) a relative symlink `link` → `target`.
fn symlink_fresh(target: &str, link: &Path) -> Result<()> {
    match fs_err::remove_file(link) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err.into()),
        _ => {}
    }
    fs_err::os::unix::fs::symlink(target, link)?;
    Ok(())
}

const EFI_SYSTEM: [u8; 16] = guid(
    0xC12A7328,
    0xF81F,
    0x11D2,
    [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
);
const LINUX_DATA: [u8; 16] = guid(
    0x0FC63DAF,
    0x8483,
    0x4772,
    [0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4],
);

/// A GUID in its on-disk form: the first three fields little-endian.
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes());
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7],
    ]
}

fn random_guid(rng: &mut XorShift) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[..8].copy_from_slice(&rng.next().to_le_bytes());
    g[8..].copy_from_slice(&rng.next().to_le_bytes());
    g[7] = (g[7] & 0x0F) | 0x40; // version 4
    g[8] = (g[8] & 0x3F) | 0x80; // variant 1
    g
}

fn protective_mbr(sectors: u64) -> Vec<u8> {
    let mut mbr = vec![0u8; SECTOR as usize];
    let entry = &mut mbr[446..462];
    entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    entry[4] = 0xEE;
    entry[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
    entry[8..12].copy_from_slice(&1u32.to_le_bytes());
    entry[12..16].copy_from_slice(&((sectors - 1).min(u32::MAX as u64) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    mbr
}

struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Data that compresses about as well as a root filesystem (LZ4 finds short matches, as in
/// real files) yet is cheap to make even in a debug build: random picks from 256 random tokens
/// of 4 to 16 bytes.
struct Filler {
    rng: XorShift,
    tokens: Vec<Vec<u8>>,
}

impl Filler {
    fn new(seed: u64) -> Filler {
        let mut rng = XorShift::new(seed);
        let tokens = (0..256)
            .map(|_| {
                let len = 4 + (rng.next() % 13) as usize;
                rng.next()
                    .to_le_bytes()
                    .iter()
                    .chain(&rng.next().to_le_bytes())
                    .take(len)
                    .copied()
                    .collect()
            })
            .collect();
        Filler { rng, tokens }
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut at = 0;
        while at < buf.len() {
            let picks = self.rng.next();
            for shift in (0..64).step_by(8) {
                let token = &self.tokens[((picks >> shift) & 0xFF) as usize];
                let n = token.len().min(buf.len() - at);
                buf[at..at + n].copy_from_slice(&token[..n]);
                at += n;
                if at == buf.len() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_plan_and_fill_is_compressible() {
        let disk = SampleDisk::os(64 << 20, SampleOptions { fill: 0.5, seed: 7 }).unwrap();
        assert_eq!(disk.partitions.len(), 12);
        assert_eq!(disk.partitions[0].1, 2048, "1 MiB aligned on disks of 64 MiB and more");
        let root = &disk.partitions[2];
        assert_eq!(root.0, "BOTTLEROCKET-ROOT-A");
        assert!(
            root.2 - root.1 > 20 * (disk.partitions[1].2 - disk.partitions[1].1),
            "ROOT is the big one"
        );
        assert_eq!(
            disk.partitions[11].2,
            (64 << 20) / SECTOR - 34,
            "DATA ends at the last usable LBA"
        );
        let mut raw = Vec::new();
        disk.write_raw(&mut raw).unwrap();
        assert_eq!(raw.len(), 64 << 20);
        let root_bytes = &raw[(root.1 * SECTOR) as usize..][..1 << 20];
        assert!(
            root_bytes.iter().filter(|&&b| b != 0).count() > 900_000,
            "the fill is not zeros"
        );
        let packed = lz4_flex::block::compress(root_bytes).len();
        assert!(
            packed < root_bytes.len() / 2 && packed > root_bytes.len() / 10,
            "compresses {packed}"
        );
        let mut again = Vec::new();
        disk.write_raw(&mut again).unwrap();
        assert!(raw == again, "the same seed gives the same disk");
    }

    #[test]
    fn sgdisk_accepts_the_sample_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os.img");
        let mut file = std::fs::File::create(&path).unwrap();
        SampleDisk::os(8 << 20, SampleOptions::default())
            .unwrap()
            .write_raw(&mut file)
            .unwrap();
        drop(file);
        let out = match std::process::Command::new("sgdisk").arg("-v").arg(&path).output() {
            Ok(out) => out,
            Err(err) => {
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "sgdisk is needed in CI: {err}"
                );
                eprintln!("skipped: sgdisk is not installed ({err})");
                return;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("No problems found"), "{text}");
    }

    #[test]
    fn rejects_impossible_disks() {
        assert!(SampleDisk::os(1000, SampleOptions::default()).is_err());
        let err = SampleDisk::os(1 << 20, SampleOptions { fill: 2.0, seed: 1 }).unwrap_err();
        assert!(err.to_string().contains("fill fraction"), "{err}");
    }
}
