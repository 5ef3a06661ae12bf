//! A snapshot-merge status line (from the kernel, read while stage 1
//! merges a trial into its image) must parse without panicking, and the
//! progress figures made from it must stay within 0-100 %.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::trial::parse_merge_status;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = parse_merge_status(&text) {
        let _ = s.done();
        assert!(s.percent(s.remaining().saturating_mul(2)) <= 100);
        assert!(s.percent(0) == 100);
    }
});
