//! Disk images built with real tools (sfdisk, mkfs.vfat, mtools, qemu-img)
//! in temp dirs. A missing tool fails the test with a clear message rather
//! than skipping it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
pub const LINUX_ROOT_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
pub const XBOOTLDR_TYPE: &str = "BC13C2FF-59E6-4262-A352-B275FD6F7172";
pub const MIB: u64 = 1024 * 1024;

/// One partition for [`make_gpt_disk`].
#[derive(Debug, Clone)]
pub struct PartSpec {
    pub size_mib: u64,
    pub type_guid: &'static str,
    pub name: &'static str,
}

impl PartSpec {
    pub fn esp(size_mib: u64) -> PartSpec {
        PartSpec {
            size_mib,
            type_guid: ESP_TYPE,
            name: "ESP",
        }
    }

    pub fn root(size_mib: u64) -> PartSpec {
        PartSpec {
            size_mib,
            type_guid: LINUX_ROOT_TYPE,
            name: "root",
        }
    }
}

/// A partition as `sfdisk --json` reports it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartExtent {
    pub offset: u64,
    pub len: u64,
}

/// Runs a tool, failing the test with its stderr when it is missing or fails.
pub fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}; install it (tests/install-deps)"));
    assert!(
        out.status.success(),
        "{shown} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `name` with `args`, feeding `stdin` when given, and returns its
/// trimmed standard output; fails the test with its stderr when the tool is
/// missing or fails.
pub fn run_with_input(name: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(tool(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} is needed by this test and could not run: {e}"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    // Dropping stdin here closes it, so the tool sees end of input.
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Fails the test when `tool` is not on PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || ["/sbin", "/usr/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file());
    assert!(
        found,
        "{tool} is not installed; run tests/install-deps as root"
    );
}

/// Finds a tool on PATH or in the sbin dirs (sfdisk and mkfs.vfat live in
/// /usr/sbin, which a plain user's PATH may lack).
pub fn tool(name: &str) -> PathBuf {
    require_tool(name);
    for d in ["/usr/sbin", "/sbin"] {
        let p = Path::new(d).join(name);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// Creates a sparse file of `size` bytes.
pub fn make_blank(path: &Path, size: u64) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
}

/// Makes a raw disk of `size` bytes at `dir/name` with a GPT written by
/// sfdisk, holding `parts` in order (1 MiB aligned).
pub fn make_gpt_disk(dir: &Path, name: &str, size: u64, parts: &[PartSpec]) -> PathBuf {
    let path = dir.join(name);
    make_blank(&path, size);
    let mut script = String::from("label: gpt\n");
    for p in parts {
        script.push_str(&format!(
            "size={}MiB, type={}, name=\"{}\"\n",
            p.size_mib, p.type_guid, p.name
        ));
    }
    let disk = path.to_string_lossy();
    run_with_input(
        "sfdisk",
        &["--quiet", "--no-reread", "--no-tell-kernel", &disk],
        Some(&script),
    );
    path
}

/// The partitions of a disk image, in table order, from `sfdisk --json`.
pub fn partition_extents(disk: &Path) -> Vec<PartExtent> {
    let out = run(Command::new(tool("sfdisk")).arg("--json").arg(disk));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sector = v["partitiontable"]["sectorsize"].as_u64().unwrap_or(512);
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PartExtent {
            offset: p["start"].as_u64().unwrap() * sector,
            len: p["size"].as_u64().unwrap() * sector,
        })
        .collect()
}

/// Makes a FAT32 image of `size_kib` KiB at `dir/name` and copies `files`
/// into it: each is (path inside the FAT, host file). Parent directories
/// are created. FAT32 needs about 33 MiB or more.
pub fn make_fat_image(dir: &Path, name: &str, size_kib: u64, files: &[(&str, &Path)]) -> PathBuf {
    let img = dir.join(name);
    let _ = std::fs::remove_file(&img);
    run(Command::new(tool("mkfs.vfat"))
        .args(["-F", "32", "-n", "ESP", "-C"])
        .arg(&img)
        .arg(size_kib.to_string()));
    let mut made = std::collections::BTreeSet::new();
    for (inner, host) in files {
        let inner = inner.trim_start_matches('/');
        let mut parent = String::new();
        let parts: Vec<&str> = inner.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            parent.push('/');
            parent.push_str(part);
            if made.insert(parent.clone()) {
                run(Command::new(tool("mmd"))
                    .env("MTOOLS_SKIP_CHECK", "1")
                    .arg("-i")
                    .arg(&img)
                    .arg(format!("::{parent}")));
            }
        }
        run(Command::new(tool("mcopy"))
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&img)
            .arg(host)
            .arg(format!("::/{inner}")));
    }
    img
}

/// Writes `src`'s bytes into `disk` at `offset`, like `dd conv=notrunc`.
pub fn write_at(disk: &Path, offset: u64, src: &Path) {
    let bytes = std::fs::read(src).unwrap();
    let mut f = OpenOptions::new().write(true).open(disk).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&bytes).unwrap();
}

/// Overwrites bytes of `disk` at `offset`.
pub fn poke(disk: &Path, offset: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(disk).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// Inverts the byte at `offset`, so it changes whatever it was. Setting a
/// fixed value would leave a byte of a random GUID unchanged one time in
/// 256, and the corruption a test relies on would not happen.
pub fn flip(disk: &Path, offset: u64) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[!b[0]]).unwrap();
}

/// A raw disk with an ESP (64 MiB, FAT32 holding `files`) and a root
/// partition (8 MiB, empty). Returns the disk and the ESP's extent.
pub fn make_esp_disk(dir: &Path, files: &[(&str, &Path)]) -> (PathBuf, PartExtent) {
    let disk = make_gpt_disk(
        dir,
        "disk.img",
        80 * MIB,
        &[PartSpec::esp(64), PartSpec::root(8)],
    );
    let esp = partition_extents(&disk)[0];
    let fat = make_fat_image(dir, "esp.fat", esp.len / 1024, files);
    write_at(&disk, esp.offset, &fat);
    std::fs::remove_file(fat).unwrap();
    (disk, esp)
}

/// Opens a file read-only with its length.
pub fn open_with_len(path: &Path) -> (File, u64) {
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    (f, len)
}

/// CRC-32 (IEEE, reflected), as the GPT header uses; bitwise, for tests.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Rewrites the primary header's entry count and size, with a valid CRC,
/// so only the values themselves are wrong.
pub fn set_primary_entry_array(path: &Path, count: u32, entry_size: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    let h = &mut bytes[512..512 + 92];
    h[80..84].copy_from_slice(&count.to_le_bytes());
    h[84..88].copy_from_slice(&entry_size.to_le_bytes());
    h[16..20].copy_from_slice(&[0; 4]);
    let crc = crc32(h);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// The GPT type of a generic Linux filesystem partition.
pub const LINUX_FS_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// Makes an ext4 filesystem image of `size_mib` MiB at `dir/name`, filled
/// from the files under `tree` by `mkfs.ext4 -d` (no mount), with `uuid`
/// and 4 KiB blocks, as installers make them.
pub fn make_ext4_image(dir: &Path, name: &str, size_mib: u64, tree: &Path, uuid: &str) -> PathBuf {
    let img = dir.join(name);
    make_blank(&img, size_mib * MIB);
    run(Command::new(tool("mkfs.ext4"))
        .args(["-F", "-q", "-b", "4096", "-U", uuid, "-L", "root", "-d"])
        .arg(tree)
        .arg(&img));
    img
}

/// A raw disk with no ESP and one Linux filesystem partition holding the
/// filesystem image `fs` (written at the partition's start). Returns the
/// disk and the partition's extent.
pub fn make_linux_disk(dir: &Path, fs: &Path) -> (PathBuf, PartExtent) {
    let size_mib = std::fs::metadata(fs).unwrap().len().div_ceil(MIB);
    let disk = make_gpt_disk(
        dir,
        "linux.img",
        (size_mib + 2) * MIB,
        &[PartSpec {
            size_mib,
            type_guid: LINUX_FS_TYPE,
            name: "root",
        }],
    );
    let part = partition_extents(&disk)[0];
    write_at(&disk, part.offset, fs);
    (disk, part)
}
