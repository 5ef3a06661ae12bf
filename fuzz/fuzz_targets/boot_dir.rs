//! The bytes as an ext4 partition: the superblock checks and ext4-view
//! behind `ext4_window`, `read_boot_dir` (os-release, /etc/kernel/cmdline,
//! grubenv, /boot/loader/entries, kernel/initramfs pairs), then a boot of
//! every kernel it lists through `load_payload`; and the grubenv parser,
//! variable expansion and version compare over the two halves of the
//! input. It must never panic, hang, or allocate far beyond the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use vhdboot::image::boot_dir::{MAX_BOOT_DIR_NAMES, expand_vars, parse_grubenv, read_boot_dir};
use vhdboot::image::version::compare_versions;
use vhdboot::image::ext4_window::with_ext4;
use vhdboot::image::inspect::load_payload;
use vhdboot::model::{ByteRange, EntrySource};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let range = ByteRange { offset: 0, len };
    let found = with_ext4(&mut Cursor::new(data), range, &mut |_| Ok(()), |link, sb| {
        let fs = link.load().ok()?;
        Some(read_boot_dir(&fs, sb.uuid_string(), len))
    });
    if let Ok(Some(dir)) = found {
        assert!(dir.kernels.len() <= 2 * MAX_BOOT_DIR_NAMES, "too many kernels");
        for k in &dir.kernels {
            let source = EntrySource::Ext4 {
                partition: range,
                linux: k.linux.clone(),
                initrd: k.initrd.clone(),
            };
            if let Ok(p) = load_payload(&mut Cursor::new(data), len, &source) {
                assert!(p.kernel.len() <= data.len(), "kernel larger than the disk");
            }
        }
    }
    let (a, b) = data.split_at(data.len() / 2);
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let vars = parse_grubenv(&a);
    let _ = expand_vars(&b, &vars);
    let _ = compare_versions(&a, &b);
});
