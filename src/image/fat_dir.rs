//! FAT directories read slot by slot, with every cluster chain walked and
//! checked before its directory is trusted.
//!
//! fatfs 0.3.6 follows a directory's cluster chain with no cycle check and
//! skips deleted and long-name slots in an inner loop (`dir.rs`
//! `read_dir_entry`), so a chain that loops over deleted slots spins
//! forever and no cap on the entries it yields can stop it. Discovery
//! therefore lists directories itself: it follows the FAT with a visited
//! set and a cap (the most clusters a legal directory can span), reads the
//! slots of that finite chain, and hands fatfs only paths whose directories
//! passed this walk. Reading the slots ourselves also gives each entry's
//! first cluster, which fatfs keeps private and which cross-link checks
//! need.

use super::bytes::{le_u16, le_u32};
use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom};

/// The FAT specification limits a directory to 65,536 slots of 32 bytes
/// (2 MiB), so a longer chain is damage whatever the cluster size.
pub const MAX_DIR_BYTES: u64 = 65_536 * 32;

const SLOT: usize = 32;
/// Directories are read in pieces of the smallest sector size.
const PIECE: usize = 512;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_LONG_NAME: u8 = 0x0F;
const DELETED: u8 = 0xE5;

/// Which FAT variant, from the cluster count as the specification decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

/// Where things are on one FAT volume, from its boot sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FatGeometry {
    pub fat_type: FatType,
    /// Byte offset of the first FAT.
    fat_offset: u64,
    /// Byte offset of cluster 2.
    data_offset: u64,
    pub cluster_size: u64,
    /// Clusters 2..cluster_count + 2 exist.
    pub cluster_count: u32,
    /// FAT32 keeps its root in a cluster chain; FAT12/16 in a fixed area.
    root: DirLocation,
}

/// Where a directory's slots are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirLocation {
    /// The fixed root area of FAT12/16: `len` bytes at `offset`.
    FixedRoot { offset: u64, len: u64 },
    /// A cluster chain starting here.
    Chain { first_cluster: u32 },
}

/// What is wrong with a directory's cluster chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainFault {
    #[error("its cluster chain loops (cluster {cluster} comes back)")]
    Loops { cluster: u32 },
    #[error("its cluster chain is longer than the {max} clusters (2 MiB) a FAT directory may span")]
    TooLong { max: u64 },
    #[error(
        "its cluster chain reaches cluster {cluster}, which does not exist (the partition has {count} clusters)"
    )]
    OutOfRange { cluster: u32, count: u32 },
    #[error("its cluster chain runs into a free cluster after cluster {after}")]
    Free { after: u32 },
    #[error("its cluster chain runs into a cluster marked bad after cluster {after}")]
    Bad { after: u32 },
    #[error("a directory entry names it with no first cluster")]
    NoCluster,
    #[error("reading it failed: {0}")]
    Io(String),
    /// The caller's budget of FAT entries ran out: not this directory's
    /// fault, so callers report it as such and do not remember it.
    #[error("the budget of FAT entries to follow ran out")]
    OverBudget,
}

impl From<io::Error> for ChainFault {
    fn from(e: io::Error) -> ChainFault {
        ChainFault::Io(e.to_string())
    }
}

/// One used slot of a directory, with `.` and `..` left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The long name when a valid one precedes the short entry, else the
    /// 8.3 name (lower-cased where the entry's case flags say so).
    pub name: String,
    /// The 8.3 name as stored, `NAME.EXT`.
    pub short_name: String,
    pub size: u64,
    pub is_dir: bool,
    /// 0 for an empty file.
    pub first_cluster: u32,
}

impl FatGeometry {
    /// Reads the BIOS parameter block of the volume at the start of `r`.
    /// fatfs has already accepted the volume, but the numbers are read
    /// again here with checked arithmetic rather than trusted.
    pub fn read<R: Read + Seek>(r: &mut R) -> io::Result<FatGeometry> {
        let mut bs = [0u8; 512];
        r.seek(SeekFrom::Start(0))?;
        r.read_exact(&mut bs)?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let field16 = |at| le_u16(&bs, at).map(u64::from).unwrap_or(0);
        let field32 = |at| le_u32(&bs, at).map(u64::from).unwrap_or(0);
        let bps = field16(11);
        let spc = u64::from(bs[13]);
        if !(512..=4096).contains(&bps) || !bps.is_power_of_two() || spc == 0 {
            return Err(bad(
                "its boot sector has an impossible sector or cluster size",
            ));
        }
        let reserved = field16(14);
        let fats = u64::from(bs[16]);
        let root_entries = field16(17);
        let total = match field16(19) {
            0 => field32(32),
            n => n,
        };
        let fat_sectors = match field16(22) {
            0 => field32(36),
            n => n,
        };
        let root_sectors = (root_entries * SLOT as u64).div_ceil(bps);
        let first_data = reserved + fats * fat_sectors + root_sectors;
        let clusters = total
            .checked_sub(first_data)
            .ok_or_else(|| bad("its boot sector places the data area past the volume's end"))?
            / spc;
        let fat_type = if clusters < 4085 {
            FatType::Fat12
        } else if clusters < 65525 {
            FatType::Fat16
        } else {
            FatType::Fat32
        };
        let root = match fat_type {
            FatType::Fat32 => DirLocation::Chain {
                first_cluster: u32::try_from(field32(44)).unwrap_or(0),
            },
            _ => DirLocation::FixedRoot {
                offset: (reserved + fats * fat_sectors) * bps,
                len: root_entries * SLOT as u64,
            },
        };
        Ok(FatGeometry {
            fat_type,
            fat_offset: reserved * bps,
            data_offset: first_data * bps,
            cluster_size: spc * bps,
            cluster_count: u32::try_from(clusters).unwrap_or(u32::MAX),
            root,
        })
    }

    pub fn root(&self) -> DirLocation {
        self.root
    }

    /// The most clusters one directory may span: [`MAX_DIR_BYTES`] of slots.
    pub fn max_dir_clusters(&self) -> u64 {
        MAX_DIR_BYTES.div_ceil(self.cluster_size).max(1)
    }

    /// The FAT's entry for `cluster`.
    fn next<R: Read + Seek>(&self, r: &mut R, cluster: u32) -> io::Result<u32> {
        let c = u64::from(cluster);
        let (at, width) = match self.fat_type {
            FatType::Fat32 => (c * 4, 4),
            FatType::Fat16 => (c * 2, 2),
            FatType::Fat12 => (c + c / 2, 2),
        };
        let mut b = [0u8; 4];
        r.seek(SeekFrom::Start(self.fat_offset + at))?;
        r.read_exact(&mut b[..width])?;
        let raw = u32::from_le_bytes(b);
        Ok(match self.fat_type {
            FatType::Fat32 => raw & 0x0FFF_FFFF,
            FatType::Fat16 => raw,
            FatType::Fat12 if cluster % 2 == 1 => raw >> 4,
            FatType::Fat12 => raw & 0x0FFF,
        })
    }

    /// (end of chain, bad cluster) markers for this FAT type.
    fn markers(&self) -> (u32, u32) {
        match self.fat_type {
            FatType::Fat32 => (0x0FFF_FFF8, 0x0FFF_FFF7),
            FatType::Fat16 => (0xFFF8, 0xFFF7),
            FatType::Fat12 => (0xFF8, 0xFF7),
        }
    }

    /// The clusters of a directory's chain, in order. The walk ends at the
    /// end-of-chain marker; it refuses a cluster seen before (a loop), a
    /// chain longer than [`FatGeometry::max_dir_clusters`], and links to
    /// free, bad or nonexistent clusters. So it reads at most
    /// `max_dir_clusters` FAT entries, whatever the disk holds, and each
    /// entry read spends one of `budget`, failed walks included, so many
    /// damaged directories cannot add up to unbounded work.
    pub fn dir_chain<R: Read + Seek>(
        &self,
        r: &mut R,
        first: u32,
        budget: &mut u64,
    ) -> Result<Vec<u32>, ChainFault> {
        let (end, bad) = self.markers();
        let max = self.max_dir_clusters();
        let mut seen = HashSet::new();
        let mut chain = Vec::new();
        let mut cluster = first;
        loop {
            if cluster < 2 || cluster - 2 >= self.cluster_count {
                return Err(ChainFault::OutOfRange {
                    cluster,
                    count: self.cluster_count,
                });
            }
            if !seen.insert(cluster) {
                return Err(ChainFault::Loops { cluster });
            }
            if chain.len() as u64 >= max {
                return Err(ChainFault::TooLong { max });
            }
            chain.push(cluster);
            if *budget == 0 {
                return Err(ChainFault::OverBudget);
            }
            *budget -= 1;
            let next = self.next(r, cluster)?;
            if next >= end {
                return Ok(chain);
            }
            if next == bad {
                return Err(ChainFault::Bad { after: cluster });
            }
            if next == 0 {
                return Err(ChainFault::Free { after: cluster });
            }
            cluster = next;
        }
    }

    /// The byte ranges holding a directory's slots, its chain checked.
    pub fn dir_extents<R: Read + Seek>(
        &self,
        r: &mut R,
        dir: DirLocation,
        budget: &mut u64,
    ) -> Result<Vec<(u64, u64)>, ChainFault> {
        match dir {
            DirLocation::FixedRoot { offset, len } => Ok(vec![(offset, len)]),
            DirLocation::Chain { first_cluster: 0 } => Err(ChainFault::NoCluster),
            DirLocation::Chain { first_cluster } => Ok(self
                .dir_chain(r, first_cluster, budget)?
                .into_iter()
                .map(|c| {
                    (
                        self.data_offset + u64::from(c - 2) * self.cluster_size,
                        self.cluster_size,
                    )
                })
                .collect()),
        }
    }
}

/// Long-name slots seen since the last short entry.
#[derive(Default)]
struct LongName {
    /// (sequence number, 13 UTF-16 units)
    parts: Vec<(u8, [u16; 13])>,
    checksum: Option<u8>,
}

impl LongName {
    fn push(&mut self, slot: &[u8]) {
        let order = slot[0] & 0x1F;
        if slot[0] & 0x40 != 0 {
            self.parts.clear();
            self.checksum = Some(slot[13]);
        } else if self.checksum != Some(slot[13]) {
            // A part that does not belong to the name being built.
            self.parts.clear();
            self.checksum = None;
            return;
        }
        let mut units = [0u16; 13];
        let offsets = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
        for (u, at) in units.iter_mut().zip(offsets) {
            *u = le_u16(slot, at).unwrap_or(0);
        }
        // 20 parts of 13 units hold the 255-unit maximum; more is garbage.
        if self.parts.len() < 20 {
            self.parts.push((order, units));
        }
    }

    /// The long name for the short entry `short`, when the parts are whole
    /// and their checksum matches (as fatfs and Linux require).
    fn take(&mut self, short: &[u8]) -> Option<String> {
        let checksum = self.checksum.take()?;
        let mut parts = std::mem::take(&mut self.parts);
        let sum = short
            .iter()
            .take(11)
            .fold(0u8, |s, &b| s.rotate_right(1).wrapping_add(b));
        if sum != checksum || parts.is_empty() {
            return None;
        }
        parts.sort_by_key(|(order, _)| *order);
        if parts
            .iter()
            .enumerate()
            .any(|(i, (order, _))| usize::from(*order) != i + 1)
        {
            return None;
        }
        let units: Vec<u16> = parts
            .iter()
            .flat_map(|(_, u)| u.iter().copied())
            .take_while(|&u| u != 0)
            .collect();
        Some(String::from_utf16_lossy(&units))
    }
}

/// Decodes 8.3 bytes as fatfs's default converter does (ASCII kept, any
/// other byte U+FFFD), so that both read the same names.
fn oem(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| if b < 0x80 { char::from(b) } else { '\u{FFFD}' })
        .collect::<String>()
        .trim_end_matches(' ')
        .to_string()
}

/// The 8.3 name of a short entry, and the name to show when there is no
/// long name (the NT case flags lower-case either half).
fn short_names(slot: &[u8]) -> (String, String) {
    let mut base: Vec<u8> = slot[..8].to_vec();
    if base[0] == 0x05 {
        base[0] = DELETED;
    }
    let base = oem(&base);
    let ext = oem(&slot[8..11]);
    let join = |b: &str, e: &str| {
        if e.is_empty() {
            b.to_string()
        } else {
            format!("{b}.{e}")
        }
    };
    let flags = slot[12];
    let shown_base = if flags & 0x08 != 0 {
        base.to_ascii_lowercase()
    } else {
        base.clone()
    };
    let shown_ext = if flags & 0x10 != 0 {
        ext.to_ascii_lowercase()
    } else {
        ext.clone()
    };
    (join(&base, &ext), join(&shown_base, &shown_ext))
}

/// Reads the used entries of a directory whose extents [`FatGeometry`]
/// checked. `budget` is how many slots the caller still allows; each slot
/// read spends one, and running out is an error, so the work is bounded by
/// the budget even when the directory is all deleted or long-name slots.
pub fn read_dir<R: Read + Seek>(
    r: &mut R,
    geometry: &FatGeometry,
    extents: &[(u64, u64)],
    budget: &mut u64,
) -> Result<Vec<RawEntry>, ReadDirError> {
    let mut out = Vec::new();
    let mut long = LongName::default();
    let mut buf = [0u8; PIECE];
    // One 512-byte piece at a time, so that a small directory in a big
    // cluster costs (and spends) one piece, not the whole cluster.
    let pieces = extents.iter().flat_map(|&(offset, len)| {
        (0..len)
            .step_by(PIECE)
            .map(move |at| (offset + at, (len - at).min(PIECE as u64)))
    });
    for (offset, len) in pieces {
        let slots = len / SLOT as u64;
        if slots > *budget {
            return Err(ReadDirError::OverBudget);
        }
        *budget -= slots;
        let piece = &mut buf[..usize::try_from(len).unwrap_or(0)];
        r.seek(SeekFrom::Start(offset))?;
        r.read_exact(piece)?;
        for slot in piece.chunks_exact(SLOT) {
            match slot[0] {
                0 => return Ok(out),
                DELETED => {
                    long = LongName::default();
                    continue;
                }
                _ => {}
            }
            let attr = slot[11];
            if attr & 0x3F == ATTR_LONG_NAME {
                long.push(slot);
                continue;
            }
            if attr & ATTR_VOLUME_ID != 0 {
                long = LongName::default();
                continue;
            }
            let (short_name, shown) = short_names(slot);
            let name = long.take(slot).unwrap_or(shown);
            if short_name == "." || short_name == ".." {
                continue;
            }
            let hi = match geometry.fat_type {
                FatType::Fat32 => u32::from(le_u16(slot, 20).unwrap_or(0)),
                _ => 0,
            };
            out.push(RawEntry {
                name,
                short_name,
                size: u64::from(le_u32(slot, 28).unwrap_or(0)),
                is_dir: attr & ATTR_DIRECTORY != 0,
                first_cluster: (hi << 16) | u32::from(le_u16(slot, 26).unwrap_or(0)),
            });
        }
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadDirError {
    #[error("the slot budget ran out")]
    OverBudget,
    #[error(transparent)]
    Io(#[from] io::Error),
}
