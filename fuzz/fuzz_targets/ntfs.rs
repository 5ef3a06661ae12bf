//! The NTFS reader stage 1 uses to tell a dirty or hibernated host volume
//! before mounting it: the boot sector, MFT record fix-ups, the
//! $Volume record, and the hiberfil.sys signature, over untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use vhdboot::image::ntfs::{
    NtfsBoot, apply_fixups, is_hibernation_signature, parse_volume_record, read_volume_info,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(boot) = NtfsBoot::parse(data) {
        let _ = boot.record_offset(3);
        let _ = boot.mirror_record_offset(3);
        let _ = boot.record_offset(u64::MAX);
    }
    let mut record = data.to_vec();
    if apply_fixups(&mut record, 3).is_ok() {
        assert_eq!(
            record.len(),
            data.len(),
            "fix-ups changed the record's size"
        );
    }
    let _ = parse_volume_record(data, 3);
    let _ = read_volume_info(&mut Cursor::new(data));
    let _ = is_hibernation_signature(data);
});
