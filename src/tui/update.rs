//! `update(model, msg) -> effects`: every decision the menu makes, with no
//! I/O, so tests can script it key by key.

use crate::boot::plan::{PlanError, plan};
use crate::model::{EntryRef, Snapshot};
use crate::tui::host::{Effect, Failure};
use crate::tui::keys::{self, Action};
use crate::tui::line_edit::LineEdit;
use crate::tui::lock::{self, Gate, Refused, Secret};
use crate::tui::model::{
    Busy, HELP_TEXT, MAX_KMSG_LINES, Model, PowerAction, Preload, PreloadState, Row, Screen,
    build_rows,
};
use crate::tui::msg::{Key, Msg};
use crate::tui::repair;
use crate::tui::trial;

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
            // Whatever was loaded for this boot is not trusted again: the
            // volumes were unmounted and mounted anew for the reboot.
            cancel_preload(model)
        }
        Msg::Shown => maybe_preload(model),
        Msg::Preloaded { id, result } => on_preloaded(model, id, result),
        Msg::PreloadStep { id, step } => {
            if let Some(p) = model.preload.as_mut().filter(|p| p.id == id) {
                p.state = PreloadState::Running {
                    step: Some(step.clone()),
                };
                if model.boot_waits
                    && let Some(Busy::Preparing { step: shown, .. }) = model.busy.as_mut()
                {
                    *shown = Some(step);
                }
            }
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
                    // A rescan that follows an action (keeping trial
                    // changes) keeps that action's note; r clears it.
                    if model.notice.is_none() {
                        model.notice = Some("Rescanned the disks.".into());
                    }
                }
                Err(f) => show_failure(model, f),
            }
            Vec::new()
        }
        Msg::RepairEnded { mode, result } => repair::on_repair_ended(model, mode, result),
        Msg::ReportGathered { facts, fat } => repair::on_report_gathered(model, &facts, &fat),
        Msg::ReportSaved(result) => repair::on_report_saved(model, result),
        Msg::MergeProgress(result) => trial::on_merge_progress(model, result),
        Msg::TrialDone(result) => trial::done(model, result),
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
    model.lock.tick();
    // A running merge owns the machine: no countdown, no preload.
    if let Some(effects) = trial::on_tick(model) {
        return effects;
    }
    if let Some(left) = model.countdown {
        let left = left.saturating_sub(1);
        if left == 0 {
            model.countdown = None;
            return match model.default {
                Some(entry) => boot(model, entry, None),
                None => Vec::new(),
            };
        }
        model.countdown = Some(left);
    }
    // The selection rests for a whole tick before a preload starts.
    if std::mem::take(&mut model.moved_since_tick) {
        return Vec::new();
    }
    maybe_preload(model)
}

/// Starts preparing the selected entry's boot when the menu is idle on it
/// and nothing is prepared or preparing for it yet. A preload that failed
/// is not retried here: its reason waits for the user's Enter.
fn maybe_preload(model: &mut Model) -> Vec<Effect> {
    if !model.settings.preload
        || model.modal.is_some()
        || model.busy.is_some()
        || matches!(
            model.screen,
            Screen::Editor { .. } | Screen::Confirm(_) | Screen::Password { .. }
        )
    {
        return Vec::new();
    }
    let Some(Row::Entry {
        entry,
        blocker: None,
        ..
    }) = model.selected_row()
    else {
        return Vec::new();
    };
    if is_preload_of(model, entry, &None) {
        return Vec::new();
    }
    start_preload(model, entry, None)
}

fn is_preload_of(model: &Model, entry: EntryRef, cmdline: &Option<String>) -> bool {
    model
        .preload
        .as_ref()
        .is_some_and(|p| p.entry == entry && p.cmdline == *cmdline)
}

/// Replaces any preload with a new one of `entry` with `cmdline`.
fn start_preload(model: &mut Model, entry: EntryRef, cmdline: Option<String>) -> Vec<Effect> {
    let mut effects = cancel_preload(model);
    let id = model.next_preload_id;
    model.next_preload_id = id.wrapping_add(1);
    model.preload = Some(Preload {
        id,
        entry,
        cmdline: cmdline.clone(),
        state: PreloadState::Running { step: None },
    });
    effects.push(Effect::Preload { id, entry, cmdline });
    effects
}

/// Drops the preload, asking the host to stop it or unload its kernel.
fn cancel_preload(model: &mut Model) -> Vec<Effect> {
    model.boot_waits = false;
    match model.preload.take() {
        Some(_) => vec![Effect::CancelPreload],
        None => Vec::new(),
    }
}

fn on_preloaded(model: &mut Model, id: u64, result: Result<(), Failure>) -> Vec<Effect> {
    // A cancelled preload's news is old news.
    let Some(p) = model.preload.as_mut().filter(|p| p.id == id) else {
        return Vec::new();
    };
    let (entry, cmdline) = (p.entry, p.cmdline.clone());
    match result {
        Ok(()) => {
            p.state = PreloadState::Ready;
            if !std::mem::take(&mut model.boot_waits) {
                return Vec::new();
            }
            model.busy = Some(Busy::Booting(model.entry_title(entry)));
            vec![Effect::BootPreloaded { entry, cmdline }]
        }
        Err(f) if model.boot_waits => {
            // The boot waited for this load: it failed as a load does.
            model.boot_waits = false;
            model.preload = None;
            model.busy = None;
            model.countdown = None;
            show_failure(model, f);
            Vec::new()
        }
        Err(f) => {
            p.state = PreloadState::Failed(f);
            Vec::new()
        }
    }
}

fn on_key(model: &mut Model, key: Key) -> Vec<Effect> {
    // A boot waiting for its preload takes no keys but Esc (the editor's
    // Cancel), which stops the wait and leaves the preload running for a
    // later Enter. A second, impatient Enter must not stop the boot.
    model.lock.touched();
    if model.boot_waits {
        if keys::EDITOR.action(key) == Some(Action::Cancel) {
            model.boot_waits = false;
            model.busy = None;
            model.notice = Some("The boot was stopped; Enter starts it again.".into());
        }
        return Vec::new();
    }
    // A merge writes the image until it ends: no boot, shell or repair may
    // touch it meanwhile, so keys wait (the status line says so).
    if model.merge.is_some() {
        if keys::MENU.action(key) == Some(Action::Redraw) {
            model.repaint = true;
        }
        return Vec::new();
    }
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
        Screen::Menu => {
            let before = model.selected;
            let effects = on_menu_key(model, key);
            if model.selected == before {
                return effects;
            }
            // The preload was for the row the user left.
            model.moved_since_tick = true;
            let mut all = cancel_preload(model);
            all.extend(effects);
            all
        }
        Screen::Editor { entry, edit } => on_editor_key(model, key, entry, edit),
        Screen::Password { action, typed } => on_password_key(model, key, action, typed),
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
        Screen::ConfirmRepair { volume, image } => {
            repair::on_confirm_repair_key(model, key, volume, image)
        }
        Screen::ConfirmTrial {
            volume,
            image,
            action,
        } => {
            let mut effects = trial::on_confirm_key(model, key, volume, image, action);
            // The image is about to change: a kernel loaded from it is
            // stale.
            if !effects.is_empty() {
                let mut all = cancel_preload(model);
                all.append(&mut effects);
                return all;
            }
            effects
        }
        Screen::Report { scroll } => {
            let lines = model.report.as_ref().map_or(0, |r| r.lines.len());
            let (page, max) = (page(model), max_scroll(model, lines));
            repair::on_report_key(model, key, scroll, page, max)
        }
        Screen::ReportSave { choice, confirming } => {
            repair::on_save_key(model, key, choice, confirming)
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
pub(crate) fn scroll_key(key: Key, scroll: usize, page: usize) -> Option<usize> {
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
    // The rescue kit's actions, in one place (src/tui/repair.rs). A
    // repair hands the console and the image over, like the shell: no
    // preload stays loaded across it.
    // The editor, the shell and the repair actions pass the lock first.
    if lock::needs_password(action) {
        return through_lock(model, action);
    }
    if let Some(effects) = repair_action(model, action) {
        return effects;
    }
    if let Some(effects) = trial::on_menu_action(model, action) {
        return effects;
    }
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
        Action::Immutable => return toggle_immutable(model),
        Action::Trial => return toggle_overlay(model, |p, path| p.toggle_trial(path)),
        Action::Edit | Action::Shell => return through_lock(model, action),
        Action::Rescan => {
            model.busy = Some(Busy::Rescanning);
            let mut effects = cancel_preload(model);
            effects.push(Effect::Rescan);
            return effects;
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

/// Runs a locked action (`lock::needs_password`) once the lock lets it:
/// at once, after the password prompt, or not at all with the reason on
/// the status line.
fn through_lock(model: &mut Model, action: Action) -> Vec<Effect> {
    match lock::gated(&model.lock, action) {
        Gate::Open => run_locked_action(model, action),
        Gate::Off(why) => {
            model.notice = Some(why);
            Vec::new()
        }
        Gate::NeedsPassword => {
            model.screen = Screen::Password {
                action,
                typed: Secret::default(),
            };
            Vec::new()
        }
    }
}

/// The repair and report keys (src/tui/repair.rs); None for other keys.
/// A repair hands the console to a shell that may change the image, so a
/// preloaded kernel is dropped first.
fn repair_action(model: &mut Model, action: Action) -> Option<Vec<Effect>> {
    let mut effects = repair::on_menu_action(model, action)?;
    if effects.iter().any(|e| matches!(e, Effect::Repair { .. })) {
        let mut all = cancel_preload(model);
        all.append(&mut effects);
        return Some(all);
    }
    Some(effects)
}

fn run_locked_action(model: &mut Model, action: Action) -> Vec<Effect> {
    match action {
        Action::Repair | Action::RepairWrite => repair_action(model, action).unwrap_or_default(),
        Action::TrialKeep | Action::TrialDiscard => {
            trial::on_menu_action(model, action).unwrap_or_default()
        }
        Action::Edit => {
            match selected_entry(model) {
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
            }
            Vec::new()
        }
        // The shell may change the image files, and a rescan renumbers the
        // entries: a preloaded kernel would be stale after either.
        Action::Shell => {
            model.busy = Some(Busy::Shell);
            let mut effects = cancel_preload(model);
            effects.push(Effect::RescueShell);
            effects
        }
        _ => Vec::new(),
    }
}

/// Switches the selected image between an immutable and a normal boot,
/// for this menu session. A preload of it carried the other mode's
/// command line, so it starts again.
fn toggle_immutable(model: &mut Model) -> Vec<Effect> {
    toggle_overlay(model, |p, path| p.toggle(path))
}

/// Switches the selected image's overlay with `toggle` (immutable or
/// trial, issue 15), then restarts a preload as `toggle_immutable` says.
fn toggle_overlay(
    model: &mut Model,
    toggle: fn(&mut crate::model::ImmutablePolicy, &str),
) -> Vec<Effect> {
    let Some(row) = model.selected_row() else {
        return Vec::new();
    };
    let Some(image) = row
        .image()
        .and_then(|(v, i)| model.snapshot.volumes.get(v)?.images.get(i))
    else {
        return Vec::new();
    };
    let path = image.path.clone();
    toggle(&mut model.snapshot.immutable, &path);
    match row {
        Row::Entry {
            entry,
            blocker: None,
            ..
        } if model.settings.preload => start_preload(model, entry, None),
        _ => Vec::new(),
    }
}

fn on_password_key(model: &mut Model, key: Key, action: Action, mut typed: Secret) -> Vec<Effect> {
    match (keys::PROMPT.action(key), key) {
        (Some(Action::Cancel), _) => {
            model.screen = Screen::Menu;
            return Vec::new();
        }
        (Some(Action::Unlock), _) => match model.lock.try_password(&typed) {
            Ok(()) => {
                model.screen = Screen::Menu;
                return run_locked_action(model, action);
            }
            // The prompt stays, empty, and says why (view::prompt); the
            // wait is the lock's, so leaving and reopening the prompt
            // does not shorten it.
            Err(Refused::Wrong { .. }) => typed.clear(),
            Err(Refused::TooSoon { .. }) => {}
        },
        (Some(Action::DeleteBefore), _) => typed.pop(),
        (Some(Action::DeleteToStart), _) => typed.clear(),
        (None, Key::Char(c)) => typed.push(c),
        _ => {}
    }
    model.screen = Screen::Password { action, typed };
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
    // An edited line is not the line the preload loaded.
    let line = own_line_as_none(model, entry, Some(edit.text()));
    let stale = model
        .preload
        .as_ref()
        .is_some_and(|p| p.entry == entry && p.cmdline != line);
    model.screen = Screen::Editor { entry, edit };
    if stale {
        return cancel_preload(model);
    }
    Vec::new()
}

/// An edited line equal to the entry's own is the entry's own line (None),
/// so a preload of the entry serves it.
fn own_line_as_none(model: &Model, entry: EntryRef, cmdline: Option<String>) -> Option<String> {
    let own = model.snapshot.entry(entry).map(|e| e.cmdline.as_str());
    cmdline.filter(|c| Some(c.as_str()) != own)
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
    let title = model.entry_title(entry);
    if !model.settings.preload {
        model.busy = Some(Busy::Booting(title));
        return vec![Effect::Boot { entry, cmdline }];
    }
    // With preloads, every boot goes through one: a finished one only
    // reboots, a running one is waited for, and a new one is started and
    // waited for, its steps shown on the status line.
    let cmdline = own_line_as_none(model, entry, cmdline);
    let state = model
        .preload
        .as_ref()
        .filter(|p| p.entry == entry && p.cmdline == cmdline)
        .map(|p| p.state.clone());
    match state {
        Some(PreloadState::Ready) => {
            model.busy = Some(Busy::Booting(title));
            vec![Effect::BootPreloaded { entry, cmdline }]
        }
        Some(PreloadState::Running { step }) => {
            model.busy = Some(Busy::Preparing { title, step });
            model.boot_waits = true;
            Vec::new()
        }
        Some(PreloadState::Failed(f)) => {
            // Shown as a failed load is; the next Enter tries afresh.
            model.countdown = None;
            show_failure(model, f);
            cancel_preload(model)
        }
        None => {
            let effects = start_preload(model, entry, cmdline);
            model.busy = Some(Busy::Preparing { title, step: None });
            model.boot_waits = true;
            effects
        }
    }
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
