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
//! [`load_payload`] (in `payload.rs`) reads the big parts when an entry is
//! booted.

use super::bls::{BlsEntry, compare_versions};
use super::bytes::pad4;
use super::bzimage::is_bzimage;
use super::esp::{Esp, EspError};
use super::partitions::{Partition, PartitionKind, read_partitions};
use super::uki::{UkiError, UkiInfo, UkiSection};
use super::vhd::{classify, kind_problem};
use super::window::Window;
use crate::model::{BootEntry, ByteRange, EntrySource, ImageKind, Problem};
use serde::Serialize;
use std::io::{Read, Seek};

pub use super::payload::{
    INITRD_CAP, KERNEL_CAP, Payload, PayloadError, StreamedPayload, load_payload, stream_payload,
};

/// Where UKIs live (Boot Loader Spec type #2).
pub const UKI_DIR: &str = "/EFI/Linux";
/// Where type #1 entries live.
pub const ENTRIES_DIR: &str = "/loader/entries";
/// An entry file is a few hundred bytes; this only stops a bogus size.
const CONF_CAP: u64 = 64 * 1024;

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
    info.require(UkiSection::Linux)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
