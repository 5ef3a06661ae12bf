//! kexec_file_load and the reboot into the loaded kernel. Load and exec are
//! separate steps (u-root): a failed load returns to the menu with the
//! error shown, and only [`reboot_into_loaded_kernel`] transfers control.
//! kexec_load (the old call) is refused under lockdown, so only the file
//! variant is used (lessons.md, "kexec").

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::sys::pid1::{self, RebootError, RebootMode};

/// `KEXEC_FILE_NO_INITRAMFS` from linux/kexec.h: the initrd fd is ignored.
const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 0x4;
/// `KEXEC_FILE_UNLOAD` from linux/kexec.h: drop the loaded kernel.
const KEXEC_FILE_UNLOAD: libc::c_ulong = 0x1;

/// Why the kernel refused a load, in words a user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KexecRefusal {
    /// EPERM / EKEYREJECTED: Secure Boot or lockdown wants a signed kernel.
    Unsigned,
    /// ENOEXEC / EINVAL: not a bzImage this kernel can load.
    NotLoadable,
    /// ENOMEM: kernel plus initrd do not fit.
    NoMemory,
    /// EBUSY: another kexec load is in progress or loaded.
    Busy,
    /// ENOSYS: the running kernel lacks CONFIG_KEXEC_FILE.
    Unsupported,
    Other,
}

impl KexecRefusal {
    /// Maps the errno of kexec_file_load to what it means for the user.
    pub fn from_errno(errno: Errno) -> KexecRefusal {
        match errno {
            Errno::EPERM | Errno::EKEYREJECTED => KexecRefusal::Unsigned,
            Errno::ENOEXEC | Errno::EINVAL => KexecRefusal::NotLoadable,
            Errno::ENOMEM => KexecRefusal::NoMemory,
            Errno::EBUSY => KexecRefusal::Busy,
            Errno::ENOSYS => KexecRefusal::Unsupported,
            _ => KexecRefusal::Other,
        }
    }

    /// One sentence: what it means and what to do next.
    pub fn explanation(self) -> &'static str {
        match self {
            KexecRefusal::Unsigned => {
                "Secure Boot / lockdown refused an unsigned kernel: the target kernel is not \
                 signed for Secure Boot; use a signed kernel or disable Secure Boot"
            }
            KexecRefusal::NotLoadable => {
                "the kernel is not a bzImage the running kernel can load (a PE/UKI wrapper, \
                 a different architecture or a corrupt file)"
            }
            KexecRefusal::NoMemory => {
                "not enough memory for the kernel and initrd; a smaller initrd or more RAM helps"
            }
            KexecRefusal::Busy => "another kernel is already being loaded; try again",
            KexecRefusal::Unsupported => {
                "the running kernel was built without kexec_file_load (CONFIG_KEXEC_FILE)"
            }
            KexecRefusal::Other => "the kernel refused the load",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KexecError {
    #[error("memfd_create for the {what} failed: {source}")]
    Memfd { what: &'static str, source: Errno },
    #[error("writing the {what} ({size} bytes) to a memfd failed: {source}")]
    WriteMemfd {
        what: &'static str,
        size: usize,
        #[source]
        source: io::Error,
    },
    #[error("the kernel command line contains a NUL byte")]
    CmdlineNul,
    #[error(
        "kexec_file_load (kernel {kernel_size} bytes, initrd {initrd_size} bytes, \
         cmdline {cmdline_len} bytes) failed: {errno}: {}",
        .refusal.explanation()
    )]
    Load {
        kernel_size: u64,
        initrd_size: u64,
        cmdline_len: usize,
        errno: Errno,
        refusal: KexecRefusal,
    },
    #[error("unloading the loaded kernel with kexec_file_load failed: {errno}")]
    Unload { errno: Errno },
    #[error(transparent)]
    Reboot(#[from] RebootError),
}

/// An empty memfd, the in-memory file kexec_file_load reads a kernel or an
/// initrd from. Callers fill it (write, or `std::io::copy` from another
/// file, which copies inside the kernel) and pass it to
/// [`kexec_file_load_files`].
pub fn memfd(what: &'static str) -> Result<File, KexecError> {
    memfd_create(what, MFdFlags::MFD_CLOEXEC)
        .map(File::from)
        .map_err(|source| KexecError::Memfd { what, source })
}

/// A memfd holding `bytes`.
pub fn memfd_with(what: &'static str, bytes: &[u8]) -> Result<File, KexecError> {
    let mut file = memfd(what)?;
    file.write_all(bytes)
        .map_err(|source| KexecError::WriteMemfd {
            what,
            size: bytes.len(),
            source,
        })?;
    Ok(file)
}

/// Loads `kernel` (a bzImage) with `initrd` (empty for none) and `cmdline`
/// for a later [`reboot_into_loaded_kernel`]. Never transfers control.
pub fn kexec_file_load(kernel: &[u8], initrd: &[u8], cmdline: &str) -> Result<(), KexecError> {
    // Checked before the memfds are filled: a bad command line costs nothing.
    std::ffi::CString::new(cmdline).map_err(|_| KexecError::CmdlineNul)?;
    let kernel_fd = memfd_with("kernel", kernel)?;
    let initrd_fd = if initrd.is_empty() {
        None
    } else {
        Some(memfd_with("initrd", initrd)?)
    };
    kexec_file_load_files(&kernel_fd, initrd_fd.as_ref(), cmdline)
}

/// As [`kexec_file_load`], from files already holding the kernel and the
/// initrd (e.g. from [`memfd`]). The kernel reads each file whole, from
/// offset 0, whatever the file position.
pub fn kexec_file_load_files(
    kernel: &File,
    initrd: Option<&File>,
    cmdline: &str,
) -> Result<(), KexecError> {
    let cmdline_c = std::ffi::CString::new(cmdline).map_err(|_| KexecError::CmdlineNul)?;
    let cmdline_bytes = cmdline_c.as_bytes_with_nul();
    let flags = if initrd.is_none() {
        KEXEC_FILE_NO_INITRAMFS
    } else {
        0
    };
    let initrd_raw = initrd.map_or(-1, |fd| fd.as_raw_fd());
    // SAFETY: kexec_file_load(2) takes two fds, a length and a pointer to
    // that many bytes of NUL-terminated command line, and flags. Both files
    // and `cmdline_c` stay alive for the call; the kernel copies the
    // command line and reads the files before returning.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel.as_raw_fd(),
            initrd_raw,
            cmdline_bytes.len() as libc::c_ulong,
            cmdline_c.as_ptr(),
            flags,
        )
    };
    Errno::result(ret).map(drop).map_err(|errno| {
        let size = |f: &File| f.metadata().map_or(0, |m| m.len());
        KexecError::Load {
            kernel_size: size(kernel),
            initrd_size: initrd.map_or(0, size),
            cmdline_len: cmdline_bytes.len(),
            errno,
            refusal: KexecRefusal::from_errno(errno),
        }
    })
}

/// Drops the kernel a [`kexec_file_load_files`] loaded, freeing its pages:
/// a preload the user moved away from must not hold tens of megabytes, nor
/// be what a later reboot runs. Unloading when nothing is loaded succeeds.
pub fn kexec_file_unload() -> Result<(), KexecError> {
    // SAFETY: with KEXEC_FILE_UNLOAD the kernel ignores both fds, the
    // command line length and its pointer, which are -1, -1, 0 and null;
    // no memory of this process is read or written.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            -1 as libc::c_int,
            -1 as libc::c_int,
            0 as libc::c_ulong,
            std::ptr::null::<libc::c_char>(),
            KEXEC_FILE_UNLOAD,
        )
    };
    Errno::result(ret)
        .map(drop)
        .map_err(|errno| KexecError::Unload { errno })
}

/// Syncs and reboots into the kernel loaded by [`kexec_file_load`].
/// Returns only on failure. Callers unmount what they mounted and restore
/// the terminal first.
pub fn reboot_into_loaded_kernel() -> KexecError {
    KexecError::Reboot(pid1::sync_and_reboot(RebootMode::Kexec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_kernel_errnos_explain_secure_boot() {
        for errno in [Errno::EPERM, Errno::EKEYREJECTED] {
            assert_eq!(KexecRefusal::from_errno(errno), KexecRefusal::Unsigned);
        }
        assert!(KexecRefusal::Unsigned.explanation().contains("Secure Boot"));
    }

    #[test]
    fn bad_image_errnos_say_not_a_bzimage() {
        for errno in [Errno::ENOEXEC, Errno::EINVAL] {
            assert_eq!(KexecRefusal::from_errno(errno), KexecRefusal::NotLoadable);
        }
        assert!(KexecRefusal::NotLoadable.explanation().contains("bzImage"));
    }

    #[test]
    fn other_errnos_map_to_their_own_refusals() {
        assert_eq!(
            KexecRefusal::from_errno(Errno::ENOMEM),
            KexecRefusal::NoMemory
        );
        assert_eq!(KexecRefusal::from_errno(Errno::EBUSY), KexecRefusal::Busy);
        assert_eq!(KexecRefusal::from_errno(Errno::EIO), KexecRefusal::Other);
    }

    #[test]
    fn load_error_carries_every_argument() {
        let err = KexecError::Load {
            kernel_size: 12_345,
            initrd_size: 678,
            cmdline_len: 42,
            errno: Errno::EKEYREJECTED,
            refusal: KexecRefusal::Unsigned,
        };
        let text = err.to_string();
        for part in [
            "12345 bytes",
            "678 bytes",
            "42 bytes",
            "EKEYREJECTED",
            "Secure Boot",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
    }

    #[test]
    fn memfd_holds_what_is_written_and_copied_into_it() {
        use std::io::{Read, Seek};
        let mut fd = memfd("test").unwrap();
        fd.write_all(b"head-").unwrap();
        let mut src = tempfile::tempfile().unwrap();
        src.write_all(b"body").unwrap();
        src.rewind().unwrap();
        // File to file: std copies inside the kernel, as stage 1 does.
        assert_eq!(std::io::copy(&mut src, &mut fd).unwrap(), 4);
        fd.rewind().unwrap();
        let mut back = String::new();
        fd.read_to_string(&mut back).unwrap();
        assert_eq!(back, "head-body");
    }

    #[test]
    fn file_load_with_nul_in_cmdline_is_rejected_before_the_syscall() {
        let fd = memfd("kernel").unwrap();
        assert!(matches!(
            kexec_file_load_files(&fd, None, "a\0b"),
            Err(KexecError::CmdlineNul)
        ));
    }

    #[test]
    fn cmdline_with_nul_is_rejected_before_any_syscall() {
        assert!(matches!(
            kexec_file_load(b"", b"", "root=/dev/x\0evil"),
            Err(KexecError::CmdlineNul)
        ));
    }
}
