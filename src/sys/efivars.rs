//! EFI variables through efivarfs: bounded reads, and writes that happen
//! only when a value changes. NVRAM wears and some firmware misbehaves
//! when it fills, so a caller hands over the whole set it wants and only
//! the files whose bytes differ are written, in one read-write window:
//! efivarfs stays read-only except around an intended write (stage 1
//! mounts it so), and goes back to read-only even when a write failed.
//!
//! The bytes (attributes, UTF-16, load options) are `boot::loader_interface`'s
//! business; this module moves whole efivarfs files. Functions take the
//! efivarfs folder, so tests pass a plain folder of fixture files.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};

/// Where the kernel shows efivarfs (`sys::efi::EFIVARS`).
pub use super::efi::EFIVARS;

/// The largest efivarfs file read: 4 bytes of attributes plus 64 KiB.
const MAX_FILE: u64 = 4 + (64 << 10);

/// FS_IMMUTABLE_FL from linux/fs.h: efivarfs sets it on every variable
/// that is not known to be harmless to delete, so that `rm -rf /` cannot
/// brick a machine. It must come off before an existing variable is
/// written or deleted.
const FS_IMMUTABLE_FL: libc::c_int = 0x10;

#[derive(Debug, thiserror::Error)]
pub enum EfiVarError {
    #[error(
        "EFI variables are not available here ({dir} is missing: this machine started \
         without UEFI, e.g. BIOS or Ventoy's legacy mode)"
    )]
    NotAvailable { dir: PathBuf },
    #[error("reading the EFI variable {path} failed: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the EFI variable {path} is larger than {MAX_FILE} bytes; it was not read")]
    TooLarge { path: PathBuf },
    #[error(
        "writing the EFI variable {path} failed: {source} (the firmware may be out of variable space)"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("deleting the EFI variable {path} failed: {source}")]
    Delete {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remounting efivarfs at {dir} {mode} failed: {source}")]
    Remount {
        dir: PathBuf,
        mode: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("listing the EFI variables in {dir} failed: {source}")]
    List {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One wanted state of one variable file: its whole efivarfs content
/// (attributes and data), or None for "absent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarChange {
    pub file: String,
    pub content: Option<Vec<u8>>,
}

/// Whether `dir` holds EFI variables at all (BIOS boots have no
/// /sys/firmware/efi).
pub fn available(dir: &Path) -> bool {
    dir.is_dir()
}

fn require(dir: &Path) -> Result<(), EfiVarError> {
    if available(dir) {
        Ok(())
    } else {
        Err(EfiVarError::NotAvailable {
            dir: dir.to_path_buf(),
        })
    }
}

/// The whole efivarfs file `file` (attributes then data), or None when the
/// variable does not exist.
pub fn read(dir: &Path, file: &str) -> Result<Option<Vec<u8>>, EfiVarError> {
    require(dir)?;
    let path = dir.join(file);
    let f = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(EfiVarError::Read { path, source }),
    };
    let mut bytes = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| EfiVarError::Read {
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(EfiVarError::TooLarge { path });
    }
    Ok(Some(bytes))
}

/// The names of the files in `dir` (`Name-GUID`), sorted.
pub fn list(dir: &Path) -> Result<Vec<String>, EfiVarError> {
    require(dir)?;
    let err = |source| EfiVarError::List {
        dir: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// The changes among `wanted` whose file content differs from what `dir`
/// holds now. A file that cannot be read counts as different.
pub fn pending(dir: &Path, wanted: &[VarChange]) -> Result<Vec<VarChange>, EfiVarError> {
    require(dir)?;
    Ok(wanted
        .iter()
        .filter(|change| match read(dir, &change.file) {
            Ok(now) => now != change.content,
            Err(_) => true,
        })
        .cloned()
        .collect())
}

/// Applies the changes among `wanted` that change something, in one
/// read-write window of efivarfs; returns the files written or deleted.
/// Nothing is remounted when nothing changes. A failed variable does not
/// stop the others (the firmware refuses, say, to turn a volatile
/// variable another loader left into a non-volatile one); the first
/// failure is returned once all were tried, and efivarfs goes back to
/// read-only either way.
pub fn apply(dir: &Path, wanted: &[VarChange]) -> Result<Vec<String>, EfiVarError> {
    let changes = pending(dir, wanted)?;
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let window = WriteWindow::open(dir)?;
    let mut done = Vec::new();
    let mut first_error = None;
    for change in &changes {
        match apply_one(dir, change) {
            Ok(()) => done.push(change.file.clone()),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let closed = window.close();
    if let Some(e) = first_error {
        return Err(e);
    }
    closed?;
    Ok(done)
}

fn apply_one(dir: &Path, change: &VarChange) -> Result<(), EfiVarError> {
    let path = dir.join(&change.file);
    let exists = path.exists();
    if exists {
        // On a folder that is not efivarfs (tests) the ioctl is refused,
        // and nothing is immutable there anyway.
        let _ = clear_immutable(&path);
    }
    match &change.content {
        None if !exists => Ok(()),
        None => fs::remove_file(&path).map_err(|source| EfiVarError::Delete { path, source }),
        Some(bytes) => {
            write_whole(&path, bytes).map_err(|source| EfiVarError::Write { path, source })
        }
    }
}

/// efivarfs takes a variable in one write() of attributes and data; a
/// short write would set a truncated variable, so `write_all`'s retry is
/// no help and a partial write is an error.
fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let n = f.write(bytes)?;
    if n != bytes.len() {
        return Err(io::Error::other(format!(
            "only {n} of {} bytes were taken",
            bytes.len()
        )));
    }
    Ok(())
}

/// chattr -i: FS_IOC_GETFLAGS, then FS_IOC_SETFLAGS without
/// FS_IMMUTABLE_FL when it is set.
fn clear_immutable(path: &Path) -> io::Result<()> {
    let f = fs::File::open(path)?;
    let fd = f.as_raw_fd();
    let mut flags: libc::c_int = 0;
    // SAFETY: `fd` is open for the life of `f`; efivarfs (like ext4) reads
    // and writes an int through the pointer, which points at `flags`, a
    // live c_int on this stack frame.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags as *mut libc::c_int) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & FS_IMMUTABLE_FL == 0 {
        return Ok(());
    }
    flags &= !FS_IMMUTABLE_FL;
    // SAFETY: as above; the kernel only reads `flags`.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags as *const libc::c_int) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// efivarfs remounted read-write for a batch of writes, and back to
/// read-only on `close` (or, best effort, on drop). A folder that is
/// already writable (a target's efivarfs that systemd mounted read-write,
/// or a test folder) is left as it is.
struct WriteWindow {
    dir: PathBuf,
    was_read_only: bool,
}

impl WriteWindow {
    fn open(dir: &Path) -> Result<WriteWindow, EfiVarError> {
        let was_read_only = statvfs(dir)
            .map(|s| s.flags().contains(FsFlags::ST_RDONLY))
            .unwrap_or(false);
        if was_read_only {
            remount(dir, false)?;
        }
        Ok(WriteWindow {
            dir: dir.to_path_buf(),
            was_read_only,
        })
    }

    fn close(mut self) -> Result<(), EfiVarError> {
        let result = self.restore();
        self.was_read_only = false;
        result
    }

    fn restore(&self) -> Result<(), EfiVarError> {
        if self.was_read_only {
            remount(&self.dir, true)
        } else {
            Ok(())
        }
    }
}

impl Drop for WriteWindow {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

/// The flags stage 1 mounts efivarfs with (`pid1::mount_pseudo_filesystems`).
pub fn mount_flags(read_only: bool) -> MsFlags {
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if read_only {
        base | MsFlags::MS_RDONLY
    } else {
        base
    }
}

fn remount(dir: &Path, read_only: bool) -> Result<(), EfiVarError> {
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_REMOUNT | mount_flags(read_only),
        None::<&str>,
    )
    .map_err(|source| EfiVarError::Remount {
        dir: dir.to_path_buf(),
        mode: if read_only { "read-only" } else { "read-write" },
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(file: &str, content: Option<&[u8]>) -> VarChange {
        VarChange {
            file: file.into(),
            content: content.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn missing_folder_says_not_available() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("sys/firmware/efi/efivars");
        let e = read(&dir, "X-1").unwrap_err();
        assert!(e.to_string().contains("not available here"), "{e}");
        assert!(matches!(
            apply(&dir, &[]),
            Err(EfiVarError::NotAvailable { .. })
        ));
    }

    #[test]
    fn only_changed_variables_are_written() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("Same-1"), [7, 0, 0, 0, 1]).unwrap();
        fs::write(t.path().join("Gone-1"), [7, 0, 0, 0, 1]).unwrap();
        let wanted = [
            change("Same-1", Some(&[7, 0, 0, 0, 1])),
            change("New-1", Some(&[7, 0, 0, 0, 2])),
            change("Gone-1", None),
            change("NeverWas-1", None),
        ];
        let done = apply(t.path(), &wanted).unwrap();
        assert_eq!(done, ["New-1", "Gone-1"]);
        assert_eq!(read(t.path(), "New-1").unwrap().unwrap(), [7, 0, 0, 0, 2]);
        assert_eq!(read(t.path(), "Gone-1").unwrap(), None);
        // A second pass finds nothing to do.
        assert!(apply(t.path(), &wanted).unwrap().is_empty());
    }

    #[test]
    fn oversized_variable_is_not_read_whole() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("Big-1"), vec![0u8; MAX_FILE as usize + 1]).unwrap();
        assert!(matches!(
            read(t.path(), "Big-1"),
            Err(EfiVarError::TooLarge { .. })
        ));
    }
}
