//! libblkid probing against filesystems made by the real tools, checked
//! against util-linux's `blkid` as the peer. The loop-device tests need
//! root; the fake-sysfs test does not.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::fs;
use std::path::Path;

use support::disk::run_with_input;
use vhdboot::sys::blkid::{BlockInfo, probe_block_devices, probe_block_devices_in};
use vhdboot::sys::loopdev::{self, LoopConfig, LoopDevice};

const MIB: u64 = 1024 * 1024;

/// What util-linux's blkid says, low-level probing the file itself.
fn blkid_value(path: &Path, tag: &str) -> String {
    run_with_input(
        "blkid",
        &["-p", "-o", "value", "-s", tag, path.to_str().unwrap()],
        None,
    )
}

fn image(dir: &Path, name: &str, size: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::File::create(&path).unwrap().set_len(size).unwrap();
    path
}

struct Attached(LoopDevice);

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.0.detach();
    }
}

fn probe_on_loop(image: &Path) -> BlockInfo {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (it attaches a loop device)"
    );
    let cfg = LoopConfig {
        read_only: true,
        ..LoopConfig::default()
    };
    let attached = Attached(loopdev::attach(image, &cfg).unwrap());
    let all = probe_block_devices(Path::new("/sys"));
    all.into_iter()
        .find(|b| b.device == attached.0.path)
        .unwrap_or_else(|| panic!("{} not listed", attached.0.path.display()))
}

#[test]
fn ntfs_on_a_loop_device_reports_type_label_and_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "ntfs.img", 16 * MIB);
    run_with_input(
        "mkntfs",
        &["-Q", "-F", "-L", "TESTVOL", img.to_str().unwrap()],
        None,
    );
    let info = probe_on_loop(&img);
    assert_eq!(info.fstype.as_deref(), Some("ntfs"));
    assert_eq!(info.label.as_deref(), Some("TESTVOL"));
    assert_eq!(
        info.uuid.as_deref(),
        Some(blkid_value(&img, "UUID").as_str())
    );
    assert_eq!(info.size, 16 * MIB);
    assert!(info.read_only);
    assert_eq!(info.parent, None);
    assert_eq!(info.probe_error, None);
}

#[test]
fn exfat_on_a_loop_device_reports_type_label_and_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "exfat.img", 16 * MIB);
    run_with_input("mkfs.exfat", &["-L", "EXVOL", img.to_str().unwrap()], None);
    let info = probe_on_loop(&img);
    assert_eq!(info.fstype.as_deref(), Some("exfat"));
    assert_eq!(info.label.as_deref(), Some("EXVOL"));
    assert_eq!(
        info.uuid.as_deref(),
        Some(blkid_value(&img, "UUID").as_str())
    );
}

/// Partition nodes do not appear on this machine's kernel (no GPT
/// support), so the disk/partition relationship is built as a fake sysfs
/// tree whose "device nodes" are image files libblkid reads like disks.
#[test]
fn partition_gets_partuuid_from_its_disks_gpt() {
    let root = tempfile::tempdir().unwrap();
    let sys = root.path().join("sys");
    let dev = root.path().join("dev");
    fs::create_dir_all(&dev).unwrap();
    let disk = image(&dev, "vda", 8 * MIB);
    run_with_input(
        "sfdisk",
        &["-q", disk.to_str().unwrap()],
        Some("label: gpt\nstart=2048, type=L, uuid=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"),
    );
    let part = image(&dev, "vda1", 4 * MIB);
    run_with_input("mkfs.exfat", &["-L", "HOST", part.to_str().unwrap()], None);

    let disk_dir = sys.join("devices/pci0000:00/virtio1/block/vda");
    let part_dir = disk_dir.join("vda1");
    fs::create_dir_all(&part_dir).unwrap();
    fs::write(disk_dir.join("size"), "16384\n").unwrap();
    fs::write(disk_dir.join("ro"), "0\n").unwrap();
    fs::write(part_dir.join("size"), "8192\n").unwrap();
    fs::write(part_dir.join("ro"), "0\n").unwrap();
    fs::write(part_dir.join("partition"), "1\n").unwrap();
    fs::create_dir_all(sys.join("class/block")).unwrap();
    std::os::unix::fs::symlink(&disk_dir, sys.join("class/block/vda")).unwrap();
    std::os::unix::fs::symlink(&part_dir, sys.join("class/block/vda1")).unwrap();
    fs::create_dir_all(sys.join("class/block/ram0")).unwrap();
    fs::write(sys.join("class/block/ram0/size"), "8192\n").unwrap();

    let infos = probe_block_devices_in(&sys, &dev);
    let names: Vec<&str> = infos.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["vda", "vda1"], "ram0 must be skipped");
    let vda1 = &infos[1];
    assert_eq!(vda1.parent.as_deref(), Some("vda"));
    assert_eq!(
        vda1.partuuid.as_deref(),
        Some("0fc63daf-8483-4772-8e79-3d69d8477de4")
    );
    assert_eq!(vda1.fstype.as_deref(), Some("exfat"));
    assert_eq!(vda1.label.as_deref(), Some("HOST"));
    assert_eq!(vda1.size, 4 * MIB);
    assert_eq!(
        infos[0].fstype, None,
        "a GPT disk has no filesystem of its own"
    );
    assert_eq!(infos[0].partuuid, None);
}
