//! The log view: what the scan did, every failure with its cause, and
//! kernel messages.

use super::Theme;
use crate::tui::model::Model;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(model: &Model, scroll: usize, theme: &Theme, frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = model
        .log_lines()
        .into_iter()
        .map(|l| {
            if l.starts_with("error:") {
                Line::styled(l, theme.bad())
            } else if l.starts_with("kernel:") {
                Line::styled(l, theme.dim())
            } else {
                Line::raw(l)
            }
        })
        .collect();
    let visible = usize::from(area.height.saturating_sub(2));
    let top = scroll.min(lines.len().saturating_sub(visible));
    let title = format!(" Log ({} lines) ", lines.len());
    let para = Paragraph::new(lines)
        .block(theme.block(&title))
        .wrap(Wrap { trim: false })
        .scroll((u16::try_from(top).unwrap_or(u16::MAX), 0));
    frame.render_widget(para, area);
}
