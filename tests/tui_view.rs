//! Every screen of the menu, drawn into a TestBackend and compared with
//! reviewed snapshots, at 80x24, at 40x12 and in ASCII mode.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vhdboot::config::Config;
use vhdboot::model::{FsType, MountState, Snapshot, Volume, VolumeBadge};
use vhdboot::tui::demo::{DEFAULT_ENTRY, fixture_snapshot};
use vhdboot::tui::{Failure, Key, Model, Msg, update, view};

fn model(ascii: bool) -> Model {
    let config = Config {
        ascii,
        ..Config::default()
    };
    Model::new(fixture_snapshot(), &config, Some(DEFAULT_ENTRY), None).allow_quit()
}

fn draw(model: &mut Model, w: u16, h: u16) -> String {
    update(model, Msg::Resize(w, h));
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view(model, f)).unwrap();
    terminal.backend().to_string()
}

fn keys(model: &mut Model, keys: &[Key]) {
    for k in keys {
        update(model, Msg::Key(*k));
    }
}

/// The VGA console has 16 colours: named ones only, never RGB or indexed.
fn assert_16_colours(model: &Model, w: u16, h: u16) {
    use ratatui::style::Color;
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view(model, f)).unwrap();
    for cell in terminal.backend().buffer().content() {
        for c in [cell.fg, cell.bg] {
            assert!(
                !matches!(c, Color::Rgb(..) | Color::Indexed(_)),
                "{c:?} is not one of the 16 named colours"
            );
        }
    }
}

/// Draws `setup` at both sizes and in ASCII mode, one snapshot each.
fn screens(name: &str, setup: impl Fn(&mut Model)) {
    for (suffix, ascii, w, h) in [
        ("80x24", false, 80, 24),
        ("40x12", false, 40, 12),
        ("ascii_80x24", true, 80, 24),
    ] {
        let mut m = model(ascii);
        setup(&mut m);
        assert_16_colours(&m, w, h);
        insta::assert_snapshot!(format!("{name}_{suffix}"), draw(&mut m, w, h));
    }
}

#[test]
fn main_list() {
    screens("main_list", |_| {});
}

#[test]
fn main_list_with_image_that_cannot_boot_selected() {
    screens("cannot_boot_selected", |m| keys(m, &[Key::End, Key::Up]));
}

#[test]
fn countdown() {
    screens("countdown", |m| m.countdown = Some(5));
}

#[test]
fn editor() {
    screens("editor", |m| {
        keys(m, &[Key::Char('e'), Key::Char(' '), Key::Char('x')])
    });
}

#[test]
fn editor_scrolls_a_long_line() {
    screens("editor_long", |m| {
        keys(m, &[Key::Char('e')]);
        for c in " systemd.unit=rescue.target loglevel=7 console=ttyS0,115200n8".chars() {
            keys(m, &[Key::Char(c)]);
        }
    });
}

#[test]
fn help() {
    screens("help", |m| keys(m, &[Key::Char('?')]));
}

#[test]
fn log() {
    screens("log", |m| {
        update(
            m,
            Msg::Kmsg("ntfs3: nvme0n1p4: volume is dirty and \"force\" flag is not set!".into()),
        );
        keys(m, &[Key::Char('l')]);
    });
}

#[test]
fn error_modal() {
    screens("error_modal", |m| {
        update(
            m,
            Msg::BootFailed(Failure {
                what: "kexec_file_load of Arch Linux failed".into(),
                cause: "EKEYREJECTED: the target kernel is not signed for Secure Boot".into(),
                hint: "Sign the UKI with a key the firmware trusts, or turn Secure Boot off."
                    .into(),
            }),
        );
    });
}

#[test]
fn confirm_reboot() {
    screens("confirm_reboot", |m| keys(m, &[Key::Char('b')]));
}

#[test]
fn busy_booting() {
    screens("busy_booting", |m| keys(m, &[Key::Enter]));
}

fn empty_snapshot() -> Snapshot {
    Snapshot {
        volumes: vec![Volume {
            device: "/dev/sda1".into(),
            fstype: FsType::Ntfs,
            label: Some("Windows".into()),
            uuid: None,
            partuuid: None,
            size: 500 << 30,
            mount: MountState::Refused {
                reason: "volume is dirty and \"force\" flag is not set".into(),
            },
            badges: vec![VolumeBadge::Dirty, VolumeBadge::Hibernated],
            images: vec![],
        }],
        log: vec![],
        secure_boot: None,
        immutable: Default::default(),
    }
}

#[test]
fn empty_state() {
    screens("empty_state", |m| {
        update(m, Msg::Rescanned(Ok(empty_snapshot())));
        m.notice = None;
    });
}

#[test]
fn no_volumes_at_all() {
    screens("no_volumes", |m| {
        update(m, Msg::Rescanned(Ok(Snapshot::default())));
        m.notice = None;
    });
}

#[test]
fn editor_cursor_sits_after_the_text_and_stays_visible_when_scrolled() {
    let mut m = model(false);
    keys(&mut m, &[Key::Char('e')]);
    update(&mut m, Msg::Resize(40, 12));
    let mut terminal = Terminal::new(TestBackend::new(40, 12)).unwrap();
    terminal.draw(|f| view(&m, f)).unwrap();
    // The editor's inner line is row 9 (border at 8); the line is longer
    // than the 38 inner columns, so the cursor sits in the last column.
    terminal.backend_mut().assert_cursor_position((38, 9));
    keys(&mut m, &[Key::Home]);
    terminal.draw(|f| view(&m, f)).unwrap();
    terminal.backend_mut().assert_cursor_position((1, 9));
}

#[test]
fn serial_console_fallback_size_draws_the_menu() {
    // A console that reports 0x0 gets 80x24 (app::FALLBACK_SIZE); drawing at
    // that size must show the list, not an empty screen.
    let (w, h) = vhdboot::tui::app::FALLBACK_SIZE;
    let text = draw(&mut model(false), w, h);
    assert!(text.contains("Arch Linux 6.12.4-arch1-1"), "{text}");
}

#[test]
fn narrow_but_tall_terminal_puts_details_below_the_list() {
    let mut m = model(false);
    insta::assert_snapshot!("main_list_40x30", draw(&mut m, 40, 30));
}

#[test]
fn list_scrolls_to_keep_the_selection_visible() {
    screens("scrolled_to_last", |m| keys(m, &[Key::End]));
}

#[test]
fn long_list_scrolls_to_its_last_entry() {
    let mut snap = fixture_snapshot();
    let template = snap.volumes[0].images[1].clone();
    snap.volumes[1].images = (0..200)
        .map(|i| {
            let mut image = template.clone();
            image.path = format!("/vhd/image-{i:03}.vhd");
            image
        })
        .collect();
    let mut m = Model::new(snap, &Config::default(), Some(DEFAULT_ENTRY), None);
    keys(&mut m, &[Key::End]);
    let text = draw(&mut m, 80, 24);
    assert!(text.contains("image-199.vhd"), "{text}");
    assert!(!text.contains("image-100.vhd"), "{text}");
}

#[test]
fn tiny_terminals_draw_every_screen_without_panicking() {
    let setups: [&dyn Fn(&mut Model); 7] = [
        &|_| {},
        &|m| keys(m, &[Key::Char('e')]),
        &|m| keys(m, &[Key::Char('?')]),
        &|m| keys(m, &[Key::Char('l')]),
        &|m| keys(m, &[Key::Char('b')]),
        &|m| {
            update(
                m,
                Msg::BootFailed(Failure {
                    what: "w".repeat(300),
                    cause: "c ".repeat(200),
                    hint: "h".into(),
                }),
            );
        },
        &|m| {
            update(m, Msg::Rescanned(Ok(Snapshot::default())));
        },
    ];
    for (w, h) in [
        (1, 1),
        (2, 2),
        (10, 3),
        (20, 5),
        (30, 8),
        (200, 4),
        (3, 100),
    ] {
        for setup in setups {
            for ascii in [false, true] {
                let mut m = model(ascii);
                m.countdown = Some(3);
                setup(&mut m);
                let text = draw(&mut m, w, h);
                assert_eq!(text.lines().count(), usize::from(h), "{w}x{h}: {text}");
            }
        }
    }
}

#[test]
fn secure_boot_shows_in_the_title_bar_only_when_on() {
    let mut m = model(false);
    assert!(!draw(&mut m, 80, 24).contains("Secure Boot"));
    m.snapshot.secure_boot = Some(true);
    let screen = draw(&mut m, 80, 24);
    let first = screen.lines().next().unwrap_or_default();
    assert!(
        first.contains("[Secure Boot: signed kernels only]"),
        "{screen}"
    );
}

#[test]
fn entry_on_a_hibernated_volume_is_drawn_with_the_judges_reason() {
    let mut snap = fixture_snapshot();
    snap.volumes[1].badges.push(VolumeBadge::Hibernated);
    let mut m = Model::new(snap, &Config::default(), Some(DEFAULT_ENTRY), None);
    keys(&mut m, &[Key::End]);
    let text = draw(&mut m, 80, 24);
    assert!(text.contains("ubuntu.vhd host volume hibernated"), "{text}");
    insta::assert_snapshot!("hibernated_host_80x24", text);
}

#[test]
fn immutable_boot_of_the_selected_image_shows_on_the_status_line() {
    let mut m = model(false);
    assert!(!draw(&mut m, 80, 24).contains("Immutable"));
    m.snapshot.immutable.ram_limit = Some(512 << 20);
    keys(&mut m, &[Key::Char('i')]);
    let screen = draw(&mut m, 100, 24);
    assert!(
        screen.contains("Immutable: changes kept in RAM (up to 512 MiB), lost at reboot"),
        "{screen}"
    );
    keys(&mut m, &[Key::Char('i')]);
    assert!(!draw(&mut m, 100, 24).contains("Immutable"));
}

#[test]
fn trial_boot_and_pending_trial_changes_are_drawn() {
    let mut m = model(false);
    m.snapshot.immutable.trial_size = Some(256 << 20);
    keys(&mut m, &[Key::Char('t')]);
    let screen = draw(&mut m, 100, 24);
    assert!(
        screen.contains(".trial (up to 256 MiB); t: normal boot"),
        "{screen}"
    );
    keys(&mut m, &[Key::Char('t')]);
    assert!(!draw(&mut m, 100, 24).contains("Trial:"));
    for v in &mut m.snapshot.volumes {
        for i in &mut v.images {
            i.trial = Some(vhdboot::trial::PendingTrial {
                size: 300 << 20,
                merging: false,
            });
        }
    }
    let screen = draw(&mut m, 100, 24);
    assert!(screen.contains("trial changes (300 MiB)"), "{screen}");
    insta::assert_snapshot!("pending_trial_100x24", screen);
}

#[test]
fn the_trial_questions_say_what_is_written_and_a_merge_shows_its_progress() {
    let mut m = model(false);
    for v in &mut m.snapshot.volumes {
        for i in &mut v.images {
            i.trial = Some(vhdboot::trial::PendingTrial {
                size: 300 << 20,
                merging: false,
            });
        }
    }
    keys(&mut m, &[Key::Char('m')]);
    let screen = draw(&mut m, 100, 24);
    assert!(
        screen.contains("Keep the trial changes: merge them into arch.vhd?"),
        "{screen}"
    );
    assert!(
        screen.contains("mounted read-write while the merge runs"),
        "{screen}"
    );
    keys(&mut m, &[Key::Char('n'), Key::Char('x')]);
    let screen = draw(&mut m, 100, 24);
    assert!(
        screen.contains("Discard the trial changes of arch.vhd?"),
        "{screen}"
    );
    assert!(screen.contains("arch.vhd itself is not"), "{screen}");
    keys(&mut m, &[Key::Char('n'), Key::Char('m'), Key::Char('y')]);
    vhdboot::tui::update(
        &mut m,
        vhdboot::tui::Msg::MergeProgress(Ok(vhdboot::trial::MergeStatus {
            allocated: 2112,
            total: 65536,
            metadata: 16,
        })),
    );
    let screen = draw(&mut m, 100, 24);
    assert!(
        screen.contains("Merging the trial changes into arch.vhd: 0% (1 MiB left)"),
        "{screen}"
    );
}

/// Locks `m` with the password "pw".
fn lock_with_password(m: &mut Model) {
    let hash = vhdboot::password::hash("pw", &[7; 12]).unwrap_or_default();
    m.lock.password = Some(vhdboot::password::Password::from_setting(&hash));
}

#[test]
fn password_prompt_shows_bullets_never_the_password() {
    screens("password_prompt", |m| {
        lock_with_password(m);
        keys(m, &[Key::Char('s'), Key::Char('h'), Key::Char('i')]);
    });
    let mut m = model(false);
    lock_with_password(&mut m);
    keys(&mut m, &[Key::Char('e')]);
    for c in "secret".chars() {
        keys(&mut m, &[Key::Char(c)]);
    }
    let text = draw(&mut m, 80, 24);
    assert!(!text.contains("secret"), "{text}");
    assert!(
        text.contains("Password: \u{2022}\u{2022}\u{2022}\u{2022}\u{2022}\u{2022}"),
        "{text}"
    );
    assert!(
        text.contains("Type the password to open the command-line editor."),
        "{text}"
    );
}

#[test]
fn wrong_password_shows_the_wait() {
    screens("password_wrong", |m| {
        lock_with_password(m);
        keys(m, &[Key::Char('e'), Key::Char('x'), Key::Enter]);
    });
}

#[test]
fn editor_off_says_so_and_leaves_e_off_the_key_line() {
    let mut m = model(false);
    m.lock.editor = false;
    keys(&mut m, &[Key::Char('e')]);
    insta::assert_snapshot!("editor_off_80x24", draw(&mut m, 80, 24));
}
