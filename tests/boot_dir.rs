//! Kernels in /boot on ext4, without a UKI: `inspect` and `load_payload`
//! over disks whose ext4 root is made by the real tool (`mkfs.ext4 -d`,
//! no mount) in layouts the distributions use: Debian's pairs, Fedora's
//! BLS entries with grubenv variables, Arch's names with microcode, a
//! broken symlink, and a filesystem whose journal needs recovery.
#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::disk::{self, PartExtent};
use vhdboot::image::inspect::{Inspection, inspect, load_payload};
use vhdboot::model::{ByteRange, EntrySource};

const UUID: &str = "6d3376e4-fc93-4509-95ec-a21d68011da2";

/// A directory tree to give `mkfs.ext4 -d`: (path, contents) files and
/// (path, target) symlinks.
fn tree(dir: &Path, files: &[(&str, &[u8])], links: &[(&str, &str)]) -> PathBuf {
    let root = dir.join("tree");
    for (path, bytes) in files {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    for (path, target) in links {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }
    root
}

/// A disk with no ESP and one ext4 partition made from `files` and `links`.
fn ext4_disk(dir: &Path, files: &[(&str, &[u8])], links: &[(&str, &str)]) -> (PathBuf, PartExtent) {
    let root = tree(dir, files, links);
    let fs = disk::make_ext4_image(dir, "root.ext4", 24, &root, UUID);
    disk::make_linux_disk(dir, &fs)
}

fn inspected(disk: &Path) -> Inspection {
    let (mut file, len) = disk::open_with_len(disk);
    inspect(&mut file, len, true)
}

fn kernel(tag: &str) -> Vec<u8> {
    (0..300_000u32)
        .map(|i| (i as u8) ^ tag.as_bytes()[0])
        .collect()
}

const DEBIAN_OS_RELEASE: &[u8] =
    b"PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n";

#[test]
fn debian_pairs_are_listed_newest_first_and_boot_without_an_esp() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (kernel("old"), kernel("new"));
    let (disk, part) = ext4_disk(
        dir.path(),
        &[
            ("/etc/os-release", DEBIAN_OS_RELEASE),
            ("/boot/vmlinuz-6.12.9+deb13-amd64", &old),
            ("/boot/initrd.img-6.12.9+deb13-amd64", b"old initrd"),
            ("/boot/config-6.12.9+deb13-amd64", b"CONFIG_X=y"),
            ("/boot/vmlinuz-6.12.10+deb13-amd64", &new),
            ("/boot/initrd.img-6.12.10+deb13-amd64", b"new initrd!"),
            ("/boot/System.map-6.12.10+deb13-amd64", b"map"),
        ],
        &[
            ("/boot/vmlinuz", "vmlinuz-6.12.10+deb13-amd64"),
            ("/vmlinuz", "boot/vmlinuz-6.12.10+deb13-amd64"),
        ],
    );
    let found = inspected(&disk);
    assert!(found.problems.is_empty(), "{:#?}", found.problems);
    let titles: Vec<&str> = found.entries.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Debian GNU/Linux 13 (trixie) (6.12.10+deb13-amd64)",
            "Debian GNU/Linux 13 (trixie) (6.12.9+deb13-amd64)"
        ]
    );
    let newest = &found.entries[0];
    assert_eq!(newest.cmdline, format!("root=UUID={UUID} ro"));
    assert_eq!(
        newest.source,
        EntrySource::Ext4 {
            partition: ByteRange {
                offset: part.offset,
                len: part.len
            },
            linux: "/boot/vmlinuz-6.12.10+deb13-amd64".into(),
            initrd: vec!["/boot/initrd.img-6.12.10+deb13-amd64".into()],
        }
    );
    assert_eq!(newest.kernel_size, new.len() as u64);
    assert_eq!(newest.initrd_size, 12);

    let (mut file, len) = disk::open_with_len(&disk);
    let payload = load_payload(&mut file, len, &newest.source).unwrap();
    assert_eq!(payload.kernel, new);
    assert_eq!(payload.initrd, b"new initrd!\0");
    let payload = load_payload(&mut file, len, &found.entries[1].source).unwrap();
    assert_eq!(payload.kernel, old);
}

#[test]
fn fedora_entries_expand_grubenv_variables_and_are_listed_once() {
    let dir = tempfile::tempdir().unwrap();
    let ver = "6.8.5-301.fc40.x86_64";
    let conf = format!(
        "title Fedora Linux ({ver}) 40 (Workstation Edition)\nversion {ver}\nlinux /vmlinuz-{ver}\ninitrd /initramfs-{ver}.img\noptions $kernelopts $tuned_params\ngrub_class fedora\n"
    );
    let grubenv = format!(
        "# GRUB Environment Block\nsaved_entry=x\nkernelopts=root=UUID={UUID} ro rootflags=subvol=root rhgb quiet\ntuned_params=\n{}",
        "#".repeat(800)
    );
    let (disk, _) = ext4_disk(
        dir.path(),
        &[
            (
                "/etc/os-release",
                b"PRETTY_NAME=\"Fedora Linux 40 (Workstation Edition)\"\n",
            ),
            (
                &format!("/boot/loader/entries/abc-{ver}.conf"),
                conf.as_bytes(),
            ),
            ("/boot/grub2/grubenv", grubenv.as_bytes()),
            (&format!("/boot/vmlinuz-{ver}"), &kernel("fedora")),
            (&format!("/boot/initramfs-{ver}.img"), b"dracut"),
        ],
        &[],
    );
    let found = inspected(&disk);
    assert!(found.problems.is_empty(), "{:#?}", found.problems);
    assert_eq!(found.entries.len(), 1, "{:#?}", found.entries);
    let e = &found.entries[0];
    assert_eq!(
        e.title,
        format!("Fedora Linux ({ver}) 40 (Workstation Edition)")
    );
    assert_eq!(
        e.cmdline,
        format!("root=UUID={UUID} ro rootflags=subvol=root rhgb quiet")
    );
    let EntrySource::Ext4 { linux, initrd, .. } = &e.source else {
        panic!("{:?}", e.source)
    };
    assert_eq!(linux, &format!("/boot/vmlinuz-{ver}"));
    assert_eq!(initrd, &[format!("/boot/initramfs-{ver}.img")]);
}

#[test]
fn arch_names_take_microcode_and_etc_kernel_cmdline() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _) = ext4_disk(
        dir.path(),
        &[
            (
                "/etc/os-release",
                b"NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\n",
            ),
            ("/etc/kernel/cmdline", b"root=PARTUUID=14420948 rw\nquiet\n"),
            ("/boot/vmlinuz-linux", &kernel("arch")),
            ("/boot/initramfs-linux.img", b"mkinitcpio"),
            ("/boot/initramfs-linux-fallback.img", b"fallback"),
            ("/boot/intel-ucode.img", b"ucode"),
        ],
        &[],
    );
    let found = inspected(&disk);
    assert!(found.problems.is_empty(), "{:#?}", found.problems);
    assert_eq!(found.entries.len(), 1);
    let e = &found.entries[0];
    assert_eq!(e.title, "Arch Linux (linux)");
    assert_eq!(e.cmdline, "root=PARTUUID=14420948 rw quiet");
    let EntrySource::Ext4 { initrd, .. } = &e.source else {
        panic!("{:?}", e.source)
    };
    assert_eq!(
        initrd,
        &["/boot/intel-ucode.img", "/boot/initramfs-linux.img"]
    );
    let (mut file, len) = disk::open_with_len(&disk);
    let payload = load_payload(&mut file, len, &e.source).unwrap();
    assert_eq!(payload.initrd, b"ucode\0\0\0mkinitcpio\0\0");
}

#[test]
fn a_broken_symlink_is_skipped_with_a_warning_and_absolute_ones_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _) = ext4_disk(
        dir.path(),
        &[
            ("/etc/os-release", DEBIAN_OS_RELEASE),
            ("/usr/lib/kernel/vmlinuz-6.1.0-18-amd64", &kernel("usr")),
            ("/boot/initrd.img-6.1.0-18-amd64", b"i18"),
            ("/boot/initrd.img-6.1.0-9-amd64", b"i9"),
        ],
        &[
            // Resolved inside the image, from its own root.
            (
                "/boot/vmlinuz-6.1.0-18-amd64",
                "/usr/lib/kernel/vmlinuz-6.1.0-18-amd64",
            ),
            ("/boot/vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-9-gone"),
        ],
    );
    let found = inspected(&disk);
    assert_eq!(found.entries.len(), 1, "{:#?}", found);
    assert_eq!(found.entries[0].version.as_deref(), Some("6.1.0-18-amd64"));
    assert_eq!(found.problems.len(), 1, "{:#?}", found.problems);
    let p = &found.problems[0];
    assert!(!p.blocks_boot);
    assert!(
        p.what
            .contains("/boot/vmlinuz-6.1.0-9-amd64 is skipped: it is a broken symlink"),
        "{}",
        p.what
    );
    let (mut file, len) = disk::open_with_len(&disk);
    let payload = load_payload(&mut file, len, &found.entries[0].source).unwrap();
    assert_eq!(payload.kernel, kernel("usr"));
}

#[test]
fn an_ext4_root_without_kernels_still_reports_no_esp() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _) = ext4_disk(dir.path(), &[("/etc/os-release", DEBIAN_OS_RELEASE)], &[]);
    let found = inspected(&disk);
    assert!(found.entries.is_empty());
    assert_eq!(found.problems.len(), 1, "{:#?}", found.problems);
    assert!(found.problems[0].blocks_boot);
    assert!(found.problems[0].what.contains("no EFI system partition"));
}

fn sha256(path: &Path) -> String {
    let out = disk::run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_journal_that_needs_recovery_is_read_without_writing_a_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(
        dir.path(),
        &[
            ("/etc/os-release", DEBIAN_OS_RELEASE),
            ("/boot/vmlinuz-6.12.10+deb13-amd64", &kernel("dirty")),
            ("/boot/initrd.img-6.12.10+deb13-amd64", b"initrd"),
        ],
        &[],
    );
    let fs = disk::make_ext4_image(dir.path(), "root.ext4", 24, &root, UUID);
    // What a crash leaves: a committed transaction in the journal (with
    // checksums v3, as the kernel writes them on a metadata_csum
    // filesystem) that the kernel would replay at mount. It rewrites the
    // initrd's only block, so what is read shows whether the journal was.
    let bmap = disk::run(
        Command::new(disk::tool("debugfs"))
            .args(["-R", "bmap /boot/initrd.img-6.12.10+deb13-amd64 0"])
            .arg(&fs),
    );
    let block: u64 = String::from_utf8_lossy(&bmap.stdout)
        .trim()
        .parse()
        .unwrap();
    let mut journaled = b"JOURNL".to_vec();
    journaled.resize(4096, 0);
    let block_file = dir.path().join("block");
    std::fs::write(&block_file, &journaled).unwrap();
    let commands = dir.path().join("journal.cmds");
    std::fs::write(
        &commands,
        format!("jo -c\njw -b {block} {}\njc\n", block_file.display()),
    )
    .unwrap();
    disk::run(
        Command::new(disk::tool("debugfs"))
            .arg("-w")
            .arg("-f")
            .arg(&commands)
            .arg(&fs),
    );
    let features = disk::run(Command::new(disk::tool("dumpe2fs")).arg("-h").arg(&fs));
    assert!(
        String::from_utf8_lossy(&features.stdout).contains("needs_recovery"),
        "debugfs did not leave the journal needing recovery"
    );
    let (disk, _) = disk::make_linux_disk(dir.path(), &fs);
    let before = sha256(&disk);
    let found = inspected(&disk);
    assert!(found.problems.is_empty(), "{:#?}", found.problems);
    assert_eq!(found.entries.len(), 1);
    let (mut file, len) = disk::open_with_len(&disk);
    let payload = load_payload(&mut file, len, &found.entries[0].source).unwrap();
    assert_eq!(payload.kernel, kernel("dirty"));
    // ext4-view read the journal's committed block, in memory only.
    assert_eq!(payload.initrd, b"JOURNL\0\0");
    assert_eq!(sha256(&disk), before, "reading the image changed it");
}

#[test]
fn a_journal_flagged_for_recovery_without_checksums_is_a_warning_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(
        dir.path(),
        &[
            ("/boot/vmlinuz-6.12.10+deb13-amd64", &kernel("flag")),
            ("/boot/initrd.img-6.12.10+deb13-amd64", b"initrd"),
        ],
        &[],
    );
    let fs = disk::make_ext4_image(dir.path(), "root.ext4", 24, &root, UUID);
    // Only the flag, over the empty journal mkfs made: its superblock
    // lacks the checksum features a kernel sets when it writes one, and
    // ext4-view reads only checksummed (v3) journals.
    disk::run(
        Command::new(disk::tool("debugfs"))
            .args(["-w", "-R", "feature needs_recovery"])
            .arg(&fs),
    );
    let (disk, _) = disk::make_linux_disk(dir.path(), &fs);
    let before = sha256(&disk);
    let found = inspected(&disk);
    assert!(found.entries.is_empty());
    assert!(
        found.problems[0]
            .what
            .contains("Linux partition 1: cannot read its ext4 filesystem"),
        "{:#?}",
        found.problems
    );
    assert!(!found.problems[0].blocks_boot);
    assert_eq!(sha256(&disk), before);
}

#[test]
fn kernels_on_a_separate_boot_partition_take_the_root_partitions_name_and_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let root_dir = dir.path().join("root");
    let boot_dir = dir.path().join("boot");
    std::fs::create_dir_all(root_dir.join("etc")).unwrap();
    std::fs::create_dir_all(root_dir.join("boot")).unwrap();
    std::fs::write(root_dir.join("etc/os-release"), DEBIAN_OS_RELEASE).unwrap();
    std::fs::create_dir_all(&boot_dir).unwrap();
    std::fs::write(boot_dir.join("vmlinuz-6.1.0-18-amd64"), kernel("sep")).unwrap();
    std::fs::write(boot_dir.join("initrd.img-6.1.0-18-amd64"), b"i").unwrap();
    let boot_uuid = "0b6c9d7e-1111-4222-8333-944455556666";
    let boot_fs = disk::make_ext4_image(dir.path(), "boot.ext4", 16, &boot_dir, boot_uuid);
    let root_fs = disk::make_ext4_image(dir.path(), "root.ext4", 16, &root_dir, UUID);
    let linux = |name| disk::PartSpec {
        size_mib: 16,
        type_guid: disk::LINUX_FS_TYPE,
        name,
    };
    // /boot first, as installers that make one put it.
    let image = disk::make_gpt_disk(
        dir.path(),
        "two.img",
        34 * disk::MIB,
        &[linux("boot"), linux("root")],
    );
    let parts = disk::partition_extents(&image);
    disk::write_at(&image, parts[0].offset, &boot_fs);
    disk::write_at(&image, parts[1].offset, &root_fs);
    let found = inspected(&image);
    assert!(found.problems.is_empty(), "{:#?}", found.problems);
    assert_eq!(found.entries.len(), 1);
    let e = &found.entries[0];
    assert_eq!(e.title, "Debian GNU/Linux 13 (trixie) (6.1.0-18-amd64)");
    assert_eq!(e.cmdline, format!("root=UUID={UUID} ro"));
    let EntrySource::Ext4 {
        partition, linux, ..
    } = &e.source
    else {
        panic!("{:?}", e.source)
    };
    assert_eq!(partition.offset, parts[0].offset);
    assert_eq!(linux, "/vmlinuz-6.1.0-18-amd64");
    let (mut file, len) = disk::open_with_len(&image);
    let payload = load_payload(&mut file, len, &e.source).unwrap();
    assert_eq!(payload.kernel, kernel("sep"));
}

/// Copies `src` into `disk` at `offset` 1 MiB at a time, skipping chunks
/// that are all zeros (the disk is sparse and already zero there), so a
/// 300 MiB xfs made by mkfs.xfs costs only what it holds.
fn write_sparse(disk: &Path, offset: u64, src: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut from = std::fs::File::open(src).unwrap();
    let mut to = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
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

/// A disk with no ESP and one Linux partition holding a filesystem of
/// `size_mib` MiB made by `mkfs` (the tool's arguments before the image's
/// path), from the real tool.
fn other_fs_disk(dir: &Path, mkfs: &str, args: &[&str], size_mib: u64) -> PathBuf {
    let fs = dir.join("root.fs");
    disk::make_blank(&fs, size_mib << 20);
    disk::run(Command::new(disk::tool(mkfs)).args(args).arg(&fs));
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
    write_sparse(&disk_path, part.offset, &fs);
    disk_path
}

/// A btrfs root with Debian's /boot (mkfs.btrfs --rootdir, no mount) and
/// an empty xfs are not listed by the pure reader, which mounts nothing
/// (stage 1's probe child does: tests/boot_dir_mounted.rs): the image's
/// blocking problem names the partition, its filesystem and why, instead
/// of saying only that an ESP is missing, and inspecting writes nothing.
#[test]
fn btrfs_and_xfs_roots_are_named_in_the_no_esp_problem_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(
        dir.path(),
        &[
            ("/etc/os-release", DEBIAN_OS_RELEASE),
            ("/boot/vmlinuz-6.12.0-1-amd64", &kernel("b")),
            ("/boot/initrd.img-6.12.0-1-amd64", b"initrd"),
        ],
        &[],
    );
    let rootdir = root.to_string_lossy().into_owned();
    for (mkfs, args, size_mib, name) in [
        (
            "mkfs.btrfs",
            vec!["-q", "-f", "--rootdir", rootdir.as_str()],
            128,
            "btrfs",
        ),
        ("mkfs.xfs", vec!["-q", "-f"], 300, "xfs"),
    ] {
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let disk_path = other_fs_disk(&sub, mkfs, &args, size_mib);
        let before = sha256(&disk_path);
        let found = inspected(&disk_path);
        assert!(found.entries.is_empty(), "{name}: {:#?}", found.entries);
        assert_eq!(found.problems.len(), 1, "{name}: {:#?}", found.problems);
        let p = &found.problems[0];
        assert!(p.blocks_boot, "{name}");
        assert_eq!(
            p.what,
            format!(
                "the image has no EFI system partition; its Linux partition 1 is {name}, \
                 whose /boot was not read: only a read-only kernel mount reads it, and this \
                 reader makes none (stage 1 does, and `vhdboot inspect` run as root)"
            )
        );
        assert_eq!(
            sha256(&disk_path),
            before,
            "{name}: inspecting changed the disk"
        );
    }
}

/// Only a superblock's magic at its place counts: the same bytes at the
/// wrong offset (an ext4-less partition of zeros with "XFSB" at 512) name
/// nothing.
#[test]
fn a_magic_at_the_wrong_offset_names_no_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let fs = dir.path().join("zeros.fs");
    disk::make_blank(&fs, 2 << 20);
    disk::poke(&fs, 512, b"XFSB");
    disk::poke(&fs, 0x1_0000, b"_BHRfS_M");
    let (disk_path, _) = disk::make_linux_disk(dir.path(), &fs);
    let found = inspected(&disk_path);
    assert_eq!(found.problems.len(), 1, "{:#?}", found.problems);
    assert_eq!(
        found.problems[0].what,
        "the image has no EFI system partition"
    );
}
