//! The VHD footer parser and file classifier over arbitrary bytes: they
//! must return errors, never panic, and a parsed footer must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use vhdboot::image::vhd::{VhdFooter, classify, find_stale_footer};

fuzz_target!(|data: &[u8]| {
    if let Ok(footer) = VhdFooter::parse(data) {
        // to_bytes zeroes the reserved area, which the input may not have,
        // so only the checksum may differ after one round trip.
        let bytes = footer.to_bytes();
        let again = VhdFooter::parse(&bytes).expect("a written footer parses");
        assert_eq!(
            again,
            VhdFooter {
                checksum: again.checksum,
                ..footer
            }
        );
        assert_eq!(again.to_bytes(), bytes);
    }
    let len = data.len() as u64;
    let _ = classify(&mut Cursor::new(data), len, true);
    let _ = classify(&mut Cursor::new(data), len, false);
    let _ = find_stale_footer(&mut Cursor::new(data), len, 1 << 20);
});
