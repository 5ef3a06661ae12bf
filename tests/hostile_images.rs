//! Hostile images (issue 11): each class that made discovery hang or eat
//! gigabytes must end quickly, with its own reason, and without a byte
//! written. The images come from `tests/hostile/make-hostile-images`.
//!
//! Time is checked as a generous kill deadline on the binary, never as a
//! wall-clock assertion; the work itself is checked by counting what
//! `image::inspect` reads, which does not depend on a shared machine's load.
// The helpers below run only in tests, where a failed step should stop the
// test with its message.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "clippy.toml allows these only inside #[test] functions, not in the fixture helpers"
)]

mod support;

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::disk;
use support::uki::{UkiSpec, fake_bzimage, make_uki};
use vhdboot::image::inspect::{
    MAX_BLS_FILES_PER_ESP, MAX_ENTRIES_PER_IMAGE, MAX_UKIS_PER_ESP, inspect,
};
use vhdboot::image::readahead::ReadAhead;
use vhdboot::model::Problem;

/// Past this the binary is killed and the test fails. Each image takes a
/// few milliseconds once bounded; before, each ran for minutes or forever.
const DEADLINE: Duration = Duration::from_secs(60);

/// Each hostile image and the words its reason must hold.
const CLASSES: &[(&str, &str)] = &[
    ("fat-loop.vhd", "its cluster chain loops"),
    ("cross-linked.vhd", "is cross-linked with"),
    (
        "gpt-8192.vhd",
        "8191 more GPT entries repeat the byte range",
    ),
    ("bls-slow.vhd", "initrd lines; vhdboot accepts at most 32"),
    (
        "bls-huge-initrd.vhd",
        "initrd lines; vhdboot accepts at most 32",
    ),
    (
        "bls-initrd-total.vhd",
        "its initrd lines add up to 268435456 bytes, more than the 41943040-byte partition",
    ),
];

/// The hostile images, built once per test run.
fn hostile_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        for tool in ["sfdisk", "mkfs.vfat", "mmd", "mcopy", "objcopy", "qemu-img"] {
            disk::require_tool(tool);
        }
        assert!(
            Path::new(support::uki::STUB).is_file(),
            "{} is missing; run tests/install-deps as root",
            support::uki::STUB
        );
        let dir = tempfile::tempdir().unwrap();
        let generator =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/make-hostile-images");
        let out = Command::new(generator).arg(dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "make-hostile-images failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}

/// Runs the binary, killing it at [`DEADLINE`]. Its output goes to files,
/// not pipes: gpt-8192's partition list alone is more than a pipe holds,
/// and a child blocked on a full pipe would look like a hang.
fn vhdboot_within_deadline(args: &[&str]) -> (String, String) {
    let out = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_vhdboot"))
        .args(args)
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > DEADLINE {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("vhdboot {args:?} was still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (
        std::fs::read_to_string(stdout).unwrap(),
        std::fs::read_to_string(stderr).unwrap(),
    )
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inspect_ends_each_hostile_image_with_its_reason_and_writes_nothing() {
    let dir = hostile_dir();
    for (name, reason) in CLASSES {
        let path = dir.join(name);
        let before = sha256(&path);
        let (stdout, stderr) = vhdboot_within_deadline(&["inspect", path.to_str().unwrap()]);
        assert!(
            stdout.contains(reason),
            "{name}: expected {reason:?} in:\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("Bootable: no"),
            "{name} should not boot:\n{stdout}"
        );
        assert_eq!(sha256(&path), before, "{name} changed on disk");
    }
}

#[test]
fn scan_root_lists_every_hostile_image_with_its_reason() {
    let dir = hostile_dir();
    let (stdout, _) = vhdboot_within_deadline(&["scan", "--root", dir.to_str().unwrap()]);
    for (name, reason) in CLASSES {
        let line = stdout
            .lines()
            .position(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} is not listed:\n{stdout}"));
        let block: Vec<&str> = stdout
            .lines()
            .skip(line + 1)
            .take_while(|l| l.starts_with("    "))
            .collect();
        assert!(
            block.iter().any(|l| l.contains(reason)),
            "{name}: expected {reason:?} under it:\n{stdout}"
        );
    }
}

/// A reader that counts what is asked of it: bytes, reads and seeks.
struct Counting<R> {
    inner: R,
    bytes: Rc<Cell<u64>>,
    calls: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.set(self.bytes.get() + n as u64);
        self.calls.set(self.calls.get() + 1);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.calls.set(self.calls.get() + 1);
        self.inner.seek(to)
    }
}

/// What one `inspect` cost, counted below the read-ahead buffer the way
/// `discovery::scan` reads an image.
struct Cost {
    bytes: u64,
    calls: u64,
    file_len: u64,
    entries: usize,
    problems: Vec<Problem>,
}

fn inspect_counting(path: &Path, raw_allowed: bool) -> Cost {
    let file = File::open(path).unwrap();
    let file_len = file.metadata().unwrap().len();
    let bytes = Rc::new(Cell::new(0));
    let calls = Rc::new(Cell::new(0));
    let mut counted = Counting {
        inner: file,
        bytes: bytes.clone(),
        calls: calls.clone(),
    };
    let found = inspect(&mut ReadAhead::new(&mut counted), file_len, raw_allowed);
    Cost {
        bytes: bytes.get(),
        calls: calls.get(),
        file_len,
        entries: found.entries.len(),
        problems: found.problems,
    }
}

/// A normal image: one UKI and one BLS entry with its kernel and initrd.
fn normal_image(dir: &Path) -> PathBuf {
    let uki = make_uki(dir, "debian.efi", &UkiSpec::debian(200_000));
    let conf = dir.join("fedora.conf");
    std::fs::write(
        &conf,
        "title Fedora\nversion 6.8.5\nlinux /vmlinuz\ninitrd /initramfs.img\noptions quiet\n",
    )
    .unwrap();
    let kernel = dir.join("vmlinuz");
    std::fs::write(&kernel, fake_bzimage(50_001)).unwrap();
    let initrd = dir.join("initramfs.img");
    std::fs::write(&initrd, vec![0x66; 4097]).unwrap();
    disk::make_esp_disk(
        dir,
        &[
            ("/EFI/Linux/debian.efi", &uki),
            ("/loader/entries/fedora.conf", &conf),
            ("/vmlinuz", &kernel),
            ("/initramfs.img", &initrd),
        ],
    )
    .0
}

/// Discovery's work stays in proportion to the image: it never reads more
/// than the image holds, nor makes more than a fixed number of reads and
/// seeks, and it keeps no more entries than the caps allow, for normal and
/// hostile images alike. Before the bounds, fat-loop never returned and
/// bls-slow made tens of millions of reads.
#[test]
fn inspect_reads_in_proportion_to_the_image() {
    /// Reads and seeks below the read-ahead buffer on any of these images;
    /// each needs under 200 (gpt-8192 mounts its ESP once, not 8,192 times).
    const MAX_CALLS: u64 = 5_000;
    /// Bytes read from any of these images: two 1 MiB GPT entry arrays,
    /// FAT metadata, directories and one UKI's small sections, with room.
    const MAX_BYTES: u64 = 16 * 1024 * 1024;
    let normal_dir = tempfile::tempdir().unwrap();
    let normal = normal_image(normal_dir.path());
    let cost = inspect_counting(&normal, true);
    assert_eq!(cost.entries, 2, "{:?}", cost.problems);
    assert!(
        cost.bytes <= cost.file_len.min(MAX_BYTES),
        "normal: {} bytes",
        cost.bytes
    );
    assert!(cost.calls <= MAX_CALLS, "normal: {} calls", cost.calls);

    let dir = hostile_dir();
    for (name, _) in CLASSES {
        let cost = inspect_counting(&dir.join(name), false);
        assert!(
            cost.bytes <= cost.file_len.min(MAX_BYTES),
            "{name}: read {} bytes of a {}-byte image",
            cost.bytes,
            cost.file_len
        );
        assert!(cost.calls <= MAX_CALLS, "{name}: {} calls", cost.calls);
        assert!(cost.entries <= MAX_ENTRIES_PER_IMAGE, "{name}");
        assert!(
            cost.problems.len() <= 2 * (MAX_UKIS_PER_ESP + MAX_BLS_FILES_PER_ESP) + 8,
            "{name}: {} problems",
            cost.problems.len()
        );
        println!(
            "{name}: {} bytes in {} reads and seeks, {} entries, {} problems",
            cost.bytes,
            cost.calls,
            cost.entries,
            cost.problems.len()
        );
    }
}
