//! Preloads (issue 17), scripted end to end through `update` and the
//! executor with a recording fake Host: what starts, what is cancelled, and
//! that a boot after a finished preload only reboots.

use std::collections::VecDeque;

use vhdboot::boot::plan::BootPlan;
use vhdboot::config::Config;
use vhdboot::model::{EntryRef, Snapshot};
use vhdboot::tui::demo::{DEFAULT_ENTRY, fixture_snapshot};
use vhdboot::tui::executor::execute;
use vhdboot::tui::model::{Busy, PreloadState};
use vhdboot::tui::{Effect, Failure, Host, Key, Model, Msg, update};

/// Records every call; a preload's outcome is sent by the test, as the
/// real host's thread sends it to the inbox.
#[derive(Default)]
struct RecordingHost {
    calls: Vec<String>,
    /// Whether each preloaded plan was an immutable boot, in order.
    immutable: Vec<bool>,
}

impl Host for RecordingHost {
    fn load(&mut self, plan: &BootPlan) -> Result<(), Failure> {
        self.calls.push(format!("load {}", plan.title));
        Ok(())
    }
    fn preload(&mut self, id: u64, plan: &BootPlan) -> Option<Result<(), Failure>> {
        self.calls.push(format!("preload {id} {}", plan.title));
        self.immutable.push(plan.overlay.is_some());
        None
    }
    fn cancel_preload(&mut self) {
        self.calls.push("cancel".into());
    }
    fn exec(&mut self) -> Failure {
        self.calls.push("exec".into());
        failure("the test host does not reboot")
    }
    fn rescue_shell(&mut self) -> Result<(), Failure> {
        self.calls.push("shell".into());
        Ok(())
    }
    fn rescan(&mut self) -> Result<Snapshot, Failure> {
        self.calls.push("rescan".into());
        Ok(fixture_snapshot())
    }
    fn reboot(&mut self) -> Failure {
        failure("reboot")
    }
    fn power_off(&mut self) -> Failure {
        failure("power off")
    }
}

fn failure(what: &str) -> Failure {
    Failure {
        what: what.into(),
        cause: "cause".into(),
        hint: "hint".into(),
    }
}

/// The menu and its host, run the way the app loop runs them: each
/// message through `update`, each effect through the executor, and the
/// executor's messages back into `update`.
struct Menu {
    model: Model,
    host: RecordingHost,
}

impl Menu {
    fn new(countdown: Option<u32>) -> Menu {
        let model = Model::new(
            fixture_snapshot(),
            &Config::default(),
            Some(DEFAULT_ENTRY),
            countdown,
        )
        .with_preload();
        Menu {
            model,
            host: RecordingHost::default(),
        }
    }

    /// Sends `msg`; returns every effect it led to.
    fn send(&mut self, msg: Msg) -> Vec<Effect> {
        let mut all = Vec::new();
        let mut queue = VecDeque::from([msg]);
        while let Some(msg) = queue.pop_front() {
            for effect in update(&mut self.model, msg) {
                all.push(effect.clone());
                let snapshot = self.model.snapshot.clone();
                queue.extend(execute(effect, &snapshot, &mut self.host));
            }
        }
        all
    }

    fn key(&mut self, key: Key) -> Vec<Effect> {
        self.send(Msg::Key(key))
    }

    /// The id of the preload the menu holds.
    fn preload_id(&self) -> u64 {
        self.model.preload.as_ref().map(|p| p.id).unwrap_or(0)
    }

    /// The host's thread reports preload `id` finished.
    fn finish(&mut self, id: u64, result: Result<(), Failure>) -> Vec<Effect> {
        self.send(Msg::Preloaded { id, result })
    }

    fn calls(&self) -> Vec<&str> {
        self.host.calls.iter().map(String::as_str).collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }
}

fn title(menu: &Menu, entry: EntryRef) -> String {
    menu.model
        .snapshot
        .entry(entry)
        .map(|e| e.title.clone())
        .unwrap_or_default()
}

#[test]
fn showing_the_menu_preloads_the_selected_entry() {
    let mut menu = Menu::new(Some(5));
    let effects = menu.send(Msg::Shown);
    assert_eq!(
        effects,
        vec![Effect::Preload {
            id: 1,
            entry: DEFAULT_ENTRY,
            cmdline: None,
        }]
    );
    assert_eq!(
        menu.calls(),
        vec![format!("preload 1 {}", title(&menu, DEFAULT_ENTRY))]
    );
}

#[test]
fn without_preloads_the_menu_starts_nothing_by_itself() {
    let mut model = Model::new(
        fixture_snapshot(),
        &Config::default(),
        Some(DEFAULT_ENTRY),
        None,
    );
    assert!(update(&mut model, Msg::Shown).is_empty());
    assert!(update(&mut model, Msg::Tick).is_empty());
    assert_eq!(
        update(&mut model, Msg::Key(Key::Enter)),
        vec![Effect::Boot {
            entry: DEFAULT_ENTRY,
            cmdline: None,
        }]
    );
}

#[test]
fn enter_after_a_finished_preload_only_reboots() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    assert!(menu.finish(1, Ok(())).is_empty());
    assert_eq!(
        menu.model.preload.as_ref().map(|p| &p.state),
        Some(&PreloadState::Ready)
    );
    let effects = menu.key(Key::Enter);
    assert_eq!(
        effects.first(),
        Some(&Effect::BootPreloaded {
            entry: DEFAULT_ENTRY,
            cmdline: None,
        })
    );
    assert_eq!(menu.count("preload"), 1);
    assert_eq!(menu.count("load"), 0, "{:?}", menu.calls());
    assert_eq!(menu.count("exec"), 1);
}

#[test]
fn countdown_ending_after_a_finished_preload_only_reboots() {
    let mut menu = Menu::new(Some(2));
    menu.send(Msg::Shown);
    menu.finish(1, Ok(()));
    assert!(menu.send(Msg::Tick).is_empty());
    let effects = menu.send(Msg::Tick);
    assert_eq!(
        effects.first(),
        Some(&Effect::BootPreloaded {
            entry: DEFAULT_ENTRY,
            cmdline: None,
        })
    );
    assert_eq!(menu.count("preload"), 1);
    assert_eq!(menu.count("load"), 0, "{:?}", menu.calls());
}

#[test]
fn enter_during_a_preload_waits_for_it_and_then_only_reboots() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    assert!(menu.key(Key::Enter).is_empty(), "no second preload");
    assert!(menu.model.waiting_for_preload());
    menu.send(Msg::PreloadStep {
        id: 1,
        step: "checking the initramfs".into(),
    });
    assert_eq!(
        menu.model.busy,
        Some(Busy::Preparing {
            title: title(&menu, DEFAULT_ENTRY),
            step: Some("checking the initramfs".into()),
        })
    );
    // Keys other than Esc do nothing while the boot waits; a second
    // Enter does not stop it.
    assert!(menu.key(Key::Down).is_empty());
    assert!(menu.key(Key::Enter).is_empty());
    assert!(menu.model.waiting_for_preload());
    let effects = menu.finish(1, Ok(()));
    assert!(matches!(
        effects.first(),
        Some(Effect::BootPreloaded { .. })
    ));
    assert_eq!(menu.count("preload"), 1);
    assert_eq!(menu.count("load"), 0);
    assert_eq!(menu.count("exec"), 1);
}

#[test]
fn moving_while_a_preload_runs_cancels_it_and_preloads_after_a_rest() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    let effects = menu.key(Key::Down);
    assert_eq!(effects, vec![Effect::CancelPreload]);
    assert!(menu.model.preload.is_none());
    // The tick in which the selection moved does not count as rest.
    assert!(menu.send(Msg::Tick).is_empty());
    let effects = menu.send(Msg::Tick);
    let Some(Effect::Preload { id: 2, entry, .. }) = effects.first().cloned() else {
        panic!("expected the second preload, got {effects:?}");
    };
    assert_ne!(entry, DEFAULT_ENTRY);
    // The first preload's late news changes nothing.
    assert!(menu.finish(1, Ok(())).is_empty());
    assert!(matches!(
        menu.model.preload.as_ref().map(|p| &p.state),
        Some(PreloadState::Running { .. })
    ));
    assert_eq!(menu.count("cancel"), 1);
    assert_eq!(menu.count("preload"), 2);
}

#[test]
fn moving_after_a_finished_preload_unloads_it() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    menu.finish(1, Ok(()));
    assert_eq!(menu.key(Key::Down), vec![Effect::CancelPreload]);
    // Enter on the new row before any rest prepares it and waits.
    let effects = menu.key(Key::Enter);
    assert!(matches!(
        effects.as_slice(),
        [Effect::Preload { id: 2, .. }]
    ));
    assert!(menu.model.waiting_for_preload());
}

#[test]
fn editing_the_line_while_a_preload_runs_cancels_it() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    // Opening the editor alone keeps the preload: the line is unchanged.
    assert!(menu.key(Key::Char('e')).is_empty());
    assert!(menu.model.preload.is_some());
    assert_eq!(menu.key(Key::Char('x')), vec![Effect::CancelPreload]);
    // Enter boots the edited line through a fresh preload, waited for.
    let effects = menu.key(Key::Enter);
    let Some(Effect::Preload { id: 2, cmdline, .. }) = effects.first().cloned() else {
        panic!("expected a preload of the edited line, got {effects:?}");
    };
    assert!(cmdline.is_some_and(|c| c.ends_with('x')));
    let effects = menu.finish(2, Ok(()));
    assert!(matches!(
        effects.first(),
        Some(Effect::BootPreloaded { .. })
    ));
    assert_eq!(menu.count("load"), 0);
}

#[test]
fn an_unchanged_line_boots_the_preload_of_the_entrys_own() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    menu.finish(1, Ok(()));
    menu.key(Key::Char('e'));
    let effects = menu.key(Key::Enter);
    assert!(matches!(
        effects.first(),
        Some(Effect::BootPreloaded { .. })
    ));
    assert_eq!(menu.count("preload"), 1);
}

#[test]
fn a_failed_preload_shows_its_reason_on_enter_and_the_next_enter_tries_again() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    menu.finish(1, Err(failure("loading with kexec_file_load")));
    assert!(menu.model.modal.is_none(), "nothing shows before Enter");
    // A failed preload is not retried by itself.
    assert!(menu.send(Msg::Tick).is_empty());
    menu.key(Key::Enter);
    assert_eq!(
        menu.model.modal,
        Some(failure("loading with kexec_file_load"))
    );
    assert_eq!(menu.count("exec"), 0);
    menu.key(Key::Esc);
    let effects = menu.key(Key::Enter);
    assert!(matches!(
        effects.as_slice(),
        [Effect::Preload { id: 2, .. }]
    ));
}

#[test]
fn a_preload_failing_while_the_boot_waits_shows_like_a_failed_load() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    menu.key(Key::Enter);
    assert!(
        menu.finish(1, Err(failure("reading the kernel")))
            .is_empty()
    );
    assert_eq!(menu.model.modal, Some(failure("reading the kernel")));
    assert_eq!(menu.model.busy, None);
    assert!(!menu.model.waiting_for_preload());
    assert_eq!(menu.count("exec"), 0);
}

#[test]
fn esc_stops_the_wait_but_keeps_the_preload() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    menu.key(Key::Enter);
    assert!(menu.key(Key::Esc).is_empty());
    assert!(!menu.model.waiting_for_preload());
    assert_eq!(menu.model.busy, None);
    assert!(menu.finish(1, Ok(())).is_empty(), "no boot after Esc");
    assert_eq!(menu.count("exec"), 0);
}

#[test]
fn rescan_and_shell_cancel_the_preload() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    let effects = menu.key(Key::Char('r'));
    assert_eq!(effects.first(), Some(&Effect::CancelPreload));
    assert!(effects.contains(&Effect::Rescan));
    // The preload of the rescanned list starts on the next tick.
    let effects = menu.send(Msg::Tick);
    assert!(matches!(effects.as_slice(), [Effect::Preload { .. }]));
    let effects = menu.key(Key::Char('s'));
    assert_eq!(effects.first(), Some(&Effect::CancelPreload));
    assert_eq!(menu.preload_id(), 0);
}

#[test]
fn a_failed_reboot_drops_the_preload() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    menu.finish(1, Ok(()));
    // The test host's exec fails, as a failed reboot does.
    menu.key(Key::Enter);
    assert!(menu.model.modal.is_some());
    assert!(menu.model.preload.is_none());
    assert_eq!(menu.calls().last(), Some(&"cancel"));
}

#[test]
fn switching_immutable_prepares_the_boot_again_in_the_new_mode() {
    let mut menu = Menu::new(None);
    menu.send(Msg::Shown);
    assert!(menu.finish(1, Ok(())).is_empty());
    let effects = menu.key(Key::Char('i'));
    assert_eq!(
        effects,
        vec![
            Effect::CancelPreload,
            Effect::Preload {
                id: 2,
                entry: DEFAULT_ENTRY,
                cmdline: None,
            }
        ]
    );
    menu.key(Key::Char('i'));
    assert_eq!(menu.host.immutable, vec![false, true, false]);
}
