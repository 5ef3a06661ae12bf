//! The screen shown when the scan found no image at all: what was searched
//! and what the user can do.

use super::Theme;
use super::list::fs_name;
use crate::model::MountState;
use crate::tui::model::Model;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let mut lines = vec![
        Line::styled("No bootable image was found.", theme.header()),
        Line::from(vec![
            Span::raw("Press "),
            Span::styled("s", theme.key()),
            Span::raw(" for a rescue shell, "),
            Span::styled("r", theme.key()),
            Span::raw(" to rescan, "),
            Span::styled("l", theme.key()),
            Span::raw(" for the scan log."),
        ]),
        Line::raw(""),
        Line::styled("Volumes checked:", theme.label()),
    ];
    if model.snapshot.volumes.is_empty() {
        lines.push(Line::raw(
            "  none: no NTFS or exFAT volume was found. A USB disk may need more time (settle).",
        ));
    }
    for v in &model.snapshot.volumes {
        let state = match &v.mount {
            MountState::Mounted { .. } => "mounted, no image found".to_string(),
            MountState::Refused { reason } => format!("not mounted: {reason}"),
            MountState::NotMounted => "not mounted".to_string(),
        };
        lines.push(Line::raw(format!(
            "  {} {} ({}, {}): {state}",
            theme.bullet(),
            v.display_name(),
            v.device.display(),
            fs_name(v)
        )));
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("Searched: ", theme.label()),
        Span::raw(format!(
            "*.vhd in {} (depth {}) on each volume.",
            model.settings.search.join(" "),
            model.settings.depth
        )),
    ]));
    frame.render_widget(
        Paragraph::new(lines)
            .block(theme.block(" Nothing to boot "))
            .wrap(Wrap { trim: false }),
        area,
    );
}
