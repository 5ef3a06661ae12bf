//! Runs the boot-time initramfs check on a file and prints the verdict and
//! how long it took, to measure the decoders:
//! `cargo run --release --example initrd_check -- INITRD [KVER] [ntfs3|exfat]`.

use std::process::ExitCode;
use std::time::Instant;
use vhdboot::image::initrd::check_modules;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: initrd_check INITRD [KVER] [ntfs3|exfat]");
        return ExitCode::FAILURE;
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let driver = args.get(2).map_or("ntfs3", String::as_str);
    let started = Instant::now();
    let check = check_modules(&bytes, args.get(1).map(String::as_str), driver);
    let elapsed = started.elapsed();
    println!("{check:#?}");
    match check.problem() {
        Some(p) => println!(
            "{}: {}",
            if p.blocks_boot { "refused" } else { "warning" },
            p.what
        ),
        None => println!("ok"),
    }
    println!(
        "{} bytes checked in {:.0} ms",
        bytes.len(),
        elapsed.as_secs_f64() * 1000.0
    );
    ExitCode::SUCCESS
}
