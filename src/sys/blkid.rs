//! Which block devices exist and what is on them, through libblkid. Probing
//! opens devices read-only and writes nothing.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use libblkid_rs::{BlkidProbe, BlkidSafeprobeRet, BlkidSublks, BlkidSublksFlags};

/// One block device (a whole disk or a partition) and what libblkid found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// The device node, e.g. `/dev/sda2`.
    pub device: PathBuf,
    /// The kernel's name, e.g. `sda2`.
    pub name: String,
    /// For a partition, the whole disk's name (`sda`).
    pub parent: Option<String>,
    /// Filesystem type as libblkid names it (`ntfs`, `exfat`, `vfat`, `ext4`).
    pub fstype: Option<String>,
    pub label: Option<String>,
    /// Filesystem UUID (for NTFS the volume serial, e.g. `1A2B3C4D5E6F7081`).
    pub uuid: Option<String>,
    /// Partition UUID from the parent's GPT (or MBR `xxxxxxxx-NN`).
    pub partuuid: Option<String>,
    /// Size in bytes.
    pub size: u64,
    pub read_only: bool,
    /// Whether the whole disk is removable media (sysfs `removable`: USB
    /// sticks, card readers). A hibernated Windows does not keep such a
    /// disk's volumes in use the way it keeps the internal ones.
    pub removable: bool,
    /// Why probing failed, when it did; the device is still listed.
    pub probe_error: Option<String>,
}

/// The filesystem signature of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Superblock {
    pub fstype: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlkidError {
    #[error("libblkid could not open {device}: {reason}")]
    Open { device: PathBuf, reason: String },
    #[error("libblkid probing {device} failed during {step}: {reason}")]
    Probe {
        device: PathBuf,
        step: &'static str,
        reason: String,
    },
    #[error("{device} carries more than one filesystem signature; refusing to guess")]
    Ambiguous { device: PathBuf },
}

/// Lists the block devices under `<sys_root>/class/block` with their
/// filesystems, probing the nodes in /dev.
pub fn probe_block_devices(sys_root: &Path) -> Vec<BlockInfo> {
    probe_block_devices_in(sys_root, Path::new("/dev"))
}

/// As [`probe_block_devices`] with the device nodes under `dev_root`.
///
/// Skipped: RAM disks (`ram*`, `zram*`), loop devices without a backing
/// file, and empty devices (size 0, e.g. a CD drive without a disc).
pub fn probe_block_devices_in(sys_root: &Path, dev_root: &Path) -> Vec<BlockInfo> {
    let class = sys_root.join("class/block");
    let Ok(entries) = fs::read_dir(&class) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();

    let mut infos = Vec::new();
    let mut partuuids: HashMap<String, HashMap<u32, String>> = HashMap::new();
    for name in names {
        let dir = class.join(&name);
        let parent = parent_disk(&dir);
        let disk = parent.as_deref().unwrap_or(&name);
        if skipped(sys_root, disk) {
            continue;
        }
        let size = read_u64(&dir.join("size")).unwrap_or(0).saturating_mul(512);
        if size == 0 {
            continue;
        }
        let removable = read_u64(&class.join(disk).join("removable")) == Some(1);
        let device = dev_root.join(&name);
        let (superblock, probe_error) = match probe_superblock(&device) {
            Ok(sb) => (sb, None),
            Err(e) => (Superblock::default(), Some(e.to_string())),
        };
        let partuuid = match (&parent, read_u64(&dir.join("partition"))) {
            (Some(parent), Some(partno)) => {
                let table = partuuids
                    .entry(parent.clone())
                    .or_insert_with(|| partition_uuids(&dev_root.join(parent)));
                u32::try_from(partno)
                    .ok()
                    .and_then(|n| table.get(&n).cloned())
            }
            _ => None,
        };
        infos.push(BlockInfo {
            device,
            name,
            parent,
            fstype: superblock.fstype,
            label: superblock.label,
            uuid: superblock.uuid,
            partuuid,
            size,
            read_only: read_u64(&dir.join("ro")) == Some(1),
            removable,
            probe_error,
        });
    }
    infos
}

/// A partition's sysfs directory sits inside its disk's directory; the
/// class/block entry is a symlink to it.
fn parent_disk(class_entry: &Path) -> Option<String> {
    if !class_entry.join("partition").exists() {
        return None;
    }
    let real = fs::canonicalize(class_entry).ok()?;
    real.parent()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

fn skipped(sys_root: &Path, disk: &str) -> bool {
    if disk.starts_with("ram") || disk.starts_with("zram") {
        return true;
    }
    if disk.starts_with("loop") {
        let backing = sys_root.join("block").join(disk).join("loop/backing_file");
        return !backing.exists();
    }
    false
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Probes one device (or image file) for a filesystem: TYPE, LABEL, UUID.
pub fn probe_superblock(device: &Path) -> Result<Superblock, BlkidError> {
    let probe_err = |step: &'static str| {
        move |e: libblkid_rs::BlkidErr| BlkidError::Probe {
            device: device.to_path_buf(),
            step,
            reason: e.to_string(),
        }
    };
    // libblkid opens the device O_RDONLY; nothing is written.
    let mut probe = BlkidProbe::new_from_filename(device).map_err(|e| BlkidError::Open {
        device: device.to_path_buf(),
        reason: e.to_string(),
    })?;
    probe
        .enable_superblocks(true)
        .map_err(probe_err("enable superblocks"))?;
    probe
        .set_superblock_flags(BlkidSublksFlags::new(vec![
            BlkidSublks::Type,
            BlkidSublks::Label,
            BlkidSublks::Uuid,
        ]))
        .map_err(probe_err("set superblock flags"))?;
    match probe.do_safeprobe().map_err(probe_err("safeprobe"))? {
        BlkidSafeprobeRet::Success => {}
        BlkidSafeprobeRet::None => return Ok(Superblock::default()),
        BlkidSafeprobeRet::Ambiguous => {
            return Err(BlkidError::Ambiguous {
                device: device.to_path_buf(),
            });
        }
    }
    let value = |name: &str| probe.lookup_value(name).ok().filter(|v| !v.is_empty());
    Ok(Superblock {
        fstype: value("TYPE"),
        label: value("LABEL"),
        uuid: value("UUID"),
    })
}

/// Partition number → PARTUUID from the partition table on `disk`. Empty
/// when the disk has no table or cannot be read.
pub fn partition_uuids(disk: &Path) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    let Ok(mut probe) = BlkidProbe::new_from_filename(disk) else {
        return map;
    };
    if probe.enable_superblocks(false).is_err() || probe.enable_partitions(true).is_err() {
        return map;
    }
    let Ok(mut list) = probe.get_partitions() else {
        return map;
    };
    let table_id = list
        .get_table()
        .ok()
        .and_then(|t| Some((t.get_type().ok()?, t.get_id().ok()?)));
    let count = list.number_of_partitions().unwrap_or(0);
    for index in 0..count {
        let Ok(part) = list.get_partition(index) else {
            continue;
        };
        let Ok(partno) = part.get_partno() else {
            continue;
        };
        let uuid = match part.get_uuid() {
            Ok(Some(uuid)) => Some(uuid.to_string()),
            // MBR has no partition UUIDs; the kernel and blkid form
            // PARTUUID from the disk signature and the number.
            _ => match &table_id {
                Some((kind, id)) if kind == "dos" => Some(format!("{id}-{partno:02x}")),
                _ => None,
            },
        };
        if let Some(uuid) = uuid {
            map.insert(partno, uuid);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_zram_and_unbacked_loop_devices_are_skipped() {
        let sys = tempfile::tempdir().unwrap();
        fs::create_dir_all(sys.path().join("block/loop1/loop")).unwrap();
        fs::write(sys.path().join("block/loop1/loop/backing_file"), "/x\n").unwrap();
        fs::create_dir_all(sys.path().join("block/loop2/loop")).unwrap();
        assert!(skipped(sys.path(), "ram0"));
        assert!(skipped(sys.path(), "zram0"));
        assert!(skipped(sys.path(), "loop2"));
        assert!(!skipped(sys.path(), "loop1"));
        assert!(!skipped(sys.path(), "sda"));
    }

    #[test]
    fn probing_a_missing_device_names_it() {
        let err = probe_superblock(Path::new("/nonexistent/sdz9")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sdz9"), "{err}");
    }

    #[test]
    fn empty_file_has_no_filesystem() {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(1024 * 1024).unwrap();
        assert_eq!(
            probe_superblock(file.path()).unwrap(),
            Superblock::default()
        );
    }
}
