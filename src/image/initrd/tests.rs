use super::*;
use crate::image::modules_index::module_file_name;
use decompress::LZ4_LEGACY_MAGIC;
use module_index::modules_path;

/// One newc entry.
fn entry(out: &mut Vec<u8>, name: &str, mode: u32, body: &[u8]) {
    let namesize = name.len() + 1;
    out.extend_from_slice(
        format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1,
            mode,
            0,
            0,
            1,
            0,
            body.len(),
            0,
            0,
            0,
            0,
            namesize,
            0
        )
        .as_bytes(),
    );
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(body);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    entry(&mut out, "lib", 0o040755, b"");
    for (name, body) in files {
        entry(&mut out, name, 0o100644, body);
    }
    entry(&mut out, "TRAILER!!!", 0, b"");
    out
}

const K: &str = "6.12.9-amd64";

#[test]
fn module_names_are_canonical_and_other_files_are_not_modules() {
    assert_eq!(module_file_name("loop.ko.xz").as_deref(), Some("loop"));
    assert_eq!(module_file_name("nls-utf8.ko").as_deref(), Some("nls_utf8"));
    assert_eq!(module_file_name("ntfs3.ko.zst").as_deref(), Some("ntfs3"));
    assert_eq!(module_file_name("modules.dep"), None);
    assert_eq!(module_file_name("loop.kotlin"), None);
}

#[test]
fn modules_paths_accept_merged_usr_and_dot_prefixes() {
    assert_eq!(
        modules_path("./usr/lib/modules/6.1/kernel/a.ko"),
        Some(("6.1", "kernel/a.ko"))
    );
    assert_eq!(modules_path("lib/modules/6.1"), None);
    assert_eq!(modules_path("etc/modules"), None);
}

#[test]
fn uncompressed_initrd_with_both_modules_passes() {
    let a = archive(&[
        (
            "lib/modules/6.12.9-amd64/kernel/drivers/block/loop.ko.xz",
            b"x",
        ),
        ("lib/modules/6.12.9-amd64/kernel/fs/ntfs3/ntfs3.ko.xz", b"y"),
    ]);
    let c = check_modules(&a, Some(K), "ntfs3");
    assert_eq!(c.missing(), Vec::<&str>::new());
    assert_eq!(c.problem(), None, "{c:?}");
}

#[test]
fn missing_loop_with_a_builtin_list_is_a_blocking_problem() {
    let a = archive(&[
        (
            "lib/modules/6.12.9-amd64/modules.builtin",
            b"kernel/fs/ext4/ext4.ko\n",
        ),
        ("lib/modules/6.12.9-amd64/kernel/fs/ntfs3/ntfs3.ko", b"y"),
    ]);
    let c = check_modules(&a, Some(K), "ntfs3");
    assert_eq!(c.missing(), vec!["loop"]);
    let p = c.problem().unwrap();
    assert!(p.blocks_boot);
    assert!(
        p.what.contains("no loop module for kernel 6.12.9-amd64"),
        "{}",
        p.what
    );
    assert!(p.hint.contains("MODULES=(loop ntfs3)"), "{}", p.hint);
    assert!(
        p.hint.contains("add_drivers+=\" loop ntfs3 \""),
        "{}",
        p.hint
    );
}

#[test]
fn builtin_modules_count_as_present() {
    let a = archive(&[(
        "usr/lib/modules/6.12.9-amd64/modules.builtin",
        b"kernel/drivers/block/loop.ko\nkernel/fs/exfat/exfat.ko\n",
    )]);
    let c = check_modules(&a, Some(K), "exfat");
    assert_eq!(
        c.modules,
        vec![
            ("loop".to_string(), Presence::BuiltIn),
            ("exfat".to_string(), Presence::BuiltIn)
        ]
    );
    assert_eq!(c.problem(), None);
}

#[test]
fn without_a_builtin_list_absence_is_only_a_warning() {
    let a = archive(&[("lib/modules/6.12.9-amd64/kernel/fs/ntfs3/ntfs3.ko", b"y")]);
    let c = check_modules(&a, Some(K), "ntfs3");
    assert!(c.missing().is_empty());
    let p = c.problem().unwrap();
    assert!(!p.blocks_boot);
    assert!(p.what.contains("modules.builtin"), "{}", p.what);
}

#[test]
fn modules_for_another_kernel_only_warn() {
    let a = archive(&[("lib/modules/5.10.0/modules.builtin", b"")]);
    let p = check_modules(&a, Some(K), "ntfs3").problem().unwrap();
    assert!(!p.blocks_boot);
    assert!(
        p.what.contains("5.10.0 but none for 6.12.9-amd64"),
        "{}",
        p.what
    );
}

#[test]
fn the_only_module_tree_is_used_when_the_version_is_unknown() {
    let a = archive(&[("lib/modules/6.1.0/modules.builtin", b"")]);
    let c = check_modules(&a, None, "ntfs3");
    assert_eq!(c.version.as_deref(), Some("6.1.0"));
    assert_eq!(c.missing(), vec!["loop", "ntfs3"]);
}

#[test]
fn modules_after_an_early_microcode_archive_are_found() {
    let mut a = archive(&[("kernel/x86/microcode/GenuineIntel.bin", &[7u8; 13])]);
    a.extend_from_slice(&[0u8; 64]);
    a.extend(archive(&[
        (
            "lib/modules/6.12.9-amd64/modules.builtin",
            b"kernel/drivers/block/loop.ko\n",
        ),
        ("lib/modules/6.12.9-amd64/kernel/fs/ntfs3/ntfs3.ko", b"y"),
    ]));
    let c = check_modules(&a, Some(K), "ntfs3");
    assert_eq!(c.problem(), None, "{c:?}");
}

#[test]
fn gzip_segment_after_an_uncompressed_one_is_read() {
    let mut a = archive(&[("early.bin", b"abc")]);
    let inner = archive(&[
        ("lib/modules/6.12.9-amd64/modules.builtin", b""),
        ("lib/modules/6.12.9-amd64/kernel/fs/ntfs3/ntfs3.ko", b"y"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&inner).unwrap();
    a.extend(gz.finish().unwrap());
    let c = check_modules(&a, Some(K), "ntfs3");
    assert_eq!(c.segments[1].compression, Compression::Gzip);
    assert_eq!(c.missing(), vec!["loop"]);
}

#[test]
fn scan_stops_once_everything_is_found() {
    let a = archive(&[
        (
            "lib/modules/6.12.9-amd64/kernel/drivers/block/loop.ko",
            b"x",
        ),
        ("lib/modules/6.12.9-amd64/kernel/fs/ntfs3/ntfs3.ko", b"y"),
        ("lib/modules/6.12.9-amd64/kernel/zzz.ko", b"z"),
    ]);
    let s = scan(&a, Some(K), &["loop", "ntfs3"]);
    assert!(s.stopped_early);
    assert!(!s.trees[K].modules.contains_key("zzz"));
}

#[test]
fn unknown_data_and_bad_headers_leave_the_check_unsure() {
    let c = check_modules(b"MZ not an initramfs", Some(K), "ntfs3");
    assert!(c.unsure.unwrap().contains("byte 0"));
    let mut a = archive(&[("lib/modules/6.12.9-amd64/modules.builtin", b"")]);
    a.truncate(200);
    let c = check_modules(&a, Some(K), "ntfs3");
    assert!(c.missing().is_empty(), "a cut archive proves nothing");
    assert!(!c.problem().unwrap().blocks_boot);
}

#[test]
fn an_entry_without_initramfs_is_refused() {
    let c = check_modules(&[0u8; 16], Some(K), "ntfs3");
    assert!(c.no_initramfs());
    let p = c.problem().unwrap();
    assert!(p.blocks_boot && p.what.contains("no initramfs"), "{p:?}");
}

#[test]
fn bzip2_segments_are_reported_as_unreadable() {
    let c = check_modules(b"BZh91AY&SY", Some(K), "ntfs3");
    assert!(c.unsure.unwrap().contains("bzip2"));
}

#[test]
fn huge_names_are_corrupt_not_allocated() {
    let mut h = b"070701".to_vec();
    for i in 0..13 {
        h.extend_from_slice(if i == 11 { b"FFFFFFFF" } else { b"00000000" });
    }
    let c = check_modules(&h, Some(K), "ntfs3");
    assert!(c.unsure.unwrap().contains("name of"));
}

/// Deterministic xorshift, so failures reproduce.
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn corrupted_archives_never_panic() {
    let plain = archive(&[
        ("lib/modules/6.12.9-amd64/modules.builtin", b"kernel/a.ko\n"),
        ("lib/modules/6.12.9-amd64/kernel/fs/ntfs3/ntfs3.ko", b"y"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let mut lz4 = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
    let block = lz4_flex::block::compress(&plain);
    lz4.extend_from_slice(&(block.len() as u32).to_le_bytes());
    lz4.extend_from_slice(&block);
    assert!(check_modules(&lz4, Some(K), "ntfs3").unsure.is_none());
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for base in [&plain, &gz, &lz4] {
        for _ in 0..400 {
            let mut bytes = base.clone();
            for _ in 0..1 + xorshift(&mut x) % 4 {
                let at = (xorshift(&mut x) as usize) % bytes.len();
                bytes[at] = xorshift(&mut x) as u8;
            }
            let cut = (xorshift(&mut x) as usize) % (bytes.len() + 1);
            let _ = check_modules(&bytes, Some(K), "ntfs3").problem();
            let _ = check_modules(&bytes[..cut], None, "exfat").problem();
        }
    }
}

#[test]
fn a_compressed_flood_of_module_names_stops_at_the_cap() {
    // A few hundred KiB of gzip naming more module files than any kernel
    // has: the scan keeps at most MAX_MODULE_FILES names, not millions.
    let mut inner = Vec::new();
    for i in 0..newc::MAX_MODULE_FILES + 10 {
        entry(
            &mut inner,
            &format!("lib/modules/{K}/kernel/m{i}.ko"),
            0o100644,
            b"",
        );
    }
    entry(&mut inner, "TRAILER!!!", 0, b"");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&inner).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < inner.len() / 10);
    let s = scan(&bomb, Some(K), &["loop"]);
    let kept: usize = s.trees.values().map(|t| t.modules.len()).sum();
    assert_eq!(kept, newc::MAX_MODULE_FILES);
    let why = s.unread.unwrap();
    assert!(why.contains("more than 65536 module files"), "{why}");
}

#[test]
fn module_trees_for_too_many_versions_stop_the_scan() {
    let names: Vec<String> = (0..newc::MAX_MODULE_TREES + 1)
        .map(|i| format!("lib/modules/6.{i}.0/kernel/loop.ko"))
        .collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let s = scan(&archive(&files), None, &["loop"]);
    assert_eq!(s.trees.len(), newc::MAX_MODULE_TREES);
    assert!(s.unread.unwrap().contains("more than 16 kernel versions"));
}

fn lacking_loop_and_ntfs3() -> ModuleCheck {
    let a = archive(&[(
        "lib/modules/6.12.9-amd64/modules.builtin",
        b"kernel/fs/ext4/ext4.ko\n",
    )]);
    check_modules(&a, Some(K), "ntfs3")
}

fn image_tree(carried: &[&str], builtin: &[&str]) -> crate::image::carry::ImageModules {
    crate::image::carry::ImageModules {
        kver: K.into(),
        partition: 2,
        dir: format!("/lib/modules/{K}"),
        files: carried
            .iter()
            .map(|m| crate::image::carry::CarriedFile {
                name: m.to_string(),
                file_name: format!("{m}.ko.xz"),
                bytes: vec![0],
            })
            .collect(),
        builtin: builtin.iter().map(|m| m.to_string()).collect(),
    }
}

#[test]
fn what_the_initramfs_lacks_is_wanted_from_the_image() {
    let c = lacking_loop_and_ntfs3();
    assert_eq!(c.wanting(), ["loop", "ntfs3"]);
    let none = check_modules(&[], Some(K), "ntfs3");
    assert!(
        none.wanting().is_empty(),
        "nothing to carry into no initramfs"
    );
}

#[test]
fn modules_the_image_carries_or_builds_in_clear_the_refusal() {
    let c = lacking_loop_and_ntfs3();
    let found = Ok(image_tree(&["ntfs3"], &["loop"]));
    assert_eq!(c.problem_with(Some(&found)), None);
}

#[test]
fn a_module_neither_place_has_is_refused_naming_both() {
    let c = lacking_loop_and_ntfs3();
    let found = Ok(image_tree(&["ntfs3"], &[]));
    let p = c.problem_with(Some(&found)).unwrap();
    assert!(p.blocks_boot);
    assert!(
        p.what
            .contains("has no loop module for kernel 6.12.9-amd64")
            && p.what.contains("could not carry it from the image either")
            && p.what
                .contains("/lib/modules/6.12.9-amd64 on partition 2 has neither"),
        "{}",
        p.what
    );
    assert!(
        p.hint.contains("MODULES=(loop ntfs3)") && p.hint.contains("which vhdboot then carries"),
        "{}",
        p.hint
    );
}

#[test]
fn an_image_without_a_tree_for_the_kernel_is_refused_with_its_reason() {
    let c = lacking_loop_and_ntfs3();
    let absent = Err("the image's /lib/modules holds 6.1.0 but not 6.12.9-amd64".to_string());
    let p = c.problem_with(Some(&absent)).unwrap();
    assert!(p.blocks_boot);
    assert!(
        p.what.contains("has no loop or ntfs3 modules")
            && p.what.contains(
                "could not carry them from the image either: the image's /lib/modules holds 6.1.0"
            ),
        "{}",
        p.what
    );
}

#[test]
fn immutable_boot_also_wants_the_device_mapper_modules() {
    let a = archive(&[
        (
            "lib/modules/6.12.9-amd64/modules.builtin",
            b"kernel/drivers/block/loop.ko\n",
        ),
        ("lib/modules/6.12.9-amd64/kernel/fs/ntfs3/ntfs3.ko.xz", b"y"),
        (
            "lib/modules/6.12.9-amd64/kernel/drivers/md/dm-mod.ko.xz",
            b"y",
        ),
    ]);
    let dm = ["dm_mod", "dm_snapshot"];
    assert_eq!(check_modules(&a, Some(K), "ntfs3").problem(), None);
    let c = check_modules_with(&a, Some(K), "ntfs3", &dm);
    assert_eq!(c.missing(), vec!["dm_snapshot"]);
    let p = c.problem().unwrap();
    assert!(p.blocks_boot);
    assert!(p.what.contains("no dm_snapshot module"), "{}", p.what);
}
