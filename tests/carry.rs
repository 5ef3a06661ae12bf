//! Carried modules over ext4 roots made by the real tool (`mkfs.ext4 -d`,
//! no mount): the image's `/lib/modules/<kver>` with real modules and the
//! real modules.dep of the E2E kernel (tests/e2e/fetch-kernel, cached in
//! target/e2e/kernel), a merged-/usr layout, a tree for another kernel,
//! and a module over the size cap.
#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::path::{Path, PathBuf};
use support::disk::{self, PartExtent};
use vhdboot::image::carry::{MAX_CARRIED_BYTES, find_image_modules};
use vhdboot::model::{ByteRange, EntrySource};

const UUID: &str = "0b7d8e52-5a8e-4c1e-8d55-2f0d6a3e7c11";

/// The E2E kernel's version and unpacked root, when tests/e2e/fetch-kernel
/// ran (the e2e build does); None on a checkout that never built it.
fn e2e_kernel() -> Option<(String, PathBuf)> {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e/kernel");
    let kver = std::fs::read_to_string(cache.join("kver")).ok()?;
    let kver = kver.trim().to_string();
    let root = cache.join("root");
    root.join("lib/modules")
        .join(&kver)
        .join("modules.dep")
        .is_file()
        .then_some((kver, root))
}

/// The modules the tests carry, as (path below /lib/modules/<kver>, bytes):
/// the E2E kernel's real files when it is there, else stand-ins with the
/// same names and a modules.dep in depmod's format.
fn module_tree(kver: &str) -> Vec<(String, Vec<u8>)> {
    let names = [
        "kernel/drivers/block/loop.ko.xz",
        "kernel/fs/ntfs3/ntfs3.ko.xz",
        "kernel/fs/exfat/exfat.ko.xz",
        "kernel/fs/fat/fat.ko.xz",
        "kernel/fs/fat/vfat.ko.xz",
    ];
    match e2e_kernel().filter(|(k, _)| k == kver) {
        Some((_, root)) => {
            let dir = root.join("lib/modules").join(kver);
            names
                .iter()
                .chain(&["modules.dep", "modules.builtin"])
                .map(|n| (n.to_string(), std::fs::read(dir.join(n)).unwrap()))
                .collect()
        }
        None => {
            eprintln!("target/e2e/kernel is not built: using stand-in module files");
            let mut files: Vec<(String, Vec<u8>)> = names
                .iter()
                .map(|n| (n.to_string(), format!("\u{fd}7zXZ {n}").into_bytes()))
                .collect();
            let dep = names
                .iter()
                .map(|n| match *n {
                    "kernel/fs/fat/vfat.ko.xz" => format!("{n}: kernel/fs/fat/fat.ko.xz\n"),
                    _ => format!("{n}:\n"),
                })
                .collect::<String>();
            files.push(("modules.dep".into(), dep.into_bytes()));
            files.push((
                "modules.builtin".into(),
                b"kernel/fs/ext4/ext4.ko\n".to_vec(),
            ));
            files
        }
    }
}

fn kver() -> String {
    e2e_kernel().map_or_else(|| "6.12.9+deb13-amd64".to_string(), |(k, _)| k)
}

/// A disk whose only partition is an ext4 root made from `files` (paths
/// inside the filesystem) and `links` (path, target).
fn root_disk(
    dir: &Path,
    files: &[(String, Vec<u8>)],
    links: &[(&str, &str)],
) -> (PathBuf, PartExtent) {
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
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let fs = disk::make_ext4_image(dir, "root.ext4", 16 + bytes / (1 << 20) * 2, &root, UUID);
    disk::make_linux_disk(dir, &fs)
}

fn source(part: PartExtent) -> EntrySource {
    EntrySource::Ext4 {
        partition: ByteRange {
            offset: part.offset,
            len: part.len,
        },
        linux: "/boot/vmlinuz".into(),
        initrd: vec![],
    }
}

fn wanted(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn under(prefix: &str, tree: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    tree.iter()
        .map(|(p, b)| (format!("{prefix}/{p}"), b.clone()))
        .collect()
}

#[test]
fn loop_and_ntfs3_are_carried_as_they_are_from_the_kernels_own_tree() {
    let dir = tempfile::tempdir().unwrap();
    let kver = kver();
    let tree = module_tree(&kver);
    let (disk_path, part) = root_disk(
        dir.path(),
        &under(&format!("/lib/modules/{kver}"), &tree),
        &[],
    );
    let (mut file, len) = disk::open_with_len(&disk_path);
    let found = find_image_modules(
        &mut file,
        len,
        &source(part),
        Some(&kver),
        &wanted(&["loop", "ntfs3"]),
    )
    .unwrap();
    assert_eq!(found.kver, kver);
    assert_eq!(found.partition, 1);
    assert_eq!(found.dir, format!("/lib/modules/{kver}"));
    assert_eq!(found.names(), ["loop", "ntfs3"]);
    assert_eq!(found.files[0].file_name, "loop.ko.xz");
    let original = |rel: &str| tree.iter().find(|(p, _)| p == rel).unwrap().1.clone();
    assert_eq!(
        found.files[0].bytes,
        original("kernel/drivers/block/loop.ko.xz")
    );
    assert_eq!(
        found.files[1].bytes,
        original("kernel/fs/ntfs3/ntfs3.ko.xz")
    );
    assert!(found.builtin.is_empty());
}

#[test]
fn dependencies_come_first_and_a_merged_usr_tree_is_found_through_its_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let kver = kver();
    let tree = module_tree(&kver);
    let (disk_path, part) = root_disk(
        dir.path(),
        &under(&format!("/usr/lib/modules/{kver}"), &tree),
        &[("/lib", "usr/lib")],
    );
    let (mut file, len) = disk::open_with_len(&disk_path);
    let found = find_image_modules(
        &mut file,
        len,
        &source(part),
        Some(&kver),
        &wanted(&["loop", "vfat"]),
    )
    .unwrap();
    assert_eq!(found.names(), ["loop", "fat", "vfat"]);
    assert_eq!(found.files[1].file_name, "fat.ko.xz");
}

#[test]
fn a_tree_for_another_kernel_is_not_used_and_the_reason_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let kver = kver();
    let tree = module_tree(&kver);
    let (disk_path, part) = root_disk(
        dir.path(),
        &under(&format!("/lib/modules/{kver}"), &tree),
        &[],
    );
    let (mut file, len) = disk::open_with_len(&disk_path);
    let why = find_image_modules(
        &mut file,
        len,
        &source(part),
        Some("6.1.0-99-amd64"),
        &wanted(&["loop"]),
    )
    .unwrap_err();
    assert!(
        why.contains(&format!("holds {kver} but not 6.1.0-99-amd64"))
            && why.contains("exact same kernel"),
        "{why}"
    );
}

#[test]
fn an_image_without_lib_modules_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (disk_path, part) = root_disk(
        dir.path(),
        &[("/etc/os-release".into(), b"ID=x\n".to_vec())],
        &[],
    );
    let (mut file, len) = disk::open_with_len(&disk_path);
    let why = find_image_modules(
        &mut file,
        len,
        &source(part),
        Some("6.12.1"),
        &wanted(&["loop"]),
    )
    .unwrap_err();
    assert!(why.contains("holds /lib/modules/6.12.1"), "{why}");
}

#[test]
fn modules_over_the_size_cap_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![0x5au8; MAX_CARRIED_BYTES as usize + 1];
    let (disk_path, part) = root_disk(
        dir.path(),
        &[
            (
                "/lib/modules/6.12.1/modules.dep".into(),
                b"kernel/loop.ko:\n".to_vec(),
            ),
            ("/lib/modules/6.12.1/kernel/loop.ko".into(), big),
        ],
        &[],
    );
    let (mut file, len) = disk::open_with_len(&disk_path);
    let why = find_image_modules(
        &mut file,
        len,
        &source(part),
        Some("6.12.1"),
        &wanted(&["loop"]),
    )
    .unwrap_err();
    assert!(why.contains("more than 16 MiB"), "{why}");
}

/// A newc archive (made by GNU cpio) holding `files`, as a distro's
/// initramfs lists its modules.
fn initramfs(dir: &Path, files: &[(&str, &[u8])]) -> Vec<u8> {
    let tree = dir.join("initramfs");
    let mut names = String::new();
    for (path, bytes) in files {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
        names.push_str(path);
        names.push('\n');
    }
    let mut child = std::process::Command::new(disk::tool("cpio"))
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
        .write_all(names.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// `vhdboot inspect --raw` on a Debian-style root whose initramfs has
/// neither loop nor ntfs3 (only modules.builtin), with or without them in
/// the root's /lib/modules/<version>.
fn inspect_without_initramfs_modules(with_tree: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let kver = "6.12.1";
    let initrd = initramfs(
        dir.path(),
        &[(
            "lib/modules/6.12.1/modules.builtin",
            b"kernel/fs/ext4/ext4.ko\n",
        )],
    );
    let mut files = vec![
        (
            "/etc/os-release".to_string(),
            b"PRETTY_NAME=\"Carry\"\n".to_vec(),
        ),
        (
            format!("/boot/vmlinuz-{kver}"),
            support::uki::fake_bzimage(8192),
        ),
        (format!("/boot/initrd.img-{kver}"), initrd),
    ];
    if with_tree {
        files.extend(under(
            &format!("/lib/modules/{kver}"),
            &[
                (
                    "modules.dep".into(),
                    b"kernel/drivers/block/loop.ko.xz:\nkernel/fs/ntfs3/ntfs3.ko.xz:\n".to_vec(),
                ),
                ("kernel/drivers/block/loop.ko.xz".into(), b"loop".to_vec()),
                ("kernel/fs/ntfs3/ntfs3.ko.xz".into(), b"ntfs3".to_vec()),
            ],
        ));
    }
    let (disk_path, _) = root_disk(dir.path(), &files, &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(["inspect", "--raw"])
        .arg(&disk_path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn inspect_finds_no_fault_when_the_image_can_carry_the_modules() {
    let text = inspect_without_initramfs_modules(true);
    assert!(text.contains("Carry"), "{text}");
    assert!(!text.contains("no loop or ntfs3 modules"), "{text}");
}

#[test]
fn inspect_refuses_when_neither_the_initramfs_nor_the_image_has_them() {
    let text = inspect_without_initramfs_modules(false);
    assert!(
        text.contains("has no loop or ntfs3 modules for kernel 6.12.1")
            && text.contains("could not carry them from the image either"),
        "{text}"
    );
}
