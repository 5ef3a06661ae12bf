//! The menu's side of a pending trial (issue 15): keep it (m, a
//! `snapshot-merge` into the image, with its progress on the status line)
//! or discard it (x), each after a question. Every decision is here and
//! pure; the host does the writes (src/stage1/trial.rs says exactly
//! which), one Effect at a time:
//!
//! ```text
//! m → ConfirmTrial → y → Effect::Trial(Keep) → Msg::MergeProgress
//!   → each Tick: Effect::PollMerge → Msg::MergeProgress … until done
//!   → Effect::FinishMerge → Msg::TrialDone → Effect::Rescan
//! x → ConfirmTrial → y → Effect::Trial(Discard) → Msg::TrialDone → Effect::Rescan
//! ```

use crate::boot::trial::{TrialAction, trial_plan};
use crate::trial::MergeStatus;
use crate::tui::host::{Effect, Failure};
use crate::tui::keys::{self, Action};
use crate::tui::model::{Busy, MergeWatch, Model, Screen};
use crate::tui::msg::Key;

/// The menu's m and x. Returns None for other actions.
pub fn on_menu_action(model: &mut Model, action: Action) -> Option<Vec<Effect>> {
    let action = match action {
        Action::TrialKeep => TrialAction::Keep,
        Action::TrialDiscard => TrialAction::Discard,
        _ => return None,
    };
    let Some((volume, image)) = model.selected_row().and_then(|r| r.image()) else {
        return Some(Vec::new());
    };
    // Refused at once, with the reason, when the image has no trial or
    // the host may not be written: no question first.
    if let Err(e) = trial_plan(&model.snapshot, volume, image, action) {
        let f = Failure::new(refused_what(action), e.cause(), e.hint());
        model.failures.push(f.clone());
        model.modal = Some(f);
        return Some(Vec::new());
    }
    model.screen = Screen::ConfirmTrial {
        volume,
        image,
        action,
    };
    Some(Vec::new())
}

fn refused_what(action: TrialAction) -> &'static str {
    match action {
        TrialAction::Keep => "Cannot keep the trial changes",
        TrialAction::Discard => "Cannot discard the trial changes",
    }
}

/// The answer to the question: y runs the action, any other key does
/// nothing.
pub fn on_confirm_key(
    model: &mut Model,
    key: Key,
    volume: usize,
    image: usize,
    action: TrialAction,
) -> Vec<Effect> {
    model.screen = Screen::Menu;
    if keys::CONFIRM.action(key) != Some(Action::Confirm) {
        model.notice = Some("Nothing was changed.".into());
        return Vec::new();
    }
    let name = image_name(model, volume, image);
    model.busy = Some(Busy::Trial(match action {
        TrialAction::Keep => format!("Starting to merge the trial changes into {name}..."),
        TrialAction::Discard => format!("Discarding the trial changes of {name}..."),
    }));
    if action == TrialAction::Keep {
        model.merge = Some(MergeWatch {
            image: name,
            start_remaining: None,
            percent: 0,
            finishing: false,
        });
    }
    vec![Effect::Trial {
        volume,
        image,
        action,
    }]
}

/// A status of the running merge, or why it stopped. When every chunk is
/// back in the image, the host is asked to finish (remove the device,
/// delete the store and the marker, remount read-only).
pub fn on_merge_progress(model: &mut Model, result: Result<MergeStatus, Failure>) -> Vec<Effect> {
    let Some(watch) = model.merge.as_mut() else {
        return Vec::new();
    };
    match result {
        Ok(status) => {
            let start = *watch.start_remaining.get_or_insert(status.remaining());
            watch.percent = status.percent(start);
            if status.done() {
                watch.finishing = true;
                model.busy = Some(Busy::Trial(format!(
                    "Merged the trial changes into {}; deleting the .trial file...",
                    watch.image
                )));
                return vec![Effect::FinishMerge];
            }
            model.busy = Some(Busy::Trial(format!(
                "Merging the trial changes into {}: {}% ({} MiB left); keys wait until it ends",
                watch.image,
                watch.percent,
                status.remaining() >> 11
            )));
            Vec::new()
        }
        Err(f) => done(model, Err(f)),
    }
}

/// Every second of a running merge asks the kernel how far it got.
pub fn on_tick(model: &Model) -> Option<Vec<Effect>> {
    let watch = model.merge.as_ref()?;
    Some(if watch.finishing || watch.start_remaining.is_none() {
        Vec::new()
    } else {
        vec![Effect::PollMerge]
    })
}

/// The action ended: the menu takes keys again, shows what happened and
/// scans again, so that the image's line shows its trial state anew.
pub fn done(model: &mut Model, result: Result<String, Failure>) -> Vec<Effect> {
    model.merge = None;
    model.screen = Screen::Menu;
    model.repaint = true;
    match result {
        Ok(note) => model.notice = Some(note),
        Err(f) => {
            model.failures.push(f.clone());
            model.modal = Some(f);
        }
    }
    model.busy = Some(Busy::Rescanning);
    vec![Effect::Rescan]
}

fn image_name(model: &Model, volume: usize, image: usize) -> String {
    model
        .snapshot
        .volumes
        .get(volume)
        .and_then(|v| v.images.get(image))
        .map(|i| i.name().to_string())
        .unwrap_or_default()
}

/// The question's lines: what will be written, in the user's words.
pub fn question(model: &Model, volume: usize, image: usize, action: TrialAction) -> [String; 2] {
    let name = image_name(model, volume, image);
    let host = model
        .snapshot
        .volumes
        .get(volume)
        .map(|v| v.display_name())
        .unwrap_or_default();
    let resuming = model
        .snapshot
        .volumes
        .get(volume)
        .and_then(|v| v.images.get(image)?.trial)
        .is_some_and(|t| t.merging);
    match action {
        TrialAction::Keep if resuming => [
            format!("Finish merging the trial changes into {name}?"),
            format!(
                "{host} is mounted read-write while the merge runs; then {name}.trial is \
                 deleted. An earlier merge was cut short: this completes it."
            ),
        ],
        TrialAction::Keep => [
            format!("Keep the trial changes: merge them into {name}?"),
            format!(
                "{host} is mounted read-write while the merge runs; then {name}.trial is \
                 deleted. A power cut resumes the merge at the next start."
            ),
        ],
        TrialAction::Discard => [
            format!("Discard the trial changes of {name}?"),
            format!(
                "{host} is mounted read-write to delete {name}.trial; {name} itself is not \
                 written."
            ),
        ],
    }
}
