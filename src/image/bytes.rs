//! Bounded readers for the little-endian fields of on-disk headers (PE,
//! NTFS, the bzImage setup header, LZ4 frames) and the 4-byte padding of
//! newc cpio archives.
//!
//! A field that lies past the end of its buffer reads as None, never as 0:
//! a zero would hide a truncated header behind a plausible value.

/// The `u16` at byte `at`, or None when the buffer ends first.
pub fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The `u32` at byte `at`, or None when the buffer ends first.
pub fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The `u64` at byte `at`, or None when the buffer ends first.
pub fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The big-endian `u32` at byte `at` (VHD headers), or None when the
/// buffer ends first.
pub fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The big-endian `u64` at byte `at`, or None when the buffer ends first.
pub fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The size rounded up to 4 bytes: newc headers, names and bodies are
/// 4-byte aligned, and concatenated cpio archives must each start 4-byte
/// aligned for the kernel to unpack them all.
pub fn pad4(n: u64) -> u64 {
    n.saturating_add(3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad4_rounds_up_to_four_bytes() {
        assert_eq!(pad4(0), 0);
        assert_eq!(pad4(1), 4);
        assert_eq!(pad4(4), 4);
        assert_eq!(pad4(4097), 4100);
    }

    #[test]
    fn fields_are_little_endian() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(le_u16(&b, 0), Some(0x0201));
        assert_eq!(le_u32(&b, 4), Some(0x0807_0605));
        assert_eq!(le_u64(&b, 0), Some(0x0807_0605_0403_0201));
    }

    #[test]
    fn a_short_read_is_none_not_zero() {
        let b = [1, 2, 3];
        assert_eq!(le_u16(&b, 2), None);
        assert_eq!(le_u32(&b, 0), None);
        assert_eq!(le_u64(&b, 0), None);
        assert_eq!(le_u32(&b, usize::MAX), None);
    }
}
