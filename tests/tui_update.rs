//! The menu as a state machine: scripted messages in, effects and state
//! out, one behaviour per test.

use vhdboot::boot::plan::blocker;
use vhdboot::config::Config;
use vhdboot::model::{EntryRef, Problem, Snapshot, VolumeBadge};
use vhdboot::tui::demo::{DEFAULT_ENTRY, fixture_snapshot};
use vhdboot::tui::model::{Busy, MAX_KMSG_LINES, PowerAction, Row, Screen};
use vhdboot::tui::{Effect, Failure, Key, Model, Msg, update};

const ARCH_LTS: EntryRef = EntryRef {
    volume: 0,
    image: 0,
    entry: 1,
};
const DEBIAN: EntryRef = EntryRef {
    volume: 0,
    image: 1,
    entry: 0,
};
const UBUNTU: EntryRef = EntryRef {
    volume: 1,
    image: 0,
    entry: 0,
};
const ARCH_CMDLINE: &str = "root=PARTUUID=0c6ec3b8-1f5b-4b4e-9a0f-3d6f0e8a1b21 rw quiet splash";

fn menu() -> Model {
    Model::new(
        fixture_snapshot(),
        &Config::default(),
        Some(DEFAULT_ENTRY),
        None,
    )
}

fn counting(seconds: u32) -> Model {
    Model::new(
        fixture_snapshot(),
        &Config::default(),
        Some(DEFAULT_ENTRY),
        Some(seconds),
    )
}

fn press(m: &mut Model, k: Key) -> Vec<Effect> {
    update(m, Msg::Key(k))
}

fn press_all(m: &mut Model, keys: &[Key]) -> Vec<Effect> {
    keys.iter().flat_map(|k| press(m, *k)).collect()
}

fn type_text(m: &mut Model, text: &str) {
    for c in text.chars() {
        assert!(press(m, Key::Char(c)).is_empty());
    }
}

fn selected_entry(m: &Model) -> Option<EntryRef> {
    match m.selected_row() {
        Some(Row::Entry { entry, .. }) => Some(entry),
        _ => None,
    }
}

#[expect(clippy::panic, reason = "a test helper; failing loudly is its job")]
fn editor_text(m: &Model) -> String {
    match &m.screen {
        Screen::Editor { edit, .. } => edit.text(),
        other => panic!("not in the editor: {other:?}"),
    }
}

fn failure() -> Failure {
    Failure {
        what: "kexec_file_load failed".into(),
        cause: "EKEYREJECTED".into(),
        hint: "Sign the kernel.".into(),
    }
}

fn boot_of(entry: EntryRef, cmdline: &str) -> Vec<Effect> {
    vec![Effect::Boot {
        entry,
        cmdline: Some(cmdline.into()),
    }]
}

/// The boot of `entry` with its own command line, which the executor
/// looks up.
fn boot_own(entry: EntryRef) -> Vec<Effect> {
    vec![Effect::Boot {
        entry,
        cmdline: None,
    }]
}

// Selection and navigation.

#[test]
fn default_entry_is_selected_at_start() {
    assert_eq!(selected_entry(&menu()), Some(DEFAULT_ENTRY));
}

#[test]
fn without_default_first_selectable_row_is_selected() {
    let m = Model::new(fixture_snapshot(), &Config::default(), None, Some(5));
    assert_eq!(selected_entry(&m), Some(DEFAULT_ENTRY));
    assert_eq!(m.countdown, None, "no default, nothing to count down to");
}

#[test]
fn down_skips_headers_and_moves_over_entries() {
    let mut m = menu();
    press(&mut m, Key::Down);
    assert_eq!(selected_entry(&m), Some(ARCH_LTS));
    press(&mut m, Key::Char('j'));
    assert_eq!(selected_entry(&m), Some(DEBIAN));
    press(&mut m, Key::Char('k'));
    assert_eq!(selected_entry(&m), Some(ARCH_LTS));
}

#[test]
fn image_without_entries_is_selectable() {
    let mut m = menu();
    press_all(&mut m, &[Key::Down, Key::Down, Key::Down, Key::Down]);
    assert!(matches!(
        m.selected_row(),
        Some(Row::Image {
            volume: 0,
            image: 3,
            ..
        })
    ));
}

#[test]
fn down_crosses_volume_headers() {
    let mut m = menu();
    press_all(&mut m, &[Key::Down; 5]);
    assert_eq!(selected_entry(&m), Some(UBUNTU));
}

#[test]
fn navigation_clamps_at_both_ends() {
    let mut m = menu();
    press(&mut m, Key::Up);
    assert_eq!(
        selected_entry(&m),
        Some(DEFAULT_ENTRY),
        "Up at the top stays"
    );
    press_all(&mut m, &[Key::End, Key::Down]);
    assert_eq!(selected_entry(&m), Some(UBUNTU), "Down at the bottom stays");
    press(&mut m, Key::Home);
    assert_eq!(selected_entry(&m), Some(DEFAULT_ENTRY));
}

#[test]
fn page_keys_move_by_a_page_and_clamp() {
    let mut m = menu();
    press(&mut m, Key::PageDown);
    assert_eq!(selected_entry(&m), Some(UBUNTU));
    press(&mut m, Key::PageUp);
    assert_eq!(selected_entry(&m), Some(DEFAULT_ENTRY));
}

// Countdown.

#[test]
fn key_during_countdown_stops_it_and_is_not_acted_on() {
    let mut m = counting(5);
    assert!(press(&mut m, Key::Enter).is_empty());
    assert_eq!(m.countdown, None);
    assert_eq!(m.busy, None);
    assert!(
        update(&mut m, Msg::Tick).is_empty(),
        "no boot after the stop"
    );
}

#[test]
fn countdown_key_keeps_selection_where_it_was() {
    let mut m = counting(5);
    press(&mut m, Key::Down);
    assert_eq!(selected_entry(&m), Some(DEFAULT_ENTRY));
}

#[test]
fn countdown_ticks_down_each_second() {
    let mut m = counting(3);
    assert!(update(&mut m, Msg::Tick).is_empty());
    assert_eq!(m.countdown, Some(2));
}

#[test]
fn countdown_reaching_zero_boots_the_default() {
    let mut m = counting(2);
    assert!(update(&mut m, Msg::Tick).is_empty());
    let effects = update(&mut m, Msg::Tick);
    assert_eq!(effects, boot_own(DEFAULT_ENTRY));
    assert_eq!(m.countdown, None);
    assert_eq!(m.busy, Some(Busy::Booting("Arch Linux".into())));
}

#[test]
fn countdown_boots_the_default_even_when_another_row_is_selected() {
    let mut m = Model::new(
        fixture_snapshot(),
        &Config::default(),
        Some(DEBIAN),
        Some(1),
    );
    m.selected = 2;
    let effects = update(&mut m, Msg::Tick);
    assert!(matches!(effects.as_slice(), [Effect::Boot { entry, .. }] if *entry == DEBIAN));
}

#[test]
fn tick_without_countdown_does_nothing() {
    let mut m = menu();
    assert!(update(&mut m, Msg::Tick).is_empty());
}

// Booting.

#[test]
fn enter_boots_the_selected_entry_with_its_own_cmdline() {
    let mut m = menu();
    press(&mut m, Key::Down);
    let effects = press(&mut m, Key::Enter);
    assert_eq!(effects, boot_own(ARCH_LTS));
}

#[test]
fn enter_on_image_without_entries_shows_why_it_cannot_boot() {
    let mut m = menu();
    press_all(&mut m, &[Key::Down; 4]);
    assert!(press(&mut m, Key::Enter).is_empty());
    let modal = m.modal.clone().expect("a modal explains");
    assert!(modal.cause.contains("dynamic VHD"), "{modal:?}");
    assert!(modal.hint.contains("vhdboot convert"), "{modal:?}");
}

#[test]
fn enter_on_entry_with_blocking_problem_shows_it_and_does_not_boot() {
    let mut snap = fixture_snapshot();
    snap.volumes[0].images[1].problems.push(Problem::blocking(
        "the file is sparse",
        "Copy it with cp --sparse=never.",
    ));
    let mut m = Model::new(snap, &Config::default(), None, None);
    m.selected = m
        .rows
        .iter()
        .position(|r| matches!(r, Row::Entry { entry, .. } if *entry == DEBIAN))
        .unwrap();
    assert!(press(&mut m, Key::Enter).is_empty());
    assert_eq!(
        m.modal.as_ref().map(|f| f.cause.as_str()),
        Some("the file is sparse")
    );
}

#[test]
fn enter_on_entry_of_a_hibernated_volume_shows_the_plans_reason() {
    let mut snap = fixture_snapshot();
    snap.volumes[1].badges.push(VolumeBadge::Hibernated);
    let why = blocker(&snap, UBUNTU).expect("the judge refuses a hibernated host");
    let mut m = Model::new(snap, &Config::default(), None, None);
    m.selected = m.row_of_entry(UBUNTU).unwrap();
    assert_eq!(
        m.selected_row().and_then(|r| r.blocker().cloned()),
        Some(why.clone())
    );
    assert!(press(&mut m, Key::Enter).is_empty(), "nothing boots");
    let modal = m.modal.clone().expect("a modal explains");
    assert_eq!(modal.cause, why.cause());
    assert!(modal.cause.contains("hibernated"), "{modal:?}");
    assert!(modal.hint.contains("shut it down fully"), "{modal:?}");
    assert_eq!(m.busy, None);
}

#[test]
fn no_countdown_to_a_default_on_a_hibernated_volume() {
    let mut snap = fixture_snapshot();
    snap.volumes[0].badges.push(VolumeBadge::Hibernated);
    let m = Model::new(snap, &Config::default(), Some(DEFAULT_ENTRY), Some(5));
    assert_eq!(m.countdown, None);
}

#[test]
fn boot_failed_keeps_the_menu_alive_with_the_modal() {
    let mut m = menu();
    assert_eq!(press(&mut m, Key::Enter).len(), 1);
    update(&mut m, Msg::BootFailed(failure()));
    assert_eq!(m.modal, Some(failure()));
    assert_eq!(m.busy, None);
    assert_eq!(m.screen, Screen::Menu);
    assert_eq!(m.failures, vec![failure()], "the log keeps it");
}

#[test]
fn any_key_dismisses_the_modal_and_is_consumed() {
    let mut m = menu();
    update(&mut m, Msg::BootFailed(failure()));
    assert!(press(&mut m, Key::Enter).is_empty(), "Enter only dismisses");
    assert_eq!(m.modal, None);
    press(&mut m, Key::Down);
    assert_eq!(selected_entry(&m), Some(ARCH_LTS), "the menu works again");
}

// The command-line editor.

#[test]
fn e_opens_the_editor_with_the_entry_cmdline() {
    let mut m = menu();
    press(&mut m, Key::Char('e'));
    assert_eq!(editor_text(&m), ARCH_CMDLINE);
}

#[test]
fn edit_then_enter_boots_with_the_edited_cmdline() {
    let mut m = menu();
    press_all(&mut m, &[Key::Char('e'), Key::Ctrl('w')]);
    type_text(&mut m, "single");
    let effects = press(&mut m, Key::Enter);
    assert_eq!(
        effects,
        boot_of(
            DEFAULT_ENTRY,
            "root=PARTUUID=0c6ec3b8-1f5b-4b4e-9a0f-3d6f0e8a1b21 rw quiet single"
        )
    );
    assert_eq!(m.screen, Screen::Menu);
}

#[test]
fn edit_is_for_this_boot_only() {
    let mut m = menu();
    press_all(&mut m, &[Key::Char('e'), Key::Ctrl('u'), Key::Enter]);
    update(&mut m, Msg::BootFailed(failure()));
    press_all(&mut m, &[Key::Esc, Key::Char('e')]);
    assert_eq!(editor_text(&m), ARCH_CMDLINE);
    assert_eq!(
        m.snapshot.entry(DEFAULT_ENTRY).unwrap().cmdline,
        ARCH_CMDLINE
    );
}

#[test]
fn esc_in_the_editor_restores_the_original_cmdline() {
    let mut m = menu();
    press_all(&mut m, &[Key::Char('e'), Key::Ctrl('u')]);
    type_text(&mut m, "init=/bin/sh");
    assert!(press(&mut m, Key::Esc).is_empty());
    assert_eq!(m.screen, Screen::Menu);
    assert_eq!(press(&mut m, Key::Enter), boot_own(DEFAULT_ENTRY));
}

#[test]
fn editor_home_and_delete_edit_the_start() {
    let mut m = menu();
    press_all(
        &mut m,
        &[
            Key::Char('e'),
            Key::Home,
            Key::Delete,
            Key::Delete,
            Key::Delete,
            Key::Delete,
        ],
    );
    assert!(editor_text(&m).starts_with("=PARTUUID"));
}

#[test]
fn editor_ctrl_a_then_ctrl_k_clears_the_line() {
    let mut m = menu();
    press_all(&mut m, &[Key::Char('e'), Key::Ctrl('a'), Key::Ctrl('k')]);
    assert_eq!(editor_text(&m), "");
}

#[test]
fn editor_ctrl_e_then_backspace_deletes_the_last_char() {
    let mut m = menu();
    press_all(
        &mut m,
        &[Key::Char('e'), Key::Home, Key::Ctrl('e'), Key::Backspace],
    );
    assert_eq!(editor_text(&m), ARCH_CMDLINE.trim_end_matches('h'));
}

#[test]
fn editor_left_right_move_the_insertion_point() {
    let mut m = menu();
    press_all(
        &mut m,
        &[
            Key::Char('e'),
            Key::Left,
            Key::Left,
            Key::Char('X'),
            Key::Right,
            Key::Char('Y'),
        ],
    );
    assert!(editor_text(&m).ends_with("splaXsYh"), "{}", editor_text(&m));
}

#[test]
fn editor_ctrl_u_deletes_to_the_start() {
    let mut m = menu();
    press_all(&mut m, &[Key::Char('e'), Key::Left, Key::Ctrl('u')]);
    assert_eq!(editor_text(&m), "h");
}

#[test]
fn editor_takes_letters_that_are_menu_keys_as_text() {
    let mut m = menu();
    press(&mut m, Key::Char('e'));
    type_text(&mut m, " qsrlbp?");
    assert!(editor_text(&m).ends_with(" qsrlbp?"));
    assert!(matches!(m.screen, Screen::Editor { .. }));
}

#[test]
fn e_on_image_without_entries_shows_why() {
    let mut m = menu();
    press_all(&mut m, &[Key::Down; 4]);
    press(&mut m, Key::Char('e'));
    assert_eq!(m.screen, Screen::Menu);
    assert!(m.modal.is_some());
}

// Rescue shell.

#[test]
fn shell_key_asks_for_the_rescue_shell() {
    let mut m = menu();
    assert_eq!(press(&mut m, Key::Char('s')), vec![Effect::RescueShell]);
    assert_eq!(m.busy, Some(Busy::Shell));
}

#[test]
fn leaving_the_shell_returns_to_the_menu_and_repaints() {
    let mut m = menu();
    press(&mut m, Key::Char('s'));
    update(&mut m, Msg::ShellExited(Ok(())));
    assert_eq!(m.busy, None);
    assert_eq!(m.screen, Screen::Menu);
    assert!(m.repaint);
    assert_eq!(m.modal, None);
}

#[test]
fn shell_that_failed_to_start_shows_the_modal() {
    let mut m = menu();
    press(&mut m, Key::Char('s'));
    update(&mut m, Msg::ShellExited(Err(failure())));
    assert_eq!(m.modal, Some(failure()));
}

// Rescan.

#[test]
fn r_asks_for_a_rescan() {
    let mut m = menu();
    assert_eq!(press(&mut m, Key::Char('r')), vec![Effect::Rescan]);
    assert_eq!(m.busy, Some(Busy::Rescanning));
}

#[test]
fn rescan_replaces_the_snapshot_and_keeps_the_selection() {
    let mut m = menu();
    press_all(&mut m, &[Key::Down, Key::Down]);
    assert_eq!(selected_entry(&m), Some(DEBIAN));
    let mut snap = fixture_snapshot();
    snap.volumes[0].images.remove(0); // Arch is gone: Debian moves up.
    press(&mut m, Key::Char('r'));
    update(&mut m, Msg::Rescanned(Ok(snap.clone())));
    assert_eq!(m.snapshot, snap);
    assert_eq!(m.busy, None);
    let now = selected_entry(&m).unwrap();
    assert_eq!(
        now,
        EntryRef {
            volume: 0,
            image: 0,
            entry: 0
        }
    );
    assert_eq!(m.snapshot.image(now).unwrap().path, "/vhd/debian.vhd");
    assert_eq!(m.default, None, "the default's image is gone");
}

#[test]
fn rescan_keeps_the_default_when_it_moves() {
    let mut m = menu();
    let mut snap = fixture_snapshot();
    let arch = snap.volumes[0].images.remove(0);
    snap.volumes[0].images.push(arch);
    update(&mut m, Msg::Rescanned(Ok(snap)));
    let d = m.default.unwrap();
    assert_eq!(m.snapshot.image(d).unwrap().path, "/vhd/arch.vhd");
    assert_eq!(d.entry, 0);
}

#[test]
fn rescan_that_lost_the_selection_selects_the_first_entry() {
    let mut m = menu();
    press_all(&mut m, &[Key::End]);
    let mut snap = fixture_snapshot();
    snap.volumes.remove(1);
    update(&mut m, Msg::Rescanned(Ok(snap)));
    assert_eq!(selected_entry(&m), Some(DEFAULT_ENTRY));
}

#[test]
fn failed_rescan_keeps_the_old_snapshot_and_shows_why() {
    let mut m = menu();
    press(&mut m, Key::Char('r'));
    update(&mut m, Msg::Rescanned(Err(failure())));
    assert_eq!(m.snapshot, fixture_snapshot());
    assert_eq!(m.modal, Some(failure()));
}

#[test]
fn rescan_to_nothing_leaves_no_selection() {
    let mut m = menu();
    update(&mut m, Msg::Rescanned(Ok(Snapshot::default())));
    assert_eq!(m.selected_row(), None);
    assert!(press(&mut m, Key::Enter).is_empty());
    assert!(m.modal.is_some(), "Enter explains there is nothing to boot");
    press(&mut m, Key::Esc);
    assert_eq!(press(&mut m, Key::Char('s')), vec![Effect::RescueShell]);
}

// Reboot and power off.

#[test]
fn reboot_asks_for_confirmation_first() {
    let mut m = menu();
    assert!(press(&mut m, Key::Char('b')).is_empty());
    assert_eq!(m.screen, Screen::Confirm(PowerAction::Reboot));
    assert_eq!(press(&mut m, Key::Char('y')), vec![Effect::Reboot]);
}

#[test]
fn power_off_asks_for_confirmation_first() {
    let mut m = menu();
    assert!(press(&mut m, Key::Char('p')).is_empty());
    assert_eq!(m.screen, Screen::Confirm(PowerAction::PowerOff));
    assert_eq!(press(&mut m, Key::Char('y')), vec![Effect::PowerOff]);
}

#[test]
fn any_other_key_cancels_the_confirmation() {
    let mut m = menu();
    press(&mut m, Key::Char('b'));
    assert!(press(&mut m, Key::Char('n')).is_empty());
    assert_eq!(m.screen, Screen::Menu);
    press(&mut m, Key::Char('p'));
    assert!(press(&mut m, Key::Enter).is_empty());
    assert_eq!(m.screen, Screen::Menu);
}

#[test]
fn failed_reboot_shows_the_modal() {
    let mut m = menu();
    press_all(&mut m, &[Key::Char('b'), Key::Char('y')]);
    update(&mut m, Msg::PowerFailed(failure()));
    assert_eq!(m.modal, Some(failure()));
    assert_eq!(m.busy, None);
}

// Quitting, help, log.

#[test]
fn q_does_nothing_when_quitting_is_not_allowed() {
    let mut m = menu();
    assert!(press(&mut m, Key::Char('q')).is_empty());
}

#[test]
fn q_quits_the_demo() {
    let mut m = menu().allow_quit();
    assert_eq!(press(&mut m, Key::Char('q')), vec![Effect::Quit]);
}

#[test]
fn help_opens_with_h_question_mark_and_f1_and_closes_with_esc() {
    for key in [Key::Char('h'), Key::Char('?'), Key::F(1)] {
        let mut m = menu();
        press(&mut m, key);
        assert_eq!(m.screen, Screen::Help { scroll: 0 });
        press(&mut m, Key::Down);
        assert_eq!(m.screen, Screen::Help { scroll: 1 });
        press(&mut m, Key::Esc);
        assert_eq!(m.screen, Screen::Menu);
    }
}

#[test]
fn log_scrolls_within_its_lines_and_closes() {
    let mut m = menu();
    for i in 0..30 {
        update(&mut m, Msg::Kmsg(format!("line {i}")));
    }
    press(&mut m, Key::Char('l'));
    press_all(&mut m, &[Key::Down, Key::Down]);
    assert_eq!(m.screen, Screen::Log { scroll: 2 });
    press(&mut m, Key::End);
    // 24 lines leave 19 for the log: End puts the last line at the bottom.
    let last = m.log_lines().len() - 19;
    assert_eq!(m.screen, Screen::Log { scroll: last });
    press(&mut m, Key::Up);
    assert_eq!(
        m.screen,
        Screen::Log { scroll: last - 1 },
        "Up moves at once after End"
    );
    press(&mut m, Key::Char('l'));
    assert_eq!(m.screen, Screen::Menu);
}

#[test]
fn log_shows_failures_with_their_cause_and_kernel_lines() {
    let mut m = menu();
    update(&mut m, Msg::BootFailed(failure()));
    update(&mut m, Msg::Kmsg("loop0: detected capacity change".into()));
    let lines = m.log_lines();
    assert!(lines.contains(&"error: kexec_file_load failed: EKEYREJECTED".to_string()));
    assert!(lines.contains(&"kernel: loop0: detected capacity change".to_string()));
}

#[test]
fn kernel_lines_are_capped() {
    let mut m = menu();
    for i in 0..MAX_KMSG_LINES + 10 {
        update(&mut m, Msg::Kmsg(format!("line {i}")));
    }
    assert_eq!(m.kmsg.len(), MAX_KMSG_LINES);
    assert_eq!(m.kmsg.first().map(String::as_str), Some("line 10"));
}

#[test]
fn ctrl_l_asks_for_a_repaint() {
    let mut m = menu();
    press(&mut m, Key::Ctrl('l'));
    assert!(m.repaint);
}

#[test]
fn resize_is_remembered() {
    let mut m = menu();
    update(&mut m, Msg::Resize(40, 12));
    assert_eq!(m.size, (40, 12));
}

#[test]
fn help_end_stops_at_the_last_screenful() {
    let mut m = menu();
    press_all(&mut m, &[Key::Char('?'), Key::End]);
    let Screen::Help { scroll } = m.screen else {
        panic!("help closed")
    };
    assert!(
        scroll > 0 && scroll < vhdboot::tui::model::HELP_TEXT.lines().count(),
        "{scroll}"
    );
    press(&mut m, Key::Up);
    assert_eq!(m.screen, Screen::Help { scroll: scroll - 1 });
}

#[test]
fn no_countdown_to_a_default_that_cannot_boot() {
    let mut snap = fixture_snapshot();
    snap.volumes[0].images[0].problems.push(Problem::blocking(
        "the file is compressed",
        "Uncompress it in Windows.",
    ));
    let m = Model::new(snap, &Config::default(), Some(DEFAULT_ENTRY), Some(5));
    assert_eq!(m.countdown, None);
    assert_eq!(selected_entry(&m), Some(DEFAULT_ENTRY), "still preselected");
}

#[test]
fn ctrl_c_quits_the_demo_only() {
    let mut demo = menu().allow_quit();
    assert_eq!(press(&mut demo, Key::Ctrl('c')), vec![Effect::Quit]);
    let mut pid1 = menu();
    assert!(press(&mut pid1, Key::Ctrl('c')).is_empty());
}

#[test]
fn i_switches_the_selected_image_to_immutable_and_back_for_the_boot() {
    use vhdboot::boot::handoff::{Handoff, Overlay};
    use vhdboot::boot::plan::plan;
    let mut m = menu();
    let entry = selected_entry(&m).unwrap();
    assert!(
        press(&mut m, Key::Char('i')).is_empty(),
        "no preload to restart"
    );
    let p = plan(&m.snapshot, entry, None).unwrap();
    assert_eq!(p.overlay, Some(Overlay::Ram { limit: None }));
    assert_eq!(
        Handoff::parse(&p.cmdline).unwrap().overlay,
        Some(Overlay::Ram { limit: None })
    );
    assert_eq!(
        press(&mut m, Key::Enter),
        vec![Effect::Boot {
            entry,
            cmdline: None
        }]
    );
    let mut m = menu();
    press_all(&mut m, &[Key::Char('i'), Key::Char('i')]);
    assert_eq!(plan(&m.snapshot, entry, None).unwrap().overlay, None);
}

#[test]
fn t_switches_the_selected_image_to_a_trial_boot_and_i_back_to_immutable() {
    use vhdboot::boot::handoff::{Handoff, Overlay};
    use vhdboot::boot::plan::plan;
    use vhdboot::trial::DEFAULT_TRIAL_SIZE;
    let mut m = menu();
    let entry = selected_entry(&m).unwrap();
    assert!(press(&mut m, Key::Char('t')).is_empty(), "no preload");
    let trial = Some(Overlay::Trial {
        size: DEFAULT_TRIAL_SIZE,
    });
    let p = plan(&m.snapshot, entry, None).unwrap();
    assert_eq!(p.overlay, trial);
    assert_eq!(Handoff::parse(&p.cmdline).unwrap().overlay, trial);
    // i then makes it immutable instead, never both.
    press(&mut m, Key::Char('i'));
    assert_eq!(
        plan(&m.snapshot, entry, None).unwrap().overlay,
        Some(Overlay::Ram { limit: None })
    );
    press_all(&mut m, &[Key::Char('t'), Key::Char('t')]);
    assert_eq!(plan(&m.snapshot, entry, None).unwrap().overlay, None);
}

fn locked_menu() -> Model {
    let hash = vhdboot::password::hash("pw", &[7; 12]).unwrap_or_default();
    let config = Config {
        password: Some(vhdboot::password::Password::from_setting(&hash)),
        ..Config::default()
    };
    Model::new(fixture_snapshot(), &config, Some(DEFAULT_ENTRY), None)
}

#[test]
fn with_editor_off_e_only_says_so() {
    let config = Config {
        editor: false,
        ..Config::default()
    };
    let mut m = Model::new(fixture_snapshot(), &config, Some(DEFAULT_ENTRY), None);
    assert!(press(&mut m, Key::Char('e')).is_empty());
    assert_eq!(m.screen, Screen::Menu);
    let notice = m.notice.clone().unwrap_or_default();
    assert!(
        notice.contains("editor is turned off (editor = no)"),
        "{notice}"
    );
    // Enter boots the entry with its own command line.
    assert_eq!(
        press(&mut m, Key::Enter),
        vec![Effect::Boot {
            entry: DEFAULT_ENTRY,
            cmdline: None
        }]
    );
}

#[test]
fn locked_shell_asks_and_the_right_password_opens_it() {
    let mut m = locked_menu();
    assert!(press(&mut m, Key::Char('s')).is_empty());
    assert!(
        matches!(m.screen, Screen::Password { .. }),
        "{:?}",
        m.screen
    );
    type_text(&mut m, "pw");
    assert_eq!(press(&mut m, Key::Enter), vec![Effect::RescueShell]);
    assert_eq!(m.screen, Screen::Menu);
    // Unlocked: the editor opens without asking again.
    update(&mut m, Msg::ShellExited(Ok(())));
    assert!(press(&mut m, Key::Char('e')).is_empty());
    assert!(matches!(m.screen, Screen::Editor { .. }), "{:?}", m.screen);
}

#[test]
fn wrong_password_is_refused_and_the_next_try_waits_for_ticks() {
    let mut m = locked_menu();
    press(&mut m, Key::Char('e'));
    type_text(&mut m, "guess");
    assert!(press(&mut m, Key::Enter).is_empty());
    assert!(matches!(m.screen, Screen::Password { .. }));
    assert_eq!(m.lock.retry_in, 2);
    // The right password, typed at once, is not even checked.
    type_text(&mut m, "pw");
    assert!(press(&mut m, Key::Enter).is_empty());
    assert!(matches!(m.screen, Screen::Password { .. }));
    // Leaving and coming back does not shorten the wait.
    press(&mut m, Key::Esc);
    assert_eq!(m.screen, Screen::Menu);
    press(&mut m, Key::Char('e'));
    type_text(&mut m, "pw");
    update(&mut m, Msg::Tick);
    assert!(press(&mut m, Key::Enter).is_empty());
    update(&mut m, Msg::Tick);
    assert!(press(&mut m, Key::Enter).is_empty());
    assert!(matches!(m.screen, Screen::Editor { .. }), "{:?}", m.screen);
}

#[test]
fn menu_keys_work_while_a_wrong_password_waits() {
    let mut m = locked_menu();
    press(&mut m, Key::Char('s'));
    type_text(&mut m, "guess");
    press(&mut m, Key::Enter);
    press(&mut m, Key::Esc);
    let before = m.selected;
    press(&mut m, Key::Down);
    assert_ne!(m.selected, before);
    assert!(!press(&mut m, Key::Enter).is_empty(), "Enter still boots");
}

#[test]
fn backspace_and_ctrl_u_edit_the_hidden_password() {
    let mut m = locked_menu();
    press(&mut m, Key::Char('s'));
    type_text(&mut m, "pwx");
    press(&mut m, Key::Backspace);
    assert_eq!(press(&mut m, Key::Enter), vec![Effect::RescueShell]);
    let mut m = locked_menu();
    press(&mut m, Key::Char('s'));
    type_text(&mut m, "junk");
    press(&mut m, Key::Ctrl('u'));
    type_text(&mut m, "pw");
    assert_eq!(press(&mut m, Key::Enter), vec![Effect::RescueShell]);
}
