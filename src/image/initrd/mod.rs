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
//! The parts: `decompress.rs` (the stream formats), `newc.rs` (the cpio
//! reader), `module_index.rs` (the module trees found) and `check.rs` (the
//! verdict and its words); this file walks the segments.
//!
//! This is too slow for discovery (seconds for a 100 MB initramfs), so it
//! runs only when an entry is booted, and in `vhdboot inspect`.

mod check;
mod decompress;
mod module_index;
mod newc;
#[cfg(test)]
mod tests;

pub use check::{ModuleCheck, Presence, check_modules, check_modules_with, check_payload};
pub use decompress::Compression;
pub use module_index::ModuleTree;
pub use newc::{MAX_MODULE_FILES, MAX_MODULE_TREES};

use decompress::decompress;
use module_index::Wanted;
use newc::{CpioScanner, Fed, Step, Stop};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The most decompressed bytes one check reads; a bigger initramfs is a
/// damaged or hostile one.
pub const DECOMPRESSED_CAP: u64 = 1 << 30;

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
    let mut scanner = CpioScanner::new(Wanted::new(version, modules));
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
