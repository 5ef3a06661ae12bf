//! exFAT's boot sector, as far as the host's safety needs it: the
//! VolumeDirty flag (VolumeFlags bit 1, Microsoft's exFAT specification
//! 3.1.13), which a driver sets while the volume is mounted and clears at
//! a clean unmount, so a set flag after boot means the volume was not
//! cleanly unmounted.

use super::bytes::{le_u16, le_u64};

/// VolumeFlags' VolumeDirty bit.
pub const VOLUME_DIRTY: u16 = 0x0002;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExfatError {
    #[error("the boot sector has no exFAT signature (\"EXFAT   \" at byte 3)")]
    NotExfat,
    #[error(
        "the boot sector's bytes-per-sector shift is {0}, which exFAT does not allow (9 to 12)"
    )]
    BadSectorShift(u8),
}

/// What the boot sector says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExfatBoot {
    /// VolumeLength, in sectors.
    pub volume_sectors: u64,
    pub bytes_per_sector: u32,
    pub volume_flags: u16,
}

impl ExfatBoot {
    /// Parses the first sector of an exFAT volume.
    pub fn parse(sector: &[u8]) -> Result<ExfatBoot, ExfatError> {
        if sector.get(3..11) != Some(b"EXFAT   ") {
            return Err(ExfatError::NotExfat);
        }
        let shift = *sector.get(0x6c).ok_or(ExfatError::NotExfat)?;
        if !(9..=12).contains(&shift) {
            return Err(ExfatError::BadSectorShift(shift));
        }
        Ok(ExfatBoot {
            volume_sectors: le_u64(sector, 0x48).ok_or(ExfatError::NotExfat)?,
            bytes_per_sector: 1 << shift,
            volume_flags: le_u16(sector, 0x6a).ok_or(ExfatError::NotExfat)?,
        })
    }

    pub fn is_dirty(&self) -> bool {
        self.volume_flags & VOLUME_DIRTY != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sector(flags: u16, shift: u8) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[3..11].copy_from_slice(b"EXFAT   ");
        s[0x48..0x50].copy_from_slice(&409600u64.to_le_bytes());
        s[0x6a..0x6c].copy_from_slice(&flags.to_le_bytes());
        s[0x6c] = shift;
        s
    }

    #[test]
    fn volume_dirty_is_bit_one_of_the_volume_flags() {
        for (flags, dirty) in [
            (0u16, false),
            (0x0002, true),
            (0x0001, false),
            (0x0006, true),
        ] {
            let b = ExfatBoot::parse(&sector(flags, 9)).unwrap();
            assert_eq!(b.is_dirty(), dirty, "{flags:#x}");
            assert_eq!((b.volume_sectors, b.bytes_per_sector), (409600, 512));
        }
    }

    #[test]
    fn other_sectors_are_rejected() {
        assert_eq!(ExfatBoot::parse(&[0u8; 512]), Err(ExfatError::NotExfat));
        assert_eq!(ExfatBoot::parse(b"xyzEXFAT   "), Err(ExfatError::NotExfat));
        assert_eq!(
            ExfatBoot::parse(&sector(0, 13)),
            Err(ExfatError::BadSectorShift(13))
        );
    }
}
