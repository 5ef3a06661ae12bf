//! Links the vhdboot binary without unwind tables: it is built with
//! panic=abort (release and dev profiles in Cargo.toml).
//!
//! With panic=abort nothing ever unwinds, yet fat LTO still emits an
//! `.eh_frame` entry for every function, because the precompiled std it
//! merges carries unwind tables (`-C force-unwind-tables=no` changes
//! nothing). Those tables are ~12% of the static binary, which PID 1 and
//! stage 2 carry in every initramfs. Their only reader is the backtrace of a
//! panic message, and a stripped binary's backtrace names no function
//! anyway; the panic message itself still prints. A linker script discards
//! the sections: `INSERT AFTER` adds the rule to the linker's default
//! script instead of replacing it, so the layout stays the default one.
//!
//! The price: capturing a backtrace aborts the process, because libgcc's
//! unwinder asserts when it finds no table for its own first frame. So
//! nothing in the binary may capture one on an ordinary path: anyhow is
//! built without "std" (its errors would capture one whenever
//! RUST_BACKTRACE is set, and the kernel hands unknown command-line words
//! such as `RUST_BACKTRACE=1` to PID 1 as environment). Only std's default
//! panic hook still tries, on a path that aborts anyway.
//!
//! Test and bench binaries keep their tables (the test harness unwinds to
//! catch panics): `rustc-link-arg-bins` reaches only the `[[bin]]` target.
//! If that binary is ever built with panic=unwind (the integration tests'
//! copy may be), a panic finds no tables and aborts, as panic=abort would.

use std::env;
use std::fs;
use std::io;
use std::path::PathBuf;

const SCRIPT: &str = "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) \
                      *(.gcc_except_table .gcc_except_table.*) } } INSERT AFTER .text;\n";

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    // Cargo's CARGO_CFG_PANIC reports the target's default, not the
    // profile's panic=abort, so it cannot gate this.
    if !env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux") {
        return Ok(());
    }
    let out_dir = env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("cargo set no OUT_DIR"))?;
    let script = PathBuf::from(out_dir).join("no-unwind-tables.ld");
    fs::write(&script, SCRIPT)?;
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    Ok(())
}
