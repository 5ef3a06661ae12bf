//! What an image holds: its kind (from the footer), its partitions, each
//! EFI system partition and XBOOTLDR partition, and the boot entries on
//! them (UKIs in `/EFI/Linux`, Boot Loader Spec entries in
//! `/loader/entries`), and the kernels in `/boot` of every ext4 Linux
//! partition (`boot_dir.rs`).
//!
//! Stage 1 runs [`inspect`] on every image before showing the menu, so it
//! reads only the footer, the GPT, FAT and ext4 metadata and directories,
//! the PE headers, the small UKI sections and small text files; never a
//! kernel or an initrd. It
//! never fails: whatever goes wrong becomes a [`Problem`] with a hint, so
//! the menu can still list the image and say why it cannot boot.
//! [`load_payload`] (in `payload.rs`) reads the big parts when an entry is
//! booted.

use super::bls::BlsEntry;
use super::boot_dir::{BootDir, read_boot_dir, settle};
use super::bytes::pad4;
use super::bzimage::is_bzimage;
use super::esp::{Esp, EspEntry, EspError};
use super::ext4_window::{Ext4OpenError, with_ext4};
use super::partitions::{Partition, PartitionKind, read_partitions};
use super::uki::{UkiError, UkiInfo, UkiSection};
use super::version::compare_versions;
use super::vhd::{classify, kind_problem};
use super::window::Window;
use crate::model::{BootEntry, ByteRange, EntrySource, ImageKind, KernelFs, Problem};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

pub use super::payload::{
    INITRD_CAP, KERNEL_CAP, Payload, PayloadError, StreamedPayload, load_payload, stream_payload,
};

/// Where UKIs live (Boot Loader Spec type #2).
pub const UKI_DIR: &str = "/EFI/Linux";
/// Where type #1 entries live.
pub const ENTRIES_DIR: &str = "/loader/entries";
/// An entry file is a few hundred bytes; this only stops a bogus size.
const CONF_CAP: u64 = 64 * 1024;

/// The most ESP and XBOOTLDR partitions read per image. The Boot Loader
/// Spec expects one of each; a few more (a second disk's ESP copied in)
/// are plausible, dozens are not, and each costs a FAT mount.
pub const MAX_BOOT_PARTITIONS: usize = 8;
/// The most UKIs read from one partition's `/EFI/Linux`. kernel-install
/// keeps a few kernels per OS (installonly_limit is 3 on Fedora); 64 is
/// room for many OSes sharing an ESP, while each UKI costs header reads.
pub const MAX_UKIS_PER_ESP: usize = 64;
/// The most `.conf` files read from one partition's `/loader/entries`:
/// room for dozens of kernels and their rescue entries; each file is read
/// whole (up to 64 KiB).
pub const MAX_BLS_FILES_PER_ESP: usize = 256;
/// The most boot entries kept per image: more than a menu can show in a
/// useful way, and each entry holds a command line of up to 2 KiB.
pub const MAX_ENTRIES_PER_IMAGE: usize = 256;
/// Titles and versions are cut to this many characters when an entry is
/// built: a menu line is at most a few hundred columns wide, and a 1 MiB
/// string kept per entry is memory spent on nothing.
pub const MAX_DISPLAY_CHARS: usize = 256;
/// The x86 kernel's COMMAND_LINE_SIZE, counting the terminating NUL; the
/// same number as `boot::plan::MAX_CMDLINE`, which `image` cannot import
/// (`boot` builds on `image`). An entry whose own line is this long cannot
/// boot whatever the handoff adds, so discovery refuses it with the reason.
pub const KERNEL_CMDLINE_SIZE: usize = 2048;

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

/// Reads `/boot` of a btrfs or xfs partition, which needs the kernel's
/// driver: a read-only loop device over the partition's bytes and a
/// read-only mount without log replay. Pure code cannot make either, so
/// the caller that may (the probe child, `vhdboot inspect` as root) hands
/// one to [`inspect_with`].
pub trait MountedBoot {
    /// The boot directory of `part`, whose superblock says it is `fs` with
    /// the UUID `uuid`; the error is a sentence for a warning.
    fn read_boot_dir(
        &mut self,
        part: &Partition,
        fs: KernelFs,
        uuid: String,
    ) -> Result<MountedDir, String>;
}

/// A filesystem read through a mount, and the btrfs subvolume it was
/// read from.
type MountedFs = (KernelFs, Option<String>);

/// What a [`MountedBoot`] read from one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedDir {
    pub dir: BootDir,
    /// The btrfs subvolume it was read from, when not the default one.
    pub subvol: Option<String>,
}

/// Inspects an image file of `file_len` bytes. `raw_allowed` accepts a
/// file without a VHD footer as a raw disk. btrfs and xfs partitions are
/// named in the problems, not read: see [`inspect_with`].
pub fn inspect<R: Read + Seek>(r: &mut R, file_len: u64, raw_allowed: bool) -> Inspection {
    inspect_with(r, file_len, raw_allowed, None)
}

/// [`inspect`], reading the `/boot` of btrfs and xfs partitions through
/// `mounted` when given.
pub fn inspect_with<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
    raw_allowed: bool,
    mounted: Option<&mut dyn MountedBoot>,
) -> Inspection {
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
    let boot_parts = boot_partitions(&out.partitions, &mut out.problems);
    // Kernels in /boot on ext4 need no ESP: an image without one boots
    // when its root (or /boot) filesystem holds them.
    let unread = scan_linux_partitions(
        r,
        &out.partitions,
        mounted,
        &mut out.entries,
        &mut out.problems,
    );
    let unread = unread_linux_filesystems(&unread);
    if boot_parts.is_empty() && out.entries.is_empty() {
        out.problems.push(Problem::blocking(
            format!("the image has no EFI system partition{unread}"),
            "vhdboot boots UEFI installs and kernels in /boot on ext4, btrfs or xfs: install the OS with an ESP (GPT type C12A7328-F81F-11D2-BA4B-00A0C93EC93B) or with /boot on its root filesystem",
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
    if out.entries.len() > MAX_ENTRIES_PER_IMAGE {
        out.problems.push(Problem::warning(
            format!(
                "the image has {} boot entries; only the newest {MAX_ENTRIES_PER_IMAGE} are listed",
                out.entries.len()
            ),
            "remove old kernels inside the OS (kernel-install remove) so the menu stays short",
        ));
        out.entries.truncate(MAX_ENTRIES_PER_IMAGE);
    }
    if out.entries.is_empty() {
        out.problems.push(Problem::blocking(
            format!("no boot entries: no usable UKI in {UKI_DIR} and no usable entry in {ENTRIES_DIR} on any EFI system or XBOOTLDR partition{unread}"),
            "inside the OS, install a unified kernel image (kernel-install with layout=uki, or ukify) or Boot Loader Spec entries",
        ));
    }
    out
}

/// The ESP and XBOOTLDR partitions to read: each byte range once (a GPT
/// may list the same range many times) and at most
/// [`MAX_BOOT_PARTITIONS`], with a warning for what was left out.
fn boot_partitions(partitions: &[Partition], problems: &mut Vec<Problem>) -> Vec<Partition> {
    let mut out: Vec<Partition> = Vec::new();
    let mut repeats = 0usize;
    let mut over = 0usize;
    for p in partitions
        .iter()
        .filter(|p| matches!(p.kind, PartitionKind::Esp | PartitionKind::Xbootldr))
    {
        if out.iter().any(|q| q.range == p.range) {
            repeats += 1;
        } else if out.len() >= MAX_BOOT_PARTITIONS {
            over += 1;
        } else {
            out.push(p.clone());
        }
    }
    if repeats > 0 {
        problems.push(Problem::warning(
            format!(
                "partition table: {repeats} more GPT entries repeat the byte range of an EFI system or XBOOTLDR partition; each range was read once"
            ),
            "the table is damaged or was made by hand: check it with `sgdisk -v` on a copy",
        ));
    }
    if over > 0 {
        problems.push(Problem::warning(
            format!(
                "partition table: the image has {} EFI system and XBOOTLDR partitions; only the first {MAX_BOOT_PARTITIONS} were read",
                MAX_BOOT_PARTITIONS + over
            ),
            "an image needs one EFI system partition; remove the extra ones on a copy",
        ));
    }
    out
}

/// The Linux partitions (root and generic filesystem) that may hold ext4:
/// each byte range once, at most [`MAX_BOOT_PARTITIONS`].
fn linux_partitions(partitions: &[Partition]) -> Vec<Partition> {
    let mut out: Vec<Partition> = Vec::new();
    for p in partitions.iter().filter(|p| {
        matches!(
            p.kind,
            PartitionKind::LinuxRoot | PartitionKind::LinuxFilesystem
        )
    }) {
        if out.len() == MAX_BOOT_PARTITIONS {
            break;
        }
        if !out.iter().any(|q| q.range == p.range) {
            out.push(p.clone());
        }
    }
    out
}

/// Filesystems whose `/boot` only the kernel's driver reads, by the magic
/// of their superblock: btrfs (`_BHRfS_M` at 64 KiB + 0x40) and xfs
/// (`XFSB` at the start), with where each keeps its UUID (btrfs' fsid at
/// 64 KiB + 0x20, xfs' sb_uuid at 0x20), which blkid reports and
/// `root=UUID=` names.
const KERNEL_FILESYSTEMS: [(KernelFs, u64, &[u8], u64); 2] = [
    (KernelFs::Btrfs, 0x1_0040, b"_BHRfS_M", 0x1_0020),
    (KernelFs::Xfs, 0, b"XFSB", 0x20),
];

/// The filesystem on `part` and its UUID when it is one of
/// [`KERNEL_FILESYSTEMS`], else None (ext4, swap, empty, unreadable).
/// Each probe reads at most 24 bytes, inside the partition.
fn kernel_filesystem<R: Read + Seek>(r: &mut R, part: &Partition) -> Option<(KernelFs, String)> {
    let mut read_at = |at: u64, buf: &mut [u8]| -> Option<()> {
        if at.checked_add(buf.len() as u64)? > part.range.len {
            return None;
        }
        r.seek(SeekFrom::Start(part.range.offset.checked_add(at)?))
            .ok()?;
        r.read_exact(buf).ok()
    };
    KERNEL_FILESYSTEMS
        .iter()
        .find_map(|&(fs, at, magic, uuid_at)| {
            let mut buf = [0u8; 8];
            let buf = buf.get_mut(..magic.len())?;
            read_at(at, buf)?;
            if buf != magic {
                return None;
            }
            let mut uuid = [0u8; 16];
            read_at(uuid_at, &mut uuid)?;
            Some((fs, format_uuid(&uuid)))
        })
}

/// 16 bytes as blkid prints a filesystem UUID: 8-4-4-4-12 lowercase hex.
fn format_uuid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Why a btrfs or xfs partition's `/boot` was not read, when no mount
/// reader was given.
const NO_MOUNT_READER: &str = "only a read-only kernel mount reads it, and this reader makes none (stage 1 does, and `vhdboot inspect` run as root)";

/// For the "nothing to boot" messages: "; its Linux partition 2 is btrfs,
/// whose /boot was not read: <why>", or "" when every Linux partition was
/// read or holds nothing of the kind. The user then knows why the kernels
/// there are not listed, instead of being told only that an ESP is
/// missing. `unread` holds "2 is btrfs" and the reason, per partition.
fn unread_linux_filesystems(unread: &[(String, String)]) -> String {
    match unread {
        [] => String::new(),
        [(which, why)] => format!("; its Linux partition {which}, whose /boot was not read: {why}"),
        many => format!(
            "; its Linux partitions were not read: {}",
            many.iter()
                .map(|(which, why)| format!("{which} ({why})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Lists the kernels in `/boot` of every ext4 Linux partition, and of
/// every btrfs and xfs one through `mounted`. A partition with none of
/// these (swap, empty) is passed over in silence; a damaged one gets a
/// warning. Kernels on a separate /boot take their title and derived
/// command line from the root filesystem. Returns the btrfs and xfs
/// partitions left unread ("2 is btrfs") with why.
fn scan_linux_partitions<R: Read + Seek>(
    r: &mut R,
    partitions: &[Partition],
    mut mounted: Option<&mut dyn MountedBoot>,
    entries: &mut Vec<BootEntry>,
    problems: &mut Vec<Problem>,
) -> Vec<(String, String)> {
    // Each partition read, with its filesystem and subvolume when it was
    // read through a mount (None for ext4).
    let mut found: Vec<(Partition, BootDir, Option<MountedFs>)> = Vec::new();
    let mut unread = Vec::new();
    for part in linux_partitions(partitions) {
        let where_ = format!("Linux partition {}", part.number);
        let len = part.range.len;
        let read = with_ext4(r, part.range, &mut |_| Ok(()), |link, sb| {
            let fs = link.load().map_err(|e| e.to_string())?;
            Ok::<BootDir, String>(read_boot_dir(&fs, sb.uuid_string(), len))
        });
        match read {
            Err(Ext4OpenError::NotExt4) => {
                let Some((fs, uuid)) = kernel_filesystem(r, &part) else {
                    continue;
                };
                let which = format!("{} is {}", part.number, fs.name());
                let Some(reader) = mounted.as_mut() else {
                    unread.push((which, NO_MOUNT_READER.to_string()));
                    continue;
                };
                match reader.read_boot_dir(&part, fs, uuid) {
                    Ok(m) => found.push((part, m.dir, Some((fs, m.subvol)))),
                    Err(e) => {
                        problems.push(Problem::warning(
                            format!("{where_}: cannot read its {} filesystem: {e}", fs.name()),
                            format!(
                                "check the filesystem with `{}` on a copy; entries elsewhere can still boot",
                                match fs {
                                    KernelFs::Btrfs => "btrfs check --readonly",
                                    KernelFs::Xfs => "xfs_repair -n",
                                }
                            ),
                        ));
                        unread.push((which, "see the warning above".to_string()));
                    }
                }
            }
            Err(e) => problems.push(Problem::warning(
                format!("{where_}: {e}"),
                "check the filesystem with `e2fsck -n` on a copy; entries elsewhere can still boot",
            )),
            Ok(Err(e)) => problems.push(Problem::warning(
                format!("{where_}: cannot read its ext4 filesystem: {e}"),
                "check the filesystem with `e2fsck -n` on a copy; entries elsewhere can still boot",
            )),
            Ok(Ok(dir)) => found.push((part, dir, None)),
        }
    }
    let root_facts = found
        .iter()
        .find(|(_, d, _)| d.facts.is_root)
        .map(|(_, d, _)| d.facts.clone());
    for (part, dir, kernel_fs) in &found {
        let where_ = format!("Linux partition {}", part.number);
        for w in &dir.warnings {
            problems.push(Problem::warning(
                format!("{where_}: {w}"),
                "the other entries can still boot; reinstall this kernel inside the OS",
            ));
        }
        let facts = match (&root_facts, dir.facts.is_root) {
            (Some(root), false) => root,
            _ => &dir.facts,
        };
        for kernel in &dir.kernels {
            let (title, cmdline) = settle(kernel, facts);
            if let Some(why) = cmdline_problem(&cmdline) {
                problems.push(Problem::warning(
                    format!("{where_}: {}: its command line {why}", kernel.origin),
                    "shorten the kernel options inside the OS (the other entries can still boot)",
                ));
                continue;
            }
            let source = match kernel_fs {
                None => EntrySource::Ext4 {
                    partition: part.range,
                    linux: kernel.linux.clone(),
                    initrd: kernel.initrd.clone(),
                },
                Some((fs, subvol)) => EntrySource::Mounted {
                    partition: part.range,
                    fs: *fs,
                    subvol: subvol.clone(),
                    linux: kernel.linux.clone(),
                    initrd: kernel.initrd.clone(),
                },
            };
            entries.push(BootEntry {
                title,
                version: kernel.version.clone(),
                cmdline,
                source,
                kernel_size: kernel.kernel_size,
                initrd_size: kernel.initrd_size,
            });
        }
    }
    unread
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

    let mut first_clusters = HashMap::new();
    let ukis = list_files(&esp, UKI_DIR, ".efi", &where_, problems);
    let ukis = without_cross_links(ukis, UKI_DIR, &mut first_clusters, &where_, problems);
    for file in capped(ukis, MAX_UKIS_PER_ESP, UKI_DIR, "UKIs", &where_, problems) {
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
            Ok((entry, None)) => match cmdline_problem(&entry.cmdline) {
                Some(why) => problems.push(Problem::warning(
                    format!("{where_}: {path}: its .cmdline section {why}"),
                    "rebuild the UKI with a shorter command line (the other entries can still boot)",
                )),
                None => entries.push(entry),
            },
            Err(e) => problems.push(Problem::warning(
                format!("{where_}: {path} is not a usable UKI: {e}"),
                "the other entries can still boot; reinstall this kernel inside the OS",
            )),
        }
    }

    let confs = list_files(&esp, ENTRIES_DIR, ".conf", &where_, problems);
    let confs = without_cross_links(confs, ENTRIES_DIR, &mut first_clusters, &where_, problems);
    for file in capped(
        confs,
        MAX_BLS_FILES_PER_ESP,
        ENTRIES_DIR,
        "entry files",
        &where_,
        problems,
    ) {
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

/// `files` without the entries whose data another listed file already owns.
/// Two directory entries with the same first cluster are cross-linked, a
/// FAT damage that fsck repairs; reading both would list one UKI many
/// times (or let one file stand for hundreds). The first keeps it; one
/// warning per directory names the first pair and counts the rest.
fn without_cross_links(
    files: Vec<EspEntry>,
    dir: &str,
    owners: &mut HashMap<u32, String>,
    where_: &str,
    problems: &mut Vec<Problem>,
) -> Vec<EspEntry> {
    let mut kept = Vec::with_capacity(files.len());
    let mut first_pair: Option<(String, String)> = None;
    let mut dropped = 0usize;
    for file in files {
        let path = format!("{dir}/{}", file.name);
        if file.first_cluster == 0 {
            kept.push(file);
            continue;
        }
        match owners.get(&file.first_cluster) {
            Some(owner) => {
                dropped += 1;
                if first_pair.is_none() {
                    first_pair = Some((path, owner.clone()));
                }
            }
            None => {
                owners.insert(file.first_cluster, path);
                kept.push(file);
            }
        }
    }
    if let Some((path, owner)) = first_pair {
        let more = match dropped {
            1 => String::new(),
            n => format!(" ({} more entries in {dir} share data the same way)", n - 1),
        };
        problems.push(Problem::warning(
            format!(
                "{where_}: {path} is cross-linked with {owner}: both directory entries start at the same cluster{more}; only {owner} was read"
            ),
            "the FAT filesystem is damaged: run `fsck.vfat` on the partition (on a copy first)",
        ));
    }
    kept
}

/// The first `max` of `files`, with a warning naming what was cut.
fn capped(
    mut files: Vec<EspEntry>,
    max: usize,
    dir: &str,
    what: &str,
    where_: &str,
    problems: &mut Vec<Problem>,
) -> Vec<EspEntry> {
    if files.len() > max {
        problems.push(Problem::warning(
            format!(
                "{where_}: {dir} holds {} {what}; only the first {max} by name were read",
                files.len()
            ),
            format!("remove old {what} from {dir} inside the OS"),
        ));
        files.truncate(max);
    }
    files
}

/// Why a command line cannot reach the kernel, if it cannot.
fn cmdline_problem(cmdline: &str) -> Option<String> {
    (cmdline.len() >= KERNEL_CMDLINE_SIZE).then(|| {
        format!(
            "holds a {}-byte command line; the kernel accepts at most {} bytes",
            cmdline.len(),
            KERNEL_CMDLINE_SIZE - 1
        )
    })
}

/// `text` cut to [`MAX_DISPLAY_CHARS`] characters, with an ellipsis when cut.
pub fn for_display(text: &str) -> String {
    match text.char_indices().nth(MAX_DISPLAY_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The regular files in `dir` whose names end with `suffix` (any case),
/// sorted by name. A missing directory is normal and gives nothing.
fn list_files<R: Read + Seek>(
    esp: &Esp<R>,
    dir: &str,
    suffix: &str,
    where_: &str,
    problems: &mut Vec<Problem>,
) -> Vec<EspEntry> {
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
        title: for_display(&info.title(file_name)),
        version: info.uname.as_deref().map(for_display),
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
    let linux = bls_path(bls.kexec_kernel()?);
    let cmdline = bls.cmdline();
    if let Some(why) = cmdline_problem(&cmdline) {
        return Err(format!("its options lines {why}"));
    }
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
    // Every initrd lives on this partition, so together they cannot be
    // bigger than it; a larger total means lines repeat a file or sizes
    // are corrupt, and the boot would load more than was ever written.
    if initrd_size > range.len {
        return Err(format!(
            "its initrd lines add up to {initrd_size} bytes, more than the {}-byte partition holding them: the entry repeats files or the partition is damaged",
            range.len
        ));
    }
    Ok(BootEntry {
        title: for_display(&bls.display_title(file_name)),
        version: bls.version.as_deref().map(for_display),
        cmdline,
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
    use crate::image::bls::MAX_INITRD_LINES;

    use crate::image::esp::tests::fat32_with;
    use std::io::Cursor;

    fn part(number: u32, offset: u64, len: u64) -> Partition {
        Partition {
            number,
            name: "EFI System".to_string(),
            type_guid: super::super::partitions::ESP_GUID.to_string(),
            part_guid: String::new(),
            kind: PartitionKind::Esp,
            range: ByteRange { offset, len },
        }
    }

    #[test]
    fn one_boot_partition_listed_many_times_is_read_once() {
        let mut problems = Vec::new();
        let parts: Vec<Partition> = (1..=8192).map(|n| part(n, 1 << 20, 40 << 20)).collect();
        let read = boot_partitions(&parts, &mut problems);
        assert_eq!(read.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].what.contains("8191 more GPT entries repeat"));
    }

    #[test]
    fn boot_partitions_beyond_the_cap_are_left_with_a_warning() {
        let mut problems = Vec::new();
        let parts: Vec<Partition> = (0..20)
            .map(|n| part(n + 1, n as u64 * 4096, 4096))
            .collect();
        let read = boot_partitions(&parts, &mut problems);
        assert_eq!(read.len(), MAX_BOOT_PARTITIONS);
        assert!(
            problems[0].what.contains("has 20 EFI system"),
            "{:?}",
            problems
        );
    }

    fn file(name: &str, first_cluster: u32) -> EspEntry {
        EspEntry {
            name: name.to_string(),
            size: 10,
            is_dir: false,
            first_cluster,
        }
    }

    #[test]
    fn cross_linked_entries_are_read_once_with_both_names() {
        let mut problems = Vec::new();
        let mut owners = HashMap::new();
        let files = vec![
            file("a.efi", 5),
            file("b.efi", 5),
            file("c.efi", 5),
            file("d.efi", 9),
            file("e.efi", 0),
            file("f.efi", 0),
        ];
        let kept = without_cross_links(files, UKI_DIR, &mut owners, "ESP 1", &mut problems);
        let names: Vec<&str> = kept.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.efi", "d.efi", "e.efi", "f.efi"]);
        assert_eq!(problems.len(), 1);
        let what = &problems[0].what;
        assert!(
            what.contains("/EFI/Linux/b.efi is cross-linked with /EFI/Linux/a.efi"),
            "{what}"
        );
        assert!(what.contains("1 more entries"), "{what}");
        assert!(problems[0].hint.contains("fsck.vfat"));
    }

    #[test]
    fn titles_are_cut_for_display_and_long_command_lines_refused() {
        let long = "é".repeat(10_000);
        let shown = for_display(&long);
        assert_eq!(shown.chars().count(), MAX_DISPLAY_CHARS + 1);
        assert_eq!(for_display("Debian"), "Debian");
        assert!(cmdline_problem(&"x".repeat(KERNEL_CMDLINE_SIZE - 1)).is_none());
        let why = cmdline_problem(&"x".repeat(KERNEL_CMDLINE_SIZE)).unwrap();
        assert!(why.contains("at most 2047 bytes"), "{why}");
    }

    fn bls_entry_on(files: &[(&str, &[u8])], partition_len: u64) -> Result<BootEntry, String> {
        let bytes = fat32_with(files);
        let len = bytes.len() as u64;
        let esp = Esp::open(Window::new(Cursor::new(bytes), 0, len)).unwrap();
        let range = ByteRange {
            offset: 0,
            len: partition_len,
        };
        read_bls_entry(&esp, range, "/loader/entries/x.conf", "x.conf")
    }

    #[test]
    fn initrds_larger_than_their_partition_are_refused() {
        let conf = b"linux /vmlinuz\ninitrd /big\ninitrd /big\ninitrd /big\n";
        let files: &[(&str, &[u8])] = &[
            ("/loader/entries/x.conf", conf),
            ("/vmlinuz", &[0u8; 100]),
            ("/big", &[0u8; 40_000]),
        ];
        let err = bls_entry_on(files, 100_000).unwrap_err();
        assert!(
            err.contains("add up to 120000 bytes, more than the 100000-byte partition"),
            "{err}"
        );
        let ok = bls_entry_on(files, 34 * 1024 * 1024).unwrap();
        assert_eq!(ok.initrd_size, 120_000);
    }

    #[test]
    fn an_entry_with_too_many_initrd_lines_is_refused() {
        let mut conf = b"title t\nlinux /vmlinuz\n".to_vec();
        for _ in 0..=MAX_INITRD_LINES {
            conf.extend_from_slice(b"initrd /i\n");
        }
        let files: &[(&str, &[u8])] = &[
            ("/loader/entries/x.conf", &conf),
            ("/vmlinuz", &[0u8; 100]),
            ("/i", &[0u8; 10]),
        ];
        let err = bls_entry_on(files, 34 * 1024 * 1024).unwrap_err();
        assert!(
            err.contains("33 initrd lines; vhdboot accepts at most 32"),
            "{err}"
        );
    }

    #[test]
    fn bls_paths_are_rooted() {
        assert_eq!(bls_path("vmlinuz"), "/vmlinuz");
        assert_eq!(bls_path("/a/b"), "/a/b");
    }

    #[test]
    fn btrfs_and_xfs_are_told_by_their_magic_with_the_uuid_blkid_reports() {
        let uuid: [u8; 16] = *b"\x5e\x1d\x9c\x3a\x7b\x2f\x4a\x68\x8d\x04\xc9\xe6\xb2\xa7\xf0\x13";
        let mut xfs = vec![0u8; 4096];
        xfs[..4].copy_from_slice(b"XFSB");
        xfs[0x20..0x30].copy_from_slice(&uuid);
        let mut btrfs = vec![0u8; 0x1_1000];
        btrfs[0x1_0040..0x1_0048].copy_from_slice(b"_BHRfS_M");
        btrfs[0x1_0020..0x1_0030].copy_from_slice(&uuid);
        let want = "5e1d9c3a-7b2f-4a68-8d04-c9e6b2a7f013".to_string();
        for (bytes, fs) in [(xfs, KernelFs::Xfs), (btrfs, KernelFs::Btrfs)] {
            let len = bytes.len() as u64;
            let p = Partition {
                kind: PartitionKind::LinuxRoot,
                ..part(2, 0, len)
            };
            assert_eq!(
                kernel_filesystem(&mut Cursor::new(&bytes), &p),
                Some((fs, want.clone()))
            );
            // The same bytes in a partition too short to hold the UUID (or
            // the magic) name nothing: no read leaves the partition.
            let short = Partition {
                kind: PartitionKind::LinuxRoot,
                ..part(2, 0, if fs == KernelFs::Xfs { 0x28 } else { 0x1_0044 })
            };
            assert_eq!(kernel_filesystem(&mut Cursor::new(&bytes), &short), None);
        }
    }

    #[test]
    fn unread_partitions_are_named_one_or_many() {
        assert_eq!(unread_linux_filesystems(&[]), "");
        let one = [("2 is xfs".to_string(), "why".to_string())];
        assert_eq!(
            unread_linux_filesystems(&one),
            "; its Linux partition 2 is xfs, whose /boot was not read: why"
        );
        let two = [
            ("2 is xfs".to_string(), "a".to_string()),
            ("3 is btrfs".to_string(), "b".to_string()),
        ];
        assert_eq!(
            unread_linux_filesystems(&two),
            "; its Linux partitions were not read: 2 is xfs (a), 3 is btrfs (b)"
        );
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
