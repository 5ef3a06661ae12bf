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
