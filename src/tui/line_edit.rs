//! A one-line text editor over `char`s, for the kernel command line.
//!
//! It works on chars rather than bytes so that a cursor can never land
//! inside a UTF-8 sequence, and it measures display widths so that the
//! visible window keeps the cursor on screen even for wide characters.

use unicode_width::UnicodeWidthChar;

/// The text being edited and the cursor, as a char index in `0..=len`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineEdit {
    chars: Vec<char>,
    cursor: usize,
}

/// The part of the line that fits in a given width, and where the cursor
/// sits inside it (in display columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub text: String,
    pub cursor_col: u16,
}

impl LineEdit {
    /// Starts editing `text` with the cursor at its end, as readline does.
    pub fn new(text: &str) -> LineEdit {
        let chars: Vec<char> = text.chars().collect();
        let cursor = chars.len();
        LineEdit { chars, cursor }
    }

    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// The cursor as a char index.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn insert(&mut self, c: char) {
        // Control characters would corrupt the kernel command line and the
        // screen alike.
        if c.is_control() {
            return;
        }
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars.len());
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.chars.len();
    }

    /// Deletes the char before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
    }

    /// Deletes the char under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
    }

    /// Deletes the word before the cursor, and the spaces between it and
    /// the cursor, as Ctrl-W does in a shell.
    pub fn delete_word_before(&mut self) {
        let mut start = self.cursor;
        while start > 0 && self.chars.get(start - 1).is_some_and(|c| c.is_whitespace()) {
            start -= 1;
        }
        while start > 0
            && self
                .chars
                .get(start - 1)
                .is_some_and(|c| !c.is_whitespace())
        {
            start -= 1;
        }
        self.chars.drain(start..self.cursor);
        self.cursor = start;
    }

    /// Deletes from the start of the line to the cursor.
    pub fn delete_to_start(&mut self) {
        self.chars.drain(..self.cursor);
        self.cursor = 0;
    }

    /// Deletes from the cursor to the end of the line.
    pub fn delete_to_end(&mut self) {
        self.chars.truncate(self.cursor);
    }

    /// The slice of the line to draw in `width` columns. The cursor needs a
    /// column of its own at the end of the line, so the window scrolls as
    /// soon as the cursor would fall off the right edge, and shows as much
    /// text before the cursor as fits.
    pub fn window(&self, width: u16) -> Window {
        let width = usize::from(width.max(1));
        let w = |c: &char| c.width().unwrap_or(0);
        // Walk back from the cursor while the text before it, plus one
        // column for the cursor itself, still fits.
        let mut start = self.cursor;
        let mut used = 1;
        while start > 0 {
            let cw = self.chars.get(start - 1).map(w).unwrap_or(0);
            if used + cw > width {
                break;
            }
            used += cw;
            start -= 1;
        }
        // Prefer showing the line from its start when the cursor fits there.
        let prefix_width: usize = self.chars.iter().take(self.cursor).map(w).sum();
        if prefix_width < width {
            start = 0;
        }
        let cursor_col: usize = self
            .chars
            .iter()
            .skip(start)
            .take(self.cursor.saturating_sub(start))
            .map(w)
            .sum();
        let mut text = String::new();
        let mut shown = 0;
        for c in self.chars.iter().skip(start) {
            let cw = w(c);
            if shown + cw > width {
                break;
            }
            shown += cw;
            text.push(*c);
        }
        Window {
            text,
            cursor_col: u16::try_from(cursor_col).unwrap_or(u16::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, cursor: usize) -> LineEdit {
        let mut e = LineEdit::new(text);
        e.cursor = cursor;
        e
    }

    #[test]
    fn new_puts_cursor_at_end() {
        let e = LineEdit::new("quiet");
        assert_eq!(e.cursor(), 5);
    }

    #[test]
    fn insert_adds_at_cursor() {
        let mut e = at("quet", 2);
        e.insert('i');
        assert_eq!(e.text(), "quiet");
        assert_eq!(e.cursor(), 3);
    }

    #[test]
    fn insert_ignores_control_characters() {
        let mut e = LineEdit::new("a");
        e.insert('\n');
        e.insert('\u{7f}');
        assert_eq!(e.text(), "a");
    }

    #[test]
    fn left_and_right_stop_at_the_ends() {
        let mut e = at("ab", 0);
        e.left();
        assert_eq!(e.cursor(), 0);
        e.right();
        e.right();
        e.right();
        assert_eq!(e.cursor(), 2);
    }

    #[test]
    fn home_and_end_jump() {
        let mut e = at("abc", 1);
        e.home();
        assert_eq!(e.cursor(), 0);
        e.end();
        assert_eq!(e.cursor(), 3);
    }

    #[test]
    fn backspace_deletes_before_cursor_and_not_at_start() {
        let mut e = at("abc", 2);
        e.backspace();
        assert_eq!((e.text().as_str(), e.cursor()), ("ac", 1));
        let mut s = at("abc", 0);
        s.backspace();
        assert_eq!(s.text(), "abc");
    }

    #[test]
    fn delete_removes_under_cursor_and_not_at_end() {
        let mut e = at("abc", 1);
        e.delete();
        assert_eq!((e.text().as_str(), e.cursor()), ("ac", 1));
        let mut s = at("abc", 3);
        s.delete();
        assert_eq!(s.text(), "abc");
    }

    #[test]
    fn backspace_removes_a_whole_multibyte_char() {
        let mut e = LineEdit::new("root=é→");
        e.backspace();
        assert_eq!(e.text(), "root=é");
        e.backspace();
        assert_eq!(e.text(), "root=");
    }

    #[test]
    fn ctrl_w_deletes_word_and_trailing_spaces_before_cursor() {
        let mut e = LineEdit::new("root=/dev/sda quiet  ");
        e.delete_word_before();
        assert_eq!(e.text(), "root=/dev/sda ");
        e.delete_word_before();
        assert_eq!(e.text(), "");
    }

    #[test]
    fn ctrl_w_keeps_text_after_cursor() {
        let mut e = at("one two three", 7);
        e.delete_word_before();
        assert_eq!((e.text().as_str(), e.cursor()), ("one  three", 4));
    }

    #[test]
    fn ctrl_u_deletes_to_start() {
        let mut e = at("one two", 4);
        e.delete_to_start();
        assert_eq!((e.text().as_str(), e.cursor()), ("two", 0));
    }

    #[test]
    fn ctrl_k_deletes_to_end() {
        let mut e = at("one two", 3);
        e.delete_to_end();
        assert_eq!((e.text().as_str(), e.cursor()), ("one", 3));
    }

    #[test]
    fn window_shows_short_line_from_start() {
        let e = at("quiet splash", 3);
        let w = e.window(20);
        assert_eq!(w.text, "quiet splash");
        assert_eq!(w.cursor_col, 3);
    }

    #[test]
    fn window_scrolls_to_keep_cursor_visible_at_end() {
        let e = LineEdit::new("0123456789abcdef");
        let w = e.window(8);
        assert_eq!(w.text, "9abcdef");
        assert_eq!(w.cursor_col, 7);
    }

    #[test]
    fn window_counts_wide_characters_as_two_columns() {
        let e = LineEdit::new("ab漢字");
        let w = e.window(4);
        assert_eq!(w.text, "字");
        assert_eq!(w.cursor_col, 2);
    }

    #[test]
    fn window_in_middle_keeps_cursor_inside() {
        let e = at("0123456789abcdef", 12);
        let w = e.window(6);
        assert!(usize::from(w.cursor_col) < 6);
        assert!(w.text.starts_with("789ab"));
        assert_eq!(w.cursor_col, 5);
    }
}
