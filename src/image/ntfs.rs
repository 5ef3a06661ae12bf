//! The two NTFS states that make stage 2's read-write mount unsafe or
//! refused, read from raw bytes before any boot: the dirty flag in
//! `$Volume` (ntfs3 refuses a read-write mount of a dirty volume without
//! `force`, which we never pass) and Windows' hibernation file (Fast
//! Startup or hibernation: Windows will resume with its own idea of the
//! volume and overwrite our changes).
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
const ATTR_VOLUME_INFORMATION: u32 = 0x70;
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
        })
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

/// Undoes the update-sequence protection of one MFT record in place: the
/// last two bytes of each 512-byte block must hold the sequence number and
/// are replaced with the saved originals.
pub fn apply_fixups(record: &mut [u8], number: u64) -> Result<(), NtfsError> {
    let malformed = |why| NtfsError::Malformed {
        record: number,
        why,
    };
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
            return Err(NtfsError::Fixup {
                record: number,
                block,
            });
        }
        let saved = usa
            .get(2 + 2 * block..4 + 2 * block)
            .ok_or(malformed("too short"))?;
        tail.copy_from_slice(saved);
    }
    Ok(())
}

/// Finds `$VOLUME_INFORMATION` in a fixed-up `$Volume` record.
pub fn parse_volume_record(record: &[u8], number: u64) -> Result<VolumeInfo, NtfsError> {
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
        let kind = le_u32(record, at).ok_or(malformed("an attribute runs past its end"))?;
        if kind == ATTR_END {
            break;
        }
        let len =
            le_u32(record, at + 4).ok_or(malformed("an attribute runs past its end"))? as usize;
        if len < 16 || at.checked_add(len).is_none_or(|e| e > record.len()) {
            return Err(malformed("an attribute has an impossible length"));
        }
        if kind == ATTR_VOLUME_INFORMATION {
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
            return Ok(VolumeInfo {
                major: *record.get(v + 8).ok_or(malformed("too short"))?,
                minor: *record.get(v + 9).ok_or(malformed("too short"))?,
                flags,
                flags_offset: v + 10,
            });
        }
        at += len;
    }
    Err(NtfsError::NoVolumeInformation { record: number })
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
