//! The bytes of the EFI variables vhdboot reads and writes: systemd's Boot
//! Loader Interface (https://systemd.io/BOOT_LOADER_INTERFACE/) and the
//! firmware's own `Boot####`, `BootOrder`, `BootCurrent` and `BootNext`.
//! Pure code: `sys::efivars` moves the bytes in and out of efivarfs.
//!
//! An efivarfs file is the variable's 32-bit attributes (little-endian)
//! followed by its data. Strings in the Boot Loader Interface are UTF-16LE
//! and NUL-terminated; `LoaderEntries` is a run of such strings.

/// The vendor GUID of every Boot Loader Interface variable.
pub const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// EFI_GLOBAL_VARIABLE: `Boot####`, `BootOrder`, `BootNext`, `BootCurrent`.
pub const GLOBAL_GUID: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS. systemd-boot makes
/// its informational variables volatile, but it runs before
/// ExitBootServices; once Linux runs, the firmware creates only
/// non-volatile variables (the UEFI spec's SetVariable rules, and OVMF
/// refuses the rest with EINVAL). They are in NVRAM, which is also why they
/// survive kexec and why vhdboot writes them only when they change.
pub const NV_BS_RT: u32 = 0x7;

/// The largest variable vhdboot reads. Real ones are far smaller (a
/// `Boot####` with a long device path is a few hundred bytes); a bigger
/// file is not read whole.
pub const MAX_VARIABLE_SIZE: usize = 64 << 10;

/// The largest `Boot####` number is 0xFFFF; a BootOrder lists at most that.
const MAX_BOOT_ORDER: usize = 0x1_0000;

/// The Boot Loader Interface variables vhdboot uses, by name.
pub mod names {
    pub const INFO: &str = "LoaderInfo";
    pub const ENTRIES: &str = "LoaderEntries";
    pub const ENTRY_SELECTED: &str = "LoaderEntrySelected";
    pub const ENTRY_DEFAULT: &str = "LoaderEntryDefault";
    pub const ENTRY_ONE_SHOT: &str = "LoaderEntryOneShot";
    pub const ENTRY_LAST_BOOTED: &str = "LoaderEntryLastBooted";
    pub const FEATURES: &str = "LoaderFeatures";
    pub const TIME_INIT: &str = "LoaderTimeInitUSec";
    pub const TIME_EXEC: &str = "LoaderTimeExecUSec";
}

/// `LoaderFeatures` bits (systemd's `EFI_LOADER_FEATURE_*`), only for what
/// vhdboot does: it honours `LoaderEntryDefault` (bit 2) and
/// `LoaderEntryOneShot` (bit 3), and `default = @saved` (bit 9).
pub const FEATURE_ENTRY_DEFAULT: u64 = 1 << 2;
pub const FEATURE_ENTRY_ONESHOT: u64 = 1 << 3;
pub const FEATURE_SAVED_ENTRY: u64 = 1 << 9;
pub const FEATURES: u64 = FEATURE_ENTRY_DEFAULT | FEATURE_ENTRY_ONESHOT | FEATURE_SAVED_ENTRY;

/// The efivarfs file name of variable `name` under `guid`.
pub fn file_name(name: &str, guid: &str) -> String {
    format!("{name}-{guid}")
}

/// `data` with the attributes in front, as efivarfs takes a write.
pub fn with_attributes(attributes: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + data.len());
    out.extend_from_slice(&attributes.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// Splits an efivarfs file into attributes and data; None when it is too
/// short to hold the attributes.
pub fn split_attributes(file: &[u8]) -> Option<(u32, &[u8])> {
    let (head, data) = file.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), data))
}

/// A string as the Boot Loader Interface stores it: UTF-16LE, NUL-terminated.
pub fn encode_string(text: &str) -> Vec<u8> {
    text.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The UTF-16 code units of `data` (an odd last byte is dropped).
fn units(data: &[u8]) -> impl Iterator<Item = u16> + '_ {
    data.chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
}

/// Reads one string variable's data: up to the first NUL (a missing NUL is
/// tolerated, as systemd does). None for bad UTF-16 or an odd length.
pub fn decode_string(data: &[u8]) -> Option<String> {
    if !data.len().is_multiple_of(2) || data.len() > MAX_VARIABLE_SIZE {
        return None;
    }
    let text: Vec<u16> = units(data).take_while(|&u| u != 0).collect();
    String::from_utf16(&text).ok()
}

/// `LoaderEntries`: every id, each NUL-terminated, one after the other.
pub fn encode_string_list<S: AsRef<str>>(items: &[S]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|s| encode_string(s.as_ref()))
        .collect()
}

/// Reads a `LoaderEntries`-style list; empty strings are skipped.
pub fn decode_string_list(data: &[u8]) -> Option<Vec<String>> {
    if !data.len().is_multiple_of(2) || data.len() > MAX_VARIABLE_SIZE {
        return None;
    }
    let all: Vec<u16> = units(data).collect();
    all.split(|&u| u == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf16(s).ok())
        .collect()
}

/// `LoaderTime*USec`: microseconds as a decimal string.
pub fn encode_usec(usec: u64) -> Vec<u8> {
    encode_string(&usec.to_string())
}

/// `LoaderFeatures`: a little-endian u64.
pub fn encode_features(bits: u64) -> Vec<u8> {
    bits.to_le_bytes().to_vec()
}

/// `BootNext` and `BootCurrent`: one little-endian u16.
pub fn encode_boot_number(number: u16) -> Vec<u8> {
    number.to_le_bytes().to_vec()
}

pub fn decode_boot_number(data: &[u8]) -> Option<u16> {
    match data {
        [a, b] => Some(u16::from_le_bytes([*a, *b])),
        _ => None,
    }
}

/// `BootOrder`: little-endian u16s.
pub fn decode_boot_order(data: &[u8]) -> Option<Vec<u16>> {
    if !data.len().is_multiple_of(2) || data.len() > 2 * MAX_BOOT_ORDER {
        return None;
    }
    Some(units(data).collect())
}

/// `Boot####`'s name for number `n`: four upper-case hex digits.
pub fn boot_variable(number: u16) -> String {
    format!("Boot{number:04X}")
}

/// The number in a `Boot####` name, or None for anything else (BootOrder,
/// BootNext, lower-case digits, which the firmware does not use).
pub fn parse_boot_variable(name: &str) -> Option<u16> {
    let digits = name.strip_prefix("Boot")?;
    if digits.len() != 4
        || !digits
            .chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
    {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// LOAD_OPTION_ACTIVE: the firmware considers the option at all.
pub const LOAD_OPTION_ACTIVE: u32 = 0x1;
/// LOAD_OPTION_HIDDEN: the firmware's own menu does not show it.
pub const LOAD_OPTION_HIDDEN: u32 = 0x8;

/// What `vhdboot snap` needs from an EFI_LOAD_OPTION: its attributes and
/// its description. The device path after it is not interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOption {
    pub attributes: u32,
    pub description: String,
}

impl LoadOption {
    pub fn active(&self) -> bool {
        self.attributes & LOAD_OPTION_ACTIVE != 0
    }
}

/// Parses an EFI_LOAD_OPTION (UEFI spec 3.1.3): u32 Attributes, u16
/// FilePathListLength, a NUL-terminated UTF-16 Description, then the
/// device paths. None when the description has no NUL inside the data or
/// the device paths do not fit: the firmware's bytes are not trusted.
pub fn parse_load_option(data: &[u8]) -> Option<LoadOption> {
    if data.len() > MAX_VARIABLE_SIZE {
        return None;
    }
    let (attributes, rest) = data.split_first_chunk::<4>()?;
    let (path_len, rest) = rest.split_first_chunk::<2>()?;
    let path_len = usize::from(u16::from_le_bytes(*path_len));
    let description: Vec<u16> = units(rest).take_while(|&u| u != 0).collect();
    // The description's units plus its NUL, then the device paths.
    let used = (description.len() + 1) * 2;
    if used > rest.len() || rest.len() - used < path_len {
        return None;
    }
    Some(LoadOption {
        attributes: u32::from_le_bytes(*attributes),
        description: String::from_utf16_lossy(&description),
    })
}

/// Builds an EFI_LOAD_OPTION with an end-of-device-path node only: what
/// tests and fixtures need.
pub fn encode_load_option(attributes: u32, description: &str) -> Vec<u8> {
    // End of Hardware Device Path: type 0x7F, subtype 0xFF, length 4.
    const END_NODE: [u8; 4] = [0x7f, 0xff, 4, 0];
    let mut out = attributes.to_le_bytes().to_vec();
    out.extend_from_slice(&(END_NODE.len() as u16).to_le_bytes());
    out.extend(encode_string(description));
    out.extend_from_slice(&END_NODE);
    out
}

/// What vhdboot knows at the moment it hands over to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRecord<'a> {
    /// `vhdboot <version>`.
    pub loader_info: &'a str,
    /// Every entry id the menu offered.
    pub entries: &'a [String],
    /// The id of the entry being booted.
    pub selected: &'a str,
    /// When vhdboot's PID 1 started and when it hands over, in
    /// microseconds of this kernel's monotonic clock.
    pub init_usec: u64,
    pub exec_usec: u64,
    /// `default = @saved` is on: remember `selected` in
    /// `LoaderEntryLastBooted`, as systemd-boot does only then.
    pub save_last_booted: bool,
}

/// The efivarfs files (name, whole content) a boot writes, so that
/// `bootctl status` and `systemd-analyze` in the target see vhdboot. The
/// caller writes only the ones whose bytes differ.
pub fn boot_variables(record: &BootRecord<'_>) -> Vec<(String, Vec<u8>)> {
    let file = |name: &str, data: Vec<u8>| {
        (
            file_name(name, LOADER_GUID),
            with_attributes(NV_BS_RT, &data),
        )
    };
    let mut out = vec![
        file(names::INFO, encode_string(record.loader_info)),
        file(names::FEATURES, encode_features(FEATURES)),
        file(names::ENTRIES, encode_string_list(record.entries)),
        file(names::ENTRY_SELECTED, encode_string(record.selected)),
        file(names::TIME_INIT, encode_usec(record.init_usec)),
        file(names::TIME_EXEC, encode_usec(record.exec_usec)),
    ];
    if record.save_last_booted {
        out.push(file(
            names::ENTRY_LAST_BOOTED,
            encode_string(record.selected),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_utf16le_with_a_trailing_nul() {
        assert_eq!(encode_string("vhd"), b"v\0h\0d\0\0\0");
        assert_eq!(decode_string(b"v\0h\0d\0\0\0").as_deref(), Some("vhd"));
        assert_eq!(
            decode_string(&encode_string("Ünïcödé 😀")).as_deref(),
            Some("Ünïcödé 😀")
        );
    }

    #[test]
    fn a_string_without_its_nul_is_still_read() {
        assert_eq!(decode_string(b"a\0b\0").as_deref(), Some("ab"));
    }

    #[test]
    fn odd_lengths_and_lone_surrogates_are_not_strings() {
        assert_eq!(decode_string(b"a\0b"), None);
        assert_eq!(decode_string(&[0x00, 0xd8, 0, 0]), None);
    }

    #[test]
    fn efivarfs_files_carry_four_bytes_of_attributes_first() {
        let file = with_attributes(NV_BS_RT, &encode_string("x"));
        assert_eq!(file, [7, 0, 0, 0, b'x', 0, 0, 0]);
        let (attributes, data) = split_attributes(&file).unwrap();
        assert_eq!(attributes, 7);
        assert_eq!(decode_string(data).as_deref(), Some("x"));
        assert_eq!(split_attributes(&[7, 0, 0]), None);
    }

    #[test]
    fn entry_lists_round_trip_and_skip_empty_items() {
        let ids = ["a-1", "b-2"];
        let data = encode_string_list(&ids);
        assert_eq!(data.len(), (3 + 1) * 2 * 2);
        assert_eq!(decode_string_list(&data).unwrap(), ids);
        let mut doubled = data.clone();
        doubled.extend([0, 0]);
        assert_eq!(decode_string_list(&doubled).unwrap(), ids);
    }

    #[test]
    fn times_are_decimal_strings_and_features_a_u64() {
        assert_eq!(
            decode_string(&encode_usec(1_234_567)).as_deref(),
            Some("1234567")
        );
        assert_eq!(encode_features(FEATURES), [0x0c, 0x02, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn boot_variable_names_are_four_upper_case_hex_digits() {
        assert_eq!(boot_variable(0x1a), "Boot001A");
        assert_eq!(parse_boot_variable("Boot001A"), Some(0x1a));
        assert_eq!(parse_boot_variable("Boot001a"), None);
        assert_eq!(parse_boot_variable("BootOrder"), None);
        assert_eq!(parse_boot_variable("BootNext"), None);
        assert_eq!(parse_boot_variable("Boot00010"), None);
    }

    #[test]
    fn boot_order_and_numbers_are_little_endian_u16() {
        assert_eq!(decode_boot_order(&[1, 0, 0, 0, 3, 0]), Some(vec![1, 0, 3]));
        assert_eq!(decode_boot_order(&[1]), None);
        assert_eq!(
            decode_boot_number(&encode_boot_number(0x0102)),
            Some(0x0102)
        );
        assert_eq!(decode_boot_number(&[1, 0, 0]), None);
    }

    #[test]
    fn a_boot_writes_the_loader_interface_and_saves_only_under_saved() {
        let entries = vec!["a-x-00000001".to_string(), "b-y-00000002".to_string()];
        let record = BootRecord {
            loader_info: "vhdboot 0.1.0",
            entries: &entries,
            selected: "b-y-00000002",
            init_usec: 10,
            exec_usec: 20,
            save_last_booted: false,
        };
        let vars = boot_variables(&record);
        let names: Vec<&str> = vars
            .iter()
            .map(|(n, _)| n.split('-').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "LoaderInfo",
                "LoaderFeatures",
                "LoaderEntries",
                "LoaderEntrySelected",
                "LoaderTimeInitUSec",
                "LoaderTimeExecUSec"
            ]
        );
        assert!(
            vars.iter()
                .all(|(n, c)| n.ends_with(LOADER_GUID) && c[..4] == [7, 0, 0, 0])
        );
        assert_eq!(
            decode_string(&vars[0].1[4..]).as_deref(),
            Some("vhdboot 0.1.0")
        );
        assert_eq!(
            decode_string(&vars[3].1[4..]).as_deref(),
            Some("b-y-00000002")
        );
        let saved = boot_variables(&BootRecord {
            save_last_booted: true,
            ..record
        });
        let (name, content) = saved.last().unwrap();
        assert_eq!(name, &file_name("LoaderEntryLastBooted", LOADER_GUID));
        assert_eq!(
            decode_string(&content[4..]).as_deref(),
            Some("b-y-00000002")
        );
    }

    #[test]
    fn load_option_description_and_attributes_are_read() {
        let data = encode_load_option(LOAD_OPTION_ACTIVE, "Windows Boot Manager");
        let option = parse_load_option(&data).unwrap();
        assert_eq!(option.description, "Windows Boot Manager");
        assert!(option.active());
    }

    #[test]
    fn load_option_whose_parts_overrun_the_data_is_refused() {
        let data = encode_load_option(LOAD_OPTION_ACTIVE, "Ventoy");
        // The device path claims more bytes than follow.
        let mut long_path = data.clone();
        long_path[4] = 200;
        assert_eq!(parse_load_option(&long_path), None);
        // No NUL after the description.
        assert_eq!(parse_load_option(&[1, 0, 0, 0, 0, 0, b'V', 0]), None);
        for cut in 0..data.len() - 4 {
            assert_eq!(parse_load_option(&data[..cut]), None, "cut at {cut}");
        }
    }
}
