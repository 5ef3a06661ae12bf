//! The initramfs pre-flight check, run on every boot over the target's
//! initrd: segment detection, the gzip, xz, zstd and legacy LZ4
//! decompressors, and the newc cpio scanner. Beyond not panicking, what it
//! keeps must stay bounded whatever the input unpacks to: a few KiB of
//! compressed input can name millions of module files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::image::initrd::{MAX_MODULE_FILES, MAX_MODULE_TREES, check_modules, scan};

fuzz_target!(|data: &[u8]| {
    for found in [
        scan(data, Some("6.12.9-amd64"), &["loop", "ntfs3"]),
        scan(data, None, &[]),
    ] {
        assert!(found.trees.len() <= MAX_MODULE_TREES, "too many trees kept");
        let kept: usize = found.trees.values().map(|t| t.modules.len()).sum();
        assert!(kept <= MAX_MODULE_FILES, "too many module names kept");
        // Every segment starts at a distinct byte of the input.
        assert!(
            found.segments.len() <= data.len(),
            "more segments than bytes"
        );
    }
    let check = check_modules(data, Some("6.12.9-amd64"), "exfat");
    let _ = check.missing();
    let _ = check.problem();
});
