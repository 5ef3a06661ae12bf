//! The rescue kit's screens: the support report (scrolled as the log is),
//! the chooser of where to save it with its question, and the question
//! before a read-write repair.

use super::{Theme, centered};
use crate::tui::model::Model;
use crate::tui::repair::ReportShown;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

pub fn render(model: &Model, scroll: usize, theme: &Theme, frame: &mut Frame, area: Rect) {
    let Some(report) = &model.report else {
        return;
    };
    let lines: Vec<Line> = report
        .lines
        .iter()
        .map(|l| {
            if l.starts_with("== ") {
                Line::styled(l.clone(), theme.header())
            } else {
                Line::raw(l.clone())
            }
        })
        .collect();
    let visible = usize::from(area.height.saturating_sub(2));
    let top = scroll.min(lines.len().saturating_sub(visible));
    let title = format!(
        " Support report ({} lines, line {}) ",
        lines.len(),
        top.saturating_add(1)
    );
    let para = Paragraph::new(lines)
        .block(theme.block(&title))
        .scroll((u16::try_from(top).unwrap_or(u16::MAX), 0));
    frame.render_widget(para, area);
}

fn yes_no(theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled("y", theme.key()),
        Span::raw(" yes   "),
        Span::styled("any other key", theme.key()),
        Span::raw(" no"),
    ])
}

/// Where the report may go, the volumes it may not, and the question once
/// one is picked.
pub fn render_save(
    report: &ReportShown,
    choice: usize,
    confirming: bool,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
) {
    let mut lines = vec![Line::styled(
        format!("Save {} to:", crate::report::FILE_NAME),
        theme.header(),
    )];
    if report.targets.is_empty() {
        lines.push(Line::raw(
            "  no FAT stick, ESP or safe host volume was found",
        ));
    }
    for (i, t) in report.targets.iter().enumerate() {
        let mark = if i == choice { "> " } else { "  " };
        let text = format!("{mark}{}", t.describe());
        lines.push(if i == choice {
            Line::styled(text, theme.selected())
        } else {
            Line::raw(text)
        });
    }
    for r in &report.refused {
        lines.push(Line::styled(format!("  not {r}"), theme.dim()));
    }
    if confirming && let Some(t) = report.targets.get(choice) {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!("Write the report to {}?", t.describe()),
            theme.warn(),
        ));
        lines.push(yes_no(theme));
    }
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let rect = centered(area, 70, height);
    frame.render_widget(Clear, rect);
    // One row per line, cut at the box's edge: the question must stay in
    // the box, and wrapped reasons would push it out.
    frame.render_widget(
        Paragraph::new(lines).block(theme.block(" Save the report ")),
        rect,
    );
}

/// The question before opening an image read-write.
/// The question before keeping or discarding trial changes: what will be
/// written, then y/n.
pub fn render_confirm_trial(
    model: &Model,
    volume: usize,
    image: usize,
    action: crate::boot::trial::TrialAction,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
) {
    let [title, body] = crate::tui::trial::question(model, volume, image, action);
    let lines = vec![
        Line::styled(title, theme.header()),
        Line::raw(body),
        Line::raw(""),
        yes_no(theme),
    ];
    let rect = centered(area, 60, 9);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(theme.block(" Confirm ").border_style(theme.warn()))
            .wrap(Wrap { trim: false }),
        rect,
    );
}

pub fn render_confirm_repair(
    model: &Model,
    volume: usize,
    image: usize,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
) {
    let name = model
        .snapshot
        .volumes
        .get(volume)
        .and_then(|v| Some((v.display_name(), v.images.get(image)?.name().to_string())));
    let (host, image) = name.unwrap_or_default();
    let lines = vec![
        Line::styled(format!("Open {image} read-write?"), theme.header()),
        Line::raw(format!(
            "{host} is mounted read-write until the shell exits; the image's \
             filesystems are mounted read-write with a chroot ready."
        )),
        Line::raw(""),
        yes_no(theme),
    ];
    let rect = centered(area, 60, 8);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(theme.block(" Confirm ").border_style(theme.warn()))
            .wrap(Wrap { trim: false }),
        rect,
    );
}
