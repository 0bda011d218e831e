//! Files the xtask writes: atomically (temp file + rename) and, where several processes may
//! meet, under an exclusive lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Serialize};

/// Writes `contents` to `path` so that readers see either the old file or the new one, never
/// a half-written one: a temp file in the same directory, fsynced, then renamed over the target.
/// For the user's own files and anything that cannot be recomputed.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    replace(path, contents, true)
}

/// Like [`write_atomic`] without the fsync, for workspace state on hot paths (`next-step`
/// rewrites progress.json on every call; an fsync measured up to 6 ms there). The rename still
/// makes the replace atomic for every process, killed or not; only a power cut can lose the
/// newest state, which the gates then re-check against reality anyway.
pub(crate) fn write_state(path: &Path, contents: &[u8]) -> Result<()> {
    replace(path, contents, false)
}

/// [`write_atomic`] for a user's file, with the temp file in `temp_dir` (a workspace) rather
/// than beside the file, so that a kill never leaves a stray file in the user's repo. Beside the
/// file only when `temp_dir` is on another filesystem, where a rename cannot reach.
pub(crate) fn write_atomic_with_temp_in(path: &Path, contents: &[u8], temp_dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    fs_err::create_dir_all(temp_dir)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let same_fs = match (std::fs::metadata(dir), std::fs::metadata(temp_dir)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    };
    replace_via(path, contents, true, same_fs.then_some(temp_dir))?;
    sync_dir(dir)
}

/// Makes a rename or removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// SHA-256 of `bytes`, as lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&hmac_sha256::Hash::hash(bytes))
}

/// The permission bits of a file.
pub(crate) fn mode(path: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(fs_err::metadata(path)?.permissions().mode() & 0o7777)
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn replace(path: &Path, contents: &[u8], sync: bool) -> Result<()> {
    replace_via(path, contents, sync, None)
}

fn replace_via(path: &Path, contents: &[u8], sync: bool, temp_dir: Option<&Path>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    let name = path.file_name().context("cannot write a path without a file name")?;
    let tmp = temp_dir.unwrap_or(dir).join(format!(
        ".{}.tmp-{}-{:?}",
        name.to_string_lossy(),
        std::process::id(),
        std::thread::current().id()
    ));
    let result = (|| -> Result<()> {
        let mut file = fs_err::File::create(&tmp)?;
        file.write_all(contents)?;
        if sync {
            file.sync_all()?;
        }
        // Keep the permissions of the file being replaced (an executable stays executable).
        if let Ok(meta) = std::fs::metadata(path) {
            fs_err::set_permissions(&tmp, meta.permissions())?;
        }
        crate::fault::point(&format!("{} written, not yet in place", tmp.display()));
        fs_err::rename(&tmp, path)?;
        crate::fault::point(&format!("{} replaced", path.display()));
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, json_text(value)?.as_bytes())
}

/// [`write_state`] of a value as pretty JSON.
pub(crate) fn write_json_state<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_state(path, json_text(value)?.as_bytes())
}

fn json_text<T: Serialize>(value: &T) -> Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// The most the xtask reads of a file it parses (input.json, progress.json, results, TOML files,
/// inventories): far more than any of them holds, far less than memory.
pub(crate) const MAX_TEXT: u64 = 16 << 20;

/// Reads a text file the xtask parses; `Ok(None)` when it does not exist. Only a regular file
/// (links followed) of at most [`MAX_TEXT`] bytes is read: a FIFO, a device or a huge file is an
/// error at once, never a hang or a read until memory runs out.
pub(crate) fn read_text(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    if !meta.is_file() {
        bail!(
            "{} is {}, not a regular file: replace it with the file it should be",
            path.display(),
            kind_of(&meta)
        );
    }
    let too_big = || {
        anyhow::anyhow!(
            "{} is larger than {} MiB, more than such a file ever holds: replace it with the file it should be",
            path.display(),
            MAX_TEXT >> 20
        )
    };
    if meta.len() > MAX_TEXT {
        return Err(too_big());
    }
    // Room for the whole file (and the read that finds its end): read in one call, not in the
    // doubling steps from 32 bytes that an empty buffer behind `take` gets.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    File::open(path)
        .and_then(|f| f.take(MAX_TEXT + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_TEXT {
        return Err(too_big());
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

/// What kind of file this is, in words, for errors.
pub(crate) fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Reads and parses a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    Ok(Some(parse_json(&text).with_context(|| {
        format!("{} is not valid: fix or delete it", path.display())
    })?))
}

/// JSON text into `T`, in two steps: the text into a `Value` (`Value`'s `FromStr` is compiled in
/// serde_json, at the opt-level Cargo.toml gives it), then the `Value` into `T` (generic, so
/// compiled here, unoptimised, but it no longer walks the text byte by byte). In the debug
/// build, `next-step`'s reads of a workspace's JSON files took 0.44 M instructions this way
/// instead of 0.75 M (callgrind). Syntax errors keep their line and column; a wrong type or a
/// missing field is named without them.
pub(crate) fn parse_json<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    T::deserialize(text.parse::<serde_json::Value>()?)
}

/// [`parse_json`] of bytes, which must be UTF-8 (as JSON is).
pub(crate) fn parse_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let text = std::str::from_utf8(bytes).map_err(|e| anyhow::anyhow!("not UTF-8 text ({e})"))?;
    Ok(parse_json(text)?)
}

/// A text file's contents; `Ok(None)` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    read_text(path)
}

/// The last `max` bytes of a file, as text (lossy), for logs that may be large.
pub(crate) fn read_tail(path: &Path, max: u64) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A text file's contents, which must exist.
pub(crate) fn read_required(path: &Path) -> Result<String> {
    read_text(path)?.with_context(|| format!("{} does not exist", path.display()))
}

/// An exclusive advisory lock on a file, released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    /// Whether another process holds the lock at `path` right now (it is not taken).
    pub(crate) fn is_held(path: &Path) -> bool {
        let Ok(file) = OpenOptions::new().write(true).open(path) else {
            return false;
        };
        matches!(file.try_lock(), Err(TryLockError::WouldBlock))
    }

    /// The lock at `path` (created if needed) if nobody holds it; `Ok(None)` if someone does.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<Lock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(err)) => Err(err).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    /// Waits up to `timeout` for the lock at `path` (created if needed).
    pub(crate) fn acquire(path: &Path, timeout: Duration) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        let start = Instant::now();
        let mut delay = Duration::from_millis(5);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Lock { _file: file }),
                Err(TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        bail!(
                            "{} is held by another xtask process for more than {}s; wait for it \
                             to finish, or find it with `fuser {}`",
                            path.display(),
                            timeout.as_secs(),
                            path.display()
                        );
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                Err(TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("cannot lock {}", path.display()))
                }
            }
        }
    }
}

/// Lower-case hex. By table: a `format!` per byte cost `next-step` 2% of its instructions.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Nanoseconds since the Unix epoch, for ids that must differ between runs.
pub(crate) fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, for timestamps in state files.
pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A directory removed (with its contents) when dropped: under the system temp dir, or beside
/// the place its contents will be renamed to (a rename within one file system is atomic).
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(prefix: &str) -> Result<TempDir> {
        TempDir::new_in(&std::env::temp_dir(), prefix)
    }

    pub(crate) fn new_in(parent: &Path, prefix: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = parent.join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs_err::create_dir_all(parent)?;
        fs_err::create_dir(&path)?;
        Ok(TempDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Puts the directory `new` at `place`; an existing one there moves to `new`'s path (for its
/// owner to remove). On Linux one exchange, so `place` never lacks a complete directory.
pub(crate) fn swap_in(new: &Path, place: &Path) -> Result<()> {
    if !place.exists() {
        return fs_err::rename(new, place).map_err(Into::into);
    }
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).context("a path with a NUL byte");
        let (a, b) = (c(new)?, c(place)?);
        // SAFETY: both are valid NUL-terminated paths; renameat2 only reads them.
        let done = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if done == 0 {
            return Ok(());
        }
    }
    // Elsewhere (or a file system without the exchange): two renames.
    let aside = new.with_extension("old");
    fs_err::rename(place, &aside)?;
    fs_err::rename(new, place)?;
    fs_err::rename(&aside, new)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xf0, 0xff, 0x5a]), "000ff0ff5a");
        assert_eq!(hex(&[]), "");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_directory_is_swapped_in_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (new, place) = (dir.path().join("new"), dir.path().join("ws"));
        fs_err::create_dir_all(&new).unwrap();
        fs_err::write(new.join("a"), "new").unwrap();
        swap_in(&new, &place).unwrap();
        assert_eq!(fs_err::read_to_string(place.join("a")).unwrap(), "new");
        fs_err::create_dir_all(&new).unwrap();
        fs_err::write(new.join("b"), "newer").unwrap();
        swap_in(&new, &place).unwrap();
        assert_eq!(fs_err::read_to_string(place.join("b")).unwrap(), "newer");
        assert!(!place.join("a").exists());
        assert!(new.join("a").exists(), "the old one is left where the new one was");
    }

    #[test]
    fn temp_dir_is_removed() {
        let tmp = TempDir::new("xtask-test").unwrap();
        let path = tmp.path().to_path_buf();
        fs_err::write(path.join("f"), "x").unwrap();
        drop(tmp);
        assert!(!path.exists());
    }

    #[test]
    fn atomic_write_replaces_and_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tool");
        fs_err::write(&path, "old").unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "new");
        let mode = fs_err::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let leftovers: Vec<_> = fs_err::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file is left behind");
    }

    #[test]
    fn second_lock_waits_then_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = Lock::acquire(&path, Duration::from_secs(1)).unwrap();
        let err = Lock::acquire(&path, Duration::from_millis(50)).unwrap_err();
        assert!(format!("{err:#}").contains("held by another xtask process"), "{err:#}");
        drop(held);
        Lock::acquire(&path, Duration::from_millis(50)).unwrap();
    }

    #[test]
    fn read_json_reports_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.json");
        assert!(read_json::<serde_json::Value>(&path).unwrap().is_none());
        fs_err::write(&path, "{nope").unwrap();
        let err = read_json::<serde_json::Value>(&path).unwrap_err();
        assert!(format!("{err:#}").contains("input.json is not valid"), "{err:#}");
    }
}
