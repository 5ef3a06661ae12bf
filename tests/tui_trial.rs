//! Keeping and discarding a pending trial from the menu (issue 15), as
//! scripted update() sequences and through the executor with a recording
//! host: each action asks first, a refused one says why and writes
//! nothing, a merge shows its progress from the kernel's status, and the
//! menu takes keys again when it ends.

use vhdboot::boot::trial::{TrialAction, TrialPlan};
use vhdboot::model::{Snapshot, VolumeBadge};
use vhdboot::trial::{MergeStatus, PendingTrial};
use vhdboot::tui::demo::{DEFAULT_ENTRY, fixture_snapshot};
use vhdboot::tui::executor::execute;
use vhdboot::tui::model::{Busy, Screen};
use vhdboot::tui::{Effect, Failure, Host, Key, Model, Msg, update};

const PENDING: PendingTrial = PendingTrial {
    size: 32 << 20,
    merging: false,
};

/// The demo's menu with a pending trial beside arch.vhd (volume 0, image 0).
fn menu_with_trial(trial: PendingTrial) -> Model {
    let mut s = fixture_snapshot();
    s.volumes[0].images[0].trial = Some(trial);
    Model::new(
        s,
        &vhdboot::config::Config::default(),
        Some(DEFAULT_ENTRY),
        None,
    )
}

fn press(m: &mut Model, k: Key) -> Vec<Effect> {
    update(m, Msg::Key(k))
}

fn status(allocated: u64) -> MergeStatus {
    MergeStatus {
        allocated,
        total: 65536,
        metadata: 16,
    }
}

fn busy_text(m: &Model) -> String {
    match &m.busy {
        Some(Busy::Trial(t)) => t.clone(),
        other => format!("{other:?}"),
    }
}

/// The menu takes keys again: Down moves the selection.
fn assert_takes_keys(m: &mut Model) {
    let before = m.selected;
    press(m, Key::Down);
    assert_ne!(m.selected, before, "Down did not move the selection");
    press(m, Key::Up);
    assert_eq!(m.selected, before);
}

#[test]
fn m_asks_first_and_any_other_key_changes_nothing() {
    let mut m = menu_with_trial(PENDING);
    assert!(press(&mut m, Key::Char('m')).is_empty());
    assert_eq!(
        m.screen,
        Screen::ConfirmTrial {
            volume: 0,
            image: 0,
            action: TrialAction::Keep
        }
    );
    assert!(press(&mut m, Key::Char('n')).is_empty());
    assert_eq!(m.screen, Screen::Menu);
    assert_eq!(m.notice.as_deref(), Some("Nothing was changed."));
    assert_takes_keys(&mut m);
}

#[test]
fn keep_merges_with_progress_then_finishes_rescans_and_takes_keys() {
    let mut m = menu_with_trial(PENDING);
    press(&mut m, Key::Char('m'));
    let effects = press(&mut m, Key::Char('y'));
    assert_eq!(
        effects.last(),
        Some(&Effect::Trial {
            volume: 0,
            image: 0,
            action: TrialAction::Keep
        })
    );
    // The first status: 4192 data sectors to merge.
    assert!(update(&mut m, Msg::MergeProgress(Ok(status(4208)))).is_empty());
    assert!(
        busy_text(&m).contains("arch.vhd: 0% (2 MiB left)"),
        "{}",
        busy_text(&m)
    );
    // Keys wait while the merge writes the image; no countdown, no boot.
    assert!(press(&mut m, Key::Enter).is_empty());
    assert!(press(&mut m, Key::Char('x')).is_empty());
    assert_eq!(update(&mut m, Msg::Tick), vec![Effect::PollMerge]);
    update(&mut m, Msg::MergeProgress(Ok(status(2112))));
    assert!(
        busy_text(&m).contains(": 50% (1 MiB left)"),
        "{}",
        busy_text(&m)
    );
    // Down to the metadata sectors: the merge is done.
    assert_eq!(
        update(&mut m, Msg::MergeProgress(Ok(status(16)))),
        vec![Effect::FinishMerge]
    );
    assert!(
        update(&mut m, Msg::Tick).is_empty(),
        "no poll while finishing"
    );
    let done = update(
        &mut m,
        Msg::TrialDone(Ok("Kept the trial changes: merged into arch.vhd.".into())),
    );
    assert_eq!(done, vec![Effect::Rescan]);
    assert_eq!(
        m.notice.as_deref(),
        Some("Kept the trial changes: merged into arch.vhd.")
    );
    let mut after = m.snapshot.clone();
    after.volumes[0].images[0].trial = None;
    update(&mut m, Msg::Rescanned(Ok(after)));
    assert_eq!(m.busy, None);
    assert_eq!(m.merge, None);
    assert_takes_keys(&mut m);
}

#[test]
fn a_merge_that_stops_shows_why_and_the_menu_takes_keys() {
    let mut m = menu_with_trial(PENDING);
    press(&mut m, Key::Char('m'));
    press(&mut m, Key::Char('y'));
    update(&mut m, Msg::MergeProgress(Ok(status(4208))));
    let f = Failure::new(
        "merging the trial changes into arch.vhd",
        "the snapshot store hit an I/O error while merging (the kernel reports \"Merge failed\")",
        "the merge stopped and resumes when you press m again",
    );
    assert_eq!(
        update(&mut m, Msg::MergeProgress(Err(f.clone()))),
        vec![Effect::Rescan]
    );
    assert_eq!(m.modal, Some(f));
    let same = m.snapshot.clone();
    update(&mut m, Msg::Rescanned(Ok(same)));
    press(&mut m, Key::Esc); // dismisses the modal
    assert_takes_keys(&mut m);
}

#[test]
fn discard_asks_then_deletes_and_rescans() {
    let mut m = menu_with_trial(PENDING);
    press(&mut m, Key::Char('x'));
    assert_eq!(
        m.screen,
        Screen::ConfirmTrial {
            volume: 0,
            image: 0,
            action: TrialAction::Discard
        }
    );
    let effects = press(&mut m, Key::Char('y'));
    assert_eq!(
        effects.last(),
        Some(&Effect::Trial {
            volume: 0,
            image: 0,
            action: TrialAction::Discard
        })
    );
    assert_eq!(m.merge, None, "a discard runs no merge");
    assert!(busy_text(&m).contains("Discarding the trial changes of arch.vhd"));
    assert_eq!(
        update(&mut m, Msg::TrialDone(Ok("Discarded.".into()))),
        vec![Effect::Rescan]
    );
    let same = m.snapshot.clone();
    update(&mut m, Msg::Rescanned(Ok(same)));
    assert_takes_keys(&mut m);
}

#[test]
fn no_trial_or_an_unsafe_host_is_refused_with_the_reason_and_no_question() {
    let mut m = menu_with_trial(PENDING);
    // Down to Arch LTS (same image), then to debian.vhd, which has none.
    press(&mut m, Key::Down);
    press(&mut m, Key::Down);
    assert!(press(&mut m, Key::Char('x')).is_empty());
    assert_eq!(m.screen, Screen::Menu);
    let f = m.modal.clone().unwrap();
    assert!(f.cause.contains("has no trial changes"), "{f:?}");

    let mut s: Snapshot = fixture_snapshot();
    s.volumes[0].images[0].trial = Some(PENDING);
    s.volumes[0].badges.push(VolumeBadge::Hibernated);
    let mut m = Model::new(
        s,
        &vhdboot::config::Config::default(),
        Some(DEFAULT_ENTRY),
        None,
    );
    assert!(press(&mut m, Key::Char('m')).is_empty());
    assert_eq!(m.screen, Screen::Menu);
    let f = m.modal.clone().unwrap();
    assert_eq!(f.what, "Cannot keep the trial changes");
    assert!(f.cause.contains("hibernat"), "{f:?}");
}

#[test]
fn a_cut_merge_is_offered_at_start_and_only_keeping_is_allowed() {
    let mut m = menu_with_trial(PendingTrial {
        size: 32 << 20,
        merging: true,
    });
    assert!(
        m.notice
            .as_deref()
            .is_some_and(|n| n.contains("arch.vhd's trial changes was cut short")),
        "{:?}",
        m.notice
    );
    press(&mut m, Key::Char('x'));
    let f = m.modal.take().unwrap();
    assert!(f.cause.contains("cut short"), "{f:?}");
    assert!(f.hint.contains("press m"), "{f:?}");
    press(&mut m, Key::Char('m'));
    assert!(matches!(m.screen, Screen::ConfirmTrial { .. }));
}

/// Records the calls the executor makes.
#[derive(Default)]
struct Recorder {
    calls: Vec<String>,
    statuses: Vec<MergeStatus>,
}

impl Host for Recorder {
    fn load(&mut self, _: &vhdboot::boot::plan::BootPlan) -> Result<(), Failure> {
        self.calls.push("load".into());
        Ok(())
    }
    fn preload(
        &mut self,
        _: u64,
        _: &vhdboot::boot::plan::BootPlan,
    ) -> Option<Result<(), Failure>> {
        None
    }
    fn cancel_preload(&mut self) {}
    fn exec(&mut self) -> Failure {
        Failure::new("exec", "test", "none")
    }
    fn rescue_shell(&mut self) -> Result<(), Failure> {
        Ok(())
    }
    fn rescan(&mut self) -> Result<Snapshot, Failure> {
        self.calls.push("rescan".into());
        let mut s = fixture_snapshot();
        s.volumes[0].images[0].trial = None;
        Ok(s)
    }
    fn discard_trial(&mut self, plan: &TrialPlan) -> Result<String, Failure> {
        self.calls
            .push(format!("discard {}", plan.store_file().display()));
        Ok("discarded".into())
    }
    fn start_merge(&mut self, plan: &TrialPlan) -> Result<MergeStatus, Failure> {
        self.calls.push(format!(
            "merge {} into {} ({} bytes)",
            plan.store_file().display(),
            plan.image_file().display(),
            plan.data_size
        ));
        Ok(self.statuses.remove(0))
    }
    fn merge_status(&mut self) -> Result<MergeStatus, Failure> {
        self.calls.push("status".into());
        Ok(self.statuses.remove(0))
    }
    fn finish_merge(&mut self) -> Result<String, Failure> {
        self.calls.push("finish".into());
        Ok("kept".into())
    }
    fn reboot(&mut self) -> Failure {
        Failure::new("reboot", "test", "none")
    }
    fn power_off(&mut self) -> Failure {
        Failure::new("power off", "test", "none")
    }
}

/// Runs `msg` and every effect it leads to through the executor, as the
/// app loop does.
fn run(m: &mut Model, host: &mut Recorder, msg: Msg) {
    let mut queue = vec![msg];
    while let Some(msg) = queue.pop() {
        for effect in update(m, msg) {
            queue.extend(execute(effect, &m.snapshot.clone(), host));
        }
    }
}

#[test]
fn the_executor_drives_keep_from_the_question_to_the_rescan() {
    let mut m = menu_with_trial(PENDING);
    let mut host = Recorder {
        statuses: vec![status(4208), status(2112), status(16)],
        ..Recorder::default()
    };
    run(&mut m, &mut host, Msg::Key(Key::Char('m')));
    run(&mut m, &mut host, Msg::Key(Key::Char('y')));
    run(&mut m, &mut host, Msg::Tick);
    run(&mut m, &mut host, Msg::Tick);
    assert_eq!(
        host.calls,
        vec![
            "merge /run/vhdboot/demo/data/vhd/arch.vhd.trial into \
             /run/vhdboot/demo/data/vhd/arch.vhd (34359738368 bytes)",
            "status",
            "status",
            "finish",
            "rescan"
        ]
    );
    assert_eq!(
        m.notice.as_deref(),
        Some("kept"),
        "the rescan keeps the merge's note"
    );
    assert_eq!(m.snapshot.volumes[0].images[0].trial, None);
    assert_takes_keys(&mut m);
}

#[test]
fn the_executor_drives_discard_and_writes_nothing_when_refused() {
    let mut m = menu_with_trial(PENDING);
    let mut host = Recorder::default();
    run(&mut m, &mut host, Msg::Key(Key::Char('x')));
    run(&mut m, &mut host, Msg::Key(Key::Char('y')));
    assert_eq!(
        host.calls,
        vec![
            "discard /run/vhdboot/demo/data/vhd/arch.vhd.trial",
            "rescan"
        ]
    );
    // The host went hibernated between the question and the answer: the
    // executor asks the judge again and calls nothing that writes.
    let mut m = menu_with_trial(PENDING);
    let mut host = Recorder::default();
    run(&mut m, &mut host, Msg::Key(Key::Char('x')));
    m.snapshot.volumes[0].badges.push(VolumeBadge::Hibernated);
    run(&mut m, &mut host, Msg::Key(Key::Char('y')));
    assert_eq!(host.calls, vec!["rescan"]);
    assert!(m.modal.is_some());
}

#[test]
fn a_password_guards_keep_and_discard() {
    let mut m = menu_with_trial(PENDING);
    let hash = vhdboot::password::hash("pw", &[7; 12]).unwrap_or_default();
    let config = vhdboot::config::Config {
        password: Some(vhdboot::password::Password::from_setting(&hash)),
        ..vhdboot::config::Config::default()
    };
    m.lock = vhdboot::tui::lock::Lock::from_config(&config);
    assert!(press(&mut m, Key::Char('x')).is_empty());
    assert!(
        matches!(m.screen, Screen::Password { .. }),
        "{:?}",
        m.screen
    );
    for c in "pw".chars() {
        press(&mut m, Key::Char(c));
    }
    press(&mut m, Key::Enter);
    assert_eq!(
        m.screen,
        Screen::ConfirmTrial {
            volume: 0,
            image: 0,
            action: TrialAction::Discard
        }
    );
}
