//! The title bar, the status line (countdown, work in progress, notices)
//! and the key line at the bottom.

use super::Theme;
use crate::tui::keys::{self, Action, KeyLabel};
use crate::tui::model::{Busy, Model, PowerAction, Screen};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn title(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    // With Secure Boot on, kexec takes only signed kernels; the log holds
    // the full notice (discovery::preflight::secure_boot_notice).
    let secure = if model.snapshot.secure_boot == Some(true) {
        " [Secure Boot: signed kernels only]"
    } else {
        ""
    };
    let text = format!(
        " vhdboot {} - choose a system to boot{secure}",
        env!("CARGO_PKG_VERSION")
    );
    frame.render_widget(Paragraph::new(text).style(theme.title_bar()), area);
}

pub fn status_line(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let line = if let Some(busy) = &model.busy {
        Line::styled(
            match busy {
                Busy::Booting(t) => format!(" Booting {t}..."),
                Busy::Preparing { title, step } => match step {
                    Some(step) => format!(" Booting {title}: {step}..."),
                    None => format!(" Booting {title}: preparing..."),
                },
                Busy::Shell => " Running the rescue shell...".into(),
                Busy::Repair => " Opening the image for repair...".into(),
                Busy::Report => " Gathering the report...".into(),
                Busy::Rescanning => " Scanning the disks...".into(),
                Busy::Trial(text) => format!(" {text}"),
                Busy::PowerAction(PowerAction::Reboot) => " Rebooting...".into(),
                Busy::PowerAction(PowerAction::PowerOff) => " Powering off...".into(),
            },
            theme.warn(),
        )
    } else if let (Some(n), Some(d)) = (model.countdown, model.default) {
        let title = model.entry_title(d);
        // On a narrow screen the instruction comes first so it survives
        // truncation.
        let text = if area.width < 60 {
            format!(" Any key stops: {title} in {n} s")
        } else {
            format!(" Booting {title} in {n} s, press any key to stop")
        };
        Line::styled(text, theme.warn().add_modifier(Modifier::BOLD))
    } else if let Some(line) = immutable_line(model) {
        Line::styled(line, theme.warn())
    } else if let Some(n) = &model.notice {
        Line::raw(format!(" {n}"))
    } else {
        Line::raw("")
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// What the status line says when the selected image boots immutable.
fn immutable_line(model: &Model) -> Option<String> {
    let (v, i) = model.selected_row()?.image()?;
    let image = model.snapshot.volumes.get(v)?.images.get(i)?;
    if model.snapshot.immutable.trial_covers(&image.path) {
        let size = model
            .snapshot
            .immutable
            .trial_size
            .unwrap_or(crate::trial::DEFAULT_TRIAL_SIZE);
        return Some(format!(
            " Trial: changes kept in {}.trial (up to {} MiB); t: normal boot",
            image.name(),
            size >> 20
        ));
    }
    model.snapshot.immutable.covers(&image.path).then(|| {
        let limit = model
            .snapshot
            .immutable
            .ram_limit
            .map_or("a quarter of RAM".to_string(), |b| {
                format!("{} MiB", b >> 20)
            });
        format!(" Immutable: changes kept in RAM (up to {limit}), lost at reboot; i: normal boot")
    })
}

pub fn key_line(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    let table = match model.screen {
        Screen::Menu
        | Screen::Confirm(_)
        | Screen::ConfirmRepair { .. }
        | Screen::ConfirmTrial { .. } => &keys::MENU,
        Screen::Report { .. } => &keys::REPORT,
        Screen::ReportSave { .. } => &keys::SAVE,
        Screen::Editor { .. } => &keys::EDITOR,
        Screen::Help { .. } | Screen::Log { .. } => &keys::PAGER,
        Screen::Password { .. } => &keys::PROMPT,
    };
    let gap = if area.width < 60 { " " } else { "  " };
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1;
    for (action, label, what) in table.hints() {
        if action == Action::Quit && !model.settings.can_quit
            || action == Action::Edit && !model.lock.editor
        {
            continue;
        }
        let key = match label {
            KeyLabel::Text(text) => text,
            KeyLabel::UpDown => theme.up_down(),
        };
        // Whole hints only: a key cut in half tells nothing, and the help
        // lists every key.
        let width = key.chars().count() + 1 + what.chars().count();
        if used + width > usize::from(area.width) {
            break;
        }
        used += width + gap.len();
        spans.push(Span::styled(key, theme.key()));
        spans.push(Span::raw(format!(" {what}{gap}")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
