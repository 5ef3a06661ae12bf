//! What an image holds: its kind (from the footer), its partitions, each
//! EFI system partition and XBOOTLDR partition, and the boot entries on
//! them (UKIs in `/EFI/Linux`, Boot Loader Spec entries in
//! `/loader/entries`).
//!
//! Stage 1 runs [`inspect`] on every image before showing the menu, so it
//! reads only the footer, the GPT, FAT metadata and directories, the PE
//! headers and the small UKI sections; never a kernel or an initrd. It
//! never fails: whatever goes wrong becomes a [`Problem`] with a hint, so
//! the menu can still list the image and say why it cannot boot.
//! [`load_payload`] reads the big parts when an entry is booted.

use super::bls::{BlsEntry, compare_versions};
use super::esp::{Esp, EspError};
use super::partitions::{Partition, PartitionKind, read_partitions};
use super::uki::{UkiError, UkiInfo, is_bzimage};
use super::vhd::{classify, kind_problem};
use super::window::Window;
use crate::model::{BootEntry, ByteRange, EntrySource, ImageKind, Problem};
use serde::Serialize;
use std::io::{Read, Seek};

/// Where UKIs live (Boot Loader Spec type #2).
pub const UKI_DIR: &str = "/EFI/Linux";
/// Where type #1 entries live.
pub const ENTRIES_DIR: &str = "/loader/entries";
/// An entry file is a few hundred bytes; this only stops a bogus size.
const CONF_CAP: u64 = 64 * 1024;
/// The largest kernel and initrd [`load_payload`] will read into memory.
pub const KERNEL_CAP: u64 = 512 * 1024 * 1024;
pub const INITRD_CAP: u64 = 2 * 1024 * 1024 * 1024;

/// One boot partition (an ESP or XBOOTLDR) and what was found on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EspReport {
    /// The GPT entry number (`/dev/loop0pN`).
    pub number: u32,
    pub kind: PartitionKind,
    pub range: ByteRange,
    /// The FAT volume label, or None when the partition is not FAT.
    pub label: Option<String>,
    /// Paths of the `.efi` files in `/EFI/Linux`, readable or not.
    pub ukis: Vec<String>,
    /// Paths of the `.conf` files in `/loader/entries`.
    pub bls_entries: Vec<String>,
}

/// Everything [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub kind: ImageKind,
    pub partitions: Vec<Partition>,
    pub esps: Vec<EspReport>,
    /// Newest kernel version first.
    pub entries: Vec<BootEntry>,
    pub problems: Vec<Problem>,
}

/// Inspects an image file of `file_len` bytes. `raw_allowed` accepts a
/// file without a VHD footer as a raw disk.
pub fn inspect<R: Read + Seek>(r: &mut R, file_len: u64, raw_allowed: bool) -> Inspection {
    let mut out = Inspection {
        kind: ImageKind::Unreadable,
        partitions: Vec::new(),
        esps: Vec::new(),
        entries: Vec::new(),
        problems: Vec::new(),
    };
    match classify(r, file_len, raw_allowed) {
        Ok(kind) => out.kind = kind,
        Err(e) => {
            out.problems.push(Problem::blocking(
                format!("the image's footer is unusable: {e}"),
                "`vhdboot vhd info IMAGE` shows the footer in detail",
            ));
            return out;
        }
    }
    if let Some(p) = kind_problem(&out.kind) {
        out.problems.push(p);
    }
    let Some(data_size) = out.kind.data_size() else {
        return out;
    };
    let table = match read_partitions(&mut *r, data_size) {
        Ok(t) => t,
        Err(e) => {
            out.problems.push(Problem::blocking(
                format!("cannot read the partition table: {e}"),
                "`sfdisk --list IMAGE` shows what the image holds; vhdboot needs a GPT with an EFI system partition",
            ));
            return out;
        }
    };
    for w in &table.warnings {
        out.problems.push(Problem::warning(
            format!("partition table: {w}"),
            "the image can still boot; repair the table on a copy when convenient",
        ));
    }
    out.partitions = table.partitions;
    let boot_parts: Vec<Partition> = out
        .partitions
        .iter()
        .filter(|p| matches!(p.kind, PartitionKind::Esp | PartitionKind::Xbootldr))
        .cloned()
        .collect();
    if boot_parts.is_empty() {
        out.problems.push(Problem::blocking(
            "the image has no EFI system partition",
            "vhdboot boots UEFI installs: install the OS with an ESP (GPT type C12A7328-F81F-11D2-BA4B-00A0C93EC93B)",
        ));
        return out;
    }
    for part in &boot_parts {
        let report = scan_boot_partition(r, part, &mut out.entries, &mut out.problems);
        out.esps.push(report);
    }
    // Newest kernel first; entries without a version keep their order, last.
    out.entries.sort_by(|a, b| match (&a.version, &b.version) {
        (Some(x), Some(y)) => compare_versions(y, x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    if out.entries.is_empty() {
        out.problems.push(Problem::blocking(
            format!("no boot entries: no usable UKI in {UKI_DIR} and no usable entry in {ENTRIES_DIR} on any EFI system or XBOOTLDR partition"),
            "inside the OS, install a unified kernel image (kernel-install with layout=uki, or ukify) or Boot Loader Spec entries",
        ));
    }
    out
}

/// Names a partition in messages: "EFI system partition 1".
fn part_label(kind: PartitionKind, number: u32) -> String {
    match kind {
        PartitionKind::Xbootldr => format!("XBOOTLDR partition {number}"),
        _ => format!("EFI system partition {number}"),
    }
}

fn scan_boot_partition<R: Read + Seek>(
    r: &mut R,
    part: &Partition,
    entries: &mut Vec<BootEntry>,
    problems: &mut Vec<Problem>,
) -> EspReport {
    let where_ = part_label(part.kind, part.number);
    let mut report = EspReport {
        number: part.number,
        kind: part.kind,
        range: part.range,
        label: None,
        ukis: Vec::new(),
        bls_entries: Vec::new(),
    };
    let esp = match Esp::open(Window::new(&mut *r, part.range.offset, part.range.len)) {
        Ok(esp) => esp,
        Err(e) => {
            problems.push(Problem::warning(
                format!("{where_}: {e}"),
                "vhdboot reads boot entries only from FAT partitions; check it with `fsck.vfat -n` on a copy",
            ));
            return report;
        }
    };
    report.label = Some(esp.volume_label());

    for file in list_files(&esp, UKI_DIR, ".efi", &where_, problems) {
        let path = format!("{UKI_DIR}/{}", file.name);
        report.ukis.push(path.clone());
        match read_uki_entry(&esp, part.range, &path, &file.name, file.size) {
            // A kernel that is not a bzImage is one kexec_file_load refuses
            // on x86, so the entry is not offered (as with an unreadable
            // UKI): its image still boots through its other entries, and
            // with none left, "no boot entries" blocks it.
            Ok((_, Some(w))) => problems.push(Problem::warning(
                format!("{where_}: {path} cannot boot: {w}"),
                "kexec_file_load accepts only an x86 bzImage; rebuild the UKI with one (the other entries can still boot)",
            )),
            Ok((entry, None)) => entries.push(entry),
            Err(e) => problems.push(Problem::warning(
                format!("{where_}: {path} is not a usable UKI: {e}"),
                "the other entries can still boot; reinstall this kernel inside the OS",
            )),
        }
    }

    for file in list_files(&esp, ENTRIES_DIR, ".conf", &where_, problems) {
        let path = format!("{ENTRIES_DIR}/{}", file.name);
        report.bls_entries.push(path.clone());
        match read_bls_entry(&esp, part.range, &path, &file.name) {
            Ok(entry) => entries.push(entry),
            Err(what) => problems.push(Problem::warning(
                format!("{where_}: {path}: {what}"),
                "the other entries can still boot; reinstall this kernel inside the OS (kernel-install add)",
            )),
        }
    }
    report
}

/// The regular files in `dir` whose names end with `suffix` (any case),
/// sorted by name. A missing directory is normal and gives nothing.
fn list_files<R: Read + Seek>(
    esp: &Esp<R>,
    dir: &str,
    suffix: &str,
    where_: &str,
    problems: &mut Vec<Problem>,
) -> Vec<super::esp::EspEntry> {
    match esp.list_dir(dir) {
        Ok(mut list) => {
            list.retain(|e| !e.is_dir && e.name.to_ascii_lowercase().ends_with(suffix));
            list.sort_by(|a, b| a.name.cmp(&b.name));
            list
        }
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            problems.push(Problem::warning(
                format!("{where_}: cannot list {dir}: {e}"),
                "check the partition with `fsck.vfat -n` on a copy",
            ));
            Vec::new()
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum UkiEntryError {
    #[error(transparent)]
    Esp(#[from] EspError),
    #[error(transparent)]
    Uki(#[from] UkiError),
}

/// Reads one UKI's headers and small sections into a boot entry, plus a
/// warning when `.linux` does not look like a bzImage.
fn read_uki_entry<R: Read + Seek>(
    esp: &Esp<R>,
    range: ByteRange,
    path: &str,
    file_name: &str,
    size: u64,
) -> Result<(BootEntry, Option<String>), UkiEntryError> {
    let mut file = esp.open_file(path)?;
    let info = UkiInfo::read_with_len(&mut file, size)?;
    info.require(".linux")?;
    let prefix = info.read_kernel_prefix(&mut file)?;
    let warning = (!is_bzimage(&prefix))
        .then(|| "its .linux section is not an x86 bzImage (no \"HdrS\" at 0x202)".to_string());
    let entry = BootEntry {
        title: info.title(file_name),
        version: info.uname.clone(),
        cmdline: info.cmdline.clone().unwrap_or_default(),
        source: EntrySource::Uki {
            esp: range,
            path: path.to_string(),
        },
        kernel_size: info.kernel_size(),
        initrd_size: info.initrd_size(),
    };
    Ok((entry, warning))
}

/// BLS paths are relative to the root of the partition holding the entry.
fn bls_path(p: &str) -> String {
    format!("/{}", p.trim_start_matches('/'))
}

/// Reads one type #1 entry and checks that its kernel and initrds exist.
/// The error is a sentence for a [`Problem`].
fn read_bls_entry<R: Read + Seek>(
    esp: &Esp<R>,
    range: ByteRange,
    path: &str,
    file_name: &str,
) -> Result<BootEntry, String> {
    let bytes = esp.read_file(path, CONF_CAP).map_err(|e| e.to_string())?;
    let bls = BlsEntry::parse_bytes(&bytes);
    let Some(linux) = bls.linux.as_deref().map(bls_path) else {
        return Err(match bls.efi {
            Some(efi) => {
                format!("the entry starts an EFI program ({efi}), which vhdboot cannot kexec")
            }
            None => "the entry has no `linux` line".to_string(),
        });
    };
    let kernel_size = esp
        .file_size(&linux)
        .map_err(|e| format!("its kernel is unusable: {e}"))?;
    let initrd: Vec<String> = bls.initrd.iter().map(|i| bls_path(i)).collect();
    let mut initrd_size = 0u64;
    for i in &initrd {
        let size = esp
            .file_size(i)
            .map_err(|e| format!("its initrd is unusable: {e}"))?;
        initrd_size = initrd_size.saturating_add(pad4(size));
    }
    Ok(BootEntry {
        title: bls.display_title(file_name),
        version: bls.version.clone(),
        cmdline: bls.cmdline(),
        source: EntrySource::Bls {
            esp: range,
            conf: path.to_string(),
            linux,
            initrd,
        },
        kernel_size,
        initrd_size,
    })
}

/// The size rounded up to 4 bytes: concatenated cpio archives must each
/// start 4-byte aligned for the kernel to unpack them all.
fn pad4(n: u64) -> u64 {
    n.saturating_add(3) & !3
}

/// What a boot needs in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
    pub cmdline: String,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("kernel", &self.kernel.len())
            .field("initrd", &self.initrd.len())
            .field("cmdline", &self.cmdline)
            .finish()
    }
}

/// Messages are complete on their own (see `UkiError`). They name the
/// partition by its byte offset and the file; the caller adds the image.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error(
        "the entry's partition (bytes {offset}..{end}) lies outside the image's {data_size} data bytes; the image changed since it was scanned, rescan"
    )]
    OutsideImage {
        offset: u64,
        end: u64,
        data_size: u64,
    },
    #[error("the EFI partition at byte offset {esp_offset}: {cause}")]
    Esp { esp_offset: u64, cause: EspError },
    #[error("{path} on the EFI partition at byte offset {esp_offset}: {cause}")]
    Uki {
        esp_offset: u64,
        path: String,
        cause: UkiError,
    },
    #[error("{path} on the EFI partition at byte offset {esp_offset}: {cause}")]
    File {
        esp_offset: u64,
        path: String,
        cause: EspError,
    },
    #[error(
        "{path} on the EFI partition at byte offset {esp_offset} is {size} bytes, more than the {cap} bytes vhdboot loads; the file is damaged or not a kernel/initrd"
    )]
    TooLarge {
        esp_offset: u64,
        path: String,
        size: u64,
        cap: u64,
    },
    #[error(
        "{path} on the EFI partition at byte offset {esp_offset}: its directory entry says {size} bytes, more than the whole {esp_len}-byte partition holds; the file system is damaged: check it with `fsck.vfat -n` on a copy, or reinstall this kernel inside the OS"
    )]
    LargerThanPartition {
        esp_offset: u64,
        path: String,
        size: u64,
        esp_len: u64,
    },
    #[error(
        "cannot allocate {size} bytes for {path}; the machine has too little memory for this kernel and initrd"
    )]
    OutOfMemory { path: String, size: u64 },
}

/// Reads the kernel, initrd and command line of an entry from an image's
/// data area of `data_size` bytes. For a UKI these are its `.linux`,
/// `.initrd` and `.cmdline` sections; for a type #1 entry, its `linux`
/// file, its `initrd` files concatenated (each padded to 4 bytes) and its
/// `options`.
pub fn load_payload<R: Read + Seek>(
    r: &mut R,
    data_size: u64,
    source: &EntrySource,
) -> Result<Payload, PayloadError> {
    let range = match source {
        EntrySource::Uki { esp, .. } | EntrySource::Bls { esp, .. } => *esp,
    };
    let end = range.offset.saturating_add(range.len);
    if end > data_size {
        return Err(PayloadError::OutsideImage {
            offset: range.offset,
            end,
            data_size,
        });
    }
    let esp_offset = range.offset;
    let esp = Esp::open(Window::new(&mut *r, range.offset, range.len))
        .map_err(|cause| PayloadError::Esp { esp_offset, cause })?;
    let file_err = |path: &str| {
        let path = path.to_string();
        move |cause| PayloadError::File {
            esp_offset,
            path,
            cause,
        }
    };
    match source {
        EntrySource::Uki { path, .. } => {
            let uki_err = |cause| PayloadError::Uki {
                esp_offset,
                path: path.clone(),
                cause,
            };
            let size = esp.file_size(path).map_err(file_err(path))?;
            // Sections are checked against this size, and read_section
            // reserves a section's whole size up front: bound it by what
            // the partition can hold, or a small corrupt disk could make
            // PID 1 reserve gigabytes.
            check_fits(&esp, esp_offset, path, size)?;
            let mut file = esp.open_file(path).map_err(file_err(path))?;
            let info = UkiInfo::read_with_len(&mut file, size).map_err(uki_err)?;
            let kernel = info.read_section(&mut file, ".linux").map_err(uki_err)?;
            let initrd = match info.section(".initrd") {
                Some(_) => info.read_section(&mut file, ".initrd").map_err(uki_err)?,
                None => Vec::new(),
            };
            Ok(Payload {
                kernel,
                initrd,
                cmdline: info.cmdline.unwrap_or_default(),
            })
        }
        EntrySource::Bls {
            conf,
            linux,
            initrd,
            ..
        } => {
            let bytes = esp.read_file(conf, CONF_CAP).map_err(file_err(conf))?;
            let cmdline = BlsEntry::parse_bytes(&bytes).cmdline();
            let kernel = read_whole(&esp, esp_offset, linux, KERNEL_CAP)?;
            let mut initrd_bytes = Vec::new();
            for i in initrd {
                let part = read_whole(&esp, esp_offset, i, INITRD_CAP)?;
                let padded = usize::try_from(pad4(part.len() as u64)).unwrap_or(usize::MAX);
                initrd_bytes
                    .try_reserve(padded)
                    .map_err(|_| PayloadError::OutOfMemory {
                        path: i.clone(),
                        size: padded as u64,
                    })?;
                initrd_bytes.extend_from_slice(&part);
                initrd_bytes.resize(initrd_bytes.len() + (padded - part.len()), 0);
            }
            Ok(Payload {
                kernel,
                initrd: initrd_bytes,
                cmdline,
            })
        }
    }
}

/// Refuses a file whose directory entry claims more bytes than its whole
/// partition: such a size is corrupt, and trusting it would reserve memory
/// the disk cannot fill.
fn check_fits<R: Read + Seek>(
    esp: &Esp<R>,
    esp_offset: u64,
    path: &str,
    size: u64,
) -> Result<(), PayloadError> {
    if size > esp.len() {
        return Err(PayloadError::LargerThanPartition {
            esp_offset,
            path: path.to_string(),
            size,
            esp_len: esp.len(),
        });
    }
    Ok(())
}

/// Reads a whole file, with its size checked against `cap` and the buffer
/// reserved fallibly: PID 1 must not abort on a bogus size.
fn read_whole<R: Read + Seek>(
    esp: &Esp<R>,
    esp_offset: u64,
    path: &str,
    cap: u64,
) -> Result<Vec<u8>, PayloadError> {
    let file_err = |cause| PayloadError::File {
        esp_offset,
        path: path.to_string(),
        cause,
    };
    let size = esp.file_size(path).map_err(file_err)?;
    check_fits(esp, esp_offset, path, size)?;
    if size > cap {
        return Err(PayloadError::TooLarge {
            esp_offset,
            path: path.to_string(),
            size,
            cap,
        });
    }
    let mut buf = Vec::new();
    let want = usize::try_from(size).unwrap_or(usize::MAX);
    buf.try_reserve_exact(want)
        .map_err(|_| PayloadError::OutOfMemory {
            path: path.to_string(),
            size,
        })?;
    let file = esp.open_file(path).map_err(file_err)?;
    file.take(size)
        .read_to_end(&mut buf)
        .map_err(|e| PayloadError::File {
            esp_offset,
            path: path.to_string(),
            cause: EspError::Io {
                path: path.to_string(),
                source: e,
            },
        })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad4_rounds_up_to_four_bytes() {
        assert_eq!(pad4(0), 0);
        assert_eq!(pad4(1), 4);
        assert_eq!(pad4(4), 4);
        assert_eq!(pad4(4097), 4100);
    }

    #[test]
    fn bls_paths_are_rooted() {
        assert_eq!(bls_path("vmlinuz"), "/vmlinuz");
        assert_eq!(bls_path("/a/b"), "/a/b");
    }

    #[test]
    fn empty_file_is_unreadable_with_a_problem() {
        let mut r = std::io::Cursor::new(Vec::<u8>::new());
        let i = inspect(&mut r, 0, false);
        assert_eq!(i.kind, ImageKind::Unreadable);
        assert_eq!(i.problems.len(), 1);
        assert!(i.problems[0].blocks_boot);
    }
}
