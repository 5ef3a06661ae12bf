//! Trial boot (issue 15, item 2): the image is attached read-only and
//! every write of the target goes to `<image>.trial` beside it on the
//! host, a persistent dm-snapshot exception store in the kernel's format.
//! The next start of the menu keeps (merges) or discards it. The stack,
//! bottom to top:
//!
//! ```text
//! host volume, mounted read-write as in a normal boot
//!   ├─ image file → /dev/loopA: read-only, direct I/O, data size, no partscan
//!   └─ <image>.trial → /dev/loopB: the exception store, direct I/O
//! /dev/dm-N: dm-snapshot, origin loopA, COW loopB, persistent (P), 4 KiB chunks
//!   └─ /dev/loopC: partscan, direct I/O → loopCp1, loopCp2, … for the target
//! ```
//!
//! What this writes on the host: it creates `<image>.trial` when it is
//! absent (a file of `trial_size` bytes, which it fills with zeros itself,
//! see `ensure_store`), and then the kernel writes the store's header,
//! metadata and changed chunks into that file only. The image file itself is opened read-only.
//! An existing `.trial` is reused as it is, so that booting the trial
//! again sees the earlier changes.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vhdboot::image::vhd;
use vhdboot::sys::devmapper::{self, DmError, Target};
use vhdboot::sys::fileinfo;
use vhdboot::sys::loopdev::{self, LoopConfig, LoopError};
use vhdboot::trial::{self as plan, TrialSizeError};

use super::immutable::{ImmutableError, dio_state, partitions_over, wait_for_node};

/// The device-mapper device's name.
pub(super) const DM_NAME: &str = "vhdboot-trial";

#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    #[error("attaching the image read-only: {0}")]
    Origin(#[source] LoopError),
    #[error("creating the trial store {}: {source}", .path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the trial store {}: {source}", .path.display())]
    Size {
        path: PathBuf,
        #[source]
        source: TrialSizeError,
    },
    #[error("attaching the trial store {}: {source}", .path.display())]
    Cow {
        path: PathBuf,
        #[source]
        source: LoopError,
    },
    #[error(
        "creating the persistent snapshot: {0}; if the store is damaged, discard the trial \
         from the vhdboot menu"
    )]
    Snapshot(#[source] DmError),
    #[error(transparent)]
    Node(#[from] ImmutableError),
    #[error("attaching the partition loop device over the snapshot: {0}")]
    Top(#[source] LoopError),
}

/// Builds the stack over `file` (`size` data bytes) with the store at
/// `<file>.trial`, made `store_size` bytes when absent. Returns the line
/// to log.
pub fn attach(file: &Path, size: u64, store_size: u64) -> Result<String, TrialError> {
    let store = PathBuf::from(plan::trial_path(&file.to_string_lossy()));
    let made = ensure_store(&store, store_size)?;
    let origin = loopdev::attach(
        file,
        &LoopConfig {
            direct_io: true,
            partscan: false,
            size_limit: size,
            read_only: true,
            block_size: vhd::SECTOR_SIZE,
            ..LoopConfig::default()
        },
    )
    .map_err(TrialError::Origin)?;
    let cow = loopdev::attach(
        &store,
        &LoopConfig {
            direct_io: true,
            block_size: vhd::SECTOR_SIZE,
            ..LoopConfig::default()
        },
    )
    .map_err(|source| TrialError::Cow {
        path: store.clone(),
        source,
    })?;
    let sectors = size / u64::from(vhd::SECTOR_SIZE);
    let dm = devmapper::create(
        DM_NAME,
        &Target::persistent_snapshot(&origin.path, &cow.path, sectors),
    )
    .map_err(TrialError::Snapshot)?;
    let dm_path = dm.path();
    wait_for_node(&dm_path, Duration::from_secs(5))?;
    let (top, parts) = partitions_over(&dm_path).map_err(TrialError::Top)?;
    Ok(format!(
        "trial: {} read-only on {} ({}), store {} ({}, {} MiB) on {} ({}), snapshot {} \
         ({}:{}), partitions on {} ({}), {} partition(s)",
        file.display(),
        origin.path.display(),
        dio_state(&origin),
        store.display(),
        if made { "created" } else { "reused" },
        std::fs::metadata(&store)
            .map(|m| m.len() >> 20)
            .unwrap_or(0),
        cow.path.display(),
        dio_state(&cow),
        dm_path.display(),
        dm.major,
        dm.minor,
        top.path.display(),
        dio_state(&top),
        parts.len()
    ))
}

/// Creates the store when it is absent, after checking the host's free
/// space; returns whether it was created. A new store must read as zeros
/// so that the kernel formats it (a zero header means "new store"):
/// set_len on the host filesystem gives exactly that, and ntfs3 and exfat
/// keep the file's valid-data length, so no stale bytes show through.
fn ensure_store(store: &Path, wanted: u64) -> Result<bool, TrialError> {
    if store.exists() {
        return Ok(false);
    }
    let host_dir = store.parent().unwrap_or(Path::new("/"));
    let free = fileinfo::free_bytes(host_dir).map_err(|source| TrialError::Store {
        path: store.to_path_buf(),
        source,
    })?;
    let size = plan::check_size(wanted, free).map_err(|source| TrialError::Size {
        path: store.to_path_buf(),
        source,
    })?;
    let io_err = |source| TrialError::Store {
        path: store.to_path_buf(),
        source,
    };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(store)
        .map_err(io_err)?;
    // Extending a non-sparse file on ntfs3 or exfat allocates its clusters
    // now, so the free-space check above holds for the whole store and a
    // full host cannot invalidate the snapshot mid-boot. The zeros are
    // then written out over the whole store, so that its valid-data length
    // reaches its end before the kernel writes into it: ntfs3 meets a
    // write past a file's valid-data length by first zero-filling the gap
    // through the page cache, and with the store's loop device issuing
    // direct I/O under the snapshot, the target's I/O stalled for good in
    // two of about thirteen Debian trial boots under test (jbd2 and
    // ext4lazyinit blocked on the snapshot's root), and in none of 24 after
    // this change. It also gives the kernel a header of zeros (a new
    // store) whatever the driver does.
    let made = f
        .set_len(size)
        .and_then(|()| write_zeros(&f, size))
        .and_then(|()| f.sync_all());
    if let Err(source) = made {
        // A half-made store must not look like a pending trial.
        let _ = std::fs::remove_file(store);
        return Err(io_err(source));
    }
    Ok(true)
}

/// Writes zeros over the first `size` bytes of `f`, a megabyte at a time.
fn write_zeros(f: &std::fs::File, size: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const STEP: u64 = 1 << 20;
    let zeros = vec![0u8; STEP as usize];
    let mut at = 0;
    while at < size {
        let n = STEP.min(size - at);
        f.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}
