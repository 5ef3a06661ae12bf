//! Loop devices and mounts against the real kernel. These need root and
//! real tools (sfdisk, mkfs.ext4); they use temp files on a disk
//! filesystem (tmpfs refuses O_DIRECT before Linux 6.6) and detach what they attach.

#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::disk::run_with_input;
use vhdboot::sys::loopdev::{self, LoopConfig, LoopDevice};
use vhdboot::sys::mount::{self, MountError, MountMode, Unmounted};

const MIB: u64 = 1024 * 1024;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (loop devices and mounts); run it as root, as CI does"
    );
}

/// A temp dir on a filesystem that supports O_DIRECT. /var/tmp is a disk
/// filesystem on this machine and in CI; we check rather than assume.
fn disk_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("vhdboot-sys-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let probe = dir.path().join("odirect-probe");
    fs::write(&probe, vec![0u8; 4096]).unwrap();
    let open = fs::OpenOptions::new()
        .read(true)
        .custom_flags_direct()
        .open(&probe);
    assert!(
        open.is_ok(),
        "/var/tmp does not support O_DIRECT ({:?}); the direct-I/O test needs a disk filesystem",
        open.err()
    );
    dir
}

trait DirectFlag {
    fn custom_flags_direct(&mut self) -> &mut Self;
}

impl DirectFlag for fs::OpenOptions {
    fn custom_flags_direct(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_DIRECT)
    }
}

/// Detaches on drop so that a failing assertion does not leak a device.
struct Attached(Option<LoopDevice>);

impl Attached {
    fn dev(&self) -> &LoopDevice {
        self.0.as_ref().unwrap()
    }
    fn detach(mut self) {
        self.0.take().unwrap().detach().unwrap();
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(dev) = self.0.take() {
            let _ = dev.detach();
        }
    }
}

fn sysfs(dev: &LoopDevice, leaf: &str) -> String {
    fs::read_to_string(format!("/sys/block/loop{}/{leaf}", dev.number))
        .unwrap()
        .trim()
        .to_string()
}

/// An 8 MiB GPT disk with one partition, followed by a 512-byte stand-in
/// for the VHD footer.
fn gpt_image_with_footer(dir: &Path) -> PathBuf {
    let path = dir.join("disk.vhd");
    fs::File::create(&path).unwrap().set_len(8 * MIB).unwrap();
    run_with_input(
        "sfdisk",
        &["-q", path.to_str().unwrap()],
        Some("label: gpt\n,,L\n"),
    );
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0xAB; 512]).unwrap();
    path
}

#[test]
fn loop_configure_sets_direct_io_sizelimit_and_partscan() {
    require_root();
    let dir = disk_tempdir();
    let image = gpt_image_with_footer(dir.path());
    let file_size = fs::metadata(&image).unwrap().len();
    let cfg = LoopConfig {
        direct_io: true,
        partscan: true,
        size_limit: file_size - 512,
        ..LoopConfig::default()
    };
    let attached = Attached(Some(loopdev::attach(&image, &cfg).unwrap()));
    let dev = attached.dev();

    assert!(dev.direct_io_enabled().unwrap(), "loop/dio is not 1");
    assert_eq!(
        dev.size().unwrap(),
        8 * MIB,
        "sizelimit must hide the footer"
    );
    assert_eq!(
        dev.backing_file().unwrap(),
        fs::canonicalize(&image).unwrap()
    );
    assert_eq!(
        sysfs(dev, "partscan"),
        "1",
        "LO_FLAGS_PARTSCAN was not applied"
    );
    assert_eq!(dev.path, PathBuf::from(format!("/dev/loop{}", dev.number)));

    // Whether partitions appear depends on the kernel having GPT support
    // (this build machine's kernel reports partscan=1 but finds none).
    // Whatever sysfs shows, wait_for_partitions must agree with it.
    let parts = loopdev::wait_for_partitions(dev, Duration::from_millis(500));
    let in_sysfs = Path::new(&format!(
        "/sys/block/loop{}/loop{}p1",
        dev.number, dev.number
    ))
    .exists();
    eprintln!("partitions after partscan: {parts:?} (sysfs has p1: {in_sysfs})");
    if in_sysfs {
        assert_eq!(
            parts,
            vec![PathBuf::from(format!("/dev/loop{}p1", dev.number))]
        );
    } else {
        assert!(parts.is_empty());
    }

    let number = dev.number;
    attached.detach();
    let backing = format!("/sys/block/loop{number}/loop/backing_file");
    assert!(
        !Path::new(&backing).exists(),
        "loop{number} still has a backing file after detach"
    );
}

#[test]
fn read_only_loop_device_refuses_writes() {
    require_root();
    let dir = disk_tempdir();
    let image = dir.path().join("ro.img");
    fs::File::create(&image).unwrap().set_len(MIB).unwrap();
    let cfg = LoopConfig {
        read_only: true,
        ..LoopConfig::default()
    };
    let attached = Attached(Some(loopdev::attach(&image, &cfg).unwrap()));
    assert_eq!(sysfs(attached.dev(), "ro"), "1");
    // Linux lets root open a read-only disk for writing; the write fails.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(&attached.dev().path)
        .unwrap();
    let err = file.write_all(&[0u8; 512]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    attached.detach();
}

fn ext4_on_loop(dir: &Path) -> Attached {
    let image = dir.join("fs.img");
    fs::File::create(&image).unwrap().set_len(16 * MIB).unwrap();
    run_with_input(
        "mkfs.ext4",
        &["-q", "-F", "-L", "VHDTEST", image.to_str().unwrap()],
        None,
    );
    Attached(Some(
        loopdev::attach(&image, &LoopConfig::default()).unwrap(),
    ))
}

#[test]
fn read_only_mount_refuses_writes_with_erofs() {
    require_root();
    let dir = disk_tempdir();
    let attached = ext4_on_loop(dir.path());
    let target = dir.path().join("mnt/nested");
    mount::mount_fs(
        &attached.dev().path,
        &target,
        "ext4",
        MountMode::ReadOnly,
        "",
    )
    .unwrap();
    assert!(mount::is_mounted(&target).unwrap());

    let err = fs::write(target.join("new-file"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    assert_eq!(mount::umount_fs(&target).unwrap(), Unmounted::Clean);
    assert!(!mount::is_mounted(&target).unwrap());
    attached.detach();
}

#[test]
fn read_write_mount_accepts_writes() {
    require_root();
    let dir = disk_tempdir();
    let attached = ext4_on_loop(dir.path());
    let target = dir.path().join("rw");
    mount::mount_fs(
        &attached.dev().path,
        &target,
        "ext4",
        MountMode::ReadWrite,
        "",
    )
    .unwrap();
    fs::write(target.join("file"), b"data").unwrap();
    assert_eq!(fs::read(target.join("file")).unwrap(), b"data");
    assert_eq!(mount::umount_fs(&target).unwrap(), Unmounted::Clean);
    attached.detach();
}

#[test]
fn busy_mount_is_detached_lazily_and_reported() {
    require_root();
    let dir = disk_tempdir();
    let attached = ext4_on_loop(dir.path());
    let target = dir.path().join("busy");
    mount::mount_fs(
        &attached.dev().path,
        &target,
        "ext4",
        MountMode::ReadOnly,
        "",
    )
    .unwrap();
    let holder = fs::File::open(target.join("lost+found")).unwrap();
    assert_eq!(mount::umount_fs(&target).unwrap(), Unmounted::Detached);
    assert!(!mount::is_mounted(&target).unwrap());
    drop(holder);
    attached.detach();
}

#[test]
fn failed_mount_carries_the_kernels_reason() {
    require_root();
    let dir = disk_tempdir();
    let image = dir.path().join("zeros.img");
    fs::File::create(&image).unwrap().set_len(4 * MIB).unwrap();
    let attached = Attached(Some(
        loopdev::attach(&image, &LoopConfig::default()).unwrap(),
    ));
    let target = dir.path().join("never");
    let err = mount::mount_fs(
        &attached.dev().path,
        &target,
        "ext4",
        MountMode::ReadOnly,
        "",
    )
    .unwrap_err();
    let MountError::Mount { kernel, source, .. } = &err else {
        panic!("unexpected error {err}");
    };
    assert_eq!(*source, nix::errno::Errno::EINVAL, "{err}");
    let name = format!("loop{}", attached.dev().number);
    assert!(
        kernel.iter().any(|line| line.contains(&name)),
        "no kernel line naming {name} in {err}"
    );
    let text = err.to_string();
    assert!(text.contains("(kernel: "), "{text}");
    assert!(text.contains("read-only"), "{text}");
    attached.detach();
}

#[test]
fn attach_of_missing_file_names_the_file() {
    let err =
        loopdev::attach(Path::new("/nonexistent/image.vhd"), &LoopConfig::default()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/image.vhd"), "{err}");
    let loopdev::LoopError::OpenBacking { source, .. } = err else {
        panic!("unexpected error {err}");
    };
    assert_eq!(source.kind(), ErrorKind::NotFound);
}

#[test]
fn loop_device_without_direct_io_reports_dio_off() {
    require_root();
    let dir = disk_tempdir();
    let image = dir.path().join("buffered.img");
    fs::File::create(&image).unwrap().set_len(4 * MIB).unwrap();
    let attached = Attached(Some(
        loopdev::attach(&image, &LoopConfig::default()).unwrap(),
    ));
    assert!(!attached.dev().direct_io_enabled().unwrap());
    attached.detach();
}
