//! The syscalls of a clean shutdown: strict unmounts (never lazy, so that
//! "unmounted" really means the filesystem was written back and closed) and
//! read-only remounts as the fallback for a busy filesystem.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Unmounts `target` without MNT_DETACH: a busy filesystem stays mounted
/// and the error says so, instead of lingering half-alive after power-off.
pub fn umount_strict(target: &Path) -> Result<(), Errno> {
    umount2(target, MntFlags::empty())
}

/// Remounts the filesystem at `target` read-only, which writes back its
/// data and, for NTFS, clears the volume's dirty flag.
pub fn remount_read_only(target: &Path) -> Result<(), Errno> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
}

/// Moves the mount at `from`, with everything mounted under it, to `to`
/// (MS_MOVE). Stage 2 uses it to carry the host volume from the initramfs
/// root into the /run that initramfs-tools moves into the real root.
pub fn move_mount(from: &Path, to: &Path) -> Result<(), Errno> {
    mount(Some(from), to, None::<&str>, MsFlags::MS_MOVE, None::<&str>)
}

/// Mounts a tmpfs on `target` with systemd's options for /run (mode 0755,
/// nosuid, nodev, and not noexec: the shutdown hook runs from it). Stage 2
/// mounts /run itself so that an init that finds /run already mounted
/// (systemd, dracut) keeps it, with the host volume under it, instead of
/// stacking a fresh one that hides it; under initramfs-tools, whose /run is
/// noexec, it mounts one on /run/initramfs.
pub fn mount_tmpfs(target: &Path) -> Result<(), Errno> {
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=20%,nr_inodes=800k"),
    )
}
