//! The rescue kit's keys and screens (issue 16, items 1 and 3): open an
//! image for repair (read-only, or read-write after a question), and the
//! support report (shown paginated, saved only after the user picked a
//! volume and said yes). Every key of these features is handled here, in
//! [`on_menu_action`] and the screen handlers below, so that a gate (a
//! password before the repair actions) has one place to sit.

use std::path::PathBuf;

use crate::boot::plan::host_write_blocker;
use crate::boot::repair::RepairMode;
use crate::model::Snapshot;
use crate::report::{self, ReportFacts, SeenFailure};
use crate::tui::host::{Effect, Failure};
use crate::tui::keys::{self, Action};
use crate::tui::model::{Busy, Model, Screen};
use crate::tui::msg::Key;

/// A FAT filesystem (a USB stick, an ESP) the host found, where a report
/// may be saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatDevice {
    pub device: PathBuf,
    pub label: Option<String>,
    pub size: u64,
}

/// Where a report can be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveTarget {
    /// A FAT filesystem, mounted read-write for the write only.
    Fat(FatDevice),
    /// A host volume (NTFS or exFAT), remounted read-write for the write
    /// only. `volume` indexes the snapshot.
    Host {
        volume: usize,
        device: PathBuf,
        name: String,
    },
}

impl SaveTarget {
    /// How the chooser names it.
    pub fn describe(&self) -> String {
        match self {
            SaveTarget::Fat(f) => format!(
                "{} (FAT{})",
                f.device.display(),
                f.label
                    .as_deref()
                    .filter(|l| !l.is_empty())
                    .map(|l| format!(" \"{l}\""))
                    .unwrap_or_default()
            ),
            SaveTarget::Host { device, name, .. } => {
                format!("{name} ({}, host volume)", device.display())
            }
        }
    }
}

/// A gathered report, while it is on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportShown {
    pub lines: Vec<String>,
    pub text: String,
    /// The volumes it may be saved to, FAT first.
    pub targets: Vec<SaveTarget>,
    /// Volumes left out of `targets`, with the reason (a dirty host).
    pub refused: Vec<String>,
}

/// The report's places: every FAT filesystem found, and each host volume
/// that `boot::plan` judges safe to write; the others are listed with why.
pub fn save_targets(snapshot: &Snapshot, fat: &[FatDevice]) -> (Vec<SaveTarget>, Vec<String>) {
    let mut targets: Vec<SaveTarget> = fat.iter().cloned().map(SaveTarget::Fat).collect();
    let mut refused = Vec::new();
    for (i, v) in snapshot.volumes.iter().enumerate() {
        match host_write_blocker(snapshot, v) {
            None => targets.push(SaveTarget::Host {
                volume: i,
                device: v.device.clone(),
                name: v.display_name(),
            }),
            Some(e) => refused.push(format!("{}: {}", v.display_name(), e.cause())),
        }
    }
    (targets, refused)
}

/// The menu's repair and report actions. Returns None for other actions.
pub fn on_menu_action(model: &mut Model, action: Action) -> Option<Vec<Effect>> {
    match action {
        Action::Repair => Some(open_selected(model, RepairMode::ReadOnly)),
        Action::RepairWrite => {
            let Some((volume, image)) = model.selected_row().and_then(|r| r.image()) else {
                return Some(Vec::new());
            };
            // Refused at once when the host is unsafe: no question first.
            if let Err(e) = crate::boot::repair::repair_plan(
                &model.snapshot,
                volume,
                image,
                RepairMode::ReadWrite,
            ) {
                show(model, refusal(&e));
                return Some(Vec::new());
            }
            model.screen = Screen::ConfirmRepair { volume, image };
            Some(Vec::new())
        }
        Action::Report => {
            model.busy = Some(Busy::Report);
            Some(vec![Effect::GatherReport])
        }
        _ => None,
    }
}

fn refusal(e: &crate::boot::plan::PlanError) -> Failure {
    Failure::new("Cannot open the image read-write", e.cause(), e.hint())
}

fn show(model: &mut Model, f: Failure) {
    model.failures.push(f.clone());
    model.modal = Some(f);
}

fn open_selected(model: &mut Model, mode: RepairMode) -> Vec<Effect> {
    let Some((volume, image)) = model.selected_row().and_then(|r| r.image()) else {
        return Vec::new();
    };
    model.busy = Some(Busy::Repair);
    vec![Effect::Repair {
        volume,
        image,
        mode,
    }]
}

/// The y/n question before a read-write repair.
pub fn on_confirm_repair_key(
    model: &mut Model,
    key: Key,
    volume: usize,
    image: usize,
) -> Vec<Effect> {
    model.screen = Screen::Menu;
    if keys::CONFIRM.action(key) != Some(Action::Confirm) {
        model.notice = Some("Nothing was opened.".into());
        return Vec::new();
    }
    model.busy = Some(Busy::Repair);
    vec![Effect::Repair {
        volume,
        image,
        mode: RepairMode::ReadWrite,
    }]
}

/// The repair shell exited and everything was undone (or not, and why).
/// A read-write repair may have changed the image: scan again.
pub fn on_repair_ended(
    model: &mut Model,
    mode: RepairMode,
    result: Result<Vec<String>, Failure>,
) -> Vec<Effect> {
    model.busy = None;
    model.screen = Screen::Menu;
    model.repaint = true;
    match result {
        Ok(notes) if notes.is_empty() => {
            model.notice = Some("The repair shell exited; the image was closed.".into())
        }
        Ok(notes) => model.notice = Some(format!("The repair shell exited; {}", notes.join("; "))),
        Err(f) => show(model, f),
    }
    if mode == RepairMode::ReadWrite {
        model.busy = Some(Busy::Rescanning);
        return vec![Effect::Rescan];
    }
    Vec::new()
}

/// The facts came back: lay the report out and show it.
pub fn on_report_gathered(
    model: &mut Model,
    facts: &ReportFacts,
    fat: &[FatDevice],
) -> Vec<Effect> {
    model.busy = None;
    let failures: Vec<SeenFailure> = model
        .failures
        .iter()
        .map(|f| SeenFailure {
            what: f.what.clone(),
            cause: f.cause.clone(),
            hint: f.hint.clone(),
        })
        .collect();
    let text = report::render(facts, &model.snapshot, &failures);
    let (targets, refused) = save_targets(&model.snapshot, fat);
    model.report = Some(ReportShown {
        lines: text.lines().map(str::to_string).collect(),
        text,
        targets,
        refused,
    });
    model.screen = Screen::Report { scroll: 0 };
    Vec::new()
}

/// Keys on the report: scroll like the log, `w` to choose where to save.
pub fn on_report_key(
    model: &mut Model,
    key: Key,
    scroll: usize,
    page: usize,
    max: usize,
) -> Vec<Effect> {
    if keys::REPORT.action(key) == Some(Action::SaveReport) {
        model.screen = Screen::ReportSave {
            choice: 0,
            confirming: false,
        };
        return Vec::new();
    }
    model.screen = match crate::tui::update::scroll_key(key, scroll, page) {
        Some(s) => Screen::Report { scroll: s.min(max) },
        None if keys::REPORT.action(key) == Some(Action::Back)
            || keys::MENU.action(key) == Some(Action::Report) =>
        {
            model.report = None;
            Screen::Menu
        }
        None => Screen::Report { scroll },
    };
    Vec::new()
}

/// Keys in the save chooser: Up/Down pick, Enter asks, y writes.
pub fn on_save_key(model: &mut Model, key: Key, choice: usize, confirming: bool) -> Vec<Effect> {
    let Some(report) = model.report.as_ref() else {
        model.screen = Screen::Menu;
        return Vec::new();
    };
    let count = report.targets.len();
    if confirming {
        if keys::CONFIRM.action(key) == Some(Action::Confirm)
            && let Some(target) = report.targets.get(choice).cloned()
        {
            let text = report.text.clone();
            model.screen = Screen::Report { scroll: 0 };
            model.busy = Some(Busy::Report);
            return vec![Effect::SaveReport { target, text }];
        }
        model.screen = Screen::ReportSave {
            choice,
            confirming: false,
        };
        model.notice = Some("The report was not saved.".into());
        return Vec::new();
    }
    let choice = match keys::SAVE.action(key) {
        Some(Action::ChooseUp) => choice.saturating_sub(1),
        Some(Action::ChooseDown) => (choice + 1).min(count.saturating_sub(1)),
        Some(Action::Choose) if count > 0 => {
            model.screen = Screen::ReportSave {
                choice,
                confirming: true,
            };
            return Vec::new();
        }
        Some(Action::Back) => {
            model.screen = Screen::Report { scroll: 0 };
            return Vec::new();
        }
        _ => choice,
    };
    model.screen = Screen::ReportSave {
        choice,
        confirming: false,
    };
    Vec::new()
}

/// The save finished: say where, or why not.
pub fn on_report_saved(model: &mut Model, result: Result<String, Failure>) -> Vec<Effect> {
    model.busy = None;
    match result {
        Ok(path) => model.notice = Some(format!("The report was saved to {path}.")),
        Err(f) => show(model, f),
    }
    Vec::new()
}
