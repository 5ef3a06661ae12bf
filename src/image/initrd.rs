//! The target's initramfs, read at boot time for the pre-flight module
//! check: stage 2 runs inside it and must load `loop` and the host's
//! filesystem driver (`ntfs3` or `exfat`) from it, before the target's root
//! exists. An initramfs without them never finds its root, which is the
//! most common way this kind of setup fails.
//!
//! An initramfs is a series of segments, read the way the kernel's
//! `init/initramfs.c` reads them: uncompressed newc cpio archives (early
//! microcode), NUL padding, then compressed streams (gzip, xz, zstd, or
//! the kernel's legacy LZ4 frame) that each hold one or more cpio
//! archives. Only file names are kept, plus the small `modules.builtin`
//! lists; bodies are skipped as they stream past, and the decompressed
//! total is capped at [`DECOMPRESSED_CAP`].
//!
//! This is too slow for discovery (seconds for a 100 MB initramfs), so it
//! runs only when an entry is booted, and in `vhdboot inspect`.
//!
//! The cpio reader here is push-based (it implements `Write`) because the
//! xz decoder writes its output rather than being read from; the `cpio`
//! crate only reads.

use super::inspect::Payload;
use crate::model::Problem;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

/// The most decompressed bytes one check reads; a bigger initramfs is a
/// damaged or hostile one.
pub const DECOMPRESSED_CAP: u64 = 1 << 30;
/// The largest `modules.builtin` kept in memory (real ones are ~20 KiB).
const BUILTIN_CAP: u64 = 4 << 20;
/// Longer names are corrupt (the kernel's PATH_MAX).
const NAME_CAP: usize = 4096;
const HEADER_LEN: usize = 110;
const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;
/// What lzma-rs says when a complete xz stream is followed by more data.
const XZ_TRAILING_DATA: &str = "Unexpected data after last XZ block";
/// The kernel's legacy LZ4 frame holds blocks of up to 8 MiB.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// How one segment of an initramfs is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
    Lz4Legacy,
    Bzip2,
    Lzma,
    Lzo,
    Lz4Frame,
}

impl Compression {
    /// Recognises a stream by its magic bytes, as the kernel's
    /// `decompress_method` does.
    pub fn detect(b: &[u8]) -> Option<Compression> {
        let starts = |m: &[u8]| b.starts_with(m);
        Some(if starts(b"070701") || starts(b"070702") {
            Compression::None
        } else if starts(&[0x1f, 0x8b]) || starts(&[0x1f, 0x9e]) {
            Compression::Gzip
        } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if starts(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
            Compression::Lz4Legacy
        } else if starts(&[0x04, 0x22, 0x4d, 0x18]) {
            Compression::Lz4Frame
        } else if starts(b"BZh") {
            Compression::Bzip2
        } else if starts(&[0x5d, 0, 0]) {
            Compression::Lzma
        } else if starts(&[0x89, b'L', b'Z', b'O']) {
            Compression::Lzo
        } else {
            return None;
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4Legacy => "lz4 (legacy)",
            Compression::Lz4Frame => "lz4 (frame)",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Lzo => "lzo",
        }
    }
}

/// What `lib/modules/<version>/` in the initramfs holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ModuleTree {
    /// Loadable modules by canonical name (`-` read as `_`), with the
    /// path of the file.
    pub modules: BTreeMap<String, String>,
    /// The modules built into the kernel, from `modules.builtin`, or None
    /// when the initramfs has no such list.
    pub builtin: Option<BTreeSet<String>>,
}

/// One segment of the initramfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub offset: u64,
    pub compression: Compression,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InitrdScan {
    pub segments: Vec<Segment>,
    /// Module trees by kernel version.
    pub trees: BTreeMap<String, ModuleTree>,
    /// Why part of the initramfs could not be read, if it could not.
    pub unread: Option<String>,
    /// True when the scan stopped once everything wanted was found.
    pub stopped_early: bool,
}

/// The canonical module name of a file name (`loop.ko.xz` → `loop`), or
/// None when it is not a module.
fn module_name(file: &str) -> Option<String> {
    let (stem, ext) = file.split_once(".ko")?;
    if !matches!(ext, "" | ".xz" | ".zst" | ".gz") || stem.is_empty() {
        return None;
    }
    Some(stem.replace('-', "_"))
}

/// Splits a cpio name into (kernel version, path below it) when it lies
/// in `lib/modules/` (or `usr/lib/modules/`, for merged-/usr images).
fn modules_path(name: &str) -> Option<(&str, &str)> {
    let name = name.trim_start_matches("./").trim_start_matches('/');
    let name = name.strip_prefix("usr/").unwrap_or(name);
    let rest = name.strip_prefix("lib/modules/")?;
    let (version, below) = rest.split_once('/')?;
    (!version.is_empty() && !below.is_empty()).then_some((version, below))
}

/// Which modules are wanted, for which kernel, so that the scan can stop
/// as soon as it knows.
#[derive(Debug, Clone)]
struct Wanted {
    version: Option<String>,
    modules: Vec<String>,
}

impl Wanted {
    fn satisfied(&self, trees: &BTreeMap<String, ModuleTree>) -> bool {
        let Some(tree) = self.version.as_ref().and_then(|v| trees.get(v)) else {
            return false;
        };
        self.modules.iter().all(|m| {
            tree.modules.contains_key(m) || tree.builtin.as_ref().is_some_and(|b| b.contains(m))
        })
    }
}

/// Why a scan stopped before the end of a stream.
#[derive(Debug)]
enum Stop {
    /// Everything wanted was found.
    Done,
    TooLarge,
    Corrupt(String),
}

#[derive(Debug)]
enum Step {
    /// Between archives or entries: NULs are padding, `0` starts a header.
    Reset,
    Header,
    Name {
        namesize: usize,
        filesize: u64,
        mode: u32,
    },
    Builtin {
        version: String,
        filesize: u64,
    },
    Skip(u64),
}

/// A push-based reader of concatenated newc archives.
struct CpioScanner {
    step: Step,
    buf: Vec<u8>,
    trees: BTreeMap<String, ModuleTree>,
    wanted: Wanted,
}

enum Fed {
    /// Everything was consumed.
    All,
    /// After an archive, a byte that starts no header came at this offset.
    Ended(usize),
}

fn hex_field(h: &[u8], at: usize) -> Option<u32> {
    let s = std::str::from_utf8(h.get(at..at + 8)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

fn pad4(n: u64) -> u64 {
    n.saturating_add(3) & !3
}

impl CpioScanner {
    fn new(wanted: Wanted) -> CpioScanner {
        CpioScanner {
            step: Step::Reset,
            buf: Vec::new(),
            trees: BTreeMap::new(),
            wanted,
        }
    }

    /// Takes bytes into `buf` until it holds `total`; true when it does.
    fn collect(&mut self, data: &mut &[u8], total: usize) -> bool {
        let take = total.saturating_sub(self.buf.len()).min(data.len());
        let (head, tail) = data.split_at(take);
        self.buf.extend_from_slice(head);
        *data = tail;
        self.buf.len() >= total
    }

    fn feed(&mut self, input: &[u8]) -> Result<Fed, Stop> {
        let mut data = input;
        while !data.is_empty() {
            match &mut self.step {
                Step::Reset => match data.first() {
                    Some(0) => data = data.get(1..).unwrap_or_default(),
                    Some(b'0') => {
                        self.buf.clear();
                        self.step = Step::Header;
                    }
                    _ => return Ok(Fed::Ended(input.len() - data.len())),
                },
                Step::Skip(n) => {
                    let k = usize::try_from(*n).unwrap_or(usize::MAX).min(data.len());
                    data = data.get(k..).unwrap_or_default();
                    *n -= k as u64;
                    if *n == 0 {
                        self.step = Step::Reset;
                    }
                }
                Step::Header => {
                    if self.collect(&mut data, HEADER_LEN) {
                        self.step = self.parse_header()?;
                        self.buf.clear();
                    }
                }
                Step::Name {
                    namesize,
                    filesize,
                    mode,
                } => {
                    let (namesize, filesize, mode) = (*namesize, *filesize, *mode);
                    let padded = (pad4((HEADER_LEN + namesize) as u64) as usize) - HEADER_LEN;
                    if self.collect(&mut data, padded) {
                        let raw = self.buf.get(..namesize - 1).unwrap_or_default();
                        let name = String::from_utf8_lossy(raw).into_owned();
                        self.buf.clear();
                        self.step = self.entry(&name, filesize, mode)?;
                    }
                }
                Step::Builtin { version, filesize } => {
                    let total = usize::try_from(*filesize).unwrap_or(usize::MAX);
                    let padding = pad4(*filesize) - *filesize;
                    let version = version.clone();
                    if self.collect(&mut data, total) {
                        let list = parse_builtin(&self.buf);
                        self.buf.clear();
                        self.trees.entry(version).or_default().builtin = Some(list);
                        self.step = if padding == 0 {
                            Step::Reset
                        } else {
                            Step::Skip(padding)
                        };
                        if self.wanted.satisfied(&self.trees) {
                            return Err(Stop::Done);
                        }
                    }
                }
            }
        }
        Ok(Fed::All)
    }

    fn parse_header(&self) -> Result<Step, Stop> {
        let h = &self.buf;
        if !(h.starts_with(b"070701") || h.starts_with(b"070702")) {
            return Err(Stop::Corrupt(
                "a cpio header has neither the newc magic 070701 nor 070702".into(),
            ));
        }
        let (Some(mode), Some(filesize), Some(namesize)) =
            (hex_field(h, 14), hex_field(h, 54), hex_field(h, 94))
        else {
            return Err(Stop::Corrupt(
                "a cpio header has a field that is not hex".into(),
            ));
        };
        let namesize = namesize as usize;
        if namesize == 0 || namesize > NAME_CAP {
            return Err(Stop::Corrupt(format!(
                "a cpio header gives a name of {namesize} bytes"
            )));
        }
        Ok(Step::Name {
            namesize,
            filesize: u64::from(filesize),
            mode,
        })
    }

    /// Records one entry and says what to do with its body.
    fn entry(&mut self, name: &str, filesize: u64, mode: u32) -> Result<Step, Stop> {
        if name == "TRAILER!!!" {
            return Ok(Step::Reset);
        }
        let body = pad4(filesize);
        let skip = if body == 0 {
            Step::Reset
        } else {
            Step::Skip(body)
        };
        let is_file = mode & 0o170000 == 0o100000;
        let Some((version, below)) = modules_path(name) else {
            return Ok(skip);
        };
        if !is_file {
            return Ok(skip);
        }
        let file = below.rsplit('/').next().unwrap_or(below);
        if below == "modules.builtin" && filesize <= BUILTIN_CAP {
            self.trees.entry(version.to_string()).or_default();
            return Ok(Step::Builtin {
                version: version.to_string(),
                filesize,
            });
        }
        if let Some(module) = module_name(file) {
            self.trees
                .entry(version.to_string())
                .or_default()
                .modules
                .insert(module, format!("/lib/modules/{version}/{below}"));
            if self.wanted.satisfied(&self.trees) {
                return Err(Stop::Done);
            }
        }
        Ok(skip)
    }
}

/// The module names in a `modules.builtin` (one path per line, such as
/// `kernel/drivers/block/loop.ko`).
fn parse_builtin(bytes: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| module_name(l.trim().rsplit('/').next().unwrap_or_default()))
        .collect()
}

/// Feeds decompressed bytes to the scanner, counting them against the cap.
struct Sink<'a> {
    scanner: &'a mut CpioScanner,
    total: &'a mut u64,
    stop: Option<Stop>,
    /// Set when bytes that are no cpio followed an archive inside the
    /// stream; the kernel stops there too ("junk within compressed archive").
    junk: bool,
}

impl Write for Sink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        *self.total = self.total.saturating_add(data.len() as u64);
        if *self.total > DECOMPRESSED_CAP {
            self.stop = Some(Stop::TooLarge);
            return Err(io::Error::other("decompressed size cap reached"));
        }
        if self.junk {
            return Ok(data.len());
        }
        match self.scanner.feed(data) {
            Ok(Fed::All) => {}
            Ok(Fed::Ended(_)) => self.junk = true,
            Err(stop) => {
                self.stop = Some(stop);
                return Err(io::Error::other("scan stopped"));
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lists the module trees in `initrd`. The scan stops early once every
/// module in `modules` is known (as a file or built in) for `version`.
pub fn scan(initrd: &[u8], version: Option<&str>, modules: &[&str]) -> InitrdScan {
    let mut scanner = CpioScanner::new(Wanted {
        version: version.map(str::to_string),
        modules: modules.iter().map(|m| m.replace('-', "_")).collect(),
    });
    let mut out = InitrdScan::default();
    let mut total = 0u64;
    let mut pos = 0usize;
    while let Some(rest) = initrd.get(pos..).filter(|r| !r.is_empty()) {
        if rest.first() == Some(&0) {
            pos += 1;
            continue;
        }
        let offset = pos as u64;
        let Some(compression) = Compression::detect(rest) else {
            out.unread = Some(format!(
                "the data at byte {offset} is neither a cpio archive nor a compressed stream vhdboot knows"
            ));
            break;
        };
        out.segments.push(Segment {
            offset,
            compression,
        });
        scanner.step = Step::Reset;
        let result = match compression {
            Compression::None => match scanner.feed(rest) {
                Ok(Fed::All) => Ok(rest.len()),
                Ok(Fed::Ended(n)) => Ok(n),
                Err(stop) => Err(stop),
            },
            Compression::Gzip | Compression::Xz | Compression::Zstd | Compression::Lz4Legacy => {
                let mut sink = Sink {
                    scanner: &mut scanner,
                    total: &mut total,
                    stop: None,
                    junk: false,
                };
                let used = decompress(compression, rest, &mut sink);
                match (sink.stop.take(), used) {
                    (Some(stop), _) => Err(stop),
                    (None, Ok(n)) => Ok(n),
                    (None, Err(e)) => Err(Stop::Corrupt(format!(
                        "the {} data at byte {offset} is damaged: {e}",
                        compression.name()
                    ))),
                }
            }
            other => Err(Stop::Corrupt(format!(
                "the segment at byte {offset} is {}-compressed, which vhdboot cannot read",
                other.name()
            ))),
        };
        match result {
            Ok(0) => {
                out.unread = Some(format!(
                    "the {} segment at byte {offset} is empty or unreadable",
                    compression.name()
                ));
                break;
            }
            Ok(n) => pos = pos.saturating_add(n),
            Err(Stop::Done) => {
                out.stopped_early = true;
                break;
            }
            Err(Stop::TooLarge) => {
                out.unread = Some(format!(
                    "it unpacks to more than {} MiB, where vhdboot stops reading",
                    DECOMPRESSED_CAP >> 20
                ));
                break;
            }
            Err(Stop::Corrupt(why)) => {
                out.unread = Some(why);
                break;
            }
        }
    }
    if out.unread.is_none() && !matches!(scanner.step, Step::Reset) && !out.stopped_early {
        out.unread = Some("the last cpio archive is cut short".into());
    }
    out.trees = scanner.trees;
    out
}

/// Decompresses one stream at the start of `input` into `sink` and returns
/// how many input bytes it took.
fn decompress(c: Compression, input: &[u8], sink: &mut Sink<'_>) -> io::Result<usize> {
    match c {
        Compression::Gzip => {
            let mut dec = flate2::bufread::GzDecoder::new(input);
            io::copy(&mut dec, sink)?;
            Ok(input.len() - dec.into_inner().len())
        }
        Compression::Xz => {
            let mut rest = input;
            match lzma_rs::xz_decompress(&mut rest, sink) {
                Ok(()) => {}
                // lzma-rs wants the stream to end the input and says so
                // only after the whole stream, footer included, was read
                // and checked; `rest` then starts at the next segment.
                // tests/preflight.rs pins this message.
                Err(lzma_rs::error::Error::XzError(m)) if m == XZ_TRAILING_DATA => {}
                Err(lzma_rs::error::Error::IoError(e)) => return Err(e),
                Err(other) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        other.to_string(),
                    ));
                }
            }
            Ok(input.len() - rest.len())
        }
        Compression::Zstd => {
            let mut rest = input;
            let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut rest)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            io::copy(&mut dec, sink)?;
            drop(dec);
            Ok(input.len() - rest.len())
        }
        Compression::Lz4Legacy => lz4_legacy(input, sink),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unsupported compression",
        )),
    }
}

/// The kernel's legacy LZ4 format: the magic, then blocks, each a 32-bit
/// little-endian length and an LZ4 block of up to 8 MiB. It has no end
/// marker, so like the kernel it runs to the end of the input; a zero
/// length (padding) also ends it, and a repeated magic starts a new frame.
fn lz4_legacy(input: &[u8], sink: &mut Sink<'_>) -> io::Result<usize> {
    let mut out = Vec::new();
    let mut pos = 4usize;
    loop {
        let Some(len) = input
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
        else {
            return Ok(input.len().min(pos));
        };
        if len == LZ4_LEGACY_MAGIC {
            pos += 4;
            continue;
        }
        if len == 0 {
            return Ok(pos);
        }
        let start = pos + 4;
        let block = input
            .get(start..start.saturating_add(len as usize))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "an lz4 block is cut short")
            })?;
        // An LZ4 block expands at most 255 times, so small blocks need
        // less than the 8 MiB a full one may fill.
        let room = block
            .len()
            .saturating_mul(255)
            .saturating_add(64)
            .min(LZ4_LEGACY_BLOCK);
        if out.len() < room {
            out.try_reserve_exact(room - out.len())
                .map_err(|_| io::Error::other("cannot allocate the lz4 output buffer"))?;
            out.resize(room, 0);
        }
        let n = lz4_flex::block::decompress_into(block, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        sink.write_all(out.get(..n).unwrap_or_default())?;
        pos = start + block.len();
    }
}

/// Whether the target can get a module it needs at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Presence {
    /// The initramfs holds the module at this path.
    File(String),
    /// The kernel has it built in (listed in the initramfs's modules.builtin).
    BuiltIn,
    /// Neither: the initramfs lists the built-in modules and this is not
    /// one of them, and no module file for it was found.
    Missing,
    /// The initramfs does not say (no modules.builtin for this kernel, or
    /// part of it could not be read).
    Unknown,
}

/// The verdict of the boot-time module check for one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleCheck {
    /// The kernel version checked against, if one could be told.
    pub version: Option<String>,
    /// Each wanted module and whether the target can get it.
    pub modules: Vec<(String, Presence)>,
    /// Why the check could not be made in full, if it could not.
    pub unsure: Option<String>,
    pub segments: Vec<Segment>,
}

impl ModuleCheck {
    /// True when the entry has no initramfs at all: stage 2 would have no
    /// `/init` to hand over to and no modules to load.
    pub fn no_initramfs(&self) -> bool {
        self.segments.is_empty() && self.unsure.is_none()
    }
}

/// The kernel release (`uname -r`) in a bzImage's header: the
/// `kernel_version` field at 0x20E points at a NUL-terminated string, less
/// 0x200, whose first word is the release (boot protocol 2.00 and later).
pub fn bzimage_release(kernel: &[u8]) -> Option<String> {
    if kernel.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes(kernel.get(0x20e..0x210)?.try_into().ok()?);
    if ptr == 0 {
        return None;
    }
    let start = usize::from(ptr) + 0x200;
    let text = kernel.get(start..start.saturating_add(256).min(kernel.len()))?;
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let s = std::str::from_utf8(text.get(..end)?).ok()?;
    let release = s.split_whitespace().next()?;
    (!release.is_empty()).then(|| release.to_string())
}

/// [`check_modules`] for a loaded entry. The kernel version comes from its
/// bzImage header, which is what will run, whatever the entry claims;
/// `claimed` (the UKI's `.uname` or the entry's `version`) is the fallback.
pub fn check_payload(payload: &Payload, claimed: Option<&str>, fs_driver: &str) -> ModuleCheck {
    let release = bzimage_release(&payload.kernel);
    check_modules(&payload.initrd, release.as_deref().or(claimed), fs_driver)
}

/// Checks that the target can get `loop` and `fs_driver` (`ntfs3` or
/// `exfat`) for kernel `version` from `initrd`. With no version, a single
/// module tree in the initramfs is taken as the target's.
pub fn check_modules(initrd: &[u8], version: Option<&str>, fs_driver: &str) -> ModuleCheck {
    let wanted = ["loop", fs_driver];
    let found = scan(initrd, version, &wanted);
    let version = version.map(str::to_string).or_else(|| {
        match found.trees.keys().collect::<Vec<_>>().as_slice() {
            [only] => Some((*only).clone()),
            _ => None,
        }
    });
    let tree = version.as_ref().and_then(|v| found.trees.get(v));
    let mut unsure = found.unread.clone();
    if found.segments.is_empty() {
        // No initramfs at all: `no_initramfs` reports it.
    } else if tree.is_none() {
        let have: Vec<&str> = found.trees.keys().map(String::as_str).collect();
        unsure.get_or_insert_with(|| match (&version, have.is_empty()) {
            (_, true) => "the initramfs holds no kernel modules at all (lib/modules)".to_string(),
            (Some(v), false) => format!(
                "the initramfs holds modules for kernel {} but none for {v}",
                have.join(", ")
            ),
            (None, false) => format!(
                "the kernel version is unknown and the initramfs holds modules for {}",
                have.join(", ")
            ),
        });
    } else if tree.is_some_and(|t| t.builtin.is_none()) && unsure.is_none() {
        unsure = Some(
            "the initramfs has no modules.builtin, so built-in drivers cannot be told apart".into(),
        );
    }
    let modules = wanted
        .iter()
        .map(|m| {
            let m = m.replace('-', "_");
            let presence = match tree {
                Some(t) if t.modules.contains_key(&m) => {
                    Presence::File(t.modules.get(&m).cloned().unwrap_or_default())
                }
                Some(t) if t.builtin.as_ref().is_some_and(|b| b.contains(&m)) => Presence::BuiltIn,
                // Only a complete read with a built-in list proves absence.
                Some(t) if t.builtin.is_some() && found.unread.is_none() => Presence::Missing,
                _ => Presence::Unknown,
            };
            (m, presence)
        })
        .collect();
    ModuleCheck {
        version,
        modules,
        unsure,
        segments: found.segments,
    }
}

impl ModuleCheck {
    fn with(&self, p: fn(&Presence) -> bool) -> Vec<&str> {
        self.modules
            .iter()
            .filter(|(_, s)| p(s))
            .map(|(m, _)| m.as_str())
            .collect()
    }

    /// The modules proven missing.
    pub fn missing(&self) -> Vec<&str> {
        self.with(|s| *s == Presence::Missing)
    }

    /// A blocking problem when a module is proven missing, a warning when
    /// the check could not be made, None when all is well.
    ///
    /// A false refusal would stop a boot that works (a kernel with the
    /// drivers built in but no modules.builtin in its initramfs), so only
    /// proof refuses; doubt only warns.
    pub fn problem(&self) -> Option<Problem> {
        if self.no_initramfs() {
            return Some(Problem::blocking(
                "the entry has no initramfs, so stage 2 would have neither the loop and \
                 filesystem modules nor an /init to hand over to",
                "inside the OS, build the UKI or entry with its initramfs (kernel-install, ukify \
                 --initrd, or an `initrd` line in the entry)",
            ));
        }
        let all: Vec<&str> = self.modules.iter().map(|(m, _)| m.as_str()).collect();
        let kernel = self
            .version
            .as_deref()
            .map_or_else(|| "its kernel".to_string(), |v| format!("kernel {v}"));
        let hint = format!(
            "inside the OS, add {list} to its initramfs and regenerate it: MODULES=({mods}) in \
             /etc/mkinitcpio.conf then mkinitcpio -P; add_drivers+=\" {mods} \" in \
             /etc/dracut.conf.d/vhdboot.conf then dracut -f; or one per line in \
             /etc/initramfs-tools/modules then update-initramfs -u",
            list = all
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(" and "),
            mods = all.join(" ")
        );
        let missing = self.missing();
        if !missing.is_empty() {
            let noun = if missing.len() == 1 {
                "module"
            } else {
                "modules"
            };
            return Some(Problem::blocking(
                format!(
                    "the target's initramfs has no {} {noun} for {kernel} (neither as a file \
                     nor built in), so it could never find its root on the image",
                    missing.join(" or ")
                ),
                hint,
            ));
        }
        let unknown = self.with(|s| *s == Presence::Unknown);
        if unknown.is_empty() {
            return None;
        }
        let why = self
            .unsure
            .as_deref()
            .unwrap_or("the initramfs does not say");
        Some(Problem::warning(
            format!(
                "could not check that the target's initramfs has {} for {kernel}: {why}",
                unknown.join(" and ")
            ),
            format!(
                "the boot may still work if they are built in; if it stops before finding its \
                 root, {hint}"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(module_name("loop.ko.xz").as_deref(), Some("loop"));
        assert_eq!(module_name("nls-utf8.ko").as_deref(), Some("nls_utf8"));
        assert_eq!(module_name("ntfs3.ko.zst").as_deref(), Some("ntfs3"));
        assert_eq!(module_name("modules.dep"), None);
        assert_eq!(module_name("loop.kotlin"), None);
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
    fn bzimage_release_reads_the_header_string() {
        let mut k = vec![0u8; 0x1000];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x20e..0x210].copy_from_slice(&0x0600u16.to_le_bytes());
        let s = b"6.12.9-amd64 (builder@x) #1 SMP\0";
        k[0x800..0x800 + s.len()].copy_from_slice(s);
        assert_eq!(bzimage_release(&k).as_deref(), Some("6.12.9-amd64"));
        k[0x20e..0x210].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert_eq!(bzimage_release(&k), None);
        assert_eq!(bzimage_release(b"short"), None);
    }
}
