//! Text from a disk made safe to print on a terminal.
//!
//! Titles, paths, command lines, os-release values and labels come from
//! images anyone may have written. Printed raw, an ESC in a title is a
//! terminal escape sequence: it can clear the screen, move the cursor over
//! earlier lines, retitle the window or, on some terminals, answer back
//! into the input. A newline in a label forges a line of its own. The menu
//! is safe through ratatui, which draws cells; every other place that
//! prints text from a disk (the CLI, PID 1's console lines) passes it
//! through [`escape_controls`] first.

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt::Write;

/// Whether a terminal may act on this character instead of showing it.
/// Tab is kept: it only moves to the next tab stop on the same line.
fn is_unsafe(c: char) -> bool {
    match c {
        '\t' => false,
        // C0 (with ESC, CR and LF), DEL and C1: a UTF-8 terminal may still
        // act on C1 code points such as U+009B, the one-character CSI.
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Bidirectional overrides and isolates reorder what is shown, so a
        // path can read as another path (CVE-2021-42574).
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// Returns `text` with every character a terminal could act on written
/// as a visible escape (`\x1b`, `\n`, `\u{202e}`), one line of plain
/// text, unchanged (and not copied) when it holds none. Tab stays.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        // Writing to a String cannot fail.
        let _ = match c {
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            c if u32::from(c) <= 0xff => write!(out, "\\x{:02x}", u32::from(c)),
            c => write!(out, "\\u{{{:x}}}", u32::from(c)),
        };
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "Ubuntu 24.04 LTS (6.8.0) /Images/ü.vhd\tquiet splash";
        assert!(matches!(escape_controls(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn escape_sequences_are_shown_not_run() {
        assert_eq!(
            escape_controls("\u{1b}[2J\u{1b}]0;owned\u{7}Title"),
            "\\x1b[2J\\x1b]0;owned\\x07Title"
        );
    }

    #[test]
    fn newlines_cannot_forge_a_line() {
        assert_eq!(
            escape_controls("label\r\nProblems: none"),
            "label\\r\\nProblems: none"
        );
    }

    #[test]
    fn del_and_c1_are_escaped() {
        assert_eq!(escape_controls("a\u{7f}b\u{9b}31mc"), "a\\x7fb\\x9b31mc");
        assert_eq!(escape_controls("\u{80}\u{9f}"), "\\x80\\x9f");
    }

    #[test]
    fn bidi_overrides_are_escaped() {
        assert_eq!(escape_controls("a\u{202e}dhv.b"), "a\\u{202e}dhv.b");
        assert_eq!(escape_controls("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
    }

    #[test]
    fn every_c0_control_but_tab_is_escaped() {
        for b in 0u8..0x20 {
            let c = char::from(b);
            let out = escape_controls(&c.to_string()).into_owned();
            if c == '\t' {
                assert_eq!(out, "\t");
            } else {
                assert!(
                    out.starts_with('\\') && !out.chars().any(is_unsafe),
                    "{b:#x}: {out:?}"
                );
            }
        }
    }
}
