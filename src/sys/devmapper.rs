//! Device-mapper devices made through the DM ioctls on /dev/mapper/control
//! (linux/dm-ioctl.h), without libdevmapper: create, load one table,
//! resume, and remove on failure. Stage 2 uses it for immutable boots: a
//! `snapshot` target whose origin is the read-only loop device of the VHD
//! and whose copy-on-write store is a device in RAM.
//!
//! The well-kept `devicemapper` crate (stratis) does the same, but it pulls
//! in a dozen crates for four ioctls; the structs below are checked against
//! the kernel's layout at compile time and the table text is built by pure
//! functions that unit tests pin down.
//!
//! Device-mapper is only ever stacked ON TOP of a loop device of the image
//! file, never over the host partition (shared/lessons.md: never map NTFS
//! extents ourselves).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

const DM_CONTROL: &str = "/dev/mapper/control";
/// Where the control node lives when /dev/mapper does not exist (devtmpfs
/// names it after the misc device, "device-mapper").
const DM_CONTROL_FALLBACK: &str = "/dev/device-mapper";

// linux/dm-ioctl.h.
const DM_IOCTL: u8 = 0xfd;
const DM_VERSION_MAJOR: u32 = 4;
const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
const DM_MAX_TYPE_NAME: usize = 16;

const DM_DEV_CREATE_CMD: u8 = 3;
const DM_DEV_REMOVE_CMD: u8 = 4;
const DM_DEV_SUSPEND_CMD: u8 = 6;
const DM_TABLE_LOAD_CMD: u8 = 9;
const DM_TABLE_STATUS_CMD: u8 = 12;
/// The kernel sets this when the status did not fit the buffer.
const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;

/// The table and the device are writable; a snapshot must be, or the
/// target could not write its changes into the RAM layer.
const DM_NO_FLAGS: u32 = 0;

/// `struct dm_ioctl` from linux/dm-ioctl.h (312 bytes). The kernel reads
/// `data_size` bytes from its start, so it always heads a [`DmBuffer`].
#[repr(C)]
#[derive(Clone, Copy)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; DM_NAME_LEN],
    uuid: [u8; DM_UUID_LEN],
    data: [u8; 7],
}

/// `struct dm_target_spec` from linux/dm-ioctl.h (40 bytes), followed in
/// the buffer by the target's parameters as a NUL-terminated string.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; DM_MAX_TYPE_NAME],
}

/// Room for one target's parameters: two device paths and a few numbers.
const PAYLOAD: usize = 1024;

/// One ioctl's whole argument: the header and the data after it, in one
/// 8-byte-aligned block whose size the header's `data_size` states.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmBuffer {
    header: DmIoctl,
    payload: [u8; PAYLOAD],
}

const _: () = assert!(std::mem::size_of::<DmIoctl>() == 312);
const _: () = assert!(std::mem::size_of::<DmTargetSpec>() == 40);
const _: () = assert!(std::mem::size_of::<DmBuffer>() == 312 + PAYLOAD);

// The request numbers encode sizeof(struct dm_ioctl), not the buffer's.
const DM_IOCTL_SIZE: usize = std::mem::size_of::<DmIoctl>();
nix::ioctl_readwrite_bad!(
    dm_dev_create,
    nix::request_code_readwrite!(DM_IOCTL, DM_DEV_CREATE_CMD, DM_IOCTL_SIZE),
    DmBuffer
);
nix::ioctl_readwrite_bad!(
    dm_dev_remove,
    nix::request_code_readwrite!(DM_IOCTL, DM_DEV_REMOVE_CMD, DM_IOCTL_SIZE),
    DmBuffer
);
nix::ioctl_readwrite_bad!(
    dm_dev_suspend,
    nix::request_code_readwrite!(DM_IOCTL, DM_DEV_SUSPEND_CMD, DM_IOCTL_SIZE),
    DmBuffer
);
nix::ioctl_readwrite_bad!(
    dm_table_status,
    nix::request_code_readwrite!(DM_IOCTL, DM_TABLE_STATUS_CMD, DM_IOCTL_SIZE),
    DmBuffer
);
nix::ioctl_readwrite_bad!(
    dm_table_load,
    nix::request_code_readwrite!(DM_IOCTL, DM_TABLE_LOAD_CMD, DM_IOCTL_SIZE),
    DmBuffer
);

/// One line of a device-mapper table: `length` sectors from sector 0 of
/// the device, mapped by `target` with `params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub length_sectors: u64,
    pub target: &'static str,
    pub params: String,
}

/// Sectors per copy-on-write chunk: 4 KiB, the page size, so that a
/// target's 4 KiB write copies one chunk and the RAM layer holds no more
/// than what was written. The price is on large I/O: dm-snapshot splits
/// every bio at chunk boundaries (`snapshot_ctr` sets the target's
/// `max_io_len` to the chunk size), so a 1 MiB read becomes 256 reads of
/// 4 KiB; `bench/stacks` measured sequential reads through the immutable
/// and trial stacks at about 0.05 of the plain loop's, and random 4 KiB
/// reads no slower. A larger chunk would trade RAM for that speed.
pub const SNAPSHOT_CHUNK_SECTORS: u32 = 8;

impl Target {
    /// A non-persistent (`N`) `snapshot` of `origin` that keeps the changed
    /// chunks in `cow` (dm-snapshot in Documentation/admin-guide/
    /// device-mapper/snapshot.rst). Reads of unchanged chunks go to the
    /// origin, which the target opens read-only. When `cow` is full the
    /// kernel invalidates the snapshot and every further I/O fails.
    pub fn snapshot(origin: &Path, cow: &Path, length_sectors: u64) -> Target {
        Target {
            length_sectors,
            target: "snapshot",
            params: format!(
                "{} {} N {SNAPSHOT_CHUNK_SECTORS}",
                origin.display(),
                cow.display()
            ),
        }
    }

    /// A persistent (`P`) `snapshot` of `origin` whose exception store is
    /// `cow`, a loop device over `<image>.trial` on the host (trial boot,
    /// issue 15 item 2). The kernel writes its own on-disk format there
    /// (a header chunk, then metadata and data chunks), so the same table
    /// finds the changes again after a reboot.
    pub fn persistent_snapshot(origin: &Path, cow: &Path, length_sectors: u64) -> Target {
        Target {
            length_sectors,
            target: "snapshot",
            params: format!(
                "{} {} P {SNAPSHOT_CHUNK_SECTORS}",
                origin.display(),
                cow.display()
            ),
        }
    }

    /// A `snapshot-merge` of the persistent store `cow` into `origin`
    /// (keep): the kernel copies every exception back to the origin and
    /// commits its progress into the store as it goes, so a merge cut by a
    /// power loss resumes when the same table is loaded again.
    pub fn snapshot_merge(origin: &Path, cow: &Path, length_sectors: u64) -> Target {
        Target {
            length_sectors,
            target: "snapshot-merge",
            params: format!(
                "{} {} P {SNAPSHOT_CHUNK_SECTORS}",
                origin.display(),
                cow.display()
            ),
        }
    }

    /// The table line as `dmsetup table` prints it, for messages.
    pub fn line(&self) -> String {
        format!("0 {} {} {}", self.length_sectors, self.target, self.params)
    }
}

/// An active device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmDevice {
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

impl DmDevice {
    /// The device node devtmpfs makes for it: `/dev/dm-<minor>`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/dev/dm-{}", self.minor))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DmError {
    #[error(
        "opening {DM_CONTROL} failed: {source} (is the dm_mod module loaded? the target's \
         initramfs must have dm-mod and dm-snapshot)"
    )]
    OpenControl {
        #[source]
        source: io::Error,
    },
    #[error("device-mapper name {name:?} is empty or longer than {} bytes", DM_NAME_LEN - 1)]
    BadName { name: String },
    #[error(
        "the table {line:?} does not fit in the {PAYLOAD}-byte buffer vhdboot passes to the kernel"
    )]
    TableTooLong { line: String },
    #[error("{step} of device-mapper device {name} failed: {source}")]
    Ioctl {
        step: &'static str,
        name: String,
        source: Errno,
    },
    #[error(
        "loading the table {line:?} into device-mapper device {name} failed: {source}; the \
         kernel log (dmesg) names the target's reason"
    )]
    Load {
        name: String,
        line: String,
        source: Errno,
    },
}

fn open_control() -> Result<File, DmError> {
    let open = |path: &str| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
    };
    open(DM_CONTROL)
        .or_else(|first| open(DM_CONTROL_FALLBACK).map_err(|_| first))
        .map_err(|source| DmError::OpenControl { source })
}

/// Creates device `name`, loads `target` as its whole table and resumes
/// it, so that its node accepts I/O. On a failure after the create, the
/// half-made device is removed again.
pub fn create(name: &str, target: &Target) -> Result<DmDevice, DmError> {
    let control = open_control()?;
    let mut buf = request(name)?;
    // SAFETY: `buf` is a fully initialised DmBuffer whose header states its
    // own size in `data_size`, so the kernel reads and writes only inside
    // it; `control` is an open fd on the DM control node for the call.
    unsafe { dm_dev_create(control.as_raw_fd(), &mut buf) }.map_err(|source| DmError::Ioctl {
        step: "DM_DEV_CREATE",
        name: name.to_string(),
        source,
    })?;
    let (major, minor) = decode_dev(buf.header.dev);
    let device = DmDevice {
        name: name.to_string(),
        major,
        minor,
    };
    let activated = load_and_resume(&control, name, target);
    if let Err(e) = activated {
        let _ = remove_with(&control, name);
        return Err(e);
    }
    Ok(device)
}

fn load_and_resume(control: &File, name: &str, target: &Target) -> Result<(), DmError> {
    let mut buf = request(name)?;
    let Some(table) = table_payload(target) else {
        return Err(DmError::TableTooLong {
            line: target.line(),
        });
    };
    buf.header.target_count = 1;
    buf.payload[..table.len()].copy_from_slice(&table);
    // SAFETY: as in `create`; the payload holds one dm_target_spec with its
    // NUL-terminated parameters, inside the `data_size` the header states.
    unsafe { dm_table_load(control.as_raw_fd(), &mut buf) }.map_err(|source| DmError::Load {
        name: name.to_string(),
        line: target.line(),
        source,
    })?;
    // DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes the device, which
    // swaps the loaded table in.
    let mut buf = request(name)?;
    // SAFETY: as in `create`.
    unsafe { dm_dev_suspend(control.as_raw_fd(), &mut buf) }.map_err(|source| DmError::Ioctl {
        step: "DM_DEV_SUSPEND (resume)",
        name: name.to_string(),
        source,
    })?;
    Ok(())
}

/// The status text of device `name`'s first target (DM_TABLE_STATUS
/// without DM_STATUS_TABLE_FLAG, as `dmsetup status` prints after the
/// start, length and target name). For a `snapshot-merge` it is
/// `<sectors_allocated>/<total_sectors> <metadata_sectors>`, which
/// `vhdboot::trial::parse_merge_status` reads.
pub fn status(name: &str) -> Result<String, DmError> {
    let control = open_control()?;
    let mut buf = request(name)?;
    // SAFETY: as in `create`; the kernel writes at most `data_size` bytes
    // (the header and the payload) and flags a status that did not fit.
    unsafe { dm_table_status(control.as_raw_fd(), &mut buf) }.map_err(|source| DmError::Ioctl {
        step: "DM_TABLE_STATUS",
        name: name.to_string(),
        source,
    })?;
    let bad = || DmError::Ioctl {
        step: "DM_TABLE_STATUS (reading the answer)",
        name: name.to_string(),
        source: Errno::EPROTO,
    };
    if buf.header.flags & DM_BUFFER_FULL_FLAG != 0 || buf.header.target_count == 0 {
        return Err(bad());
    }
    status_text(&buf.payload, buf.header.data_start as usize).ok_or_else(bad)
}

/// Reads the first target's status from the bytes after the header: a
/// dm_target_spec at `data_start` (counted from the header's start), then
/// the NUL-terminated text. Every offset is checked against the buffer.
fn status_text(payload: &[u8], data_start: usize) -> Option<String> {
    let spec = data_start.checked_sub(DM_IOCTL_SIZE)?;
    let text_start = spec.checked_add(std::mem::size_of::<DmTargetSpec>())?;
    let rest = payload.get(text_start..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Removes device `name` (DM_DEV_REMOVE). Fails with EBUSY while it is open.
pub fn remove(name: &str) -> Result<(), DmError> {
    remove_with(&open_control()?, name)
}

fn remove_with(control: &File, name: &str) -> Result<(), DmError> {
    let mut buf = request(name)?;
    // SAFETY: as in `create`.
    unsafe { dm_dev_remove(control.as_raw_fd(), &mut buf) }
        .map(drop)
        .map_err(|source| DmError::Ioctl {
            step: "DM_DEV_REMOVE",
            name: name.to_string(),
            source,
        })
}

/// A zeroed buffer with the header every command needs: the interface
/// version, the sizes and the device's name.
fn request(name: &str) -> Result<DmBuffer, DmError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= DM_NAME_LEN || bytes.contains(&0) {
        return Err(DmError::BadName {
            name: name.to_string(),
        });
    }
    let mut header = DmIoctl {
        version: [DM_VERSION_MAJOR, 0, 0],
        data_size: std::mem::size_of::<DmBuffer>() as u32,
        data_start: DM_IOCTL_SIZE as u32,
        target_count: 0,
        open_count: 0,
        flags: DM_NO_FLAGS,
        event_nr: 0,
        padding: 0,
        dev: 0,
        name: [0; DM_NAME_LEN],
        uuid: [0; DM_UUID_LEN],
        data: [0; 7],
    };
    header.name[..bytes.len()].copy_from_slice(bytes);
    Ok(DmBuffer {
        header,
        payload: [0; PAYLOAD],
    })
}

/// The bytes after the header for a one-target table: a dm_target_spec,
/// then the parameters and their NUL, padded to 8 bytes (the kernel wants
/// each spec 8-byte aligned). None when they do not fit the buffer.
fn table_payload(target: &Target) -> Option<Vec<u8>> {
    let spec_size = std::mem::size_of::<DmTargetSpec>();
    let params = target.params.as_bytes();
    let type_name = target.target.as_bytes();
    if params.contains(&0) || type_name.len() >= DM_MAX_TYPE_NAME {
        return None;
    }
    let len = (spec_size + params.len() + 1).next_multiple_of(8);
    if len > PAYLOAD {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&0u64.to_ne_bytes()); // sector_start
    out.extend_from_slice(&target.length_sectors.to_ne_bytes());
    out.extend_from_slice(&0i32.to_ne_bytes()); // status
    out.extend_from_slice(&u32::try_from(len).ok()?.to_ne_bytes()); // next
    let mut name = [0u8; DM_MAX_TYPE_NAME];
    name[..type_name.len()].copy_from_slice(type_name);
    out.extend_from_slice(&name);
    out.extend_from_slice(params);
    out.resize(len, 0);
    Some(out)
}

/// Splits the kernel's `huge_encode_dev` number (linux/kdev_t.h) into
/// major and minor.
fn decode_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) as u32;
    let minor = ((dev & 0xff) | ((dev >> 12) & 0xfff_ff00)) as u32;
    (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_table_line_is_origin_cow_non_persistent_and_chunk() {
        let t = Target::snapshot(Path::new("/dev/loop0"), Path::new("/dev/loop1"), 2048);
        assert_eq!(t.line(), "0 2048 snapshot /dev/loop0 /dev/loop1 N 8");
    }

    #[test]
    fn trial_tables_are_persistent_snapshot_and_merge_over_the_same_store() {
        let (o, c) = (Path::new("/dev/loop0"), Path::new("/dev/loop1"));
        assert_eq!(
            Target::persistent_snapshot(o, c, 2048).line(),
            "0 2048 snapshot /dev/loop0 /dev/loop1 P 8"
        );
        assert_eq!(
            Target::snapshot_merge(o, c, 2048).line(),
            "0 2048 snapshot-merge /dev/loop0 /dev/loop1 P 8"
        );
    }

    #[test]
    fn table_payload_is_one_spec_then_params_padded_to_8() {
        let t = Target::snapshot(Path::new("/dev/loop0"), Path::new("/dev/loop1"), 2048);
        let p = table_payload(&t).unwrap();
        let params = b"/dev/loop0 /dev/loop1 N 8";
        assert_eq!(p.len(), (40 + params.len() + 1).next_multiple_of(8));
        assert_eq!(p.len() % 8, 0);
        assert_eq!(&p[0..8], &0u64.to_ne_bytes());
        assert_eq!(&p[8..16], &2048u64.to_ne_bytes());
        assert_eq!(&p[20..24], &(p.len() as u32).to_ne_bytes());
        assert_eq!(&p[24..32], b"snapshot");
        assert!(p[32..40].iter().all(|&b| b == 0));
        assert_eq!(&p[40..40 + params.len()], params);
        assert_eq!(p[40 + params.len()], 0, "params end with a NUL");
    }

    #[test]
    fn table_that_does_not_fit_is_refused() {
        let t = Target {
            length_sectors: 1,
            target: "snapshot",
            params: "x".repeat(PAYLOAD),
        };
        assert_eq!(table_payload(&t), None);
        let t = Target {
            length_sectors: 1,
            target: "a-type-name-too-long",
            params: String::new(),
        };
        assert_eq!(table_payload(&t), None);
    }

    #[test]
    fn status_text_is_read_after_the_spec_within_the_buffer() {
        let mut payload = vec![0u8; 128];
        payload[40..55].copy_from_slice(b"4208/2097152 16");
        assert_eq!(
            status_text(&payload, 312).as_deref(),
            Some("4208/2097152 16")
        );
        // A data_start before the payload, past it, or text without its
        // NUL is no status.
        assert_eq!(status_text(&payload, 0), None);
        assert_eq!(status_text(&payload, 312 + 4096), None);
        assert_eq!(status_text(&[b'1'; 64], 312), None);
    }

    #[test]
    fn header_carries_version_sizes_and_name() {
        let b = request("vhdboot-immutable").unwrap();
        assert_eq!(b.header.version, [4, 0, 0]);
        assert_eq!(b.header.data_size as usize, 312 + PAYLOAD);
        assert_eq!(b.header.data_start, 312);
        assert_eq!(&b.header.name[..17], b"vhdboot-immutable");
        assert_eq!(b.header.name[17], 0);
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "a\0b"] {
            assert!(matches!(request(name), Err(DmError::BadName { .. })));
        }
        assert!(request(&"n".repeat(127)).is_ok());
        assert!(request(&"n".repeat(128)).is_err());
    }

    #[test]
    fn request_numbers_match_the_kernel_header() {
        // _IOWR(0xfd, 3, struct dm_ioctl) as libdevmapper computes it.
        assert_eq!(
            nix::request_code_readwrite!(DM_IOCTL, DM_DEV_CREATE_CMD, DM_IOCTL_SIZE),
            0xC138_FD03
        );
        assert_eq!(
            nix::request_code_readwrite!(DM_IOCTL, DM_TABLE_LOAD_CMD, DM_IOCTL_SIZE),
            0xC138_FD09
        );
    }

    #[test]
    fn device_numbers_decode_like_the_kernel_encodes_them() {
        assert_eq!(decode_dev((254 << 8) | 3), (254, 3));
        // Minor 0x1234: low byte in bits 0-7, the rest from bit 20 up.
        assert_eq!(decode_dev((253 << 8) | 0x34 | (0x12 << 20)), (253, 0x1234));
        let d = DmDevice {
            name: "x".into(),
            major: 254,
            minor: 3,
        };
        assert_eq!(d.path(), PathBuf::from("/dev/dm-3"));
    }
}
