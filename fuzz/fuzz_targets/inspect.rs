//! What stage 1's PID 1 runs on every image it finds on an untrusted disk:
//! `inspect` over arbitrary bytes (footer, GPT, every ESP and XBOOTLDR
//! partition, UKIs and Boot Loader Spec entries), then `load_payload` for
//! each entry it lists, as a boot of that entry would. It must never
//! panic, hang, or allocate far beyond the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use vhdboot::image::inspect::{MAX_BOOT_PARTITIONS, MAX_ENTRIES_PER_IMAGE, inspect, load_payload};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    // As a VHD only (the footer must be valid), then as a raw disk too.
    let _ = inspect(&mut Cursor::new(data), len, false);
    let found = inspect(&mut Cursor::new(data), len, true);
    // Resources, not only crashes: what is kept stays under the caps.
    assert!(
        found.entries.len() <= MAX_ENTRIES_PER_IMAGE,
        "too many entries"
    );
    assert!(
        found.esps.len() <= MAX_BOOT_PARTITIONS,
        "too many ESPs read"
    );
    let Some(data_size) = found.kind.data_size() else {
        return;
    };
    for entry in &found.entries {
        if let Ok(p) = load_payload(&mut Cursor::new(data), data_size, &entry.source) {
            // The payload comes from the input: it cannot be larger, save
            // the initrd's padding to 4 bytes per file.
            assert!(p.kernel.len() <= data.len(), "kernel larger than the disk");
        }
    }
});
