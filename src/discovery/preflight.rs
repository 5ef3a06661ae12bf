//! Pre-flight checks made during discovery, each turned into a
//! [`Problem`] or a [`VolumeBadge`] that the menu shows and `boot::plan`
//! refuses on. They stay cheap (one `statx` per image, one sector and one
//! MFT record per NTFS volume, four bytes of `hiberfil.sys`); the slow
//! initramfs check runs only at boot (`image::initrd`).
//!
//! The facts come from the caller (stage 1 fills [`FileFacts`] through
//! `sys::fileinfo`), so the decisions here are tested on plain values.

use crate::image::exfat::ExfatBoot;
use crate::image::ntfs::{self, LogFileState};
use crate::model::{FileFacts, FsType, Problem, Volume, VolumeBadge};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The problems in how the image file is stored. Each blocks the boot:
/// stage 2 writes through the loop device, and ntfs3 fails writes past
/// the allocated part of a file (shared/lessons.md), cannot read EFS
/// files, and would have to compress every write.
pub fn file_problems(facts: &FileFacts) -> Vec<Problem> {
    let mut out = Vec::new();
    if facts.encrypted == Some(true) {
        out.push(Problem::blocking(
            "the image file is encrypted by the host filesystem (NTFS EFS), which ntfs3 cannot read",
            "in Windows, decrypt it (Properties > Advanced > clear \"Encrypt contents\", or \
             `cipher /d FILE`), then press r to rescan",
        ));
    }
    if facts.compressed == Some(true) {
        out.push(Problem::blocking(
            "the image file is compressed by the host filesystem (NTFS compression)",
            "in Windows, uncompress it (Properties > Advanced > clear \"Compress contents\", or \
             `compact /u FILE`), then press r to rescan",
        ));
    } else if let Some(allocated) = facts.allocated.filter(|&a| a < facts.size) {
        // A compressed file also has fewer blocks than bytes; it is
        // reported as compressed above, not twice.
        out.push(Problem::blocking(
            format!(
                "the image file is sparse: only {allocated} of its {} bytes are allocated on \
                 the host volume",
                facts.size
            ),
            "writes into the unallocated part fail through ntfs3; make a fully allocated copy \
             (Windows: `fsutil sparse setflag FILE 0`; Linux: `cp --sparse=never`), then press \
             r to rescan",
        ));
    }
    out
}

/// The badges a host volume earns from its own bytes, read from the
/// device itself (opened read-only) before any mount: NTFS' dirty flag,
/// its journal's clean state and its size against the partition's
/// (`device_size` bytes); exFAT's VolumeDirty. Stage 1 badges with them
/// and stage 2 checks them again on the device it is about to mount.
/// What could not be read is returned as sentences for the log, and
/// earns no badge.
pub fn device_badges(
    device: &Path,
    fstype: &FsType,
    device_size: u64,
) -> (Vec<VolumeBadge>, Vec<String>) {
    let (mut badges, mut notes) = (Vec::new(), Vec::new());
    let open = || File::open(device).map_err(|e| format!("opening {}: {e}", device.display()));
    match fstype {
        FsType::Ntfs => {
            match open().and_then(|mut f| {
                ntfs::read_volume_info(&mut f).map_err(|e| format!("{}: {e}", device.display()))
            }) {
                Ok((boot, info)) => {
                    if info.is_dirty() {
                        badges.push(VolumeBadge::Dirty);
                    }
                    if boot.larger_than(device_size) {
                        badges.push(VolumeBadge::LargerThanPartition {
                            filesystem_bytes: boot.required_bytes().unwrap_or(u64::MAX),
                        });
                    }
                }
                Err(e) => notes.push(format!("cannot read the NTFS dirty flag: {e}")),
            }
            match open().and_then(|mut f| {
                ntfs::read_logfile_state(&mut f).map_err(|e| format!("{}: {e}", device.display()))
            }) {
                Ok(LogFileState::Unclean) => badges.push(VolumeBadge::UncleanLog),
                Ok(LogFileState::Clean | LogFileState::Empty) => {}
                Err(e) => notes.push(format!("cannot read the NTFS journal's state: {e}")),
            }
        }
        FsType::Exfat => {
            let mut sector = [0u8; 512];
            match open().and_then(|mut f| {
                f.read_exact(&mut sector)
                    .map_err(|e| format!("reading {}: {e}", device.display()))
            }) {
                Ok(()) => match ExfatBoot::parse(&sector) {
                    Ok(boot) if boot.is_dirty() => badges.push(VolumeBadge::Dirty),
                    Ok(_) => {}
                    Err(e) => notes.push(format!(
                        "cannot read the exFAT dirty flag: {}: {e}",
                        device.display()
                    )),
                },
                Err(e) => notes.push(format!("cannot read the exFAT dirty flag: {e}")),
            }
        }
        FsType::Other(_) => {}
    }
    (badges, notes)
}

/// The verdicts that need every volume of the machine, recomputed from
/// the volumes' own badges whenever the set changes:
/// - if any NTFS volume carries Windows' hibernation file, every other
///   NTFS and exFAT volume on an internal disk is badged
///   [`VolumeBadge::HibernatedElsewhere`]: a hibernated (or Fast Startup)
///   Windows keeps the cached state of every internal volume it had
///   mounted, not only of its system volume, and ntfs-3g mounts them all
///   read-only for that reason. Removable disks are not held that way;
/// - volumes that share a filesystem UUID are each badged
///   [`VolumeBadge::DuplicateId`].
pub fn apply_machine_verdicts(volumes: &mut [Volume]) {
    for v in volumes.iter_mut() {
        v.badges.retain(|b| {
            !matches!(
                b,
                VolumeBadge::HibernatedElsewhere | VolumeBadge::DuplicateId
            )
        });
    }
    let hibernated = volumes
        .iter()
        .any(|v| v.fstype == FsType::Ntfs && v.badges.contains(&VolumeBadge::Hibernated));
    let uuids: Vec<Option<String>> = volumes
        .iter()
        .map(|v| {
            v.uuid
                .as_ref()
                .filter(|u| !u.is_empty())
                .map(|u| u.to_ascii_lowercase())
        })
        .collect();
    for (i, v) in volumes.iter_mut().enumerate() {
        let host_fs = matches!(v.fstype, FsType::Ntfs | FsType::Exfat);
        if hibernated
            && host_fs
            && !v.badges.contains(&VolumeBadge::Hibernated)
            && !v.badges.contains(&VolumeBadge::Removable)
        {
            v.badges.push(VolumeBadge::HibernatedElsewhere);
        }
        let shared = uuids[i].as_ref().is_some_and(|u| {
            uuids
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && other.as_ref() == Some(u))
        });
        if shared {
            v.badges.push(VolumeBadge::DuplicateId);
        }
    }
}

/// The badge for Windows hibernation or Fast Startup, from the first bytes
/// of `hiberfil.sys` in the root of a mounted NTFS volume (found without
/// regard to case). No file, or a cleared one, gives None.
pub fn hibernation_badge(root: &Path) -> Result<Option<VolumeBadge>, String> {
    let entries =
        std::fs::read_dir(root).map_err(|e| format!("listing {}: {e}", root.display()))?;
    let Some(entry) = entries.flatten().find(|e| {
        e.file_name()
            .to_string_lossy()
            .eq_ignore_ascii_case(ntfs::HIBERFIL)
    }) else {
        return Ok(None);
    };
    let path = entry.path();
    let mut head = [0u8; 4];
    let mut f = File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let n = f
        .read(&mut head)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(
        ntfs::is_hibernation_signature(head.get(..n).unwrap_or_default())
            .then_some(VolumeBadge::Hibernated),
    )
}

/// The notice shown when the firmware has Secure Boot on. Not blocking:
/// a signed kernel boots; an unsigned one is refused by kexec, and the
/// failure then says so.
pub fn secure_boot_notice(secure_boot: Option<bool>) -> Option<Problem> {
    (secure_boot == Some(true)).then(|| {
        Problem::warning(
            "Secure Boot is on: the target kernel must be signed by a key the firmware trusts, \
             or kexec will refuse it",
            "boot signed distribution kernels, enroll your own key (MOK), or turn Secure Boot \
             off in the firmware setup",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(size: u64, allocated: u64) -> FileFacts {
        FileFacts {
            size,
            allocated: Some(allocated),
            compressed: Some(false),
            encrypted: Some(false),
        }
    }

    #[test]
    fn fully_allocated_plain_file_has_no_problem() {
        assert!(file_problems(&facts(1 << 30, 1 << 30)).is_empty());
        assert!(file_problems(&facts(1000, 4096)).is_empty());
    }

    #[test]
    fn sparse_file_is_blocked_with_the_sizes() {
        let p = file_problems(&facts(1 << 30, 4096));
        assert_eq!(p.len(), 1);
        assert!(p[0].blocks_boot);
        assert!(
            p[0].what.contains("only 4096 of its 1073741824 bytes"),
            "{}",
            p[0].what
        );
        assert!(p[0].hint.contains("--sparse=never"));
    }

    #[test]
    fn compressed_file_is_reported_as_compressed_not_also_sparse() {
        let mut f = facts(1 << 30, 1 << 20);
        f.compressed = Some(true);
        let p = file_problems(&f);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].what.contains("compressed") && p[0].hint.contains("compact /u"));
    }

    #[test]
    fn encrypted_file_is_blocked() {
        let mut f = facts(4096, 4096);
        f.encrypted = Some(true);
        let p = file_problems(&f);
        assert!(p[0].blocks_boot && p[0].hint.contains("cipher /d"), "{p:?}");
    }

    #[test]
    fn unknown_facts_raise_nothing() {
        let f = FileFacts {
            size: 1 << 30,
            allocated: None,
            compressed: None,
            encrypted: None,
        };
        assert!(file_problems(&f).is_empty());
    }

    #[test]
    fn hiberfil_in_any_case_with_a_signature_marks_hibernation() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(hibernation_badge(t.path()), Ok(None));
        std::fs::write(t.path().join("HiberFil.SYS"), b"\0\0\0\0rest").unwrap();
        assert_eq!(hibernation_badge(t.path()), Ok(None));
        std::fs::write(t.path().join("HiberFil.SYS"), b"HIBRrest").unwrap();
        assert_eq!(
            hibernation_badge(t.path()),
            Ok(Some(VolumeBadge::Hibernated))
        );
    }

    fn volume(device: &str, fstype: FsType, uuid: &str, badges: &[VolumeBadge]) -> Volume {
        Volume {
            device: device.into(),
            fstype,
            label: None,
            uuid: Some(uuid.into()),
            partuuid: None,
            size: 1 << 30,
            mount: crate::model::MountState::NotMounted,
            badges: badges.to_vec(),
            images: Vec::new(),
        }
    }

    #[test]
    fn hibernation_anywhere_marks_every_internal_host_but_not_removable_ones() {
        let mut vs = vec![
            volume("/dev/sda3", FsType::Ntfs, "C", &[VolumeBadge::Hibernated]),
            volume("/dev/sda4", FsType::Ntfs, "D", &[]),
            volume("/dev/sdb1", FsType::Exfat, "E", &[]),
            volume("/dev/sdc1", FsType::Exfat, "F", &[VolumeBadge::Removable]),
        ];
        apply_machine_verdicts(&mut vs);
        assert_eq!(vs[0].badges, [VolumeBadge::Hibernated]);
        assert_eq!(vs[1].badges, [VolumeBadge::HibernatedElsewhere]);
        assert_eq!(vs[2].badges, [VolumeBadge::HibernatedElsewhere]);
        assert_eq!(vs[3].badges, [VolumeBadge::Removable]);
        // Recomputed, not piled up; and gone once the carrier is clean.
        apply_machine_verdicts(&mut vs);
        assert_eq!(vs[1].badges, [VolumeBadge::HibernatedElsewhere]);
        vs[0].badges.clear();
        apply_machine_verdicts(&mut vs);
        assert!(
            vs.iter()
                .all(|v| !v.badges.contains(&VolumeBadge::HibernatedElsewhere))
        );
    }

    #[test]
    fn no_hibernation_file_marks_nothing() {
        let mut vs = vec![
            volume("/dev/sda3", FsType::Ntfs, "C", &[VolumeBadge::Dirty]),
            volume("/dev/sda4", FsType::Exfat, "D", &[]),
        ];
        apply_machine_verdicts(&mut vs);
        assert_eq!(vs[0].badges, [VolumeBadge::Dirty]);
        assert!(vs[1].badges.is_empty());
    }

    #[test]
    fn volumes_sharing_a_uuid_are_both_badged() {
        let mut vs = vec![
            volume("/dev/sda1", FsType::Ntfs, "1A2B", &[]),
            volume("/dev/sdb1", FsType::Ntfs, "1a2b", &[]),
            volume("/dev/sdb2", FsType::Exfat, "77-88", &[]),
        ];
        apply_machine_verdicts(&mut vs);
        assert_eq!(vs[0].badges, [VolumeBadge::DuplicateId]);
        assert_eq!(vs[1].badges, [VolumeBadge::DuplicateId]);
        assert!(vs[2].badges.is_empty());
    }

    #[test]
    fn device_badges_read_exfat_volume_dirty() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut s = vec![0u8; 4096];
        s[3..11].copy_from_slice(b"EXFAT   ");
        s[0x6c] = 9;
        std::fs::write(f.path(), &s).unwrap();
        assert_eq!(device_badges(f.path(), &FsType::Exfat, 4096).0, []);
        s[0x6a] = 0x02;
        std::fs::write(f.path(), &s).unwrap();
        assert_eq!(
            device_badges(f.path(), &FsType::Exfat, 4096).0,
            [VolumeBadge::Dirty]
        );
    }

    #[test]
    fn unreadable_devices_earn_notes_not_badges() {
        let (badges, notes) = device_badges(Path::new("/nonexistent/sdz1"), &FsType::Ntfs, 1);
        assert!(badges.is_empty());
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("/nonexistent/sdz1"), "{notes:?}");
    }

    #[test]
    fn secure_boot_notice_only_when_on() {
        assert!(secure_boot_notice(Some(false)).is_none());
        assert!(secure_boot_notice(None).is_none());
        let n = secure_boot_notice(Some(true)).unwrap();
        assert!(!n.blocks_boot && n.what.contains("signed"));
    }
}
