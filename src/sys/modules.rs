//! Kernel module syscalls: finit_module, which takes `.ko.xz`/`.ko.zst`/`.ko.gz`
//! directly when the kernel has MODULE_DECOMPRESS (lessons.md, Debian's
//! 6.12 kernel), and the running kernel's release. Which modules to load,
//! and in what order, is `crate::modprobe`'s business.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// `MODULE_INIT_COMPRESSED_FILE` from linux/module.h.
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("reading {path} failed: {source}")]
    ReadIndex {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("module {name} is not in {}/modules.dep (wrong kernel version, or not built?)", .dir.display())]
    NotFound { name: String, dir: PathBuf },
    #[error("module {name} depends on itself through {via}")]
    DependencyCycle { name: String, via: String },
    #[error("opening module {name} at {path} failed: {source}")]
    Open {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("finit_module of {name} ({path}) failed: {errno}{}", init_hint(.path, *.errno))]
    Init {
        name: String,
        path: PathBuf,
        errno: Errno,
    },
}

fn init_hint(path: &Path, errno: Errno) -> &'static str {
    match errno {
        Errno::EINVAL | Errno::ENOEXEC | Errno::EOPNOTSUPP if is_compressed(path) => {
            " (the running kernel cannot decompress this module itself: it lacks \
             MODULE_DECOMPRESS for this format, or the module is for another kernel)"
        }
        Errno::ENOEXEC | Errno::EINVAL => " (not a module for the running kernel version)",
        Errno::EKEYREJECTED | Errno::EPERM => {
            " (the module's signature was refused: Secure Boot or module.sig_enforce)"
        }
        Errno::ENOSYS => " (the running kernel was built without module support)",
        _ => "",
    }
}

pub fn is_compressed(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("xz" | "zst" | "gz")
    )
}

/// Inserts one module file with finit_module(2), letting the kernel
/// decompress `.ko.xz`/`.ko.zst`/`.ko.gz`.
pub fn finit_module(name: &str, path: &Path) -> Result<(), ModuleError> {
    let file = File::open(path).map_err(|source| ModuleError::Open {
        name: name.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let flags = if is_compressed(path) {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    // SAFETY: finit_module(2) takes an fd, a NUL-terminated parameter
    // string and flags; the fd is open and the empty C string is static.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    Errno::result(ret)
        .map(drop)
        .map_err(|errno| ModuleError::Init {
            name: name.to_string(),
            path: path.to_path_buf(),
            errno,
        })
}

/// The running kernel's release (uname -r), which names its module folder.
pub fn kernel_release() -> Result<String, Errno> {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned())
}
