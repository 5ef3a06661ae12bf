//! vhdboot's in-use record is read from a host volume, which anyone can
//! write: any bytes (up to the reader's cap) must parse or be refused
//! without panicking, and a record that parses must describe itself and
//! survive its own render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::boot::in_use::{InUseRecord, MAX_LEN};

fuzz_target!(|data: &[u8]| {
    // Stage 1 reads at most MAX_LEN bytes, as text (a file that is not
    // UTF-8 counts as a record without details, before the parser).
    let Ok(text) = std::str::from_utf8(&data[..data.len().min(MAX_LEN as usize)]) else {
        return;
    };
    if let Some(record) = InUseRecord::parse(text) {
        let _ = record.describe();
        let again = InUseRecord::parse(&record.render());
        assert!(again.is_some(), "a parsed record does not parse after render");
    }
});
