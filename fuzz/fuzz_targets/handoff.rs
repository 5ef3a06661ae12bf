//! Stage 2 parses /proc/cmdline with this: it must never panic, and any
//! handoff it accepts must survive being written out and read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vhdboot::boot::cmdline::Cmdline;
use vhdboot::boot::handoff::Handoff;

fuzz_target!(|text: &str| {
    let Ok(handoff) = Handoff::parse(text) else {
        return;
    };
    let mut line = Cmdline::parse("");
    if handoff.apply(&mut line).is_ok() {
        assert_eq!(
            Handoff::parse(&line.to_string()),
            Ok(handoff),
            "from {text:?}"
        );
    }
});
