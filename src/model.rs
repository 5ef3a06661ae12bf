//! What stage 1 found, as plain data: the ground every layer stands on.
//! Built by the scanner (`discovery`, `sys`), shown by the TUI, turned
//! into a `BootPlan` by `boot::plan`. It imports nothing of the crate, so
//! any module may use it without making a cycle.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything one scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub volumes: Vec<Volume>,
    /// Human-readable lines on what the scan did, for the log view.
    pub log: Vec<String>,
    /// Whether the firmware has Secure Boot on (from efivars), or None
    /// when it could not be read (no EFI, no efivarfs, the CLI). When on,
    /// kexec accepts only kernels signed by a trusted key.
    pub secure_boot: Option<bool>,
    /// Which images boot immutable (issue 15).
    #[serde(default, skip_serializing_if = "ImmutablePolicy::is_empty")]
    pub immutable: ImmutablePolicy,
}

/// Which images boot immutable: every change the target makes stays in a
/// copy-on-write layer in RAM and is lost at reboot. The configuration's
/// `immutable` list, plus the images the user switched with a key in this
/// menu session (a rescan starts again from the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImmutablePolicy {
    /// Image paths on their host filesystem, compared case-insensitively
    /// as NTFS and exFAT compare names.
    pub images: Vec<String>,
    /// The most bytes the RAM layer may hold; None lets stage 2 take a
    /// share of the machine's RAM.
    pub ram_limit: Option<u64>,
    /// Images switched to a trial boot with a key in this menu session
    /// (issue 15 item 2): their changes go to `<image>.trial` on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trial: Vec<String>,
    /// The trial store's size from vhdboot.conf (`trial_size`); None
    /// takes `trial::DEFAULT_TRIAL_SIZE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_size: Option<u64>,
}

impl ImmutablePolicy {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.ram_limit.is_none()
            && self.trial.is_empty()
            && self.trial_size.is_none()
    }

    /// Whether the image at `path` boots as a trial.
    pub fn trial_covers(&self, path: &str) -> bool {
        self.trial.iter().any(|i| i.eq_ignore_ascii_case(path))
    }

    /// Switches the image at `path` between a trial and a normal boot; a
    /// trial boot is never immutable as well.
    pub fn toggle_trial(&mut self, path: &str) {
        if self.trial_covers(path) {
            self.trial.retain(|i| !i.eq_ignore_ascii_case(path));
        } else {
            self.images.retain(|i| !i.eq_ignore_ascii_case(path));
            self.trial.push(path.to_string());
        }
    }

    /// Whether the image at `path` boots immutable.
    pub fn covers(&self, path: &str) -> bool {
        self.images.iter().any(|i| i.eq_ignore_ascii_case(path))
    }

    /// Switches the image at `path` between immutable and normal.
    pub fn toggle(&mut self, path: &str) {
        if self.covers(path) {
            self.images.retain(|i| !i.eq_ignore_ascii_case(path));
        } else {
            self.trial.retain(|i| !i.eq_ignore_ascii_case(path));
            self.images.push(path.to_string());
        }
    }
}

/// The filesystem on a host volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsType {
    Ntfs,
    Exfat,
    Other(String),
}

impl FsType {
    /// The kernel driver that mounts it (`ntfs3`, `exfat`).
    pub fn driver(&self) -> &str {
        match self {
            FsType::Ntfs => "ntfs3",
            FsType::Exfat => "exfat",
            FsType::Other(s) => s,
        }
    }

    /// Maps a libblkid TYPE value.
    pub fn from_blkid(t: &str) -> FsType {
        match t {
            "ntfs" | "ntfs3" => FsType::Ntfs,
            "exfat" => FsType::Exfat,
            other => FsType::Other(other.to_string()),
        }
    }
}

/// Whether and how stage 1 mounted a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountState {
    /// Mounted read-only at this path.
    Mounted {
        at: PathBuf,
    },
    /// The kernel refused the mount; `reason` is its message.
    Refused {
        reason: String,
    },
    NotMounted,
}

/// A warning shown beside a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeBadge {
    /// NTFS (`$Volume`) or exFAT (VolumeDirty) says the volume was not
    /// cleanly unmounted.
    Dirty,
    /// Windows hibernated or Fast Startup left the volume in use: its
    /// root holds a `hiberfil.sys` with a hibernation signature.
    Hibernated,
    /// The device itself is read-only.
    ReadOnly,
    /// NTFS' journal (`$LogFile`) was not closed cleanly: it holds changes
    /// Windows has not replayed.
    UncleanLog,
    /// Another NTFS volume on the machine carries Windows' hibernation
    /// file, and this one is on an internal disk, which a hibernated
    /// Windows keeps in use too (set by the machine-wide verdict).
    HibernatedElsewhere,
    /// The volume is on a removable disk (sysfs `removable`), which a
    /// hibernated Windows does not keep in use.
    Removable,
    /// Another volume has the same filesystem UUID.
    DuplicateId,
    /// The NTFS boot sector claims more bytes than the partition holds, so
    /// the kernel would mount it read-only.
    LargerThanPartition { filesystem_bytes: u64 },
    /// vhdboot's in-use record is on it: a Linux image ran from it and was
    /// never detached cleanly (`boot::in_use`).
    NotDetached,
}

impl VolumeBadge {
    /// The badge's words, as the menu shows them in brackets.
    pub fn label(self) -> &'static str {
        match self {
            VolumeBadge::Dirty => "dirty",
            VolumeBadge::Hibernated => "hibernated",
            VolumeBadge::ReadOnly => "read-only",
            VolumeBadge::UncleanLog => "journal not clean",
            VolumeBadge::HibernatedElsewhere => "Windows hibernated",
            VolumeBadge::Removable => "removable",
            VolumeBadge::DuplicateId => "duplicate id",
            VolumeBadge::LargerThanPartition { .. } => "larger than partition",
            VolumeBadge::NotDetached => "needs check",
        }
    }
}

/// A partition or whole-disk filesystem that may hold images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub device: PathBuf,
    pub fstype: FsType,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub partuuid: Option<String>,
    pub size: u64,
    pub mount: MountState,
    pub badges: Vec<VolumeBadge>,
    pub images: Vec<Image>,
}

impl Volume {
    /// The name a person recognises: the label, else the device.
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(l) if !l.is_empty() => l.clone(),
            _ => self.device.display().to_string(),
        }
    }
}

/// What kind of image file this is, from its footer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageKind {
    /// A fixed VHD: `data_size` bytes of raw disk, then the 512-byte footer.
    FixedVhd {
        data_size: u64,
    },
    DynamicVhd,
    DifferencingVhd,
    /// A raw disk image with no footer (only where configured).
    Raw {
        data_size: u64,
    },
    /// Not readable as an image; the problems say why.
    Unreadable,
}

impl ImageKind {
    /// How many bytes of the file are disk data, if it can sit on a loop device.
    pub fn data_size(&self) -> Option<u64> {
        match self {
            ImageKind::FixedVhd { data_size } | ImageKind::Raw { data_size } => Some(*data_size),
            _ => None,
        }
    }
}

/// One image file on a host volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The path on the host filesystem, starting with `/`.
    pub path: String,
    pub file_size: u64,
    pub kind: ImageKind,
    pub entries: Vec<BootEntry>,
    pub problems: Vec<Problem>,
    /// A trial boot's changes waiting beside the image (`<image>.trial`),
    /// as discovery saw them without writing anything (issue 15 item 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<crate::trial::PendingTrial>,
}

impl Image {
    /// The file name, for lists.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// How an image file is stored on the host filesystem, as `sys::fileinfo`
/// reads it and `discovery::preflight` judges it. `None` means the
/// filesystem did not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFacts {
    /// The file's length in bytes.
    pub size: u64,
    /// Bytes allocated on disk (`st_blocks * 512`).
    pub allocated: Option<u64>,
    pub compressed: Option<bool>,
    pub encrypted: Option<bool>,
}

/// A byte range inside the image's data area (a partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    pub offset: u64,
    pub len: u64,
}

/// Where an entry's kernel, initrd and command line come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntrySource {
    /// A unified kernel image at `path` inside the FAT partition `esp`.
    Uki { esp: ByteRange, path: String },
    /// A Boot Loader Spec type #1 entry; paths are inside the FAT partition `esp`.
    Bls {
        esp: ByteRange,
        conf: String,
        linux: String,
        initrd: Vec<String>,
    },
    /// A kernel and its initrds on the ext4 filesystem in `partition`
    /// (the image's root or /boot), found in `/boot` by name or through a
    /// `/boot/loader/entries` file. Paths are inside that filesystem.
    Ext4 {
        partition: ByteRange,
        linux: String,
        initrd: Vec<String>,
    },
    /// A kernel and its initrds on a btrfs or xfs filesystem in
    /// `partition`, which no userspace reader of ours understands: it is
    /// read through the kernel's own driver, from a read-only loop device
    /// and a read-only mount without log replay, at discovery and again at
    /// boot. Paths are inside that filesystem, as for `Ext4`.
    Mounted {
        partition: ByteRange,
        fs: KernelFs,
        /// The btrfs subvolume mounted as the root (`@` on Ubuntu, whose
        /// top level holds only subvolumes), or None for the default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subvol: Option<String>,
        linux: String,
        initrd: Vec<String>,
    },
}

/// A Linux filesystem whose `/boot` is read through a kernel mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelFs {
    Btrfs,
    Xfs,
}

impl KernelFs {
    /// The kernel's name for it (the mount type, the module name).
    pub fn name(self) -> &'static str {
        match self {
            KernelFs::Btrfs => "btrfs",
            KernelFs::Xfs => "xfs",
        }
    }
}

/// One thing that can be booted from an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootEntry {
    /// os-release PRETTY_NAME (or the BLS title), plus the kernel version.
    pub title: String,
    pub version: Option<String>,
    /// The entry's own kernel command line.
    pub cmdline: String,
    pub source: EntrySource,
    pub kernel_size: u64,
    pub initrd_size: u64,
}

/// Something wrong with an image, volume or entry, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What is wrong, in one line.
    pub what: String,
    /// What the user can do next.
    pub hint: String,
    /// True when this stops a boot; false for warnings.
    pub blocks_boot: bool,
}

impl Problem {
    pub fn blocking(what: impl Into<String>, hint: impl Into<String>) -> Problem {
        Problem {
            what: what.into(),
            hint: hint.into(),
            blocks_boot: true,
        }
    }

    pub fn warning(what: impl Into<String>, hint: impl Into<String>) -> Problem {
        Problem {
            what: what.into(),
            hint: hint.into(),
            blocks_boot: false,
        }
    }
}

/// Points at one boot entry in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryRef {
    pub volume: usize,
    pub image: usize,
    pub entry: usize,
}

impl Snapshot {
    pub fn volume(&self, r: EntryRef) -> Option<&Volume> {
        self.volumes.get(r.volume)
    }

    pub fn image(&self, r: EntryRef) -> Option<&Image> {
        self.volume(r)?.images.get(r.image)
    }

    pub fn entry(&self, r: EntryRef) -> Option<&BootEntry> {
        self.image(r)?.entries.get(r.entry)
    }
}
