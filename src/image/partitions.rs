//! The GPT inside an image's data area, read with the `gpt` crate.
//!
//! The crate is given a [`Window`] whose writes always fail. Before it runs,
//! the header it will use is checked here: `gpt` 4.1 asserts that entries are
//! 128 bytes and allocates `num_parts * part_size` bytes unchecked, and a
//! panic or a huge allocation in PID 1 would take the machine down.
//!
//! When the primary header is corrupt but the backup is sound, the table is
//! read from the backup (as the UEFI specification asks firmware to do) and
//! a warning says so. When both are unusable, the error names both.

use super::window::Window;
use crate::model::ByteRange;
use gpt::GptConfig;
use gpt::disk::LogicalBlockSize;
use gpt::header::{Header, HeaderError, read_header_from_arbitrary_device};
use serde::Serialize;
use std::io::{self, Read, Seek, SeekFrom};

/// Partitions are addressed in 512-byte sectors inside a VHD.
const SECTOR: u64 = 512;

/// The largest partition-entry array accepted. The UEFI default is 128
/// entries of 128 bytes (16 KiB); this leaves generous room while keeping a
/// corrupt header from asking for gigabytes.
const MAX_ENTRY_ARRAY: u64 = 1024 * 1024;

pub const ESP_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
pub const XBOOTLDR_GUID: &str = "BC13C2FF-59E6-4262-A352-B275FD6F7172";
pub const LINUX_ROOT_X86_64_GUID: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
pub const LINUX_FILESYSTEM_GUID: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// What a partition is for, from its type GUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PartitionKind {
    /// EFI system partition (FAT).
    Esp,
    /// Boot Loader Spec extended boot loader partition.
    Xbootldr,
    /// A Linux root partition for x86-64 (Discoverable Partitions Spec).
    LinuxRoot,
    /// A generic Linux filesystem partition.
    LinuxFilesystem,
    Other,
}

impl PartitionKind {
    /// Classifies an upper- or lower-case type GUID string.
    pub fn from_type_guid(guid: &str) -> PartitionKind {
        let g = guid.to_ascii_uppercase();
        match g.as_str() {
            ESP_GUID => PartitionKind::Esp,
            XBOOTLDR_GUID => PartitionKind::Xbootldr,
            LINUX_ROOT_X86_64_GUID => PartitionKind::LinuxRoot,
            LINUX_FILESYSTEM_GUID => PartitionKind::LinuxFilesystem,
            _ => PartitionKind::Other,
        }
    }
}

/// One used GPT entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// The entry's 1-based index in the table (`/dev/loop0pN`).
    pub number: u32,
    pub name: String,
    /// Upper-case, hyphenated.
    pub type_guid: String,
    /// Upper-case, hyphenated (the PARTUUID).
    pub part_guid: String,
    pub kind: PartitionKind,
    /// Where the partition lies inside the image's data area.
    pub range: ByteRange,
}

/// Which GPT header the table was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HeaderSource {
    Primary,
    /// The primary header was unusable; see `PartitionTable::warnings`.
    Backup,
}

impl std::fmt::Display for HeaderSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeaderSource::Primary => "primary",
            HeaderSource::Backup => "backup",
        })
    }
}

/// The partition table of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionTable {
    /// Upper-case, hyphenated.
    pub disk_guid: String,
    pub header: HeaderSource,
    /// Sorted by number.
    pub partitions: Vec<Partition>,
    /// Things that did not stop reading but deserve a look.
    pub warnings: Vec<String>,
}

impl PartitionTable {
    /// The partitions of one kind, in table order.
    pub fn of_kind(&self, kind: PartitionKind) -> impl Iterator<Item = &Partition> {
        self.partitions.iter().filter(move |p| p.kind == kind)
    }

    /// The EFI system partitions, in table order.
    pub fn esps(&self) -> impl Iterator<Item = &Partition> {
        self.of_kind(PartitionKind::Esp)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("reading the partition table failed while {step}: {source}")]
    Io {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "the image has no GPT{}; vhdboot boots UEFI images, which need a GPT with an EFI system partition",
        if *.mbr_only { " (only an MBR partition table)" } else { " (no partition table at all)" }
    )]
    NoGpt { mbr_only: bool },
    #[error(
        "both GPT headers are unusable (primary: {primary}; backup: {backup}); \
         the image may be damaged: check it with `sgdisk -v` or `gdisk` on a copy"
    )]
    BadHeaders { primary: String, backup: String },
    #[error(
        "the {header} GPT header declares {entry_size}-byte entries; only 128-byte entries are supported"
    )]
    UnsupportedEntrySize {
        header: HeaderSource,
        entry_size: u32,
    },
    #[error(
        "the {header} GPT header declares {count} entries of {entry_size} bytes, more than vhdboot reads ({MAX_ENTRY_ARRAY} bytes); the header is probably corrupt"
    )]
    TooManyEntries {
        header: HeaderSource,
        count: u32,
        entry_size: u32,
    },
    #[error(
        "the {header} GPT's partition entries fail their CRC check; the table is damaged: repair it with `gdisk` on a copy"
    )]
    BadEntriesCrc { header: HeaderSource },
    #[error(
        "partition {number} ends at byte {end}, past the end of the disk ({data_size} bytes); \
         the image was probably truncated or the table is wrong"
    )]
    PartitionPastEnd {
        number: u32,
        end: u64,
        data_size: u64,
    },
    #[error(
        "partition {number} has an invalid extent (first LBA {first_lba}, last LBA {last_lba})"
    )]
    BadExtent {
        number: u32,
        first_lba: u64,
        last_lba: u64,
    },
    #[error("the gpt crate rejected the table: {0}")]
    Gpt(String),
}

fn io_err(step: &'static str) -> impl FnOnce(io::Error) -> PartitionError {
    move |source| PartitionError::Io { step, source }
}

/// Reads the GPT from an image's data area `r` of `data_size` bytes.
///
/// `r` is wrapped in a read-only [`Window`] of `data_size` bytes, so the
/// backup header is looked for at the data area's last sector, not in a VHD
/// footer after it.
pub fn read_partitions<R: Read + Seek>(
    r: R,
    data_size: u64,
) -> Result<PartitionTable, PartitionError> {
    let mut disk = Window::new(r, 0, data_size);
    let lb = LogicalBlockSize::Lb512;

    let primary = read_header_from_arbitrary_device(&mut disk, lb);
    let backup = read_backup(&mut disk, data_size);

    let (header, source) = match (&primary, &backup) {
        (Ok(h), _) => (h, HeaderSource::Primary),
        (Err(_), Ok(h)) => (h, HeaderSource::Backup),
        (Err(p), Err(b)) => {
            if is_absent(p) && is_absent(b) {
                return Err(PartitionError::NoGpt {
                    mbr_only: has_plain_mbr(&mut disk)?,
                });
            }
            return Err(PartitionError::BadHeaders {
                primary: describe(p),
                backup: describe(b),
            });
        }
    };
    check_entry_array(header, source)?;

    let mut warnings = Vec::new();
    if let Err(e) = &primary {
        warnings.push(format!(
            "the primary GPT header is unusable ({}); the table was read from the backup header. \
             Repair the image with `gdisk` (it rewrites the primary from the backup) on a copy",
            describe(e)
        ));
    } else if let Err(e) = &backup {
        warnings.push(format!(
            "the backup GPT header at the last sector is unusable ({}); \
             if the image was resized, fix it with `sgdisk -e`",
            describe(e)
        ));
    }

    disk.seek(SeekFrom::Start(0))
        .map_err(io_err("rewinding the image"))?;
    let gpt = GptConfig::new()
        .writable(false)
        .logical_block_size(lb)
        .only_valid_headers(false)
        .open_from_device(disk)
        .map_err(|e| map_gpt_error(e, source))?;

    let disk_guid = gpt.guid().to_string().to_ascii_uppercase();
    let mut partitions = Vec::new();
    for (&number, p) in gpt.partitions() {
        if !p.is_used() {
            continue;
        }
        let bad_extent = || PartitionError::BadExtent {
            number,
            first_lba: p.first_lba,
            last_lba: p.last_lba,
        };
        let offset = p.bytes_start(lb).map_err(|_| bad_extent())?;
        let len = p.bytes_len(lb).map_err(|_| bad_extent())?;
        let end = offset.checked_add(len).ok_or_else(bad_extent)?;
        if end > data_size {
            return Err(PartitionError::PartitionPastEnd {
                number,
                end,
                data_size,
            });
        }
        let type_guid = p.part_type_guid.guid.to_string().to_ascii_uppercase();
        partitions.push(Partition {
            number,
            name: p.name.clone(),
            kind: PartitionKind::from_type_guid(&type_guid),
            type_guid,
            part_guid: p.part_guid.to_string().to_ascii_uppercase(),
            range: ByteRange { offset, len },
        });
    }
    Ok(PartitionTable {
        disk_guid,
        header: source,
        partitions,
        warnings,
    })
}

/// Reads the header in the last sector. A window starting one sector before
/// it makes the crate's "primary" reader (which reads the window's sector 1)
/// read it, CRC check included.
fn read_backup<R: Read + Seek>(
    disk: &mut Window<R>,
    data_size: u64,
) -> Result<Header, HeaderError> {
    let start = data_size
        .checked_sub(2 * SECTOR)
        .filter(|_| data_size >= 3 * SECTOR)
        .ok_or(HeaderError::ToSmallForBackup)?;
    let mut last = Window::new(&mut *disk, start, 2 * SECTOR);
    read_header_from_arbitrary_device(&mut last, LogicalBlockSize::Lb512)
}

/// True when the header simply is not there (rather than damaged).
fn is_absent(e: &HeaderError) -> bool {
    matches!(
        e,
        HeaderError::InvalidGptSignature | HeaderError::ToSmallForBackup | HeaderError::Io(_)
    )
}

fn describe(e: &HeaderError) -> String {
    match e {
        HeaderError::InvalidGptSignature => "no \"EFI PART\" signature".to_string(),
        HeaderError::InvalidCRC32Checksum => "header CRC32 mismatch".to_string(),
        HeaderError::ToSmallForBackup => "disk too small for a backup header".to_string(),
        HeaderError::Io(e) => format!("read error: {e}"),
        other => other.to_string(),
    }
}

/// Guards the crate's `assert_eq!(part_size, 128)` and its unchecked
/// allocation of the entry array.
fn check_entry_array(h: &Header, header: HeaderSource) -> Result<(), PartitionError> {
    if h.part_size != 128 {
        return Err(PartitionError::UnsupportedEntrySize {
            header,
            entry_size: h.part_size,
        });
    }
    let bytes = u64::from(h.num_parts) * u64::from(h.part_size);
    if bytes > MAX_ENTRY_ARRAY {
        return Err(PartitionError::TooManyEntries {
            header,
            count: h.num_parts,
            entry_size: h.part_size,
        });
    }
    Ok(())
}

/// True when sector 0 holds an MBR signature without a protective (0xEE)
/// entry: a disk partitioned the BIOS way.
fn has_plain_mbr<R: Read + Seek>(disk: &mut Window<R>) -> Result<bool, PartitionError> {
    let mut mbr = [0u8; 512];
    disk.seek(SeekFrom::Start(0))
        .map_err(io_err("reading the MBR"))?;
    match disk.read_exact(&mut mbr) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(io_err("reading the MBR")(e)),
    }
    if mbr.get(510..512) != Some(&[0x55, 0xAA][..]) {
        return Ok(false);
    }
    // Four 16-byte entries from offset 446; the type byte is at +4.
    let types = (0..4).filter_map(|i| mbr.get(446 + i * 16 + 4).copied());
    let mut any = false;
    for t in types {
        if t == 0xEE {
            return Ok(false);
        }
        any |= t != 0;
    }
    Ok(any)
}

fn map_gpt_error(e: gpt::GptError, header: HeaderSource) -> PartitionError {
    match e {
        gpt::GptError::Io(io) if io.to_string().contains("CRC mismatch") => {
            PartitionError::BadEntriesCrc { header }
        }
        gpt::GptError::Io(source) => PartitionError::Io {
            step: "reading the GPT partition entries",
            source,
        },
        other => PartitionError::Gpt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn blank_disk_has_no_gpt() {
        let disk = Cursor::new(vec![0u8; 64 * 1024]);
        let err = read_partitions(disk, 64 * 1024).unwrap_err();
        assert!(
            matches!(err, PartitionError::NoGpt { mbr_only: false }),
            "{err}"
        );
    }

    #[test]
    fn mbr_only_disk_is_named_as_such() {
        let mut bytes = vec![0u8; 64 * 1024];
        bytes[446 + 4] = 0x83;
        bytes[510] = 0x55;
        bytes[511] = 0xAA;
        let err = read_partitions(Cursor::new(bytes), 64 * 1024).unwrap_err();
        assert!(
            matches!(err, PartitionError::NoGpt { mbr_only: true }),
            "{err}"
        );
        assert!(err.to_string().contains("only an MBR"));
    }

    #[test]
    fn partition_kinds_follow_type_guids() {
        assert_eq!(
            PartitionKind::from_type_guid(&ESP_GUID.to_lowercase()),
            PartitionKind::Esp
        );
        assert_eq!(
            PartitionKind::from_type_guid(XBOOTLDR_GUID),
            PartitionKind::Xbootldr
        );
        assert_eq!(
            PartitionKind::from_type_guid(LINUX_ROOT_X86_64_GUID),
            PartitionKind::LinuxRoot
        );
        assert_eq!(
            PartitionKind::from_type_guid("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"),
            PartitionKind::Other
        );
    }
}
