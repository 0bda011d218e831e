//! A streaming check of an LZ4 frame file, as `lz4 -t` does it: every frame header, block and
//! content checksum is verified and the decoded bytes are handed to a sink in block-sized
//! pieces, so memory stays bounded by the frame's block size whatever the image size.
//!
//! lz4_flex's `FrameDecoder` verifies block and content checksums, but it treats input that ends
//! at a block boundary as a clean end of stream, so a truncated image would pass; and being
//! generic, it is compiled into this crate, unoptimised in the debug build `cargo xtask` uses.
//! This reader parses the frame format itself and decodes and hashes with liblz4: the same
//! block decoder and XXH32 that `lz4 -t` runs.
//!
//! One thread reads and decodes blocks while the caller's thread hashes the content and feeds
//! the sink (content hashing is more than half of the work), with three block buffers between
//! them.
//!
//! Several frames in one file are legal LZ4 (`lz4 -d` concatenates their output, `lz4 -t`
//! accepts them): they are decoded as one stream and counted. Skippable frames are skipped.
//! Anything else after a frame is trailing garbage and an error, as with `lz4 -t`.

use std::io::{self, Read};
use std::sync::mpsc;

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use crate::image::liblz4::{decode_block, xxh32, ContentHash};

const MAGIC: u32 = 0x184D_2204;
const LEGACY_MAGIC: u32 = 0x184C_2102;
const SKIPPABLE: std::ops::RangeInclusive<u32> = 0x184D_2A50..=0x184D_2A5F;
const WINDOW: usize = 64 * 1024;
/// Decoded blocks in flight between the decoding thread and the caller's.
const BUFFERS: usize = 3;

/// What a complete, intact LZ4 file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct FrameStats {
    pub(crate) compressed_bytes: u64,
    pub(crate) decoded_bytes: u64,
    pub(crate) frames: u32,
    /// Whether every frame carried a content checksum (lz4's default).
    pub(crate) content_checksummed: bool,
}

/// Reads `input` to its end, verifying it as a sequence of LZ4 frames, and feeds the decoded
/// bytes in order to `sink`. The error says what is wrong and where (compressed byte offset).
/// `input` should be buffered or read in large pieces; block data is read in one call per block.
pub(crate) fn check_frames<R: Read + Send>(input: R, sink: &mut dyn FnMut(&[u8])) -> Result<FrameStats> {
    std::thread::scope(|scope| {
        let (events_out, events) = mpsc::sync_channel::<Event>(1);
        let (spare_out, spare) = mpsc::channel::<Vec<u8>>();
        let decoder = scope.spawn(move || {
            let mut to_checker = Piped {
                out: events_out,
                spare,
                made: 0,
            };
            decode_frames(input, &mut to_checker)
        });
        let fault = check_content(events, spare_out, sink);
        let decoded = decoder.join().expect("the LZ4 decoding thread panicked");
        // A content fault comes first in the stream; the decoder then only saw the checker stop.
        match fault {
            Some(fault) => Err(fault),
            None => decoded,
        }
    })
}

/// What the decoding thread passes on.
enum Event {
    /// A buffer whose first `len` bytes are the next decoded bytes, and whether the frame has a
    /// content checksum to compute.
    Block(Vec<u8>, usize, bool),
    /// The end of a frame, with its stored content checksum if it has one.
    FrameEnd { checksum: Option<u32>, header_at: u64 },
}

/// Hashes and sinks decoded blocks until the decoder stops; the content checksum fault if any.
fn check_content(
    events: mpsc::Receiver<Event>,
    spare: mpsc::Sender<Vec<u8>>,
    sink: &mut dyn FnMut(&[u8]),
) -> Option<anyhow::Error> {
    let mut hash = ContentHash::new();
    for event in events {
        match event {
            Event::Block(buf, len, hashed) => {
                if hashed {
                    hash.update(&buf[..len]);
                }
                sink(&buf[..len]);
                let _ = spare.send(buf);
            }
            Event::FrameEnd { checksum, header_at } => {
                if checksum.is_some_and(|stored| stored != hash.digest()) {
                    // Dropping `events` and `spare` here stops the decoder.
                    return Some(anyhow!(
                        "LZ4 content checksum mismatch for the frame at byte {header_at} (corrupt \
                         data: the decoded content differs from what was compressed)"
                    ));
                }
                hash = ContentHash::new();
            }
        }
    }
    None
}

/// Where the decoder gets empty buffers and sends what it decoded.
trait Checker {
    /// An empty buffer to decode the next block into.
    fn buffer(&mut self) -> Result<Vec<u8>>;
    fn send(&mut self, event: Event) -> Result<()>;
}

struct Piped {
    out: mpsc::SyncSender<Event>,
    spare: mpsc::Receiver<Vec<u8>>,
    made: usize,
}

impl Checker for Piped {
    fn buffer(&mut self) -> Result<Vec<u8>> {
        if let Ok(buf) = self.spare.try_recv() {
            return Ok(buf);
        }
        if self.made < BUFFERS {
            self.made += 1;
            return Ok(Vec::new());
        }
        self.spare.recv().map_err(|_| anyhow!("the content check stopped"))
    }

    fn send(&mut self, event: Event) -> Result<()> {
        self.out.send(event).map_err(|_| anyhow!("the content check stopped"))
    }
}

/// Parses and decodes every frame of `input`, passing decoded blocks on to `checker`.
fn decode_frames<R: Read>(input: R, checker: &mut dyn Checker) -> Result<FrameStats> {
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
        let checksummed = frame(&mut input, &mut buffers, &mut stats, checker)?;
        stats.frames += 1;
        stats.content_checksummed &= checksummed;
    }
    stats.compressed_bytes = input.pos;
    Ok(stats)
}

#[derive(Default)]
struct Buffers {
    src: Vec<u8>,
    /// The last `WINDOW` decoded bytes, for frames whose blocks are linked.
    dict: Vec<u8>,
}

/// Decodes one frame after its magic number; returns whether it had a content checksum.
fn frame<R: Read>(
    input: &mut Input<R>,
    buf: &mut Buffers,
    stats: &mut FrameStats,
    checker: &mut dyn Checker,
) -> Result<bool> {
    let header_at = input.pos - 4;
    let mut desc = [0u8; 15];
    input.exact(&mut desc[..2], "frame header")?;
    let (flg, bd) = (desc[0], desc[1]);
    if flg >> 6 != 1 {
        bail!("LZ4 frame at byte {header_at} has unsupported version {}", flg >> 6);
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
    let content_size = content_size_present.then(|| u64::from_le_bytes(desc[2..10].try_into().unwrap()));

    if buf.src.len() != max_block {
        buf.src = vec![0; max_block];
    }
    buf.dict.clear();
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
            bail!(
                "LZ4 block {block} at byte {block_at} claims {len} bytes, more than the \
                 frame's {max_block}-byte blocks (corrupt)"
            );
        }
        let mut out = checker.buffer()?;
        if out.len() != max_block {
            // Not `resize`: in a debug build it fills byte by byte.
            out = vec![0; max_block];
        }
        let stored = word & 0x8000_0000 != 0;
        let data = if stored { &mut out[..len] } else { &mut buf.src[..len] };
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
            decode_block(&buf.src[..len], &mut out, &buf.dict)
                .ok_or_else(|| anyhow!("LZ4 block {block} at byte {block_at} does not decode (corrupt data)"))?
        };
        if linked {
            keep_window(&mut buf.dict, &out[..n]);
        }
        decoded += n as u64;
        checker.send(Event::Block(out, n, content_checksum))?;
    }
    let mut checksum = None;
    if content_checksum {
        let mut sum = [0u8; 4];
        input.exact(&mut sum, "LZ4 content checksum")?;
        checksum = Some(u32::from_le_bytes(sum));
    }
    if let Some(expected) = content_size {
        if expected != decoded {
            bail!(
                "LZ4 frame at byte {header_at} declares {expected} bytes of content but \
                 decodes to {decoded}"
            );
        }
    }
    checker.send(Event::FrameEnd { checksum, header_at })?;
    stats.decoded_bytes += decoded;
    Ok(content_checksum)
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
            bail!("truncated: the file ends at byte {} inside a skippable frame", self.pos);
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
            let frame = encode(&content, checked_info().block_mode(mode).content_size(Some(300_000)));
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
        let Ok(out) = std::process::Command::new("lz4").args(["--version"]).output() else {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "lz4 is needed in CI");
            eprintln!("skipped: the lz4 tool is not installed");
            return;
        };
        assert!(out.status.success());
        let dir = tempfile::tempdir().unwrap();
        let content = data(1_000_000);
        let plain = dir.path().join("d");
        std::fs::write(&plain, &content).unwrap();
        // -BD: linked blocks, --content-size, -BX: block checksums.
        for flags in [&["-z"][..], &["-z", "-BD", "-BX", "--content-size", "-B4"][..]] {
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
    fn frames_of_different_block_sizes_and_checksums() {
        let (a, b) = (data(100_000), data(5_000_000));
        let mut bytes = encode(&a, FrameInfo::new().block_size(BlockSize::Max64KB));
        bytes.extend(encode(&b, checked_info().block_size(BlockSize::Max4MB)));
        bytes.extend(encode(&a, checked_info().block_size(BlockSize::Max256KB)));
        let (stats, out) = check(&bytes).unwrap();
        assert_eq!(stats.frames, 3);
        assert!(!stats.content_checksummed, "the first frame has no content checksum");
        assert_eq!(out.len(), 200_000 + 5_000_000);
        assert!(out[100_000..5_100_000] == b[..] && out[5_100_000..] == a[..]);
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let content = data(200_000);
        for info in [
            checked_info(),
            FrameInfo::new().block_size(BlockSize::Max64KB).content_checksum(true),
        ] {
            let frame = encode(&content, info);
            for at in (0..frame.len()).step_by(997).chain([frame.len() - 1]) {
                let mut bad = frame.clone();
                bad[at] ^= 0x10;
                let result = check(&bad);
                assert!(result.is_err(), "flip at {at} of {} was not caught", frame.len());
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
        assert!(err(&bad).contains("content checksum mismatch"), "{}", err(&bad));
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
        for cut in (1..frame.len()).step_by(401).chain(frame.len() - 8..frame.len()) {
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
