//! The NTFS dirty flag, read by `image::ntfs` from volumes made by mkntfs,
//! with ntfs-3g's tools as the peer: ntfsinfo must agree with the flag our
//! parser finds, and ntfsfix -d must clear what we see as dirty. The same
//! for `$LogFile`'s restart area (ntfsfix resets the journal), the boot
//! sector's size, and exFAT's VolumeDirty on a mkfs.exfat volume.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::fs::File;
use std::path::Path;
use std::process::Command;
use support::disk::{poke, run, tool};
use vhdboot::image::exfat::ExfatBoot;
use vhdboot::image::ntfs::{LogFileState, VOLUME_IS_DIRTY, read_logfile_state, read_volume_info};

fn make_ntfs(dir: &Path) -> std::path::PathBuf {
    let img = dir.join("ntfs.img");
    File::create(&img).unwrap().set_len(32 << 20).unwrap();
    run(Command::new(tool("mkntfs"))
        .args(["-Q", "-F", "-q", "-L", "Data"])
        .arg(&img));
    img
}

/// The volume flags as `ntfsinfo -f -m` prints them (`-f`, since ntfs-3g
/// refuses to open a dirty volume otherwise).
fn ntfsinfo_flags(img: &Path) -> String {
    let out = run(Command::new(tool("ntfsinfo")).args(["-f", "-m"]).arg(img));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Volume Flags: "))
        .unwrap_or_else(|| panic!("ntfsinfo -m printed no volume flags: {text}"))
        .to_string()
}

/// Sets the flags word in `$Volume` and in its `$MFTMirr` copy (ntfs-3g
/// refuses a volume whose mirror differs), at the offsets our parser found.
fn set_flags(img: &Path, flags: u16) {
    let (boot, info) = read_volume_info(&mut File::open(img).unwrap()).unwrap();
    for base in [boot.record_offset(3), boot.mirror_record_offset(3)] {
        poke(
            img,
            base.unwrap() + info.flags_offset as u64,
            &flags.to_le_bytes(),
        );
    }
}

#[test]
fn fresh_mkntfs_volume_is_clean() {
    let t = tempfile::tempdir().unwrap();
    let img = make_ntfs(t.path());
    let (boot, info) = read_volume_info(&mut File::open(&img).unwrap()).unwrap();
    assert_eq!((info.major, info.minor), (3, 1));
    assert!(!info.is_dirty());
    assert_eq!(boot.record_size, 1024);
    assert_eq!(ntfsinfo_flags(&img), "0x0000");
}

#[test]
fn dirty_flag_set_at_our_offsets_is_what_ntfsinfo_reports() {
    let t = tempfile::tempdir().unwrap();
    let img = make_ntfs(t.path());
    set_flags(&img, VOLUME_IS_DIRTY);
    let (_, info) = read_volume_info(&mut File::open(&img).unwrap()).unwrap();
    assert!(info.is_dirty());
    assert_eq!(ntfsinfo_flags(&img), "0x0001 DIRTY");
    // Without force, ntfs-3g refuses it as dirty, as ntfs3 refuses a
    // read-write mount.
    let refused = Command::new(tool("ntfsinfo"))
        .arg("-m")
        .arg(&img)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("scheduled for check"), "{err}");

    // ntfs-3g's own repair clears it, and the parser sees that too.
    run(Command::new(tool("ntfsfix")).arg("-d").arg(&img));
    let (_, info) = read_volume_info(&mut File::open(&img).unwrap()).unwrap();
    assert!(!info.is_dirty(), "flags {:#06x}", info.flags);
    assert_eq!(ntfsinfo_flags(&img), format!("{:#06x}", info.flags));
}

#[test]
fn an_exfat_volume_is_not_read_as_ntfs() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("exfat.img");
    File::create(&img).unwrap().set_len(8 << 20).unwrap();
    run(Command::new(tool("mkfs.exfat")).arg(&img));
    assert!(read_volume_info(&mut File::open(&img).unwrap()).is_err());
}

fn logfile_state(img: &Path) -> LogFileState {
    read_logfile_state(&mut File::open(img).unwrap()).unwrap()
}

#[test]
fn an_unclean_journal_is_seen_and_ntfsfix_resets_it() {
    let t = tempfile::tempdir().unwrap();
    let img = make_ntfs(t.path());
    // mkntfs leaves the log reset (0xFF): nothing to replay.
    assert_eq!(logfile_state(&img), LogFileState::Empty);
    let writer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/ntfs-volume-flags");
    run(Command::new(writer).arg(&img).arg("0").arg("--unclean-log"));
    assert_eq!(logfile_state(&img), LogFileState::Unclean);
    // ntfs-3g's repair empties the journal, as Windows does after a replay.
    run(Command::new(tool("ntfsfix")).arg(&img));
    assert_ne!(logfile_state(&img), LogFileState::Unclean);
}

#[test]
fn mkntfs_sizes_the_volume_to_its_device_and_a_smaller_one_is_too_small() {
    let t = tempfile::tempdir().unwrap();
    let img = make_ntfs(t.path());
    let (boot, _) = read_volume_info(&mut File::open(&img).unwrap()).unwrap();
    // mkntfs keeps the last sector for the backup boot sector.
    assert_eq!(boot.required_bytes(), Some(32 << 20));
    assert!(!boot.larger_than(32 << 20));
    assert!(boot.larger_than((32 << 20) - 4096));
}

#[test]
fn exfat_volume_dirty_is_bit_one_of_what_mkfs_exfat_wrote() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("exfat.img");
    File::create(&img).unwrap().set_len(8 << 20).unwrap();
    run(Command::new(tool("mkfs.exfat")).arg(&img));
    let sector = |img: &Path| {
        let mut s = [0u8; 512];
        std::io::Read::read_exact(&mut File::open(img).unwrap(), &mut s).unwrap();
        ExfatBoot::parse(&s).unwrap()
    };
    let boot = sector(&img);
    assert!(!boot.is_dirty());
    assert_eq!(
        boot.volume_sectors * u64::from(boot.bytes_per_sector),
        8 << 20
    );
    poke(&img, 106, &(boot.volume_flags | 2).to_le_bytes());
    assert!(sector(&img).is_dirty());
}
