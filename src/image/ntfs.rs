//! The two NTFS states that make stage 2's read-write mount unsafe or
//! refused, read from raw bytes before any boot: the dirty flag in
//! `$Volume` (ntfs3 refuses a read-write mount of a dirty volume without
//! `force`, which we never pass) and Windows' hibernation file (Fast
//! Startup or hibernation: Windows will resume with its own idea of the
//! volume and overwrite our changes).
//!
//! A third state is read the same way: whether `$LogFile`'s restart area
//! says the journal was closed cleanly. An unclean journal holds changes
//! Windows has not replayed yet (a crash, or a Windows that hibernated).
//! And the boot sector's own size is compared with the partition's: ntfs3
//! mounts a volume larger than its partition read-only on its own.
//!
//! `$Volume` is MFT record 3. The first MFT records lie in the first
//! extent of `$MFT` at the boot sector's MFT cluster number, so reading
//! it needs no run-list decoding: the boot sector, one record, its
//! update-sequence fixups, then the resident `$VOLUME_INFORMATION`
//! attribute (type 0x70), whose flags word 0x0001 means dirty.

use super::bytes::{le_u16, le_u32, le_u64};
use std::io::{Read, Seek, SeekFrom};

/// `$Volume`'s MFT record number.
const VOLUME_RECORD: u64 = 3;
/// `$LogFile`'s MFT record number.
const LOGFILE_RECORD: u64 = 2;
const ATTR_VOLUME_INFORMATION: u32 = 0x70;
const ATTR_DATA: u32 = 0x80;
const ATTR_END: u32 = 0xFFFF_FFFF;
/// The update sequence protects every 512-byte block of a record,
/// whatever the sector size (NTFS_BLOCK_SIZE).
const FIXUP_STRIDE: usize = 512;
/// `$VOLUME_INFORMATION` flags.
pub const VOLUME_IS_DIRTY: u16 = 0x0001;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NtfsError {
    #[error("the boot sector has no NTFS signature (\"NTFS    \" at byte 3)")]
    NotNtfs,
    #[error("the boot sector's {field} is {value}, which NTFS does not allow")]
    BadGeometry { field: &'static str, value: i64 },
    #[error("MFT record {record} has no FILE signature")]
    NotARecord { record: u64 },
    #[error(
        "MFT record {record}'s update sequence does not match at block {block}: the record is torn or damaged"
    )]
    Fixup { record: u64, block: usize },
    #[error("MFT record {record} is malformed: {why}")]
    Malformed { record: u64, why: &'static str },
    #[error("MFT record {record} has no $VOLUME_INFORMATION attribute")]
    NoVolumeInformation { record: u64 },
    #[error("a $LogFile restart page is damaged: {why}")]
    RestartPage { why: &'static str },
    #[error("reading {what} at byte {offset}: {cause}")]
    Io {
        what: &'static str,
        offset: u64,
        cause: String,
    },
}

/// What the boot sector says about the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtfsBoot {
    pub bytes_per_sector: u32,
    pub cluster_size: u64,
    pub mft_lcn: u64,
    pub mft_mirror_lcn: u64,
    pub record_size: u32,
    /// The volume's length in sectors, without the backup boot sector
    /// that follows it.
    pub total_sectors: u64,
}

impl NtfsBoot {
    /// Parses the first sector of an NTFS volume.
    pub fn parse(sector: &[u8]) -> Result<NtfsBoot, NtfsError> {
        if sector.get(3..11) != Some(b"NTFS    ") {
            return Err(NtfsError::NotNtfs);
        }
        let bad = |field, value: i64| NtfsError::BadGeometry { field, value };
        let bps = le_u16(sector, 0x0b).ok_or(NtfsError::NotNtfs)?;
        if !(256..=4096).contains(&bps) || !bps.is_power_of_two() {
            return Err(bad("bytes per sector", i64::from(bps)));
        }
        // Values above 0x80 encode 2^(256 - value) sectors (large clusters).
        let spc_raw = *sector.get(0x0d).ok_or(NtfsError::NotNtfs)?;
        let spc: u64 = match spc_raw {
            0 => return Err(bad("sectors per cluster", 0)),
            1..=0x80 => u64::from(spc_raw),
            _ => 1u64
                .checked_shl(256 - u32::from(spc_raw))
                .filter(|&v| v <= 1 << 16)
                .ok_or(bad("sectors per cluster", i64::from(spc_raw)))?,
        };
        if !spc.is_power_of_two() {
            return Err(bad("sectors per cluster", spc as i64));
        }
        let cluster_size = spc * u64::from(bps);
        let total_sectors = le_u64(sector, 0x28).ok_or(NtfsError::NotNtfs)?;
        let mft_lcn = le_u64(sector, 0x30).ok_or(NtfsError::NotNtfs)?;
        let mft_mirror_lcn = le_u64(sector, 0x38).ok_or(NtfsError::NotNtfs)?;
        // Signed: negative means 2^(-value) bytes, else that many clusters.
        let cpr = *sector.get(0x40).ok_or(NtfsError::NotNtfs)? as i8;
        let record_size = if cpr < 0 {
            let shift = u32::from(cpr.unsigned_abs());
            1u64.checked_shl(shift).unwrap_or(0)
        } else {
            u64::from(cpr.unsigned_abs()).saturating_mul(cluster_size)
        };
        if !(256..=65536).contains(&record_size) || !record_size.is_power_of_two() {
            return Err(bad("MFT record size", record_size as i64));
        }
        Ok(NtfsBoot {
            bytes_per_sector: u32::from(bps),
            cluster_size,
            mft_lcn,
            mft_mirror_lcn,
            record_size: record_size as u32,
            total_sectors,
        })
    }

    /// The bytes the partition must hold for this volume: its sectors plus
    /// the backup boot sector. ntfs3 (fs/ntfs3/super.c) mounts read-only,
    /// logging "RAW NTFS volume: Filesystem size … > volume size …", when
    /// the device is smaller than `volume size + sector size`.
    pub fn required_bytes(&self) -> Option<u64> {
        self.total_sectors
            .checked_add(1)?
            .checked_mul(u64::from(self.bytes_per_sector))
    }

    /// Whether a partition of `partition_bytes` is too small for the
    /// volume, as ntfs3 judges it. An overflowing size is too large.
    pub fn larger_than(&self, partition_bytes: u64) -> bool {
        self.required_bytes()
            .is_none_or(|need| need > partition_bytes)
    }

    /// The byte offset of MFT record `n` on the volume, within the MFT's
    /// first extent (true for the system records 0 to 15).
    pub fn record_offset(&self, n: u64) -> Option<u64> {
        self.mft_lcn
            .checked_mul(self.cluster_size)?
            .checked_add(n.checked_mul(u64::from(self.record_size))?)
    }

    /// The same for the `$MFTMirr` copy (records 0 to 3).
    pub fn mirror_record_offset(&self, n: u64) -> Option<u64> {
        self.mft_mirror_lcn
            .checked_mul(self.cluster_size)?
            .checked_add(n.checked_mul(u64::from(self.record_size))?)
    }
}

/// `$VOLUME_INFORMATION`: the NTFS version and the volume flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeInfo {
    pub major: u8,
    pub minor: u8,
    pub flags: u16,
    /// Where the flags word lies inside the record (for tests that set it).
    pub flags_offset: usize,
}

impl VolumeInfo {
    pub fn is_dirty(&self) -> bool {
        self.flags & VOLUME_IS_DIRTY != 0
    }
}

/// Why an update sequence could not be undone.
enum SequenceFault {
    Malformed(&'static str),
    /// The block whose last two bytes do not hold the sequence number.
    Torn(usize),
}

/// Undoes the update-sequence protection of one multi-sector record (an
/// MFT record, a `$LogFile` page) in place: the last two bytes of each
/// 512-byte block must hold the sequence number and are replaced with the
/// saved originals.
fn undo_update_sequence(record: &mut [u8]) -> Result<(), SequenceFault> {
    let malformed = SequenceFault::Malformed;
    let usa_offset = usize::from(le_u16(record, 4).ok_or(malformed("too short"))?);
    let usa_count = usize::from(le_u16(record, 6).ok_or(malformed("too short"))?);
    let blocks = record.len() / FIXUP_STRIDE;
    if usa_count == 0 || usa_count - 1 > blocks {
        return Err(malformed("its update sequence has the wrong length"));
    }
    let usa_end = usa_offset
        .checked_add(usa_count * 2)
        .filter(|&e| e <= record.len())
        .ok_or(malformed("its update sequence lies outside it"))?;
    let usa = record
        .get(usa_offset..usa_end)
        .ok_or(malformed("its update sequence lies outside it"))?
        .to_vec();
    let seq = usa.get(0..2).ok_or(malformed("too short"))?;
    for block in 0..usa_count - 1 {
        let end = (block + 1) * FIXUP_STRIDE;
        let tail = record.get_mut(end - 2..end).ok_or(malformed("too short"))?;
        if tail != seq {
            return Err(SequenceFault::Torn(block));
        }
        let saved = usa
            .get(2 + 2 * block..4 + 2 * block)
            .ok_or(malformed("too short"))?;
        tail.copy_from_slice(saved);
    }
    Ok(())
}

/// Undoes the update-sequence protection of MFT record `number` in place.
pub fn apply_fixups(record: &mut [u8], number: u64) -> Result<(), NtfsError> {
    undo_update_sequence(record).map_err(|fault| match fault {
        SequenceFault::Malformed(why) => NtfsError::Malformed {
            record: number,
            why,
        },
        SequenceFault::Torn(block) => NtfsError::Fixup {
            record: number,
            block,
        },
    })
}

/// Finds the first attribute of type `kind` in a fixed-up MFT record:
/// its offset and length, bounds checked.
fn find_attribute(
    record: &[u8],
    number: u64,
    kind: u32,
) -> Result<Option<(usize, usize)>, NtfsError> {
    let malformed = |why| NtfsError::Malformed {
        record: number,
        why,
    };
    if record.get(0..4) != Some(b"FILE") {
        return Err(NtfsError::NotARecord { record: number });
    }
    let mut at = usize::from(le_u16(record, 0x14).ok_or(malformed("too short"))?);
    // Each attribute is at least 16 bytes, so this bounds the walk.
    for _ in 0..record.len() / 16 {
        let found = le_u32(record, at).ok_or(malformed("an attribute runs past its end"))?;
        if found == ATTR_END {
            break;
        }
        let len =
            le_u32(record, at + 4).ok_or(malformed("an attribute runs past its end"))? as usize;
        if len < 16 || at.checked_add(len).is_none_or(|e| e > record.len()) {
            return Err(malformed("an attribute has an impossible length"));
        }
        if found == kind {
            return Ok(Some((at, len)));
        }
        at += len;
    }
    Ok(None)
}

/// Finds `$VOLUME_INFORMATION` in a fixed-up `$Volume` record.
pub fn parse_volume_record(record: &[u8], number: u64) -> Result<VolumeInfo, NtfsError> {
    let malformed = |why| NtfsError::Malformed {
        record: number,
        why,
    };
    let Some((at, len)) = find_attribute(record, number, ATTR_VOLUME_INFORMATION)? else {
        return Err(NtfsError::NoVolumeInformation { record: number });
    };
    if record.get(at + 8) != Some(&0) {
        return Err(malformed("$VOLUME_INFORMATION is not resident"));
    }
    let value_len = le_u32(record, at + 16).ok_or(malformed("too short"))? as usize;
    let value_off = usize::from(le_u16(record, at + 20).ok_or(malformed("too short"))?);
    if value_len < 12 || value_off + value_len > len {
        return Err(malformed("$VOLUME_INFORMATION is too short"));
    }
    let v = at + value_off;
    let flags = le_u16(record, v + 10).ok_or(malformed("too short"))?;
    Ok(VolumeInfo {
        major: *record.get(v + 8).ok_or(malformed("too short"))?,
        minor: *record.get(v + 9).ok_or(malformed("too short"))?,
        flags,
        flags_offset: v + 10,
    })
}

/// The first extent of a non-resident attribute: where it starts on the
/// volume and how many clusters it spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRun {
    pub lcn: u64,
    pub clusters: u64,
}

/// The first run of the unnamed `$DATA` attribute in a fixed-up record
/// (for `$LogFile`, whose restart pages lie at the start of its data).
pub fn first_data_run(record: &[u8], number: u64) -> Result<DataRun, NtfsError> {
    let malformed = |why| NtfsError::Malformed {
        record: number,
        why,
    };
    let Some((at, len)) = find_attribute(record, number, ATTR_DATA)? else {
        return Err(malformed("it has no $DATA attribute"));
    };
    if record.get(at + 8) != Some(&1) {
        return Err(malformed("its $DATA is resident, which $LogFile never is"));
    }
    let pairs = usize::from(le_u16(record, at + 0x20).ok_or(malformed("too short"))?);
    if pairs >= len {
        return Err(malformed("its run list lies outside the attribute"));
    }
    let run = record
        .get(at + pairs..at + len)
        .ok_or(malformed("its run list lies outside the attribute"))?;
    let head = *run.first().ok_or(malformed("its run list is empty"))?;
    let (len_bytes, off_bytes) = (usize::from(head & 0x0f), usize::from(head >> 4));
    if head == 0 || len_bytes == 0 || len_bytes > 8 || off_bytes > 8 {
        return Err(malformed("its first run has an impossible header"));
    }
    if off_bytes == 0 {
        return Err(malformed("its first run is sparse"));
    }
    let field = |from: usize, n: usize| -> Result<[u8; 8], NtfsError> {
        let bytes = run
            .get(from..from + n)
            .ok_or(malformed("its first run is cut short"))?;
        // Sign-extend: run offsets are signed (relative to the previous
        // run), lengths are not, and never have the top bit set in practice.
        let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut out = [fill; 8];
        out[..n].copy_from_slice(bytes);
        Ok(out)
    };
    let clusters = u64::from_le_bytes(field(1, len_bytes)?);
    let lcn = i64::from_le_bytes(field(1 + len_bytes, off_bytes)?);
    if lcn <= 0 || clusters == 0 || clusters >> 62 != 0 {
        return Err(malformed("its first run points outside the volume"));
    }
    Ok(DataRun {
        lcn: lcn as u64,
        clusters,
    })
}

/// What `$LogFile`'s restart area says about the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFileState {
    /// Closed cleanly: no client has it open, the restart area's
    /// RESTART_VOLUME_IS_CLEAN flag is set, or chkdsk ran ("CHKD").
    Clean,
    /// Open, with changes that were not checkpointed: Windows crashed,
    /// lost power or hibernated with the volume mounted.
    Unclean,
    /// No restart page at all: the log was reset (mkntfs and ntfs-3g fill
    /// it with 0xFF), so there is nothing to replay.
    Empty,
}

/// The largest `$LogFile` system page size read (Windows uses 4 KiB; the
/// format allows larger powers of two).
pub const MAX_LOG_PAGE: usize = 65536;
/// "no client" in the restart area's client lists.
const LOG_NO_CLIENT: u16 = 0xffff;
/// RESTART_VOLUME_IS_CLEAN in the restart area's flags.
const RESTART_VOLUME_IS_CLEAN: u16 = 0x0002;

/// One restart page's verdict: its area's LSN (the newer page wins) and
/// whether it says the log is clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPage {
    pub current_lsn: u64,
    pub clean: bool,
}

/// The system page size a restart page's header claims, bounded, or None
/// when the page is not a restart page.
pub fn restart_page_size(header: &[u8]) -> Option<usize> {
    if !matches!(header.get(0..4), Some(b"RSTR" | b"CHKD")) {
        return None;
    }
    let size = le_u32(header, 0x10)? as usize;
    (size.is_power_of_two() && (512..=MAX_LOG_PAGE).contains(&size)).then_some(size)
}

/// Parses one whole restart page (fix-ups still applied, as on disk).
/// None when it is not a restart page (a reset log holds 0xFF); an error
/// when it claims to be one and is damaged.
pub fn parse_restart_page(page: &mut [u8]) -> Result<Option<RestartPage>, NtfsError> {
    let bad = |why| NtfsError::RestartPage { why };
    match page.get(0..4) {
        // ntfs3 (fs/ntfs3/fslog.c) starts afresh after chkdsk.
        Some(b"CHKD") => {
            return Ok(Some(RestartPage {
                current_lsn: le_u64(page, 8).ok_or(bad("too short"))?,
                clean: true,
            }));
        }
        Some(b"RSTR") => {}
        _ => return Ok(None),
    }
    undo_update_sequence(page).map_err(|fault| match fault {
        SequenceFault::Malformed(why) => bad(why),
        SequenceFault::Torn(_) => bad("its update sequence does not match: the page is torn"),
    })?;
    let area = usize::from(le_u16(page, 0x18).ok_or(bad("too short"))?);
    if area < 0x1e || area % 8 != 0 {
        return Err(bad("its restart area offset is impossible"));
    }
    let current_lsn = le_u64(page, area).ok_or(bad("its restart area lies outside it"))?;
    let in_use = le_u16(page, area + 0x0c).ok_or(bad("its restart area lies outside it"))?;
    let flags = le_u16(page, area + 0x0e).ok_or(bad("its restart area lies outside it"))?;
    Ok(Some(RestartPage {
        current_lsn,
        clean: in_use == LOG_NO_CLIENT || flags & RESTART_VOLUME_IS_CLEAN != 0,
    }))
}

/// The verdict over the two restart pages, as ntfs3 and Windows pick:
/// the valid page with the newer LSN. `first_bytes` are the log's first
/// bytes, to tell a reset log (0xFF) from a damaged one.
pub fn logfile_state(
    pages: [Option<RestartPage>; 2],
    first_bytes: &[u8],
) -> Result<LogFileState, NtfsError> {
    let newest = match pages {
        [Some(a), Some(b)] => Some(if b.current_lsn > a.current_lsn { b } else { a }),
        [Some(a), None] | [None, Some(a)] => Some(a),
        [None, None] => None,
    };
    match newest {
        Some(p) if p.clean => Ok(LogFileState::Clean),
        Some(_) => Ok(LogFileState::Unclean),
        None if first_bytes.len() >= 4 && first_bytes.iter().take(512).all(|&b| b == 0xff) => {
            Ok(LogFileState::Empty)
        }
        None => Err(NtfsError::RestartPage {
            why: "neither restart page is valid, and the log is not reset",
        }),
    }
}

/// Reads `$LogFile`'s two restart pages from an NTFS volume and says
/// whether the journal was closed cleanly. Reads at most two pages of
/// [`MAX_LOG_PAGE`] bytes beyond the boot sector and one MFT record.
pub fn read_logfile_state<R: Read + Seek>(r: &mut R) -> Result<LogFileState, NtfsError> {
    let mut sector = [0u8; 512];
    read_at(r, 0, &mut sector, "the NTFS boot sector")?;
    let boot = NtfsBoot::parse(&sector)?;
    let offset = boot
        .record_offset(LOGFILE_RECORD)
        .ok_or(NtfsError::BadGeometry {
            field: "MFT cluster number",
            value: boot.mft_lcn as i64,
        })?;
    let mut record = vec![0u8; boot.record_size as usize];
    read_at(r, offset, &mut record, "MFT record 2 ($LogFile)")?;
    if record.get(0..4) != Some(b"FILE") {
        return Err(NtfsError::NotARecord {
            record: LOGFILE_RECORD,
        });
    }
    apply_fixups(&mut record, LOGFILE_RECORD)?;
    let run = first_data_run(&record, LOGFILE_RECORD)?;
    let outside = NtfsError::BadGeometry {
        field: "$LogFile cluster number",
        value: run.lcn as i64,
    };
    let start = run.lcn.checked_mul(boot.cluster_size).ok_or(outside)?;
    let run_bytes = run.clusters.saturating_mul(boot.cluster_size);
    let mut header = [0u8; 512];
    read_at(r, start, &mut header, "the first $LogFile restart page")?;
    let first_size = restart_page_size(&header);
    let mut pages = [None, None];
    // The second page follows the first at its page size; a damaged first
    // page leaves the usual 4 KiB.
    let second_at = first_size.unwrap_or(4096) as u64;
    for (slot, at, what) in [
        (0, 0u64, "the first $LogFile restart page"),
        (1, second_at, "the second $LogFile restart page"),
    ] {
        if at.saturating_add(512) > run_bytes {
            continue;
        }
        let mut head = [0u8; 512];
        read_at(r, start + at, &mut head, what)?;
        let Some(size) = restart_page_size(&head) else {
            continue;
        };
        if at.saturating_add(size as u64) > run_bytes {
            continue;
        }
        let mut page = vec![0u8; size];
        read_at(r, start + at, &mut page, what)?;
        // A damaged page is skipped, as ntfs3 does, and the other decides.
        pages[slot] = parse_restart_page(&mut page).ok().flatten();
    }
    logfile_state(pages, &header)
}

/// Reads the boot sector and `$Volume` from an NTFS volume (a partition
/// device, opened read-only). Returns the layout and the volume info.
pub fn read_volume_info<R: Read + Seek>(r: &mut R) -> Result<(NtfsBoot, VolumeInfo), NtfsError> {
    let mut sector = [0u8; 512];
    read_at(r, 0, &mut sector, "the NTFS boot sector")?;
    let boot = NtfsBoot::parse(&sector)?;
    let offset = boot
        .record_offset(VOLUME_RECORD)
        .ok_or(NtfsError::BadGeometry {
            field: "MFT cluster number",
            value: boot.mft_lcn as i64,
        })?;
    let mut record = vec![0u8; boot.record_size as usize];
    read_at(r, offset, &mut record, "MFT record 3 ($Volume)")?;
    if record.get(0..4) != Some(b"FILE") {
        return Err(NtfsError::NotARecord {
            record: VOLUME_RECORD,
        });
    }
    apply_fixups(&mut record, VOLUME_RECORD)?;
    let info = parse_volume_record(&record, VOLUME_RECORD)?;
    Ok((boot, info))
}

fn read_at<R: Read + Seek>(
    r: &mut R,
    offset: u64,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), NtfsError> {
    let io = |e: std::io::Error| NtfsError::Io {
        what,
        offset,
        cause: e.to_string(),
    };
    r.seek(SeekFrom::Start(offset)).map_err(io)?;
    r.read_exact(buf).map_err(io)
}

/// The hibernation file's name in the root of the volume (compare without
/// case: NTFS names are case-insensitive).
pub const HIBERFIL: &str = "hiberfil.sys";

/// True when the first bytes of `hiberfil.sys` say Windows hibernated, or
/// shut down with Fast Startup (a hibernated kernel session): "hibr" or
/// "wake", in either case. A cleared file starts with zeros.
pub fn is_hibernation_signature(first: &[u8]) -> bool {
    matches!(first.get(0..4), Some(b"hibr" | b"HIBR" | b"wake" | b"WAKE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot_sector(bps: u16, spc: u8, mft_lcn: u64, cpr: i8) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[3..11].copy_from_slice(b"NTFS    ");
        s[0x0b..0x0d].copy_from_slice(&bps.to_le_bytes());
        s[0x0d] = spc;
        s[0x30..0x38].copy_from_slice(&mft_lcn.to_le_bytes());
        s[0x38..0x40].copy_from_slice(&2u64.to_le_bytes());
        s[0x40] = cpr as u8;
        s
    }

    /// A 1 KiB `$Volume` record with fixups applied (as on disk) and a
    /// `$VOLUME_INFORMATION` with `flags`.
    fn volume_record(flags: u16) -> Vec<u8> {
        let mut r = vec![0u8; 1024];
        r[0..4].copy_from_slice(b"FILE");
        r[4..6].copy_from_slice(&0x30u16.to_le_bytes()); // usa offset
        r[6..8].copy_from_slice(&3u16.to_le_bytes()); // 1 + 2 blocks
        r[0x14..0x16].copy_from_slice(&0x38u16.to_le_bytes()); // first attribute
        // A $STANDARD_INFORMATION-like attribute to skip (type 0x10, 0x60 long).
        let a = 0x38;
        r[a..a + 4].copy_from_slice(&0x10u32.to_le_bytes());
        r[a + 4..a + 8].copy_from_slice(&0x60u32.to_le_bytes());
        // $VOLUME_INFORMATION: resident, value of 12 bytes at +0x18.
        let v = a + 0x60;
        r[v..v + 4].copy_from_slice(&0x70u32.to_le_bytes());
        r[v + 4..v + 8].copy_from_slice(&0x28u32.to_le_bytes());
        r[v + 16..v + 20].copy_from_slice(&12u32.to_le_bytes());
        r[v + 20..v + 22].copy_from_slice(&0x18u16.to_le_bytes());
        r[v + 0x18 + 8] = 3;
        r[v + 0x18 + 9] = 1;
        r[v + 0x18 + 10..v + 0x18 + 12].copy_from_slice(&flags.to_le_bytes());
        let end = v + 0x28;
        r[end..end + 4].copy_from_slice(&ATTR_END.to_le_bytes());
        // Protect both 512-byte blocks with sequence number 0x0007.
        r[0x30..0x32].copy_from_slice(&7u16.to_le_bytes());
        for (i, end) in [512usize, 1024].into_iter().enumerate() {
            let orig = [r[end - 2], r[end - 1]];
            r[0x32 + 2 * i..0x34 + 2 * i].copy_from_slice(&orig);
            r[end - 2..end].copy_from_slice(&7u16.to_le_bytes());
        }
        r
    }

    #[test]
    fn boot_sector_geometry_is_decoded() {
        let b = NtfsBoot::parse(&boot_sector(512, 8, 786432, -10)).unwrap();
        assert_eq!(b.cluster_size, 4096);
        assert_eq!(b.record_size, 1024);
        assert_eq!(b.record_offset(3), Some(786432 * 4096 + 3072));
        // 0xF4 = -12: 2^12 sectors of 512 bytes, a 2 MiB cluster.
        let big = NtfsBoot::parse(&boot_sector(512, 0xF4, 1, -10)).unwrap();
        assert_eq!(big.cluster_size, 2 << 20);
        // A positive value counts clusters per record.
        let rec = NtfsBoot::parse(&boot_sector(512, 2, 1, 1)).unwrap();
        assert_eq!(rec.record_size, 1024);
    }

    #[test]
    fn non_ntfs_and_bad_geometry_are_rejected() {
        assert_eq!(NtfsBoot::parse(&[0u8; 512]), Err(NtfsError::NotNtfs));
        assert_eq!(NtfsBoot::parse(&[0u8; 4]), Err(NtfsError::NotNtfs));
        assert!(matches!(
            NtfsBoot::parse(&boot_sector(500, 8, 4, -10)),
            Err(NtfsError::BadGeometry { .. })
        ));
        assert!(matches!(
            NtfsBoot::parse(&boot_sector(512, 0, 4, -10)),
            Err(NtfsError::BadGeometry { .. })
        ));
        assert!(matches!(
            NtfsBoot::parse(&boot_sector(512, 8, 4, -40)),
            Err(NtfsError::BadGeometry { .. })
        ));
    }

    #[test]
    fn clean_and_dirty_flags_are_read_after_fixups() {
        for (flags, dirty) in [(0u16, false), (1, true), (0x8000, false), (0x8001, true)] {
            let mut r = volume_record(flags);
            apply_fixups(&mut r, 3).unwrap();
            let info = parse_volume_record(&r, 3).unwrap();
            assert_eq!((info.major, info.minor, info.flags), (3, 1, flags));
            assert_eq!(info.is_dirty(), dirty, "{flags:#x}");
        }
    }

    #[test]
    fn a_torn_record_fails_its_fixup_check() {
        let mut r = volume_record(0);
        r[1022] = 9;
        assert_eq!(
            apply_fixups(&mut r, 3),
            Err(NtfsError::Fixup {
                record: 3,
                block: 1
            })
        );
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let mut r = volume_record(0);
        apply_fixups(&mut r, 3).unwrap();
        let mut bad_len = r.clone();
        bad_len[0x38 + 4..0x38 + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert!(matches!(
            parse_volume_record(&bad_len, 3),
            Err(NtfsError::Malformed { .. })
        ));
        let mut no_info = r.clone();
        no_info[0x38 + 0x60..0x38 + 0x64].copy_from_slice(&ATTR_END.to_le_bytes());
        assert_eq!(
            parse_volume_record(&no_info, 3),
            Err(NtfsError::NoVolumeInformation { record: 3 })
        );
        assert_eq!(
            parse_volume_record(&[0u8; 8], 3),
            Err(NtfsError::NotARecord { record: 3 })
        );
        let mut usa = volume_record(0);
        usa[4..6].copy_from_slice(&0xFFF0u16.to_le_bytes());
        assert!(matches!(
            apply_fixups(&mut usa, 3),
            Err(NtfsError::Malformed { .. })
        ));
    }

    #[test]
    fn read_volume_info_reads_record_three() {
        let mut disk = vec![0u8; 64 * 1024];
        disk[..512].copy_from_slice(&boot_sector(512, 8, 2, -10));
        let at = 2 * 4096 + 3 * 1024;
        disk[at..at + 1024].copy_from_slice(&volume_record(1));
        let (boot, info) = read_volume_info(&mut std::io::Cursor::new(disk)).unwrap();
        assert_eq!(boot.record_offset(3), Some(at as u64));
        assert!(info.is_dirty());
        let short = read_volume_info(&mut std::io::Cursor::new(vec![0u8; 100]));
        assert!(matches!(short, Err(NtfsError::Io { .. })));
    }

    #[test]
    fn corrupted_records_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let mut r = volume_record(1);
            for _ in 0..1 + next() % 6 {
                let at = (next() as usize) % r.len();
                r[at] = next() as u8;
            }
            if apply_fixups(&mut r, 3).is_ok() {
                let _ = parse_volume_record(&r, 3);
            }
            let _ = parse_volume_record(&r, 3);
            let mut s = boot_sector(512, 8, 2, -10);
            let at = (next() as usize) % 0x48;
            s[at] = next() as u8;
            if let Ok(b) = NtfsBoot::parse(&s) {
                let _ = b.record_offset(3);
            }
        }
    }

    /// A restart page of `size` bytes with its area at 0x30, protected by
    /// an update sequence as on disk.
    pub(crate) fn restart_page(size: usize, lsn: u64, in_use: u16, flags: u16) -> Vec<u8> {
        let mut p = vec![0u8; size];
        p[0..4].copy_from_slice(b"RSTR");
        p[4..6].copy_from_slice(&0x1eu16.to_le_bytes());
        let blocks = size / 512;
        p[6..8].copy_from_slice(&(blocks as u16 + 1).to_le_bytes());
        p[0x10..0x14].copy_from_slice(&(size as u32).to_le_bytes());
        p[0x14..0x18].copy_from_slice(&4096u32.to_le_bytes());
        p[0x18..0x1a].copy_from_slice(&0x30u16.to_le_bytes());
        p[0x30..0x38].copy_from_slice(&lsn.to_le_bytes());
        p[0x3c..0x3e].copy_from_slice(&in_use.to_le_bytes());
        p[0x3e..0x40].copy_from_slice(&flags.to_le_bytes());
        p[0x1e..0x20].copy_from_slice(&5u16.to_le_bytes());
        for i in 0..blocks {
            let end = (i + 1) * 512;
            let orig = [p[end - 2], p[end - 1]];
            p[0x20 + 2 * i..0x22 + 2 * i].copy_from_slice(&orig);
            p[end - 2..end].copy_from_slice(&5u16.to_le_bytes());
        }
        p
    }

    /// A 1 KiB `$LogFile` record whose `$DATA` starts at `lcn` for
    /// `clusters` clusters, fixups applied as on disk.
    fn logfile_record(lcn: u8, clusters: u8) -> Vec<u8> {
        let mut r = volume_record(0);
        apply_fixups(&mut r, 3).unwrap();
        // Replace $VOLUME_INFORMATION with a non-resident $DATA.
        let v = 0x38 + 0x60;
        r[v..v + 0x48].fill(0);
        r[v..v + 4].copy_from_slice(&ATTR_DATA.to_le_bytes());
        r[v + 4..v + 8].copy_from_slice(&0x48u32.to_le_bytes());
        r[v + 8] = 1;
        r[v + 0x20..v + 0x22].copy_from_slice(&0x40u16.to_le_bytes());
        r[v + 0x40..v + 0x43].copy_from_slice(&[0x11, clusters, lcn]);
        r[v + 0x48..v + 0x4c].copy_from_slice(&ATTR_END.to_le_bytes());
        for end in [512usize, 1024] {
            r[end - 2..end].copy_from_slice(&7u16.to_le_bytes());
        }
        r
    }

    /// A small volume: 4 KiB clusters, MFT at cluster 2, `$LogFile` data at
    /// cluster 4 (16 clusters) holding `log` at its start.
    fn volume_with_log(log: &[u8]) -> Vec<u8> {
        let mut disk = vec![0u8; 160 * 1024];
        disk[..512].copy_from_slice(&boot_sector(512, 8, 2, -10));
        let at = 2 * 4096 + 2 * 1024;
        disk[at..at + 1024].copy_from_slice(&logfile_record(4, 16));
        disk[4 * 4096..4 * 4096 + log.len()].copy_from_slice(log);
        disk
    }

    #[test]
    fn volume_size_beyond_the_partition_is_seen_as_ntfs3_sees_it() {
        let mut s = boot_sector(512, 8, 2, -10);
        s[0x28..0x30].copy_from_slice(&2047u64.to_le_bytes());
        let b = NtfsBoot::parse(&s).unwrap();
        // 2047 sectors plus the backup boot sector fill 1 MiB exactly.
        assert_eq!(b.required_bytes(), Some(1 << 20));
        assert!(!b.larger_than(1 << 20));
        assert!(b.larger_than((1 << 20) - 512));
        s[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(NtfsBoot::parse(&s).unwrap().larger_than(u64::MAX));
    }

    #[test]
    fn restart_page_clean_states_follow_ntfs3_and_windows() {
        for (in_use, flags, clean) in [
            (0xffffu16, 0u16, true),
            (0, RESTART_VOLUME_IS_CLEAN, true),
            (0, 0, false),
            (0, 0x0001, false),
        ] {
            let mut p = restart_page(4096, 9, in_use, flags);
            let got = parse_restart_page(&mut p).unwrap().unwrap();
            assert_eq!(
                got,
                RestartPage {
                    current_lsn: 9,
                    clean
                },
                "{in_use:#x} {flags:#x}"
            );
        }
        let mut chkd = restart_page(4096, 9, 0, 0);
        chkd[0..4].copy_from_slice(b"CHKD");
        assert!(parse_restart_page(&mut chkd).unwrap().unwrap().clean);
        assert_eq!(parse_restart_page(&mut vec![0xffu8; 4096]), Ok(None));
    }

    #[test]
    fn a_torn_restart_page_is_an_error() {
        let mut p = restart_page(4096, 9, 0, 0);
        p[2047] = 0x42;
        assert!(matches!(
            parse_restart_page(&mut p),
            Err(NtfsError::RestartPage { .. })
        ));
    }

    #[test]
    fn the_newer_restart_page_decides() {
        let clean = |lsn| {
            Some(RestartPage {
                current_lsn: lsn,
                clean: true,
            })
        };
        let dirty = |lsn| {
            Some(RestartPage {
                current_lsn: lsn,
                clean: false,
            })
        };
        assert_eq!(
            logfile_state([clean(1), dirty(2)], &[]),
            Ok(LogFileState::Unclean)
        );
        assert_eq!(
            logfile_state([clean(3), dirty(2)], &[]),
            Ok(LogFileState::Clean)
        );
        assert_eq!(
            logfile_state([None, dirty(2)], &[]),
            Ok(LogFileState::Unclean)
        );
        assert_eq!(
            logfile_state([None, None], &[0xff; 512]),
            Ok(LogFileState::Empty)
        );
        assert!(logfile_state([None, None], &[0; 512]).is_err());
    }

    #[test]
    fn read_logfile_state_reads_both_restart_pages() {
        let reset = volume_with_log(&[0xff; 8192]);
        assert_eq!(
            read_logfile_state(&mut std::io::Cursor::new(reset)),
            Ok(LogFileState::Empty)
        );
        let mut log = restart_page(4096, 10, 0xffff, 0);
        log.extend(restart_page(4096, 11, 0, 0));
        let unclean = volume_with_log(&log);
        assert_eq!(
            read_logfile_state(&mut std::io::Cursor::new(unclean)),
            Ok(LogFileState::Unclean)
        );
        let mut log = restart_page(4096, 12, 0xffff, 0);
        log.extend(restart_page(4096, 11, 0, 0));
        assert_eq!(
            read_logfile_state(&mut std::io::Cursor::new(volume_with_log(&log))),
            Ok(LogFileState::Clean)
        );
    }

    #[test]
    fn damaged_run_lists_are_errors_not_panics() {
        let mut r = logfile_record(4, 16);
        apply_fixups(&mut r, 2).unwrap();
        assert_eq!(
            first_data_run(&r, 2),
            Ok(DataRun {
                lcn: 4,
                clusters: 16
            })
        );
        let head = 0x38 + 0x60 + 0x40;
        for bad in [0x00u8, 0x01, 0x91, 0x19] {
            let mut b = r.clone();
            b[head] = bad;
            assert!(first_data_run(&b, 2).is_err(), "{bad:#x}");
        }
        let mut negative = r.clone();
        negative[head + 2] = 0x80;
        assert!(first_data_run(&negative, 2).is_err());
    }

    #[test]
    fn corrupted_logs_never_panic() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut log = restart_page(4096, 10, 0, 0);
        log.extend(restart_page(4096, 11, 0, 0));
        let disk = volume_with_log(&log);
        for _ in 0..500 {
            let mut d = disk.clone();
            for _ in 0..1 + next() % 8 {
                // Aim at the boot sector, record 2 and the restart pages.
                let region = [0usize, 2 * 4096 + 2048, 4 * 4096][next() as usize % 3];
                let span = if region == 0 { 0x48 } else { 1024 };
                let at = region + (next() as usize) % span;
                d[at] = next() as u8;
            }
            let _ = read_logfile_state(&mut std::io::Cursor::new(d));
        }
    }

    #[test]
    fn hibernation_signatures_are_recognised() {
        for sig in [b"hibr", b"HIBR", b"wake", b"WAKE"] {
            assert!(is_hibernation_signature(sig));
        }
        assert!(!is_hibernation_signature(&[0, 0, 0, 0]));
        assert!(!is_hibernation_signature(b"RSTR"));
        assert!(!is_hibernation_signature(b"hi"));
    }
}
