//! Boot-time loading of an entry's kernel and initrd from an image, after
//! [`inspect`](super::inspect::inspect) found the entry at discovery time.
//!
//! A boot streams the kernel (a UKI's `.linux` section, or a type #1
//! entry's `linux` file) from the image straight into the file kexec reads
//! it from, in bounded chunks, so the kernel is never held whole in
//! memory; only its first bytes are kept, for the bzImage header. The
//! initrd is read into memory, because the pre-flight module check reads
//! it and the stage-2 archive is appended to it. The command line is not
//! read here: the boot plan carries it.

use super::boot_dir::{BootFiles, Node};
use super::bytes::pad4;
use super::bzimage;
use super::esp::{Esp, EspError};
use super::ext4_window::{Ext4OpenError, with_ext4};
use super::uki::{UkiError, UkiInfo, UkiSection};
use super::window::Window;
use crate::model::{ByteRange, EntrySource};
use std::io::{self, BufWriter, Read, Seek, Write};

/// The largest kernel and initrd a boot will read.
pub const KERNEL_CAP: u64 = 512 * 1024 * 1024;
pub const INITRD_CAP: u64 = 2 * 1024 * 1024 * 1024;
/// How much of the kernel one read and one write move while streaming:
/// large enough that a 15 MB kernel is a few dozen syscalls, small enough
/// to be no memory worth counting.
const STREAM_CHUNK: usize = 256 * 1024;

/// An entry's kernel and initrd, both in memory (`vhdboot inspect` and
/// tests; a boot uses [`stream_payload`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("kernel", &self.kernel.len())
            .field("initrd", &self.initrd.len())
            .finish()
    }
}

/// What [`stream_payload`] keeps once the kernel went to its writer.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamedPayload {
    /// How many kernel bytes were written.
    pub kernel_len: u64,
    /// The kernel release from its bzImage header, if it has one.
    pub kernel_release: Option<String>,
    pub initrd: Vec<u8>,
}

impl std::fmt::Debug for StreamedPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedPayload")
            .field("kernel_len", &self.kernel_len)
            .field("kernel_release", &self.kernel_release)
            .field("initrd", &self.initrd.len())
            .finish()
    }
}

/// Messages are complete on their own (see `UkiError`). They name the
/// partition by its byte offset and the file; the caller adds the image.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error(
        "the entry's partition (bytes {offset}..{end}) lies outside the image's {data_size} data bytes; the image changed since it was scanned, rescan"
    )]
    OutsideImage {
        offset: u64,
        end: u64,
        data_size: u64,
    },
    #[error("the EFI partition at byte offset {esp_offset}: {cause}")]
    Esp { esp_offset: u64, cause: EspError },
    #[error("{path} on the EFI partition at byte offset {esp_offset}: {cause}")]
    Uki {
        esp_offset: u64,
        path: String,
        cause: UkiError,
    },
    #[error("{path} on the EFI partition at byte offset {esp_offset}: {cause}")]
    File {
        esp_offset: u64,
        path: String,
        cause: EspError,
    },
    #[error(
        "{path} on the EFI partition at byte offset {esp_offset} is {size} bytes, more than the {cap} bytes vhdboot loads; the file is damaged or not a kernel/initrd"
    )]
    TooLarge {
        esp_offset: u64,
        path: String,
        size: u64,
        cap: u64,
    },
    #[error(
        "{path} on the EFI partition at byte offset {esp_offset}: its directory entry says {size} bytes, more than the whole {esp_len}-byte partition holds; the file system is damaged: check it with `fsck.vfat -n` on a copy, or reinstall this kernel inside the OS"
    )]
    LargerThanPartition {
        esp_offset: u64,
        path: String,
        size: u64,
        esp_len: u64,
    },
    #[error("the ext4 partition at byte offset {part_offset}: {cause}")]
    Ext4Open {
        part_offset: u64,
        cause: Ext4OpenError,
    },
    #[error(
        "{path} on the ext4 partition at byte offset {part_offset}: {cause}; check the filesystem with `e2fsck -n` on a copy, or reinstall this kernel inside the OS"
    )]
    Ext4File {
        part_offset: u64,
        path: String,
        cause: String,
    },
    #[error(
        "{path} on the ext4 partition at byte offset {part_offset} is {size} bytes, more than the {cap} bytes vhdboot loads from it; the file is damaged or not a kernel/initrd"
    )]
    Ext4TooLarge {
        part_offset: u64,
        path: String,
        size: u64,
        cap: u64,
    },
    #[error(
        "{path} on the {fs} partition at byte offset {part_offset}: {cause}; check the filesystem on a copy, or reinstall this kernel inside the OS"
    )]
    MountedFile {
        fs: &'static str,
        part_offset: u64,
        path: String,
        cause: String,
    },
    #[error(
        "{path} on the {fs} partition at byte offset {part_offset} is {size} bytes, more than the {cap} bytes vhdboot loads from it; the file is damaged or not a kernel/initrd"
    )]
    MountedTooLarge {
        fs: &'static str,
        part_offset: u64,
        path: String,
        size: u64,
        cap: u64,
    },
    #[error(
        "the entry is on a {fs} filesystem, which only a read-only kernel mount reads; this reader makes none (stage 1 does, and `vhdboot inspect` run as root)"
    )]
    NeedsMount { fs: &'static str },
    #[error(
        "cannot allocate {size} bytes for {path}; the machine has too little memory for this kernel and initrd"
    )]
    OutOfMemory { path: String, size: u64 },
    #[error(
        "{path} on the EFI partition at byte offset {esp_offset}: writing the kernel for kexec failed: {cause}; free memory or use the rescue shell"
    )]
    KernelWrite {
        esp_offset: u64,
        path: String,
        cause: io::Error,
    },
}

/// Reads the kernel and initrd of an entry from an image's data area of
/// `data_size` bytes. For a UKI these are its `.linux` and `.initrd`
/// sections; for a type #1 entry, its `linux` file and its `initrd` files
/// concatenated (each padded to 4 bytes).
pub fn load_payload<R: Read + Seek>(
    r: &mut R,
    data_size: u64,
    source: &EntrySource,
) -> Result<Payload, PayloadError> {
    let mut kernel = Vec::new();
    let streamed = stream_payload(r, data_size, source, &mut kernel)?;
    Ok(Payload {
        kernel,
        initrd: streamed.initrd,
    })
}

/// Like [`load_payload`], but the kernel is copied into `kernel_out` in
/// bounded chunks (`STREAM_CHUNK`) instead of being held in memory.
pub fn stream_payload<R: Read + Seek, W: Write>(
    r: &mut R,
    data_size: u64,
    source: &EntrySource,
    kernel_out: &mut W,
) -> Result<StreamedPayload, PayloadError> {
    let range = match source {
        EntrySource::Uki { esp, .. } | EntrySource::Bls { esp, .. } => *esp,
        EntrySource::Ext4 { partition, .. } | EntrySource::Mounted { partition, .. } => *partition,
    };
    let end = range.offset.saturating_add(range.len);
    if end > data_size {
        return Err(PayloadError::OutsideImage {
            offset: range.offset,
            end,
            data_size,
        });
    }
    if let EntrySource::Ext4 { linux, initrd, .. } = source {
        return stream_from_ext4(r, range, linux, initrd, kernel_out);
    }
    // Only the kernel's driver reads these, through a mount that pure code
    // cannot make: the boot child reads them with `stream_from_files`.
    if let EntrySource::Mounted { fs, .. } = source {
        return Err(PayloadError::NeedsMount { fs: fs.name() });
    }
    let esp_offset = range.offset;
    let esp = Esp::open(Window::new(&mut *r, range.offset, range.len))
        .map_err(|cause| PayloadError::Esp { esp_offset, cause })?;
    let file_err = |path: &str| {
        let path = path.to_string();
        move |cause| PayloadError::File {
            esp_offset,
            path,
            cause,
        }
    };
    match source {
        EntrySource::Uki { path, .. } => {
            let uki_err = |cause| PayloadError::Uki {
                esp_offset,
                path: path.clone(),
                cause,
            };
            let size = esp.file_size(path).map_err(file_err(path))?;
            // Sections are checked against this size, and read_section
            // reserves a section's whole size up front: bound it by what
            // the partition can hold, or a small corrupt disk could make
            // PID 1 reserve gigabytes.
            check_fits(&esp, esp_offset, path, size)?;
            let mut file = esp.open_file(path).map_err(file_err(path))?;
            let info = UkiInfo::read_with_len(&mut file, size).map_err(uki_err)?;
            let mut head = HeadKeeper::new(kernel_out);
            let kernel_len = {
                let mut chunked = BufWriter::with_capacity(STREAM_CHUNK, &mut head);
                let n = info
                    .copy_section(&mut file, UkiSection::Linux, &mut chunked)
                    .map_err(uki_err)?;
                chunked.flush().map_err(|cause| PayloadError::KernelWrite {
                    esp_offset,
                    path: path.clone(),
                    cause,
                })?;
                n
            };
            let initrd = match info.section(UkiSection::Initrd) {
                Some(_) => info
                    .read_section(&mut file, UkiSection::Initrd)
                    .map_err(uki_err)?,
                None => Vec::new(),
            };
            Ok(StreamedPayload {
                kernel_len,
                kernel_release: bzimage::release(&head.head),
                initrd,
            })
        }
        EntrySource::Bls { linux, initrd, .. } => {
            let mut head = HeadKeeper::new(kernel_out);
            let kernel_len = stream_whole(&esp, esp_offset, linux, KERNEL_CAP, &mut head)?;
            let mut initrd_bytes = Vec::new();
            for i in initrd {
                let part = read_whole(&esp, esp_offset, i, INITRD_CAP)?;
                let padded = usize::try_from(pad4(part.len() as u64)).unwrap_or(usize::MAX);
                initrd_bytes
                    .try_reserve(padded)
                    .map_err(|_| PayloadError::OutOfMemory {
                        path: i.clone(),
                        size: padded as u64,
                    })?;
                initrd_bytes.extend_from_slice(&part);
                initrd_bytes.resize(initrd_bytes.len() + (padded - part.len()), 0);
            }
            Ok(StreamedPayload {
                kernel_len,
                kernel_release: bzimage::release(&head.head),
                initrd: initrd_bytes,
            })
        }
        // Read by stream_from_ext4 above, or refused above; this arm is
        // never reached.
        EntrySource::Ext4 { .. } | EntrySource::Mounted { .. } => Ok(StreamedPayload {
            kernel_len: 0,
            kernel_release: None,
            initrd: Vec::new(),
        }),
    }
}

/// Streams an ext4 entry's kernel into `kernel_out` and reads its initrds
/// (each padded to 4 bytes), through the ext4 worker (`ext4_window.rs`).
fn stream_from_ext4<R: Read + Seek, W: Write>(
    r: &mut R,
    partition: ByteRange,
    linux: &str,
    initrd: &[String],
    kernel_out: &mut W,
) -> Result<StreamedPayload, PayloadError> {
    let part_offset = partition.offset;
    let mut head = HeadKeeper::new(kernel_out);
    let worked = with_ext4(
        r,
        partition,
        &mut |bytes| head.write_all(bytes),
        |link, _| -> Result<(u64, Vec<u8>), PayloadError> {
            let fs = link.load().map_err(|e| ext4_error(part_offset, "/", e))?;
            let kernel_len = {
                let (mut file, size) =
                    open_capped(&fs, part_offset, partition.len, linux, KERNEL_CAP)?;
                let mut sent = 0u64;
                while sent < size {
                    let want =
                        usize::try_from(size - sent).map_or(STREAM_CHUNK, |n| n.min(STREAM_CHUNK));
                    let mut chunk = vec![0u8; want];
                    file.read_exact(&mut chunk)
                        .map_err(|e| ext4_io_error(part_offset, linux, e))?;
                    link.emit(chunk)
                        .map_err(|cause| PayloadError::KernelWrite {
                            esp_offset: part_offset,
                            path: linux.to_string(),
                            cause: io::Error::other(cause),
                        })?;
                    sent += want as u64;
                }
                sent
            };
            let mut initrd_bytes: Vec<u8> = Vec::new();
            for path in initrd {
                let (mut file, size) =
                    open_capped(&fs, part_offset, partition.len, path, INITRD_CAP)?;
                let padded = usize::try_from(pad4(size)).unwrap_or(usize::MAX);
                let total = initrd_bytes.len().saturating_add(padded);
                if total as u64 > INITRD_CAP {
                    return Err(PayloadError::Ext4TooLarge {
                        part_offset,
                        path: path.clone(),
                        size: total as u64,
                        cap: INITRD_CAP,
                    });
                }
                initrd_bytes
                    .try_reserve(padded)
                    .map_err(|_| PayloadError::OutOfMemory {
                        path: path.clone(),
                        size: padded as u64,
                    })?;
                let start = initrd_bytes.len();
                (&mut file)
                    .take(size)
                    .read_to_end(&mut initrd_bytes)
                    .map_err(|e| ext4_io_error(part_offset, path, e))?;
                if (initrd_bytes.len() - start) as u64 != size {
                    return Err(ext4_io_error(
                        part_offset,
                        path,
                        io::Error::new(io::ErrorKind::UnexpectedEof, "the file ended early"),
                    ));
                }
                initrd_bytes.resize(start + padded, 0);
            }
            Ok((kernel_len, initrd_bytes))
        },
    );
    let (kernel_len, initrd) = match worked {
        Ok(result) => result?,
        Err(Ext4OpenError::Output(cause)) => {
            return Err(PayloadError::KernelWrite {
                esp_offset: part_offset,
                path: linux.to_string(),
                cause,
            });
        }
        Err(cause) => return Err(PayloadError::Ext4Open { part_offset, cause }),
    };
    Ok(StreamedPayload {
        kernel_len,
        kernel_release: bzimage::release(&head.head),
        initrd,
    })
}

/// Streams the kernel `linux` into `kernel_out` and reads the initrds
/// (each padded to 4 bytes) from `files`, a btrfs or xfs partition of
/// `partition` mounted read-only (`EntrySource::Mounted`). Every size is
/// checked against the partition and the caps before a byte is read or
/// reserved, and no more than that size is read.
pub fn stream_from_files<W: Write>(
    files: &dyn BootFiles,
    fs: &'static str,
    partition: ByteRange,
    linux: &str,
    initrd: &[String],
    kernel_out: &mut W,
) -> Result<StreamedPayload, PayloadError> {
    let part_offset = partition.offset;
    let file_err = |path: &str, cause: String| PayloadError::MountedFile {
        fs,
        part_offset,
        path: path.to_string(),
        cause,
    };
    let sized = |path: &str, cap: u64| -> Result<u64, PayloadError> {
        let size = match files.node(path).map_err(|e| file_err(path, e))? {
            Node::File(size) => size,
            Node::Missing => return Err(file_err(path, "it does not exist".into())),
            Node::BrokenSymlink => {
                return Err(file_err(
                    path,
                    "it is a broken symlink (its target is not in this filesystem)".into(),
                ));
            }
            Node::Dir | Node::Other => {
                return Err(file_err(path, "it is not a regular file".into()));
            }
        };
        if size > partition.len || size > cap {
            return Err(PayloadError::MountedTooLarge {
                fs,
                part_offset,
                path: path.to_string(),
                size,
                cap: cap.min(partition.len),
            });
        }
        Ok(size)
    };
    let mut head = HeadKeeper::new(kernel_out);
    let size = sized(linux, KERNEL_CAP)?;
    let kernel_len = {
        let file = files.open(linux).map_err(|e| file_err(linux, e))?;
        let mut chunked = BufWriter::with_capacity(STREAM_CHUNK, &mut head);
        let n = io::copy(&mut file.take(size), &mut chunked)
            .map_err(|e| file_err(linux, e.to_string()))?;
        chunked.flush().map_err(|cause| PayloadError::KernelWrite {
            esp_offset: part_offset,
            path: linux.to_string(),
            cause,
        })?;
        n
    };
    if kernel_len != size {
        return Err(file_err(linux, "the file ended early".into()));
    }
    let mut initrd_bytes: Vec<u8> = Vec::new();
    for path in initrd {
        let size = sized(path, INITRD_CAP)?;
        let padded = usize::try_from(pad4(size)).unwrap_or(usize::MAX);
        let total = initrd_bytes.len().saturating_add(padded);
        if total as u64 > INITRD_CAP {
            return Err(PayloadError::MountedTooLarge {
                fs,
                part_offset,
                path: path.clone(),
                size: total as u64,
                cap: INITRD_CAP,
            });
        }
        initrd_bytes
            .try_reserve(padded)
            .map_err(|_| PayloadError::OutOfMemory {
                path: path.clone(),
                size: padded as u64,
            })?;
        let start = initrd_bytes.len();
        files
            .open(path)
            .map_err(|e| file_err(path, e))?
            .take(size)
            .read_to_end(&mut initrd_bytes)
            .map_err(|e| file_err(path, e.to_string()))?;
        if (initrd_bytes.len() - start) as u64 != size {
            return Err(file_err(path, "the file ended early".into()));
        }
        initrd_bytes.resize(start + padded, 0);
    }
    Ok(StreamedPayload {
        kernel_len,
        kernel_release: bzimage::release(&head.head),
        initrd: initrd_bytes,
    })
}

/// Opens a regular file on ext4 with its size checked against its
/// partition and `cap`, before anything is read or reserved for it.
fn open_capped(
    fs: &ext4_view::Ext4,
    part_offset: u64,
    part_len: u64,
    path: &str,
    cap: u64,
) -> Result<(ext4_view::File, u64), PayloadError> {
    let meta = fs
        .metadata(path)
        .map_err(|e| ext4_error(part_offset, path, e))?;
    if !meta.file_type().is_regular_file() {
        return Err(ext4_error(
            part_offset,
            path,
            ext4_view::Ext4Error::IsASpecialFile,
        ));
    }
    let size = meta.len();
    if size > part_len || size > cap {
        return Err(PayloadError::Ext4TooLarge {
            part_offset,
            path: path.to_string(),
            size,
            cap: cap.min(part_len),
        });
    }
    let file = fs
        .open(path)
        .map_err(|e| ext4_error(part_offset, path, e))?;
    Ok((file, size))
}

fn ext4_error(part_offset: u64, path: &str, e: ext4_view::Ext4Error) -> PayloadError {
    PayloadError::Ext4File {
        part_offset,
        path: path.to_string(),
        cause: e.to_string(),
    }
}

fn ext4_io_error(part_offset: u64, path: &str, e: io::Error) -> PayloadError {
    PayloadError::Ext4File {
        part_offset,
        path: path.to_string(),
        cause: e.to_string(),
    }
}

/// Passes writes through and keeps the first
/// [`bzimage::RELEASE_PREFIX_LEN`] bytes, all the kernel version needs.
struct HeadKeeper<'a, W: Write> {
    out: &'a mut W,
    head: Vec<u8>,
}

impl<'a, W: Write> HeadKeeper<'a, W> {
    fn new(out: &'a mut W) -> HeadKeeper<'a, W> {
        HeadKeeper {
            out,
            head: Vec::new(),
        }
    }
}

impl<W: Write> Write for HeadKeeper<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.out.write(data)?;
        let room = bzimage::RELEASE_PREFIX_LEN.saturating_sub(self.head.len());
        self.head
            .extend_from_slice(data.get(..n.min(room)).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Refuses a file whose directory entry claims more bytes than its whole
/// partition: such a size is corrupt, and trusting it would reserve memory
/// the disk cannot fill.
fn check_fits<R: Read + Seek>(
    esp: &Esp<R>,
    esp_offset: u64,
    path: &str,
    size: u64,
) -> Result<(), PayloadError> {
    if size > esp.len() {
        return Err(PayloadError::LargerThanPartition {
            esp_offset,
            path: path.to_string(),
            size,
            esp_len: esp.len(),
        });
    }
    Ok(())
}

/// Checks a file's size against its partition and `cap`, before anything
/// is read or reserved for it.
fn checked_size<R: Read + Seek>(
    esp: &Esp<R>,
    esp_offset: u64,
    path: &str,
    cap: u64,
) -> Result<u64, PayloadError> {
    let size = esp.file_size(path).map_err(|cause| PayloadError::File {
        esp_offset,
        path: path.to_string(),
        cause,
    })?;
    check_fits(esp, esp_offset, path, size)?;
    if size > cap {
        return Err(PayloadError::TooLarge {
            esp_offset,
            path: path.to_string(),
            size,
            cap,
        });
    }
    Ok(size)
}

fn read_error(esp_offset: u64, path: &str, e: io::Error) -> PayloadError {
    PayloadError::File {
        esp_offset,
        path: path.to_string(),
        cause: EspError::Io {
            path: path.to_string(),
            source: e,
        },
    }
}

/// Copies a whole file into `out` in chunks of [`STREAM_CHUNK`] bytes,
/// with its size checked against `cap`, and returns how many bytes it
/// copied.
fn stream_whole<R: Read + Seek, W: Write>(
    esp: &Esp<R>,
    esp_offset: u64,
    path: &str,
    cap: u64,
    out: &mut W,
) -> Result<u64, PayloadError> {
    let size = checked_size(esp, esp_offset, path, cap)?;
    let file = esp.open_file(path).map_err(|cause| PayloadError::File {
        esp_offset,
        path: path.to_string(),
        cause,
    })?;
    let mut chunked = BufWriter::with_capacity(STREAM_CHUNK, out);
    // io::copy into a BufWriter reads straight into its buffer, so each
    // read and each write moves STREAM_CHUNK bytes. It does not say whether
    // a failure was the disk's or the memfd's; both name the file.
    let copied = io::copy(&mut file.take(size), &mut chunked)
        .map_err(|e| read_error(esp_offset, path, e))?;
    chunked.flush().map_err(|cause| PayloadError::KernelWrite {
        esp_offset,
        path: path.to_string(),
        cause,
    })?;
    Ok(copied)
}

/// Reads a whole file, with its size checked against `cap` and the buffer
/// reserved fallibly: PID 1 must not abort on a bogus size.
fn read_whole<R: Read + Seek>(
    esp: &Esp<R>,
    esp_offset: u64,
    path: &str,
    cap: u64,
) -> Result<Vec<u8>, PayloadError> {
    let size = checked_size(esp, esp_offset, path, cap)?;
    let mut buf = Vec::new();
    let want = usize::try_from(size).unwrap_or(usize::MAX);
    buf.try_reserve_exact(want)
        .map_err(|_| PayloadError::OutOfMemory {
            path: path.to_string(),
            size,
        })?;
    let file = esp.open_file(path).map_err(|cause| PayloadError::File {
        esp_offset,
        path: path.to_string(),
        cause,
    })?;
    file.take(size)
        .read_to_end(&mut buf)
        .map_err(|e| read_error(esp_offset, path, e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::boot_dir::Names;
    use std::collections::BTreeMap;

    /// Files in memory, each with the size its directory entry claims
    /// (which a damaged filesystem can get wrong).
    struct Claimed(BTreeMap<&'static str, (u64, Vec<u8>)>);

    impl BootFiles for Claimed {
        fn node(&self, path: &str) -> Result<Node, String> {
            Ok(self
                .0
                .get(path)
                .map_or(Node::Missing, |(size, _)| Node::File(*size)))
        }
        fn open(&self, path: &str) -> Result<Box<dyn Read + '_>, String> {
            let (_, bytes) = self.0.get(path).ok_or("gone")?;
            Ok(Box::new(bytes.as_slice()))
        }
        fn names(&self, _: &str, _: usize) -> Names {
            Names::Missing
        }
    }

    fn stream(files: &Claimed, part_len: u64) -> Result<(Vec<u8>, StreamedPayload), PayloadError> {
        let mut kernel = Vec::new();
        let part = ByteRange {
            offset: 1 << 20,
            len: part_len,
        };
        let initrd = ["/boot/initrd".to_string()];
        let s = stream_from_files(files, "btrfs", part, "/boot/vmlinuz", &initrd, &mut kernel)?;
        Ok((kernel, s))
    }

    #[test]
    fn a_mounted_entry_streams_its_kernel_and_pads_its_initrd() {
        let files = Claimed(BTreeMap::from([
            ("/boot/vmlinuz", (5, b"kernl".to_vec())),
            ("/boot/initrd", (3, b"ird".to_vec())),
        ]));
        let (kernel, s) = stream(&files, 1 << 20).unwrap();
        assert_eq!(kernel, b"kernl");
        assert_eq!(s.kernel_len, 5);
        assert_eq!(s.initrd, b"ird\0");
    }

    #[test]
    fn a_mounted_file_larger_than_its_partition_is_refused_before_reading() {
        let files = Claimed(BTreeMap::from([
            ("/boot/vmlinuz", (5, b"kernl".to_vec())),
            ("/boot/initrd", (u64::MAX, Vec::new())),
        ]));
        let err = stream(&files, 1 << 20).unwrap_err().to_string();
        assert!(
            err.contains("/boot/initrd on the btrfs partition at byte offset 1048576 is 18446744073709551615 bytes, more than the 1048576 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_mounted_file_shorter_than_its_size_or_missing_is_an_error() {
        let files = Claimed(BTreeMap::from([
            ("/boot/vmlinuz", (9, b"kernl".to_vec())),
            ("/boot/initrd", (3, b"ird".to_vec())),
        ]));
        let err = stream(&files, 1 << 20).unwrap_err().to_string();
        assert!(
            err.contains(
                "/boot/vmlinuz on the btrfs partition at byte offset 1048576: the file ended early"
            ),
            "{err}"
        );
        let files = Claimed(BTreeMap::from([("/boot/vmlinuz", (5, b"kernl".to_vec()))]));
        let err = stream(&files, 1 << 20).unwrap_err().to_string();
        assert!(
            err.contains(
                "/boot/initrd on the btrfs partition at byte offset 1048576: it does not exist"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_kernel_passes_through_and_only_its_header_is_kept() {
        let kernel: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        let mut head = HeadKeeper::new(&mut out);
        let mut chunked = BufWriter::with_capacity(STREAM_CHUNK, &mut head);
        io::copy(&mut kernel.as_slice(), &mut chunked).unwrap();
        chunked.flush().unwrap();
        drop(chunked);
        assert_eq!(head.head.len(), bzimage::RELEASE_PREFIX_LEN);
        assert_eq!(head.head, kernel[..bzimage::RELEASE_PREFIX_LEN]);
        assert_eq!(out, kernel);
    }
}
