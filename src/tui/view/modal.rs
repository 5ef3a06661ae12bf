//! The error modal: what failed, why, and what to do next, over the menu.

use super::{Theme, centered};
use crate::tui::host::Failure;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

pub fn render(failure: &Failure, theme: &Theme, frame: &mut Frame, area: Rect) {
    // Small terminals give the modal the whole screen.
    let width = if area.width < 60 {
        area.width
    } else {
        area.width.saturating_sub(8).min(72)
    };
    let inner_width = usize::from(width.saturating_sub(2)).max(1);
    let mut lines = vec![
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
    // Estimate the wrapped height so the box hugs its text; drop the blank
    // lines when that does not fit.
    let wrapped = |lines: &[Line]| -> usize {
        lines
            .iter()
            .map(|l| wrapped_height(&l.to_string(), inner_width))
            .sum::<usize>()
            + 2
    };
    if wrapped(&lines) > usize::from(area.height) {
        lines.retain(|l| l.width() > 0);
    }
    let height = wrapped(&lines);
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

/// How many rows `text` takes when wrapped at word boundaries in `width`
/// columns, as the Paragraph will wrap it.
fn wrapped_height(text: &str, width: usize) -> usize {
    let mut rows = 1;
    let mut col = 0;
    for word in text.split(' ') {
        let w = Line::raw(word).width();
        let needed = if col == 0 { w } else { col + 1 + w };
        if needed <= width {
            col = needed;
        } else {
            rows += 1 + w.saturating_sub(1) / width.max(1);
            col = w % width.max(1);
        }
    }
    rows
}
