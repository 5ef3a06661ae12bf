//! The BootPlan: everything `Host::load` needs to kexec one entry, decided
//! without touching the system.

use super::cmdline::Cmdline;
use super::entry_id::entry_id;
use super::handoff::{DEFAULT_NEXT, Handoff, HandoffError, HostId, HostIdentity, Overlay};
use crate::model::{
    BootEntry, EntryRef, EntrySource, FsType, Image, ImageKind, MountState, Snapshot, Volume,
    VolumeBadge,
};
use serde::Serialize;
use std::path::PathBuf;

/// One boot, fully decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootPlan {
    /// What the user picked, for messages.
    pub title: String,
    /// The entry's stable id (`boot::entry_id`), for `LoaderEntrySelected`.
    pub entry_id: String,
    /// The host device, e.g. `/dev/sda2`.
    pub host_device: PathBuf,
    pub host_id: HostId,
    pub fstype: FsType,
    /// Where stage 1 mounted the host read-only.
    pub host_mount: PathBuf,
    /// The image's path on the host filesystem, starting with `/`.
    pub image_path: String,
    /// Data bytes in the image (file size minus the footer).
    pub data_size: u64,
    /// Where the kernel and initrd are inside the image.
    pub source: EntrySource,
    /// The kernel version the entry names (a UKI's `.uname`, a BLS
    /// `version`, the `/boot` file name): the fallback for carried
    /// modules when the kernel's own header names none.
    pub version: Option<String>,
    /// The final kernel command line: the entry's (or the edited) line plus
    /// the handoff parameters.
    pub cmdline: String,
    /// Some for an immutable boot: stage 2 then needs device-mapper's
    /// snapshot target from the target's initramfs, which the load checks.
    pub overlay: Option<Overlay>,
}

impl BootPlan {
    /// The image file as stage 1 sees it.
    pub fn image_file(&self) -> PathBuf {
        self.host_mount
            .join(self.image_path.trim_start_matches('/'))
    }
}

/// The x86 kernel's COMMAND_LINE_SIZE, counting the terminating NUL. A
/// longer line is refused by kexec_file_load (EINVAL) or cut short.
/// Discovery refuses such lines already, so `image` owns the number.
pub const MAX_CMDLINE: usize = crate::image::inspect::KERNEL_CMDLINE_SIZE;

/// Why a plan could not be made. Each names the volume, image or entry and
/// says what to do. This is the one answer to "can this entry boot?": the
/// menu, the countdown, the start decision and the CLI all ask
/// [`blocker`] or [`image_blocker`], which `plan` itself uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    NoSuchEntry(EntryRef),
    HostNotMounted {
        volume: String,
        device: PathBuf,
        why: String,
    },
    HostUnsafe {
        volume: String,
        device: PathBuf,
        badge: VolumeBadge,
        state: &'static str,
        hint: &'static str,
    },
    HostReadOnly {
        volume: String,
        device: PathBuf,
    },
    /// Another volume carries Windows' hibernation file (the machine-wide
    /// verdict); `carriers` names them.
    HibernatedElsewhere {
        volume: String,
        device: PathBuf,
        carriers: String,
    },
    /// The NTFS boot sector claims more than the partition holds.
    LargerThanPartition {
        volume: String,
        device: PathBuf,
        filesystem_bytes: u64,
        partition_bytes: u64,
    },
    /// Another volume has the same filesystem UUID and no partition UUID
    /// tells the two apart.
    DuplicateId {
        volume: String,
        device: PathBuf,
        uuid: String,
        others: String,
    },
    UnsupportedFs {
        volume: String,
        device: PathBuf,
        fstype: String,
    },
    NoHostId {
        volume: String,
        device: PathBuf,
    },
    NotLoopable {
        volume: String,
        image: String,
        kind: &'static str,
    },
    ImageBlocked {
        volume: String,
        image: String,
        what: String,
        hint: String,
    },
    /// The image was read, but no UKI or BLS entry was found in it.
    NoKernel {
        volume: String,
        image: String,
    },
    Cmdline {
        entry: String,
        source: HandoffError,
    },
    CmdlineTooLong {
        entry: String,
        len: usize,
        max: usize,
    },
}

impl PlanError {
    /// What stops the boot, without the advice.
    pub fn cause(&self) -> String {
        match self {
            PlanError::NoSuchEntry(_) => "the selected entry no longer exists".into(),
            PlanError::HostNotMounted {
                volume,
                device,
                why,
            } => format!(
                "{volume} ({}) is not mounted ({why}), so its images cannot be read",
                device.display()
            ),
            PlanError::HostUnsafe {
                volume,
                device,
                state,
                ..
            } => format!(
                "{volume} ({}) is {state}; stage 2 must mount it read-write, which is refused or \
                 unsafe in this state",
                device.display()
            ),
            PlanError::HostReadOnly { volume, device } => format!(
                "{volume} ({}) is read-only, but stage 2 must mount it read-write to run the image",
                device.display()
            ),
            PlanError::HibernatedElsewhere {
                volume,
                device,
                carriers,
            } => format!(
                "Windows is hibernated (Fast Startup or hibernation): {carriers} holds its \
                 hibernation file, and a hibernated Windows keeps every internal volume in use, \
                 so {volume} ({}) must not be written",
                device.display()
            ),
            PlanError::LargerThanPartition {
                volume,
                device,
                filesystem_bytes,
                partition_bytes,
            } => format!(
                "{volume} ({}): its NTFS boot sector needs {filesystem_bytes} bytes, more than the \
                 {partition_bytes}-byte partition holds, so the kernel would mount it read-only",
                device.display()
            ),
            PlanError::DuplicateId {
                volume,
                device,
                uuid,
                others,
            } => format!(
                "{volume} ({}) has the filesystem UUID {uuid}, as {others} does, and no partition \
                 UUID tells them apart, so stage 2 could not be sure to mount the right one",
                device.display()
            ),
            PlanError::UnsupportedFs {
                volume,
                device,
                fstype,
            } => format!(
                "{volume} ({}) holds a {fstype} filesystem; vhdboot boots images from NTFS or \
                 exFAT only",
                device.display()
            ),
            PlanError::NoHostId { volume, device } => format!(
                "{volume} ({}) has neither a filesystem UUID nor a partition UUID, so stage 2 \
                 could not find it again after the reboot into the target kernel",
                device.display()
            ),
            PlanError::NotLoopable {
                volume,
                image,
                kind,
            } => format!("{image} on {volume} cannot sit on a loop device ({kind})"),
            PlanError::ImageBlocked { what, .. } => what.clone(),
            PlanError::NoKernel { .. } => "no kernel was found in it: no UKI in /EFI/Linux and \
                                           no Boot Loader Spec entry in /loader/entries"
                .into(),
            PlanError::Cmdline { entry, source } => format!(
                "the command line for {entry} could not carry the stage-2 parameters: {source}"
            ),
            PlanError::CmdlineTooLong { entry, len, max } => format!(
                "the command line for {entry} would be {len} bytes with the stage-2 parameters, \
                 more than the kernel's limit of {max}"
            ),
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            PlanError::NoSuchEntry(_) => "press r to rescan".into(),
            PlanError::HostNotMounted { .. } => "check the scan log, then press r to rescan".into(),
            PlanError::HostUnsafe { hint, .. } => (*hint).into(),
            PlanError::HostReadOnly { .. } => "remove the write protection and rescan".into(),
            PlanError::HibernatedElsewhere { .. } => table_hint(VolumeBadge::HibernatedElsewhere),
            PlanError::LargerThanPartition {
                filesystem_bytes, ..
            } => table_hint(VolumeBadge::LargerThanPartition {
                filesystem_bytes: *filesystem_bytes,
            }),
            PlanError::DuplicateId { .. } => "detach the copy, or give one volume a new serial \
                                              (ntfslabel --new-serial, exfatlabel -i), then \
                                              rescan"
                .into(),
            PlanError::UnsupportedFs { .. } => {
                "move the image to an NTFS or exFAT partition".into()
            }
            PlanError::NoHostId { .. } => {
                "give it a UUID (reformat, or use a GPT partition) and rescan".into()
            }
            // A dynamic VHD has vhdboot's own converter; a differencing one
            // needs its parent chain, which only qemu-img follows.
            PlanError::NotLoopable { kind, .. } if kind.contains("dynamic") => {
                "on another Linux, convert it to a fixed VHD (vhdboot convert IN.vhd OUT.vhd), \
                 then rescan"
                    .into()
            }
            PlanError::NotLoopable { .. } => "convert it to a fixed VHD, e.g. qemu-img convert \
                                              -O vpc -o subformat=fixed, then rescan"
                .into(),
            PlanError::ImageBlocked { hint, .. } => hint.clone(),
            PlanError::NoKernel { .. } => "install a UKI or BLS entry on the image's EFI system \
                                           partition, or press l for the scan log"
                .into(),
            PlanError::Cmdline { .. } => "edit the command line (e to edit) and try again".into(),
            PlanError::CmdlineTooLong { .. } => "edit it (e to edit) to remove what is not \
                                                 needed, or move the image to a shorter path"
                .into(),
        }
    }

    /// A few words for a list row, beside the image's name.
    pub fn summary(&self) -> String {
        match self {
            PlanError::NoSuchEntry(_) => "no longer exists".into(),
            PlanError::HostNotMounted { .. } => "host not mounted".into(),
            PlanError::HostUnsafe {
                badge: VolumeBadge::Dirty,
                ..
            } => "host volume dirty".into(),
            PlanError::HostUnsafe {
                badge: VolumeBadge::UncleanLog,
                ..
            } => "host journal not clean".into(),
            PlanError::HostUnsafe {
                badge: VolumeBadge::NotDetached,
                ..
            } => "host volume needs a check".into(),
            PlanError::HostUnsafe { .. } => "host volume hibernated".into(),
            PlanError::HibernatedElsewhere { .. } => "Windows hibernated".into(),
            PlanError::LargerThanPartition { .. } => "host larger than its partition".into(),
            PlanError::DuplicateId { .. } => "host id not unique".into(),
            PlanError::HostReadOnly { .. } => "host volume read-only".into(),
            PlanError::UnsupportedFs { fstype, .. } => format!("host volume is {fstype}"),
            PlanError::NoHostId { .. } => "host volume has no UUID".into(),
            PlanError::NotLoopable { .. } => "cannot sit on a loop device".into(),
            PlanError::ImageBlocked { what, .. } => what.clone(),
            PlanError::NoKernel { .. } => "no boot entry".into(),
            PlanError::Cmdline { .. } | PlanError::CmdlineTooLong { .. } => {
                "command line cannot be used".into()
            }
        }
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The problem's own words do not name the image; the sentence does.
            PlanError::ImageBlocked { volume, image, .. }
            | PlanError::NoKernel { volume, image } => {
                write!(
                    f,
                    "{image} on {volume} cannot boot: {}; {}",
                    self.cause(),
                    self.hint()
                )
            }
            _ => write!(f, "{}; {}", self.cause(), self.hint()),
        }
    }
}

impl std::error::Error for PlanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlanError::Cmdline { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The host facts a plan needs, once the host passed every check.
struct Host {
    mount: PathBuf,
    id: HostId,
}

/// A host state that forbids the read-write mount stage 2 needs, in words,
/// with the user's fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsafeState {
    /// What the volume is, completing "<volume> is ...".
    pub state: &'static str,
    /// What the user does about it, lower-case, ending "then try again".
    pub hint: &'static str,
}

/// The one table of unsafe host states, read by both judges: stage 1's
/// `check_host` (from the volume's badges) and stage 2, which repeats the
/// checks on the device it is about to mount read-write. None for the
/// badges that are facts rather than dangers, or that have checks of their
/// own (read-only, removable, duplicate id).
pub fn unsafe_state(badge: &VolumeBadge, fstype: &FsType) -> Option<UnsafeState> {
    let (state, hint) = match badge {
        VolumeBadge::Hibernated => (
            "hibernated (Windows Fast Startup or hibernation)",
            "start Windows and shut it down fully (shutdown /s /t 0, or turn Fast Startup \
             off), then try again",
        ),
        VolumeBadge::HibernatedElsewhere => (
            "in use by a hibernated Windows (Fast Startup or hibernation keeps every internal \
             volume in use)",
            "start Windows and choose Restart (a restart ends the hibernated session), or turn \
             Fast Startup off, then try again",
        ),
        VolumeBadge::NotDetached => (
            "marked in use by vhdboot: a Linux image ran from it and did not shut down with a \
             clean detach (a crash or power loss), so it may hold half-written data",
            "start Windows, run chkdsk /f on it, then delete vhdboot-in-use.txt from its root \
             and try again",
        ),
        VolumeBadge::Dirty => (
            "marked dirty (not cleanly unmounted)",
            match fstype {
                FsType::Exfat => {
                    "run chkdsk /f on it in Windows (or fsck.exfat on Linux), then try again"
                }
                _ => "start Windows and run chkdsk /f on it, then try again",
            },
        ),
        VolumeBadge::UncleanLog => (
            "not cleanly unmounted: its NTFS journal ($LogFile) holds changes that were never \
             replayed",
            "start Windows so it replays the journal, then choose Restart (or run chkdsk /f on \
             it), then try again",
        ),
        VolumeBadge::LargerThanPartition { .. } => (
            "an NTFS volume larger than its partition, which the kernel mounts read-only",
            "fix the partition or the filesystem size (Windows: chkdsk and Disk Management; \
             Linux: ntfsresize), then try again",
        ),
        VolumeBadge::ReadOnly | VolumeBadge::Removable | VolumeBadge::DuplicateId => return None,
    };
    Some(UnsafeState { state, hint })
}

/// The table's hint for a badge whose refusal has a variant of its own.
fn table_hint(badge: VolumeBadge) -> String {
    unsafe_state(&badge, &FsType::Ntfs).map_or_else(String::new, |row| row.hint.into())
}

/// Checks, in order, that the host is mounted, safe to mount read-write
/// later, holds NTFS or exFAT and has an id stage 2 can find without
/// doubt. `snapshot` holds the other volumes (the hibernation carrier, a
/// volume with the same UUID).
fn check_host(snapshot: &Snapshot, volume: &Volume) -> Result<Host, PlanError> {
    let name = volume.display_name();
    let device = volume.device.clone();
    let mount = match &volume.mount {
        MountState::Mounted { at } => at.clone(),
        MountState::Refused { reason } => {
            return Err(PlanError::HostNotMounted {
                volume: name,
                device,
                why: format!("the kernel refused the mount: {reason}"),
            });
        }
        MountState::NotMounted => {
            return Err(PlanError::HostNotMounted {
                volume: name,
                device,
                why: "stage 1 did not mount it".into(),
            });
        }
    };
    // Hibernation is checked first: its fix (a full shutdown) also clears
    // the dirty flag and the unclean journal that usually come with it.
    // vhdboot's own in-use record comes before the dirty flag: a crashed
    // target often leaves both, and the record says which image and how to
    // clear it.
    let unsafe_host = |badge: VolumeBadge| {
        // Every badge asked about here has its row in the table.
        let row = unsafe_state(&badge, &volume.fstype).unwrap_or(UnsafeState {
            state: "not safe to write",
            hint: "press l for the scan log",
        });
        PlanError::HostUnsafe {
            volume: name.clone(),
            device: device.clone(),
            badge,
            state: row.state,
            hint: row.hint,
        }
    };
    if volume.badges.contains(&VolumeBadge::Hibernated) {
        return Err(unsafe_host(VolumeBadge::Hibernated));
    }
    if volume.badges.contains(&VolumeBadge::HibernatedElsewhere) {
        let carriers: Vec<String> = snapshot
            .volumes
            .iter()
            .filter(|v| v.badges.contains(&VolumeBadge::Hibernated))
            .map(|v| format!("{} ({})", v.display_name(), v.device.display()))
            .collect();
        return Err(PlanError::HibernatedElsewhere {
            volume: name,
            device,
            carriers: if carriers.is_empty() {
                "another volume".into()
            } else {
                carriers.join(", ")
            },
        });
    }
    for badge in [
        VolumeBadge::NotDetached,
        VolumeBadge::Dirty,
        VolumeBadge::UncleanLog,
    ] {
        if volume.badges.contains(&badge) {
            return Err(unsafe_host(badge));
        }
    }
    if let Some(filesystem_bytes) = volume.badges.iter().find_map(|b| match b {
        VolumeBadge::LargerThanPartition { filesystem_bytes } => Some(*filesystem_bytes),
        _ => None,
    }) {
        return Err(PlanError::LargerThanPartition {
            volume: name,
            device,
            filesystem_bytes,
            partition_bytes: volume.size,
        });
    }
    if volume.badges.contains(&VolumeBadge::ReadOnly) {
        return Err(PlanError::HostReadOnly {
            volume: name,
            device,
        });
    }
    if let FsType::Other(other) = &volume.fstype {
        return Err(PlanError::UnsupportedFs {
            volume: name,
            device,
            fstype: other.clone(),
        });
    }
    let partuuid = volume.partuuid.as_ref().filter(|p| !p.is_empty());
    let id = match (&volume.uuid, partuuid) {
        // A shared UUID: the partition UUID finds the volume if no other
        // has it too (a cloned GPT disk copies both, and is refused).
        (Some(u), partuuid) if volume.badges.contains(&VolumeBadge::DuplicateId) => {
            let twins: Vec<&Volume> = snapshot
                .volumes
                .iter()
                .filter(|v| v.device != volume.device)
                .filter(|v| v.uuid.as_ref().is_some_and(|o| o.eq_ignore_ascii_case(u)))
                .collect();
            match partuuid {
                Some(p)
                    if !twins.iter().any(|v| {
                        v.partuuid
                            .as_ref()
                            .is_some_and(|o| o.eq_ignore_ascii_case(p))
                    }) =>
                {
                    HostId::PartUuid(p.clone())
                }
                _ => {
                    return Err(PlanError::DuplicateId {
                        volume: name,
                        device,
                        uuid: u.clone(),
                        others: twins
                            .iter()
                            .map(|v| format!("{} ({})", v.display_name(), v.device.display()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        (Some(u), _) if !u.is_empty() => HostId::Uuid(u.clone()),
        (_, Some(p)) => HostId::PartUuid(p.clone()),
        _ => {
            return Err(PlanError::NoHostId {
                volume: name,
                device,
            });
        }
    };
    Ok(Host { mount, id })
}

/// Why `volume` must not be written now, or None when it may: the same
/// checks a boot makes before stage 2 mounts the host read-write (mounted,
/// not hibernated, not dirty, not write-protected, NTFS or exFAT). The
/// read-write repair asks this judge rather than keeping a verdict of its
/// own.
pub fn host_write_blocker(snapshot: &Snapshot, volume: &Volume) -> Option<PlanError> {
    check_host(snapshot, volume).err()
}

/// The image's part of the verdict, on a host named `volume`: no blocking
/// problem, a kind that can sit on a loop device, and at least one entry.
/// Returns its data size. `vhdboot scan --root` asks this alone, as its
/// folders stand in for hosts that are not there.
pub fn image_problem(volume: &str, image: &Image) -> Result<u64, PlanError> {
    // The scanner's own words come first: they name the exact fault (the
    // footer's type, a sparse file). The kind check is the backstop for a
    // snapshot without them.
    if let Some(problem) = image.problems.iter().find(|p| p.blocks_boot) {
        return Err(PlanError::ImageBlocked {
            volume: volume.to_string(),
            image: image.path.clone(),
            what: problem.what.clone(),
            hint: problem.hint.clone(),
        });
    }
    let Some(data_size) = image.kind.data_size() else {
        let kind = match image.kind {
            ImageKind::DynamicVhd => "it is a dynamic VHD",
            ImageKind::DifferencingVhd => "it is a differencing VHD",
            _ => "it is not a readable image",
        };
        return Err(PlanError::NotLoopable {
            volume: volume.to_string(),
            image: image.path.clone(),
            kind,
        });
    };
    if image.entries.is_empty() {
        return Err(PlanError::NoKernel {
            volume: volume.to_string(),
            image: image.path.clone(),
        });
    }
    Ok(data_size)
}

/// Why `entry` cannot boot as it is (with its own command line), or None
/// when it can: the verdict the list shows and the countdown, the start
/// decision and `nothing_bootable` go by.
pub fn blocker(snapshot: &Snapshot, entry: EntryRef) -> Option<PlanError> {
    plan(snapshot, entry, None).err()
}

/// Why no entry of image `image` on volume `volume` can boot, or None when
/// its entries can. An image with no entry always has a reason: its first
/// blocking problem, or that no kernel was found in it.
pub fn image_blocker(snapshot: &Snapshot, volume: usize, image: usize) -> Option<PlanError> {
    let (Some(v), Some(i)) = (
        snapshot.volumes.get(volume),
        snapshot
            .volumes
            .get(volume)
            .and_then(|v| v.images.get(image)),
    ) else {
        return Some(PlanError::NoSuchEntry(EntryRef {
            volume,
            image,
            entry: 0,
        }));
    };
    check_host(snapshot, v)
        .and_then(|_| image_problem(&v.display_name(), i))
        .err()
}

/// One entry with its host and image checked.
struct Checked<'a> {
    volume: &'a Volume,
    image: &'a Image,
    entry: &'a BootEntry,
    host: Host,
    data_size: u64,
}

/// The checks `plan` makes before it looks at the command line, in order:
/// the entry exists, then its host, then its image.
fn check(snapshot: &Snapshot, entry: EntryRef) -> Result<Checked<'_>, PlanError> {
    let (Some(volume), Some(image), Some(boot_entry)) = (
        snapshot.volume(entry),
        snapshot.image(entry),
        snapshot.entry(entry),
    ) else {
        return Err(PlanError::NoSuchEntry(entry));
    };
    let host = check_host(snapshot, volume)?;
    let data_size = image_problem(&volume.display_name(), image)?;
    Ok(Checked {
        volume,
        image,
        entry: boot_entry,
        host,
        data_size,
    })
}

/// Builds the plan for `entry`, booting it with `cmdline`, or with the
/// entry's own line when None. It refuses what [`blocker`] refuses, then
/// checks that the line can carry the handoff within the kernel's limit.
pub fn plan(
    snapshot: &Snapshot,
    entry: EntryRef,
    cmdline: Option<&str>,
) -> Result<BootPlan, PlanError> {
    let Checked {
        volume,
        image,
        entry: boot_entry,
        host,
        data_size,
    } = check(snapshot, entry)?;
    let mut line = Cmdline::parse(cmdline.unwrap_or(&boot_entry.cmdline));
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let handoff = Handoff {
        host: host.id.clone(),
        identity: HostIdentity {
            uuid: non_empty(&volume.uuid),
            partuuid: non_empty(&volume.partuuid),
            size: Some(volume.size).filter(|&s| s > 0),
        },
        fstype: volume.fstype.clone(),
        image: image.path.clone(),
        size: data_size,
        next: DEFAULT_NEXT.to_string(),
        overlay: overlay_for(&snapshot.immutable, &image.path),
    };
    handoff
        .apply(&mut line)
        .map_err(|source| PlanError::Cmdline {
            entry: boot_entry.title.clone(),
            source,
        })?;

    let cmdline = line.to_string();
    if cmdline.len() >= MAX_CMDLINE {
        return Err(PlanError::CmdlineTooLong {
            entry: boot_entry.title.clone(),
            len: cmdline.len() + 1,
            max: MAX_CMDLINE,
        });
    }

    Ok(BootPlan {
        title: boot_entry.title.clone(),
        entry_id: entry_id(snapshot, entry).unwrap_or_default(),
        host_device: volume.device.clone(),
        host_id: host.id,
        fstype: volume.fstype.clone(),
        host_mount: host.mount,
        image_path: image.path.clone(),
        data_size,
        source: boot_entry.source.clone(),
        version: boot_entry.version.clone(),
        cmdline,
        overlay: handoff.overlay,
    })
}

/// The layer stage 2 puts in front of the image at `path`: a trial store
/// on the host, a RAM layer, or none.
fn overlay_for(policy: &crate::model::ImmutablePolicy, path: &str) -> Option<Overlay> {
    if policy.trial_covers(path) {
        return Some(Overlay::Trial {
            size: policy
                .trial_size
                .unwrap_or(crate::trial::DEFAULT_TRIAL_SIZE),
        });
    }
    policy.covers(path).then_some(Overlay::Ram {
        limit: policy.ram_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::handoff::STAGE2_PATH;
    use crate::discovery::decisions::fixtures::{at, snapshot};
    use crate::model::Problem;

    #[test]
    fn plan_carries_the_host_image_and_handoff() {
        let s = snapshot();
        let p = plan(&s, at(0, 0, 0), Some("root=PARTUUID=x ro quiet splash")).unwrap();
        assert_eq!(p.title, "Ubuntu 24.04 LTS");
        assert_eq!(p.host_device, PathBuf::from("/dev/sda2"));
        assert_eq!(p.host_id, HostId::Uuid("1A2B3C4D5E6F7081".into()));
        assert_eq!(p.fstype, FsType::Ntfs);
        assert_eq!(p.host_mount, PathBuf::from("/run/vhdboot/Data"));
        assert_eq!(p.image_path, "/Images/Ubuntu 24.04.vhd");
        assert_eq!(p.data_size, 20 << 30);
        assert_eq!(
            p.image_file(),
            PathBuf::from("/run/vhdboot/Data/Images/Ubuntu 24.04.vhd")
        );
        assert_eq!(p.source, s.volumes[0].images[0].entries[0].source);
        let handoff = Handoff::parse(&p.cmdline).unwrap();
        assert_eq!(handoff.image, "/Images/Ubuntu 24.04.vhd");
        assert_eq!(handoff.size, 20 << 30);
        assert!(
            p.cmdline
                .starts_with("root=PARTUUID=x ro quiet splash vhdboot.host=UUID=1A2B3C4D5E6F7081"),
            "{}",
            p.cmdline
        );
    }

    #[test]
    fn plan_uses_the_given_cmdline_not_the_entrys() {
        let p = plan(&snapshot(), at(0, 0, 0), Some("rdinit=/custom nomodeset")).unwrap();
        let line = Cmdline::parse(&p.cmdline);
        assert!(line.contains("nomodeset"));
        assert!(!line.contains("splash"));
        assert_eq!(line.get("rdinit"), Some(STAGE2_PATH));
        assert_eq!(Handoff::parse(&p.cmdline).unwrap().next, "/custom");
    }

    #[test]
    fn missing_entry_is_reported() {
        assert_eq!(
            plan(&snapshot(), at(0, 0, 9), Some("")),
            Err(PlanError::NoSuchEntry(at(0, 0, 9)))
        );
    }

    #[test]
    fn unmounted_host_is_refused_with_the_kernels_reason() {
        let mut s = snapshot();
        s.volumes[0].mount = MountState::Refused {
            reason: "wrong fs type".into(),
        };
        let err = plan(&s, at(0, 0, 0), Some("")).unwrap_err();
        assert!(matches!(err, PlanError::HostNotMounted { .. }));
        let text = err.to_string();
        assert!(
            text.contains("Data (/dev/sda2)") && text.contains("wrong fs type"),
            "{text}"
        );
    }

    #[test]
    fn hibernated_or_dirty_host_is_refused() {
        for (badge, expect) in [
            (VolumeBadge::Hibernated, "shut it down fully"),
            (VolumeBadge::Dirty, "chkdsk"),
        ] {
            let mut s = snapshot();
            s.volumes[0].badges.push(badge);
            let err = plan(&s, at(0, 0, 0), Some("")).unwrap_err();
            assert!(matches!(err, PlanError::HostUnsafe { .. }), "{err:?}");
            assert!(err.to_string().contains(expect), "{err}");
        }
    }

    #[test]
    fn host_left_in_use_by_a_crashed_target_is_refused_with_the_fix() {
        let mut s = snapshot();
        // A crash often leaves the dirty flag too; the record's reason wins.
        s.volumes[0].badges.push(VolumeBadge::Dirty);
        s.volumes[0].badges.push(VolumeBadge::NotDetached);
        let err = plan(&s, at(0, 0, 0), Some("")).unwrap_err();
        assert!(matches!(err, PlanError::HostUnsafe { .. }), "{err:?}");
        assert_eq!(err.summary(), "host volume needs a check");
        assert!(err.cause().contains("did not shut down"), "{err}");
        let hint = err.hint();
        assert!(hint.contains("chkdsk /f"), "{hint}");
        assert!(hint.contains(crate::boot::in_use::FILE_NAME), "{hint}");
    }

    #[test]
    fn read_only_host_is_refused() {
        let mut s = snapshot();
        s.volumes[0].badges.push(VolumeBadge::ReadOnly);
        let err = plan(&s, at(0, 0, 0), Some("")).unwrap_err();
        assert!(matches!(err, PlanError::HostReadOnly { .. }), "{err:?}");
    }

    #[test]
    fn host_on_another_filesystem_is_refused() {
        let mut s = snapshot();
        s.volumes[0].fstype = FsType::Other("btrfs".into());
        let err = plan(&s, at(0, 0, 0), Some("")).unwrap_err();
        assert!(err.to_string().contains("btrfs"), "{err}");
    }

    #[test]
    fn host_without_fs_uuid_falls_back_to_partuuid() {
        let mut s = snapshot();
        s.volumes[0].uuid = None;
        let p = plan(&s, at(0, 0, 0), Some("")).unwrap();
        assert_eq!(
            p.host_id,
            HostId::PartUuid("5f3c2a10-0b1e-4c5d-9e8f-0123456789ab".into())
        );
        assert!(
            p.cmdline.contains("vhdboot.host=PARTUUID=5f3c2a10"),
            "{}",
            p.cmdline
        );
    }

    #[test]
    fn host_without_any_uuid_is_refused() {
        let mut s = snapshot();
        s.volumes[0].uuid = None;
        s.volumes[0].partuuid = Some(String::new());
        let err = plan(&s, at(0, 0, 0), Some("")).unwrap_err();
        assert!(matches!(err, PlanError::NoHostId { .. }), "{err:?}");
    }

    #[test]
    fn dynamic_vhd_is_refused_with_a_conversion_hint() {
        let mut s = snapshot();
        s.volumes[0].images[0].kind = ImageKind::DynamicVhd;
        let err = plan(&s, at(0, 0, 0), Some("")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("dynamic VHD") && text.contains("vhdboot convert IN.vhd OUT.vhd"),
            "{text}"
        );
        // A differencing VHD needs its parents, which only qemu-img follows.
        s.volumes[0].images[0].kind = ImageKind::DifferencingVhd;
        let text = plan(&s, at(0, 0, 0), Some("")).unwrap_err().to_string();
        assert!(
            text.contains("differencing VHD") && text.contains("subformat=fixed"),
            "{text}"
        );
    }

    #[test]
    fn raw_image_boots_with_its_data_size() {
        let mut s = snapshot();
        s.volumes[0].images[0].kind = ImageKind::Raw { data_size: 4096 };
        assert_eq!(plan(&s, at(0, 0, 0), Some("")).unwrap().data_size, 4096);
    }

    #[test]
    fn blocking_problem_is_refused_and_warnings_are_not() {
        let mut s = snapshot();
        s.volumes[0].images[0]
            .problems
            .push(Problem::warning("old kernel", "update it"));
        assert!(plan(&s, at(0, 0, 0), Some("")).is_ok());
        s.volumes[0].images[0].problems.push(Problem::blocking(
            "the file is compressed",
            "uncompress it in Windows",
        ));
        let err = plan(&s, at(0, 0, 0), Some("")).unwrap_err();
        assert!(err.to_string().contains("the file is compressed"), "{err}");
    }

    #[test]
    fn rdinit_that_cannot_be_carried_over_is_reported_for_editing() {
        // An open quote in the entry's rdinit= makes a value that has no
        // spelling the kernel reads back unchanged.
        let err = plan(&snapshot(), at(0, 0, 0), Some(r#"quiet rdinit=/a"b c"#)).unwrap_err();
        assert!(matches!(err, PlanError::Cmdline { .. }), "{err:?}");
        assert!(err.to_string().contains("edit"), "{err}");
    }

    #[test]
    fn command_line_over_the_kernel_limit_is_refused() {
        let s = snapshot();
        let base = plan(&s, at(0, 0, 0), Some("")).unwrap().cmdline.len();
        // One byte is kept for the terminating NUL.
        let fits = format!("x={}", "a".repeat(MAX_CMDLINE - 1 - base - 3));
        assert_eq!(
            plan(&s, at(0, 0, 0), Some(&fits)).unwrap().cmdline.len(),
            MAX_CMDLINE - 1
        );
        let too_long = format!("{fits}a");
        let err = plan(&s, at(0, 0, 0), Some(&too_long)).unwrap_err();
        assert!(
            matches!(
                err,
                PlanError::CmdlineTooLong {
                    len: 2049,
                    max: 2048,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn exfat_host_hands_over_the_exfat_driver() {
        let mut s = snapshot();
        s.volumes[0].fstype = FsType::Exfat;
        let p = plan(&s, at(0, 0, 0), Some("")).unwrap();
        assert_eq!(Handoff::parse(&p.cmdline).unwrap().fstype, FsType::Exfat);
    }

    #[test]
    fn blocker_is_the_plans_own_refusal() {
        let mut s = snapshot();
        assert_eq!(blocker(&s, at(0, 0, 0)), None);
        s.volumes[0].badges.push(VolumeBadge::Hibernated);
        let why = blocker(&s, at(0, 0, 0)).unwrap();
        assert_eq!(Err(why.clone()), plan(&s, at(0, 0, 0), None));
        assert_eq!(why.summary(), "host volume hibernated");
        assert_eq!(image_blocker(&s, 0, 0), Some(why));
    }

    #[test]
    fn own_cmdline_is_used_when_none_is_given() {
        let s = snapshot();
        let own = &s.volumes[0].images[0].entries[0].cmdline;
        assert_eq!(
            plan(&s, at(0, 0, 0), None),
            plan(&s, at(0, 0, 0), Some(own))
        );
    }

    #[test]
    fn image_without_entries_says_no_kernel_unless_a_problem_says_more() {
        let mut s = snapshot();
        s.volumes[0].images[0].entries.clear();
        let why = image_blocker(&s, 0, 0).unwrap();
        assert!(matches!(why, PlanError::NoKernel { .. }), "{why:?}");
        assert_eq!(why.summary(), "no boot entry");
        assert!(why.to_string().contains("no UKI in /EFI/Linux"), "{why}");
        s.volumes[0].images[0].problems.push(Problem::blocking(
            "no EFI system partition",
            "reinstall the boot loader",
        ));
        assert_eq!(
            image_blocker(&s, 0, 0).map(|e| e.cause()),
            Some("no EFI system partition".into())
        );
    }

    /// The fixture snapshot with one more NTFS volume, `/dev/sdc1`, last.
    fn with_second_volume() -> Snapshot {
        let mut s = snapshot();
        let mut other = s.volumes[0].clone();
        other.device = "/dev/sdc1".into();
        other.label = Some("Windows".into());
        other.uuid = Some("C0FFEE".into());
        other.partuuid = Some("other-part".into());
        other.images.clear();
        s.volumes.push(other);
        s
    }

    fn last(s: &mut Snapshot) -> &mut Volume {
        s.volumes.last_mut().unwrap()
    }

    #[test]
    fn hibernation_on_another_volume_refuses_naming_the_carrier() {
        let mut s = with_second_volume();
        last(&mut s).badges.push(VolumeBadge::Hibernated);
        crate::discovery::preflight::apply_machine_verdicts(&mut s.volumes);
        let err = blocker(&s, at(0, 0, 0)).unwrap();
        assert_eq!(err.summary(), "Windows hibernated");
        assert_eq!(
            err.to_string(),
            "Windows is hibernated (Fast Startup or hibernation): Windows (/dev/sdc1) holds its \
             hibernation file, and a hibernated Windows keeps every internal volume in use, so \
             Data (/dev/sda2) must not be written; start Windows and choose Restart (a restart \
             ends the hibernated session), or turn Fast Startup off, then try again"
        );
    }

    #[test]
    fn a_removable_host_is_not_held_by_hibernation_elsewhere() {
        let mut s = with_second_volume();
        last(&mut s).badges.push(VolumeBadge::Hibernated);
        s.volumes[0].badges.push(VolumeBadge::Removable);
        crate::discovery::preflight::apply_machine_verdicts(&mut s.volumes);
        assert_eq!(blocker(&s, at(0, 0, 0)), None);
    }

    #[test]
    fn unclean_journal_and_dirty_exfat_are_refused_with_their_fixes() {
        let mut s = snapshot();
        s.volumes[0].badges.push(VolumeBadge::UncleanLog);
        let err = blocker(&s, at(0, 0, 0)).unwrap();
        assert_eq!(err.summary(), "host journal not clean");
        assert!(
            err.to_string()
                .contains("its NTFS journal ($LogFile) holds changes")
                && err.to_string().contains("choose Restart"),
            "{err}"
        );
        let mut s = snapshot();
        s.volumes[0].fstype = FsType::Exfat;
        s.volumes[0].badges.push(VolumeBadge::Dirty);
        let err = blocker(&s, at(0, 0, 0)).unwrap();
        assert_eq!(err.summary(), "host volume dirty");
        assert!(err.to_string().contains("fsck.exfat"), "{err}");
    }

    #[test]
    fn ntfs_larger_than_its_partition_is_refused_with_both_sizes() {
        let mut s = snapshot();
        s.volumes[0].size = 1 << 20;
        s.volumes[0].badges.push(VolumeBadge::LargerThanPartition {
            filesystem_bytes: (1 << 20) + 4096,
        });
        let err = blocker(&s, at(0, 0, 0)).unwrap();
        assert_eq!(err.summary(), "host larger than its partition");
        assert!(
            err.to_string().contains(
                "needs 1052672 bytes, more than the 1048576-byte partition holds, so the kernel \
                 would mount it read-only"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_shared_uuid_boots_by_partuuid_when_that_is_unique() {
        let mut s = with_second_volume();
        let uuid = s.volumes[0].uuid.clone();
        last(&mut s).uuid = uuid;
        crate::discovery::preflight::apply_machine_verdicts(&mut s.volumes);
        assert!(s.volumes[0].badges.contains(&VolumeBadge::DuplicateId));
        let p = plan(&s, at(0, 0, 0), None).unwrap();
        assert_eq!(
            p.host_id,
            HostId::PartUuid("5f3c2a10-0b1e-4c5d-9e8f-0123456789ab".into())
        );
        let h = Handoff::parse(&p.cmdline).unwrap();
        assert_eq!(h.identity.uuid.as_deref(), Some("1A2B3C4D5E6F7081"));
    }

    #[test]
    fn a_shared_uuid_and_partuuid_is_refused_naming_the_twin() {
        let mut s = with_second_volume();
        let uuid = s.volumes[0].uuid.clone();
        last(&mut s).uuid = uuid;
        let partuuid = s.volumes[0].partuuid.clone();
        last(&mut s).partuuid = partuuid;
        crate::discovery::preflight::apply_machine_verdicts(&mut s.volumes);
        let err = blocker(&s, at(0, 0, 0)).unwrap();
        assert_eq!(err.summary(), "host id not unique");
        assert!(
            err.to_string().starts_with(
                "Data (/dev/sda2) has the filesystem UUID 1A2B3C4D5E6F7081, as Windows \
                 (/dev/sdc1) does, and no partition UUID tells them apart"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_handoff_carries_the_hosts_whole_identity() {
        let s = snapshot();
        let p = plan(&s, at(0, 0, 0), None).unwrap();
        let h = Handoff::parse(&p.cmdline).unwrap();
        assert_eq!(
            h.identity,
            HostIdentity {
                uuid: s.volumes[0].uuid.clone(),
                partuuid: s.volumes[0].partuuid.clone(),
                size: Some(s.volumes[0].size),
            }
        );
    }

    #[test]
    fn trial_image_hands_over_the_store_size_and_wins_over_immutable() {
        let mut p = crate::model::ImmutablePolicy::default();
        assert_eq!(overlay_for(&p, "/a.vhd"), None);
        p.toggle("/a.vhd");
        p.toggle_trial("/A.VHD");
        assert!(!p.covers("/a.vhd"), "a trial boot is not immutable too");
        assert_eq!(
            overlay_for(&p, "/a.vhd"),
            Some(Overlay::Trial {
                size: crate::trial::DEFAULT_TRIAL_SIZE
            })
        );
        p.trial_size = Some(256 << 20);
        assert_eq!(
            overlay_for(&p, "/a.vhd"),
            Some(Overlay::Trial { size: 256 << 20 })
        );
        p.toggle("/a.vhd");
        assert_eq!(
            overlay_for(&p, "/a.vhd"),
            Some(Overlay::Ram { limit: None })
        );
    }

    #[test]
    fn immutable_image_hands_over_a_ram_overlay_with_the_limit() {
        let mut s = snapshot();
        assert_eq!(plan(&s, at(0, 0, 0), None).unwrap().overlay, None);
        s.immutable.images.push("/images/ubuntu 24.04.VHD".into());
        s.immutable.ram_limit = Some(64 << 20);
        let p = plan(&s, at(0, 0, 0), None).unwrap();
        let ram = Overlay::Ram {
            limit: Some(64 << 20),
        };
        assert_eq!(p.overlay, Some(ram));
        assert_eq!(Handoff::parse(&p.cmdline).unwrap().overlay, Some(ram));
        // Only the listed image: Fedora on the same volume boots normally.
        let other = plan(&s, at(0, 1, 0), None).unwrap();
        assert_eq!(Handoff::parse(&other.cmdline).unwrap().overlay, None);
    }

    #[test]
    fn message_is_cause_then_hint() {
        let mut s = snapshot();
        s.volumes[0].badges.push(VolumeBadge::ReadOnly);
        let err = blocker(&s, at(0, 0, 0)).unwrap();
        assert_eq!(
            err.to_string(),
            "Data (/dev/sda2) is read-only, but stage 2 must mount it read-write to run the \
             image; remove the write protection and rescan"
        );
    }
}
