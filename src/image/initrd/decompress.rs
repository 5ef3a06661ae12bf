//! The compressed streams an initramfs may hold, recognised by their magic
//! as the kernel's `decompress_method` does, and decompressed into any
//! writer. Only the formats real distributions use are read; the others are
//! named, so that the check can say why it stopped.

use crate::image::bytes::le_u32;
use serde::Serialize;
use std::io::{self, Write};

pub(super) const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;
/// What lzma-rs says when a complete xz stream is followed by more data.
const XZ_TRAILING_DATA: &str = "Unexpected data after last XZ block";
/// The kernel's legacy LZ4 frame holds blocks of up to 8 MiB.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// How one segment of an initramfs is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Lz4Legacy,
    Bzip2,
    Lzma,
    Lzo,
    Lz4Frame,
}

impl Compression {
    /// Recognises a stream by its magic bytes, as the kernel's
    /// `decompress_method` does.
    pub fn detect(b: &[u8]) -> Option<Compression> {
        let starts = |m: &[u8]| b.starts_with(m);
        Some(if starts(b"070701") || starts(b"070702") {
            Compression::None
        } else if starts(&[0x1f, 0x8b]) || starts(&[0x1f, 0x9e]) {
            Compression::Gzip
        } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if starts(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
            Compression::Lz4Legacy
        } else if starts(&[0x04, 0x22, 0x4d, 0x18]) {
            Compression::Lz4Frame
        } else if starts(b"BZh") {
            Compression::Bzip2
        } else if starts(&[0x5d, 0, 0]) {
            Compression::Lzma
        } else if starts(&[0x89, b'L', b'Z', b'O']) {
            Compression::Lzo
        } else {
            return None;
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4Legacy => "lz4 (legacy)",
            Compression::Lz4Frame => "lz4 (frame)",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Lzo => "lzo",
        }
    }
}

/// Decompresses one stream at the start of `input` into `sink` and returns
/// how many input bytes it took.
pub(super) fn decompress<W: Write>(
    c: Compression,
    input: &[u8],
    sink: &mut W,
) -> io::Result<usize> {
    match c {
        Compression::Gzip => {
            let mut dec = flate2::bufread::GzDecoder::new(input);
            io::copy(&mut dec, sink)?;
            Ok(input.len() - dec.into_inner().len())
        }
        Compression::Xz => {
            let mut rest = input;
            match lzma_rs::xz_decompress(&mut rest, sink) {
                Ok(()) => {}
                // lzma-rs wants the stream to end the input and says so
                // only after the whole stream, footer included, was read
                // and checked; `rest` then starts at the next segment.
                // tests/preflight.rs pins this message.
                Err(lzma_rs::error::Error::XzError(m)) if m == XZ_TRAILING_DATA => {}
                Err(lzma_rs::error::Error::IoError(e)) => return Err(e),
                Err(other) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        other.to_string(),
                    ));
                }
            }
            Ok(input.len() - rest.len())
        }
        Compression::Zstd => {
            let mut rest = input;
            let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut rest)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            io::copy(&mut dec, sink)?;
            drop(dec);
            Ok(input.len() - rest.len())
        }
        Compression::Lz4Legacy => lz4_legacy(input, sink),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unsupported compression",
        )),
    }
}

/// The kernel's legacy LZ4 format: the magic, then blocks, each a 32-bit
/// little-endian length and an LZ4 block of up to 8 MiB. It has no end
/// marker, so like the kernel it runs to the end of the input; a zero
/// length (padding) also ends it, and a repeated magic starts a new frame.
fn lz4_legacy<W: Write>(input: &[u8], sink: &mut W) -> io::Result<usize> {
    let mut out = Vec::new();
    let mut pos = 4usize;
    loop {
        let Some(len) = le_u32(input, pos) else {
            return Ok(input.len().min(pos));
        };
        if len == LZ4_LEGACY_MAGIC {
            pos += 4;
            continue;
        }
        if len == 0 {
            return Ok(pos);
        }
        let start = pos + 4;
        let block = input
            .get(start..start.saturating_add(len as usize))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "an lz4 block is cut short")
            })?;
        // An LZ4 block expands at most 255 times, so small blocks need
        // less than the 8 MiB a full one may fill.
        let room = block
            .len()
            .saturating_mul(255)
            .saturating_add(64)
            .min(LZ4_LEGACY_BLOCK);
        if out.len() < room {
            out.try_reserve_exact(room - out.len())
                .map_err(|_| io::Error::other("cannot allocate the lz4 output buffer"))?;
            out.resize(room, 0);
        }
        let n = lz4_flex::block::decompress_into(block, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        sink.write_all(out.get(..n).unwrap_or_default())?;
        pos = start + block.len();
    }
}
