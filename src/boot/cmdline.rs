//! The one kernel command-line tokenizer and editor in the project.
//!
//! It follows the kernel's own rules (`next_arg` in lib/cmdline.c), so that
//! what we read and write means the same to us, to the target kernel and to
//! stage 2:
//! - words are split on whitespace outside double quotes, and a double quote
//!   anywhere in a word starts or ends quoting;
//! - the key ends at the first `=` (not counting one in the very first
//!   position); a word without `=` is a flag with no value;
//! - one leading quote on the word or on the value is dropped, and so is the
//!   word's last character when it is a quote that closes one of those;
//!   other quotes stay in the text, as they do in the kernel;
//! - `--` ends the kernel's parameters: the rest goes to init untouched.
//!
//! One difference is deliberate: the kernel's `isspace()` also counts the
//! byte 0xA0 (Latin-1 no-break space), which occurs inside many UTF-8
//! characters. We split on ASCII whitespace only, so a `&str` is never cut
//! inside a character; when writing, values holding such a byte are quoted
//! so that the kernel keeps them whole too.

use std::fmt;

/// One parameter: `key`, or `key=value`.
///
/// Two parameters are equal when their key and value are; the original
/// spelling (quotes) is kept only so that untouched parameters are written
/// back exactly as they were read.
#[derive(Debug, Clone)]
pub struct Param {
    key: String,
    value: Option<String>,
    /// The text as it was read, written back while the parameter is unchanged.
    raw: String,
}

impl PartialEq for Param {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.value == other.value
    }
}

impl Eq for Param {}

/// A parameter that the kernel's tokenizer could not read back as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the kernel command-line parameter {shown} cannot be written so that the kernel reads it back \
     unchanged (unbalanced double quotes or an empty or misplaced key); remove the double quotes \
     from it or percent-encode them as %22"
)]
pub struct UnrepresentableParam {
    /// The parameter as the caller gave it, for the message.
    pub shown: String,
}

impl Param {
    /// Builds a parameter and finds a spelling the kernel reads back as
    /// exactly this key and value: plain if possible, else with the value in
    /// double quotes.
    pub fn new(key: &str, value: Option<&str>) -> Result<Param, UnrepresentableParam> {
        let shown = match value {
            Some(v) => format!("{key}={v}"),
            None => key.to_string(),
        };
        let candidates = match value {
            Some(v) => [format!("{key}={v}"), format!("{key}=\"{v}\"")],
            None => [key.to_string(), format!("\"{key}\"")],
        };
        // A value that the kernel would split (whitespace, or the 0xA0 byte
        // its isspace() also counts) must be quoted even if it reads back
        // the same through our ASCII-only splitter.
        let must_quote = value.is_some_and(needs_quotes) || (value.is_none() && needs_quotes(key));
        let start = usize::from(must_quote);
        candidates
            .into_iter()
            .skip(start)
            .find(|text| reads_back_as(text, key, value))
            .map(|raw| Param {
                key: key.to_string(),
                value: value.map(str::to_string),
                raw,
            })
            .ok_or(UnrepresentableParam { shown })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The text this parameter is written as on the command line.
    #[cfg(test)]
    pub fn as_written(&self) -> &str {
        &self.raw
    }

    /// The parameter without the kernel's quoting: `key` or `key=value`.
    pub fn unquoted(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}", self.key),
            None => self.key.clone(),
        }
    }
}

/// True for text that has to be inside quotes to stay one kernel word.
fn needs_quotes(text: &str) -> bool {
    text.is_empty() || text.bytes().any(|b| is_kernel_space(b) || b == 0xA0)
}

/// True when the kernel reads `text` back as this one parameter, and the
/// parameter after it stays separate: a quote left open would swallow the
/// rest of the line.
fn reads_back_as(text: &str, key: &str, value: Option<&str>) -> bool {
    let parsed = Cmdline::parse(&format!("{text} next"));
    parsed.init_args.is_none()
        && matches!(
            parsed.params.as_slice(),
            [p, next] if p.key == key && p.value.as_deref() == value
                && next.key == "next" && next.value.is_none()
        )
}

/// True when the kernel is still inside quotes at the end of this word,
/// which happens only to the last word of a line.
fn leaves_quote_open(raw: &str) -> bool {
    raw.bytes().filter(|&b| b == b'"').count() % 2 == 1
}

/// The whitespace of the kernel's `isspace()`, minus 0xA0 (see the module
/// comment).
fn is_kernel_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches(|c: char| u8::try_from(c).is_ok_and(is_kernel_space))
}

/// A parsed kernel command line: the parameters in order, and the words
/// after `--` (for init) if there was a `--`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    params: Vec<Param>,
    init_args: Option<String>,
}

impl Cmdline {
    /// Splits a command line the way the kernel does. Never fails: every
    /// string is some command line.
    pub fn parse(text: &str) -> Cmdline {
        let mut params = Vec::new();
        let mut rest = skip_spaces(text);
        while !rest.is_empty() {
            let (param, after) = next_arg(rest);
            if param.key == "--" && param.value.is_none() {
                return Cmdline {
                    params,
                    init_args: Some(skip_spaces(after).to_string()),
                };
            }
            params.push(param);
            rest = after;
        }
        Cmdline {
            params,
            init_args: None,
        }
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The words after `--`, which the kernel passes to init.
    pub fn init_args(&self) -> Option<&str> {
        self.init_args.as_deref()
    }

    /// True when some parameter has this key, with or without a value.
    pub fn contains(&self, key: &str) -> bool {
        self.params.iter().any(|p| p.key == key)
    }

    /// The value of the last parameter with this key, as the kernel takes
    /// the last one. `None` when absent or when that last one has no value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|p| p.key == key)
            .and_then(Param::value)
    }

    /// Removes every parameter with this key; returns how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.params.len();
        self.params.retain(|p| p.key != key);
        before - self.params.len()
    }

    /// Keeps only the parameters for which `keep` returns true.
    pub fn retain(&mut self, keep: impl FnMut(&Param) -> bool) {
        self.params.retain(keep);
    }

    /// Gives `key` this value: the first parameter with the key is replaced
    /// in place and the others removed, or the parameter is appended.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), UnrepresentableParam> {
        let param = Param::new(key, Some(value))?;
        match self.params.iter().position(|p| p.key == key) {
            Some(first) => {
                let mut index = 0;
                self.params.retain(|p| {
                    let keep = index <= first || p.key != key;
                    index += 1;
                    keep
                });
                if let Some(slot) = self.params.get_mut(first) {
                    *slot = param;
                }
            }
            None => self.push(param),
        }
        Ok(())
    }

    /// Adds a parameter after the others (before any `--`).
    pub fn append(&mut self, key: &str, value: Option<&str>) -> Result<(), UnrepresentableParam> {
        let param = Param::new(key, value)?;
        self.push(param);
        Ok(())
    }

    fn push(&mut self, param: Param) {
        // A last word with an open quote (`a="x y` at the end of the line)
        // would swallow whatever comes after it, so it is closed first:
        // rewritten in a clean spelling, or else given its closing quote.
        if let Some(last) = self.params.last_mut()
            && leaves_quote_open(&last.raw)
        {
            *last = Param::new(&last.key, last.value.as_deref()).unwrap_or_else(|_| {
                let raw = format!("{}\"", last.raw);
                let (closed, _) = next_arg(&raw);
                closed
            });
        }
        self.params.push(param);
    }
}

impl fmt::Display for Cmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in &self.params {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(&p.raw)?;
            first = false;
        }
        if let Some(init) = &self.init_args {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str("--")?;
            if !init.is_empty() {
                write!(f, " {init}")?;
            }
        }
        Ok(())
    }
}

/// One step of the kernel's `next_arg`: reads the parameter at the start of
/// `args` (which starts with a non-space) and returns it with the rest of
/// the line, leading spaces skipped.
///
/// Every cut falls on an ASCII byte (a quote, `=` or whitespace) or the end,
/// so slicing the `&str` there is always on a character boundary.
fn next_arg(args: &str) -> (Param, &str) {
    let bytes = args.as_bytes();
    let quoted = bytes.first() == Some(&b'"');
    let start = usize::from(quoted);
    let word = args.get(start..).unwrap_or("");
    let wb = word.as_bytes();

    let mut in_quote = quoted;
    let mut equals: Option<usize> = None;
    let mut end = wb.len();
    for (i, &c) in wb.iter().enumerate() {
        if is_kernel_space(c) && !in_quote {
            end = i;
            break;
        }
        // The kernel stores the position of the first `=` in a variable
        // where 0 means "none yet", so an `=` at position 0 is skipped.
        if equals.is_none() && c == b'=' && i > 0 {
            equals = Some(i);
        }
        if c == b'"' {
            in_quote = !in_quote;
        }
    }

    let ends_in_quote = end > 0 && wb.get(end - 1) == Some(&b'"');
    let raw = args.get(..start + end).unwrap_or(args).to_string();
    let (key, value) = match equals {
        None => {
            let key_end = if quoted && ends_in_quote {
                end - 1
            } else {
                end
            };
            (word.get(..key_end).unwrap_or(""), None)
        }
        Some(eq) => {
            let mut value_start = eq + 1;
            let mut strip_last = quoted && ends_in_quote;
            if wb.get(value_start) == Some(&b'"') && value_start < end {
                value_start += 1;
                strip_last |= ends_in_quote;
            }
            let value_end = if strip_last { end - 1 } else { end }.max(value_start);
            (
                word.get(..eq).unwrap_or(""),
                Some(word.get(value_start..value_end).unwrap_or("")),
            )
        }
    };
    let rest = word.get(end..).unwrap_or("");
    let param = Param {
        key: key.to_string(),
        value: value.map(str::to_string),
        raw,
    };
    (param, skip_spaces(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(c: &Cmdline) -> Vec<(String, Option<String>)> {
        c.params()
            .iter()
            .map(|p| (p.key().to_string(), p.value().map(str::to_string)))
            .collect()
    }

    fn kv(k: &str, v: Option<&str>) -> (String, Option<String>) {
        (k.to_string(), v.map(str::to_string))
    }

    fn assert_round_trip(text: &str) {
        let first = Cmdline::parse(text);
        let again = Cmdline::parse(&first.to_string());
        assert_eq!(
            first,
            again,
            "round trip of {text:?} via {:?}",
            first.to_string()
        );
    }

    #[test]
    fn words_split_on_whitespace_into_keys_and_values() {
        let c = Cmdline::parse("  root=/dev/sda1\tro  quiet\nloglevel=3 ");
        assert_eq!(
            pairs(&c),
            vec![
                kv("root", Some("/dev/sda1")),
                kv("ro", None),
                kv("quiet", None),
                kv("loglevel", Some("3")),
            ]
        );
        assert_eq!(c.init_args(), None);
    }

    #[test]
    fn quote_around_the_whole_word_is_removed() {
        let c = Cmdline::parse(r#""vhdboot.default=/my dir/a.vhd" quiet"#);
        assert_eq!(
            pairs(&c),
            vec![
                kv("vhdboot.default", Some("/my dir/a.vhd")),
                kv("quiet", None)
            ]
        );
    }

    #[test]
    fn quote_around_the_value_is_removed() {
        let c = Cmdline::parse(r#"vhdboot.default="/my dir/a.vhd" quiet"#);
        assert_eq!(
            pairs(&c),
            vec![
                kv("vhdboot.default", Some("/my dir/a.vhd")),
                kv("quiet", None)
            ]
        );
    }

    #[test]
    fn quote_inside_a_value_keeps_spaces_and_stays_in_the_text() {
        // The kernel strips only a leading quote and its closing partner at
        // the end of the word; quotes in the middle remain.
        let c = Cmdline::parse(r#"a=x"b c"d e"#);
        assert_eq!(pairs(&c), vec![kv("a", Some(r#"x"b c"d"#)), kv("e", None)]);
    }

    #[test]
    fn first_equals_sign_separates_key_and_value() {
        let c = Cmdline::parse("vhdboot.host=UUID=1234-ABCD");
        assert_eq!(c.get("vhdboot.host"), Some("UUID=1234-ABCD"));
    }

    #[test]
    fn leading_equals_sign_is_part_of_the_key_as_in_the_kernel() {
        let c = Cmdline::parse("=a =b=c");
        assert_eq!(pairs(&c), vec![kv("=a", None), kv("=b", Some("c"))]);
    }

    #[test]
    fn empty_values_are_kept_distinct_from_flags() {
        let c = Cmdline::parse(r#"a= b="" c"#);
        assert_eq!(
            pairs(&c),
            vec![kv("a", Some("")), kv("b", Some("")), kv("c", None)]
        );
    }

    #[test]
    fn unbalanced_quote_swallows_the_rest_of_the_line() {
        let c = Cmdline::parse(r#"a="x y z"#);
        assert_eq!(pairs(&c), vec![kv("a", Some("x y z"))]);
    }

    #[test]
    fn double_dash_ends_kernel_params_and_keeps_init_args() {
        let c = Cmdline::parse("quiet -- single  emergency=1");
        assert_eq!(pairs(&c), vec![kv("quiet", None)]);
        assert_eq!(c.init_args(), Some("single  emergency=1"));
        assert_eq!(c.to_string(), "quiet -- single  emergency=1");
    }

    #[test]
    fn get_returns_the_last_value_as_the_kernel_does() {
        let c = Cmdline::parse("rdinit=/a quiet rdinit=/b");
        assert_eq!(c.get("rdinit"), Some("/b"));
        assert_eq!(c.get("nothing"), None);
        assert_eq!(c.get("quiet"), None);
        assert!(c.contains("quiet"));
    }

    #[test]
    fn untouched_params_keep_their_original_spelling() {
        let text = r#"root=UUID=1 "a=b c" d="e f" g=h"i j"k"#;
        assert_eq!(Cmdline::parse(text).to_string(), text);
    }

    #[test]
    fn set_replaces_the_first_occurrence_in_place_and_drops_the_rest() {
        let mut c = Cmdline::parse("a=1 b a=2 c");
        c.set("a", "new value").unwrap();
        assert_eq!(c.to_string(), r#"a="new value" b c"#);
        c.set("z", "9").unwrap();
        assert_eq!(c.to_string(), r#"a="new value" b c z=9"#);
    }

    #[test]
    fn remove_and_retain_drop_params() {
        let mut c = Cmdline::parse("a=1 vhdboot.x=2 b a=3 -- init");
        assert_eq!(c.remove("a"), 2);
        c.retain(|p| !p.key().starts_with("vhdboot."));
        assert_eq!(c.to_string(), "b -- init");
    }

    #[test]
    fn append_goes_before_init_args() {
        let mut c = Cmdline::parse("quiet -- single");
        c.append("x", Some("1")).unwrap();
        c.append("flag", None).unwrap();
        assert_eq!(c.to_string(), "quiet x=1 flag -- single");
    }

    #[test]
    fn values_with_spaces_are_quoted_the_kernel_way() {
        let p = Param::new("vhdboot.default", Some("/my dir/a.vhd")).unwrap();
        assert_eq!(p.as_written(), r#"vhdboot.default="/my dir/a.vhd""#);
        let p = Param::new("k", Some("")).unwrap();
        assert_eq!(p.as_written(), r#"k="""#);
    }

    #[test]
    fn values_holding_byte_a0_are_quoted_because_the_kernel_splits_there() {
        // 'à' is C3 A0 in UTF-8; the kernel's isspace() is true for 0xA0.
        let p = Param::new("k", Some("voilà")).unwrap();
        assert_eq!(p.as_written(), "k=\"voilà\"");
        let p = Param::new("k", Some("über")).unwrap();
        assert_eq!(p.as_written(), "k=über");
    }

    #[test]
    fn values_that_the_kernel_cannot_read_back_are_refused() {
        let err = Param::new("k", Some(r#"a" b"#)).unwrap_err();
        assert!(err.to_string().contains(r#"k=a" b"#), "{err}");
        assert!(Param::new("", Some("x")).is_err());
        assert!(Param::new("a=b", None).is_err());
        assert!(Param::new("a b", Some("x")).is_err());
    }

    #[test]
    fn appending_after_an_open_quote_closes_it_first() {
        let mut c = Cmdline::parse(r#"quiet a="x y"#);
        c.append("b", Some("1")).unwrap();
        let again = Cmdline::parse(&c.to_string());
        assert_eq!(
            pairs(&again),
            vec![kv("quiet", None), kv("a", Some("x y")), kv("b", Some("1"))]
        );

        // This value has no clean spelling; the closing quote keeps the
        // appended parameter separate at the cost of one quote character.
        let mut c = Cmdline::parse(r#"a=x"y z"#);
        c.append("b", Some("1")).unwrap();
        let again = Cmdline::parse(&c.to_string());
        assert_eq!(again.get("b"), Some("1"));
        assert_eq!(again.get("a"), Some(r#"x"y z""#));
    }

    #[test]
    fn values_with_balanced_inner_quotes_are_written_plain() {
        let p = Param::new("k", Some(r#"a"b"c"#)).unwrap();
        assert_eq!(p.as_written(), r#"k=a"b"c"#);
    }

    #[test]
    fn params_equal_by_key_and_value_regardless_of_spelling() {
        let a = Cmdline::parse(r#"k="v""#);
        let b = Cmdline::parse("k=v");
        assert_eq!(a, b);
        assert_ne!(a.to_string(), b.to_string());
    }

    #[test]
    fn parse_display_parse_round_trips() {
        for text in [
            "",
            "   ",
            "quiet",
            "root=/dev/sda1 ro quiet splash",
            r#""vhdboot.default=/my dir/a.vhd""#,
            r#"vhdboot.default="/my dir/a.vhd""#,
            r#"a=x"b c"d e"#,
            r#"a="unterminated value"#,
            r#"""#,
            r#""" x"#,
            "=a =b=c",
            "-- only init",
            "a -- ",
            "a --",
            "\"--\" b",
            "k=\"voilà\" ü=1",
        ] {
            assert_round_trip(text);
        }
    }

    /// Every string up to `len` characters over a small alphabet that holds
    /// each character the tokenizer treats specially.
    fn all_strings(len: usize) -> Vec<String> {
        let alphabet = ['a', '=', '"', ' ', '-', '\u{e0}'];
        let mut out = vec![String::new()];
        let mut layer = vec![String::new()];
        for _ in 0..len {
            layer = layer
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            out.extend(layer.iter().cloned());
        }
        out
    }

    #[test]
    fn every_short_line_round_trips() {
        for text in all_strings(5) {
            assert_round_trip(&text);
        }
    }

    /// Longer lines than the exhaustive test reaches, from a fixed-seed
    /// xorshift generator so that a failure is reproducible.
    #[test]
    fn random_long_lines_round_trip_and_keep_appended_params_separate() {
        let alphabet = ['a', 'b', '=', '"', ' ', '\t', '-', '\u{e0}', '/', '%'];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            assert_round_trip(&text);
            let mut c = Cmdline::parse(&text);
            c.append("vhdboot.x", Some("a b")).unwrap();
            let again = Cmdline::parse(&c.to_string());
            assert_eq!(again.get("vhdboot.x"), Some("a b"), "after {text:?}");
        }
    }

    #[test]
    fn every_accepted_appended_value_reads_back_after_any_short_line() {
        let lines = all_strings(3);
        let mut accepted = 0;
        for value in all_strings(3) {
            if Param::new("k", Some(&value)).is_err() {
                continue;
            }
            accepted += 1;
            for line in &lines {
                let mut c = Cmdline::parse(line);
                c.append("k", Some(&value)).unwrap();
                let again = Cmdline::parse(&c.to_string());
                assert_eq!(
                    again.params().last().map(|p| (p.key(), p.value())),
                    Some(("k", Some(value.as_str()))),
                    "line {line:?} + value {value:?} written as {:?}",
                    c.to_string()
                );
            }
        }
        assert!(accepted > 150, "only {accepted} values accepted");
    }

    #[test]
    fn edited_params_round_trip_through_display() {
        let mut c = Cmdline::parse(r#"root=UUID=1 rdinit="/x y" -- init args"#);
        c.set("vhdboot.image", "/Images/Ubuntu 24.04 – ü.vhd")
            .unwrap();
        c.append("empty", Some("")).unwrap();
        c.set("rdinit", "/vhdboot/stage2").unwrap();
        let again = Cmdline::parse(&c.to_string());
        assert_eq!(c, again);
        assert_eq!(
            again.get("vhdboot.image"),
            Some("/Images/Ubuntu 24.04 – ü.vhd")
        );
        assert_eq!(again.init_args(), Some("init args"));
    }
}
