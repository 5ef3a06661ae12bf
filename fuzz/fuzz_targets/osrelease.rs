//! os-release text from a disk must parse without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::image::osrelease::OsRelease;

fuzz_target!(|data: &[u8]| {
    let os = OsRelease::parse_bytes(data);
    let _ = os.display_name();
});
