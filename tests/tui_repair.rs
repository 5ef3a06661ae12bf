//! The rescue kit's keys, scripted through `update` (issue 16, items 1 and
//! 3): open for repair, the read-write question and its refusal on an
//! unsafe host, the report screen and its save chooser. Snapshots of the
//! new screens at 80x24.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vhdboot::boot::repair::RepairMode;
use vhdboot::config::Config;
use vhdboot::model::VolumeBadge;
use vhdboot::report::ReportFacts;
use vhdboot::tui::demo::{DEFAULT_ENTRY, fixture_snapshot};
use vhdboot::tui::model::{Busy, Screen};
use vhdboot::tui::repair::{FatDevice, SaveTarget};
use vhdboot::tui::{Effect, Failure, Key, Model, Msg, update, view};

fn menu() -> Model {
    Model::new(
        fixture_snapshot(),
        &Config::default(),
        Some(DEFAULT_ENTRY),
        None,
    )
}

fn press(m: &mut Model, k: Key) -> Vec<Effect> {
    update(m, Msg::Key(k))
}

fn draw(model: &mut Model, w: u16, h: u16) -> String {
    update(model, Msg::Resize(w, h));
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view(model, f)).unwrap();
    terminal.backend().to_string()
}

fn selected_image(m: &Model) -> (usize, usize) {
    m.selected_row()
        .and_then(|r| r.image())
        .unwrap_or((usize::MAX, usize::MAX))
}

#[test]
fn o_opens_the_selected_image_read_only_at_once() {
    let mut m = menu();
    let (volume, image) = selected_image(&m);
    let effects = press(&mut m, Key::Char('o'));
    assert_eq!(
        effects.last(),
        Some(&Effect::Repair {
            volume,
            image,
            mode: RepairMode::ReadOnly
        })
    );
    assert_eq!(m.busy, Some(Busy::Repair));
}

#[test]
fn w_asks_first_and_only_y_opens_read_write() {
    let mut m = menu();
    let (volume, image) = selected_image(&m);
    assert!(press(&mut m, Key::Char('w')).is_empty());
    assert_eq!(m.screen, Screen::ConfirmRepair { volume, image });
    assert!(press(&mut m, Key::Char('n')).is_empty());
    assert_eq!(m.screen, Screen::Menu);
    press(&mut m, Key::Char('w'));
    let effects = press(&mut m, Key::Char('y'));
    assert_eq!(
        effects.last(),
        Some(&Effect::Repair {
            volume,
            image,
            mode: RepairMode::ReadWrite
        })
    );
}

#[test]
fn w_on_a_dirty_host_is_refused_with_the_reason_and_asks_nothing() {
    let mut snapshot = fixture_snapshot();
    snapshot.volumes[0].badges.push(VolumeBadge::Dirty);
    let mut m = Model::new(snapshot, &Config::default(), Some(DEFAULT_ENTRY), None);
    assert_eq!(selected_image(&m).0, 0);
    assert!(press(&mut m, Key::Char('w')).is_empty());
    assert_eq!(m.screen, Screen::Menu);
    let modal = m.modal.clone().expect("a refusal");
    assert!(modal.cause.contains("dirty"), "{modal:?}");
    assert!(modal.hint.contains("chkdsk"), "{modal:?}");
}

#[test]
fn the_menu_comes_back_after_a_repair_and_a_read_write_one_rescans() {
    let mut m = menu();
    press(&mut m, Key::Char('o'));
    let effects = update(
        &mut m,
        Msg::RepairEnded {
            mode: RepairMode::ReadOnly,
            result: Ok(Vec::new()),
        },
    );
    assert!(effects.is_empty());
    assert_eq!(m.busy, None);
    assert!(m.notice.as_deref().unwrap().contains("repair shell exited"));
    // The menu takes keys again.
    assert!(matches!(
        press(&mut m, Key::Enter).last(),
        Some(Effect::Boot { .. })
    ));
    let mut m = menu();
    let effects = update(
        &mut m,
        Msg::RepairEnded {
            mode: RepairMode::ReadWrite,
            result: Ok(Vec::new()),
        },
    );
    assert_eq!(effects, vec![Effect::Rescan]);
}

#[test]
fn a_failed_repair_shows_why() {
    let mut m = menu();
    update(
        &mut m,
        Msg::RepairEnded {
            mode: RepairMode::ReadOnly,
            result: Err(Failure::new("attaching x", "EBUSY", "try again")),
        },
    );
    assert_eq!(m.modal.as_ref().unwrap().cause, "EBUSY");
}

fn with_report(m: &mut Model) {
    assert_eq!(press(m, Key::Char('d')), vec![Effect::GatherReport]);
    let facts = ReportFacts {
        versions: vec!["vhdboot 0.1.0".into(), "kernel: Linux 6.12".into()],
        block_devices: vec!["/dev/vda 1073741824 bytes".into()],
        ..ReportFacts::default()
    };
    let fat = vec![FatDevice {
        device: "/dev/sdb1".into(),
        label: Some("STICK".into()),
        size: 8 << 30,
    }];
    update(
        m,
        Msg::ReportGathered {
            facts: Box::new(facts),
            fat,
        },
    );
}

#[test]
fn d_shows_the_report_with_every_section() {
    let mut m = menu();
    with_report(&mut m);
    assert_eq!(m.screen, Screen::Report { scroll: 0 });
    let text = &m.report.as_ref().unwrap().text;
    for name in vhdboot::report::SECTIONS {
        assert!(text.contains(&format!("== {name} ==")), "{name}");
    }
    // The dirty Windows volume of the fixture is no place to save.
    let report = m.report.as_ref().unwrap();
    assert!(
        report
            .refused
            .iter()
            .any(|r| r.starts_with("Windows") && r.contains("dirty")),
        "{:?}",
        report.refused
    );
    assert!(matches!(report.targets[0], SaveTarget::Fat(_)));
    press(&mut m, Key::PageDown);
    assert!(matches!(m.screen, Screen::Report { scroll } if scroll > 0));
    press(&mut m, Key::Esc);
    assert_eq!(m.screen, Screen::Menu);
    assert_eq!(m.report, None);
}

#[test]
fn the_report_is_saved_only_after_a_choice_and_a_yes() {
    let mut m = menu();
    with_report(&mut m);
    press(&mut m, Key::Char('w'));
    assert_eq!(
        m.screen,
        Screen::ReportSave {
            choice: 0,
            confirming: false
        }
    );
    press(&mut m, Key::Down);
    press(&mut m, Key::Up);
    assert!(press(&mut m, Key::Enter).is_empty());
    // Any key but y says no.
    assert!(press(&mut m, Key::Char('n')).is_empty());
    assert!(press(&mut m, Key::Enter).is_empty());
    let effects = press(&mut m, Key::Char('y'));
    let Some(Effect::SaveReport { target, text }) = effects.last() else {
        panic!("{effects:?}");
    };
    assert!(matches!(target, SaveTarget::Fat(f) if f.device.ends_with("sdb1")));
    assert!(text.starts_with("vhdboot report\n"));
    update(
        &mut m,
        Msg::ReportSaved(Ok("/dev/sdb1:/vhdboot-report.txt".into())),
    );
    assert!(m.notice.as_deref().unwrap().contains("/dev/sdb1"));
}

#[test]
fn snapshot_report_screens() {
    let mut m = menu();
    with_report(&mut m);
    insta::assert_snapshot!("report_80x24", draw(&mut m, 80, 24));
    press(&mut m, Key::Char('w'));
    press(&mut m, Key::Enter);
    insta::assert_snapshot!("report_save_confirm_80x24", draw(&mut m, 80, 24));
    let mut m = menu();
    press(&mut m, Key::Char('w'));
    insta::assert_snapshot!("repair_write_confirm_80x24", draw(&mut m, 80, 24));
}
