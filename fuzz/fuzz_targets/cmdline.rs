//! The tokenizer must accept any text, and writing a parsed line back out
//! must give a line that parses to the same parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::boot::cmdline::Cmdline;

fuzz_target!(|text: &str| {
    let first = Cmdline::parse(text);
    let written = first.to_string();
    let again = Cmdline::parse(&written);
    assert_eq!(first, again, "round trip of {text:?} via {written:?}");

    // Appending a parameter must never be swallowed by what came before.
    let mut edited = first.clone();
    if edited.append("vhdboot.fuzz", Some("a b")).is_ok() {
        let reread = Cmdline::parse(&edited.to_string());
        assert_eq!(reread.get("vhdboot.fuzz"), Some("a b"), "after {text:?}");
    }
});
