//! Drawing: `view(&Model, &mut Frame)` lays out the screen and hands each
//! area to the module for its widget. Nothing here changes state or does
//! I/O. Colours are the 16 named ones only, which the VGA console has.

mod confirm;
mod details;
mod editor;
mod empty;
mod help;
mod list;
mod log;
mod modal;
mod prompt;
mod report;
mod status;
mod theme;

use crate::tui::model::{Model, Screen};
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};

pub use theme::Theme;

/// Widest terminal that still puts the details below the list instead of
/// beside it.
const SIDE_BY_SIDE_MIN_WIDTH: u16 = 72;
/// Lowest terminal that has room for the details below the list.
const STACKED_MIN_HEIGHT: u16 = 22;

pub fn view(model: &Model, frame: &mut Frame) {
    let theme = Theme::new(model.settings.ascii);
    let area = frame.area();
    let editing = matches!(model.screen, Screen::Editor { .. });
    let status_height = if editing { 3 } else { 1 };
    let [title, body, status_area, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(status_height),
        Constraint::Length(1),
    ])
    .areas(area);

    status::title(model, &theme, frame, title);
    match &model.screen {
        Screen::Help { scroll } => help::render(*scroll, &theme, frame, body),
        Screen::Log { scroll } => log::render(model, *scroll, &theme, frame, body),
        Screen::Report { scroll } => report::render(model, *scroll, &theme, frame, body),
        Screen::ReportSave { .. } => report::render(model, 0, &theme, frame, body),
        _ => menu_body(model, &theme, frame, body),
    }
    match &model.screen {
        Screen::Editor { entry, edit } => {
            editor::render(model, *entry, edit, &theme, frame, status_area)
        }
        _ => status::status_line(model, &theme, frame, status_area),
    }
    status::key_line(model, &theme, frame, keys);

    if let Screen::Confirm(action) = model.screen {
        confirm::render(action, &theme, frame, area);
    }
    if let Screen::Password { action, typed } = &model.screen {
        prompt::render(model, *action, typed, &theme, frame, area);
    }
    match model.screen {
        Screen::ConfirmRepair { volume, image } => {
            report::render_confirm_repair(model, volume, image, &theme, frame, area)
        }
        Screen::ConfirmTrial {
            volume,
            image,
            action,
        } => report::render_confirm_trial(model, volume, image, action, &theme, frame, area),
        Screen::ReportSave { choice, confirming } => {
            if let Some(r) = &model.report {
                report::render_save(r, choice, confirming, &theme, frame, area);
            }
        }
        _ => {}
    }
    if let Some(failure) = &model.modal {
        modal::render(failure, &theme, frame, area);
    }
}

fn menu_body(model: &Model, theme: &Theme, frame: &mut Frame, area: Rect) {
    if !model.snapshot.volumes.iter().any(|v| !v.images.is_empty()) {
        empty::render(model, theme, frame, area);
        return;
    }
    if area.width >= SIDE_BY_SIDE_MIN_WIDTH {
        let [l, d] = Layout::horizontal([Constraint::Percentage(52), Constraint::Percentage(48)])
            .areas(area);
        list::render(model, theme, frame, l);
        details::render(model, theme, frame, d);
    } else if area.height + 3 >= STACKED_MIN_HEIGHT {
        let [l, d] = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(area);
        list::render(model, theme, frame, l);
        details::render(model, theme, frame, d);
    } else {
        // Too small for both: the list is what the user needs to boot.
        list::render(model, theme, frame, area);
    }
}

/// A rectangle of at most `width` x `height`, centred in `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Sizes as people read them: "32 GiB", "1.5 GiB".
pub fn human_size(bytes: u64) -> String {
    let opts = humansize::FormatSizeOptions::from(humansize::BINARY)
        .decimal_places(1)
        .decimal_zeroes(0);
    humansize::format_size(bytes, opts)
}
