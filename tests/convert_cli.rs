//! `vhdboot convert`: dynamic VHDs made by qemu-img and qemu-io, converted,
//! and compared by `qemu-img compare`; hostile dynamic VHDs built here
//! byte by byte, each refused with its own reason; and the rules about IN
//! and OUT.
#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::disk::{self, MIB};

fn convert(args: &[&Path], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .arg("convert")
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A qemu-img dynamic VHD of `size_mib` with known data written by
/// qemu-io at a few places, leaving most blocks unallocated.
fn qemu_dynamic(dir: &Path, size_mib: u64) -> PathBuf {
    let path = dir.join("dynamic.vhd");
    disk::run(
        Command::new(disk::tool("qemu-img"))
            .args(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic"])
            .arg(&path)
            .arg(format!("{size_mib}M")),
    );
    for (pattern, offset, len) in [
        ("0x11", 0, "64k"),
        ("0x22", 3 * MIB + 512, "4k"),
        ("0x33", 9 * MIB - 4096, "1M"),
    ] {
        disk::run(
            Command::new(disk::tool("qemu-io"))
                .args(["-f", "vpc", "-c"])
                .arg(format!("write -P {pattern} {offset} {len}"))
                .arg(&path),
        );
    }
    path
}

fn qemu_compare(a: &Path, b: &Path) -> Output {
    Command::new(disk::tool("qemu-img"))
        .args(["compare", "-f", "vpc", "-F", "vpc"])
        .args([a, b])
        .output()
        .unwrap()
}

fn qemu_info(file: &Path) -> serde_json::Value {
    let out = disk::run(
        Command::new(disk::tool("qemu-img"))
            .args(["info", "-f", "vpc", "--output=json"])
            .arg(file),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn convert_matches_qemu_img_compare_and_is_a_bootable_fixed_vhd() {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_dynamic(dir.path(), 16);
    let before = fs::read(&input).unwrap();
    let output = dir.path().join("fixed.vhd");
    let out = convert(&[&input, &output], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let cmp = qemu_compare(&input, &output);
    assert!(cmp.status.success(), "qemu-img compare: {}", text(&cmp));
    assert!(String::from_utf8_lossy(&cmp.stdout).contains("Images are identical"));
    assert_eq!(fs::read(&input).unwrap(), before, "IN must be unchanged");
    // qemu-img's dynamic VHD holds 16 MiB rounded to its CHS geometry.
    let virtual_size = qemu_info(&input)["virtual-size"].as_u64().unwrap();
    let info = qemu_info(&output);
    assert_eq!(info["virtual-size"].as_u64().unwrap(), virtual_size);
    assert_eq!(fs::metadata(&output).unwrap().len(), virtual_size + 512);
    // Unallocated blocks are holes: far less is allocated than the size.
    let blocks = fs::metadata(&output).unwrap().blocks() * 512;
    assert!(blocks < 8 * MIB, "{blocks} bytes allocated");
    let info = Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(["vhd", "info"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(text(&info).contains("fixed VHD"), "{}", text(&info));
    assert!(
        text(&info).contains("bootable:      yes"),
        "{}",
        text(&info)
    );
    // No temporary file is left beside OUT.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn preallocate_writes_every_byte_and_still_matches_qemu_img_compare() {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_dynamic(dir.path(), 16);
    let output = dir.path().join("fixed.vhd");
    let out = convert(&[&input, &output], &["--preallocate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("it is fully allocated: it can boot where it is written"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("sparse"), "{}", text(&out));
    let cmp = qemu_compare(&input, &output);
    assert!(cmp.status.success(), "qemu-img compare: {}", text(&cmp));
    // No holes: the filesystem holds at least every byte of the file.
    let meta = fs::metadata(&output).unwrap();
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "{} bytes allocated of {}",
        meta.blocks() * 512,
        meta.len()
    );
    let info = Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(["vhd", "info"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        text(&info).contains("bootable:      yes"),
        "{}",
        text(&info)
    );
}

#[test]
fn convert_help_says_which_output_is_the_default_and_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(["convert", "--help"])
        .output()
        .unwrap();
    let help = text(&out);
    assert!(help.contains("--preallocate"), "{help}");
    assert!(help.contains("The default is a sparse OUT"), "{help}");
    assert!(help.contains("cp --sparse=never"), "{help}");
}

#[test]
fn convert_without_a_terminal_prints_plain_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_dynamic(dir.path(), 16);
    let out = convert(&[&input, &dir.path().join("fixed.vhd")], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dynamic.vhd -> "), "{err}");
    assert!(err.contains("convert: 100% ("), "{err}");
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn convert_refuses_an_existing_out_unless_forced_and_never_in() {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_dynamic(dir.path(), 16);
    let output = dir.path().join("fixed.vhd");
    fs::write(&output, b"keep me").unwrap();
    let out = convert(&[&input, &output], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("exists; nothing was written"),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(&output).unwrap(), b"keep me");

    let out = convert(&[&input, &output], &["--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(qemu_compare(&input, &output).status.success());

    let link = dir.path().join("same.vhd");
    fs::hard_link(&input, &link).unwrap();
    let before = fs::read(&input).unwrap();
    let out = convert(&[&input, &link], &["--force"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("never writes over its input"),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read(&input).unwrap(), before);
}

#[test]
fn convert_refuses_fixed_and_differencing_images_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let base = qemu_dynamic(dir.path(), 16);
    let child = dir.path().join("child.vhd");
    // qemu-img cannot create a differencing VHD; a dynamic one with the
    // footer's type changed to 4 (and the checksum fixed) stands in.
    fs::copy(&base, &child).unwrap();
    set_disk_type(&child, 4);
    let out = convert(&[&child, &dir.path().join("o.vhd")], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("differencing VHD: part of its data lives in a parent image"),
        "{}",
        text(&out)
    );

    let fixed = dir.path().join("fixed.vhd");
    assert!(convert(&[&base, &fixed], &[]).status.success());
    let out = convert(&[&fixed, &dir.path().join("o2.vhd")], &[]);
    assert!(text(&out).contains("fixed VHD already"), "{}", text(&out));
}

/// Rewrites the disk type in both footer copies of a dynamic VHD.
fn set_disk_type(path: &Path, disk_type: u32) {
    let mut bytes = fs::read(path).unwrap();
    let n = bytes.len();
    for at in [0, n - 512] {
        let f = &mut bytes[at..at + 512];
        f[60..64].copy_from_slice(&disk_type.to_be_bytes());
        f[64..68].copy_from_slice(&[0; 4]);
        let sum = !f.iter().fold(0u32, |s, &x| s.wrapping_add(u32::from(x)));
        f[64..68].copy_from_slice(&sum.to_be_bytes());
    }
    fs::write(path, bytes).unwrap();
}

/// The dynamic header of a qemu-img dynamic VHD: where it lies, and a
/// setter that keeps its checksum right.
fn edit_header(path: &Path, edit: impl Fn(&mut [u8])) {
    let mut bytes = fs::read(path).unwrap();
    let at = u64::from_be_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let h = &mut bytes[at..at + 1024];
    edit(h);
    h[36..40].copy_from_slice(&[0; 4]);
    let sum = !h.iter().fold(0u32, |s, &x| s.wrapping_add(u32::from(x)));
    h[36..40].copy_from_slice(&sum.to_be_bytes());
    fs::write(path, bytes).unwrap();
}

fn refused(name: &str, hostile: impl Fn(&Path), expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_dynamic(dir.path(), 16);
    hostile(&input);
    let output = dir.path().join("out.vhd");
    let out = convert(&[&input, &output], &[]);
    assert!(!out.status.success(), "{name}: converted");
    assert!(text(&out).contains(expect), "{name}: {}", text(&out));
    assert!(!output.exists(), "{name}: OUT was left behind");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "{name}");
}

#[test]
fn hostile_dynamic_vhds_are_refused_each_with_its_reason() {
    refused(
        "BAT entry past the end",
        |p| {
            let bytes = fs::read(p).unwrap();
            let at = u64::from_be_bytes(bytes[16..24].try_into().unwrap()) as usize;
            let table = u64::from_be_bytes(bytes[at + 16..at + 24].try_into().unwrap());
            disk::poke(p, table, &0x00ff_0000u32.to_be_bytes());
        },
        "block 0's entry points to byte 8556380160, but the block ends past the end",
    );
    refused(
        "huge block size",
        |p| {
            edit_header(p, |h| {
                h[32..36].copy_from_slice(&(1u32 << 31).to_be_bytes())
            })
        },
        "block size of 2147483648 bytes; only powers of two from 512 bytes to 32 MiB",
    );
    refused(
        "block size not a power of two",
        |p| edit_header(p, |h| h[32..36].copy_from_slice(&3000u32.to_be_bytes())),
        "block size of 3000 bytes",
    );
    refused(
        "table offset that overflows",
        |p| {
            edit_header(p, |h| {
                h[16..24].copy_from_slice(&(u64::MAX - 2).to_be_bytes())
            })
        },
        "the block allocation table at byte 18446744073709551613 (",
    );
    refused(
        "too few table entries",
        |p| edit_header(p, |h| h[28..32].copy_from_slice(&2u32.to_be_bytes())),
        "the block allocation table has 2 entries, but a",
    );
    refused(
        "max_table_entries of 2^32-1 over 512-byte blocks",
        |p| {
            // Only the entries the disk needs are read (32768 here), and
            // the ones past qemu's table point nowhere useful.
            edit_header(p, |h| {
                h[28..32].copy_from_slice(&u32::MAX.to_be_bytes());
                h[32..36].copy_from_slice(&512u32.to_be_bytes());
            })
        },
        "entry points to byte",
    );
    refused(
        "header offset past the end",
        |p| {
            let mut bytes = fs::read(p).unwrap();
            let n = bytes.len();
            for at in [0, n - 512] {
                let f = &mut bytes[at..at + 512];
                f[16..24].copy_from_slice(&(1u64 << 40).to_be_bytes());
                f[64..68].copy_from_slice(&[0; 4]);
                let sum = !f.iter().fold(0u32, |s, &x| s.wrapping_add(u32::from(x)));
                f[64..68].copy_from_slice(&sum.to_be_bytes());
            }
            fs::write(p, bytes).unwrap();
        },
        "dynamic disk header at byte 1099511627776 lies past the end",
    );
    refused(
        "damaged header",
        |p| {
            let bytes = fs::read(p).unwrap();
            let at = u64::from_be_bytes(bytes[16..24].try_into().unwrap());
            disk::flip(p, at + 200);
        },
        "the dynamic disk header's checksum is wrong",
    );
}

#[test]
fn convert_refuses_when_outs_filesystem_is_too_small() {
    let dir = tempfile::tempdir().unwrap();
    let input = qemu_dynamic(dir.path(), 16);
    let small = dir.path().join("small");
    fs::create_dir(&small).unwrap();
    // Three 2 MiB blocks hold data; a 4 MiB tmpfs cannot take them.
    disk::run(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4M", "tmpfs"])
            .arg(&small),
    );
    let out = convert(&[&input, &small.join("fixed.vhd")], &[]);
    let listed = fs::read_dir(&small).unwrap().count();
    disk::run(Command::new("umount").arg(&small));
    assert!(!out.status.success());
    assert!(text(&out).contains("4 MiB free, but"), "{}", text(&out));
    assert!(
        text(&out).contains("needs 6.00 MiB (6 MiB of data"),
        "{}",
        text(&out)
    );
    assert_eq!(listed, 0, "nothing is written");
}
