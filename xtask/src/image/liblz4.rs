//! The few liblz4 functions image validation needs, safely wrapped. liblz4 is built by `lz4-sys`
//! with -O3 even in debug builds, so these run at `lz4 -t` speed in `cargo xtask`.

use std::ffi::{c_char, c_int, c_void};
use std::io::{self, Write};

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
pub(crate) fn xxh32(data: &[u8]) -> u32 {
    // SAFETY: XXH32 reads exactly `len` bytes from `input`.
    unsafe { XXH32(data.as_ptr().cast(), data.len(), 0) }
}

/// A running XXH32 (seed 0) over a frame's decoded content.
pub(crate) struct ContentHash(*mut c_void);

impl ContentHash {
    pub(crate) fn new() -> ContentHash {
        // SAFETY: createState returns a heap state or null; reset initialises a valid state.
        let state = unsafe { XXH32_createState() };
        assert!(!state.is_null(), "out of memory for an XXH32 state");
        unsafe { XXH32_reset(state, 0) };
        ContentHash(state)
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        // SAFETY: the state is valid until drop; update reads exactly `len` bytes.
        unsafe { XXH32_update(self.0, data.as_ptr().cast(), data.len()) };
    }

    pub(crate) fn digest(&self) -> u32 {
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

/// Decodes one LZ4 block into `dst`, with `dict` as the preceding output for linked blocks;
/// the decoded length, or `None` when the block is malformed or does not fit.
pub(crate) fn decode_block(src: &[u8], dst: &mut [u8], dict: &[u8]) -> Option<usize> {
    let (src_len, dst_len, dict_len) = (as_int(src.len())?, as_int(dst.len())?, as_int(dict.len())?);
    // SAFETY: liblz4's `_safe` decoders read at most `src_size` bytes from `src` and write at
    // most `dst_capacity` bytes to `dst` whatever the input, and return a negative number for
    // malformed input. The three slices are distinct buffers with the lengths passed.
    let n = unsafe {
        if dict.is_empty() {
            lz4_sys::LZ4_decompress_safe(src.as_ptr().cast(), dst.as_mut_ptr().cast(), src_len, dst_len)
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
    usize::try_from(n).ok()
}

fn as_int(n: usize) -> Option<c_int> {
    c_int::try_from(n).ok()
}

/// Compresses `src` as one LZ4 block into `dst`; `None` when it does not fit (store it raw).
pub(crate) fn compress_block(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    let (src_len, dst_len) = (as_int(src.len())?, as_int(dst.len())?);
    // SAFETY: LZ4_compress_default reads `sourceSize` bytes and writes at most `maxDestSize`,
    // returning 0 when the output does not fit.
    let n = unsafe { lz4_sys::LZ4_compress_default(src.as_ptr().cast(), dst.as_mut_ptr().cast(), src_len, dst_len) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// Writes one LZ4 frame, as `lz4 -BX` would: 4 MiB independent blocks, block and content
/// checksums. Memory: two block buffers.
pub(crate) struct FrameWriter<W: Write> {
    out: W,
    block: Vec<u8>,
    packed: Vec<u8>,
    hash: ContentHash,
}

const BLOCK: usize = 4 << 20;

impl<W: Write> FrameWriter<W> {
    pub(crate) fn new(mut out: W) -> io::Result<FrameWriter<W>> {
        // Version 01, independent blocks, block checksums, content checksum; 4 MiB blocks.
        let descriptor = [0b0111_0100, 7 << 4];
        out.write_all(&0x184D_2204u32.to_le_bytes())?;
        out.write_all(&descriptor)?;
        out.write_all(&[(xxh32(&descriptor) >> 8) as u8])?;
        Ok(FrameWriter {
            out,
            block: Vec::with_capacity(BLOCK),
            packed: vec![0; BLOCK],
            hash: ContentHash::new(),
        })
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let (word, data) = match compress_block(&self.block, &mut self.packed) {
            Some(n) => (n as u32, &self.packed[..n]),
            None => (self.block.len() as u32 | 0x8000_0000, &self.block[..]),
        };
        self.out.write_all(&word.to_le_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(&xxh32(data).to_le_bytes())?;
        self.block.clear();
        Ok(())
    }

    /// Ends the frame (end mark and content checksum) and gives back the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.flush_block()?;
        self.out.write_all(&0u32.to_le_bytes())?;
        self.out.write_all(&self.hash.digest().to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&data[..n]);
        self.hash.update(&data[..n]);
        if self.block.len() == BLOCK {
            self.flush_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh32_matches_the_reference_and_streams() {
        assert_eq!(xxh32(b""), 0x02CC_5D05);
        assert_eq!(xxh32(b"abc"), 0x32D1_53FF);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut hash = ContentHash::new();
        data.chunks(999).for_each(|c| hash.update(c));
        assert_eq!(hash.digest(), xxh32(&data));
    }

    #[test]
    fn frames_written_here_are_read_by_lz4_flex() {
        use std::io::Read;
        let data: Vec<u8> = (0..9_000_000u32).map(|i| (i / 3 % 7) as u8 ^ (i >> 20) as u8).collect();
        let mut writer = FrameWriter::new(Vec::new()).unwrap();
        data.chunks(1_000_003).for_each(|c| writer.write_all(c).unwrap());
        let frame = writer.finish().unwrap();
        assert!(frame.len() < data.len() / 4, "compressed: {}", frame.len());
        let mut back = Vec::new();
        lz4_flex::frame::FrameDecoder::new(&frame[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
        // Random data does not compress: stored blocks.
        let mut noise = vec![0u8; 100_000];
        let mut x = 0x1234_5678_9abc_def0u64;
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut writer = FrameWriter::new(Vec::new()).unwrap();
        writer.write_all(&noise).unwrap();
        let frame = writer.finish().unwrap();
        let mut back = Vec::new();
        lz4_flex::frame::FrameDecoder::new(&frame[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == noise);
    }

    #[test]
    fn decodes_blocks_and_rejects_garbage() {
        let data = b"hello hello hello hello hello hello".repeat(50);
        let block = lz4_flex::block::compress(&data);
        let mut out = vec![0u8; data.len()];
        assert_eq!(decode_block(&block, &mut out, b""), Some(data.len()));
        assert_eq!(out, data);
        let mut small = vec![0u8; 10];
        assert_eq!(
            decode_block(&block, &mut small, b""),
            None,
            "never writes past the buffer"
        );
        assert_eq!(decode_block(&[0xF0, 1, 2], &mut out, b""), None);
    }
}
