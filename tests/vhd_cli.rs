//! `vhdboot raw2vhd` and `vhdboot vhd info`, run as the built binary over
//! files made in temp dirs, with qemu-img as the compatibility peer.

// The helpers below are test code too; clippy.toml's test allowances only
// cover `#[test]` functions themselves.
#![expect(
    clippy::unwrap_used,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::disk::{self, MIB};

fn vhdboot(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(args)
        .arg(file)
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

/// `qemu-img info` with the format named: qemu 7.2 only probes for a VHD
/// cookie at offset 0, which fixed VHDs do not have, so unnamed it says raw.
fn qemu_info(file: &Path) -> serde_json::Value {
    let out = disk::run(
        Command::new(disk::tool("qemu-img"))
            .args(["info", "-f", "vpc", "--output=json"])
            .arg(file),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn raw_file(dir: &Path, size: u64) -> std::path::PathBuf {
    let p = dir.join("disk.img");
    disk::make_blank(&p, size);
    // Some non-zero data at both ends, to see it survives untouched.
    disk::poke(&p, 0, b"start of the disk");
    disk::poke(&p, size - 17, b"end of the disk!!");
    p
}

#[test]
fn raw2vhd_appends_a_footer_qemu_img_reads() {
    let dir = tempfile::tempdir().unwrap();
    let size = 64 * MIB;
    let p = raw_file(dir.path(), size);
    let before = std::fs::read(&p).unwrap();
    let out = vhdboot(&["raw2vhd"], &p);
    assert!(out.status.success(), "{}", text(&out));
    let after = std::fs::read(&p).unwrap();
    assert_eq!(after.len() as u64, size + 512);
    assert!(
        after[..size as usize] == before[..],
        "the disk data changed"
    );
    let info = qemu_info(&p);
    assert_eq!(info["format"], "vpc");
    assert_eq!(info["virtual-size"], size);
}

#[test]
fn raw2vhd_twice_writes_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw_file(dir.path(), 8 * MIB);
    assert!(vhdboot(&["raw2vhd"], &p).status.success());
    let once = std::fs::read(&p).unwrap();
    let out = vhdboot(&["raw2vhd"], &p);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("already a fixed VHD"), "{}", text(&out));
    assert!(std::fs::read(&p).unwrap() == once, "the file changed");
}

#[test]
fn raw2vhd_refuses_a_size_not_multiple_of_512() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("odd.img");
    disk::make_blank(&p, 1000 * 1000);
    let out = vhdboot(&["raw2vhd"], &p);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("1000000 bytes"), "{msg}");
    assert!(msg.contains("truncate -s 1000448"), "{msg}");
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 1000 * 1000);
}

#[test]
fn raw2vhd_after_truncate_grow_appends_a_fresh_footer() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw_file(dir.path(), 8 * MIB);
    assert!(vhdboot(&["raw2vhd"], &p).status.success());
    let grown = 12 * MIB;
    disk::run(
        Command::new("truncate")
            .arg("-s")
            .arg(grown.to_string())
            .arg(&p),
    );
    let out = vhdboot(&["raw2vhd"], &p);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(
        msg.contains(&format!("older VHD footer lies at byte {}", 8 * MIB)),
        "{msg}"
    );
    assert_eq!(std::fs::metadata(&p).unwrap().len(), grown + 512);
    assert_eq!(qemu_info(&p)["virtual-size"], grown);
}

/// ntfs-3g makes `truncate`'s growth a hole (the file turns sparse), and
/// vhdboot refuses sparse images; raw2vhd fills exactly the grown part
/// with zeros and leaves the old data and footer as they were.
#[test]
fn raw2vhd_fills_a_grown_tail_that_is_a_hole() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("disk.img");
    // Fully written data, so that only the growth can be a hole.
    let data: Vec<u8> = (0..8 * MIB).map(|i| (i % 251) as u8 | 1).collect();
    std::fs::write(&p, &data).unwrap();
    assert!(vhdboot(&["raw2vhd"], &p).status.success());
    let old = std::fs::read(&p).unwrap();
    let grown = 12 * MIB;
    disk::run(
        Command::new("truncate")
            .arg("-s")
            .arg(grown.to_string())
            .arg(&p),
    );
    let meta = std::fs::metadata(&p).unwrap();
    if meta.blocks() * 512 >= meta.len() {
        eprintln!("this filesystem allocated the growth itself; nothing to fill");
        return;
    }
    let out = vhdboot(&["raw2vhd", "--dry-run"], &p);
    assert!(
        text(&out).contains("would write zeros into bytes 8389120..12582912"),
        "{}",
        text(&out)
    );
    assert!(
        std::fs::metadata(&p).unwrap().blocks() * 512 < grown,
        "the dry run wrote"
    );
    let out = vhdboot(&["raw2vhd"], &p);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("was a hole; wrote zeros into it"), "{msg}");
    let meta = std::fs::metadata(&p).unwrap();
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "still sparse: {} blocks",
        meta.blocks()
    );
    let after = std::fs::read(&p).unwrap();
    assert!(
        after[..old.len()] == old[..],
        "the old data or footer changed"
    );
    assert!(after[old.len()..grown as usize].iter().all(|&b| b == 0));
    assert_eq!(qemu_info(&p)["virtual-size"], grown);
}

/// Holes inside the old data are the user's: raw2vhd fills only the grown
/// part and names the holes it left.
#[test]
fn raw2vhd_leaves_holes_before_the_old_footer_and_says_so() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    // Data at both ends, a hole between (on filesystems that make one).
    let p = raw_file(dir.path(), 8 * MIB);
    assert!(vhdboot(&["raw2vhd"], &p).status.success());
    let old = std::fs::read(&p).unwrap();
    disk::run(
        Command::new("truncate")
            .arg("-s")
            .arg((12 * MIB).to_string())
            .arg(&p),
    );
    if std::fs::metadata(&p).unwrap().blocks() * 512 >= 12 * MIB {
        eprintln!("this filesystem makes no holes; nothing to check");
        return;
    }
    let out = vhdboot(&["raw2vhd"], &p);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("was a hole; wrote zeros into it"), "{msg}");
    assert!(
        msg.contains("still has holes before the grown part"),
        "{msg}"
    );
    let after = std::fs::read(&p).unwrap();
    assert!(
        after[..old.len()] == old[..],
        "the old data or footer changed"
    );
    let meta = std::fs::metadata(&p).unwrap();
    assert!(
        meta.blocks() * 512 < meta.len(),
        "the hole in the old data was filled"
    );
}

#[test]
fn raw2vhd_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw_file(dir.path(), 8 * MIB);
    let before = std::fs::read(&p).unwrap();
    let out = vhdboot(&["raw2vhd", "--dry-run"], &p);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("would append"), "{msg}");
    assert!(msg.contains(&format!("{} bytes", 8 * MIB)), "{msg}");
    assert!(
        std::fs::read(&p).unwrap() == before,
        "dry run changed the file"
    );
}

#[test]
fn raw2vhd_refuses_a_dynamic_vhd() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dyn.vhd");
    disk::run(
        Command::new(disk::tool("qemu-img"))
            .args(["create", "-q", "-f", "vpc"])
            .arg(&p)
            .arg("64M"),
    );
    let before = std::fs::read(&p).unwrap();
    let out = vhdboot(&["raw2vhd"], &p);
    assert!(!out.status.success());
    assert!(text(&out).contains("dynamic VHD"), "{}", text(&out));
    assert!(std::fs::read(&p).unwrap() == before);
}

#[test]
fn vhd_info_reads_a_fixed_vhd_made_by_qemu_img() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fixed.vhd");
    disk::run(
        Command::new(disk::tool("qemu-img"))
            .args(["create", "-q", "-f", "vpc", "-o", "subformat=fixed"])
            .arg(&p)
            .arg("64M"),
    );
    let qemu_size = qemu_info(&p)["virtual-size"].as_u64().unwrap();
    let out = vhdboot(&["vhd", "info", "--json"], &p);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"]["FixedVhd"]["data_size"], qemu_size);
    assert_eq!(v["bootable"], true);
    assert_eq!(v["footer"]["creator_app"], "qemu");
    assert_eq!(v["footer"]["geometry"]["cylinders"], 964);
    assert_eq!(v["footer"]["geometry"]["heads"], 8);
    assert_eq!(v["footer"]["geometry"]["sectors_per_track"], 17);

    let human = vhdboot(&["vhd", "info"], &p);
    assert!(human.status.success());
    let msg = text(&human);
    assert!(msg.contains("fixed VHD"), "{msg}");
    assert!(msg.contains("bootable:      yes"), "{msg}");
}

#[test]
fn vhd_info_reports_a_dynamic_vhd_as_not_bootable() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dyn.vhd");
    disk::run(
        Command::new(disk::tool("qemu-img"))
            .args(["create", "-q", "-f", "vpc"])
            .arg(&p)
            .arg("64M"),
    );
    let out = vhdboot(&["vhd", "info"], &p);
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("dynamic VHD"), "{msg}");
    assert!(
        msg.contains("bootable:      no: a dynamic VHD cannot sit on a loop device"),
        "{msg}"
    );
    assert!(
        msg.contains("qemu-img convert -O vpc -o subformat=fixed"),
        "{msg}"
    );

    let json = vhdboot(&["vhd", "info", "--json"], &p);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["kind"], "DynamicVhd");
    assert_eq!(v["bootable"], false);
}

#[test]
fn vhd_info_on_a_raw_file_suggests_raw2vhd() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw_file(dir.path(), MIB);
    let out = vhdboot(&["vhd", "info"], &p);
    assert!(!out.status.success());
    assert!(text(&out).contains("vhdboot raw2vhd"), "{}", text(&out));
}

#[test]
fn vhd_info_reports_a_truncated_fixed_vhd_with_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw_file(dir.path(), 2 * MIB);
    assert!(vhdboot(&["raw2vhd"], &p).status.success());
    // Keep the first half of the data and the footer, as a copy cut short
    // and then "repaired" by hand might.
    let bytes = std::fs::read(&p).unwrap();
    let mut cut = bytes[..MIB as usize].to_vec();
    cut.extend_from_slice(&bytes[bytes.len() - 512..]);
    std::fs::write(&p, &cut).unwrap();
    let out = vhdboot(&["vhd", "info"], &p);
    let msg = text(&out);
    assert!(!out.status.success());
    assert!(msg.contains(&(2 * MIB + 512).to_string()), "{msg}");
    assert!(msg.contains(&(MIB + 512).to_string()), "{msg}");
}

#[test]
fn vhd_info_advises_truncate_only_when_it_grows_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = raw_file(dir.path(), 2 * MIB);
    assert!(vhdboot(&["raw2vhd"], &p).status.success());
    let bytes = std::fs::read(&p).unwrap();
    let footer = &bytes[bytes.len() - 512..];

    // Cut short: growing back to the footer's size loses nothing more.
    let mut cut = bytes[..MIB as usize].to_vec();
    cut.extend_from_slice(footer);
    std::fs::write(&p, &cut).unwrap();
    let msg = text(&vhdboot(&["vhd", "info"], &p));
    assert!(
        msg.contains(&format!("truncate -s {}", 2 * MIB + 512)),
        "{msg}"
    );

    // Grown (here: a second copy of the data before the footer): a
    // truncate to the footer's size would cut off real bytes.
    let mut grown = bytes[..bytes.len() - 512].to_vec();
    grown.extend_from_slice(&bytes);
    std::fs::write(&p, &grown).unwrap();
    for args in [&["vhd", "info"][..], &["raw2vhd"][..]] {
        let out = vhdboot(args, &p);
        let msg = text(&out);
        assert!(!out.status.success(), "{msg}");
        assert!(!msg.contains("truncate -s"), "{args:?}: {msg}");
    }
    assert_eq!(std::fs::read(&p).unwrap(), grown);
}

/// A qemu-img dynamic VHD whose end footer is gone: `vhd info` still
/// names it dynamic from the copy at its start.
fn damaged_dynamic(dir: &Path, tail: &[u8]) -> std::path::PathBuf {
    let p = dir.join("dyn.vhd");
    disk::run(
        Command::new(disk::tool("qemu-img"))
            .args(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic"])
            .arg(&p)
            .arg("64M"),
    );
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 512..].fill(0);
    bytes.extend_from_slice(tail);
    std::fs::write(&p, &bytes).unwrap();
    p
}

#[test]
fn raw2vhd_refuses_a_damaged_dynamic_vhd_that_vhd_info_recognises() {
    for tail in [&[][..], &[0u8; 100][..]] {
        let dir = tempfile::tempdir().unwrap();
        let p = damaged_dynamic(dir.path(), tail);
        let info = text(&vhdboot(&["vhd", "info"], &p));
        assert!(info.contains("dynamic VHD"), "{info}");
        let before = std::fs::read(&p).unwrap();
        let out = vhdboot(&["raw2vhd"], &p);
        let msg = text(&out);
        assert!(!out.status.success(), "{msg}");
        assert!(msg.contains("is a damaged dynamic VHD"), "{msg}");
        assert!(msg.contains("vhdboot convert"), "{msg}");
        assert!(!msg.contains("truncate -s"), "{msg}");
        assert!(std::fs::read(&p).unwrap() == before, "raw2vhd wrote");
    }
}
