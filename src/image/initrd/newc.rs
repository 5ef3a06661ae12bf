//! A push-based reader of concatenated newc cpio archives. It implements
//! no `Read` because the xz decoder writes its output rather than being
//! read from; the `cpio` crate only reads. Only file names are kept, plus
//! the small `modules.builtin` lists; bodies are skipped as they stream
//! past.

use super::module_index::{ModuleTree, Wanted, builtin_list, modules_path};
use crate::image::bytes::pad4;
use crate::image::modules_index::module_file_name;
use std::collections::BTreeMap;

/// The largest `modules.builtin` kept in memory (real ones are ~20 KiB).
const BUILTIN_CAP: u64 = 4 << 20;
/// Longer names are corrupt (the kernel's PATH_MAX).
const NAME_CAP: usize = 4096;
const HEADER_LEN: usize = 110;
/// The most module files kept, all kernel versions together. A kernel
/// built with everything as a module ships about 6,000; an initramfs holds
/// a subset. Each kept name costs memory, and a gigabyte of decompressed
/// cpio (the scan's cap) could otherwise name millions.
pub const MAX_MODULE_FILES: usize = 64 * 1024;
/// The most kernel versions (`lib/modules/<version>/` trees) kept. One is
/// normal; a few happen when an initramfs was built for several kernels.
pub const MAX_MODULE_TREES: usize = 16;

/// Why a scan stopped before the end of a stream.
#[derive(Debug)]
pub(super) enum Stop {
    /// Everything wanted was found.
    Done,
    TooLarge,
    Corrupt(String),
}

#[derive(Debug)]
pub(super) enum Step {
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
pub(super) struct CpioScanner {
    pub(super) step: Step,
    buf: Vec<u8>,
    pub(super) trees: BTreeMap<String, ModuleTree>,
    /// Module files kept so far, in every tree.
    module_files: usize,
    wanted: Wanted,
}

pub(super) enum Fed {
    /// Everything was consumed.
    All,
    /// After an archive, a byte that starts no header came at this offset.
    Ended(usize),
}

fn hex_field(h: &[u8], at: usize) -> Option<u32> {
    let s = std::str::from_utf8(h.get(at..at + 8)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

impl CpioScanner {
    pub(super) fn new(wanted: Wanted) -> CpioScanner {
        CpioScanner {
            step: Step::Reset,
            buf: Vec::new(),
            trees: BTreeMap::new(),
            module_files: 0,
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

    pub(super) fn feed(&mut self, input: &[u8]) -> Result<Fed, Stop> {
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
                        let list = builtin_list(&self.buf);
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
        if self.trees.len() >= MAX_MODULE_TREES && !self.trees.contains_key(version) {
            return Err(Stop::Corrupt(format!(
                "it holds modules for more than {MAX_MODULE_TREES} kernel versions, where vhdboot stops reading"
            )));
        }
        if below == "modules.builtin" && filesize <= BUILTIN_CAP {
            self.trees.entry(version.to_string()).or_default();
            return Ok(Step::Builtin {
                version: version.to_string(),
                filesize,
            });
        }
        if let Some(module) = module_file_name(file) {
            if self.module_files >= MAX_MODULE_FILES {
                return Err(Stop::Corrupt(format!(
                    "it holds more than {MAX_MODULE_FILES} module files, where vhdboot stops reading"
                )));
            }
            self.module_files += 1;
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
