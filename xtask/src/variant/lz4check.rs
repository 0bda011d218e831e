//! A streaming check of an LZ4 frame file, as `lz4 -t` does it: every frame header, block and
//! content checksum is verified and the decoded bytes are handed to a sink in block-sized
//! pieces, so memory stays bounded by the frame's block size whatever the image size.
//!
//! lz4_flex's `FrameDecoder` verifies block and content checksums, but it treats input that ends
//! at a block boundary as a clean end of stream, so a truncated image would pass; and being
//! generic, it is compiled into this crate, unoptimised in the debug build `cargo xtask` uses.
//! This reader parses the frame format itself and decodes and hashes with liblz4 (built by
//! `lz4-sys`, always optimised): the same block decoder and XXH32 that `lz4 -t` runs.
//!
//! Several frames in one file are legal LZ4 (`lz4 -d` concatenates their output, `lz4 -t`
//! accepts them): they are decoded as one stream and counted. Skippable frames are skipped.
//! Anything else after a frame is trailing garbage and an error, as with `lz4 -t`.

use std::ffi::{c_char, c_int, c_void};
use std::io::{self, Read};

use anyhow::{bail, Result};
use serde::Serialize;

const MAGIC: u32 = 0x184D_2204;
const LEGACY_MAGIC: u32 = 0x184C_2102;
const SKIPPABLE: std::ops::RangeInclusive<u32> = 0x184D_2A50..=0x184D_2A5F;
const WINDOW: usize = 64 * 1024;

/// What a complete, intact LZ4 file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FrameStats {
    pub compressed_bytes: u64,
    pub decoded_bytes: u64,
    pub frames: u32,
    /// Whether every frame carried a content checksum (lz4's default).
    pub content_checksummed: bool,
}

/// Reads `input` to its end, verifying it as a sequence of LZ4 frames, and feeds the decoded
/// bytes in order to `sink`. The error says what is wrong and where (compressed byte offset).
/// `input` should be buffered or read in large pieces; block data is read in one call per block.
pub fn check_frames<R: Read>(input: R, sink: &mut dyn FnMut(&[u8])) -> Result<FrameStats> {
    let mut input = Input { r: input, pos: 0 };
    let mut buffers = Buffers::default();
    let mut stats = FrameStats {
        compressed_bytes: 0,
        decoded_bytes: 0,
        frames: 0,
        content_checksummed: true,
    };
    loop {
        let start = input.pos;
        let mut magic = [0u8; 4];
        let got = input.fill(&mut magic)?;
        if got == 0 {
            if stats.frames == 0 {
                bail!("empty file: not an LZ4 frame");
            }
            break;
        }
        let magic = u32::from_le_bytes(magic);
        if got < 4 || !(magic == MAGIC || SKIPPABLE.contains(&magic)) {
            if stats.frames == 0 && got == 4 && magic == LEGACY_MAGIC {
                bail!("legacy LZ4 format (`lz4 -l`), not an LZ4 frame");
            }
            if stats.frames == 0 {
                bail!("not an LZ4 frame (no frame magic number at the start of the file)");
            }
            bail!(
                "trailing data after the last LZ4 frame at byte {start}: not another frame \
                 (lz4 -t: \"stream followed by undecodable data\")"
            );
        }
        if SKIPPABLE.contains(&magic) {
            let mut len = [0u8; 4];
            input.exact(&mut len, "skippable frame size")?;
            input.skip(u32::from_le_bytes(len) as u64)?;
            continue;
        }
        let checksummed = frame(&mut input, &mut buffers, &mut stats, sink)?;
        stats.frames += 1;
        stats.content_checksummed &= checksummed;
    }
    stats.compressed_bytes = input.pos;
    Ok(stats)
}

#[derive(Default)]
struct Buffers {
    src: Vec<u8>,
    dst: Vec<u8>,
    /// The last `WINDOW` decoded bytes, for frames whose blocks are linked.
    dict: Vec<u8>,
}

/// Decodes one frame after its magic number; returns whether it had a content checksum.
fn frame<R: Read>(
    input: &mut Input<R>,
    buf: &mut Buffers,
    stats: &mut FrameStats,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<bool> {
    let header_at = input.pos - 4;
    let mut desc = [0u8; 15];
    input.exact(&mut desc[..2], "frame header")?;
    let (flg, bd) = (desc[0], desc[1]);
    if flg >> 6 != 1 {
        bail!(
            "LZ4 frame at byte {header_at} has unsupported version {}",
            flg >> 6
        );
    }
    if flg & 0b10 != 0 || bd & 0b1000_1111 != 0 {
        bail!("LZ4 frame header at byte {header_at} has reserved bits set (corrupt header)");
    }
    if flg & 1 != 0 {
        bail!("LZ4 frame at byte {header_at} needs an external dictionary, which images never use");
    }
    let linked = flg & 0b10_0000 == 0;
    let block_checksums = flg & 0b1_0000 != 0;
    let content_size_present = flg & 0b1000 != 0;
    let content_checksum = flg & 0b100 != 0;
    let max_block = match (bd >> 4) & 0b111 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        other => bail!("LZ4 frame header at byte {header_at} has invalid block size code {other}"),
    };
    let mut desc_len = 2;
    if content_size_present {
        input.exact(&mut desc[2..10], "frame header")?;
        desc_len = 10;
    }
    let mut hc = [0u8; 1];
    input.exact(&mut hc, "frame header checksum")?;
    if (xxh32(&desc[..desc_len]) >> 8) as u8 != hc[0] {
        bail!("LZ4 frame header checksum mismatch at byte {header_at} (corrupt header)");
    }
    let content_size =
        content_size_present.then(|| u64::from_le_bytes(desc[2..10].try_into().unwrap()));

    buf.src.resize(max_block, 0);
    buf.dst.resize(max_block, 0);
    buf.dict.clear();
    let mut hasher = ContentHash::new();
    let mut decoded: u64 = 0;
    for block in 0u64.. {
        let block_at = input.pos;
        let mut word = [0u8; 4];
        let got = input.fill(&mut word)?;
        if got < 4 {
            bail!(
                "truncated: the file ends at byte {} inside an LZ4 frame, before its end mark \
                 ({decoded} bytes decoded)",
                input.pos
            );
        }
        let word = u32::from_le_bytes(word);
        if word == 0 {
            break;
        }
        let len = (word & 0x7FFF_FFFF) as usize;
        if len > max_block {
            bail!("LZ4 block {block} at byte {block_at} claims {len} bytes, more than the frame's {max_block}-byte blocks (corrupt)");
        }
        let stored = word & 0x8000_0000 != 0;
        let data = if stored {
            &mut buf.dst[..len]
        } else {
            &mut buf.src[..len]
        };
        input.exact(data, "LZ4 block")?;
        if block_checksums {
            let mut sum = [0u8; 4];
            input.exact(&mut sum, "LZ4 block checksum")?;
            if xxh32(data) != u32::from_le_bytes(sum) {
                bail!("LZ4 block checksum mismatch in block {block} at byte {block_at} (corrupt data)");
            }
        }
        let n = if stored {
            len
        } else {
            decode_block(&buf.src[..len], &mut buf.dst, &buf.dict).map_err(|()| {
                anyhow::anyhow!(
                    "LZ4 block {block} at byte {block_at} does not decode (corrupt data)"
                )
            })?
        };
        let out = &buf.dst[..n];
        if content_checksum {
            hasher.update(out);
        }
        if linked {
            keep_window(&mut buf.dict, out);
        }
        decoded += n as u64;
        sink(out);
    }
    if content_checksum {
        let mut sum = [0u8; 4];
        input.exact(&mut sum, "LZ4 content checksum")?;
        if hasher.digest() != u32::from_le_bytes(sum) {
            bail!(
                "LZ4 content checksum mismatch for the frame at byte {header_at} (corrupt data: \
                 the decoded content differs from what was compressed)"
            );
        }
    }
    if let Some(expected) = content_size {
        if expected != decoded {
            bail!("LZ4 frame at byte {header_at} declares {expected} bytes of content but decodes to {decoded}");
        }
    }
    stats.decoded_bytes += decoded;
    Ok(content_checksum)
}

// Part of liblz4's stable API and of the static library lz4-sys builds (lz4.c and xxhash.c),
// which does not declare them. A build without them fails to link; it cannot misbehave.
extern "C" {
    fn XXH32(input: *const c_void, len: usize, seed: u32) -> u32;
    fn XXH32_createState() -> *mut c_void;
    fn XXH32_freeState(state: *mut c_void) -> c_int;
    fn XXH32_reset(state: *mut c_void, seed: u32) -> c_int;
    fn XXH32_update(state: *mut c_void, input: *const c_void, len: usize) -> c_int;
    fn XXH32_digest(state: *const c_void) -> u32;
    fn LZ4_decompress_safe_usingDict(
        src: *const c_char,
        dst: *mut c_char,
        src_size: c_int,
        dst_capacity: c_int,
        dict_start: *const c_char,
        dict_size: c_int,
    ) -> c_int;
}

/// XXH32 with seed 0, as LZ4 frames use it.
fn xxh32(data: &[u8]) -> u32 {
    // SAFETY: XXH32 reads exactly `len` bytes from `input`.
    unsafe { XXH32(data.as_ptr().cast(), data.len(), 0) }
}

/// A running XXH32 (seed 0) over a frame's decoded content.
struct ContentHash(*mut c_void);

impl ContentHash {
    fn new() -> ContentHash {
        // SAFETY: createState returns a heap state or null; reset initialises a valid state.
        let state = unsafe { XXH32_createState() };
        assert!(!state.is_null(), "out of memory for an XXH32 state");
        unsafe { XXH32_reset(state, 0) };
        ContentHash(state)
    }

    fn update(&mut self, data: &[u8]) {
        // SAFETY: the state is valid until drop; update reads exactly `len` bytes.
        unsafe { XXH32_update(self.0, data.as_ptr().cast(), data.len()) };
    }

    fn digest(&self) -> u32 {
        // SAFETY: the state is valid until drop.
        unsafe { XXH32_digest(self.0) }
    }
}

impl Drop for ContentHash {
    fn drop(&mut self) {
        // SAFETY: the state came from createState and is freed once.
        unsafe { XXH32_freeState(self.0) };
    }
}

/// Decodes one LZ4 block into `dst`, with `dict` as the preceding output for linked blocks.
fn decode_block(src: &[u8], dst: &mut [u8], dict: &[u8]) -> Result<usize, ()> {
    let (src_len, dst_len, dict_len) =
        (as_int(src.len())?, as_int(dst.len())?, as_int(dict.len())?);
    // SAFETY: liblz4's `_safe` decoders read at most `src_size` bytes from `src` and write at
    // most `dst_capacity` bytes to `dst` whatever the input, and return a negative number for
    // malformed input. The three slices are distinct buffers with the lengths passed.
    let n = unsafe {
        if dict.is_empty() {
            lz4_sys::LZ4_decompress_safe(
                src.as_ptr().cast(),
                dst.as_mut_ptr().cast(),
                src_len,
                dst_len,
            )
        } else {
            LZ4_decompress_safe_usingDict(
                src.as_ptr().cast(),
                dst.as_mut_ptr().cast(),
                src_len,
                dst_len,
                dict.as_ptr().cast(),
                dict_len,
            )
        }
    };
    usize::try_from(n).map_err(|_| ())
}

fn as_int(n: usize) -> Result<c_int, ()> {
    c_int::try_from(n).map_err(|_| ())
}

/// Keeps the last `WINDOW` bytes of the decoded stream in `dict`.
fn keep_window(dict: &mut Vec<u8>, out: &[u8]) {
    if out.len() >= WINDOW {
        dict.clear();
        dict.extend_from_slice(&out[out.len() - WINDOW..]);
    } else {
        let drop = (dict.len() + out.len()).saturating_sub(WINDOW);
        dict.drain(..drop);
        dict.extend_from_slice(out);
    }
}

/// A reader that knows its position, for error messages, and tells a short read from an error.
struct Input<R> {
    r: R,
    pos: u64,
}

impl<R: Read> Input<R> {
    /// Reads until `buf` is full or the input ends; returns how much was read.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.pos += got as u64;
        Ok(got)
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        if self.fill(buf)? < buf.len() {
            bail!(
                "truncated: the file ends at byte {} inside an {what}, before the frame's end mark",
                self.pos
            );
        }
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        let skipped = io::copy(&mut (&mut self.r).take(n), &mut io::sink())?;
        self.pos += skipped;
        if skipped < n {
            bail!(
                "truncated: the file ends at byte {} inside a skippable frame",
                self.pos
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    use std::io::Write;

    fn data(len: usize) -> Vec<u8> {
        // Compressible but not trivial: a counter mixed with a slow pattern.
        (0..len)
            .map(|i| ((i / 7) as u8).wrapping_mul(31) ^ (i % 13) as u8)
            .collect()
    }

    fn encode(content: &[u8], info: FrameInfo) -> Vec<u8> {
        let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(content).unwrap();
        enc.finish().unwrap()
    }

    fn checked_info() -> FrameInfo {
        FrameInfo::new()
            .block_size(BlockSize::Max64KB)
            .block_checksums(true)
            .content_checksum(true)
    }

    fn check(bytes: &[u8]) -> Result<(FrameStats, Vec<u8>)> {
        let mut out = Vec::new();
        let stats = check_frames(bytes, &mut |chunk| out.extend_from_slice(chunk))?;
        Ok((stats, out))
    }

    fn err(bytes: &[u8]) -> String {
        format!("{:#}", check(bytes).unwrap_err())
    }

    #[test]
    fn decodes_independent_and_linked_frames() {
        let content = data(300_000);
        for mode in [BlockMode::Independent, BlockMode::Linked] {
            let frame = encode(
                &content,
                checked_info().block_mode(mode).content_size(Some(300_000)),
            );
            let (stats, out) = check(&frame).unwrap();
            assert_eq!(out, content, "{mode:?}");
            assert_eq!(stats.decoded_bytes, 300_000);
            assert_eq!(stats.compressed_bytes, frame.len() as u64);
            assert_eq!(stats.frames, 1);
            assert!(stats.content_checksummed);
        }
    }

    #[test]
    fn reads_what_the_lz4_tool_writes() {
        let Ok(out) = std::process::Command::new("lz4")
            .args(["--version"])
            .output()
        else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "lz4 is needed in CI"
            );
            eprintln!("skipped: the lz4 tool is not installed");
            return;
        };
        assert!(out.status.success());
        let dir = tempfile::tempdir().unwrap();
        let content = data(1_000_000);
        let plain = dir.path().join("d");
        std::fs::write(&plain, &content).unwrap();
        // -BD: linked blocks, --content-size, -BX: block checksums.
        for flags in [
            &["-z"][..],
            &["-z", "-BD", "-BX", "--content-size", "-B4"][..],
        ] {
            let packed = dir.path().join("d.lz4");
            let status = std::process::Command::new("lz4")
                .args(flags)
                .args(["-q", "-f"])
                .arg(&plain)
                .arg(&packed)
                .status()
                .unwrap();
            assert!(status.success());
            let (stats, out) = check(&std::fs::read(&packed).unwrap()).unwrap();
            assert!(out == content, "lz4 {flags:?}");
            assert_eq!(stats.decoded_bytes, content.len() as u64);
        }
    }

    #[test]
    fn concatenated_and_skippable_frames_are_one_stream() {
        let mut bytes = encode(b"first ", checked_info());
        bytes.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(b"xyz");
        bytes.extend(encode(b"second", checked_info()));
        let (stats, out) = check(&bytes).unwrap();
        assert_eq!(out, b"first second");
        assert_eq!(stats.frames, 2);
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let content = data(200_000);
        for info in [
            checked_info(),
            FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .content_checksum(true),
        ] {
            let frame = encode(&content, info);
            for at in (0..frame.len()).step_by(997).chain([frame.len() - 1]) {
                let mut bad = frame.clone();
                bad[at] ^= 0x10;
                let result = check(&bad);
                assert!(
                    result.is_err(),
                    "flip at {at} of {} was not caught",
                    frame.len()
                );
            }
        }
    }

    #[test]
    fn checksum_faults_are_named() {
        let content = data(200_000);
        let frame = encode(&content, checked_info());
        let mut bad = frame.clone();
        bad[100] ^= 1;
        assert!(
            err(&bad).contains("block checksum mismatch in block 0"),
            "{}",
            err(&bad)
        );
        let mut bad = frame.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(
            err(&bad).contains("content checksum mismatch"),
            "{}",
            err(&bad)
        );
        let mut bad = frame.clone();
        bad[5] ^= 0x40; // BD byte: the block size code becomes invalid
        assert!(err(&bad).contains("header"), "{}", err(&bad));
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let frame = encode(&data(200_000), checked_info());
        let (stats, _) = check(&frame).unwrap();
        assert!(stats.decoded_bytes > 0);
        // Every cut, including at block boundaries and just before the end mark.
        for cut in (1..frame.len())
            .step_by(401)
            .chain(frame.len() - 8..frame.len())
        {
            let message = err(&frame[..cut]);
            assert!(
                message.contains("truncated") || message.contains("not an LZ4"),
                "cut {cut}: {message}"
            );
        }
    }

    #[test]
    fn trailing_garbage_and_non_frames_are_errors() {
        let mut frame = encode(b"hello", checked_info());
        frame.extend_from_slice(b"garbage!");
        assert!(err(&frame).contains("trailing data after the last LZ4 frame"));
        assert!(err(b"").contains("empty file"));
        assert!(err(b"\x7fELF and more").contains("not an LZ4 frame"));
    }
}
