//! Reading small members out of an uncompressed tar archive, such as the `index.json` of a kit
//! archive, without reading the rest: the `tar` crate reads the headers and seeks past every
//! other member, so a multi-GiB archive costs a few reads.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

/// The contents of the first member `wanted` accepts, by name (a leading `./` ignored), read
/// from the archive at `path`, `limit` bytes at most. `None` when no member matches.
pub(crate) fn read_member(path: &Path, wanted: &dyn Fn(&str) -> bool, limit: u64) -> Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    find(file, wanted, limit).with_context(|| format!("{} is not a readable tar archive", path.display()))
}

fn find(file: std::fs::File, wanted: &dyn Fn(&str) -> bool, limit: u64) -> Result<Option<Vec<u8>>> {
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        let path = entry.path()?;
        let name = path.to_string_lossy();
        if wanted(name.trim_start_matches("./")) {
            let mut contents = Vec::new();
            entry.take(limit).read_to_end(&mut contents)?;
            return Ok(Some(contents));
        }
    }
    Ok(None)
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
