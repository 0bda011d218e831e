//! Reading small members out of an uncompressed tar archive, such as the `index.json` of a kit
//! archive, without reading the rest: the headers are read and every other member is skipped
//! with a seek, so a multi-GiB archive costs a few reads.
//!
//! Covers what `tar`, GNU tar and Python's `tarfile` write: ustar names with a prefix, GNU long
//! names (`L` entries) and pax `path` records (`x` entries); sizes in octal or base-256.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};

const BLOCK: u64 = 512;

/// The contents of the members `wanted` asks for, by name (a leading `./` ignored), read from the
/// archive at `path`; stops at the first member `wanted` accepts and returns `limit` bytes at
/// most for it. `None` when no member matches.
pub(crate) fn read_member(path: &Path, wanted: &dyn Fn(&str) -> bool, limit: u64) -> Result<Option<Vec<u8>>> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_member_from(&mut file, wanted, limit)
        .with_context(|| format!("{} is not a readable tar archive", path.display()))
}

fn read_member_from<R: Read + Seek>(
    input: &mut R,
    wanted: &dyn Fn(&str) -> bool,
    limit: u64,
) -> Result<Option<Vec<u8>>> {
    let mut long_name: Option<String> = None;
    loop {
        let mut header = [0u8; BLOCK as usize];
        match read_block(input, &mut header)? {
            false => return Ok(None),
            true if header.iter().all(|b| *b == 0) => return Ok(None),
            true => {}
        }
        check_sum(&header)?;
        let size = size(&header[124..136])?;
        let padded = size.div_ceil(BLOCK) * BLOCK;
        let kind = header[156];
        match kind {
            // A GNU long name or pax record: it names the member that follows.
            b'L' | b'x' => {
                if size > 1 << 20 {
                    bail!("a {} header of {size} bytes", kind as char);
                }
                let mut data = vec![0u8; size as usize];
                input.read_exact(&mut data)?;
                input.seek(SeekFrom::Current((padded - size) as i64))?;
                long_name = if kind == b'L' {
                    Some(String::from_utf8_lossy(&data).trim_end_matches('\0').to_string())
                } else {
                    pax_path(&data).or(long_name)
                };
                continue;
            }
            _ => {}
        }
        let name = long_name.take().unwrap_or_else(|| ustar_name(&header));
        let name = name.strip_prefix("./").unwrap_or(&name);
        let regular = kind == b'0' || kind == 0;
        if regular && wanted(name) {
            let mut data = vec![0u8; size.min(limit) as usize];
            input.read_exact(&mut data)?;
            return Ok(Some(data));
        }
        input.seek(SeekFrom::Current(padded as i64))?;
    }
}

/// Reads one block; false at a clean end of input.
fn read_block<R: Read>(input: &mut R, block: &mut [u8]) -> Result<bool> {
    let mut filled = 0;
    while filled < block.len() {
        let n = input.read(&mut block[filled..])?;
        if n == 0 {
            if filled == 0 {
                return Ok(false);
            }
            bail!("the archive ends inside a header");
        }
        filled += n;
    }
    Ok(true)
}

fn check_sum(header: &[u8]) -> Result<()> {
    let recorded = octal(&header[148..156]).context("the header checksum is not a number")?;
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(*b)
            }
        })
        .sum();
    if sum != recorded {
        bail!("a header's checksum does not match");
    }
    Ok(())
}

/// A size field: octal text, or base-256 when its top bit is set.
fn size(field: &[u8]) -> Result<u64> {
    if field[0] & 0x80 != 0 {
        return Ok(field[1..].iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)));
    }
    octal(field).context("a member's size is not a number")
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn ustar_name(header: &[u8]) -> String {
    let field = |range: std::ops::Range<usize>| {
        let bytes = &header[range];
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    };
    let name = field(0..100);
    let prefix = if &header[257..262] == b"ustar" {
        field(345..500)
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// The `path` of pax records (`<length> path=<value>\n` …).
fn pax_path(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    text.lines()
        .filter_map(|record| record.split_once(' ').map(|(_, rest)| rest))
        .find_map(|rest| rest.strip_prefix("path="))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive made by the system's tar, with a long name, a `./` prefix and a large member.
    #[test]
    fn members_are_found_by_name_and_others_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let long = format!("blobs/sha256/{}", "ab".repeat(60));
        std::fs::create_dir_all(src.join("blobs/sha256")).unwrap();
        std::fs::write(src.join("big"), vec![7u8; 3 * 1024 * 1024 + 5]).unwrap();
        std::fs::write(src.join("index.json"), b"{\"manifests\":[]}").unwrap();
        std::fs::write(src.join(&long), b"long name").unwrap();
        let archive = dir.path().join("a.tar");
        for format in ["gnu", "pax"] {
            let status = std::process::Command::new("tar")
                .arg(format!("--format={format}"))
                .arg("-cf")
                .arg(&archive)
                .arg("-C")
                .arg(&src)
                .args(["./big", "./index.json", &format!("./{long}")])
                .status()
                .unwrap();
            assert!(status.success());
            let read = |name: &str| read_member(&archive, &|n| n == name, 1 << 20).unwrap();
            assert_eq!(read("index.json").unwrap(), b"{\"manifests\":[]}", "{format}");
            assert_eq!(read(&long).unwrap(), b"long name", "{format}");
            assert_eq!(read("big").unwrap().len(), 1 << 20, "limited");
            assert_eq!(read("missing"), None);
        }
        std::fs::write(&archive, b"not a tar archive at all, but long enough to hold a header?").unwrap();
        assert!(read_member(&archive, &|_| true, 10).is_err());
        std::fs::write(&archive, vec![b'x'; 1024]).unwrap();
        let err = read_member(&archive, &|_| true, 10).unwrap_err();
        assert!(format!("{err:#}").contains("not a readable tar archive"), "{err:#}");
    }
}
