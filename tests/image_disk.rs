//! GPT and ESP reading over disks built by sfdisk, mkfs.vfat and mtools.

mod support;

use std::fs::File;
use support::disk::{self, MIB, PartSpec};
use vhdboot::image::esp::{Esp, EspError};
use vhdboot::image::partitions::{HeaderSource, PartitionError, PartitionKind, read_partitions};
use vhdboot::image::window::Window;

/// Offset of the disk GUID inside a GPT header: covered by the header CRC.
const HEADER_GUID_OFFSET: u64 = 56;

fn open(path: &std::path::Path) -> (File, u64) {
    disk::open_with_len(path)
}

#[test]
fn gpt_with_esp_and_root_reports_both_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = disk::make_gpt_disk(
        dir.path(),
        "d.img",
        40 * MIB,
        &[PartSpec::esp(16), PartSpec::root(8)],
    );
    let extents = disk::partition_extents(&path);
    let (f, len) = open(&path);
    let table = read_partitions(f, len).unwrap();
    assert_eq!(table.header, HeaderSource::Primary);
    assert!(table.warnings.is_empty(), "{:?}", table.warnings);
    let kinds: Vec<_> = table.partitions.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, vec![PartitionKind::Esp, PartitionKind::LinuxRoot]);
    assert_eq!(table.partitions[0].number, 1);
    assert_eq!(table.partitions[0].name, "ESP");
    assert_eq!(table.partitions[0].range.offset, extents[0].offset);
    assert_eq!(table.partitions[0].range.len, extents[0].len);
    assert_eq!(table.partitions[1].range.offset, extents[1].offset);
    assert_eq!(table.esps().count(), 1);
}

#[test]
fn gpt_with_bad_primary_crc_falls_back_to_backup_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = disk::make_gpt_disk(dir.path(), "d.img", 40 * MIB, &[PartSpec::esp(16)]);
    disk::flip(&path, 512 + HEADER_GUID_OFFSET);
    let (f, len) = open(&path);
    let table = read_partitions(f, len).unwrap();
    assert_eq!(table.header, HeaderSource::Backup);
    assert_eq!(table.partitions.len(), 1);
    assert_eq!(table.partitions[0].kind, PartitionKind::Esp);
    assert_eq!(table.warnings.len(), 1);
    assert!(
        table.warnings[0].contains("primary GPT header"),
        "{:?}",
        table.warnings
    );
    assert!(table.warnings[0].contains("CRC"), "{:?}", table.warnings);
}

#[test]
fn gpt_with_both_headers_corrupt_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let size = 40 * MIB;
    let path = disk::make_gpt_disk(dir.path(), "d.img", size, &[PartSpec::esp(16)]);
    disk::flip(&path, 512 + HEADER_GUID_OFFSET);
    disk::flip(&path, size - 512 + HEADER_GUID_OFFSET);
    let (f, len) = open(&path);
    let err = read_partitions(f, len).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PartitionError::BadHeaders { .. }), "{msg}");
    assert!(msg.contains("primary: header CRC32 mismatch"), "{msg}");
    assert!(msg.contains("backup: header CRC32 mismatch"), "{msg}");
}

#[test]
fn blank_disk_reports_no_gpt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blank.img");
    disk::make_blank(&path, 8 * MIB);
    let (f, len) = open(&path);
    let err = read_partitions(f, len).unwrap_err();
    assert!(
        matches!(err, PartitionError::NoGpt { mbr_only: false }),
        "{err}"
    );
}

#[test]
fn gpt_read_over_a_window_ignores_bytes_after_it() {
    // A VHD's footer follows the data area; the backup header must be
    // looked for before it. Extra bytes after the disk stand in for it.
    let dir = tempfile::tempdir().unwrap();
    let size = 40 * MIB;
    let path = disk::make_gpt_disk(dir.path(), "d.img", size, &[PartSpec::esp(16)]);
    disk::flip(&path, 512 + HEADER_GUID_OFFSET);
    disk::poke(&path, size, &[0xAB; 512]);
    let (f, _) = open(&path);
    let table = read_partitions(f, size).unwrap();
    assert_eq!(table.header, HeaderSource::Backup);
}

#[test]
fn esp_lists_efi_linux_and_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let uki = dir.path().join("linux.efi");
    std::fs::write(&uki, vec![0x5A; 70_000]).unwrap();
    let entry = dir.path().join("entry.conf");
    std::fs::write(&entry, "title Test\nlinux /vmlinuz\n").unwrap();
    let (path, esp) = disk::make_esp_disk(
        dir.path(),
        &[
            ("EFI/Linux/debian-6.12.efi", &uki),
            ("loader/entries/test.conf", &entry),
        ],
    );
    let (f, len) = open(&path);
    let table = read_partitions(&f, len).unwrap();
    let part = table.esps().next().unwrap();
    assert_eq!(part.range.offset, esp.offset);

    let fs = Esp::open(Window::new(&f, part.range.offset, part.range.len)).unwrap();
    let listed = fs.list_dir("/EFI/Linux").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "debian-6.12.efi");
    assert_eq!(listed[0].size, 70_000);
    assert!(!listed[0].is_dir);

    // FAT is case-insensitive, and so is the lookup.
    assert_eq!(fs.file_size("/efi/linux/DEBIAN-6.12.EFI").unwrap(), 70_000);
    let conf = fs.read_file("/Loader/Entries/test.conf", 4096).unwrap();
    assert_eq!(conf, b"title Test\nlinux /vmlinuz\n");
}

#[test]
fn esp_read_file_refuses_a_file_over_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![1u8; 10_000]).unwrap();
    let (path, esp) = disk::make_esp_disk(dir.path(), &[("EFI/Linux/big.efi", &big)]);
    let f = File::open(&path).unwrap();
    let fs = Esp::open(Window::new(&f, esp.offset, esp.len)).unwrap();
    let err = fs.read_file("/EFI/Linux/big.efi", 4096).unwrap_err();
    assert!(
        matches!(
            err,
            EspError::TooLarge {
                size: 10_000,
                cap: 4096,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn esp_open_file_reads_part_of_a_file() {
    use std::io::{Read, Seek, SeekFrom};
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let host = dir.path().join("k");
    std::fs::write(&host, &data).unwrap();
    let (path, esp) = disk::make_esp_disk(dir.path(), &[("EFI/Linux/k.efi", &host)]);
    let f = File::open(&path).unwrap();
    let fs = Esp::open(Window::new(&f, esp.offset, esp.len)).unwrap();
    let mut file = fs.open_file("/EFI/Linux/k.efi").unwrap();
    file.seek(SeekFrom::Start(65_000)).unwrap();
    let mut buf = [0u8; 100];
    file.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..], &data[65_000..65_100]);
}

#[test]
fn esp_missing_directory_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("x");
    std::fs::write(&host, b"x").unwrap();
    let (path, esp) = disk::make_esp_disk(dir.path(), &[("EFI/BOOT/x", &host)]);
    let f = File::open(&path).unwrap();
    let fs = Esp::open(Window::new(&f, esp.offset, esp.len)).unwrap();
    let err = fs.list_dir("/loader/entries").unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn esp_partition_without_fat_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = disk::make_gpt_disk(dir.path(), "d.img", 40 * MIB, &[PartSpec::esp(16)]);
    let (f, len) = open(&path);
    let table = read_partitions(&f, len).unwrap();
    let part = table.esps().next().unwrap();
    // An ext-like blob: the ext superblock magic at 1024 + 56.
    disk::poke(&path, part.range.offset + 1024 + 56, &[0x53, 0xEF]);
    let err = Esp::open_partition(&f, part).err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("partition 1 at byte offset {}", part.range.offset)),
        "{msg}"
    );
    assert!(msg.contains("not a FAT filesystem"), "{msg}");
    assert!(msg.contains("mkfs.vfat"), "{msg}");
}

#[test]
fn reading_an_esp_writes_nothing_to_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("x");
    std::fs::write(&host, vec![7u8; 5000]).unwrap();
    let (path, esp) = disk::make_esp_disk(dir.path(), &[("EFI/Linux/x.efi", &host)]);
    let before = std::fs::read(&path).unwrap();
    {
        // Opened read-write on purpose: only the Window stands between
        // fatfs and the file.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let table = read_partitions(&f, before.len() as u64).unwrap();
        assert_eq!(table.partitions.len(), 2);
        let fs = Esp::open(Window::new(&f, esp.offset, esp.len)).unwrap();
        assert_eq!(
            fs.read_file("EFI/Linux/x.efi", 1 << 20).unwrap().len(),
            5000
        );
        fs.list_dir("/").unwrap();
    }
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the disk image changed"
    );
}

#[test]
fn gpt_inside_a_fixed_vhd_is_read_from_the_data_area() {
    use vhdboot::image::vhd::{VhdFooter, classify};
    use vhdboot::model::ImageKind;
    let dir = tempfile::tempdir().unwrap();
    let size = 40 * MIB;
    let path = disk::make_gpt_disk(dir.path(), "d.vhd", size, &[PartSpec::esp(16)]);
    // With the primary header broken, only a backup header found at the
    // data area's last sector (not in the footer after it) saves the table.
    disk::flip(&path, 512 + HEADER_GUID_OFFSET);
    let footer = VhdFooter::new_fixed(size, 0, [7; 16]).unwrap();
    std::fs::write(dir.path().join("footer"), footer.to_bytes()).unwrap();
    disk::write_at(&path, size, &dir.path().join("footer"));

    let (mut f, len) = open(&path);
    let kind = classify(&mut f, len, false).unwrap();
    assert_eq!(kind, ImageKind::FixedVhd { data_size: size });
    let table = read_partitions(&f, kind.data_size().unwrap()).unwrap();
    assert_eq!(table.header, HeaderSource::Backup);
    assert_eq!(table.partitions.len(), 1);
}

/// Discovery reads a few sectors, not the image: GPT, FAT metadata, one
/// directory and the head of one file. Run with `--nocapture` to see the
/// figure.
#[test]
fn walking_gpt_and_esp_reads_little_of_the_image() {
    use std::io::Read;
    use vhdboot::image::window::{CountingReader, ReadCounter};
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("k.efi");
    std::fs::write(&kernel, vec![0x4D; 8 * 1024 * 1024]).unwrap();
    let (path, _) = disk::make_esp_disk(dir.path(), &[("EFI/Linux/k.efi", &kernel)]);
    let (f, len) = open(&path);
    let counter = ReadCounter::new();

    let table = read_partitions(CountingReader::new(&f, counter.clone()), len).unwrap();
    let part = table.esps().next().unwrap();
    let esp = Esp::open(Window::new(
        CountingReader::new(&f, counter.clone()),
        part.range.offset,
        part.range.len,
    ))
    .unwrap();
    let listed = esp.list_dir("/EFI/Linux").unwrap();
    assert_eq!(listed[0].size, 8 * 1024 * 1024);
    let mut head = Vec::new();
    esp.open_file("/EFI/Linux/k.efi")
        .unwrap()
        .take(4096)
        .read_to_end(&mut head)
        .unwrap();
    assert_eq!(head.len(), 4096);

    let read = counter.get();
    println!("inspect-style walk read {read} bytes of an {len}-byte image");
    assert!(read < 256 * 1024, "read {read} bytes");
}

#[test]
fn gpt_with_256_byte_entries_is_refused_not_a_panic() {
    // gpt 4.1 asserts that entries are 128 bytes; the check must come first.
    let dir = tempfile::tempdir().unwrap();
    let path = disk::make_gpt_disk(dir.path(), "d.img", 40 * MIB, &[PartSpec::esp(16)]);
    disk::set_primary_entry_array(&path, 64, 256);
    let (f, len) = open(&path);
    let err = read_partitions(f, len).unwrap_err();
    assert!(
        matches!(
            err,
            PartitionError::UnsupportedEntrySize {
                entry_size: 256,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn gpt_with_a_huge_entry_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = disk::make_gpt_disk(dir.path(), "d.img", 40 * MIB, &[PartSpec::esp(16)]);
    disk::set_primary_entry_array(&path, 4_000_000, 128);
    let (f, len) = open(&path);
    let err = read_partitions(f, len).unwrap_err();
    assert!(
        matches!(
            err,
            PartitionError::TooManyEntries {
                count: 4_000_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("primary"), "{err}");
}

#[test]
fn partition_past_the_end_of_a_truncated_image_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = disk::make_gpt_disk(
        dir.path(),
        "d.img",
        40 * MIB,
        &[PartSpec::esp(16), PartSpec::root(20)],
    );
    let cut = 30 * MIB;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let (f, len) = open(&path);
    let err = read_partitions(f, len).unwrap_err();
    match err {
        PartitionError::PartitionPastEnd {
            number, data_size, ..
        } => {
            assert_eq!(number, 2);
            assert_eq!(data_size, cut);
        }
        other => panic!("unexpected {other}"),
    }
}
