//! The dynamic VHD reader of `vhdboot convert` over arbitrary bytes: it
//! must return errors, never panic or allocate past its caps, and every
//! block of a layout it accepts must read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use vhdboot::image::dynamic_vhd::{DynamicHeader, DynamicVhd};

fuzz_target!(|data: &[u8]| {
    let _ = DynamicHeader::parse(data, 0);
    let len = data.len() as u64;
    let mut r = Cursor::new(data);
    let Ok(vhd) = DynamicVhd::open(&mut r, len) else {
        return;
    };
    assert!(vhd.allocated_bytes() <= vhd.disk_size);
    let mut buf = Vec::new();
    // Bounded by the fuzzer's input size: a small file cannot describe
    // more allocated blocks than its table has room for, but an
    // unallocated disk may be 2040 GiB, so only the first blocks are read.
    for block in 0..vhd.blocks().min(64) {
        buf.resize(vhd.data_len(block) as usize, 0);
        vhd.read_block(&mut r, block, &mut buf)
            .expect("a block the layout accepted reads");
    }
});
