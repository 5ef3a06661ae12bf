//! `update(model, msg) -> effects`: every decision the menu makes, with no
//! I/O, so tests can script it key by key.

use crate::boot::plan::{PlanError, plan};
use crate::model::{EntryRef, Snapshot};
use crate::tui::host::{Effect, Failure};
use crate::tui::keys::{self, Action};
use crate::tui::line_edit::LineEdit;
use crate::tui::model::{
    Busy, HELP_TEXT, MAX_KMSG_LINES, Model, PowerAction, Row, Screen, build_rows,
};
use crate::tui::msg::{Key, Msg};

pub fn update(model: &mut Model, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) => on_key(model, key),
        Msg::Tick => on_tick(model),
        Msg::Resize(w, h) => {
            model.size = (w, h);
            Vec::new()
        }
        Msg::BootFailed(f) => {
            model.busy = None;
            model.countdown = None;
            show_failure(model, f);
            Vec::new()
        }
        Msg::ShellExited(result) => {
            model.busy = None;
            model.screen = Screen::Menu;
            // The shell drew over the whole screen.
            model.repaint = true;
            match result {
                Ok(()) => model.notice = Some("The rescue shell exited; back in the menu.".into()),
                Err(f) => show_failure(model, f),
            }
            Vec::new()
        }
        Msg::Rescanned(result) => {
            model.busy = None;
            match result {
                Ok(snapshot) => {
                    replace_snapshot(model, snapshot);
                    model.notice = Some("Rescanned the disks.".into());
                }
                Err(f) => show_failure(model, f),
            }
            Vec::new()
        }
        Msg::PowerFailed(f) => {
            model.busy = None;
            show_failure(model, f);
            Vec::new()
        }
        Msg::Kmsg(line) => {
            model.kmsg.push(line);
            if model.kmsg.len() > MAX_KMSG_LINES {
                let excess = model.kmsg.len() - MAX_KMSG_LINES;
                model.kmsg.drain(..excess);
            }
            Vec::new()
        }
    }
}

fn show_failure(model: &mut Model, f: Failure) {
    model.failures.push(f.clone());
    model.modal = Some(f);
}

fn on_tick(model: &mut Model) -> Vec<Effect> {
    let Some(left) = model.countdown else {
        return Vec::new();
    };
    let left = left.saturating_sub(1);
    if left > 0 {
        model.countdown = Some(left);
        return Vec::new();
    }
    model.countdown = None;
    match model.default {
        Some(entry) => boot(model, entry, None),
        None => Vec::new(),
    }
}

fn on_key(model: &mut Model, key: Key) -> Vec<Effect> {
    // Any key stops the countdown and is used for nothing else, so that a
    // user who presses Down to look does not boot something by accident.
    if model.countdown.take().is_some() {
        return Vec::new();
    }
    // The modal is dismissed by any key, which is then consumed.
    if model.modal.take().is_some() {
        return Vec::new();
    }
    if keys::MENU.action(key) == Some(Action::Redraw) {
        model.repaint = true;
        return Vec::new();
    }
    model.notice = None;
    match model.screen.clone() {
        Screen::Menu => on_menu_key(model, key),
        Screen::Editor { entry, edit } => on_editor_key(model, key, entry, edit),
        Screen::Help { scroll } => {
            model.screen = match scroll_key(key, scroll, page(model)) {
                Some(s) => Screen::Help {
                    scroll: s.min(max_scroll(model, HELP_TEXT.lines().count())),
                },
                None if is_close_key(key, Action::Help) => Screen::Menu,
                None => Screen::Help { scroll },
            };
            Vec::new()
        }
        Screen::Log { scroll } => {
            model.screen = match scroll_key(key, scroll, page(model)) {
                Some(s) => Screen::Log {
                    scroll: s.min(max_scroll(model, model.log_lines().len())),
                },
                None if is_close_key(key, Action::Log) => Screen::Menu,
                None => Screen::Log { scroll },
            };
            Vec::new()
        }
        Screen::Confirm(action) => {
            model.screen = Screen::Menu;
            if keys::CONFIRM.action(key) == Some(Action::Confirm) {
                model.busy = Some(Busy::PowerAction(action));
                return vec![match action {
                    PowerAction::Reboot => Effect::Reboot,
                    PowerAction::PowerOff => Effect::PowerOff,
                }];
            }
            Vec::new()
        }
    }
}

/// Lines one page of a scrolled view moves by.
fn page(model: &Model) -> usize {
    usize::from(model.size.1.saturating_sub(6)).max(1)
}

/// The last useful scroll position of a full-screen text of `lines`
/// lines: its last line at the bottom of the box. The title, status and
/// key lines plus the two borders leave the rest of the screen.
fn max_scroll(model: &Model, lines: usize) -> usize {
    let visible = usize::from(model.size.1.saturating_sub(5)).max(1);
    lines.saturating_sub(visible)
}

/// Whether `key` leaves a full-screen text: its own Back keys, or the
/// menu key (`opened_by`) that opened it.
fn is_close_key(key: Key, opened_by: Action) -> bool {
    keys::PAGER.action(key) == Some(Action::Back) || keys::MENU.action(key) == Some(opened_by)
}

/// The new scroll position for a scrolling key, or None for other keys.
fn scroll_key(key: Key, scroll: usize, page: usize) -> Option<usize> {
    Some(match keys::PAGER.action(key)? {
        Action::ScrollUp => scroll.saturating_sub(1),
        Action::ScrollDown => scroll.saturating_add(1),
        Action::ScrollPageUp => scroll.saturating_sub(page),
        Action::ScrollPageDown => scroll.saturating_add(page),
        Action::ScrollTop => 0,
        Action::ScrollBottom => usize::MAX / 2,
        _ => return None,
    })
}

fn on_menu_key(model: &mut Model, key: Key) -> Vec<Effect> {
    let Some(action) = keys::MENU.action(key) else {
        return Vec::new();
    };
    match action {
        Action::Up => move_selection(model, -1),
        Action::Down => move_selection(model, 1),
        Action::PageUp => move_selection(model, -(page(model) as isize)),
        Action::PageDown => move_selection(model, page(model) as isize),
        Action::First => {
            model.selected = model.first_selectable().unwrap_or(0);
        }
        Action::Last => {
            model.selected = model.last_selectable().unwrap_or(0);
        }
        Action::Boot => return boot_selected(model),
        Action::Edit => match selected_entry(model) {
            Ok(entry) => {
                let cmdline = model
                    .snapshot
                    .entry(entry)
                    .map(|e| e.cmdline.clone())
                    .unwrap_or_default();
                model.screen = Screen::Editor {
                    entry,
                    edit: LineEdit::new(&cmdline),
                };
            }
            Err(f) => model.modal = Some(f),
        },
        Action::Shell => {
            model.busy = Some(Busy::Shell);
            return vec![Effect::RescueShell];
        }
        Action::Rescan => {
            model.busy = Some(Busy::Rescanning);
            return vec![Effect::Rescan];
        }
        Action::Log => model.screen = Screen::Log { scroll: 0 },
        Action::Help => model.screen = Screen::Help { scroll: 0 },
        Action::Reboot => model.screen = Screen::Confirm(PowerAction::Reboot),
        Action::PowerOff => model.screen = Screen::Confirm(PowerAction::PowerOff),
        Action::Quit if model.settings.can_quit => return vec![Effect::Quit],
        _ => {}
    }
    Vec::new()
}

fn on_editor_key(model: &mut Model, key: Key, entry: EntryRef, mut edit: LineEdit) -> Vec<Effect> {
    match (keys::EDITOR.action(key), key) {
        (Some(Action::BootEdited), _) => {
            model.screen = Screen::Menu;
            return boot(model, entry, Some(edit.text()));
        }
        (Some(Action::Cancel), _) => {
            // The edit lives only in the editor, so dropping it restores the
            // entry's own line.
            model.screen = Screen::Menu;
            return Vec::new();
        }
        (Some(Action::CursorLeft), _) => edit.left(),
        (Some(Action::CursorRight), _) => edit.right(),
        (Some(Action::LineStart), _) => edit.home(),
        (Some(Action::LineEnd), _) => edit.end(),
        (Some(Action::DeleteBefore), _) => edit.backspace(),
        (Some(Action::DeleteUnder), _) => edit.delete(),
        (Some(Action::DeleteWordBefore), _) => edit.delete_word_before(),
        (Some(Action::DeleteToStart), _) => edit.delete_to_start(),
        (Some(Action::DeleteToEnd), _) => edit.delete_to_end(),
        (None, Key::Char(c)) => edit.insert(c),
        _ => {}
    }
    model.screen = Screen::Editor { entry, edit };
    Vec::new()
}

/// Moves over selectable rows only, stopping at the ends: wrapping would
/// make a held Down key cycle past the default without the user noticing.
fn move_selection(model: &mut Model, delta: isize) {
    let selectable: Vec<usize> = model
        .rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_selectable())
        .map(|(i, _)| i)
        .collect();
    if selectable.is_empty() {
        return;
    }
    let here = selectable
        .iter()
        .position(|&i| i >= model.selected)
        .unwrap_or(selectable.len() - 1);
    let target = here.saturating_add_signed(delta).min(selectable.len() - 1);
    if let Some(&row) = selectable.get(target) {
        model.selected = row;
    }
}

/// The entry under the selection, or why there is none to boot.
fn selected_entry(model: &Model) -> Result<EntryRef, Failure> {
    match model.selected_row() {
        Some(Row::Entry { entry, .. }) => Ok(entry),
        Some(Row::Image {
            volume,
            image,
            blocker,
            ..
        }) => {
            let img = model
                .snapshot
                .volumes
                .get(volume)
                .and_then(|v| v.images.get(image));
            let name = img.map(|i| i.name().to_string()).unwrap_or_default();
            // A selectable image row has no entry, so the judge always
            // has a reason; no kernel is the last one it gives.
            let why = blocker.unwrap_or_else(|| PlanError::NoKernel {
                volume: String::new(),
                image: name.clone(),
            });
            Err(refusal(&name, &why))
        }
        _ => Err(Failure {
            what: "Nothing is selected".into(),
            cause: "no bootable image was found".into(),
            hint: "Press r to rescan, s for a rescue shell or l for the scan log.".into(),
        }),
    }
}

fn boot_selected(model: &mut Model) -> Vec<Effect> {
    match selected_entry(model) {
        Ok(entry) => boot(model, entry, None),
        Err(f) => {
            model.modal = Some(f);
            Vec::new()
        }
    }
}

/// The modal for a boot that `boot::plan` refused.
fn refusal(name: &str, why: &PlanError) -> Failure {
    Failure {
        what: sentence_case(&format!("{name} cannot boot")),
        cause: why.cause(),
        hint: sentence(&why.hint()),
    }
}

/// `text` with a capital first letter, as the modal's lines start.
fn sentence_case(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The judge's advice as a sentence of its own.
fn sentence(text: &str) -> String {
    let text = sentence_case(text);
    if text.is_empty() || text.ends_with('.') {
        text
    } else {
        format!("{text}.")
    }
}

/// Boots `entry` with `cmdline` (None: the entry's own line) after asking
/// the judge, so a refusal shows before the machine is asked to do
/// anything.
fn boot(model: &mut Model, entry: EntryRef, cmdline: Option<String>) -> Vec<Effect> {
    if let Err(why) = plan(&model.snapshot, entry, cmdline.as_deref()) {
        let name = match model.snapshot.image(entry) {
            Some(image) => image.name().to_string(),
            None => model.entry_title(entry),
        };
        model.modal = Some(refusal(&name, &why));
        return Vec::new();
    }
    model.busy = Some(Busy::Booting(model.entry_title(entry)));
    vec![Effect::Boot { entry, cmdline }]
}

/// What identifies a row across scans: indices move when disks come and
/// go, device paths and file paths do not.
#[derive(PartialEq, Eq)]
struct RowKey {
    device: std::path::PathBuf,
    path: String,
    entry: Option<usize>,
}

fn row_key(snapshot: &Snapshot, row: &Row) -> Option<RowKey> {
    let entry = match row {
        Row::Entry { entry, .. } => Some(entry.entry),
        _ => None,
    };
    key_of(snapshot, row.image()?, entry)
}

fn key_of(snapshot: &Snapshot, (v, i): (usize, usize), entry: Option<usize>) -> Option<RowKey> {
    let volume = snapshot.volumes.get(v)?;
    let image = volume.images.get(i)?;
    Some(RowKey {
        device: volume.device.clone(),
        path: image.path.clone(),
        entry,
    })
}

fn replace_snapshot(model: &mut Model, snapshot: Snapshot) {
    let selected_key = model
        .selected_row()
        .and_then(|r| row_key(&model.snapshot, &r));
    let default_key = model
        .default
        .and_then(|d| key_of(&model.snapshot, (d.volume, d.image), Some(d.entry)));
    let rows = build_rows(&snapshot);
    let find = |key: &RowKey| {
        rows.iter()
            .position(|r| row_key(&snapshot, r).as_ref() == Some(key) && r.is_selectable())
    };
    let selected = selected_key.as_ref().and_then(find);
    model.default = default_key
        .as_ref()
        .and_then(find)
        .and_then(|i| match rows.get(i) {
            Some(Row::Entry { entry, .. }) => Some(*entry),
            _ => None,
        });
    model.rows = rows;
    model.snapshot = snapshot;
    model.selected = selected.or_else(|| model.first_selectable()).unwrap_or(0);
}
