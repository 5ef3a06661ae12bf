//! Opening an image for repair (issue 16, item 1): which file is attached
//! and how, how each partition in it is mounted and where, which one a
//! chroot goes into, and the summary the rescue shell opens with. Pure:
//! stage 1's host does the syscalls (`sys::loopdev`, `sys::mount`) in the
//! order these decisions give and undoes them in reverse when the shell
//! exits. ZFSBootMenu's recovery shell and chroot are the model.

use std::path::{Path, PathBuf};

use super::plan::{PlanError, host_write_blocker};
use crate::model::{MountState, Snapshot};

/// Where an image's partitions are mounted: one folder per image, one
/// sub-folder per partition (`/run/vhdboot/repair/<image>/part<N>`).
pub const REPAIR_DIR: &str = "/run/vhdboot/repair";

/// The host's folders bound into the image's root for a chroot, in the
/// order they are bound (and unbound in reverse).
pub const CHROOT_BINDS: [&str; 4] = ["proc", "sys", "dev", "run"];

/// How an image is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    /// A read-only loop device; every filesystem read-only without journal
    /// replay. Writes nothing anywhere.
    ReadOnly,
    /// A writable loop device over a host remounted read-write for the
    /// shell's lifetime, filesystems read-write, and a chroot prepared.
    ReadWrite,
}

/// Everything the host needs to open one image for repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairPlan {
    pub mode: RepairMode,
    /// The image's file name, for messages.
    pub image_name: String,
    /// The host volume's name and device, for messages.
    pub volume_name: String,
    pub host_device: PathBuf,
    /// Where stage 1 mounted the host (read-only).
    pub host_mount: PathBuf,
    /// The image's path on the host, starting with `/`.
    pub image_path: String,
    /// Bytes the loop device exposes: the file without its VHD footer.
    pub data_size: u64,
    /// The folder the image's partitions are mounted under.
    pub dir: PathBuf,
}

impl RepairPlan {
    /// The image file as stage 1 sees it.
    pub fn image_file(&self) -> PathBuf {
        self.host_mount
            .join(self.image_path.trim_start_matches('/'))
    }
}

/// Decides whether image `image` on volume `volume` can be opened in
/// `mode`, and how. Read-only needs a mounted host and an image a loop
/// device can hold; read-write also needs a host that `boot::plan` judges
/// safe to write and an image without a blocking problem (a sparse file
/// would fail with EIO past its valid data length, shared/lessons.md).
pub fn repair_plan(
    snapshot: &Snapshot,
    volume: usize,
    image: usize,
    mode: RepairMode,
) -> Result<RepairPlan, PlanError> {
    let no_such = || {
        PlanError::NoSuchEntry(crate::model::EntryRef {
            volume,
            image,
            entry: 0,
        })
    };
    let v = snapshot.volumes.get(volume).ok_or_else(no_such)?;
    let img = v.images.get(image).ok_or_else(no_such)?;
    let volume_name = v.display_name();
    let host_mount = match &v.mount {
        MountState::Mounted { at } => at.clone(),
        MountState::Refused { reason } => {
            return Err(PlanError::HostNotMounted {
                volume: volume_name,
                device: v.device.clone(),
                why: format!("the kernel refused the mount: {reason}"),
            });
        }
        MountState::NotMounted => {
            return Err(PlanError::HostNotMounted {
                volume: volume_name,
                device: v.device.clone(),
                why: "stage 1 did not mount it".into(),
            });
        }
    };
    let Some(data_size) = img.kind.data_size() else {
        return Err(PlanError::NotLoopable {
            volume: volume_name,
            image: img.path.clone(),
            kind: "it is not a fixed VHD or raw image, so no loop device can hold it",
        });
    };
    if mode == RepairMode::ReadWrite {
        if let Some(e) = host_write_blocker(snapshot, v) {
            return Err(e);
        }
        if let Some(p) = img.problems.iter().find(|p| p.blocks_boot) {
            return Err(PlanError::ImageBlocked {
                volume: volume_name,
                image: img.path.clone(),
                what: p.what.clone(),
                hint: p.hint.clone(),
            });
        }
    }
    Ok(RepairPlan {
        mode,
        image_name: img.name().to_string(),
        volume_name,
        host_device: v.device.clone(),
        host_mount,
        image_path: img.path.clone(),
        data_size,
        dir: Path::new(REPAIR_DIR).join(folder_name(img.name())),
    })
}

/// A folder name for an image: its file name without the extension, with
/// anything but letters, digits, `.`, `_` and `-` replaced, so that the
/// path is easy to type in the shell.
pub fn folder_name(file_name: &str) -> String {
    let stem = match file_name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => file_name,
    };
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        "image".into()
    } else {
        name
    }
}

/// The mount point of partition device `partition` (`/dev/loop3p2`) under
/// `dir`: `dir/part2`.
pub fn partition_dir(dir: &Path, partition: &Path) -> PathBuf {
    let name = partition
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let number = name
        .rsplit_once('p')
        .map(|(_, n)| n)
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    match number {
        Some(n) => dir.join(format!("part{n}")),
        None => dir.join(name),
    }
}

/// How one filesystem is mounted: the kernel driver and its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMount {
    pub driver: &'static str,
    /// The data string. Read-only mounts never replay a journal: ext4
    /// replays it even when mounted `ro` unless told `noload`
    /// (shared/lessons.md), xfs needs `norecovery`, btrfs
    /// `rescue=nologreplay`.
    pub options: &'static str,
}

/// How to mount a filesystem libblkid calls `fstype`, or why it is not
/// mounted.
pub fn partition_mount(fstype: &str, mode: RepairMode) -> Result<PartitionMount, String> {
    let ro = mode == RepairMode::ReadOnly;
    let (driver, options) = match fstype {
        "ext4" | "ext3" | "ext2" => ("ext4", if ro { "noload" } else { "" }),
        "xfs" => ("xfs", if ro { "norecovery" } else { "" }),
        "btrfs" => ("btrfs", if ro { "rescue=nologreplay" } else { "" }),
        "vfat" => ("vfat", ""),
        "exfat" => ("exfat", ""),
        "ntfs" => ("ntfs3", ""),
        "swap" => return Err("swap space, nothing to mount".into()),
        "crypto_LUKS" => {
            return Err("encrypted (LUKS): unlock it in the shell if cryptsetup is there".into());
        }
        "LVM2_member" => return Err("an LVM physical volume: not opened here".into()),
        "" => return Err("no filesystem was recognised".into()),
        other => return Err(format!("{other} is not a filesystem vhdboot mounts")),
    };
    Ok(PartitionMount { driver, options })
}

/// What happened to one partition of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOutcome {
    /// `/dev/loopNpM`.
    pub device: PathBuf,
    /// libblkid's name for its filesystem, if any.
    pub fstype: Option<String>,
    pub label: Option<String>,
    /// Where it is mounted, or why it is not.
    pub mounted: Result<PathBuf, String>,
    /// Whether `etc/os-release` (or `usr/lib/os-release`) is in it: the
    /// sign of a root filesystem.
    pub os_release: bool,
}

/// Which partition a chroot goes into: the first mounted one holding an
/// os-release file.
pub fn chroot_root(outcomes: &[PartitionOutcome]) -> Option<&Path> {
    outcomes
        .iter()
        .filter(|o| o.os_release)
        .find_map(|o| o.mounted.as_ref().ok())
        .map(PathBuf::as_path)
}

/// The lines the rescue shell opens with: what is mounted where, what is
/// not and why, how to chroot, and that `exit` undoes it all.
pub fn summary(
    plan: &RepairPlan,
    outcomes: &[PartitionOutcome],
    chroot: Option<&Path>,
) -> Vec<String> {
    let mode = match plan.mode {
        RepairMode::ReadOnly => "read-only, no journal replay",
        RepairMode::ReadWrite => "READ-WRITE",
    };
    let mut lines = vec![format!(
        "vhdboot repair: {} on {} ({mode})",
        plan.image_name, plan.volume_name
    )];
    if outcomes.is_empty() {
        lines.push("  no partitions were found in the image".into());
    }
    for o in outcomes {
        let what = match (&o.fstype, &o.label) {
            (Some(t), Some(l)) if !l.is_empty() => format!("{t} \"{l}\""),
            (Some(t), _) => t.clone(),
            (None, _) => "unknown".into(),
        };
        match &o.mounted {
            Ok(at) => lines.push(format!(
                "  {} ({what}) mounted at {}{}",
                o.device.display(),
                at.display(),
                if o.os_release { " [root]" } else { "" }
            )),
            Err(why) => lines.push(format!(
                "  {} ({what}) not mounted: {why}",
                o.device.display()
            )),
        }
    }
    match (plan.mode, chroot) {
        (RepairMode::ReadWrite, Some(root)) => lines.push(format!(
            "  chroot ready (/proc /sys /dev /run bound): chroot {} /bin/sh",
            root.display()
        )),
        (RepairMode::ReadWrite, None) => {
            lines.push("  no root filesystem (etc/os-release) found: no chroot prepared".into())
        }
        (RepairMode::ReadOnly, _) => {}
    }
    lines.push("  type exit to unmount everything and go back to the menu".into());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FsType, Image, ImageKind, Problem, Volume, VolumeBadge};

    fn snapshot(badges: Vec<VolumeBadge>, kind: ImageKind) -> Snapshot {
        Snapshot {
            volumes: vec![Volume {
                device: "/dev/vda2".into(),
                fstype: FsType::Exfat,
                label: Some("HOST".into()),
                uuid: Some("1234-5678".into()),
                partuuid: None,
                size: 1 << 30,
                mount: MountState::Mounted {
                    at: "/run/vhdboot/hosts/1234-5678".into(),
                },
                badges,
                images: vec![Image {
                    trial: None,
                    path: "/vhd/My Linux.vhd".into(),
                    file_size: 64 << 20,
                    kind,
                    entries: Vec::new(),
                    problems: Vec::new(),
                }],
            }],
            ..Snapshot::default()
        }
    }

    fn fixed() -> ImageKind {
        ImageKind::FixedVhd {
            data_size: (64 << 20) - 512,
        }
    }

    #[test]
    fn read_only_repair_of_a_fixed_vhd_is_planned_under_the_repair_dir() {
        let p = repair_plan(&snapshot(vec![], fixed()), 0, 0, RepairMode::ReadOnly).unwrap();
        assert_eq!(p.dir, Path::new("/run/vhdboot/repair/My_Linux"));
        assert_eq!(
            p.image_file(),
            Path::new("/run/vhdboot/hosts/1234-5678/vhd/My Linux.vhd")
        );
        assert_eq!(p.data_size, (64 << 20) - 512);
    }

    #[test]
    fn read_only_repair_is_allowed_on_a_dirty_host() {
        let s = snapshot(vec![VolumeBadge::Dirty], fixed());
        assert!(repair_plan(&s, 0, 0, RepairMode::ReadOnly).is_ok());
    }

    #[test]
    fn read_write_repair_is_refused_on_a_dirty_or_hibernated_host_with_the_reason() {
        for badge in [VolumeBadge::Dirty, VolumeBadge::Hibernated] {
            let s = snapshot(vec![badge], fixed());
            let err = repair_plan(&s, 0, 0, RepairMode::ReadWrite).unwrap_err();
            assert!(matches!(err, PlanError::HostUnsafe { .. }), "{err:?}");
            assert!(err.to_string().contains("Windows"), "{err}");
        }
    }

    #[test]
    fn read_write_repair_is_allowed_on_a_clean_host() {
        let s = snapshot(vec![], fixed());
        assert!(repair_plan(&s, 0, 0, RepairMode::ReadWrite).is_ok());
    }

    #[test]
    fn read_write_repair_of_an_image_with_a_blocking_problem_is_refused() {
        let mut s = snapshot(vec![], fixed());
        s.volumes[0].images[0]
            .problems
            .push(Problem::blocking("the file is sparse", "copy it"));
        let err = repair_plan(&s, 0, 0, RepairMode::ReadWrite).unwrap_err();
        assert!(matches!(err, PlanError::ImageBlocked { .. }), "{err:?}");
        assert!(repair_plan(&s, 0, 0, RepairMode::ReadOnly).is_ok());
    }

    #[test]
    fn a_dynamic_vhd_cannot_be_opened() {
        let s = snapshot(vec![], ImageKind::DynamicVhd);
        let err = repair_plan(&s, 0, 0, RepairMode::ReadOnly).unwrap_err();
        assert!(matches!(err, PlanError::NotLoopable { .. }), "{err:?}");
    }

    #[test]
    fn read_only_mounts_never_replay_a_journal() {
        let ro = |t| partition_mount(t, RepairMode::ReadOnly).unwrap();
        assert_eq!(ro("ext4").options, "noload");
        assert_eq!(ro("ext2").driver, "ext4");
        assert_eq!(ro("xfs").options, "norecovery");
        assert_eq!(ro("btrfs").options, "rescue=nologreplay");
        assert_eq!(ro("ntfs").driver, "ntfs3");
        assert_eq!(ro("vfat").driver, "vfat");
        let rw = partition_mount("ext4", RepairMode::ReadWrite).unwrap();
        assert_eq!(rw.options, "");
    }

    #[test]
    fn swap_and_luks_are_not_mounted_and_say_why() {
        assert!(
            partition_mount("swap", RepairMode::ReadOnly)
                .unwrap_err()
                .contains("swap")
        );
        assert!(
            partition_mount("crypto_LUKS", RepairMode::ReadOnly)
                .unwrap_err()
                .contains("LUKS")
        );
    }

    #[test]
    fn partition_dirs_are_named_by_partition_number() {
        let dir = Path::new("/run/vhdboot/repair/x");
        assert_eq!(
            partition_dir(dir, Path::new("/dev/loop3p12")),
            dir.join("part12")
        );
    }

    #[test]
    fn folder_names_are_easy_to_type() {
        assert_eq!(folder_name("Fedora 40 (test).vhd"), "Fedora_40__test_");
        assert_eq!(folder_name(".vhd"), ".vhd");
        assert_eq!(folder_name(""), "image");
    }

    #[test]
    fn the_chroot_goes_into_the_first_mounted_root_and_the_summary_says_so() {
        let plan = repair_plan(&snapshot(vec![], fixed()), 0, 0, RepairMode::ReadWrite).unwrap();
        let outcomes = vec![
            PartitionOutcome {
                device: "/dev/loop0p1".into(),
                fstype: Some("vfat".into()),
                label: Some("ESP".into()),
                mounted: Ok(plan.dir.join("part1")),
                os_release: false,
            },
            PartitionOutcome {
                device: "/dev/loop0p2".into(),
                fstype: Some("swap".into()),
                label: None,
                mounted: Err("swap space, nothing to mount".into()),
                os_release: false,
            },
            PartitionOutcome {
                device: "/dev/loop0p3".into(),
                fstype: Some("ext4".into()),
                label: Some("root".into()),
                mounted: Ok(plan.dir.join("part3")),
                os_release: true,
            },
        ];
        let root = chroot_root(&outcomes);
        assert_eq!(root, Some(plan.dir.join("part3").as_path()));
        let text = summary(&plan, &outcomes, root).join("\n");
        assert!(
            text.contains(
                "/dev/loop0p1 (vfat \"ESP\") mounted at /run/vhdboot/repair/My_Linux/part1"
            ),
            "{text}"
        );
        assert!(
            text.contains("/dev/loop0p2 (swap) not mounted: swap space"),
            "{text}"
        );
        assert!(
            text.contains("chroot /run/vhdboot/repair/My_Linux/part3 /bin/sh"),
            "{text}"
        );
        assert!(text.contains("READ-WRITE"), "{text}");
    }
}
