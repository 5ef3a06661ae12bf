//! Any bytes given to the UKI reader must give Ok or Err, never a panic or
//! an allocation larger than the input. Every section vhdboot knows is
//! read and copied, the way `uki extract` and a boot read `.linux` and
//! `.initrd`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, sink};
use vhdboot::image::bzimage::is_bzimage;
use vhdboot::image::uki::{UkiInfo, UkiSection};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    // A file on FAT reports its length from the directory entry, which may
    // disagree with what its clusters hold: try a shorter and a longer one.
    let _ = UkiInfo::read_with_len(&mut Cursor::new(data), len / 2);
    let _ = UkiInfo::read_with_len(&mut Cursor::new(data), len.saturating_mul(2));
    let Ok(info) = UkiInfo::read(&mut Cursor::new(data)) else {
        return;
    };
    let _ = info.title("fuzz.efi");
    let _ = info.version();
    let _ = (info.kernel_size(), info.initrd_size());
    if let Ok(prefix) = info.read_kernel_prefix(&mut Cursor::new(data)) {
        let _ = is_bzimage(&prefix);
    }
    for name in UkiSection::ALL {
        if let Ok(bytes) = info.read_section(&mut Cursor::new(data), name) {
            assert!(bytes.len() <= data.len(), "{name} is larger than the file");
        }
        let _ = info.copy_section(&mut Cursor::new(data), name, &mut sink());
    }
});
