//! The y/n question before a reboot or power off.

use super::{Theme, centered};
use crate::tui::model::PowerAction;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

pub fn render(action: PowerAction, theme: &Theme, frame: &mut Frame, area: Rect) {
    let question = match action {
        PowerAction::Reboot => "Reboot the machine now?",
        PowerAction::PowerOff => "Power off the machine now?",
    };
    let lines = vec![
        Line::styled(question, theme.header()),
        Line::raw(""),
        Line::from(vec![
            Span::styled("y", theme.key()),
            Span::raw(" yes   "),
            Span::styled("any other key", theme.key()),
            Span::raw(" no"),
        ]),
    ];
    let rect = centered(area, 36, 5);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(theme.block(" Confirm ").border_style(theme.warn()))
            .wrap(Wrap { trim: false }),
        rect,
    );
}
