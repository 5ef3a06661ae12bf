//! The one mount helper of the project. Discovery mounts are read-only with
//! nosuid, nodev and noexec, and nothing ever passes `force`
//! (design.md, data-safety invariant 1). A failed mount carries the
//! kernel's own reason, read from /dev/kmsg.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::sys::kmsg::{KmsgCursor, KmsgRecord};

/// Whether a filesystem may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMode {
    /// Discovery: MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC.
    ReadOnly,
    /// Stage 2's host mount: MS_NOSUID | MS_NODEV.
    ReadWrite,
}

impl MountMode {
    fn flags(self) -> MsFlags {
        match self {
            MountMode::ReadOnly => {
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
            }
            MountMode::ReadWrite => MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        }
    }
}

impl fmt::Display for MountMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MountMode::ReadOnly => "read-only",
            MountMode::ReadWrite => "read-write",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("creating mount point {target} failed: {source}")]
    CreateTarget {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "mounting {device} on {target} as {fstype} ({mode}) failed: {source}{}",
        kernel_suffix(.kernel)
    )]
    Mount {
        device: PathBuf,
        target: PathBuf,
        fstype: String,
        mode: MountMode,
        source: Errno,
        /// What the kernel logged about this device or driver during the
        /// attempt, e.g. ntfs3's "volume is dirty" line.
        kernel: Vec<String>,
    },
    #[error(
        "refusing to mount {device} with the \"force\" option: a dirty or hibernated \
         NTFS volume must be repaired by Windows (disable Fast Startup, shut down fully)"
    )]
    ForceRefused { device: PathBuf },
    #[error("binding {source_dir} onto {target} failed: {source}")]
    Bind {
        source_dir: PathBuf,
        target: PathBuf,
        source: Errno,
    },
    #[error("remounting {target} {mode} failed: {source}{}", kernel_suffix(.kernel))]
    Remount {
        target: PathBuf,
        mode: MountMode,
        source: Errno,
        kernel: Vec<String>,
    },
    #[error("options for {device} contain a NUL byte")]
    BadOptions { device: PathBuf },
    #[error("unmounting {target} failed: {source}")]
    Umount { target: PathBuf, source: Errno },
    #[error("statvfs on {target} failed: {source}")]
    Statvfs { target: PathBuf, source: Errno },
    #[error("reading {path} failed: {source}")]
    MountInfo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn kernel_suffix(kernel: &[String]) -> String {
    if kernel.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", kernel.join("; "))
    }
}

/// Mounts `device` on `target` (created if missing) as `fstype`.
/// `options` is the filesystem's data string (e.g. `iocharset=utf8`); a
/// `force` option is refused.
pub fn mount_fs(
    device: &Path,
    target: &Path,
    fstype: &str,
    mode: MountMode,
    options: &str,
) -> Result<(), MountError> {
    if options
        .split(',')
        .any(|o| o.trim().eq_ignore_ascii_case("force"))
    {
        return Err(MountError::ForceRefused {
            device: device.to_path_buf(),
        });
    }
    if options.contains('\0') {
        return Err(MountError::BadOptions {
            device: device.to_path_buf(),
        });
    }
    fs::create_dir_all(target).map_err(|source| MountError::CreateTarget {
        target: target.to_path_buf(),
        source,
    })?;
    // The cursor is best effort: without /dev/kmsg the error just has no
    // kernel reason attached.
    let mut cursor = KmsgCursor::at_end().ok();
    let data = if options.is_empty() {
        None
    } else {
        Some(options)
    };
    match mount(Some(device), target, Some(fstype), mode.flags(), data) {
        Ok(()) => Ok(()),
        Err(source) => {
            let records = cursor
                .as_mut()
                .and_then(|c| c.read_new().ok())
                .unwrap_or_default();
            Err(MountError::Mount {
                device: device.to_path_buf(),
                target: target.to_path_buf(),
                fstype: fstype.to_string(),
                mode,
                source,
                kernel: kernel_reason(&records, device, fstype),
            })
        }
    }
}

/// Whether the filesystem mounted on `target` is read-only (statvfs'
/// ST_RDONLY). It covers a superblock the driver made read-only on its
/// own after a read-write mount succeeded (ntfs3's "RAW NTFS volume").
pub fn is_read_only(target: &Path) -> Result<bool, MountError> {
    nix::sys::statvfs::statvfs(target)
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .map_err(|source| MountError::Statvfs {
            target: target.to_path_buf(),
            source,
        })
}

/// The kernel's recent lines about `device` or the `fstype` driver, to say
/// why a mount did not turn out as asked. Empty without /dev/kmsg.
pub fn recent_kernel_lines(device: &Path, fstype: &str) -> Vec<String> {
    let records = crate::sys::kmsg::read_recent(256).unwrap_or_default();
    kernel_reason(&records, device, fstype)
}

/// The kernel lines that concern this device or this driver. ext4 logs
/// `EXT4-fs (loop3): ...`, ntfs3 logs `ntfs3(sda2): ...`, so both the
/// device's name and the driver's name are matched, case-insensitively.
fn kernel_reason(records: &[KmsgRecord], device: &Path, fstype: &str) -> Vec<String> {
    let name = device
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let fstype = fstype.to_lowercase();
    records
        .iter()
        .filter(|r| {
            let m = r.message.to_lowercase();
            (!name.is_empty() && m.contains(&name)) || (!fstype.is_empty() && m.contains(&fstype))
        })
        .map(|r| r.message.clone())
        .collect()
}

/// Binds the folder `source` onto `target` (MS_BIND, not recursive: the
/// mounts under `source` are not carried along). The repair chroot gets
/// the host's /proc, /sys, /dev and /run this way.
pub fn bind_mount(source: &Path, target: &Path) -> Result<(), MountError> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|errno| MountError::Bind {
        source_dir: source.to_path_buf(),
        target: target.to_path_buf(),
        source: errno,
    })
}

/// Remounts the filesystem at `target` with `mode`'s flags (MS_REMOUNT),
/// keeping its data options. The read-write repair and the report's save
/// make a host read-write this way for the duration, and back again.
pub fn remount(target: &Path, mode: MountMode) -> Result<(), MountError> {
    let mut cursor = KmsgCursor::at_end().ok();
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | mode.flags(),
        None::<&str>,
    )
    .map_err(|source| {
        let records = cursor
            .as_mut()
            .and_then(|c| c.read_new().ok())
            .unwrap_or_default();
        MountError::Remount {
            target: target.to_path_buf(),
            mode,
            source,
            kernel: records.into_iter().map(|r| r.message).collect(),
        }
    })
}

/// How an unmount ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    /// Unmounted cleanly.
    Clean,
    /// The filesystem was busy and was detached lazily (MNT_DETACH): it
    /// stays alive until its last user goes. Callers should log this.
    Detached,
}

/// Unmounts `target`; when it is busy, detaches it lazily and says so.
pub fn umount_fs(target: &Path) -> Result<Unmounted, MountError> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(Unmounted::Clean),
        Err(Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH)
            .map(|()| Unmounted::Detached)
            .map_err(|source| MountError::Umount {
                target: target.to_path_buf(),
                source,
            }),
        Err(source) => Err(MountError::Umount {
            target: target.to_path_buf(),
            source,
        }),
    }
}

/// Whether something is mounted exactly on `target`, per
/// /proc/self/mountinfo.
pub fn is_mounted(target: &Path) -> Result<bool, MountError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(path).map_err(|source| MountError::MountInfo {
        path: path.to_path_buf(),
        source,
    })?;
    // Compare canonical paths: mountinfo holds resolved paths.
    let target = fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    Ok(mountinfo_has_mount_point(&text, &target))
}

/// One line of /proc/self/mountinfo, as far as vhdboot needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The filesystem's device number (major, minor).
    pub device: (u64, u64),
    pub mount_point: PathBuf,
    pub fstype: String,
    /// The mount source, e.g. `/dev/sda2`.
    pub source: String,
}

/// Parses /proc/self/mountinfo, the one parser of it in the project;
/// malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let (major, minor) = left.get(2)?.split_once(':')?;
            Some(MountEntry {
                device: (major.parse().ok()?, minor.parse().ok()?),
                mount_point: PathBuf::from(unescape_octal(left.get(4)?)),
                fstype: right.next()?.to_string(),
                source: unescape_octal(right.next()?),
            })
        })
        .collect()
}

/// Whether the mountinfo text has a mount on `target`.
pub fn mountinfo_has_mount_point(mountinfo: &str, target: &Path) -> bool {
    parse_mountinfo(mountinfo)
        .iter()
        .any(|m| m.mount_point == target)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, etc.).
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_mount_point_with_escaped_space_matches() {
        let info = "36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw\n";
        assert!(mountinfo_has_mount_point(info, Path::new("/mnt/my disk")));
        assert!(!mountinfo_has_mount_point(info, Path::new("/mnt/my")));
    }

    #[test]
    fn force_option_is_refused_before_any_syscall() {
        let err = mount_fs(
            Path::new("/dev/nonexistent"),
            Path::new("/nonexistent/target"),
            "ntfs3",
            MountMode::ReadWrite,
            "iocharset=utf8,force",
        )
        .unwrap_err();
        assert!(matches!(err, MountError::ForceRefused { .. }), "{err}");
    }

    #[test]
    fn kernel_reason_keeps_lines_naming_the_device_or_driver() {
        let records = vec![
            KmsgRecord::parse(
                "3,1,1,-;ntfs3(sda2): volume is dirty and \"force\" flag is not set!\n",
            )
            .unwrap(),
            KmsgRecord::parse("6,2,2,-;usb 1-1: new high-speed USB device\n").unwrap(),
            KmsgRecord::parse("3,3,3,-;EXT4-fs (loop7): VFS: Can't find ext4 filesystem\n")
                .unwrap(),
        ];
        assert_eq!(
            kernel_reason(&records, Path::new("/dev/sda2"), "ntfs3"),
            vec!["ntfs3(sda2): volume is dirty and \"force\" flag is not set!".to_string()]
        );
        assert_eq!(
            kernel_reason(&records, Path::new("/dev/loop7"), "ext4").len(),
            1
        );
    }

    #[test]
    fn mount_error_message_names_device_target_mode_and_kernel_reason() {
        let err = MountError::Mount {
            device: "/dev/sda2".into(),
            target: "/run/vhdboot/host".into(),
            fstype: "ntfs3".into(),
            mode: MountMode::ReadOnly,
            source: Errno::EINVAL,
            kernel: vec!["ntfs3(sda2): volume is dirty".into()],
        };
        assert_eq!(
            err.to_string(),
            "mounting /dev/sda2 on /run/vhdboot/host as ntfs3 (read-only) failed: \
             EINVAL: Invalid argument (kernel: ntfs3(sda2): volume is dirty)"
        );
    }
}

/// Where `device` is already mounted, if anywhere, per /proc/self/mountinfo.
/// The CLI reuses such a mount instead of mounting the volume a second time.
pub fn mount_point_of(device: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let device = fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    mountinfo_mount_point_of(&text, &device)
}

/// The mount point of the first mount whose source is `device`.
pub fn mountinfo_mount_point_of(mountinfo: &str, device: &Path) -> Option<PathBuf> {
    parse_mountinfo(mountinfo)
        .into_iter()
        .find(|m| Path::new(&m.source) == device)
        .map(|m| m.mount_point)
}

#[cfg(test)]
mod mount_point_tests {
    use super::*;

    #[test]
    fn the_mount_point_of_a_device_is_found_by_its_source_field() {
        let info = "36 35 98:0 / /mnt/my\\040data rw,noatime master:1 - ntfs3 /dev/sda2 rw\n\
                    37 35 98:1 / /boot rw - vfat /dev/sda1 rw\n";
        assert_eq!(
            mountinfo_mount_point_of(info, Path::new("/dev/sda2")),
            Some(PathBuf::from("/mnt/my data"))
        );
        assert_eq!(mountinfo_mount_point_of(info, Path::new("/dev/sdb1")), None);
    }
}
