//! Any bytes given to the UKI reader must give Ok or Err, never a panic or
//! an allocation larger than the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use vhdboot::image::uki::{UkiInfo, is_bzimage};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = UkiInfo::read(&mut Cursor::new(data)) {
        let _ = info.title("fuzz.efi");
        if let Ok(prefix) = info.read_kernel_prefix(&mut Cursor::new(data)) {
            let _ = is_bzimage(&prefix);
        }
        let _ = info.read_section(&mut Cursor::new(data), ".initrd");
    }
});
