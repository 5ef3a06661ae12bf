//! An EFI system partition read in userspace with the `fatfs` crate, over a
//! read-only [`Window`].
//!
//! fatfs only writes on its own when something changed (the dirty flag, the
//! FSInfo free-cluster count, an access date); with the default options and
//! read-only use none of these change, and the window refuses writes anyway.
//! Paths are looked up case-insensitively, as FAT itself does.

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
        "the partition at byte offset {offset} ({len} bytes) is not a FAT filesystem ({source}); \
         an EFI system partition must be FAT32: format it with `mkfs.vfat -F 32`"
    )]
    NotFat {
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
                offset,
                len,
                source,
            },
        )?;
        Ok(Esp { fs, offset, len })
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
        let rel = relative(path);
        let dir = if rel.is_empty() {
            self.fs.root_dir()
        } else {
            self.fs
                .root_dir()
                .open_dir(rel)
                .map_err(|e| map_err(path, e))?
        };
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| map_err(path, e))?;
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
        let rel = relative(path);
        let (parent, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", rel),
        };
        self.list_dir(parent)
            .map_err(|e| match e {
                EspError::NotFound { .. } => EspError::NotFound {
                    path: path.to_string(),
                },
                other => other,
            })?
            .into_iter()
            .find(|e| !e.is_dir && e.name.eq_ignore_ascii_case(name))
            .map(|e| e.size)
            .ok_or_else(|| EspError::NotFound {
                path: path.to_string(),
            })
    }

    /// Reads a whole file, refusing one larger than `cap` bytes (sizes on a
    /// disk are untrusted).
    pub fn read_file(&self, path: &str, cap: u64) -> Result<Vec<u8>, EspError> {
        let size = self.file_size(path)?;
        if size > cap {
            return Err(EspError::TooLarge {
                path: path.to_string(),
                size,
                cap,
            });
        }
        let file = self.open_file(path)?;
        let mut out = Vec::new();
        file.take(cap)
            .read_to_end(&mut out)
            .map_err(|e| map_err(path, e))?;
        Ok(out)
    }

    /// Opens a file for reading parts of it, such as a UKI's PE headers and
    /// small sections, without reading the kernel.
    pub fn open_file(&self, path: &str) -> Result<fatfs::File<'_, Window<R>>, EspError> {
        self.fs
            .root_dir()
            .open_file(relative(path))
            .map_err(|e| map_err(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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
}
