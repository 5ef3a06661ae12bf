//! The boot-time initramfs check over initramfs images built with the real
//! tools (cpio, gzip, xz, zstd, lz4), and through a whole UKI inside a
//! fixed VHD, as stage 1 reads it when an entry is booted.
// Fixture helpers outside #[test] functions stop the test on failure.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::disk::{make_esp_disk, open_with_len, require_tool, run};
use support::uki::{UkiSpec, fake_bzimage, make_uki};
use vhdboot::image::initrd::{Compression, Presence, check_modules, check_payload};
use vhdboot::image::inspect::{inspect, load_payload};
use vhdboot::model::EntrySource;

const KVER: &str = "6.12.9-amd64";

/// A root tree for an initramfs: an /init, a few modules of `KVER`, and
/// optionally loop and a modules.builtin.
fn tree(dir: &Path, with_loop: bool, builtin: Option<&str>) -> PathBuf {
    let root = dir.join("root");
    let mods = root.join(format!("lib/modules/{KVER}"));
    std::fs::create_dir_all(mods.join("kernel/drivers/block")).unwrap();
    std::fs::create_dir_all(mods.join("kernel/fs/ntfs3")).unwrap();
    std::fs::write(root.join("init"), b"#!/bin/sh\n").unwrap();
    // Bodies of some size, so that skipping them is exercised.
    std::fs::write(
        mods.join("kernel/fs/ntfs3/ntfs3.ko.xz"),
        support::uki::noise(300_000, 1),
    )
    .unwrap();
    std::fs::write(
        mods.join("kernel/drivers/block/virtio_blk.ko.xz"),
        support::uki::noise(50_000, 2),
    )
    .unwrap();
    if with_loop {
        std::fs::write(
            mods.join("kernel/drivers/block/loop.ko.xz"),
            support::uki::noise(40_000, 3),
        )
        .unwrap();
    }
    if let Some(b) = builtin {
        std::fs::write(mods.join("modules.builtin"), b).unwrap();
    }
    root
}

/// `find . | cpio -o -H newc | <compress>` inside `root`.
fn initramfs(root: &Path, compress: &str) -> Vec<u8> {
    require_tool("cpio");
    if let Some(tool) = compress.split_whitespace().next() {
        require_tool(tool);
    }
    let pipe = if compress.is_empty() {
        "find . | sort | cpio -o -H newc --quiet".to_string()
    } else {
        format!("find . | sort | cpio -o -H newc --quiet | {compress}")
    };
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; {pipe}"))
        .current_dir(root));
    out.stdout
}

const COMPRESSORS: [(&str, Compression); 5] = [
    ("", Compression::None),
    ("gzip -9", Compression::Gzip),
    ("xz --check=crc32 --lzma2=dict=1MiB", Compression::Xz),
    ("zstd -q -19", Compression::Zstd),
    ("lz4 -l -q", Compression::Lz4Legacy),
];

#[test]
fn initramfs_with_loop_and_ntfs3_passes_in_every_compression() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path(), true, Some("kernel/fs/ext4/ext4.ko\n"));
    for (cmd, kind) in COMPRESSORS {
        let bytes = initramfs(&root, cmd);
        let c = check_modules(&bytes, Some(KVER), "ntfs3");
        assert_eq!(c.segments[0].compression, kind, "{cmd}");
        assert_eq!(
            c.modules,
            vec![
                (
                    "loop".to_string(),
                    Presence::File(format!(
                        "/lib/modules/{KVER}/kernel/drivers/block/loop.ko.xz"
                    ))
                ),
                (
                    "ntfs3".to_string(),
                    Presence::File(format!("/lib/modules/{KVER}/kernel/fs/ntfs3/ntfs3.ko.xz"))
                ),
            ],
            "{cmd}: {c:?}"
        );
        assert_eq!(c.problem(), None, "{cmd}");
    }
}

#[test]
fn initramfs_without_loop_is_refused_in_every_compression() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path(), false, Some("kernel/fs/ext4/ext4.ko\n"));
    for (cmd, _) in COMPRESSORS {
        let bytes = initramfs(&root, cmd);
        let c = check_modules(&bytes, Some(KVER), "ntfs3");
        assert_eq!(c.missing(), vec!["loop"], "{cmd}: {c:?}");
        let p = c.problem().unwrap();
        assert!(p.blocks_boot, "{cmd}");
        assert!(
            p.what
                .contains(&format!("has no loop module for kernel {KVER}")),
            "{cmd}: {}",
            p.what
        );
    }
}

#[test]
fn loop_built_into_the_kernel_is_accepted() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(
        t.path(),
        false,
        Some("kernel/drivers/block/loop.ko\nkernel/fs/ext4/ext4.ko\n"),
    );
    let c = check_modules(&initramfs(&root, "zstd -q"), Some(KVER), "ntfs3");
    assert_eq!(c.modules[0], ("loop".to_string(), Presence::BuiltIn));
    assert_eq!(c.problem(), None);
}

#[test]
fn initramfs_without_builtin_list_only_warns() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path(), false, None);
    let c = check_modules(&initramfs(&root, "gzip"), Some(KVER), "ntfs3");
    let p = c.problem().unwrap();
    assert!(!p.blocks_boot, "{p:?}");
    assert!(p.what.contains("could not check"), "{}", p.what);
}

#[test]
fn exfat_host_needs_exfat_not_ntfs3() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path(), true, Some(""));
    let c = check_modules(&initramfs(&root, "xz --check=crc32"), Some(KVER), "exfat");
    assert_eq!(c.missing(), vec!["exfat"]);
    assert!(c.problem().unwrap().what.contains("no exfat module"));
}

#[test]
fn modules_after_an_uncompressed_microcode_archive_are_found() {
    let t = tempfile::tempdir().unwrap();
    let early = t.path().join("early");
    std::fs::create_dir_all(early.join("kernel/x86/microcode")).unwrap();
    std::fs::write(
        early.join("kernel/x86/microcode/GenuineIntel.bin"),
        support::uki::noise(10_001, 4),
    )
    .unwrap();
    let mut bytes = initramfs(&early, "");
    // As dracut and mkinitcpio do, the compressed part starts aligned.
    bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    let root = tree(t.path(), false, Some(""));
    bytes.extend(initramfs(&root, "zstd -q"));
    let c = check_modules(&bytes, Some(KVER), "ntfs3");
    assert_eq!(
        c.segments.last().map(|s| s.compression),
        Some(Compression::Zstd),
        "{c:?}"
    );
    assert_eq!(c.missing(), vec!["loop"], "{c:?}");
}

/// A UKI whose kernel header names `KVER`, inside a fixed VHD's ESP.
fn vhd_with_uki(dir: &Path, initrd: Vec<u8>) -> PathBuf {
    let mut kernel = fake_bzimage(64 * 1024);
    kernel[0x20e..0x210].copy_from_slice(&0x1000u16.to_le_bytes());
    let version = format!("{KVER} (debian-kernel@lists.debian.org) #1 SMP\0");
    kernel[0x1200..0x1200 + version.len()].copy_from_slice(version.as_bytes());
    let spec = UkiSpec {
        uname: Some(KVER.to_string()),
        linux: Some(kernel),
        initrd: Some(initrd),
        ..UkiSpec::debian(0)
    };
    let uki = make_uki(dir, "debian.efi", &spec);
    let (disk, _) = make_esp_disk(dir, &[("EFI/Linux/debian.efi", &uki)]);
    run(Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .arg("raw2vhd")
        .arg(&disk));
    disk
}

#[test]
fn boot_time_check_refuses_a_uki_whose_initramfs_lacks_loop() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path(), false, Some("kernel/fs/ext4/ext4.ko\n"));
    let disk = vhd_with_uki(t.path(), initramfs(&root, "zstd -q"));
    let (mut file, len) = open_with_len(&disk);
    let found = inspect(&mut file, len, false);
    let entry = &found.entries[0];
    assert!(matches!(entry.source, EntrySource::Uki { .. }));
    let data_size = found.kind.data_size().unwrap();
    let payload = load_payload(&mut file, data_size, &entry.source).unwrap();
    let check = check_payload(&payload, None, "ntfs3");
    assert_eq!(
        check.version.as_deref(),
        Some(KVER),
        "from the bzImage header"
    );
    let p = check.problem().unwrap();
    assert!(p.blocks_boot);
    assert_eq!(
        p.what,
        format!(
            "the target's initramfs has no loop module for kernel {KVER} (neither as a file nor \
             built in), so it could never find its root on the image"
        )
    );
    assert!(p.hint.contains("MODULES=(loop ntfs3)"), "{}", p.hint);

    // The CLI shows the same verdict on the entry's line and refuses.
    let out = run_allow_fail(&["inspect", disk.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "initramfs: [zstd] for {KVER}: loop: MISSING, ntfs3: /lib/modules/{KVER}/kernel/fs/ntfs3/ntfs3.ko.xz"
        )),
        "{text}"
    );
    assert!(text.contains("error: entry 1"), "{text}");
    assert_eq!(out.status.code(), Some(2), "{text}");
}

#[test]
fn boot_time_check_passes_a_uki_with_loop_and_ntfs3() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path(), true, Some(""));
    let disk = vhd_with_uki(t.path(), initramfs(&root, "xz --check=crc32"));
    let out = run_allow_fail(&["inspect", disk.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("initramfs: [xz] for {KVER}: loop: /lib/modules/")),
        "{text}"
    );
    assert!(text.contains("Bootable: yes"), "{text}");
    assert!(out.status.success(), "{text}");

    let out = run_allow_fail(&["inspect", "--json", disk.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = &v["initramfs"][0];
    assert_eq!(check["entry"], 1, "{v}");
    assert_eq!(check["version"], KVER, "{v}");
    assert_eq!(check["modules"][0][0], "loop", "{v}");
    assert!(check["modules"][0][1]["File"].is_string(), "{v}");
}

fn run_allow_fail(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(args)
        .output()
        .unwrap()
}

fn problems_of(snapshot: &serde_json::Value, path: &str) -> Vec<String> {
    let images = snapshot["volumes"][0]["images"].as_array().unwrap();
    let img = images
        .iter()
        .find(|i| i["path"] == path)
        .unwrap_or_else(|| panic!("{path} not listed: {snapshot}"));
    img["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} [{}]", p["what"], p["blocks_boot"]))
        .collect()
}

#[test]
fn scan_blocks_a_sparse_image_and_not_a_fully_allocated_copy() {
    // ext4 reports allocation in st_blocks as ntfs3 does.
    let t = tempfile::tempdir_in("/var/tmp").unwrap();
    let sparse = t.path().join("sparse.vhd");
    run(Command::new("truncate").args(["-s", "64M"]).arg(&sparse));
    run(Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .arg("raw2vhd")
        .arg(&sparse));
    let full = t.path().join("full.vhd");
    run(Command::new("cp")
        .arg("--sparse=never")
        .arg(&sparse)
        .arg(&full));
    let out = run(Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(["scan", "--json", "--root"])
        .arg(t.path()));
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sparse_problems = problems_of(&snap, "/sparse.vhd");
    assert!(
        sparse_problems
            .iter()
            .any(|p| p.contains("the image file is sparse: only") && p.ends_with("[true]")),
        "{sparse_problems:?}"
    );
    let full_problems = problems_of(&snap, "/full.vhd");
    assert!(
        !full_problems.iter().any(|p| p.contains("sparse")),
        "{full_problems:?}"
    );
    // Both lack an ESP, which is what makes them unbootable otherwise.
    assert!(
        full_problems.iter().any(|p| p.contains("partition")),
        "{full_problems:?}"
    );
}

#[test]
fn uki_whose_kernel_is_not_a_bzimage_is_not_offered() {
    let t = tempfile::tempdir().unwrap();
    let good = make_uki(t.path(), "good.efi", &UkiSpec::debian(8192));
    let bad_spec = UkiSpec {
        linux: Some(vec![0x4d; 8192]),
        ..UkiSpec::debian(0)
    };
    let bad = make_uki(t.path(), "arm.efi", &bad_spec);

    let (disk, _) = make_esp_disk(
        t.path(),
        &[("EFI/Linux/good.efi", &good), ("EFI/Linux/arm.efi", &bad)],
    );
    let (mut file, len) = open_with_len(&disk);
    let found = inspect(&mut file, len, true);
    assert_eq!(found.entries.len(), 1, "{found:?}");
    assert!(
        matches!(&found.entries[0].source, EntrySource::Uki { path, .. } if path.ends_with("good.efi"))
    );
    let p = found
        .problems
        .iter()
        .find(|p| p.what.contains("arm.efi"))
        .unwrap();
    assert!(!p.blocks_boot, "the good entry still boots");
    assert!(p.what.contains("not an x86 bzImage"), "{}", p.what);

    let (alone, _) = make_esp_disk(t.path(), &[("EFI/Linux/arm.efi", &bad)]);
    let (mut file, len) = open_with_len(&alone);
    let found = inspect(&mut file, len, true);
    assert!(found.entries.is_empty());
    assert!(
        found
            .problems
            .iter()
            .any(|p| p.blocks_boot && p.what.starts_with("no boot entries")),
        "{:?}",
        found.problems
    );
}

#[test]
fn vhd_whose_file_size_disagrees_with_its_footer_is_blocked_with_both_sizes() {
    let t = tempfile::tempdir().unwrap();
    let vhd = t.path().join("cut.vhd");
    std::fs::write(&vhd, vec![0u8; 1 << 20]).unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .arg("raw2vhd")
        .arg(&vhd));
    // Drop 4 KiB of data in front of the footer, as a bad copy would.
    let bytes = std::fs::read(&vhd).unwrap();
    let (data, footer) = bytes.split_at(bytes.len() - 512);
    let mut cut = data[..data.len() - 4096].to_vec();
    cut.extend_from_slice(footer);
    std::fs::write(&vhd, &cut).unwrap();

    let img = vhdboot::discovery::scan::describe_image(t.path(), "/cut.vhd", false);
    assert!(vhdboot::boot::plan::image_problem("the test folder", &img).is_err());
    let p = img.problems.iter().find(|p| p.blocks_boot).unwrap();
    let expected = (1u64 << 20) + 512;
    assert!(
        p.what.contains(&expected.to_string()) && p.what.contains(&cut.len().to_string()),
        "{}",
        p.what
    );
}

#[test]
fn a_second_compressed_segment_is_read_after_the_first() {
    let t = tempfile::tempdir().unwrap();
    let first = t.path().join("first");
    let dir = first.join(format!("lib/modules/{KVER}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
    let second = tree(&t.path().join("second"), true, None);
    for (cmd, kind) in &COMPRESSORS[1..4] {
        let mut bytes = initramfs(&first, cmd);
        bytes.extend(initramfs(&second, cmd));
        let c = check_modules(&bytes, Some(KVER), "ntfs3");
        assert_eq!(c.segments.len(), 2, "{cmd}: {c:?}");
        assert_eq!(c.segments[1].compression, *kind, "{cmd}");
        assert!(matches!(c.modules[0].1, Presence::File(_)), "{cmd}: {c:?}");
        assert_eq!(c.problem(), None, "{cmd}");
    }
}
