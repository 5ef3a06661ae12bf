//! The help screen, from assets/help.txt and the key tables.

use super::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::widgets::{Paragraph, Wrap};

use crate::tui::model::HELP_TEXT as HELP;

pub fn render(scroll: usize, theme: &Theme, frame: &mut Frame, area: Rect) {
    let lines = HELP.lines().count();
    let visible = usize::from(area.height.saturating_sub(2));
    let top = scroll.min(lines.saturating_sub(visible));
    let para = Paragraph::new(HELP.as_str())
        .block(theme.block(" Help "))
        .wrap(Wrap { trim: false })
        .scroll((u16::try_from(top).unwrap_or(u16::MAX), 0));
    frame.render_widget(para, area);
}
