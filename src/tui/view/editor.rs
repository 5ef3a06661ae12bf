//! The one-line command-line editor, drawn in place of the status line.

use super::Theme;
use crate::model::EntryRef;
use crate::tui::line_edit::LineEdit;
use crate::tui::model::Model;
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::widgets::Paragraph;

pub fn render(
    model: &Model,
    entry: EntryRef,
    edit: &LineEdit,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
) {
    let title = format!(
        " Command line for {} (this boot only) ",
        model.entry_title(entry)
    );
    let block = theme.block(&title);
    let inner = block.inner(area);
    let window = edit.window(inner.width);
    frame.render_widget(Paragraph::new(window.text).block(block), area);
    if inner.width > 0 && inner.height > 0 {
        frame.set_cursor_position(Position {
            x: inner.x + window.cursor_col.min(inner.width - 1),
            y: inner.y,
        });
    }
}
