//! The VHD footer: the 512 bytes at the end of every VHD file (Microsoft's
//! "Virtual Hard Disk Image Format Specification", 2006). All fields are
//! big-endian. A fixed VHD is a raw disk followed by this footer, which is
//! what lets a loop device (sizelimit = file size − 512) expose the disk.

use crate::model::{ImageKind, Problem};
use serde::{Serialize, Serializer};
use std::io::{self, Read, Seek, SeekFrom};

pub const FOOTER_SIZE: u64 = 512;
/// A VHD's sector size: the format knows no other, so the partition table
/// inside one counts 512-byte sectors whatever disk holds the file.
pub const SECTOR_SIZE: u32 = 512;
const COOKIE: &[u8; 8] = b"conectix";
const FORMAT_VERSION: u32 = 0x0001_0000;
/// Bit 1 of Features is reserved and "must always be set".
const FEATURES_RESERVED: u32 = 0x0000_0002;
/// A fixed disk has no dynamic header, so its data offset is all ones.
const FIXED_DATA_OFFSET: u64 = u64::MAX;
/// VHD timestamps count seconds from 2000-01-01 00:00:00 UTC.
pub const VHD_EPOCH_UNIX: u64 = 946_684_800;
/// Windows refuses to attach a VHD larger than 2040 GiB.
pub const MAX_VHD_SIZE: u64 = 2040 * 1024 * 1024 * 1024;

/// The creator application written by `raw2vhd`.
///
/// QEMU (and tools following it) size a VHD by its CHS geometry, which
/// rounds the disk down and would cut off the backup GPT, unless the
/// creator is one it knows to use `current_size`: "win " (Hyper-V),
/// "qem2", "d2v ", "CTXS" or "tap". Windows always uses `current_size`.
/// We write "win " so every reader sees the full disk; the rest of the
/// footer follows the specification exactly.
pub const CREATOR_APP: [u8; 4] = *b"win ";
/// Windows 10's Hyper-V writes version 10.0.
pub const CREATOR_VERSION: u32 = 0x000A_0000;
/// The specification defines "Wi2k" and "Mac "; Windows writes "Wi2k".
pub const CREATOR_OS: [u8; 4] = *b"Wi2k";

/// The Disk Type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DiskType {
    Fixed,
    Dynamic,
    Differencing,
}

impl DiskType {
    fn from_u32(v: u32) -> Option<DiskType> {
        match v {
            2 => Some(DiskType::Fixed),
            3 => Some(DiskType::Dynamic),
            4 => Some(DiskType::Differencing),
            _ => None,
        }
    }

    fn to_u32(self) -> u32 {
        match self {
            DiskType::Fixed => 2,
            DiskType::Dynamic => 3,
            DiskType::Differencing => 4,
        }
    }
}

/// Cylinders, heads and sectors per track, as the footer stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Geometry {
    pub cylinders: u16,
    pub heads: u8,
    pub sectors_per_track: u8,
}

impl Geometry {
    /// The specification's CHS algorithm (appendix "CHS Calculation") for a
    /// disk of `total_sectors` 512-byte sectors.
    pub fn for_sectors(total_sectors: u64) -> Geometry {
        let total = total_sectors.min(65535 * 16 * 255);
        let (spt, heads, cyl_times_heads) = if total >= 65535 * 16 * 63 {
            (255u64, 16u64, total / 255)
        } else {
            let mut spt = 17u64;
            let mut cth = total / spt;
            let mut heads = cth.div_ceil(1024).max(4);
            if cth >= heads * 1024 || heads > 16 {
                spt = 31;
                heads = 16;
                cth = total / spt;
            }
            if cth >= heads * 1024 {
                spt = 63;
                heads = 16;
                cth = total / spt;
            }
            (spt, heads, cth)
        };
        // Each value fits its field after the cap above; saturate anyway
        // rather than trust arithmetic with a cast.
        Geometry {
            cylinders: u16::try_from(cyl_times_heads / heads).unwrap_or(u16::MAX),
            heads: u8::try_from(heads).unwrap_or(u8::MAX),
            sectors_per_track: u8::try_from(spt).unwrap_or(u8::MAX),
        }
    }

    /// The disk size the geometry describes, in bytes.
    pub fn size_bytes(&self) -> u64 {
        u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors_per_track) * 512
    }
}

/// A four-character code such as the creator application, kept as bytes
/// so a footer round-trips exactly, shown as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub fn as_text(&self) -> String {
        self.0
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                }
            })
            .collect()
    }
}

impl Serialize for FourCc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_text())
    }
}

/// A 16-byte unique id, shown in the standard 8-4-4-4-12 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VhdUuid(pub [u8; 16]);

impl std::fmt::Display for VhdUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for VhdUuid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A parsed, checksum-verified VHD footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VhdFooter {
    pub features: u32,
    pub format_version: u32,
    /// Offset of the dynamic-disk header; all ones for a fixed disk.
    pub data_offset: u64,
    /// Seconds since 2000-01-01 00:00:00 UTC.
    pub timestamp: u32,
    pub creator_app: FourCc,
    pub creator_version: u32,
    pub creator_os: FourCc,
    pub original_size: u64,
    /// The disk's size in bytes; for a fixed VHD, the data before the footer.
    pub current_size: u64,
    pub geometry: Geometry,
    pub disk_type: DiskType,
    pub checksum: u32,
    pub uuid: VhdUuid,
    pub saved_state: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VhdError {
    #[error("the file is {len} bytes, too short to hold a 512-byte VHD footer")]
    TooShort { len: u64 },
    #[error("no VHD footer: the last 512 bytes do not start with the \"conectix\" cookie")]
    BadCookie,
    #[error(
        "the VHD footer's checksum is wrong (expected {expected:#010x}, found {found:#010x}); \
         the footer is damaged: if the data is intact, remove the last 512 bytes and run `vhdboot raw2vhd` again"
    )]
    BadChecksum { expected: u32, found: u32 },
    #[error("the VHD footer has format version {found:#010x}; only 0x00010000 exists")]
    BadVersion { found: u32 },
    #[error(
        "the VHD footer has disk type {value}, which is none of fixed (2), dynamic (3) or differencing (4)"
    )]
    UnknownType { value: u32 },
    #[error(
        "the VHD footer says the disk holds {current_size} bytes, so the file should be {expected} bytes, \
         but it is {file_size} bytes; {}",
        size_mismatch_advice(*expected, *file_size)
    )]
    SizeMismatch {
        current_size: u64,
        expected: u64,
        file_size: u64,
    },
    #[error(
        "the file has no VHD footer and raw images are not enabled; make it a fixed VHD with `vhdboot raw2vhd`"
    )]
    NoFooter,
    #[error(
        "a fixed VHD's size must be a positive multiple of 512 bytes; {size} is not (the next multiple is {next})"
    )]
    BadSize { size: u64, next: u64 },
    #[error("reading the VHD footer failed: {0}")]
    Io(String),
}

/// What to do about a fixed footer whose size disagrees with the file's.
/// `truncate -s` is suggested only where it grows the file: shrinking it
/// would cut off the bytes past the expected end, which may be data.
fn size_mismatch_advice(expected: u64, file_size: u64) -> String {
    if expected > file_size {
        format!(
            "the file was cut short after the footer was written: if it was cut by mistake, \
             `truncate -s {expected}` restores the length (the lost bytes come back as zeros), \
             or run `vhdboot raw2vhd` on a raw copy"
        )
    } else {
        "bytes were added after the footer was written (by a copy or a resize); nothing was \
         cut, and nothing should be: check where the file came from, and compare it with \
         `vhdboot vhd info` of the original"
            .to_string()
    }
}

impl From<io::Error> for VhdError {
    fn from(e: io::Error) -> VhdError {
        VhdError::Io(e.to_string())
    }
}

fn be_u16(b: &[u8; 512], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_be_bytes(a)
}

fn be_u32(b: &[u8; 512], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8; 512], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_be_bytes(a)
}

fn four(b: &[u8; 512], at: usize) -> [u8; 4] {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    a
}

fn put(b: &mut [u8; 512], at: usize, v: &[u8]) {
    if let Some(dst) = b.get_mut(at..at + v.len()) {
        dst.copy_from_slice(v);
    }
}

/// The one's complement of the byte sum, with the checksum field (bytes
/// 64..68) counted as zero.
pub fn checksum(b: &[u8; 512]) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |acc, (_, &x)| acc.wrapping_add(u32::from(x)));
    !sum
}

impl VhdFooter {
    /// Parses a footer from the last 512 bytes of `bytes` (a footer, or a
    /// whole small file). Checks the cookie, the checksum, the format
    /// version and the disk type.
    pub fn parse(bytes: &[u8]) -> Result<VhdFooter, VhdError> {
        let start = bytes.len().checked_sub(512).ok_or(VhdError::TooShort {
            len: bytes.len() as u64,
        })?;
        let mut b = [0u8; 512];
        b.copy_from_slice(bytes.get(start..).unwrap_or(&[0u8; 512][..]));
        if b.get(..8) != Some(&COOKIE[..]) {
            return Err(VhdError::BadCookie);
        }
        let found = be_u32(&b, 64);
        let expected = checksum(&b);
        if found != expected {
            return Err(VhdError::BadChecksum { expected, found });
        }
        let format_version = be_u32(&b, 12);
        if format_version != FORMAT_VERSION {
            return Err(VhdError::BadVersion {
                found: format_version,
            });
        }
        let type_value = be_u32(&b, 60);
        let disk_type =
            DiskType::from_u32(type_value).ok_or(VhdError::UnknownType { value: type_value })?;
        let mut uuid = [0u8; 16];
        if let Some(s) = b.get(68..84) {
            uuid.copy_from_slice(s);
        }
        Ok(VhdFooter {
            features: be_u32(&b, 8),
            format_version,
            data_offset: be_u64(&b, 16),
            timestamp: be_u32(&b, 24),
            creator_app: FourCc(four(&b, 28)),
            creator_version: be_u32(&b, 32),
            creator_os: FourCc(four(&b, 36)),
            original_size: be_u64(&b, 40),
            current_size: be_u64(&b, 48),
            geometry: Geometry {
                cylinders: be_u16(&b, 56),
                heads: b.get(58).copied().unwrap_or(0),
                sectors_per_track: b.get(59).copied().unwrap_or(0),
            },
            disk_type,
            checksum: found,
            uuid: VhdUuid(uuid),
            saved_state: b.get(84).copied().unwrap_or(0) != 0,
        })
    }

    /// A footer for a fixed VHD whose data area is `size` bytes.
    /// `timestamp` is seconds since 2000-01-01 UTC (see [`vhd_timestamp`]).
    pub fn new_fixed(size: u64, timestamp: u32, uuid: [u8; 16]) -> Result<VhdFooter, VhdError> {
        if size == 0 || !size.is_multiple_of(512) {
            return Err(VhdError::BadSize {
                size,
                next: next_multiple_of_512(size),
            });
        }
        let mut f = VhdFooter {
            features: FEATURES_RESERVED,
            format_version: FORMAT_VERSION,
            data_offset: FIXED_DATA_OFFSET,
            timestamp,
            creator_app: FourCc(CREATOR_APP),
            creator_version: CREATOR_VERSION,
            creator_os: FourCc(CREATOR_OS),
            original_size: size,
            current_size: size,
            geometry: Geometry::for_sectors(size / 512),
            disk_type: DiskType::Fixed,
            checksum: 0,
            uuid: VhdUuid(uuid),
            saved_state: false,
        };
        f.checksum = checksum(&f.to_bytes());
        Ok(f)
    }

    /// The 512 footer bytes, with the checksum recomputed.
    pub fn to_bytes(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        put(&mut b, 0, COOKIE);
        put(&mut b, 8, &self.features.to_be_bytes());
        put(&mut b, 12, &self.format_version.to_be_bytes());
        put(&mut b, 16, &self.data_offset.to_be_bytes());
        put(&mut b, 24, &self.timestamp.to_be_bytes());
        put(&mut b, 28, &self.creator_app.0);
        put(&mut b, 32, &self.creator_version.to_be_bytes());
        put(&mut b, 36, &self.creator_os.0);
        put(&mut b, 40, &self.original_size.to_be_bytes());
        put(&mut b, 48, &self.current_size.to_be_bytes());
        put(&mut b, 56, &self.geometry.cylinders.to_be_bytes());
        put(
            &mut b,
            58,
            &[self.geometry.heads, self.geometry.sectors_per_track],
        );
        put(&mut b, 60, &self.disk_type.to_u32().to_be_bytes());
        put(&mut b, 68, &self.uuid.0);
        put(&mut b, 84, &[u8::from(self.saved_state)]);
        let sum = checksum(&b);
        put(&mut b, 64, &sum.to_be_bytes());
        b
    }

    /// The discovery model's view of this footer.
    pub fn image_kind(&self) -> ImageKind {
        match self.disk_type {
            DiskType::Fixed => ImageKind::FixedVhd {
                data_size: self.current_size,
            },
            DiskType::Dynamic => ImageKind::DynamicVhd,
            DiskType::Differencing => ImageKind::DifferencingVhd,
        }
    }

    /// The creation time as a Unix timestamp.
    pub fn unix_time(&self) -> u64 {
        VHD_EPOCH_UNIX + u64::from(self.timestamp)
    }
}

/// Seconds since 2000-01-01 UTC for a Unix time, saturating at the field's
/// range (before 2000 is 0; after 2136 is the maximum).
pub fn vhd_timestamp(unix_seconds: u64) -> u32 {
    u32::try_from(unix_seconds.saturating_sub(VHD_EPOCH_UNIX)).unwrap_or(u32::MAX)
}

/// Formats a Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let secs = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The next multiple of 512 at or above `size` (saturating).
pub fn next_multiple_of_512(size: u64) -> u64 {
    size.checked_next_multiple_of(512).unwrap_or(u64::MAX - 511)
}

/// What the end of an image file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FileFooter {
    /// A valid footer whose size matches the file (for a fixed disk).
    Vhd(VhdFooter),
    /// No footer: a raw disk image, or not a disk at all.
    None,
}

/// Reads and checks the footer at the end of a file of `len` bytes.
/// `Ok(FileFooter::None)` means the cookie is absent; a footer that is
/// present but damaged is an error. For a fixed disk the file size must be
/// `current_size + 512`.
pub fn read_footer<R: Read + Seek>(r: &mut R, len: u64) -> Result<FileFooter, VhdError> {
    let start = len
        .checked_sub(FOOTER_SIZE)
        .ok_or(VhdError::TooShort { len })?;
    let mut b = [0u8; 512];
    r.seek(SeekFrom::Start(start))?;
    r.read_exact(&mut b)?;
    let footer = match VhdFooter::parse(&b) {
        Err(VhdError::BadCookie) => return Ok(FileFooter::None),
        other => other?,
    };
    if footer.disk_type == DiskType::Fixed {
        let expected = footer.current_size.checked_add(FOOTER_SIZE);
        if expected != Some(len) {
            return Err(VhdError::SizeMismatch {
                current_size: footer.current_size,
                expected: expected.unwrap_or(u64::MAX),
                file_size: len,
            });
        }
    }
    Ok(FileFooter::Vhd(footer))
}

/// Classifies an image file of `len` bytes for the discovery model. A file
/// without a footer is `Raw` when `raw_allowed`, else an error.
pub fn classify<R: Read + Seek>(
    r: &mut R,
    len: u64,
    raw_allowed: bool,
) -> Result<ImageKind, VhdError> {
    let missing = match read_footer(r, len) {
        Ok(FileFooter::Vhd(f)) => return Ok(f.image_kind()),
        Ok(FileFooter::None) => VhdError::NoFooter,
        Err(e @ VhdError::TooShort { .. }) => e,
        Err(e) => return Err(e),
    };
    // qemu-img's dynamic VHDs keep a copy of the footer at offset 0; with
    // the end footer gone the file is still a (damaged) dynamic VHD.
    if let Some(copy) = footer_copy_at_start(r)? {
        return Ok(copy.image_kind());
    }
    if !raw_allowed {
        return Err(missing);
    }
    if len == 0 || !len.is_multiple_of(512) {
        return Err(VhdError::BadSize {
            size: len,
            next: next_multiple_of_512(len),
        });
    }
    Ok(ImageKind::Raw { data_size: len })
}

/// The footer copy that dynamic and differencing VHDs keep at offset 0,
/// if there is a valid one. Fixed VHDs have none.
pub fn footer_copy_at_start<R: Read + Seek>(r: &mut R) -> Result<Option<VhdFooter>, VhdError> {
    let mut b = [0u8; 512];
    r.seek(SeekFrom::Start(0))?;
    match r.read_exact(&mut b) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    Ok(VhdFooter::parse(&b)
        .ok()
        .filter(|f| f.disk_type != DiskType::Fixed))
}

/// Why an image of this kind cannot boot, or `None` when it can sit on a
/// loop device.
pub fn kind_problem(kind: &ImageKind) -> Option<Problem> {
    match kind {
        ImageKind::FixedVhd { .. } | ImageKind::Raw { .. } => None,
        ImageKind::DynamicVhd => Some(Problem::blocking(
            "a dynamic VHD cannot sit on a loop device",
            "convert it with `vhdboot convert IN.vhd OUT.vhd` (or `qemu-img convert -O vpc -o \
             subformat=fixed IN.vhd OUT.vhd`)",
        )),
        ImageKind::DifferencingVhd => Some(Problem::blocking(
            "a differencing VHD cannot sit on a loop device (its data lives partly in a parent image)",
            "merge it into a fixed VHD with `qemu-img convert -O vpc -o subformat=fixed IN.vhd OUT.vhd`",
        )),
        ImageKind::Unreadable => Some(Problem::blocking(
            "the image could not be read",
            "run `vhdboot vhd info` on it for details",
        )),
    }
}

/// Looks for a footer left inside the data by growing a VHD with
/// `truncate`: scans back from the end over all-zero sectors (at most
/// `max_scan` bytes) and returns the offset of the first non-zero sector if
/// it holds a valid fixed footer whose size points at itself.
pub fn find_stale_footer<R: Read + Seek>(
    r: &mut R,
    len: u64,
    max_scan: u64,
) -> Result<Option<(u64, VhdFooter)>, VhdError> {
    const CHUNK: u64 = 1024 * 1024;
    let floor = len.saturating_sub(max_scan);
    let mut end = len - len % 512;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > floor {
        let start = end.saturating_sub(CHUNK).max(floor);
        let n = usize::try_from(end - start).unwrap_or(0);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        r.seek(SeekFrom::Start(start))?;
        r.read_exact(chunk)?;
        // Walk this chunk's sectors from the last one back.
        let mut at = n;
        while at >= 512 {
            at -= 512;
            let sector = chunk.get(at..at + 512).unwrap_or_default();
            if sector.iter().all(|&x| x == 0) {
                continue;
            }
            let offset = start + at as u64;
            return Ok(match VhdFooter::parse(sector) {
                Ok(f) if f.disk_type == DiskType::Fixed && f.current_size == offset => {
                    Some((offset, f))
                }
                _ => None,
            });
        }
        end = start;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const UUID: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ];

    fn fixed(size: u64) -> VhdFooter {
        VhdFooter::new_fixed(size, 1000, UUID).unwrap()
    }

    fn with_type(t: u32) -> [u8; 512] {
        let mut b = fixed(1 << 20).to_bytes();
        b[60..64].copy_from_slice(&t.to_be_bytes());
        let sum = checksum(&b);
        b[64..68].copy_from_slice(&sum.to_be_bytes());
        b
    }

    #[test]
    fn fixed_footer_round_trips() {
        let f = fixed(64 << 20);
        let bytes = f.to_bytes();
        assert_eq!(&bytes[..8], b"conectix");
        let back = VhdFooter::parse(&bytes).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.current_size, 64 << 20);
        assert_eq!(back.disk_type, DiskType::Fixed);
        assert_eq!(back.data_offset, u64::MAX);
        assert_eq!(
            back.uuid.to_string(),
            "12345678-9abc-4def-8123-456789abcdef"
        );
    }

    #[test]
    fn parse_uses_the_last_512_bytes() {
        let mut file = vec![0xAAu8; 4096];
        file.extend_from_slice(&fixed(4096).to_bytes());
        assert_eq!(VhdFooter::parse(&file).unwrap().current_size, 4096);
    }

    #[test]
    fn short_input_is_rejected() {
        assert_eq!(
            VhdFooter::parse(&[0u8; 100]),
            Err(VhdError::TooShort { len: 100 })
        );
    }

    #[test]
    fn footer_with_bad_cookie_is_rejected() {
        let mut b = fixed(1 << 20).to_bytes();
        b[0] = b'C';
        assert_eq!(VhdFooter::parse(&b), Err(VhdError::BadCookie));
    }

    #[test]
    fn footer_with_bad_checksum_is_rejected() {
        let mut b = fixed(1 << 20).to_bytes();
        let good = u32::from_be_bytes(b[64..68].try_into().unwrap());
        b[50] ^= 0x01;
        let err = VhdFooter::parse(&b).unwrap_err();
        match err {
            VhdError::BadChecksum { expected, found } => {
                assert_eq!(found, good);
                assert_ne!(expected, good);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err_text(&b).contains("expected 0x"));
    }

    fn err_text(b: &[u8]) -> String {
        VhdFooter::parse(b).unwrap_err().to_string()
    }

    #[test]
    fn dynamic_and_differencing_types_are_recognised() {
        assert_eq!(
            VhdFooter::parse(&with_type(3)).unwrap().disk_type,
            DiskType::Dynamic
        );
        assert_eq!(
            VhdFooter::parse(&with_type(4)).unwrap().disk_type,
            DiskType::Differencing
        );
    }

    #[test]
    fn unknown_disk_type_is_reported() {
        assert_eq!(
            VhdFooter::parse(&with_type(5)),
            Err(VhdError::UnknownType { value: 5 })
        );
    }

    /// Sizes and geometries written by `qemu-img create -f vpc -o
    /// subformat=fixed` (QEMU 7.2), whose geometry code follows the spec.
    #[test]
    fn geometry_matches_qemu_img() {
        let cases = [
            (67_125_760u64, (964, 8, 17)),
            (1_073_996_288, (2081, 16, 63)),
            (10_737_893_888, (20806, 16, 63)),
            (42_951_107_072, (20561, 16, 255)),
            (136_365_220_352, (65279, 16, 255)),
        ];
        for (size, (c, h, s)) in cases {
            let g = Geometry::for_sectors(size / 512);
            assert_eq!(
                (g.cylinders, g.heads, g.sectors_per_track),
                (c, h, s),
                "size {size}"
            );
        }
    }

    #[test]
    fn geometry_is_capped_for_huge_disks() {
        let g = Geometry::for_sectors(3 << 31);
        assert_eq!(
            (g.cylinders, g.heads, g.sectors_per_track),
            (65535, 16, 255)
        );
    }

    #[test]
    fn small_disk_gets_at_least_four_heads() {
        let g = Geometry::for_sectors(2048);
        assert_eq!((g.cylinders, g.heads, g.sectors_per_track), (30, 4, 17));
    }

    #[test]
    fn new_fixed_refuses_sizes_not_multiple_of_512() {
        assert_eq!(
            VhdFooter::new_fixed(1000, 0, UUID),
            Err(VhdError::BadSize {
                size: 1000,
                next: 1024
            })
        );
        assert!(VhdFooter::new_fixed(0, 0, UUID).is_err());
    }

    #[test]
    fn classify_fixed_vhd_gives_its_data_size() {
        let mut file = vec![0u8; 8192];
        file.extend_from_slice(&fixed(8192).to_bytes());
        let len = file.len() as u64;
        let kind = classify(&mut Cursor::new(file), len, false).unwrap();
        assert_eq!(kind, ImageKind::FixedVhd { data_size: 8192 });
    }

    #[test]
    fn classify_reports_a_size_mismatch_with_both_numbers() {
        let mut file = vec![0u8; 4096];
        file.extend_from_slice(&fixed(8192).to_bytes());
        let len = file.len() as u64;
        let err = classify(&mut Cursor::new(file), len, false).unwrap_err();
        assert_eq!(
            err,
            VhdError::SizeMismatch {
                current_size: 8192,
                expected: 8704,
                file_size: 4608
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("8704") && msg.contains("4608"), "{msg}");
    }

    #[test]
    fn classify_without_footer_depends_on_raw_allowed() {
        let file = vec![0u8; 8192];
        assert_eq!(
            classify(&mut Cursor::new(file.clone()), 8192, true).unwrap(),
            ImageKind::Raw { data_size: 8192 }
        );
        assert_eq!(
            classify(&mut Cursor::new(file), 8192, false),
            Err(VhdError::NoFooter)
        );
    }

    #[test]
    fn dynamic_vhd_is_classified_and_not_bootable() {
        let mut file = with_type(3).to_vec();
        file.extend_from_slice(&[0u8; 4096]);
        file.extend_from_slice(&with_type(3));
        let len = file.len() as u64;
        let kind = classify(&mut Cursor::new(file), len, false).unwrap();
        assert_eq!(kind, ImageKind::DynamicVhd);
        let p = kind_problem(&kind).unwrap();
        assert!(p.blocks_boot);
        assert!(p.what.contains("loop device"));
        assert!(p.hint.contains("subformat=fixed"));
    }

    #[test]
    fn dynamic_vhd_with_only_the_start_copy_is_still_dynamic() {
        let mut file = with_type(3).to_vec();
        file.extend_from_slice(&[0u8; 4096]);
        let len = file.len() as u64;
        let kind = classify(&mut Cursor::new(file), len, true).unwrap();
        assert_eq!(kind, ImageKind::DynamicVhd);
    }

    #[test]
    fn stale_footer_after_truncate_is_found() {
        let mut file = vec![1u8; 4096];
        file.extend_from_slice(&fixed(4096).to_bytes());
        file.resize(4096 + 512 + 3 * 512 * 1024, 0);
        let len = file.len() as u64;
        let found = find_stale_footer(&mut Cursor::new(file), len, 16 << 20).unwrap();
        assert_eq!(found.map(|(o, _)| o), Some(4096));
    }

    #[test]
    fn no_stale_footer_in_plain_data() {
        let mut file = vec![1u8; 4096];
        file.resize(8192, 0);
        let found = find_stale_footer(&mut Cursor::new(file), 8192, 16 << 20).unwrap();
        assert!(found.is_none());
    }

    #[test]
    fn timestamps_convert_from_the_2000_epoch() {
        assert_eq!(vhd_timestamp(VHD_EPOCH_UNIX + 5), 5);
        assert_eq!(vhd_timestamp(0), 0);
        assert_eq!(format_utc(VHD_EPOCH_UNIX), "2000-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
