//! Boot Loader Spec entries from a disk must parse without panicking, and
//! version comparison must be total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::image::bls::BlsEntry;
use vhdboot::image::version::compare_versions;

fuzz_target!(|data: &[u8]| {
    let e = BlsEntry::parse_bytes(data);
    let _ = e.display_title("fuzz.conf");
    let _ = e.cmdline();
    let text = String::from_utf8_lossy(data);
    // Split near the middle, at a character boundary.
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid -= 1;
    }
    let (a, b) = text.split_at(mid);
    // Sorting entries relies on a total order: antisymmetric and reflexive.
    assert_eq!(
        compare_versions(a, b),
        compare_versions(b, a).reverse(),
        "{a:?} vs {b:?}"
    );
    assert_eq!(compare_versions(a, a), std::cmp::Ordering::Equal, "{a:?}");
});
