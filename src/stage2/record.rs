//! Writing and removing vhdboot's in-use record on the host volume
//! (`vhdboot::boot::in_use` says why it exists and what it holds).
//! Stage 2 writes it once the host is mounted read-write; the clean
//! detach at shutdown removes it just before it unmounts the host.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use vhdboot::boot::in_use::{FILE_NAME, InUseRecord};

/// The record's path on a host volume mounted at `host_root`.
pub fn path_on(host_root: &Path) -> PathBuf {
    host_root.join(FILE_NAME)
}

/// Writes the record for `image` and flushes it (and the directory entry)
/// to the volume, so that it survives a crash that follows at once.
pub fn write(host_root: &Path, image: &str) -> io::Result<PathBuf> {
    let record = InUseRecord {
        image: image.to_string(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        boot_id: fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
    };
    let path = path_on(host_root);
    let mut file = File::create(&path)?;
    file.write_all(record.render().as_bytes())?;
    file.sync_all()?;
    // The new name lives in the directory index, which fsync on the file
    // does not write on ntfs3 (6.12): after a crash the record was gone.
    // A full sync writes the volume's metadata; this early in the boot it
    // costs little.
    nix::unistd::sync();
    Ok(path)
}

/// Removes the record: Some(its path) when one was there, None when there
/// was none. A read-only host (an immutable boot mounts it so, and writes
/// no record) refuses any unlink, even of a missing file, so a missing
/// record is looked for before the error counts.
pub fn remove(host_root: &Path) -> io::Result<Option<PathBuf>> {
    let path = path_on(host_root);
    match fs::remove_file(&path) {
        Ok(()) => Ok(Some(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(_) if fs::symlink_metadata(&path).is_err() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_record_names_the_image_and_is_removed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "/Images/a.vhd").unwrap();
        let back = InUseRecord::parse(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back.image, "/Images/a.vhd");
        assert!(back.started_unix > 0);
        assert_eq!(remove(dir.path()).unwrap(), Some(path.clone()));
        assert!(!path.exists());
        // A second removal finds none, which is no error.
        assert_eq!(remove(dir.path()).unwrap(), None);
    }
}
