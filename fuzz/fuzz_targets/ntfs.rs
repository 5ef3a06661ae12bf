//! The NTFS and exFAT readers stage 1 and stage 2 use to tell an unsafe
//! host volume before mounting it: the boot sectors, MFT record fix-ups,
//! the $Volume record, $LogFile's restart pages and run list, and the
//! hiberfil.sys signature, over untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use vhdboot::image::exfat::ExfatBoot;
use vhdboot::image::ntfs::{
    NtfsBoot, apply_fixups, first_data_run, is_hibernation_signature, parse_restart_page,
    parse_volume_record, read_logfile_state, read_volume_info, restart_page_size,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(boot) = NtfsBoot::parse(data) {
        let _ = boot.record_offset(3);
        let _ = boot.mirror_record_offset(3);
        let _ = boot.record_offset(u64::MAX);
        let _ = boot.larger_than(data.len() as u64);
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
    let _ = first_data_run(data, 2);
    let _ = restart_page_size(data);
    let mut page = data.to_vec();
    let _ = parse_restart_page(&mut page);
    let _ = read_volume_info(&mut Cursor::new(data));
    let _ = read_logfile_state(&mut Cursor::new(data));
    let _ = is_hibernation_signature(data);
    if let Ok(b) = ExfatBoot::parse(data) {
        let _ = b.is_dirty();
    }
});
