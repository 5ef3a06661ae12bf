//! The x86 boot protocol's setup header at the start of a bzImage
//! (Documentation/arch/x86/boot.rst): the one reader of the `HdrS` magic
//! and the kernel version string, for UKIs and Boot Loader Spec kernels.

use super::bytes::le_u16;

/// The offset of the "HdrS" magic.
const MAGIC_OFFSET: usize = 0x202;
const MAGIC: &[u8; 4] = b"HdrS";
/// The `kernel_version` field: a pointer, less 0x200, to the version string.
const KERNEL_VERSION_OFFSET: usize = 0x20e;
/// The pointer is relative to the end of the boot sector.
const KERNEL_VERSION_BASE: usize = 0x200;
/// How much of the version string is read; the release is its first word.
const VERSION_TEXT_CAP: usize = 256;

/// How many bytes of a kernel [`is_bzimage`] needs to see.
pub const MAGIC_PREFIX_LEN: usize = MAGIC_OFFSET + MAGIC.len();

/// How many bytes of a kernel [`release`] may need: the `kernel_version`
/// pointer is a `u16`, so the string starts in the first 64 KiB after the
/// boot sector. Reading this much instead of the whole kernel keeps the
/// kernel out of memory at boot.
pub const RELEASE_PREFIX_LEN: usize =
    KERNEL_VERSION_BASE + u16::MAX as usize + 1 + VERSION_TEXT_CAP;

/// True when a kernel starts like an x86 bzImage, which kexec_file_load
/// accepts. `prefix` is the start of the kernel.
pub fn is_bzimage(prefix: &[u8]) -> bool {
    prefix.get(MAGIC_OFFSET..MAGIC_PREFIX_LEN) == Some(MAGIC.as_slice())
}

/// The kernel release (`uname -r`) in a bzImage's header: the
/// `kernel_version` field at 0x20E points at a NUL-terminated string, less
/// 0x200, whose first word is the release (boot protocol 2.00 and later).
/// `prefix` is the start of the kernel, [`RELEASE_PREFIX_LEN`] bytes
/// suffice.
pub fn release(prefix: &[u8]) -> Option<String> {
    if !is_bzimage(prefix) {
        return None;
    }
    let ptr = le_u16(prefix, KERNEL_VERSION_OFFSET)?;
    if ptr == 0 {
        return None;
    }
    let start = usize::from(ptr) + KERNEL_VERSION_BASE;
    let text = prefix.get(start..start.saturating_add(VERSION_TEXT_CAP).min(prefix.len()))?;
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let s = std::str::from_utf8(text.get(..end)?).ok()?;
    let release = s.split_whitespace().next()?;
    (!release.is_empty()).then(|| release.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bzimage_release_reads_the_header_string() {
        let mut k = vec![0u8; 0x1000];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x20e..0x210].copy_from_slice(&0x0600u16.to_le_bytes());
        let s = b"6.12.9-amd64 (builder@x) #1 SMP\0";
        k[0x800..0x800 + s.len()].copy_from_slice(s);
        assert_eq!(release(&k).as_deref(), Some("6.12.9-amd64"));
        k[0x20e..0x210].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert_eq!(release(&k), None);
        assert_eq!(release(b"short"), None);
    }

    #[test]
    fn the_release_is_found_within_the_prefix_a_boot_keeps() {
        let mut k = vec![0u8; RELEASE_PREFIX_LEN + 4096];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x20e..0x210].copy_from_slice(&u16::MAX.to_le_bytes());
        let at = 0x200 + usize::from(u16::MAX);
        k[at..at + 5].copy_from_slice(b"6.1.0");
        assert_eq!(release(&k[..RELEASE_PREFIX_LEN]).as_deref(), Some("6.1.0"));
    }
}
