//! Immutable boot (issue 15, items 1 and 3): the image is attached
//! read-only and every write of the target goes to a copy-on-write layer
//! in RAM, which the next reboot throws away. The stack, bottom to top:
//!
//! ```text
//! image file on the host (mounted read-only)
//!   └─ /dev/loopA: read-only, direct I/O, sizelimit = data size, no partscan
//! tmpfs of the limit's size, holding one sparse file
//!   └─ /dev/loopB: the copy-on-write store
//! /dev/dm-N: dm-snapshot, origin loopA, COW loopB, non-persistent, 4 KiB chunks
//!   └─ /dev/loopC: partscan, direct I/O → loopCp1, loopCp2, … for the target
//! ```
//!
//! The base loop device gets no partition scan, so the target sees each
//! partition (and its UUIDs) once, on loopC. The RAM layer is a tmpfs file
//! rather than zram: zram would need the kernel to find a compressor
//! module through the usermode helper, which an initramfs may not offer.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vhdboot::image::vhd;
use vhdboot::sys::devmapper::{self, DmError, Target};
use vhdboot::sys::loopdev::{self, LoopConfig, LoopDevice, LoopError};
use vhdboot::sys::mount::{self, MountError, MountMode};

/// Where the RAM layer's tmpfs is mounted, beside the host mount.
const COW_MOUNT: &str = "/run/vhdboot/cow";
/// The sparse file on it that backs the copy-on-write loop device.
const COW_FILE: &str = "changes";
/// The device-mapper device's name.
pub(super) const DM_NAME: &str = "vhdboot-immutable";
/// The kernel's words when the layer is full, so that the user can match
/// our warning to the kernel log (dm-snap.c, __invalidate_snapshot).
pub const FULL_KERNEL_LINE: &str = "Invalidating snapshot: Unable to allocate exception.";
/// The tmpfs gets this much beyond the layer, so that the snapshot fills
/// its store before the tmpfs could refuse a write.
const TMPFS_SLACK: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImmutableError {
    #[error("attaching the image read-only: {0}")]
    Origin(#[source] LoopError),
    #[error("mounting the RAM layer's tmpfs: {0}")]
    Tmpfs(#[source] MountError),
    #[error("creating the RAM layer's file {}: {source}", .path.display())]
    CowFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("attaching the RAM layer: {0}")]
    Cow(#[source] LoopError),
    #[error("creating the copy-on-write snapshot: {0}")]
    Snapshot(#[source] DmError),
    #[error(
        "{} did not appear within {} s after the snapshot was created",
        .path.display(),
        .waited.as_secs()
    )]
    NodeMissing { path: PathBuf, waited: Duration },
    #[error("attaching the partition loop device over the snapshot: {0}")]
    Top(#[source] LoopError),
}

/// The line stage 2 prints before it builds the stack, so that the limit
/// is on the console when the layer fills long after stage 2 is gone.
pub fn limit_notice(limit: u64) -> String {
    format!(
        "immutable: changes kept in RAM, up to {} MiB, lost at reboot; the host volume is \
         mounted read-only. When the changes need more, the kernel logs \"{FULL_KERNEL_LINE}\" \
         and the system gets I/O errors on its disk: raise immutable_ram in vhdboot.conf",
        limit >> 20
    )
}

/// Builds the stack over `file` (`size` data bytes) with a RAM layer of
/// `limit` bytes. Returns the partition loop device and the line to log.
pub fn attach(file: &Path, size: u64, limit: u64) -> Result<String, ImmutableError> {
    let origin = loopdev::attach(
        file,
        &LoopConfig {
            direct_io: true,
            partscan: false,
            size_limit: size,
            read_only: true,
            // As in a normal boot: a 4Kn host would otherwise make the
            // VHD's 512-byte sectors unreadable as a partition table.
            block_size: vhd::SECTOR_SIZE,
            ..LoopConfig::default()
        },
    )
    .map_err(ImmutableError::Origin)?;
    let cow_file = cow_file(limit)?;
    let cow = loopdev::attach(
        &cow_file,
        &LoopConfig {
            direct_io: true,
            block_size: vhd::SECTOR_SIZE,
            ..LoopConfig::default()
        },
    )
    .map_err(ImmutableError::Cow)?;
    let sectors = size / u64::from(vhd::SECTOR_SIZE);
    let dm = devmapper::create(DM_NAME, &Target::snapshot(&origin.path, &cow.path, sectors))
        .map_err(ImmutableError::Snapshot)?;
    let dm_path = dm.path();
    wait_for_node(&dm_path, Duration::from_secs(5))?;
    let (top, parts) = partitions_over(&dm_path).map_err(ImmutableError::Top)?;
    Ok(format!(
        "immutable: {} read-only on {} ({}), RAM layer on {} ({}), snapshot {} ({}:{}), \
         partitions on {} ({}), {} partition(s)",
        file.display(),
        origin.path.display(),
        dio_state(&origin),
        cow.path.display(),
        dio_state(&cow),
        dm_path.display(),
        dm.major,
        dm.minor,
        top.path.display(),
        dio_state(&top),
        parts.len()
    ))
}

pub(super) fn dio_state(lo: &LoopDevice) -> &'static str {
    match lo.direct_io_enabled() {
        Ok(true) => "direct I/O on",
        Ok(false) => "direct I/O off",
        Err(_) => "direct I/O unknown",
    }
}

/// Mounts a tmpfs just larger than `limit` and makes a sparse file of
/// `limit` bytes on it. Only what the target writes takes RAM.
fn cow_file(limit: u64) -> Result<PathBuf, ImmutableError> {
    let size = limit.saturating_add(TMPFS_SLACK);
    mount::mount_fs(
        Path::new("tmpfs"),
        Path::new(COW_MOUNT),
        "tmpfs",
        MountMode::ReadWrite,
        &format!("size={size},mode=0700"),
    )
    .map_err(ImmutableError::Tmpfs)?;
    let path = Path::new(COW_MOUNT).join(COW_FILE);
    let made: io::Result<File> = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path);
    made.and_then(|f| f.set_len(limit))
        .map_err(|source| ImmutableError::CowFile {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// The top of both snapshot stacks: a partition-scanning loop device over
/// the device-mapper node, so the target finds its partitions as on a plain
/// boot; direct I/O where the stack allows it. Returns the device and the
/// partitions that appeared within 5 s.
pub(super) fn partitions_over(dm_path: &Path) -> Result<(LoopDevice, Vec<PathBuf>), LoopError> {
    let top = loopdev::attach(
        dm_path,
        &LoopConfig {
            direct_io: true,
            partscan: true,
            block_size: vhd::SECTOR_SIZE,
            ..LoopConfig::default()
        },
    )?;
    let parts = loopdev::wait_for_partitions(&top, Duration::from_secs(5));
    Ok((top, parts))
}

pub(super) fn wait_for_node(path: &Path, waited: Duration) -> Result<(), ImmutableError> {
    let deadline = Instant::now() + waited;
    while !path.exists() {
        if Instant::now() >= deadline {
            return Err(ImmutableError::NodeMissing {
                path: path.to_path_buf(),
                waited,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The RAM layer's size when the configuration leaves it to stage 2: a
/// quarter of the machine's memory (`MemTotal` of /proc/meminfo), at
/// least 64 MiB, rounded down to whole MiB.
pub fn auto_limit(meminfo: &str) -> u64 {
    let total_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let quarter = total_kib.saturating_mul(1024) / 4;
    (quarter.max(64 << 20) >> 20) << 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_limit_is_a_quarter_of_ram_in_whole_mib() {
        let meminfo = "MemTotal:        8036860 kB\nMemFree:  100 kB\n";
        assert_eq!(auto_limit(meminfo), 1962 << 20);
    }

    #[test]
    fn auto_limit_has_a_floor_when_ram_is_unknown_or_tiny() {
        assert_eq!(auto_limit(""), 64 << 20);
        assert_eq!(auto_limit("MemTotal: 100000 kB\n"), 64 << 20);
    }

    #[test]
    fn limit_notice_names_the_limit_and_the_kernel_line() {
        let text = limit_notice(1024 << 20);
        assert!(text.contains("up to 1024 MiB, lost at reboot"), "{text}");
        assert!(text.contains(FULL_KERNEL_LINE), "{text}");
        assert!(text.contains("immutable_ram"), "{text}");
    }
}
