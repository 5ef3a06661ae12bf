//! Unified kernel images built the way the lessons' recipe does: objcopy
//! adds sections to systemd's EFI stub. A missing objcopy or stub fails the
//! test with a message saying what to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const MIB: u64 = 1024 * 1024;

/// The contents of a UKI. A `None` section is left out.
#[derive(Debug, Clone)]
pub struct UkiSpec {
    pub osrel: Option<String>,
    pub cmdline: Option<Vec<u8>>,
    pub uname: Option<String>,
    pub linux: Option<Vec<u8>>,
    pub initrd: Option<Vec<u8>>,
}

pub const DEBIAN_OSREL: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";

impl UkiSpec {
    /// A Debian-looking UKI with a fake bzImage of `kernel_len` bytes.
    pub fn debian(kernel_len: usize) -> UkiSpec {
        UkiSpec {
            osrel: Some(DEBIAN_OSREL.to_string()),
            cmdline: Some(b"root=PARTLABEL=root ro quiet".to_vec()),
            uname: Some("6.1.0-18-amd64".to_string()),
            linux: Some(fake_bzimage(kernel_len)),
            initrd: Some(b"070701 not really a cpio, but bytes to find again".repeat(40)),
        }
    }
}

/// Bytes that pass the bzImage check: "HdrS" at 0x202, a pattern elsewhere
/// so that slicing mistakes show.
pub fn fake_bzimage(len: usize) -> Vec<u8> {
    let mut k: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    if len >= 0x206 {
        k[0x202..0x206].copy_from_slice(b"HdrS");
    }
    k
}

/// Random-looking bytes (a fixed xorshift stream), so that compression or
/// deduplication cannot make a benchmark look better than it is.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Builds `dir/name` from the stub. Sections go at the recipe's VMAs:
/// .osrel 0x20000, .cmdline 0x30000, .uname 0x40000, .linux 0x2000000 and
/// .initrd at the next 1 MiB boundary after .linux.
pub fn make_uki(dir: &Path, name: &str, spec: &UkiSpec) -> PathBuf {
    assert!(
        Path::new(STUB).exists(),
        "{STUB} is missing; install systemd-boot-efi (tests/install-deps)"
    );
    let out = dir.join(name);
    let mut cmd = Command::new("objcopy");
    let mut add = |section: &str, bytes: &[u8], vma: u64| {
        let file = dir.join(format!("{name}{section}"));
        std::fs::write(&file, bytes).unwrap();
        cmd.arg("--add-section")
            .arg(format!("{section}={}", file.display()))
            .arg("--change-section-vma")
            .arg(format!("{section}={vma:#x}"));
    };
    if let Some(o) = &spec.osrel {
        add(".osrel", o.as_bytes(), 0x20000);
    }
    if let Some(c) = &spec.cmdline {
        add(".cmdline", c, 0x30000);
    }
    if let Some(u) = &spec.uname {
        add(".uname", u.as_bytes(), 0x40000);
    }
    let linux_vma = 0x200_0000u64;
    if let Some(l) = &spec.linux {
        add(".linux", l, linux_vma);
    }
    if let Some(i) = &spec.initrd {
        let linux_len = spec.linux.as_ref().map_or(0, |l| l.len() as u64);
        let initrd_vma = (linux_vma + linux_len).div_ceil(MIB) * MIB;
        add(".initrd", i, initrd_vma);
    }
    cmd.arg(STUB).arg(&out);
    let shown = format!("{cmd:?}");
    let res = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run objcopy: {e}; install binutils (tests/install-deps)")
    });
    assert!(
        res.status.success(),
        "{shown} failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// The section table entry of `section` in a PE file, as (offset of the
/// entry in the file, PointerToRawData). Tests patch it to make bad UKIs.
pub fn section_header(pe: &[u8], section: &str) -> (usize, u32) {
    let u32_at = |at: usize| u32::from_le_bytes(pe[at..at + 4].try_into().unwrap());
    let u16_at = |at: usize| u16::from_le_bytes(pe[at..at + 2].try_into().unwrap());
    let pe_off = u32_at(0x3c) as usize;
    let nsec = u16_at(pe_off + 6) as usize;
    let opt = u16_at(pe_off + 20) as usize;
    let table = pe_off + 24 + opt;
    for i in 0..nsec {
        let e = table + 40 * i;
        let name = &pe[e..e + 8];
        let name = std::str::from_utf8(name).unwrap().trim_end_matches('\0');
        if name == section {
            return (e, u32_at(e + 20));
        }
    }
    panic!("{section} not found in the section table");
}
