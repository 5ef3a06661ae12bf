//! The password prompt before a locked action, drawn over the menu. The
//! password shows as one bullet per character, never as text.

use super::{Theme, centered};
use crate::tui::keys::Action;
use crate::tui::lock::Secret;
use crate::tui::model::Model;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// The most bullets drawn: the box does not grow with the password.
const MAX_BULLETS: usize = 24;

pub fn render(
    model: &Model,
    action: Action,
    typed: &Secret,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
) {
    let what = match action {
        Action::Edit => "the command-line editor",
        Action::Shell => "the rescue shell",
        _ => "this action",
    };
    let bullet = if model.settings.ascii {
        "*"
    } else {
        "\u{2022}"
    };
    let lock = &model.lock;
    let state = if lock.retry_in > 0 {
        Line::styled(
            format!("Wrong password. Try again in {} s.", lock.retry_in),
            theme.warn(),
        )
    } else if lock.failures > 0 {
        Line::styled("Wrong password. Try again.", theme.warn())
    } else {
        Line::raw("")
    };
    let lines = vec![
        Line::raw(format!("Type the password to open {what}.")),
        Line::raw(""),
        Line::from(vec![
            Span::styled("Password: ", theme.header()),
            Span::raw(bullet.repeat(typed.len().min(MAX_BULLETS))),
        ]),
        state,
    ];
    let rect = centered(area, 56, 7);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(theme.block(" Locked ").border_style(theme.warn()))
            .wrap(Wrap { trim: false }),
        rect,
    );
}
