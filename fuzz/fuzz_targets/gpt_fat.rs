//! GPT reading and FAT walking over arbitrary bytes, the way `inspect`
//! walks an image: every ESP is opened, its boot directories listed and
//! its files read under a size cap. Nothing may panic or allocate without
//! bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Read};
use vhdboot::image::esp::Esp;
use vhdboot::image::partitions::read_partitions;
use vhdboot::image::window::Window;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    // Whole input as a FAT filesystem: the common case for the FAT code.
    walk_fat(data, 0, len);
    let Ok(table) = read_partitions(Cursor::new(data), len) else {
        return;
    };
    // Every partition, not only ESPs: XBOOTLDR is read too, and a type
    // GUID says nothing about what the bytes hold.
    for p in &table.partitions {
        walk_fat(data, p.range.offset, p.range.len);
    }
});

fn walk_fat(data: &[u8], offset: u64, len: u64) {
    let Ok(esp) = Esp::open(Window::new(Cursor::new(data), offset, len)) else {
        return;
    };
    let _ = esp.volume_label();
    for dir in ["/", "/EFI", "/EFI/Linux", "/loader", "/loader/entries"] {
        let Ok(entries) = esp.list_dir(dir) else {
            continue;
        };
        for e in entries.iter().filter(|e| !e.is_dir) {
            let path = format!("{}/{}", dir.trim_end_matches('/'), e.name);
            let _ = esp.file_size(&path);
            let _ = esp.read_file(&path, 64 * 1024);
            if let Ok(f) = esp.open_file(&path) {
                let mut head = Vec::new();
                let _ = f.take(4096).read_to_end(&mut head);
            }
        }
    }
}
