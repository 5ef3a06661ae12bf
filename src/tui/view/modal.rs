//! The error modal: what failed, why, and what to do next, over the menu.

use super::{Theme, centered};
use crate::tui::host::Failure;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

pub fn render(failure: &Failure, theme: &Theme, frame: &mut Frame, area: Rect) {
    let width = area.width.saturating_sub(4).clamp(20, 72);
    let inner_width = usize::from(width.saturating_sub(2)).max(1);
    let lines = vec![
        Line::styled(
            failure.what.clone(),
            theme.bad().add_modifier(Modifier::BOLD),
        ),
        Line::raw(""),
        Line::from(vec![
            Span::styled("Cause: ", theme.label()),
            Span::raw(failure.cause.clone()),
        ]),
        Line::raw(""),
        Line::from(vec![
            Span::styled("Next: ", theme.label()),
            Span::raw(failure.hint.clone()),
        ]),
        Line::raw(""),
        Line::styled("Press any key to return to the menu.", theme.dim()),
    ];
    // Estimate the wrapped height so the box hugs its text.
    let height: usize = lines
        .iter()
        .map(|l| l.width().div_ceil(inner_width).max(1))
        .sum::<usize>()
        + 2;
    let rect = centered(area, width, u16::try_from(height).unwrap_or(u16::MAX));
    let block = theme.block(" Error ").border_style(theme.bad());
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        rect,
    );
}
