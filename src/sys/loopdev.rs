//! Loop devices set up in one LOOP_CONFIGURE call: backing file, offset,
//! size limit (file size − 512, so the VHD footer stays outside), partition
//! scan and direct I/O. We do this ourselves because busybox's losetup has
//! neither direct I/O nor sizelimit (lessons.md, "Build").

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;

const LOOP_CONTROL: &str = "/dev/loop-control";

// linux/loop.h ioctl numbers.
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;

// linux/loop.h lo_flags.
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_PARTSCAN: u32 = 8;
const LO_FLAGS_DIRECT_IO: u32 = 16;

const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;

/// `struct loop_info64` from linux/loop.h (232 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config` from linux/loop.h (304 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopConfigRaw {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfigRaw>() == 304);

nix::ioctl_write_ptr_bad!(ioctl_loop_configure, LOOP_CONFIGURE, LoopConfigRaw);
nix::ioctl_none_bad!(ioctl_loop_clr_fd, LOOP_CLR_FD);
nix::ioctl_none_bad!(ioctl_loop_ctl_get_free, LOOP_CTL_GET_FREE);

/// How to set up a loop device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoopConfig {
    /// Ask for direct I/O (the backing file is then opened with O_DIRECT;
    /// the kernel enables dio only if that fd allows it). Check the outcome
    /// with [`LoopDevice::direct_io_enabled`].
    pub direct_io: bool,
    /// Have the kernel scan the partition table (loopNpM devices).
    pub partscan: bool,
    /// Bytes of the backing file to expose; 0 means up to its end.
    pub size_limit: u64,
    /// Where in the backing file the device starts.
    pub offset: u64,
    pub read_only: bool,
    /// Detach by itself when its last user closes it (a mount counts as
    /// one), so a process killed while holding the device leaks nothing.
    pub autoclear: bool,
    /// Logical block size; 0 lets the kernel choose.
    pub block_size: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("opening backing file {file} ({mode}) failed: {source}")]
    OpenBacking {
        file: PathBuf,
        mode: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("opening {path} failed: {source} (is the loop module loaded?)")]
    OpenControl {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("LOOP_CTL_GET_FREE on {LOOP_CONTROL} failed: {source}")]
    GetFree { source: Errno },
    #[error("opening loop device {device} failed: {source}")]
    OpenDevice {
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "LOOP_CONFIGURE of {device} with {file} (offset {offset}, sizelimit {size_limit}, \
         direct I/O {direct_io}, partscan {partscan}) failed: {source}"
    )]
    Configure {
        device: PathBuf,
        file: PathBuf,
        offset: u64,
        size_limit: u64,
        direct_io: bool,
        partscan: bool,
        source: Errno,
    },
    #[error("no free loop device after {attempts} attempts (another process keeps taking them)")]
    Exhausted { attempts: u32 },
    #[error("LOOP_CLR_FD on {device} failed: {source}")]
    Detach { device: PathBuf, source: Errno },
    #[error("reading {path} failed: {source}")]
    Sysfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} holds {value:?}, not a number")]
    SysfsValue { path: PathBuf, value: String },
}

/// An attached loop device. There is no Drop: stage 2 hands the device to
/// the target system, which keeps using it after we exec. Call
/// [`LoopDevice::detach`] to release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub path: PathBuf,
    pub number: u32,
}

/// How often a GET_FREE / CONFIGURE race with another process is retried.
const ATTACH_ATTEMPTS: u32 = 8;

/// Attaches `file` to a free loop device with `cfg`.
pub fn attach(file: &Path, cfg: &LoopConfig) -> Result<LoopDevice, LoopError> {
    attach_held(file, cfg).map(|(device, _)| device)
}

/// [`attach`], also returning the open device. With `autoclear`, the
/// device lives only while something holds it: keep the file open until
/// a mount holds the device too.
pub fn attach_held(file: &Path, cfg: &LoopConfig) -> Result<(LoopDevice, File), LoopError> {
    let backing = open_backing(file, cfg)?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(LOOP_CONTROL)
        .map_err(|source| LoopError::OpenControl {
            path: LOOP_CONTROL.into(),
            source,
        })?;
    for _ in 0..ATTACH_ATTEMPTS {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and `control` is an
        // open fd on /dev/loop-control for the duration of the call.
        let number = unsafe { ioctl_loop_ctl_get_free(control.as_raw_fd()) }
            .map_err(|source| LoopError::GetFree { source })?;
        let number = u32::try_from(number).map_err(|_| LoopError::GetFree {
            source: Errno::ERANGE,
        })?;
        let device = LoopDevice {
            path: PathBuf::from(format!("/dev/loop{number}")),
            number,
        };
        let dev_file = open_loop_node(&device.path, cfg.read_only)?;
        match loop_configure(&dev_file, backing.as_raw_fd(), cfg) {
            Ok(()) => return Ok((device, dev_file)),
            // Another process configured this device between GET_FREE and
            // CONFIGURE: ask for the next free one.
            Err(Errno::EBUSY) => continue,
            Err(source) => {
                return Err(LoopError::Configure {
                    device: device.path,
                    file: file.to_path_buf(),
                    offset: cfg.offset,
                    size_limit: cfg.size_limit,
                    direct_io: cfg.direct_io,
                    partscan: cfg.partscan,
                    source,
                });
            }
        }
    }
    Err(LoopError::Exhausted {
        attempts: ATTACH_ATTEMPTS,
    })
}

fn open_backing(file: &Path, cfg: &LoopConfig) -> Result<File, LoopError> {
    let open = |direct: bool| {
        let flags = if direct {
            libc::O_CLOEXEC | libc::O_DIRECT
        } else {
            libc::O_CLOEXEC
        };
        OpenOptions::new()
            .read(true)
            .write(!cfg.read_only)
            .custom_flags(flags)
            .open(file)
            .map_err(|source| LoopError::OpenBacking {
                file: file.to_path_buf(),
                mode: match (cfg.read_only, direct) {
                    (true, true) => "read-only, O_DIRECT",
                    (true, false) => "read-only",
                    (false, true) => "read-write, O_DIRECT",
                    (false, false) => "read-write",
                },
                source,
            })
    };
    match open(cfg.direct_io) {
        // A filesystem without O_DIRECT (tmpfs before Linux 6.6) refuses the open; fall back
        // to buffered I/O, which `direct_io_enabled` then reports as off.
        Err(LoopError::OpenBacking { source, .. })
            if cfg.direct_io && source.raw_os_error() == Some(libc::EINVAL) =>
        {
            open(false)
        }
        other => other,
    }
}

/// Opens /dev/loopN, waiting briefly for devtmpfs to create a node the
/// kernel has only just added (LOOP_CTL_GET_FREE may add a device).
fn open_loop_node(device: &Path, read_only: bool) -> Result<File, LoopError> {
    let mut attempts = 0;
    loop {
        match OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(libc::O_CLOEXEC)
            .open(device)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(LoopError::OpenDevice {
                    device: device.to_path_buf(),
                    source,
                });
            }
        }
    }
}

fn loop_configure(device: &File, backing_fd: RawFd, cfg: &LoopConfig) -> Result<(), Errno> {
    let mut lo_flags = 0;
    if cfg.read_only {
        lo_flags |= LO_FLAGS_READ_ONLY;
    }
    if cfg.autoclear {
        lo_flags |= LO_FLAGS_AUTOCLEAR;
    }
    if cfg.partscan {
        lo_flags |= LO_FLAGS_PARTSCAN;
    }
    if cfg.direct_io {
        lo_flags |= LO_FLAGS_DIRECT_IO;
    }
    let raw = LoopConfigRaw {
        fd: u32::try_from(backing_fd).map_err(|_| Errno::EBADF)?,
        block_size: cfg.block_size,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: cfg.offset,
            lo_sizelimit: cfg.size_limit,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: `raw` is a fully initialised struct with the layout of
    // `struct loop_config` (size checked at compile time); the kernel only
    // reads it during the call, and both fds are open for its duration.
    unsafe { ioctl_loop_configure(device.as_raw_fd(), &raw) }.map(drop)
}

impl LoopDevice {
    /// The device for `/dev/loopN`.
    pub fn from_number(number: u32) -> LoopDevice {
        LoopDevice {
            path: PathBuf::from(format!("/dev/loop{number}")),
            number,
        }
    }

    fn sysfs(&self, leaf: &str) -> PathBuf {
        PathBuf::from(format!("/sys/block/loop{}/{leaf}", self.number))
    }

    fn read_sysfs(&self, leaf: &str) -> Result<String, LoopError> {
        let path = self.sysfs(leaf);
        fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|source| LoopError::Sysfs { path, source })
    }

    fn read_sysfs_number(&self, leaf: &str) -> Result<u64, LoopError> {
        let value = self.read_sysfs(leaf)?;
        value.parse().map_err(|_| LoopError::SysfsValue {
            path: self.sysfs(leaf),
            value,
        })
    }

    /// Whether the kernel really does direct I/O (`/sys/block/loopN/loop/dio`).
    pub fn direct_io_enabled(&self) -> Result<bool, LoopError> {
        Ok(self.read_sysfs_number("loop/dio")? == 1)
    }

    /// The backing file as the kernel names it.
    pub fn backing_file(&self) -> Result<PathBuf, LoopError> {
        self.read_sysfs("loop/backing_file").map(PathBuf::from)
    }

    /// The device's size in bytes (`/sys/block/loopN/size` is in 512-byte
    /// sectors whatever the logical block size).
    pub fn size(&self) -> Result<u64, LoopError> {
        Ok(self.read_sysfs_number("size")?.saturating_mul(512))
    }

    /// Detaches the backing file (LOOP_CLR_FD). The kernel completes the
    /// detach when the last opener closes the device.
    pub fn detach(&self) -> Result<(), LoopError> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(|source| LoopError::OpenDevice {
                device: self.path.clone(),
                source,
            })?;
        // SAFETY: LOOP_CLR_FD takes no argument; `file` is an open fd on
        // the loop device for the duration of the call.
        unsafe { ioctl_loop_clr_fd(file.as_raw_fd()) }
            .map(drop)
            .map_err(|source| LoopError::Detach {
                device: self.path.clone(),
                source,
            })
    }
}

/// The logical block size in bytes of the block device `device` (a disk
/// or a partition, e.g. /dev/nvme0n1p3), from sysfs; `None` if sysfs does
/// not say.
pub fn logical_block_size_of(device: &Path) -> Option<u64> {
    logical_block_size_of_in(Path::new("/sys"), device)
}

/// As [`logical_block_size_of`], with sysfs under `sys_root`.
pub fn logical_block_size_of_in(sys_root: &Path, device: &Path) -> Option<u64> {
    let name = device.file_name()?;
    let node = sys_root.join("class/block").join(name);
    // A disk has queue/ itself; a partition's directory sits inside its
    // disk's, and `..` is resolved after the class symlink is followed.
    [node.join("queue"), node.join("../queue")]
        .iter()
        .find_map(|q| fs::read_to_string(q.join("logical_block_size")).ok())
        .and_then(|s| s.trim().parse().ok())
}

/// Waits up to `timeout` for the kernel's partition scan of `dev` and
/// returns the partition device nodes (`/dev/loopNpM`) that exist, in
/// partition order. Partitions appear in sysfs first and devtmpfs creates
/// the nodes shortly after; a partition is returned only once both exist.
/// Returns what it has when the time is up (possibly nothing).
pub fn wait_for_partitions(dev: &LoopDevice, timeout: Duration) -> Vec<PathBuf> {
    wait_for_partitions_in(Path::new("/sys"), Path::new("/dev"), dev, timeout)
}

/// As [`wait_for_partitions`], with sysfs and /dev under given roots.
pub fn wait_for_partitions_in(
    sys_root: &Path,
    dev_root: &Path,
    dev: &LoopDevice,
    timeout: Duration,
) -> Vec<PathBuf> {
    let start = Instant::now();
    let mut last = Vec::new();
    loop {
        let found = partitions_now(sys_root, dev_root, dev.number);
        // Wait until the list stops growing across one poll, so that a
        // disk whose later partitions are still being added is not cut off.
        if !found.is_empty() && found == last {
            return found;
        }
        if start.elapsed() >= timeout {
            return found;
        }
        last = found;
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn partitions_now(sys_root: &Path, dev_root: &Path, number: u32) -> Vec<PathBuf> {
    let disk = format!("loop{number}");
    let prefix = format!("{disk}p");
    let Ok(entries) = fs::read_dir(sys_root.join("block").join(&disk)) else {
        return Vec::new();
    };
    let mut parts: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let index: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
            let node = dev_root.join(&name);
            node.exists().then_some((index, node))
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_block_size_is_read_for_disks_and_their_partitions() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path();
        let disk = sys.join("devices/pci0/virtio1/block/vda");
        fs::create_dir_all(disk.join("queue")).unwrap();
        fs::create_dir_all(disk.join("vda1")).unwrap();
        fs::write(disk.join("queue/logical_block_size"), "4096\n").unwrap();
        fs::create_dir_all(sys.join("class/block")).unwrap();
        std::os::unix::fs::symlink(&disk, sys.join("class/block/vda")).unwrap();
        std::os::unix::fs::symlink(disk.join("vda1"), sys.join("class/block/vda1")).unwrap();
        assert_eq!(
            logical_block_size_of_in(sys, Path::new("/dev/vda")),
            Some(4096)
        );
        assert_eq!(
            logical_block_size_of_in(sys, Path::new("/dev/vda1")),
            Some(4096)
        );
        assert_eq!(logical_block_size_of_in(sys, Path::new("/dev/sdz")), None);
    }

    #[test]
    fn partitions_are_listed_in_order_only_when_sysfs_and_dev_agree() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let dev = root.path().join("dev");
        for p in ["loop3p1", "loop3p2", "loop3p10"] {
            fs::create_dir_all(sys.join("block/loop3").join(p)).unwrap();
        }
        fs::create_dir_all(sys.join("block/loop3/queue")).unwrap();
        fs::create_dir_all(&dev).unwrap();
        for p in ["loop3p1", "loop3p10"] {
            fs::write(dev.join(p), "").unwrap();
        }
        let found = wait_for_partitions_in(&sys, &dev, &LoopDevice::from_number(3), Duration::ZERO);
        assert_eq!(found, vec![dev.join("loop3p1"), dev.join("loop3p10")]);
    }

    #[test]
    fn configure_error_names_every_argument() {
        let err = LoopError::Configure {
            device: "/dev/loop0".into(),
            file: "/host/vhd/fedora.vhd".into(),
            offset: 0,
            size_limit: 1024,
            direct_io: true,
            partscan: true,
            source: Errno::EINVAL,
        };
        let text = err.to_string();
        for part in [
            "/dev/loop0",
            "/host/vhd/fedora.vhd",
            "sizelimit 1024",
            "EINVAL",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
    }
}
