//! Configuration parsing never fails or panics, whatever the file and the
//! kernel command line hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::config::Config;

fuzz_target!(|input: (&str, &str)| {
    let (conf, cmdline) = input;
    let _ = Config::from_sources(Some(conf), cmdline);
});
