//! Firmware state from efivarfs. Stage 1 mounts efivarfs at
//! /sys/firmware/efi/efivars when the kernel was booted through EFI.

use std::path::Path;

/// Where efivarfs is mounted.
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// The `SecureBoot` variable in the EFI global-variable namespace.
pub const SECURE_BOOT_VAR: &str = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Decodes an efivarfs file of a one-byte boolean variable: four bytes of
/// attributes, then the value (1 = on, 0 = off). Anything else is unknown.
pub fn decode_bool_var(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [_, _, _, _, 1] => Some(true),
        [_, _, _, _, 0] => Some(false),
        _ => None,
    }
}

/// Whether the firmware enforces Secure Boot, from `efivars` (normally
/// [`EFIVARS`]). None when there is no EFI, no efivarfs, or no variable.
/// The firmware sets SecureBoot to 1 only outside setup mode, so this one
/// variable tells whether signatures are enforced.
pub fn secure_boot(efivars: &Path) -> Option<bool> {
    let bytes = std::fs::read(efivars.join(SECURE_BOOT_VAR)).ok()?;
    decode_bool_var(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_boot_byte_after_the_attributes_decides() {
        assert_eq!(decode_bool_var(&[6, 0, 0, 0, 1]), Some(true));
        assert_eq!(decode_bool_var(&[6, 0, 0, 0, 0]), Some(false));
        assert_eq!(decode_bool_var(&[6, 0, 0, 0, 2]), None);
        assert_eq!(decode_bool_var(&[6, 0, 0, 0]), None);
        assert_eq!(decode_bool_var(&[6, 0, 0, 0, 1, 0]), None);
    }

    #[test]
    fn variable_is_read_from_the_given_efivars_folder() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(secure_boot(t.path()), None);
        std::fs::write(t.path().join(SECURE_BOOT_VAR), [6, 0, 0, 0, 1]).unwrap();
        assert_eq!(secure_boot(t.path()), Some(true));
    }

    #[test]
    fn no_efi_firmware_means_secure_boot_unknown_not_an_error() {
        // A BIOS boot (SeaBIOS, Ventoy's legacy mode) has no
        // /sys/firmware/efi at all: the folder is missing, not empty.
        let root = tempfile::tempdir().unwrap();
        let efivars = root.path().join("sys/firmware/efi/efivars");
        assert!(!efivars.exists());
        assert_eq!(secure_boot(&efivars), None);
    }
}
