//! The firmware's `Boot####` variables, as `vhdboot snap` reads them from
//! efivarfs: the attributes prefix, an EFI_LOAD_OPTION, `BootOrder`,
//! `BootNext` and the variable's name must parse without panicking, and an
//! option vhdboot encodes must read back as it was written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::boot::loader_interface::{
    boot_variable, decode_boot_number, decode_boot_order, decode_string, decode_string_list,
    encode_load_option, parse_boot_variable, parse_load_option, split_attributes,
};

fuzz_target!(|data: &[u8]| {
    // An efivarfs file: four bytes of attributes, then the value.
    if let Some((_, value)) = split_attributes(data) {
        if let Some(option) = parse_load_option(value) {
            let _ = option.active();
        }
        let _ = decode_boot_order(value);
        let _ = decode_boot_number(value);
        let _ = decode_string(value);
        let _ = decode_string_list(value);
    }
    let _ = parse_load_option(data);

    // A directory entry's name: a number read back names the same file.
    let name = String::from_utf8_lossy(data);
    if let Some(number) = parse_boot_variable(&name) {
        assert_eq!(boot_variable(number), name, "{name:?}");
    }

    // Round trip: attributes from the first bytes, a description without
    // NULs from the rest.
    if let Some((attributes, rest)) = data.split_first_chunk::<4>() {
        let description: String = String::from_utf8_lossy(rest)
            .chars()
            .filter(|&c| c != '\0')
            .take(256)
            .collect();
        let attributes = u32::from_le_bytes(*attributes);
        let option = parse_load_option(&encode_load_option(attributes, &description));
        let option = option.unwrap_or_else(|| panic!("{description:?} did not read back"));
        assert_eq!(option.attributes, attributes);
        assert_eq!(option.description, description);
    }
});
