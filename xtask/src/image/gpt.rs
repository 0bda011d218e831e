//! GPT checks on a disk seen as a stream of bytes (the output of an LZ4 decoder), with 512-byte
//! sectors. The primary header and its partition entries come first; from them the scanner knows
//! where the backup entries and header must be, and copies just those sectors as they pass, so
//! memory stays small whatever the disk size. `finish` then checks everything at once.

use serde::Serialize;

use crate::problems::Problems;

pub(crate) const SECTOR: u64 = 512;
/// More partition entry bytes than any real disk has (the usual array is 16 KiB).
const MAX_ENTRY_BYTES: u64 = 1 << 20;
const NAME_UNITS: usize = 36;
/// The primary entries must end within this many bytes from the start of the disk (usually 17 KiB).
const MAX_HEAD: u64 = 2 << 20;

/// A used partition entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Partition {
    /// 1-based, as `sgdisk` numbers them.
    pub(crate) number: u32,
    pub(crate) name: String,
    pub(crate) first_lba: u64,
    pub(crate) last_lba: u64,
}

/// A disk whose GPT checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Gpt {
    pub(crate) disk_bytes: u64,
    pub(crate) partitions: Vec<Partition>,
}

/// The fields of a GPT header this checker uses, after its signature and CRC were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) my_lba: u64,
    pub(crate) alternate_lba: u64,
    pub(crate) first_usable: u64,
    pub(crate) last_usable: u64,
    pub(crate) disk_guid: [u8; 16],
    pub(crate) entries_lba: u64,
    pub(crate) entry_count: u32,
    pub(crate) entry_size: u32,
    pub(crate) entries_crc: u32,
}

impl Header {
    pub(crate) fn entry_bytes(&self) -> u64 {
        self.entry_count as u64 * self.entry_size as u64
    }

    pub(crate) fn entry_sectors(&self) -> u64 {
        self.entry_bytes().div_ceil(SECTOR)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Checks one header sector: signature, size, CRC (with its CRC field zeroed) and the entry
/// array's shape. `which` and `lba` name it in errors.
pub(crate) fn parse_header(sector: &[u8], which: &str, lba: u64) -> Result<Header, Problems> {
    if sector.len() < SECTOR as usize || &sector[..8] != b"EFI PART" {
        return Err(format!("{which} GPT header missing at LBA {lba} (no \"EFI PART\" signature)").into());
    }
    let size = u32_at(sector, 12) as usize;
    if !(92..=SECTOR as usize).contains(&size) {
        return Err(format!("{which} GPT header at LBA {lba} has an invalid header size {size}").into());
    }
    let mut copy = sector[..size].to_vec();
    copy[16..20].fill(0);
    let (stored, computed) = (u32_at(sector, 16), crc32fast::hash(&copy));
    if stored != computed {
        return Err(format!(
            "{which} GPT header CRC mismatch at LBA {lba} (stored {stored:#010x}, computed {computed:#010x})"
        )
        .into());
    }
    let header = Header {
        my_lba: u64_at(sector, 24),
        alternate_lba: u64_at(sector, 32),
        first_usable: u64_at(sector, 40),
        last_usable: u64_at(sector, 48),
        disk_guid: sector[56..72].try_into().unwrap(),
        entries_lba: u64_at(sector, 72),
        entry_count: u32_at(sector, 80),
        entry_size: u32_at(sector, 84),
        entries_crc: u32_at(sector, 88),
    };
    if header.my_lba != lba {
        return Err(format!("{which} GPT header at LBA {lba} says it is at LBA {}", header.my_lba).into());
    }
    let entry_size = header.entry_size;
    if entry_size < 128 || !entry_size.is_power_of_two() || header.entry_count == 0 {
        return Err(format!(
            "{which} GPT header at LBA {lba} has an invalid partition entry array \
             ({} entries of {entry_size} bytes)",
            header.entry_count
        )
        .into());
    }
    if header.entry_bytes() > MAX_ENTRY_BYTES {
        return Err(format!(
            "{which} GPT header at LBA {lba} declares {} bytes of partition entries, \
             more than this checker reads",
            header.entry_bytes()
        )
        .into());
    }
    if header.first_usable > header.last_usable {
        return Err(format!(
            "{which} GPT header at LBA {lba}: first usable LBA {} is after last usable LBA {}",
            header.first_usable, header.last_usable
        )
        .into());
    }
    Ok(header)
}

/// The used entries of an entry array whose CRC was verified, with their layout checked.
pub(crate) fn parse_entries(bytes: &[u8], header: &Header) -> Result<Vec<Partition>, Problems> {
    let mut partitions = Vec::new();
    let mut problems = Problems::new();
    for (index, entry) in bytes.chunks_exact(header.entry_size as usize).enumerate() {
        if entry[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let number = index as u32 + 1;
        let units: Vec<u16> = entry[56..56 + 2 * NAME_UNITS]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let name = String::from_utf16(&units).unwrap_or_else(|_| {
            problems.push(format!("partition {number} has a name that is not valid UTF-16"));
            String::from_utf16_lossy(&units)
        });
        let (first_lba, last_lba) = (u64_at(entry, 32), u64_at(entry, 40));
        if first_lba > last_lba || first_lba < header.first_usable || last_lba > header.last_usable {
            problems.push(format!(
                "partition {number} ({name}) spans LBA {first_lba}..{last_lba}, \
                 outside the usable LBA {}..{}",
                header.first_usable, header.last_usable
            ));
        }
        partitions.push(Partition {
            number,
            name,
            first_lba,
            last_lba,
        });
    }
    let mut by_start: Vec<&Partition> = partitions.iter().collect();
    by_start.sort_by_key(|p| p.first_lba);
    for pair in by_start.windows(2) {
        if pair[1].first_lba <= pair[0].last_lba {
            problems.push(format!(
                "partitions {} ({}) and {} ({}) overlap",
                pair[0].number, pair[0].name, pair[1].number, pair[1].name
            ));
        }
    }
    problems.into_result(partitions)
}

/// Bottlerocket's naming: every OS disk has `BOTTLEROCKET-` partitions, among them a root.
pub(crate) fn check_bottlerocket_names(partitions: &[Partition]) -> Result<(), Problems> {
    let names: Vec<&str> = partitions.iter().map(|p| p.name.as_str()).collect();
    if !names.iter().any(|n| n.starts_with("BOTTLEROCKET-ROOT-")) {
        return Err(format!("no BOTTLEROCKET-ROOT-* partition (partitions: {})", listing(&names)).into());
    }
    Ok(())
}

fn listing(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Receives the decoded disk in order and keeps only the sectors the GPT checks need.
#[derive(Debug, Default)]
pub(crate) struct GptScanner {
    offset: u64,
    /// Bytes from the start of the disk, up to `head_want`.
    head: Vec<u8>,
    head_want: u64,
    primary: Option<Header>,
    fault: Option<Problems>,
    /// Bytes `[tail_start, tail_start + tail.len())`, up to `tail_end`.
    tail: Vec<u8>,
    tail_start: u64,
    tail_end: u64,
}

impl GptScanner {
    pub(crate) fn new() -> GptScanner {
        GptScanner {
            head_want: 2 * SECTOR,
            ..GptScanner::default()
        }
    }

    /// The next bytes of the disk. Cheap: a few comparisons unless the chunk holds GPT sectors.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let start = self.offset;
        let end = start + chunk.len() as u64;
        while (self.head.len() as u64) < self.head_want && (start..end).contains(&(self.head.len() as u64)) {
            let from = (self.head.len() as u64 - start) as usize;
            let to = (self.head_want.min(end) - start) as usize;
            self.head.extend_from_slice(&chunk[from..to]);
            if self.primary.is_none() && self.fault.is_none() && self.head.len() as u64 >= 2 * SECTOR {
                self.read_primary();
            }
        }
        if self.tail_end > start && self.tail_start < end {
            let have = self.tail_start + self.tail.len() as u64;
            if have < end && have < self.tail_end {
                let from = (have - start) as usize;
                let to = (self.tail_end.min(end) - start) as usize;
                self.tail.extend_from_slice(&chunk[from..to]);
            }
        }
        self.offset = end;
    }

    fn read_primary(&mut self) {
        let sector = &self.head[SECTOR as usize..2 * SECTOR as usize];
        let header = match parse_header(sector, "primary", 1) {
            Ok(header) => header,
            Err(fault) => {
                self.fault = Some(fault);
                return;
            }
        };
        match plan_capture(&header) {
            Some((head_want, tail)) => {
                self.head_want = head_want;
                (self.tail_start, self.tail_end) = (tail.start, tail.end);
                self.tail.reserve_exact((tail.end - tail.start) as usize);
                self.primary = Some(header);
            }
            None => {
                self.fault = Some(Problems::from(format!(
                    "primary GPT header has an impossible layout: partition entries at LBA {} \
                     ({} sectors), usable LBA {}..{}, backup header at LBA {}",
                    header.entries_lba,
                    header.entry_sectors(),
                    header.first_usable,
                    header.last_usable,
                    header.alternate_lba
                )))
            }
        }
    }

    /// Checks the whole GPT now that the disk has ended; lists every problem found.
    pub(crate) fn finish(self) -> Result<Gpt, Problems> {
        let disk_bytes = self.offset;
        if disk_bytes < 2 * SECTOR {
            return Err(format!("the disk is too small to hold a GPT ({disk_bytes} bytes)").into());
        }
        let mut problems = Problems::new();
        if !disk_bytes.is_multiple_of(SECTOR) {
            problems.push(format!(
                "the disk size {disk_bytes} is not a whole number of 512-byte sectors"
            ));
        }
        if !has_protective_mbr(&self.head[..SECTOR as usize]) {
            problems.push("protective MBR missing (sector 0 has no 0xEE partition and 0x55AA signature)");
        }
        if let Some(fault) = self.fault {
            problems.extend(fault);
            return Err(problems);
        }
        let primary = self
            .primary
            .expect("a header is parsed or a fault recorded once 1 KiB has passed");
        if (self.head.len() as u64) < self.head_want {
            problems.push(format!(
                "the disk ends inside the primary partition entries ({disk_bytes} bytes)"
            ));
            return Err(problems);
        }
        let entries_at = (primary.entries_lba * SECTOR) as usize;
        let entries = &self.head[entries_at..entries_at + primary.entry_bytes() as usize];
        let mut partitions = Vec::new();
        if crc32fast::hash(entries) != primary.entries_crc {
            problems.push(format!(
                "partition entries CRC mismatch (primary array at LBA {})",
                primary.entries_lba
            ));
        } else {
            match parse_entries(entries, &primary) {
                Ok(found) => partitions = found,
                Err(found) => problems.extend(found),
            }
        }
        problems.extend(check_backup(&primary, entries, &self.tail, self.tail_end, disk_bytes));
        if problems.is_empty() {
            if let Err(fault) = check_bottlerocket_names(&partitions) {
                problems.extend(fault);
            }
        }
        problems.into_result(Gpt { disk_bytes, partitions })
    }
}

/// Where the primary entries end and which bytes hold the backup entries and header, if the
/// primary header's layout is possible: entries before the usable area, the backup after it,
/// and nothing so far out that capturing it would hold much of the disk in memory.
fn plan_capture(h: &Header) -> Option<(u64, std::ops::Range<u64>)> {
    let entries_end = h.entries_lba.checked_add(h.entry_sectors())?.checked_mul(SECTOR)?;
    let backup_entries = h.alternate_lba.checked_sub(h.entry_sectors())?;
    let tail_end = h.alternate_lba.checked_add(1)?.checked_mul(SECTOR)?;
    let possible = h.entries_lba >= 2
        && entries_end <= MAX_HEAD
        && h.first_usable.checked_mul(SECTOR)? >= entries_end
        && backup_entries > h.last_usable;
    possible.then_some((entries_end, backup_entries * SECTOR..tail_end))
}

fn has_protective_mbr(mbr: &[u8]) -> bool {
    mbr[510..512] == [0x55, 0xAA] && (0..4).any(|i| mbr[446 + 16 * i + 4] == 0xEE)
}

/// The backup header must sit on the disk's last LBA, right after its copy of the entries.
fn check_backup(primary: &Header, entries: &[u8], tail: &[u8], tail_end: u64, disk_bytes: u64) -> Problems {
    let alt = primary.alternate_lba;
    let sectors = disk_bytes / SECTOR;
    if tail_end > disk_bytes || (tail.len() as u64) < (primary.entry_sectors() + 1) * SECTOR {
        return format!(
            "backup GPT header missing at LBA {alt}: the disk has only {sectors} sectors (truncated image?)"
        )
        .into();
    }
    let mut problems = Problems::new();
    if alt + 1 != sectors {
        problems.push(format!(
            "backup GPT header at LBA {alt} is not on the disk's last LBA {} \
             (the disk was resized or the header is wrong)",
            sectors - 1
        ));
    }
    let header_sector = &tail[tail.len() - SECTOR as usize..];
    let backup = match parse_header(header_sector, "backup", alt) {
        Ok(backup) => backup,
        Err(fault) => {
            problems.extend(fault);
            return problems;
        }
    };
    let expected_entries = alt - primary.entry_sectors();
    let same_shape = backup.alternate_lba == 1
        && backup.first_usable == primary.first_usable
        && backup.last_usable == primary.last_usable
        && backup.disk_guid == primary.disk_guid
        && backup.entry_count == primary.entry_count
        && backup.entry_size == primary.entry_size;
    if !same_shape {
        problems.push(format!(
            "backup GPT header at LBA {alt} does not match the primary header"
        ));
    } else if backup.entries_lba != expected_entries {
        problems.push(format!(
            "backup GPT partition entries at LBA {}, not at LBA {expected_entries} \
             just before the backup header",
            backup.entries_lba
        ));
    } else {
        let backup_entries = &tail[..primary.entry_bytes() as usize];
        if crc32fast::hash(backup_entries) != backup.entries_crc {
            problems.push(format!(
                "backup partition entries CRC mismatch (array at LBA {})",
                backup.entries_lba
            ));
        } else if backup.entries_crc != primary.entries_crc || backup_entries != entries {
            problems.push("backup partition entries differ from the primary ones");
        }
    }
    problems
}

/// Partitions a 64 MiB file with `sgdisk`; `None` (after saying why) when sgdisk is missing
/// outside CI.
#[cfg(test)]
pub(crate) fn sgdisk_disk(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let path = dir.join("sgdisk.img");
    std::fs::File::create(&path).unwrap().set_len(64 << 20).unwrap();
    let run = std::process::Command::new("sgdisk")
        .args(["-n", "1:2048:+1M", "-c", "1:BOTTLEROCKET-EFI-A"])
        .args(["-n", "2:4096:+1M", "-c", "2:BOTTLEROCKET-BOOT-A"])
        .args(["-n", "3:6144:+16M", "-c", "3:BOTTLEROCKET-ROOT-A"])
        .args(["-n", "4:0:0", "-c", "4:BOTTLEROCKET-DATA"])
        .arg(&path)
        .output();
    match run {
        Ok(out) => {
            assert!(
                out.status.success(),
                "sgdisk failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(path)
        }
        Err(err) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "sgdisk (gdisk) is needed in CI: {err}"
            );
            eprintln!("skipped: sgdisk is not installed ({err})");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::sample_disk::{SampleDisk, SampleOptions};

    const SIZE: u64 = 4 << 20;

    fn disk() -> Vec<u8> {
        let mut raw = Vec::new();
        SampleDisk::os(SIZE, SampleOptions::default())
            .unwrap()
            .write_raw(&mut raw)
            .unwrap();
        assert_eq!(raw.len() as u64, SIZE);
        raw
    }

    fn scan(raw: &[u8], chunk: usize) -> Result<Gpt, Problems> {
        let mut scanner = GptScanner::new();
        raw.chunks(chunk).for_each(|c| scanner.feed(c));
        scanner.finish()
    }

    fn problems(raw: &[u8]) -> String {
        scan(raw, 65536).unwrap_err().to_string()
    }

    /// Recomputes a header's CRC after an edit, so that only the intended fault remains.
    fn reseal(raw: &mut [u8], header_at: usize) {
        raw[header_at + 16..header_at + 20].fill(0);
        let crc = crc32fast::hash(&raw[header_at..header_at + 92]);
        raw[header_at + 16..header_at + 20].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn sample_disk_passes_in_any_chunking() {
        let raw = disk();
        for chunk in [1 << 20, 65536, 4099, 511] {
            let gpt = scan(&raw, chunk).unwrap();
            assert_eq!(gpt.disk_bytes, SIZE);
            let names: Vec<&str> = gpt.partitions.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names.len(), 12, "{names:?}");
            assert_eq!(names[0], "BOTTLEROCKET-EFI-A");
            assert!(names.contains(&"BOTTLEROCKET-ROOT-B") && names.contains(&"BOTTLEROCKET-DATA"));
            assert_eq!(gpt.partitions[0].number, 1);
        }
    }

    #[test]
    fn bad_primary_header_crc() {
        let mut raw = disk();
        raw[512 + 40] ^= 1; // first usable LBA
        assert!(
            problems(&raw).contains("primary GPT header CRC mismatch at LBA 1"),
            "{}",
            problems(&raw)
        );
    }

    #[test]
    fn bad_entries_crc() {
        let mut raw = disk();
        raw[1024 + 56] ^= 1; // a letter of the first partition's name
        let found = problems(&raw);
        assert!(
            found.contains("partition entries CRC mismatch (primary array at LBA 2)"),
            "{found}"
        );
    }

    #[test]
    fn bad_backup_header_crc_and_entries() {
        let mut raw = disk();
        let last = raw.len() - 512;
        raw[last + 40] ^= 1;
        assert!(
            problems(&raw).contains("backup GPT header CRC mismatch at LBA 8191"),
            "{}",
            problems(&raw)
        );
        let mut raw = disk();
        raw[last - 16384 + 56] ^= 1;
        assert!(
            problems(&raw).contains("backup partition entries CRC mismatch"),
            "{}",
            problems(&raw)
        );
    }

    #[test]
    fn missing_or_misplaced_backup_header() {
        let raw = disk();
        let cut = &raw[..raw.len() - 1024];
        assert!(
            problems(cut).contains("backup GPT header missing at LBA 8191"),
            "{}",
            problems(cut)
        );
        let mut wiped = raw.clone();
        let last = wiped.len() - 512;
        wiped[last..].fill(0);
        assert!(
            problems(&wiped).contains("backup GPT header missing at LBA 8191"),
            "{}",
            problems(&wiped)
        );
        let mut longer = raw.clone();
        longer.extend_from_slice(&[0u8; 4096]);
        assert!(
            problems(&longer).contains("is not on the disk's last LBA 8199"),
            "{}",
            problems(&longer)
        );
        let mut odd = raw;
        odd.push(0);
        assert!(
            problems(&odd).contains("not a whole number of 512-byte sectors"),
            "{}",
            problems(&odd)
        );
    }

    #[test]
    fn no_root_partition() {
        let mut raw = disk();
        // Rename ROOT-A and ROOT-B (entries 3 and 8) in both arrays, then fix every CRC.
        let backup_entries = raw.len() - 512 - 16384;
        for array in [1024, backup_entries] {
            for index in [2, 7] {
                let name = array + index * 128 + 56 + 2 * "BOTTLEROCKET-".len();
                raw[name..name + 8].copy_from_slice(&[b'T', 0, b'O', 0, b'O', 0, b'R', 0]);
            }
        }
        let crc = crc32fast::hash(&raw[1024..1024 + 16384]);
        for header in [512, raw.len() - 512] {
            raw[header + 88..header + 92].copy_from_slice(&crc.to_le_bytes());
            reseal(&mut raw, header);
        }
        let found = problems(&raw);
        assert!(
            found.contains("no BOTTLEROCKET-ROOT-* partition (partitions: BOTTLEROCKET-EFI-A"),
            "{found}"
        );
        assert!(found.contains("BOTTLEROCKET-TOOR-A"), "{found}");
    }

    #[test]
    fn impossible_layout_is_a_fault_not_a_panic() {
        let mut raw = disk();
        raw[512 + 72..512 + 80].copy_from_slice(&u64::MAX.to_le_bytes()); // entries LBA
        reseal(&mut raw, 512);
        let found = problems(&raw);
        assert!(found.contains("primary GPT header has an impossible layout"), "{found}");
    }

    #[test]
    fn not_a_gpt_disk() {
        let raw = vec![0u8; 1 << 20];
        let found = problems(&raw);
        assert!(found.contains("protective MBR missing"), "{found}");
        assert!(found.contains("primary GPT header missing at LBA 1"), "{found}");
        assert!(problems(&[0u8; 100]).contains("too small to hold a GPT"));
    }

    #[test]
    fn overlapping_partitions_are_named() {
        let mut raw = disk();
        // Partition 2 starts where partition 1 starts.
        let first = raw[1024 + 32..1024 + 40].to_vec();
        raw[1024 + 128 + 32..1024 + 128 + 40].copy_from_slice(&first);
        let crc = crc32fast::hash(&raw[1024..1024 + 16384]);
        raw[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
        reseal(&mut raw, 512);
        let found = problems(&raw);
        assert!(
            found.contains("partitions 1 (BOTTLEROCKET-EFI-A) and 2 (BOTTLEROCKET-BOOT-A) overlap"),
            "{found}"
        );
        assert!(
            found.contains("backup partition entries differ from the primary ones"),
            "{found}"
        );
    }

    /// A disk partitioned by `sgdisk`, an independent GPT writer, must pass as well.
    #[test]
    fn disk_made_by_sgdisk_passes() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = sgdisk_disk(dir.path()) else {
            return;
        };
        let raw = std::fs::read(path).unwrap();
        let gpt = scan(&raw, 1 << 20).unwrap();
        let names: Vec<&str> = gpt.partitions.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "BOTTLEROCKET-EFI-A",
                "BOTTLEROCKET-BOOT-A",
                "BOTTLEROCKET-ROOT-A",
                "BOTTLEROCKET-DATA"
            ]
        );
        assert_eq!(gpt.partitions[2].first_lba, 6144);
    }
}
