//! Inputs the fuzz targets (fuzz/) found to crash, hang or exhaust memory,
//! kept as tests. Small ones live as unit tests next to their parser; the
//! ones here are disks, built by code with the real tools rather than
//! committed. Fixture helpers stop the test with their message, as in the
//! other integration tests.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::path::{Path, PathBuf};
use support::disk;
use support::uki::{UkiSpec, make_uki, section_header};
use vhdboot::image::inspect::{inspect, load_payload};
use vhdboot::model::EntrySource;

/// Sets the size field of the FAT directory entry with this 8.3 name.
fn set_dirent_size(disk_path: &Path, short_name: &[u8; 11], size: u32) {
    let bytes = std::fs::read(disk_path).unwrap();
    let at = bytes
        .windows(11)
        .position(|w| w == short_name)
        .unwrap_or_else(|| {
            panic!(
                "no directory entry {:?}",
                String::from_utf8_lossy(short_name)
            )
        });
    disk::poke(disk_path, (at + 28) as u64, &size.to_le_bytes());
}

/// A disk whose ESP holds `/EFI/Linux/big.efi`, a UKI whose `.linux`
/// section claims 0x9000_0000 bytes and whose directory entry claims
/// 0xF000_0000: both lie, yet agree with each other, so the section table
/// passes its checks against the file's size.
fn huge_uki_disk(dir: &Path) -> PathBuf {
    let uki = make_uki(dir, "big.efi", &UkiSpec::debian(4096));
    let mut pe = std::fs::read(&uki).unwrap();
    let (entry, _) = section_header(&pe, ".linux");
    pe[entry + 8..entry + 12].copy_from_slice(&0x9000_0000u32.to_le_bytes());
    pe[entry + 16..entry + 20].copy_from_slice(&0x9000_0000u32.to_le_bytes());
    std::fs::write(&uki, &pe).unwrap();
    let (img, _) = disk::make_esp_disk(dir, &[("EFI/Linux/big.efi", &uki)]);
    set_dirent_size(&img, b"BIG     EFI", 0xF000_0000);
    img
}

#[test]
fn uki_larger_than_its_partition_is_refused_before_reading_sections() {
    // Found by the inspect target: load_payload reserved the claimed
    // 2.4 GB for `.linux` of a UKI on a small disk (libFuzzer "malloc
    // limit"); now the file's size is checked against its partition first.
    let dir = tempfile::tempdir().unwrap();
    let img = huge_uki_disk(dir.path());
    let (mut file, len) = disk::open_with_len(&img);
    let found = inspect(&mut file, len, true);
    let entry = found
        .entries
        .iter()
        .find(|e| matches!(&e.source, EntrySource::Uki { path, .. } if path.ends_with("big.efi")))
        .unwrap_or_else(|| panic!("the UKI is listed: {found:#?}"));
    let err = load_payload(&mut file, len, &entry.source)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than the whole"), "{err}");
    assert!(err.contains("/EFI/Linux/big.efi"), "{err}");
}

#[test]
fn bls_kernel_larger_than_its_partition_is_refused_before_reserving_it() {
    // The same bound on the type #1 path: a kernel whose directory entry
    // says 400 MB, under the 512 MiB kernel cap, on a 64 MiB partition.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("a.conf");
    std::fs::write(&conf, "title A\nlinux /vmlinuz\noptions quiet\n").unwrap();
    let kernel = dir.path().join("vmlinuz");
    std::fs::write(&kernel, support::uki::fake_bzimage(4096)).unwrap();
    let (img, _) = disk::make_esp_disk(
        dir.path(),
        &[("loader/entries/a.conf", &conf), ("vmlinuz", &kernel)],
    );
    set_dirent_size(&img, b"VMLINUZ    ", 400_000_000);
    let (mut file, len) = disk::open_with_len(&img);
    let found = inspect(&mut file, len, true);
    let entry = found
        .entries
        .first()
        .unwrap_or_else(|| panic!("the entry is listed: {found:#?}"));
    assert_eq!(entry.kernel_size, 400_000_000);
    let err = load_payload(&mut file, len, &entry.source)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than the whole"), "{err}");
    assert!(err.contains("/vmlinuz"), "{err}");
}
