//! `vhdboot inspect` and `load_payload` over disks built with sfdisk,
//! mkfs.vfat, mtools, objcopy and qemu-img: a GPT with an ESP holding a
//! UKI and a Boot Loader Spec type #1 entry with its kernel and initrds.
// The helpers below run only in tests, where a failed step should stop the
// test with its message.
#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::disk::{self, MIB, PartSpec};
use support::uki::{UkiSpec, fake_bzimage, make_uki, noise};
use vhdboot::image::inspect::{inspect, load_payload};
use vhdboot::model::{EntrySource, ImageKind};

const FEDORA_CONF: &str = "\
title Fedora Linux 40 (Workstation Edition)
version 6.8.5-301.fc40.x86_64
linux /vmlinuz-6.8.5-301.fc40.x86_64
initrd /intel-ucode.img
initrd /initramfs-6.8.5-301.fc40.x86_64.img
options root=UUID=3e8b8c0b-2f27-4d5e-9b1b-7f1a2c9e0d11 ro
options quiet
grub_class fedora
";
const DEBIAN_TITLE: &str = "Debian GNU/Linux 12 (bookworm) (6.1.0-18-amd64)";
const FEDORA_TITLE: &str = "Fedora Linux 40 (Workstation Edition) (6.8.5-301.fc40.x86_64)";

/// The bytes put on the ESP, to compare with what is read back.
struct Fixture {
    _dir: tempfile::TempDir,
    raw: PathBuf,
    uki: UkiSpec,
    bls_kernel: Vec<u8>,
    ucode: Vec<u8>,
    initramfs: Vec<u8>,
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A raw disk: ESP (64 MiB FAT32) with /EFI/Linux/debian.efi and
/// /loader/entries/fedora.conf plus its files, and an empty root partition.
fn fixture(kernel_len: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let uki = UkiSpec {
        linux: Some({
            let mut k = noise(kernel_len, 7);
            k[0x202..0x206].copy_from_slice(b"HdrS");
            k
        }),
        ..UkiSpec::debian(0)
    };
    let uki_path = make_uki(d, "debian.efi", &uki);
    let bls_kernel = fake_bzimage(50_001);
    // Odd sizes, so the 4-byte padding between initrds shows.
    let ucode = vec![0x55; 1023];
    let initramfs = vec![0x66; 4097];
    let conf = write(d, "fedora.conf", FEDORA_CONF.as_bytes());
    let k = write(d, "vmlinuz", &bls_kernel);
    let u = write(d, "ucode", &ucode);
    let i = write(d, "initramfs", &initramfs);
    let (raw, _) = disk::make_esp_disk(
        d,
        &[
            ("/EFI/Linux/debian.efi", &uki_path),
            ("/loader/entries/fedora.conf", &conf),
            ("/vmlinuz-6.8.5-301.fc40.x86_64", &k),
            ("/intel-ucode.img", &u),
            ("/initramfs-6.8.5-301.fc40.x86_64.img", &i),
        ],
    );
    Fixture {
        _dir: dir,
        raw,
        uki,
        bls_kernel,
        ucode,
        initramfs,
    }
}

/// A fixed VHD of the raw disk, made by the reference tool.
fn to_vhd(raw: &Path) -> PathBuf {
    let vhd = raw.with_extension("vhd");
    disk::run(
        Command::new(disk::tool("qemu-img"))
            .args([
                "convert",
                "-f",
                "raw",
                "-O",
                "vpc",
                "-o",
                "subformat=fixed,force_size=on",
            ])
            .arg(raw)
            .arg(&vhd),
    );
    vhd
}

fn vhdboot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(args)
        .output()
        .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn inspect_lists_uki_and_bls_entries_after_raw2vhd() {
    let f = fixture(300_000);
    let r2v = vhdboot(&["raw2vhd", p(&f.raw)]);
    assert!(
        r2v.status.success(),
        "{}",
        String::from_utf8_lossy(&r2v.stderr)
    );
    // The fixture's initrds are placeholder bytes, which the initramfs
    // check would rightly warn about; tests/preflight.rs covers that check.
    let out = vhdboot(&["inspect", "--no-initramfs-check", p(&f.raw)]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Kind:   fixed VHD: 80 MiB of disk data"),
        "{text}"
    );
    assert!(
        text.contains(&format!("1. {FEDORA_TITLE}")),
        "newest first: {text}"
    );
    assert!(text.contains(&format!("2. {DEBIAN_TITLE}")), "{text}");
    assert!(
        text.contains("cmdline: root=PARTLABEL=root ro quiet"),
        "{text}"
    );
    assert!(
        text.contains("cmdline: root=UUID=3e8b8c0b-2f27-4d5e-9b1b-7f1a2c9e0d11 ro quiet"),
        "{text}"
    );
    assert!(
        text.contains("from:    UKI /EFI/Linux/debian.efi on partition 1"),
        "{text}"
    );
    assert!(
        text.contains("EFI system partition 1: FAT, label \"ESP\""),
        "{text}"
    );
    assert!(text.contains("Bootable: yes"), "{text}");
    assert!(!text.contains("Problems:"), "{text}");
}

#[test]
fn inspect_json_has_exact_sizes_and_entry_sources() {
    let f = fixture(300_000);
    let vhd = to_vhd(&f.raw);
    let out = vhdboot(&["inspect", "--json", p(&vhd)]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bootable"], true);
    assert_eq!(v["kind"]["FixedVhd"]["data_size"], 80 * MIB);
    assert_eq!(v["footer"]["disk_type"], "Fixed");
    assert_eq!(v["partitions"].as_array().unwrap().len(), 2);
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["title"], FEDORA_TITLE);
    assert_eq!(entries[0]["kernel_size"], 50_001);
    assert_eq!(entries[0]["initrd_size"], 1024 + 4100);
    assert_eq!(
        entries[0]["source"]["Bls"]["initrd"],
        serde_json::json!(["/intel-ucode.img", "/initramfs-6.8.5-301.fc40.x86_64.img"])
    );
    assert_eq!(entries[1]["title"], DEBIAN_TITLE);
    assert_eq!(entries[1]["version"], "6.1.0-18-amd64");
    assert_eq!(entries[1]["kernel_size"], 300_000);
    assert_eq!(
        entries[1]["initrd_size"],
        f.uki.initrd.unwrap().len() as u64
    );
    assert_eq!(entries[1]["source"]["Uki"]["path"], "/EFI/Linux/debian.efi");
}

#[test]
fn load_payload_returns_the_exact_kernel_initrd_and_cmdline() {
    let f = fixture(300_000);
    let (mut file, len) = disk::open_with_len(&f.raw);
    let found = inspect(&mut file, len, true);
    assert_eq!(found.kind, ImageKind::Raw { data_size: len });
    assert_eq!(found.entries.len(), 2, "{:?}", found.problems);

    let fedora = load_payload(&mut file, len, &found.entries[0].source).unwrap();
    assert_eq!(fedora.kernel, f.bls_kernel);
    let mut expected = f.ucode.clone();
    expected.resize(1024, 0);
    expected.extend_from_slice(&f.initramfs);
    expected.resize(1024 + 4100, 0);
    assert_eq!(fedora.initrd, expected);
    assert_eq!(
        found.entries[0].cmdline,
        "root=UUID=3e8b8c0b-2f27-4d5e-9b1b-7f1a2c9e0d11 ro quiet"
    );

    let debian = load_payload(&mut file, len, &found.entries[1].source).unwrap();
    assert!(matches!(found.entries[1].source, EntrySource::Uki { .. }));
    assert_eq!(debian.kernel, f.uki.linux.unwrap());
    assert_eq!(debian.initrd, f.uki.initrd.unwrap());
    assert_eq!(found.entries[1].cmdline, "root=PARTLABEL=root ro quiet");
}

#[test]
fn inspect_reads_headers_not_kernels() {
    // An 8 MiB kernel; inspect must read far less than that.
    let f = fixture(8 << 20);
    let vhd = to_vhd(&f.raw);
    let out = vhdboot(&["inspect", "--stats", p(&vhd)]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let bytes: u64 = err
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {err:?}"));
    assert!(
        bytes > 0 && bytes < 1 << 20,
        "inspect read {bytes} bytes: {err}"
    );
}

#[test]
fn raw_disk_without_raw_flag_is_not_bootable_and_says_why() {
    let f = fixture(10_000);
    let out = vhdboot(&["inspect", p(&f.raw)]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains("error: the image's footer is unusable"),
        "{text}"
    );
    assert!(text.contains("raw2vhd"), "{text}");
    assert!(text.contains("Bootable: no"), "{text}");
    let out = vhdboot(&["inspect", "--raw", p(&f.raw)]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("raw disk image of 80 MiB"));
}

#[test]
fn disk_without_esp_reports_the_missing_partition() {
    let dir = tempfile::tempdir().unwrap();
    let raw = disk::make_gpt_disk(dir.path(), "d.img", 20 * MIB, &[PartSpec::root(8)]);
    let (mut file, len) = disk::open_with_len(&raw);
    let found = inspect(&mut file, len, true);
    assert!(found.entries.is_empty());
    assert_eq!(found.partitions.len(), 1);
    assert!(
        found
            .problems
            .iter()
            .any(|p| p.blocks_boot && p.what.contains("no EFI system partition")),
        "{:?}",
        found.problems
    );
}

#[test]
fn esp_that_is_not_fat_gives_a_warning_and_no_entries() {
    let dir = tempfile::tempdir().unwrap();
    let raw = disk::make_gpt_disk(dir.path(), "d.img", 20 * MIB, &[PartSpec::esp(8)]);
    let (mut file, len) = disk::open_with_len(&raw);
    let found = inspect(&mut file, len, true);
    assert_eq!(found.esps.len(), 1);
    assert_eq!(found.esps[0].label, None);
    let whats: Vec<&str> = found.problems.iter().map(|p| p.what.as_str()).collect();
    assert!(
        whats
            .iter()
            .any(|w| w.contains("EFI system partition 1") && w.contains("not a FAT")),
        "{whats:?}"
    );
    assert!(
        found
            .problems
            .iter()
            .any(|p| p.blocks_boot && p.what.contains("no boot entries")),
        "{whats:?}"
    );
    assert!(found.problems.iter().all(|p| !p.hint.is_empty()));
}

#[test]
fn broken_uki_is_reported_and_other_entries_stay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = make_uki(d, "good.efi", &UkiSpec::debian(20_000));
    let bytes = std::fs::read(&good).unwrap();
    // Cut inside .initrd, as an interrupted copy would (objcopy leaves a
    // symbol table after the sections, so cutting the tail is not enough).
    let (_, initrd_at) = support::uki::section_header(&bytes, ".initrd");
    let cut = write(d, "cut.efi", &bytes[..initrd_at as usize + 10]);
    let nolinux = make_uki(
        d,
        "nolinux.efi",
        &UkiSpec {
            linux: None,
            initrd: None,
            ..UkiSpec::debian(0)
        },
    );
    let notpe = write(d, "notes.efi", b"just text");
    let (raw, _) = disk::make_esp_disk(
        d,
        &[
            ("/EFI/Linux/good.efi", &good),
            ("/EFI/Linux/cut.efi", &cut),
            ("/EFI/Linux/nolinux.efi", &nolinux),
            ("/EFI/Linux/notes.efi", &notpe),
        ],
    );
    let (mut file, len) = disk::open_with_len(&raw);
    let found = inspect(&mut file, len, true);
    assert_eq!(found.entries.len(), 1, "{:?}", found.problems);
    assert_eq!(found.esps[0].ukis.len(), 4);
    let find = |name: &str, needle: &str| {
        assert!(
            found
                .problems
                .iter()
                .any(|p| !p.blocks_boot && p.what.contains(name) && p.what.contains(needle)),
            "{name}/{needle} not in {:?}",
            found.problems
        );
    };
    find(
        "/EFI/Linux/cut.efi",
        "section .initrd lies past the end of the file",
    );
    find("/EFI/Linux/nolinux.efi", "no .linux section");
    find("/EFI/Linux/notes.efi", "not a PE/EFI file");
    find("EFI system partition 1", "cut.efi");
}

#[test]
fn missing_file_names_the_file_and_exits_with_an_error() {
    let out = vhdboot(&["inspect", "/nonexistent/disk.vhd"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("/nonexistent/disk.vhd: cannot open the image"),
        "{err}"
    );
}

#[test]
fn inspect_never_writes_to_the_image() {
    let f = fixture(10_000);
    let vhd = to_vhd(&f.raw);
    let before = std::fs::read(&vhd).unwrap();
    let modified = File::open(&vhd)
        .unwrap()
        .metadata()
        .unwrap()
        .modified()
        .unwrap();
    assert!(vhdboot(&["inspect", p(&vhd)]).status.success());
    let (mut file, len) = disk::open_with_len(&vhd);
    let found = inspect(&mut file, len, false);
    for e in &found.entries {
        load_payload(&mut file, len - 512, &e.source).unwrap();
    }
    assert_eq!(std::fs::read(&vhd).unwrap(), before);
    assert_eq!(
        File::open(&vhd)
            .unwrap()
            .metadata()
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
}

#[test]
fn bls_entries_with_missing_kernel_or_efi_program_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = write(
        d,
        "missing.conf",
        b"title Gone\nversion 6.0\nlinux /vmlinuz-gone\noptions quiet\n",
    );
    let memtest = write(
        d,
        "memtest.conf",
        b"title Memtest86+\nefi /EFI/memtest/memtest.efi\n",
    );
    let no_initrd = write(
        d,
        "noinitrd.conf",
        b"title Bare\nlinux /vmlinuz\ninitrd /initrd-gone.img\n",
    );
    let k = write(d, "vmlinuz", &fake_bzimage(5000));
    let (raw, _) = disk::make_esp_disk(
        d,
        &[
            ("/loader/entries/missing.conf", &missing),
            ("/loader/entries/memtest.conf", &memtest),
            ("/loader/entries/noinitrd.conf", &no_initrd),
            ("/vmlinuz", &k),
        ],
    );
    let (mut file, len) = disk::open_with_len(&raw);
    let found = inspect(&mut file, len, true);
    assert!(found.entries.is_empty(), "{:?}", found.entries);
    let has = |conf: &str, needle: &str| {
        assert!(
            found
                .problems
                .iter()
                .any(|p| p.what.contains(conf) && p.what.contains(needle)),
            "{conf}/{needle} not in {:?}",
            found.problems
        );
    };
    has(
        "/loader/entries/missing.conf",
        "/vmlinuz-gone was not found",
    );
    has(
        "/loader/entries/memtest.conf",
        "EFI program (/EFI/memtest/memtest.efi)",
    );
    has(
        "/loader/entries/noinitrd.conf",
        "/initrd-gone.img was not found",
    );
    assert!(
        found
            .problems
            .iter()
            .any(|p| p.blocks_boot && p.what.contains("no boot entries"))
    );
}

#[test]
fn ukis_on_an_xbootldr_partition_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let uki = make_uki(
        d,
        "arch.efi",
        &UkiSpec {
            osrel: Some("NAME=\"Arch Linux\"\nID=arch\n".to_string()),
            uname: Some("6.12.1-arch1-1".to_string()),
            ..UkiSpec::debian(9000)
        },
    );
    let raw = disk::make_gpt_disk(
        d,
        "d.img",
        120 * MIB,
        &[
            PartSpec::esp(40),
            PartSpec {
                size_mib: 40,
                type_guid: disk::XBOOTLDR_TYPE,
                name: "XBOOTLDR",
            },
        ],
    );
    let ext = disk::partition_extents(&raw);
    let esp = disk::make_fat_image(d, "esp.fat", ext[0].len / 1024, &[]);
    disk::write_at(&raw, ext[0].offset, &esp);
    let xbl = disk::make_fat_image(
        d,
        "xbl.fat",
        ext[1].len / 1024,
        &[("/EFI/Linux/arch.efi", &uki)],
    );
    disk::write_at(&raw, ext[1].offset, &xbl);
    let (mut file, len) = disk::open_with_len(&raw);
    let found = inspect(&mut file, len, true);
    assert_eq!(found.esps.len(), 2);
    assert_eq!(found.entries.len(), 1, "{:?}", found.problems);
    assert_eq!(found.entries[0].title, "Arch Linux (6.12.1-arch1-1)");
    match &found.entries[0].source {
        EntrySource::Uki { esp, path } => {
            assert_eq!(esp.offset, ext[1].offset);
            assert_eq!(path, "/EFI/Linux/arch.efi");
        }
        other => panic!("unexpected source {other:?}"),
    }
    let payload = load_payload(&mut file, len, &found.entries[0].source).unwrap();
    assert_eq!(payload.kernel, fake_bzimage(9000));
}

#[test]
fn dynamic_vhd_is_listed_with_the_reason_it_cannot_boot() {
    let dir = tempfile::tempdir().unwrap();
    let vhd = dir.path().join("dyn.vhd");
    disk::run(
        Command::new(disk::tool("qemu-img"))
            .args(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic"])
            .arg(&vhd)
            .arg("64M"),
    );
    let out = vhdboot(&["inspect", "--json", p(&vhd)]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "DynamicVhd");
    assert_eq!(v["bootable"], false);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["blocks_boot"], true);
    assert!(
        problems[0]["what"]
            .as_str()
            .unwrap()
            .contains("dynamic VHD")
    );
    assert!(
        problems[0]["hint"]
            .as_str()
            .unwrap()
            .contains("subformat=fixed")
    );
}

#[test]
fn load_payload_error_names_the_partition_and_file() {
    let f = fixture(10_000);
    let (mut file, len) = disk::open_with_len(&f.raw);
    let found = inspect(&mut file, len, true);
    let EntrySource::Uki { esp, .. } = found.entries[1].source.clone() else {
        panic!("expected the UKI second: {:?}", found.entries);
    };
    let gone = EntrySource::Uki {
        esp,
        path: "/EFI/Linux/gone.efi".to_string(),
    };
    let err = load_payload(&mut file, len, &gone).unwrap_err().to_string();
    assert!(err.contains("/EFI/Linux/gone.efi"), "{err}");
    assert!(
        err.contains(&format!("EFI partition at byte offset {}", esp.offset)),
        "{err}"
    );
    let err = load_payload(&mut file, esp.offset, &found.entries[1].source)
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the image"), "{err}");
}
