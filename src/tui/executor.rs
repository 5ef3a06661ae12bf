//! Runs one Effect through the Host and turns the outcome into messages.
//! Load and exec are separate steps, as in u-root: a failed load comes back
//! to the menu before anything irreversible happens.

use crate::boot::plan::{BootPlan, PlanError, plan};
use crate::boot::trial::TrialAction;
use crate::model::{EntryRef, Snapshot};
use crate::tui::host::{Effect, Failure, Host};
use crate::tui::msg::Msg;

pub fn execute(effect: Effect, snapshot: &Snapshot, host: &mut dyn Host) -> Vec<Msg> {
    execute_with(effect, snapshot, host, plan)
}

/// `execute` with the planner passed in, so tests can drive load and exec
/// with a plan of their own.
pub fn execute_with(
    effect: Effect,
    snapshot: &Snapshot,
    host: &mut dyn Host,
    plan: impl FnOnce(&Snapshot, EntryRef, Option<&str>) -> Result<BootPlan, PlanError>,
) -> Vec<Msg> {
    match effect {
        Effect::Boot { entry, cmdline } => {
            let plan = match plan(snapshot, entry, cmdline.as_deref()) {
                Ok(p) => p,
                Err(e) => return vec![Msg::BootFailed(unplannable(snapshot, entry, &e))],
            };
            if let Err(f) = host.load(&plan) {
                return vec![Msg::BootFailed(f)];
            }
            // exec returns only when it failed.
            vec![Msg::BootFailed(host.exec())]
        }
        Effect::Preload { id, entry, cmdline } => {
            let plan = match plan(snapshot, entry, cmdline.as_deref()) {
                Ok(p) => p,
                Err(e) => {
                    return vec![Msg::Preloaded {
                        id,
                        result: Err(unplannable(snapshot, entry, &e)),
                    }];
                }
            };
            match host.preload(id, &plan) {
                Some(result) => vec![Msg::Preloaded { id, result }],
                None => Vec::new(),
            }
        }
        Effect::CancelPreload => {
            host.cancel_preload();
            Vec::new()
        }
        // The preload did the load; `update` emits this only for the
        // entry and line it loaded.
        Effect::BootPreloaded { .. } => vec![Msg::BootFailed(host.exec())],
        Effect::RescueShell => vec![Msg::ShellExited(host.rescue_shell())],
        Effect::Rescan => vec![Msg::Rescanned(host.rescan())],
        Effect::Repair {
            volume,
            image,
            mode,
        } => {
            let result = match crate::boot::repair::repair_plan(snapshot, volume, image, mode) {
                Ok(plan) => host.repair(&plan),
                Err(e) => Err(Failure::new(
                    "Cannot open the image for repair",
                    e.cause(),
                    e.hint(),
                )),
            };
            vec![Msg::RepairEnded { mode, result }]
        }
        Effect::GatherReport => {
            let (facts, fat) = host.gather_report();
            vec![Msg::ReportGathered {
                facts: Box::new(facts),
                fat,
            }]
        }
        Effect::SaveReport { target, text } => {
            vec![Msg::ReportSaved(host.save_report(&target, &text))]
        }
        Effect::Trial {
            volume,
            image,
            action,
        } => {
            let plan = match crate::boot::trial::trial_plan(snapshot, volume, image, action) {
                Ok(p) => p,
                Err(e) => {
                    return vec![Msg::TrialDone(Err(Failure::new(
                        "Cannot change the trial",
                        e.cause(),
                        e.hint(),
                    )))];
                }
            };
            match action {
                TrialAction::Keep => vec![Msg::MergeProgress(host.start_merge(&plan))],
                TrialAction::Discard => vec![Msg::TrialDone(host.discard_trial(&plan))],
            }
        }
        Effect::PollMerge => vec![Msg::MergeProgress(host.merge_status())],
        Effect::FinishMerge => vec![Msg::TrialDone(host.finish_merge())],
        Effect::Reboot => vec![Msg::PowerFailed(host.reboot())],
        Effect::PowerOff => vec![Msg::PowerFailed(host.power_off())],
        // Quitting is the app loop's business: only it can leave.
        Effect::Quit => Vec::new(),
    }
}

fn unplannable(snapshot: &Snapshot, entry: EntryRef, e: &PlanError) -> Failure {
    let title = snapshot
        .entry(entry)
        .map(|e| e.title.clone())
        .unwrap_or_else(|| "the selected entry".into());
    Failure {
        what: format!("Could not prepare the boot of {title}"),
        cause: e.to_string(),
        hint: "Press r to rescan, or l for the scan log.".into(),
    }
}
