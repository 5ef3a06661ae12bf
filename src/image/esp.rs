//! An EFI system partition read in userspace with the `fatfs` crate, over a
//! read-only [`Window`].
//!
//! fatfs only writes on its own when something changed (the dirty flag, the
//! FSInfo free-cluster count, an access date); with the default options and
//! read-only use none of these change, and the window refuses writes anyway.
//! Paths are looked up case-insensitively, as FAT itself does.

use super::partitions::Partition;
use super::window::Window;
use fatfs::{FileSystem, FsOptions};
use serde::Serialize;
use std::io::{self, Read, Seek};

/// One entry of a directory on the ESP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EspEntry {
    /// The long file name when there is one, else the 8.3 name.
    pub name: String,
    pub size: u64,
    pub is_dir: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error(
        "{} at byte offset {offset} ({len} bytes) is not a FAT filesystem ({source}); \
         an EFI system partition must be FAT32: format it with `mkfs.vfat -F 32`",
        partition.map_or("the partition".to_string(), |n| format!("partition {n}"))
    )]
    NotFat {
        /// The partition number, when known.
        partition: Option<u32>,
        offset: u64,
        len: u64,
        #[source]
        source: io::Error,
    },
    #[error("{path} was not found on the EFI system partition")]
    NotFound { path: String },
    #[error(
        "{path} on the EFI system partition is {size} bytes, more than the {cap}-byte limit for it"
    )]
    TooLarge { path: String, size: u64, cap: u64 },
    #[error(
        "{path} on the EFI system partition has more than {max} entries; its directory is probably damaged: check it with `fsck.vfat -n`"
    )]
    TooManyEntries { path: String, max: usize },
    #[error(
        "reading {path} on the EFI system partition failed: {source}; the FAT filesystem may be damaged: check it with `fsck.vfat -n`"
    )]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl EspError {
    /// True when a path is simply absent (an ESP without /loader/entries is
    /// normal), as opposed to a damaged filesystem.
    pub fn is_not_found(&self) -> bool {
        matches!(self, EspError::NotFound { .. })
    }
}

/// A mounted-in-userspace FAT filesystem.
pub struct Esp<R: Read + Seek> {
    fs: FileSystem<Window<R>>,
    offset: u64,
    len: u64,
}

/// fatfs paths are relative to the root and use `/`.
fn relative(path: &str) -> &str {
    path.trim_matches('/')
}

fn map_err(path: &str, e: io::Error) -> EspError {
    if e.kind() == io::ErrorKind::NotFound {
        EspError::NotFound {
            path: path.to_string(),
        }
    } else {
        EspError::Io {
            path: path.to_string(),
            source: e,
        }
    }
}

impl<R: Read + Seek> Esp<R> {
    /// Opens the FAT filesystem in `window` (a partition's bytes).
    pub fn open(window: Window<R>) -> Result<Esp<R>, EspError> {
        let (offset, len) = (window.offset(), window.len());
        let fs = FileSystem::new(window, FsOptions::new().update_accessed_date(false)).map_err(
            |source| EspError::NotFat {
                partition: None,
                offset,
                len,
                source,
            },
        )?;
        Ok(Esp { fs, offset, len })
    }

    /// Opens partition `part` of the image data area `data`.
    pub fn open_partition(data: R, part: &Partition) -> Result<Esp<R>, EspError> {
        Esp::open(Window::new(data, part.range.offset, part.range.len)).map_err(|e| match e {
            EspError::NotFat {
                offset,
                len,
                source,
                ..
            } => EspError::NotFat {
                partition: Some(part.number),
                offset,
                len,
                source,
            },
            other => other,
        })
    }

    /// Where the partition starts in the image's data area.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The volume label from the boot sector, trimmed.
    pub fn volume_label(&self) -> String {
        self.fs.volume_label().trim().to_string()
    }

    /// Lists a directory such as `/EFI/Linux`, without `.` and `..`.
    pub fn list_dir(&self, path: &str) -> Result<Vec<EspEntry>, EspError> {
        let dir = self.dir_at(path)?;
        let mut out = Vec::new();
        for entry in capped(&dir, path)? {
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            out.push(EspEntry {
                name,
                size: entry.len(),
                is_dir: entry.is_dir(),
            });
        }
        Ok(out)
    }

    /// The size of a file, from its directory entry.
    pub fn file_size(&self, path: &str) -> Result<u64, EspError> {
        Ok(self.file_entry(path)?.len())
    }

    /// Reads a whole file, refusing one larger than `cap` bytes (sizes on a
    /// disk are untrusted).
    pub fn read_file(&self, path: &str, cap: u64) -> Result<Vec<u8>, EspError> {
        let entry = self.file_entry(path)?;
        let size = entry.len();
        if size > cap {
            return Err(EspError::TooLarge {
                path: path.to_string(),
                size,
                cap,
            });
        }
        let mut out = Vec::new();
        entry
            .to_file()
            .take(cap)
            .read_to_end(&mut out)
            .map_err(|e| map_err(path, e))?;
        if out.len() as u64 != size {
            return Err(EspError::Io {
                path: path.to_string(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "its directory entry says {size} bytes but its clusters hold {}",
                        out.len()
                    ),
                ),
            });
        }
        Ok(out)
    }

    /// Opens a file for reading parts of it, such as a UKI's PE headers and
    /// small sections, without reading the kernel.
    pub fn open_file(&self, path: &str) -> Result<fatfs::File<'_, Window<R>>, EspError> {
        Ok(self.file_entry(path)?.to_file())
    }

    /// Walks `path` one component at a time. fatfs's own lookup would loop
    /// forever on a directory whose cluster chain is cyclic; this walk is
    /// capped (see [`MAX_DIR_ENTRIES`]).
    fn dir_at(&self, path: &str) -> Result<fatfs::Dir<'_, Window<R>>, EspError> {
        let mut dir = self.fs.root_dir();
        for part in relative(path).split('/').filter(|p| !p.is_empty()) {
            let entry = find(&dir, part, path)?;
            if !entry.is_dir() {
                return Err(EspError::NotFound {
                    path: path.to_string(),
                });
            }
            dir = entry.to_dir();
        }
        Ok(dir)
    }

    fn file_entry(&self, path: &str) -> Result<fatfs::DirEntry<'_, Window<R>>, EspError> {
        let rel = relative(path);
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = self.dir_at(parent).map_err(|e| match e {
            EspError::NotFound { .. } => EspError::NotFound {
                path: path.to_string(),
            },
            other => other,
        })?;
        let entry = find(&dir, name, path)?;
        if entry.is_dir() {
            return Err(EspError::NotFound {
                path: path.to_string(),
            });
        }
        Ok(entry)
    }
}

/// The most entries read from one directory. An ESP's boot directories hold
/// a handful; a corrupt (cyclic) cluster chain would otherwise never end.
pub const MAX_DIR_ENTRIES: usize = 16 * 1024;

/// The entries of `dir`, stopping with an error after [`MAX_DIR_ENTRIES`].
fn capped<'a, R: Read + Seek>(
    dir: &fatfs::Dir<'a, Window<R>>,
    path: &str,
) -> Result<Vec<fatfs::DirEntry<'a, Window<R>>>, EspError> {
    let mut out = Vec::new();
    for entry in dir.iter() {
        if out.len() >= MAX_DIR_ENTRIES {
            return Err(EspError::TooManyEntries {
                path: path.to_string(),
                max: MAX_DIR_ENTRIES,
            });
        }
        out.push(entry.map_err(|e| map_err(path, e))?);
    }
    Ok(out)
}

/// The entry called `name` in `dir`, matching the long or the 8.3 name
/// without regard to case, as FAT does.
fn find<'a, R: Read + Seek>(
    dir: &fatfs::Dir<'a, Window<R>>,
    name: &str,
    path: &str,
) -> Result<fatfs::DirEntry<'a, Window<R>>, EspError> {
    capped(dir, path)?
        .into_iter()
        .find(|e| {
            e.file_name().eq_ignore_ascii_case(name)
                || e.short_file_name().eq_ignore_ascii_case(name)
        })
        .ok_or_else(|| EspError::NotFound {
            path: path.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fatfs::{FatType, FormatVolumeOptions};
    use std::cell::Cell;
    use std::io::{Cursor, SeekFrom, Write};
    use std::rc::Rc;

    /// A FAT32 volume in memory holding `/EFI/Linux/a.efi` and `n` empty
    /// files in the root.
    fn fat32(n: usize) -> Vec<u8> {
        let mut disk = Cursor::new(vec![0u8; 34 * 1024 * 1024]);
        fatfs::format_volume(
            &mut disk,
            FormatVolumeOptions::new()
                .fat_type(FatType::Fat32)
                .bytes_per_cluster(512),
        )
        .unwrap();
        {
            let fs = FileSystem::new(&mut disk, FsOptions::new()).unwrap();
            {
                let root = fs.root_dir();
                for i in 0..n {
                    root.create_file(&format!("f{i}.txt")).unwrap();
                }
                let dir = root.create_dir("EFI").unwrap().create_dir("Linux").unwrap();
                dir.create_file("a.efi")
                    .unwrap()
                    .write_all(&[9u8; 3000])
                    .unwrap();
            }
            fs.unmount().unwrap();
        }
        disk.into_inner()
    }

    /// Counts write attempts and refuses them.
    struct Strict {
        inner: Cursor<Vec<u8>>,
        writes: Rc<Cell<usize>>,
    }

    impl Read for Strict {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.inner.read(buf)
        }
    }

    impl Seek for Strict {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.inner.seek(to)
        }
    }

    impl Write for Strict {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.writes.set(self.writes.get() + 1);
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn zeros_are_not_a_fat_filesystem() {
        let w = Window::new(Cursor::new(vec![0u8; 1024 * 1024]), 4096, 512 * 1024);
        let err = Esp::open(w).err().unwrap();
        let msg = err.to_string();
        assert!(
            matches!(err, EspError::NotFat { offset: 4096, .. }),
            "{msg}"
        );
        assert!(msg.contains("mkfs.vfat"), "{msg}");
    }

    #[test]
    fn fatfs_attempts_no_write_while_reading_and_dropping() {
        let writes = Rc::new(Cell::new(0));
        {
            let dev = Strict {
                inner: Cursor::new(fat32(3)),
                writes: writes.clone(),
            };
            let fs = FileSystem::new(dev, FsOptions::new().update_accessed_date(false)).unwrap();
            let root = fs.root_dir();
            assert_eq!(root.iter().count(), 4);
            let mut f = root.open_file("efi/linux/A.EFI").unwrap();
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).unwrap();
            assert_eq!(buf.len(), 3000);
        }
        assert_eq!(writes.get(), 0);
    }

    #[test]
    fn esp_reads_an_in_memory_volume() {
        let esp = Esp::open(Window::new(Cursor::new(fat32(0)), 0, 34 * 1024 * 1024)).unwrap();
        let listed = esp.list_dir("/EFI/Linux/").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "a.efi");
        assert_eq!(esp.read_file("EFI/LINUX/a.efi", 3000).unwrap().len(), 3000);
        assert!(esp.file_size("/EFI/Linux").unwrap_err().is_not_found());
        assert!(
            esp.file_size("/EFI/Linux/b.efi")
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn cyclic_directory_chain_stops_with_an_error() {
        // 20 entries of 32 bytes fill more than one 512-byte cluster, so the
        // root (cluster 2) continues in cluster 3. Pointing cluster 3 back at
        // cluster 2 makes a directory without end.
        let mut bytes = fat32(20);
        let reserved = u64::from(u16::from_le_bytes([bytes[0x0E], bytes[0x0F]])) * 512;
        let fat3 = (reserved + 3 * 4) as usize;
        assert_ne!(
            u32::from_le_bytes(bytes[fat3..fat3 + 4].try_into().unwrap()) & 0x0FFF_FFFF,
            0,
            "cluster 3 should belong to the root directory"
        );
        bytes[fat3..fat3 + 4].copy_from_slice(&2u32.to_le_bytes());
        let len = bytes.len() as u64;
        let esp = Esp::open(Window::new(Cursor::new(bytes), 0, len)).unwrap();
        let err = esp.list_dir("/").unwrap_err();
        assert!(matches!(err, EspError::TooManyEntries { .. }), "{err}");
        let err = esp.file_size("/missing.txt").unwrap_err();
        assert!(matches!(err, EspError::TooManyEntries { .. }), "{err}");
    }

    #[test]
    fn file_with_a_corrupt_first_cluster_is_an_error() {
        // Cluster numbers below 2 do not exist; fatfs computes `cluster - 2`
        // unchecked (see Cargo.toml), so this must end as an error.
        let mut bytes = fat32(0);
        let at = bytes
            .windows(11)
            .position(|w| w == b"A       EFI")
            .expect("the 8.3 entry of a.efi");
        bytes[at + 20..at + 22].copy_from_slice(&0u16.to_le_bytes());
        bytes[at + 26..at + 28].copy_from_slice(&1u16.to_le_bytes());
        let len = bytes.len() as u64;
        let esp = Esp::open(Window::new(Cursor::new(bytes), 0, len)).unwrap();
        assert_eq!(esp.file_size("/EFI/Linux/a.efi").unwrap(), 3000);
        let err = esp.read_file("/EFI/Linux/a.efi", 1 << 20).unwrap_err();
        assert!(err.to_string().contains("fsck.vfat"), "{err}");
    }
}
