//! Kernels in /boot on btrfs and xfs, read as stage 1 reads them: the real
//! binary's probe child (`vhdboot probe image`, what PID 1 runs for each
//! image) mounts the partition read-only without log replay in a private
//! mount namespace and lists its kernels through the same `/boot` reader
//! ext4 uses; `vhdboot inspect` as root then loads each kernel and initrd
//! the way the boot child does. The filesystems are made by the real tools
//! without mounting (`mkfs.btrfs --rootdir`, `mkfs.xfs -p protofile`).
//! Every test hashes the disk before and after, and checks that no loop
//! device or mount was left behind. They need root, as CI runs them.

#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::disk;
use vhdboot::model::{ByteRange, EntrySource, Image, KernelFs};

const BIN: &str = env!("CARGO_BIN_EXE_vhdboot");
const KVER: &str = "6.12.0-1-amd64";
const BTRFS_UUID: &str = "0b7c2a44-3f1e-4d6a-9c51-7e2f9a1b3c5d";
const XFS_UUID: &str = "5e1d9c3a-7b2f-4a68-8d04-c9e6b2a7f013";
const OS_RELEASE: &[u8] =
    b"PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (loop devices and mounts); run it as root, as CI does"
    );
}

fn kernel() -> Vec<u8> {
    support::uki::fake_bzimage(300_000)
}

/// A newc initramfs (GNU cpio) whose modules.builtin names loop and
/// ntfs3: the boot-time check can only say "built in" after reading the
/// initrd's bytes exactly.
fn initramfs(dir: &Path) -> Vec<u8> {
    let tree = dir.join("initramfs");
    let rel = format!("usr/lib/modules/{KVER}/modules.builtin");
    let p = tree.join(&rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(
        &p,
        "kernel/drivers/block/loop.ko\nkernel/fs/ntfs3/ntfs3.ko\n",
    )
    .unwrap();
    let mut child = Command::new(disk::tool("cpio"))
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&tree)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            format!("usr\nusr/lib\nusr/lib/modules\nusr/lib/modules/{KVER}\n{rel}\n").as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn sha256(path: &Path) -> String {
    let out = disk::run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Copies `src` into `disk` at `offset`, skipping all-zero MiBs (the disk
/// is sparse there already), so a 300 MiB xfs costs only what it holds.
fn write_sparse(disk_path: &Path, offset: u64, src: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut from = std::fs::File::open(src).unwrap();
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .open(disk_path)
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = offset;
    loop {
        let n = from.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            to.seek(SeekFrom::Start(at)).unwrap();
            to.write_all(&buf[..n]).unwrap();
        }
        at += n as u64;
    }
}

/// A raw disk at `dir/linux.img` with no ESP and one Linux partition
/// holding the filesystem image `fs`; returns it and the partition.
fn disk_with(dir: &Path, fs: &Path) -> (PathBuf, ByteRange) {
    let size_mib = std::fs::metadata(fs).unwrap().len() >> 20;
    let disk_path = disk::make_gpt_disk(
        dir,
        "linux.img",
        (size_mib + 2) << 20,
        &[disk::PartSpec {
            size_mib,
            type_guid: disk::LINUX_FS_TYPE,
            name: "root",
        }],
    );
    let part = disk::partition_extents(&disk_path)[0];
    write_sparse(&disk_path, part.offset, fs);
    (
        disk_path,
        ByteRange {
            offset: part.offset,
            len: part.len,
        },
    )
}

/// A btrfs root made by `mkfs.btrfs --rootdir` from Debian's layout: a
/// kernel pair, a `/boot/vmlinuz` symlink, and a kernel whose symlink
/// climbs out (`/../../../etc/hostname`, which exists on the machine
/// running the test but not in the image).
fn btrfs_disk(dir: &Path) -> (PathBuf, ByteRange) {
    let root = dir.join("tree");
    let boot = root.join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), OS_RELEASE).unwrap();
    std::fs::write(boot.join(format!("vmlinuz-{KVER}")), kernel()).unwrap();
    std::fs::write(boot.join(format!("initrd.img-{KVER}")), initramfs(dir)).unwrap();
    std::os::unix::fs::symlink(format!("/boot/vmlinuz-{KVER}"), boot.join("vmlinuz")).unwrap();
    std::os::unix::fs::symlink("/../../../etc/hostname", boot.join("vmlinuz-9.9")).unwrap();
    std::fs::write(boot.join("initrd.img-9.9"), b"x").unwrap();
    let fs = dir.join("root.btrfs");
    disk::make_blank(&fs, 128 << 20);
    disk::run(
        Command::new(disk::tool("mkfs.btrfs"))
            .args(["-q", "-f", "-U", BTRFS_UUID, "--rootdir"])
            .arg(&root)
            .arg(&fs),
    );
    disk_with(dir, &fs)
}

/// Ubuntu's btrfs layout: the top level holds only the subvolume `@`,
/// which is the root (with /etc and /boot). btrfs-progs 6.2 cannot make a
/// subvolume without mounting, so the fixture is made on a read-write
/// mount of the fresh filesystem; the reader under test mounts nothing
/// read-write.
fn ubuntu_btrfs_disk(dir: &Path) -> (PathBuf, ByteRange) {
    let root = dir.join("tree");
    let boot = root.join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), OS_RELEASE).unwrap();
    std::fs::write(boot.join(format!("vmlinuz-{KVER}")), kernel()).unwrap();
    std::fs::write(boot.join(format!("initrd.img-{KVER}")), initramfs(dir)).unwrap();
    let fs = dir.join("root.btrfs");
    disk::make_blank(&fs, 128 << 20);
    disk::run(
        Command::new(disk::tool("mkfs.btrfs"))
            .args(["-q", "-f", "-U", BTRFS_UUID])
            .arg(&fs),
    );
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    disk::run(
        Command::new("mount")
            .args(["-o", "loop"])
            .arg(&fs)
            .arg(&mnt),
    );
    let made = Command::new("btrfs")
        .args(["-q", "subvolume", "create"])
        .arg(mnt.join("@"))
        .status()
        .and_then(|_| {
            Command::new("cp")
                .arg("-a")
                .arg(root.join("."))
                .arg(mnt.join("@"))
                .status()
        });
    disk::run(Command::new("umount").arg(&mnt));
    assert!(made.unwrap().success());
    disk_with(dir, &fs)
}

/// An xfs root populated by `mkfs.xfs -p` (a protofile, no mount), with
/// `/etc/kernel/cmdline` and the kernel pair.
fn xfs_disk(dir: &Path) -> (PathBuf, ByteRange) {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = files.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let os = put("os-release", OS_RELEASE);
    let cmdline = put("cmdline", b"root=UUID=feed ro quiet\n");
    let vmlinuz = put("vmlinuz", &kernel());
    let initrd = put("initrd", &initramfs(dir));
    let proto = format!(
        "/dev/null\n0 0\nd--755 0 0\n\
         etc d--755 0 0\nos-release ---644 0 0 {os}\nkernel d--755 0 0\ncmdline ---644 0 0 {cmdline}\n$\n$\n\
         boot d--755 0 0\nvmlinuz-{KVER} ---644 0 0 {vmlinuz}\ninitrd.img-{KVER} ---644 0 0 {initrd}\n\
         vmlinuz l--777 0 0 /boot/vmlinuz-{KVER}\n$\n$\n"
    );
    let proto_path = dir.join("proto");
    std::fs::write(&proto_path, proto).unwrap();
    let fs = dir.join("root.xfs");
    // 300 MiB is mkfs.xfs's smallest filesystem.
    disk::make_blank(&fs, 300 << 20);
    disk::run(
        Command::new(disk::tool("mkfs.xfs"))
            .args(["-q", "-f", "-m"])
            .arg(format!("uuid={XFS_UUID}"))
            .arg("-p")
            .arg(&proto_path)
            .arg(&fs),
    );
    disk_with(dir, &fs)
}

/// What the probe child PID 1 starts for an image answers about `disk`.
fn probed(disk_path: &Path) -> Image {
    let out = Command::new(BIN)
        .arg("probe")
        .arg("image")
        .arg(disk_path.parent().unwrap())
        .arg(format!(
            "/{}",
            disk_path.file_name().unwrap().to_string_lossy()
        ))
        .arg("--raw")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `vhdboot inspect --json --raw`, which loads every entry's kernel and
/// initrd as the boot child does.
fn inspected_json(disk_path: &Path) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["inspect", "--json", "--raw"])
        .arg(disk_path)
        .output()
        .unwrap();
    assert!(
        !out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// No loop device is backed by `disk_path` and nothing is mounted from
/// one: the reader undid all it made.
fn assert_nothing_left(disk_path: &Path) {
    let name = disk_path.display().to_string();
    for entry in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let backing = entry.path().join("loop/backing_file");
        if let Ok(b) = std::fs::read_to_string(&backing) {
            assert!(
                !b.contains(&name),
                "{} still backs {}",
                name,
                entry.path().display()
            );
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("vhdboot-boot-"), "{mounts}");
}

/// The boot-time check read the whole initrd (a cpio whose
/// modules.builtin names loop and ntfs3) and found both built in.
fn assert_built_in(check: &serde_json::Value) {
    assert!(check["unsure"].is_null(), "{check:#}");
    assert_eq!(
        check["modules"],
        serde_json::json!([["loop", "BuiltIn"], ["ntfs3", "BuiltIn"]]),
        "{check:#}"
    );
}

fn initramfs_check(json: &serde_json::Value) -> &serde_json::Value {
    let checks = json["initramfs"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{json:#}");
    &checks[0]
}

#[test]
fn a_btrfs_root_is_listed_and_loaded_through_a_read_only_mount_without_a_write() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (disk_path, part) = btrfs_disk(dir.path());
    let before = sha256(&disk_path);

    let image = probed(&disk_path);
    assert_eq!(image.entries.len(), 1, "{:#?}", image);
    let e = &image.entries[0];
    assert_eq!(e.title, format!("Debian GNU/Linux 13 (trixie) ({KVER})"));
    assert_eq!(e.cmdline, format!("root=UUID={BTRFS_UUID} ro"));
    assert_eq!(
        e.source,
        EntrySource::Mounted {
            partition: part,
            fs: KernelFs::Btrfs,
            subvol: None,
            linux: format!("/boot/vmlinuz-{KVER}"),
            initrd: vec![format!("/boot/initrd.img-{KVER}")],
        }
    );
    assert_eq!(e.kernel_size, 300_000);
    // The symlink that climbs out resolves inside the image, where its
    // target does not exist.
    let broken: Vec<&str> = image
        .problems
        .iter()
        .map(|p| p.what.as_str())
        .filter(|w| w.contains("vmlinuz-9.9"))
        .collect();
    assert_eq!(
        broken,
        [
            "Linux partition 1: /boot/vmlinuz-9.9 is skipped: it is a broken symlink (its target is not in this filesystem)"
        ]
    );

    let json = inspected_json(&disk_path);
    let check = initramfs_check(&json);
    assert!(check["error"].is_null(), "{check:#}");
    assert_built_in(check);

    assert_eq!(
        sha256(&disk_path),
        before,
        "reading the btrfs root changed the disk"
    );
    assert_nothing_left(&disk_path);
}

#[test]
fn an_xfs_root_is_listed_with_its_kernel_cmdline_and_loaded_without_a_write() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (disk_path, part) = xfs_disk(dir.path());
    let before = sha256(&disk_path);

    let image = probed(&disk_path);
    let blocking: Vec<_> = image
        .problems
        .iter()
        .filter(|p| p.blocks_boot && !p.what.contains("sparse"))
        .collect();
    assert!(blocking.is_empty(), "{blocking:#?}");
    assert_eq!(image.entries.len(), 1, "{:#?}", image);
    let e = &image.entries[0];
    assert_eq!(e.title, format!("Debian GNU/Linux 13 (trixie) ({KVER})"));
    assert_eq!(e.cmdline, "root=UUID=feed ro quiet");
    assert_eq!(
        e.source,
        EntrySource::Mounted {
            partition: part,
            fs: KernelFs::Xfs,
            subvol: None,
            linux: format!("/boot/vmlinuz-{KVER}"),
            initrd: vec![format!("/boot/initrd.img-{KVER}")],
        }
    );

    let json = inspected_json(&disk_path);
    let check = initramfs_check(&json);
    assert!(check["error"].is_null(), "{check:#}");
    assert_built_in(check);

    assert_eq!(
        sha256(&disk_path),
        before,
        "reading the xfs root changed the disk"
    );
    assert_nothing_left(&disk_path);
}

/// The sys layer's reads on a real read-only mount: paths resolve inside
/// the partition whatever `..` and absolute symlinks say, a directory
/// listing stops at the cap it is given and says there was more, and
/// closing leaves no mount and no loop device behind.
#[test]
fn reads_on_the_mount_stay_inside_the_partition_and_within_their_caps() {
    use vhdboot::sys::partition_mount::{ReadOnlyPartition, RootedNode};
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (disk_path, part) = btrfs_disk(dir.path());
    let before = sha256(&disk_path);
    let m = ReadOnlyPartition::mount(
        &disk_path,
        part.offset,
        part.len,
        "btrfs",
        &["rescue=nologreplay"],
    )
    .unwrap();
    assert_eq!(
        m.node(&format!("/boot/vmlinuz-{KVER}")).unwrap(),
        RootedNode::File(300_000)
    );
    assert_eq!(m.node("/boot/vmlinuz").unwrap(), RootedNode::File(300_000));
    assert_eq!(
        m.node("/boot/vmlinuz-9.9").unwrap(),
        RootedNode::BrokenSymlink
    );
    // `..` past the root stays at the root: the image's /etc, not the
    // machine's, and the machine's /etc/hostname is not found.
    assert_eq!(m.node("/../../etc").unwrap(), RootedNode::Dir);
    assert_eq!(
        m.node("/boot/../../../etc/hostname").unwrap(),
        RootedNode::Missing
    );
    assert_eq!(m.node("/boot/nothing/here").unwrap(), RootedNode::Missing);
    let (names, more) = m.names("/boot", 3).unwrap().unwrap();
    assert_eq!((names.len(), more), (3, true));
    let (names, more) = m.names("/boot", 100).unwrap().unwrap();
    assert_eq!((names.len(), more), (5, false), "{names:?}");
    assert_eq!(m.names("/nope", 100).unwrap(), None);
    assert!(m.open_file("/boot").is_err());
    m.close().unwrap();
    assert_nothing_left(&disk_path);
    assert_eq!(
        sha256(&disk_path),
        before,
        "mounting the btrfs root changed the disk"
    );
}

/// Ubuntu's btrfs root in the subvolume `@`: listed from that subvolume,
/// with `rootflags=subvol=@` in the derived command line (as Ubuntu's GRUB
/// has it), and loaded from it at boot.
#[test]
fn a_btrfs_root_in_ubuntus_at_subvolume_is_listed_with_rootflags_and_loaded() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (disk_path, part) = ubuntu_btrfs_disk(dir.path());
    let before = sha256(&disk_path);

    let image = probed(&disk_path);
    assert_eq!(image.entries.len(), 1, "{:#?}", image);
    let e = &image.entries[0];
    assert_eq!(e.title, format!("Debian GNU/Linux 13 (trixie) ({KVER})"));
    assert_eq!(
        e.cmdline,
        format!("root=UUID={BTRFS_UUID} ro rootflags=subvol=@")
    );
    assert_eq!(
        e.source,
        EntrySource::Mounted {
            partition: part,
            fs: KernelFs::Btrfs,
            subvol: Some("@".into()),
            linux: format!("/boot/vmlinuz-{KVER}"),
            initrd: vec![format!("/boot/initrd.img-{KVER}")],
        }
    );

    let json = inspected_json(&disk_path);
    let check = initramfs_check(&json);
    assert!(check["error"].is_null(), "{check:#}");
    assert_built_in(check);

    assert_eq!(
        sha256(&disk_path),
        before,
        "reading the btrfs root changed the disk"
    );
    assert_nothing_left(&disk_path);
}
