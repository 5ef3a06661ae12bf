//! Boot Loader Spec entries from a disk must parse without panicking, and
//! version comparison must be total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::image::bls::{BlsEntry, compare_versions};

fuzz_target!(|data: &[u8]| {
    let e = BlsEntry::parse_bytes(data);
    let _ = e.display_title("fuzz.conf");
    let _ = e.cmdline();
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_at(text.len() / 2);
    let _ = compare_versions(a, b);
});
