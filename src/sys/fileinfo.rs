//! How an image file is stored on its host filesystem, through one
//! `statx`: its length, how much of it is allocated, and whether the
//! filesystem compresses or encrypts it. ntfs3 reports NTFS compression and
//! EFS encryption as STATX_ATTR_COMPRESSED and STATX_ATTR_ENCRYPTED, and
//! its block count reflects the allocation, so a sparse file shows as
//! fewer allocated bytes than its length.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::model::FileFacts;

#[derive(Debug, thiserror::Error)]
pub enum FileInfoError {
    #[error("{path}: the path holds a NUL byte")]
    BadPath { path: String },
    #[error("statx {path}: {source}")]
    Statx {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the storage facts of `path` (following no symlink at the end).
pub fn file_facts(path: &Path) -> Result<FileFacts, FileInfoError> {
    let shown = path.display().to_string();
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| FileInfoError::BadPath {
        path: shown.clone(),
    })?;
    // SAFETY: statx is plain data; all-zero bytes are a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // The raw system call, not glibc's wrapper: in the static PID 1 the
    // wrapper's symbol resolved to address 0 and the call crashed (seen in
    // the QEMU end-to-end test), as std's own weak `statx` lookup allows.
    // SAFETY: `c` is a NUL-terminated path that outlives the call, and
    // `stx` is a valid, writable statx buffer owned by this frame; the
    // argument order is the kernel's statx(dirfd, path, flags, mask, buf).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_statx,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_SIZE | libc::STATX_BLOCKS,
            &mut stx as *mut libc::statx,
        )
    };
    if rc != 0 {
        return Err(FileInfoError::Statx {
            path: shown,
            source: std::io::Error::last_os_error(),
        });
    }
    let attr = |bit: libc::c_int| {
        let bit = bit as u64;
        (stx.stx_attributes_mask & bit != 0).then_some(stx.stx_attributes & bit != 0)
    };
    Ok(FileFacts {
        size: stx.stx_size,
        allocated: (stx.stx_mask & libc::STATX_BLOCKS != 0)
            .then(|| stx.stx_blocks.saturating_mul(512)),
        compressed: attr(libc::STATX_ATTR_COMPRESSED),
        encrypted: attr(libc::STATX_ATTR_ENCRYPTED),
    })
}

/// Bytes an unprivileged writer may still use on the filesystem holding
/// `path` (statvfs: available blocks times the fragment size).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(st.blocks_available().saturating_mul(st.fragment_size()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn written_file_is_fully_allocated() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("full");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(&vec![1u8; 256 * 1024])
            .unwrap();
        let f = file_facts(&p).unwrap();
        assert_eq!(f.size, 256 * 1024);
        assert!(f.allocated.unwrap() >= f.size, "{f:?}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = file_facts(Path::new("/nonexistent/x.vhd")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.vhd"), "{err}");
    }
}
