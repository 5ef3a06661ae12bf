//! An EFI system partition read in userspace with the `fatfs` crate, over a
//! read-only [`Window`].
//!
//! fatfs only writes on its own when something changed (the dirty flag, the
//! FSInfo free-cluster count, an access date); with the default options and
//! read-only use none of these change, and the window refuses writes anyway.
//! Paths are looked up case-insensitively, as FAT itself does.
//!
//! Directories are listed by [`fat_dir`](super::fat_dir), not by fatfs:
//! fatfs has no cycle check on a directory's cluster chain (see that
//! module). Each directory is read once per partition and kept, indexed by
//! its first cluster, so resolving thousands of paths costs one walk per
//! directory. fatfs opens a file only after the walk has checked every
//! directory on its path, so fatfs's own lookup walks finite chains.

use super::fat_dir::{self, ChainFault, DirLocation, FatGeometry, RawEntry, ReadDirError};
use super::partitions::Partition;
use super::window::Window;
use fatfs::{FileSystem, FsOptions};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

/// One entry of a directory on the ESP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EspEntry {
    /// The long file name when there is one, else the 8.3 name.
    pub name: String,
    pub size: u64,
    pub is_dir: bool,
    /// The entry's first cluster (0 for an empty file). Two entries with
    /// the same one are cross-linked: they share their data.
    pub first_cluster: u32,
}

/// The most directory slots read on one partition, all directories
/// together: 64 Ki slots (2 MiB) is the FAT limit for a single directory,
/// while discovery reads a handful of small ones (`/EFI/Linux`,
/// `/loader/entries`, the folders kernels sit in). Deleted and long-name
/// slots count too, so this bounds the work however the slots are used,
/// and the listings kept stay a few MiB at most. Directories are read in
/// 512-byte pieces up to their end marker, so 256 kernel folders of a few
/// entries each spend 4,096 slots even with 32 KiB clusters.
pub const MAX_DIR_SLOTS_PER_ESP: u64 = 64 * 1024;

/// The most FAT entries followed on one partition, all directory chains
/// together, failed walks included: sixteen directories of the largest
/// legal size at the smallest cluster size (4,096 clusters of 512 bytes
/// each). Without it, thousands of paths into directories whose chains
/// loop only after 4,095 clusters would each cost a full walk.
pub const MAX_FAT_STEPS_PER_ESP: u64 = 64 * 1024;

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
        "the directory {path} on the EFI system partition is damaged: {fault}; run `fsck.vfat` on it (on a copy first)"
    )]
    DamagedDir { path: String, fault: ChainFault },
    #[error(
        "the directories read on the EFI system partition hold more than {max} slots together (reached at {path}); \
         the partition is probably damaged: check it with `fsck.vfat -n`"
    )]
    TooManyEntries { path: String, max: u64 },
    #[error(
        "following the directories' cluster chains on the EFI system partition took more than {max} FAT lookups (reached at {path}); \
         the partition is probably damaged: check it with `fsck.vfat -n`"
    )]
    TooManyFatLookups { path: String, max: u64 },
    #[error(
        "a directory on the way to {path} on the EFI system partition spans {slots} slots, more than the {max} vhdboot searches per file; \
         it is probably damaged or padded: check the partition with `fsck.vfat -n`"
    )]
    DirTooLarge { path: String, slots: u64, max: u64 },
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

/// The partition's bytes, shared by fatfs and the directory walk. fatfs
/// seeks before every read it makes (its `FsIoAdapter` and `DiskSlice`),
/// as does the walk, so neither depends on where the other left the
/// position.
pub struct EspDisk<R>(Rc<RefCell<Window<R>>>);

impl<R: Read + Seek> Read for EspDisk<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl<R: Read + Seek> Seek for EspDisk<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.0.borrow_mut().seek(to)
    }
}

impl<R> Write for EspDisk<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// The most slots a directory may span for fatfs to look a file up in it.
/// fatfs searches a directory from its start for every file it opens, so
/// opening the 256 entry files of a directory padded with 64 Ki deleted
/// slots would cost 16 M slot reads; 8,192 slots (256 KiB) hold hundreds
/// of long-named files, far more than `/EFI/Linux` or `/loader/entries`.
pub const MAX_SLOTS_SEARCHED_BY_FATFS: u64 = 8 * 1024;

/// A name as both this walk and fatfs compare it: Unicode upper case
/// (fatfs's `eq_ignore_case`), so the two pick the same entry.
fn folded(name: &str) -> String {
    name.chars().flat_map(char::to_uppercase).collect()
}

/// One directory's entries, with an index by folded long and short name.
struct Listing {
    entries: Vec<EspEntry>,
    by_name: HashMap<String, usize>,
    /// How many slots were read, up to the end marker, in 512-byte pieces.
    slots: u64,
}

impl Listing {
    fn new(raw: Vec<RawEntry>, slots: u64) -> Listing {
        let mut by_name = HashMap::new();
        let mut entries = Vec::with_capacity(raw.len());
        for (i, e) in raw.into_iter().enumerate() {
            // The first of two equal names wins, as in a linear search.
            by_name.entry(folded(&e.name)).or_insert(i);
            by_name.entry(folded(&e.short_name)).or_insert(i);
            entries.push(EspEntry {
                name: e.name,
                size: e.size,
                is_dir: e.is_dir,
                first_cluster: e.first_cluster,
            });
        }
        Listing {
            entries,
            by_name,
            slots,
        }
    }

    fn find(&self, name: &str) -> Option<&EspEntry> {
        self.by_name
            .get(&folded(name))
            .and_then(|&i| self.entries.get(i))
    }
}

/// What the walk remembers per directory: its listing, or why it has none.
type Cached = Result<Rc<Listing>, ChainFault>;

/// A mounted-in-userspace FAT filesystem.
pub struct Esp<R: Read + Seek> {
    fs: FileSystem<EspDisk<R>>,
    disk: Rc<RefCell<Window<R>>>,
    geometry: FatGeometry,
    listings: RefCell<HashMap<DirLocation, Cached>>,
    slots_left: RefCell<u64>,
    fat_steps_left: RefCell<u64>,
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
        let not_fat = |source| EspError::NotFat {
            partition: None,
            offset,
            len,
            source,
        };
        let disk = Rc::new(RefCell::new(window));
        let fs = FileSystem::new(
            EspDisk(disk.clone()),
            FsOptions::new().update_accessed_date(false),
        )
        .map_err(not_fat)?;
        let geometry = FatGeometry::read(&mut EspDisk(disk.clone())).map_err(not_fat)?;
        Ok(Esp {
            fs,
            disk,
            geometry,
            listings: RefCell::new(HashMap::new()),
            slots_left: RefCell::new(MAX_DIR_SLOTS_PER_ESP),
            fat_steps_left: RefCell::new(MAX_FAT_STEPS_PER_ESP),
            offset,
            len,
        })
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
        Ok(self.dir_listing(path)?.entries.clone())
    }

    /// The size of a file, from its directory entry.
    pub fn file_size(&self, path: &str) -> Result<u64, EspError> {
        Ok(self.file_entry(path)?.size)
    }

    /// Reads a whole file, refusing one larger than `cap` bytes (sizes on a
    /// disk are untrusted).
    pub fn read_file(&self, path: &str, cap: u64) -> Result<Vec<u8>, EspError> {
        let size = self.file_entry(path)?.size;
        if size > cap {
            return Err(EspError::TooLarge {
                path: path.to_string(),
                size,
                cap,
            });
        }
        let mut out = Vec::new();
        self.open_file(path)?
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
    /// small sections, without reading the kernel. Every directory on the
    /// path is walked and checked first, so fatfs's own lookup ends.
    pub fn open_file(&self, path: &str) -> Result<fatfs::File<'_, EspDisk<R>>, EspError> {
        self.file_entry(path)?;
        let rel = relative(path);
        let parent = rel.rsplit_once('/').map_or("", |(p, _)| p);
        let (_, slots) = self.dir_listing_slots(parent)?;
        if slots > MAX_SLOTS_SEARCHED_BY_FATFS {
            return Err(EspError::DirTooLarge {
                path: path.to_string(),
                slots,
                max: MAX_SLOTS_SEARCHED_BY_FATFS,
            });
        }
        self.fs
            .root_dir()
            .open_file(relative(path))
            .map_err(|e| map_err(path, e))
    }

    /// The listing of the directory at `path`, walking each component
    /// through the cached listings.
    fn dir_listing(&self, path: &str) -> Result<Rc<Listing>, EspError> {
        self.dir_listing_slots(path).map(|(listing, _)| listing)
    }

    /// The listing of the directory at `path`, and the most slots any
    /// directory on the way spans.
    fn dir_listing_slots(&self, path: &str) -> Result<(Rc<Listing>, u64), EspError> {
        let mut location = self.geometry.root();
        let mut walked = String::new();
        let mut listing = self.listing(location, "/")?;
        let mut slots = listing.slots;
        for part in relative(path).split('/').filter(|p| !p.is_empty()) {
            walked.push('/');
            walked.push_str(part);
            let entry = listing.find(part).ok_or_else(|| EspError::NotFound {
                path: path.to_string(),
            })?;
            if !entry.is_dir {
                return Err(EspError::NotFound {
                    path: path.to_string(),
                });
            }
            location = DirLocation::Chain {
                first_cluster: entry.first_cluster,
            };
            listing = self.listing(location, &walked)?;
            slots = slots.max(listing.slots);
        }
        Ok((listing, slots))
    }

    fn file_entry(&self, path: &str) -> Result<EspEntry, EspError> {
        let rel = relative(path);
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let dir = self.dir_listing(parent).map_err(|e| match e {
            EspError::NotFound { .. } => EspError::NotFound {
                path: path.to_string(),
            },
            other => other,
        })?;
        match dir.find(name) {
            Some(e) if !e.is_dir => Ok(e.clone()),
            _ => Err(EspError::NotFound {
                path: path.to_string(),
            }),
        }
    }

    /// One directory's listing, read at most once per partition.
    fn listing(&self, location: DirLocation, path: &str) -> Result<Rc<Listing>, EspError> {
        let damaged = |fault| EspError::DamagedDir {
            path: path.to_string(),
            fault,
        };
        if let Some(cached) = self.listings.borrow().get(&location) {
            return cached.clone().map_err(damaged);
        }
        let mut disk = EspDisk(self.disk.clone());
        let extents = {
            let mut steps = self.fat_steps_left.borrow_mut();
            self.geometry.dir_extents(&mut disk, location, &mut steps)
        };
        let read = match extents {
            Err(ChainFault::OverBudget) => {
                return Err(EspError::TooManyFatLookups {
                    path: path.to_string(),
                    max: MAX_FAT_STEPS_PER_ESP,
                });
            }
            Err(fault) => Err(fault),
            Ok(extents) => {
                let mut left = self.slots_left.borrow_mut();
                let before = *left;
                match fat_dir::read_dir(&mut disk, &self.geometry, &extents, &mut left) {
                    Ok(raw) => Ok((raw, before.saturating_sub(*left))),
                    Err(ReadDirError::OverBudget) => {
                        return Err(EspError::TooManyEntries {
                            path: path.to_string(),
                            max: MAX_DIR_SLOTS_PER_ESP,
                        });
                    }
                    Err(ReadDirError::Io(e)) => Err(ChainFault::from(e)),
                }
            }
        };
        let cached: Cached = read.map(|(raw, slots)| Rc::new(Listing::new(raw, slots)));
        self.listings.borrow_mut().insert(location, cached.clone());
        cached.map_err(damaged)
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// A FAT32 volume holding `files` (path, bytes), directories made on the way.
    pub(crate) fn fat32_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut disk = Cursor::new(fat32(0));
        {
            let fs = FileSystem::new(&mut disk, FsOptions::new()).unwrap();
            {
                let root = fs.root_dir();
                for (path, bytes) in files {
                    let (dir, _) = path.rsplit_once('/').unwrap();
                    let mut walked = String::new();
                    for part in dir.split('/').filter(|p| !p.is_empty()) {
                        walked = format!("{walked}/{part}");
                        if root.open_dir(&walked[1..]).is_err() {
                            root.create_dir(&walked[1..]).unwrap();
                        }
                    }
                    root.create_file(path.trim_start_matches('/'))
                        .unwrap()
                        .write_all(bytes)
                        .unwrap();
                }
            }
            fs.unmount().unwrap();
        }
        disk.into_inner()
    }

    /// Counts the bytes read through it.
    struct Counted {
        inner: Cursor<Vec<u8>>,
        reads: Rc<Cell<usize>>,
    }

    impl Read for Counted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads.set(self.reads.get() + 1);
            self.inner.read(buf)
        }
    }

    impl Seek for Counted {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.inner.seek(to)
        }
    }

    #[test]
    fn long_names_resolve_in_any_case_and_each_directory_is_read_once() {
        let bytes = fat32_with(&[
            ("/EFI/Linux/debian-6.1.0-18-amd64.efi", &[1u8; 100][..]),
            ("/EFI/Linux/Short.EFI", &[2u8; 10][..]),
        ]);
        let len = bytes.len() as u64;
        let reads = Rc::new(Cell::new(0));
        let dev = Counted {
            inner: Cursor::new(bytes),
            reads: reads.clone(),
        };
        let esp = Esp::open(Window::new(dev, 0, len)).unwrap();
        let mut names: Vec<String> = esp
            .list_dir("/efi/linux")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert_eq!(names, ["Short.EFI", "a.efi", "debian-6.1.0-18-amd64.efi"]);
        let after_first = reads.get();
        for _ in 0..1000 {
            assert_eq!(
                esp.file_size("/EFI/LINUX/DEBIAN-6.1.0-18-AMD64.EFI")
                    .unwrap(),
                100
            );
            assert_eq!(esp.file_size("/EFI/Linux/short.efi").unwrap(), 10);
            assert!(
                esp.file_size("/EFI/Linux/none.efi")
                    .unwrap_err()
                    .is_not_found()
            );
        }
        assert_eq!(reads.get(), after_first, "a lookup read the disk again");
        assert_eq!(
            esp.read_file("/EFI/Linux/debian-6.1.0-18-amd64.efi", 100)
                .unwrap(),
            vec![1u8; 100]
        );
    }

    #[test]
    fn a_chain_longer_than_a_directory_may_be_is_damage() {
        // 20 entries of 32 bytes fill the root's first cluster (2) and
        // continue in cluster 3; linking cluster 3 to fresh clusters one
        // after the other past 2 MiB makes a chain with no loop that is
        // still longer than any FAT directory.
        let mut bytes = fat32(20);
        let reserved = u64::from(u16::from_le_bytes([bytes[0x0E], bytes[0x0F]])) * 512;
        let link = |bytes: &mut Vec<u8>, from: u32, to: u32| {
            let at = (reserved + u64::from(from) * 4) as usize;
            bytes[at..at + 4].copy_from_slice(&to.to_le_bytes());
        };
        let first_free = 100;
        link(&mut bytes, 3, first_free);
        let n = 4200;
        for c in first_free..first_free + n {
            link(&mut bytes, c, c + 1);
        }
        link(&mut bytes, first_free + n, 0x0FFF_FFFF);
        let len = bytes.len() as u64;
        let esp = Esp::open(Window::new(Cursor::new(bytes), 0, len)).unwrap();
        let err = esp.list_dir("/").unwrap_err();
        assert!(
            matches!(
                err,
                EspError::DamagedDir {
                    fault: ChainFault::TooLong { max: 4096 },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn many_directories_with_long_looping_chains_spend_one_budget() {
        // Twenty directories, each linked into one chain of 3,991 clusters
        // that loops back on itself: each walk costs ~4,000 FAT lookups
        // before the loop shows, so the per-partition budget, not the
        // number of directories, bounds the work.
        let names: Vec<String> = (0..20).map(|i| format!("/D{i}/x")).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let mut bytes = fat32_with(&files);
        let len = bytes.len() as u64;
        let dirs: Vec<u32> = {
            let esp = Esp::open(Window::new(Cursor::new(bytes.clone()), 0, len)).unwrap();
            (0..20)
                .map(|i| {
                    let root = esp.list_dir("/").unwrap();
                    root.iter()
                        .find(|e| e.name == format!("D{i}"))
                        .unwrap()
                        .first_cluster
                })
                .collect()
        };
        let reserved = u64::from(u16::from_le_bytes([bytes[0x0E], bytes[0x0F]])) * 512;
        let mut link = |from: u32, to: u32| {
            let at = (reserved + u64::from(from) * 4) as usize;
            bytes[at..at + 4].copy_from_slice(&to.to_le_bytes());
        };
        for &d in &dirs {
            link(d, 1000);
        }
        for c in 1000..4990 {
            link(c, c + 1);
        }
        link(4990, 1000);
        let esp = Esp::open(Window::new(Cursor::new(bytes), 0, len)).unwrap();
        let errors: Vec<EspError> = names
            .iter()
            .map(|n| esp.file_size(n).unwrap_err())
            .collect();
        assert!(
            matches!(
                errors[0],
                EspError::DamagedDir {
                    fault: ChainFault::Loops { cluster: 1000 },
                    ..
                }
            ),
            "{}",
            errors[0]
        );
        let over = errors
            .iter()
            .position(|e| matches!(e, EspError::TooManyFatLookups { .. }))
            .expect("the budget ran out");
        assert_eq!(over, 16, "{}", errors[over]);
    }

    #[test]
    fn files_in_a_padded_directory_are_listed_but_not_searched_by_fatfs() {
        // /d's entries for x move to the end of a chain of 521 clusters
        // whose other slots are all deleted: 8,336 slots, more than fatfs
        // is allowed to search per file.
        let mut bytes = fat32_with(&[("/d/x.conf", b"hi")]);
        let len = bytes.len() as u64;
        let d = {
            let esp = Esp::open(Window::new(Cursor::new(bytes.clone()), 0, len)).unwrap();
            let root = esp.list_dir("/").unwrap();
            root.iter().find(|e| e.name == "d").unwrap().first_cluster
        };
        let field = |b: &[u8], at: usize, n: usize| {
            b[at..at + n]
                .iter()
                .rev()
                .fold(0u64, |v, &x| v << 8 | u64::from(x))
        };
        let reserved = field(&bytes, 0x0E, 2) * 512;
        let data = reserved + field(&bytes, 0x10, 1) * field(&bytes, 0x24, 4) * 512;
        let at = |c: u32| (data + u64::from(c - 2) * 512) as usize;
        let original = bytes[at(d)..at(d) + 512].to_vec();
        let chain: Vec<u32> = std::iter::once(d).chain(2000..2520).collect();
        for (i, &c) in chain.iter().enumerate() {
            let next = chain.get(i + 1).copied().unwrap_or(0x0FFF_FFFF);
            let fat = (reserved + u64::from(c) * 4) as usize;
            bytes[fat..fat + 4].copy_from_slice(&next.to_le_bytes());
            let cluster = &mut bytes[at(c)..at(c) + 512];
            for slot in cluster.chunks_mut(32) {
                slot.fill(0);
                slot[0] = 0xE5;
            }
        }
        // "." and ".." stay first; the entries after them go last.
        let first = at(d);
        bytes[first..first + 64].copy_from_slice(&original[..64]);
        let last = at(2519);
        bytes[last..last + 448].copy_from_slice(&original[64..]);
        let esp = Esp::open(Window::new(Cursor::new(bytes), 0, len)).unwrap();
        assert_eq!(esp.file_size("/d/x.conf").unwrap(), 2);
        let err = esp.read_file("/d/x.conf", 100).unwrap_err();
        assert!(
            matches!(err, EspError::DirTooLarge { slots: 8336, .. }),
            "{err}"
        );
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
        assert!(
            matches!(
                err,
                EspError::DamagedDir {
                    fault: ChainFault::Loops { cluster: 2 },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("loops"), "{err}");
        let err = esp.file_size("/missing.txt").unwrap_err();
        assert!(matches!(err, EspError::DamagedDir { .. }), "{err}");
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
