//! The dynamic VHD layout, read for `vhdboot convert`: the dynamic disk
//! header the footer points to, the block allocation table (BAT), and each
//! block's sector bitmap (Virtual Hard Disk Image Format Specification,
//! "Dynamic Disk Header Format" and "Block Allocation Table and Data
//! Blocks").
//!
//! Every offset and count comes from the file, so each is checked against
//! the file's length before it is used, and every size that is allocated
//! is capped first: a hostile header must end in an error, never in a
//! huge allocation or a read past the end.

use crate::image::bytes::{be_u32, be_u64};
use crate::image::vhd::{self, DiskType, FileFooter, MAX_VHD_SIZE, VhdError, VhdFooter};
use std::io::{self, Read, Seek, SeekFrom};

/// The dynamic disk header's size in bytes.
pub const HEADER_SIZE: usize = 1024;

/// The largest block size accepted. Every tool that writes VHDs uses
/// 2 MiB (qemu, Hyper-V, VirtualBox) or 512 KiB; one block is read into
/// memory at a time, so this caps that buffer.
pub const MAX_BLOCK_SIZE: u32 = 32 * 1024 * 1024;

/// The largest BAT read into memory: 4 bytes per block, so 64 MiB covers a
/// 2040 GiB disk down to 128 KiB blocks.
pub const MAX_BAT_BYTES: u64 = 64 * 1024 * 1024;

/// A BAT entry for a block that is not in the file: it reads as zeros.
pub const UNALLOCATED: u32 = 0xFFFF_FFFF;

const COOKIE: &[u8; 8] = b"cxsparse";
const HEADER_VERSION: u32 = 0x0001_0000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DynamicError {
    #[error("{0}")]
    Footer(#[from] VhdError),
    #[error("it has no VHD footer, at the end or at the start; it is not a VHD")]
    NoFooter,
    #[error("it is a fixed VHD already; there is nothing to convert")]
    Fixed,
    #[error(
        "it is a differencing VHD: part of its data lives in a parent image, which convert does \
         not read; merge it with its parent first (qemu-img convert -O vpc -o subformat=fixed \
         reads the whole chain)"
    )]
    Differencing,
    #[error(
        "its footer says the disk holds {size} bytes, which is not a positive multiple of 512 of \
         at most 2040 GiB"
    )]
    BadDiskSize { size: u64 },
    #[error(
        "its dynamic disk header at byte {offset} lies past the end of the {file_len}-byte file; \
         the file is truncated or the footer damaged"
    )]
    HeaderPastEnd { offset: u64, file_len: u64 },
    #[error("no dynamic disk header at byte {offset} (the \"cxsparse\" cookie is missing)")]
    BadHeaderCookie { offset: u64 },
    #[error(
        "the dynamic disk header's checksum is wrong (expected {expected:#010x}, found \
         {found:#010x}); the header is damaged"
    )]
    BadHeaderChecksum { expected: u32, found: u32 },
    #[error("the dynamic disk header has version {found:#010x}; only 0x00010000 exists")]
    BadHeaderVersion { found: u32 },
    #[error(
        "the dynamic disk header gives a block size of {block_size} bytes; only powers of two \
         from 512 bytes to 32 MiB are read"
    )]
    BadBlockSize { block_size: u32 },
    #[error(
        "the block allocation table has {entries} entries, but a {disk_size}-byte disk in \
         {block_size}-byte blocks needs {needed}"
    )]
    TableTooShort {
        entries: u32,
        needed: u64,
        disk_size: u64,
        block_size: u64,
    },
    #[error(
        "the block allocation table would take {bytes} bytes, more than the {MAX_BAT_BYTES} \
         read into memory"
    )]
    TableTooLarge { bytes: u64 },
    #[error(
        "the block allocation table at byte {offset} ({bytes} bytes) runs past the end of the \
         {file_len}-byte file; the file is truncated or the header damaged"
    )]
    TablePastEnd {
        offset: u64,
        bytes: u64,
        file_len: u64,
    },
    #[error(
        "block {block}'s entry points to byte {offset}, but the block ends past the end of the \
         {file_len}-byte file; the file is truncated or the table damaged"
    )]
    BlockPastEnd {
        block: u64,
        offset: u64,
        file_len: u64,
    },
    #[error("reading the dynamic VHD failed: {0}")]
    Io(String),
}

impl From<io::Error> for DynamicError {
    fn from(e: io::Error) -> DynamicError {
        DynamicError::Io(e.to_string())
    }
}

/// The fields of the dynamic disk header that reading the disk needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicHeader {
    /// Absolute byte offset of the BAT.
    pub table_offset: u64,
    pub max_table_entries: u32,
    pub block_size: u32,
}

impl DynamicHeader {
    /// Parses and checks the 1024-byte header (`offset` is where it was
    /// read, for messages).
    pub fn parse(b: &[u8], offset: u64) -> Result<DynamicHeader, DynamicError> {
        let b = b.get(..HEADER_SIZE).ok_or(DynamicError::HeaderPastEnd {
            offset,
            file_len: b.len() as u64,
        })?;
        if b.get(..8) != Some(&COOKIE[..]) {
            return Err(DynamicError::BadHeaderCookie { offset });
        }
        let found = be_u32(b, 36).unwrap_or(0);
        // The one's complement of the byte sum with the checksum field
        // taken as zero, as for the footer.
        let sum = b
            .iter()
            .enumerate()
            .filter(|(i, _)| !(36..40).contains(i))
            .fold(0u32, |s, (_, &x)| s.wrapping_add(u32::from(x)));
        let expected = !sum;
        if found != expected {
            return Err(DynamicError::BadHeaderChecksum { expected, found });
        }
        let version = be_u32(b, 24).unwrap_or(0);
        if version != HEADER_VERSION {
            return Err(DynamicError::BadHeaderVersion { found: version });
        }
        let block_size = be_u32(b, 32).unwrap_or(0);
        if !block_size.is_power_of_two() || !(512..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(DynamicError::BadBlockSize { block_size });
        }
        Ok(DynamicHeader {
            table_offset: be_u64(b, 16).unwrap_or(u64::MAX),
            max_table_entries: be_u32(b, 28).unwrap_or(0),
            block_size,
        })
    }
}

/// A dynamic VHD whose layout was checked against its file: every
/// allocated block lies inside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicVhd {
    pub footer: VhdFooter,
    /// The disk's size in bytes (the footer's current size).
    pub disk_size: u64,
    pub block_size: u64,
    /// Bytes of the sector bitmap before each block's data (whole
    /// sectors).
    pub bitmap_size: u64,
    /// One entry per block of the disk: the sector where the block's
    /// bitmap starts, or [`UNALLOCATED`].
    pub bat: Vec<u32>,
    /// True when the footer at the end was missing or damaged and the copy
    /// at the start was used.
    pub footer_from_start: bool,
}

impl DynamicVhd {
    /// Reads and checks the layout of the dynamic VHD in `r`, a file of
    /// `file_len` bytes.
    pub fn open<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<DynamicVhd, DynamicError> {
        let (footer, footer_from_start) = match vhd::read_footer(r, file_len) {
            Ok(FileFooter::Vhd(f)) => (f, false),
            end => match vhd::footer_copy_at_start(r)? {
                Some(copy) => (copy, true),
                None => {
                    return Err(match end {
                        Err(e) => DynamicError::Footer(e),
                        Ok(_) => DynamicError::NoFooter,
                    });
                }
            },
        };
        match footer.disk_type {
            DiskType::Fixed => return Err(DynamicError::Fixed),
            DiskType::Differencing => return Err(DynamicError::Differencing),
            DiskType::Dynamic => {}
        }
        let disk_size = footer.current_size;
        if disk_size == 0 || !disk_size.is_multiple_of(512) || disk_size > MAX_VHD_SIZE {
            return Err(DynamicError::BadDiskSize { size: disk_size });
        }
        let offset = footer.data_offset;
        let past = DynamicError::HeaderPastEnd { offset, file_len };
        match offset.checked_add(HEADER_SIZE as u64) {
            Some(end) if end <= file_len => {}
            _ => return Err(past),
        }
        let mut raw = [0u8; HEADER_SIZE];
        r.seek(SeekFrom::Start(offset))?;
        r.read_exact(&mut raw)?;
        let header = DynamicHeader::parse(&raw, offset)?;

        let block_size = u64::from(header.block_size);
        let needed = disk_size.div_ceil(block_size);
        if u64::from(header.max_table_entries) < needed {
            return Err(DynamicError::TableTooShort {
                entries: header.max_table_entries,
                needed,
                disk_size,
                block_size,
            });
        }
        // needed <= 2040 GiB / 512, so this cannot overflow.
        let bytes = needed * 4;
        if bytes > MAX_BAT_BYTES {
            return Err(DynamicError::TableTooLarge { bytes });
        }
        match header.table_offset.checked_add(bytes) {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(DynamicError::TablePastEnd {
                    offset: header.table_offset,
                    bytes,
                    file_len,
                });
            }
        }
        let mut table = Vec::new();
        table
            .try_reserve_exact(bytes as usize)
            .map_err(|_| DynamicError::TableTooLarge { bytes })?;
        table.resize(bytes as usize, 0);
        r.seek(SeekFrom::Start(header.table_offset))?;
        r.read_exact(&mut table)?;
        let bat: Vec<u32> = table
            .chunks_exact(4)
            .map(|c| be_u32(c, 0).unwrap_or(UNALLOCATED))
            .collect();

        // One bit per sector, in whole sectors.
        let bitmap_size = (block_size / 512).div_ceil(8).next_multiple_of(512);
        let vhd = DynamicVhd {
            footer,
            disk_size,
            block_size,
            bitmap_size,
            bat,
            footer_from_start,
        };
        for (block, &entry) in vhd.bat.iter().enumerate() {
            if entry == UNALLOCATED {
                continue;
            }
            let block = block as u64;
            let offset = u64::from(entry) * 512;
            let end = offset
                .checked_add(vhd.bitmap_size)
                .and_then(|e| e.checked_add(vhd.data_len(block)));
            if end.is_none_or(|e| e > file_len) {
                return Err(DynamicError::BlockPastEnd {
                    block,
                    offset,
                    file_len,
                });
            }
        }
        Ok(vhd)
    }

    /// How many blocks the disk has.
    pub fn blocks(&self) -> u64 {
        self.bat.len() as u64
    }

    /// Bytes of disk data in `block`: the block size, less for a last
    /// block that the disk's end cuts short.
    pub fn data_len(&self, block: u64) -> u64 {
        let start = block.saturating_mul(self.block_size);
        self.disk_size.saturating_sub(start).min(self.block_size)
    }

    pub fn is_allocated(&self, block: u64) -> bool {
        usize::try_from(block)
            .ok()
            .and_then(|b| self.bat.get(b))
            .is_some_and(|&e| e != UNALLOCATED)
    }

    /// Bytes of disk data held in the file: the blocks that are allocated.
    pub fn allocated_bytes(&self) -> u64 {
        (0..self.blocks())
            .filter(|&b| self.is_allocated(b))
            .map(|b| self.data_len(b))
            .sum()
    }

    /// Reads `block`'s disk data into `buf` (which must be `data_len(block)`
    /// bytes): zeros for a block not in the file, and zeros for each sector
    /// its bitmap marks as never written. Returns whether the block is
    /// allocated.
    pub fn read_block<R: Read + Seek>(
        &self,
        r: &mut R,
        block: u64,
        buf: &mut [u8],
    ) -> Result<bool, DynamicError> {
        buf.fill(0);
        let entry = usize::try_from(block)
            .ok()
            .and_then(|b| self.bat.get(b))
            .copied()
            .unwrap_or(UNALLOCATED);
        if entry == UNALLOCATED {
            return Ok(false);
        }
        let offset = u64::from(entry) * 512;
        let mut bitmap = vec![0u8; self.bitmap_size as usize];
        r.seek(SeekFrom::Start(offset))?;
        r.read_exact(&mut bitmap)?;
        r.read_exact(buf)?;
        for (sector, data) in buf.chunks_mut(512).enumerate() {
            let written = bitmap
                .get(sector / 8)
                .is_some_and(|byte| byte & (0x80 >> (sector % 8)) != 0);
            if !written {
                data.fill(0);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A dynamic VHD of `blocks` blocks of `block_size` bytes, with the
    /// blocks in `written` allocated and filled with their index + 1.
    fn image(block_size: u32, blocks: u32, written: &[u32]) -> Vec<u8> {
        let disk_size = u64::from(block_size) * u64::from(blocks);
        let footer = dynamic_footer(disk_size);
        let mut f = footer.clone();
        let table_offset = 512 + 1024;
        let table_bytes = (blocks as usize * 4).next_multiple_of(512);
        f.extend(header(table_offset as u64, blocks, block_size));
        let mut bat = vec![0xffu8; table_bytes];
        let bitmap = (block_size as usize / 512)
            .div_ceil(8)
            .next_multiple_of(512);
        let mut data = Vec::new();
        let mut next = (table_offset + table_bytes) as u32 / 512;
        for &b in written {
            bat[b as usize * 4..b as usize * 4 + 4].copy_from_slice(&next.to_be_bytes());
            data.extend(vec![0xffu8; bitmap]);
            data.extend(vec![b as u8 + 1; block_size as usize]);
            next += (bitmap as u32 + block_size) / 512;
        }
        f.extend(bat);
        f.extend(data);
        f.extend(footer);
        f
    }

    fn dynamic_footer(size: u64) -> Vec<u8> {
        let mut b = VhdFooter::new_fixed(size, 0, [1; 16]).unwrap().to_bytes();
        b[16..24].copy_from_slice(&512u64.to_be_bytes());
        b[60..64].copy_from_slice(&3u32.to_be_bytes());
        b[64..68].copy_from_slice(&[0; 4]);
        let sum = vhd::checksum(&b);
        b[64..68].copy_from_slice(&sum.to_be_bytes());
        b.to_vec()
    }

    fn header(table_offset: u64, entries: u32, block_size: u32) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_SIZE];
        h[..8].copy_from_slice(COOKIE);
        h[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        h[16..24].copy_from_slice(&table_offset.to_be_bytes());
        h[24..28].copy_from_slice(&HEADER_VERSION.to_be_bytes());
        h[28..32].copy_from_slice(&entries.to_be_bytes());
        h[32..36].copy_from_slice(&block_size.to_be_bytes());
        let sum = !h.iter().fold(0u32, |s, &x| s.wrapping_add(u32::from(x)));
        h[36..40].copy_from_slice(&sum.to_be_bytes());
        h
    }

    #[test]
    fn allocated_blocks_read_their_data_and_the_rest_zeros() {
        let f = image(4096, 4, &[1, 3]);
        let len = f.len() as u64;
        let mut r = Cursor::new(f);
        let v = DynamicVhd::open(&mut r, len).unwrap();
        assert_eq!(v.disk_size, 4 * 4096);
        assert_eq!(v.allocated_bytes(), 2 * 4096);
        let mut buf = vec![9u8; 4096];
        assert!(!v.read_block(&mut r, 0, &mut buf).unwrap());
        assert!(buf.iter().all(|&x| x == 0));
        assert!(v.read_block(&mut r, 3, &mut buf).unwrap());
        assert!(buf.iter().all(|&x| x == 4));
    }

    #[test]
    fn sectors_the_bitmap_marks_unwritten_read_as_zeros() {
        let mut f = image(4096, 1, &[0]);
        // The bitmap follows the 512-byte table; clear sector 1's bit.
        let bitmap_at = 512 + 1024 + 512;
        f[bitmap_at] = 0b1011_1111;
        let len = f.len() as u64;
        let mut r = Cursor::new(f);
        let v = DynamicVhd::open(&mut r, len).unwrap();
        let mut buf = vec![0u8; 4096];
        v.read_block(&mut r, 0, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&x| x == 1));
        assert!(buf[512..1024].iter().all(|&x| x == 0));
        assert!(buf[1024..].iter().all(|&x| x == 1));
    }

    #[test]
    fn a_damaged_header_checksum_is_refused() {
        let mut f = image(4096, 2, &[0]);
        f[512 + 100] ^= 1;
        let len = f.len() as u64;
        assert!(matches!(
            DynamicVhd::open(&mut Cursor::new(f), len),
            Err(DynamicError::BadHeaderChecksum { .. })
        ));
    }

    #[test]
    fn a_table_too_large_to_hold_is_refused_before_it_is_read() {
        // A 2040 GiB disk in 512-byte blocks needs a 16 GiB table.
        let mut f = dynamic_footer(MAX_VHD_SIZE);
        f.extend(header(1536, u32::MAX, 512));
        f.extend(dynamic_footer(MAX_VHD_SIZE));
        let len = f.len() as u64;
        assert_eq!(
            DynamicVhd::open(&mut Cursor::new(f), len),
            Err(DynamicError::TableTooLarge {
                bytes: MAX_VHD_SIZE / 512 * 4
            })
        );
    }

    #[test]
    fn the_start_copy_serves_when_the_end_footer_is_gone() {
        let mut f = image(4096, 2, &[0]);
        let n = f.len();
        f[n - 512..].fill(0);
        let v = DynamicVhd::open(&mut Cursor::new(f), n as u64).unwrap();
        assert!(v.footer_from_start);
    }
}
