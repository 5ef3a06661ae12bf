//! Carried modules: `parse_modules_dep` and `dependency_closure` over the
//! first half of the input (as modules.dep, wanting loop, ntfs3 and the
//! first word of the second half, with the second half's lines as the
//! built-in list), `parse_carried_list` over the whole input, and
//! `find_image_modules` over the bytes as a disk whose ext4 root holds
//! /lib/modules. The closure must stay within its caps whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::io::Cursor;
use vhdboot::boot::cpio::parse_carried_list;
use vhdboot::image::carry::{
    MAX_CARRIED_BYTES, MAX_CARRIED_MODULES, dependency_closure, find_image_modules,
    parse_modules_dep,
};
use vhdboot::image::modules_index::canonical_name;
use vhdboot::model::{ByteRange, EntrySource};

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let dep = parse_modules_dep(&a);
    let builtin: BTreeSet<String> = b.lines().map(canonical_name).collect();
    let mut wanted = vec!["loop".to_string(), "ntfs3".to_string()];
    if let Some(word) = b.split_whitespace().next() {
        wanted.push(canonical_name(word));
    }
    if let Ok(order) = dependency_closure(&dep, &builtin, &wanted) {
        assert!(order.len() <= MAX_CARRIED_MODULES, "too many modules");
    }
    let _ = parse_carried_list(&String::from_utf8_lossy(data));
    let len = data.len() as u64;
    let source = EntrySource::Ext4 {
        partition: ByteRange { offset: 0, len },
        linux: "/boot/vmlinuz".into(),
        initrd: vec![],
    };
    if let Ok(found) = find_image_modules(
        &mut Cursor::new(data),
        len,
        &source,
        Some("6.12.1"),
        &wanted,
    ) {
        let total: u64 = found.files.iter().map(|f| f.bytes.len() as u64).sum();
        assert!(
            total <= MAX_CARRIED_BYTES.min(len),
            "carried more than the cap or the disk"
        );
    }
});
