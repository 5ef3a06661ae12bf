//! The real binary in a real terminal: `vhdboot menu --demo` inside a
//! detached tmux session of a fixed size, driven with send-keys and read
//! with capture-pane. Each test has its own tmux server socket, so tests
//! run in parallel.

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

#[expect(
    clippy::unwrap_used,
    reason = "test harness: a tmux call that cannot run must fail the test"
)]
impl Tmux {
    /// Starts the demo with `args` in a `w`x`h` session.
    fn start(name: &str, w: u16, h: u16, args: &str) -> Tmux {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "tmux is not installed; the tmux tests need it (apt-get install tmux)"
        );
        let t = Tmux {
            socket: format!("vhdboot-tui-{}-{name}", std::process::id()),
        };
        let bin = env!("CARGO_BIN_EXE_vhdboot");
        // The trailing echo and sleep keep the pane alive after the demo
        // exits, so the exit status can be read.
        let script =
            format!("SHELL=/bin/sh {bin} menu --demo {args}; echo DEMO_EXITED=$?; sleep 60");
        let status = Command::new("tmux")
            .args(["-L", &t.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &w.to_string(), "-y", &h.to_string()])
            .args(["sh", "-c", &script])
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        t
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let status = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", k])
                .status()
                .unwrap();
            assert!(status.success(), "tmux send-keys {k} failed");
            // The menu reads one key event at a time; give it a moment so a
            // key is not taken for part of an escape sequence.
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    fn resize(&self, w: u16, h: u16) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "resize-window", "-x", &w.to_string()])
            .args(["-y", &h.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "tmux resize-window failed");
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen contains `text`, and returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {text:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn demo_draws_the_menu_and_q_quits() {
    let t = Tmux::start("quit", 80, 24, "--timeout -1");
    let screen = t.wait_for("Enter boot");
    assert!(screen.contains("Arch Linux 6.12.4-arch1-1"), "{screen}");
    assert!(screen.contains("Details"), "{screen}");
    assert!(screen.contains("not mounted: volume is dirty"), "{screen}");
    t.keys(&["q"]);
    t.wait_for("DEMO_EXITED=0");
}

#[test]
fn countdown_shows_and_any_key_stops_it() {
    let t = Tmux::start("countdown", 80, 24, "--timeout 30");
    t.wait_for("press any key to stop");
    t.keys(&["Down"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.screen().contains("press any key to stop") {
        assert!(Instant::now() < deadline, "the countdown did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The key only stopped the countdown: the default is still selected.
    let screen = t.screen();
    assert!(screen.contains("Arch Linux (default)"), "{screen}");
}

#[test]
fn editor_opens_takes_text_and_esc_returns_to_the_menu() {
    let t = Tmux::start("editor", 80, 24, "--timeout -1");
    t.wait_for("Enter boot");
    t.keys(&["Down", "e"]);
    t.wait_for("Command line for Arch Linux (LTS)");
    t.keys(&["C-w", " single", "Home"]);
    let screen = t.wait_for("3d6f0e8a1b21  single");
    assert!(screen.contains("^W del word"), "{screen}");
    t.keys(&["Escape"]);
    t.wait_for("e edit");
    assert!(!t.screen().contains("Command line for"), "{}", t.screen());
}

#[test]
fn enter_shows_the_outcome_in_a_modal_over_the_menu() {
    let t = Tmux::start("enter", 80, 24, "--timeout -1");
    t.wait_for("Enter boot");
    t.keys(&["Enter"]);
    let screen = t.wait_for("Press any key to return to the menu.");
    assert!(screen.contains("Arch Linux"), "{screen}");
    t.keys(&["x"]);
    t.wait_for("Details");
    assert!(!t.screen().contains("Press any key"), "{}", t.screen());
}

#[test]
fn enter_shows_the_demo_boot_plan_with_the_handoff() {
    let t = Tmux::start("plan", 100, 30, "--timeout -1");
    t.wait_for("Enter boot");
    t.keys(&["Enter"]);
    let screen = t.wait_for("demo mode: would kexec");
    assert!(screen.contains("rdinit=/vhdboot/stage2"), "{screen}");
    assert!(screen.contains("vhdboot.image="), "{screen}");
}

#[test]
fn narrow_terminal_shows_the_list_without_details() {
    let t = Tmux::start("narrow", 40, 12, "--timeout -1");
    let screen = t.wait_for("Enter boot");
    assert!(screen.contains("Arch Linux"), "{screen}");
    assert!(!screen.contains("Details"), "{screen}");
}

#[test]
fn ascii_mode_draws_no_box_characters() {
    let t = Tmux::start("ascii", 80, 24, "--timeout -1 --ascii");
    let screen = t.wait_for("Enter boot");
    assert!(screen.contains("+ Boot entries -"), "{screen}");
    assert!(screen.is_ascii(), "{screen}");
}

#[test]
fn fixed_size_flags_draw_at_that_size() {
    let t = Tmux::start("fixed", 100, 30, "--timeout -1 --columns 50 --lines 14");
    let screen = t.wait_for("Enter boot");
    let lines: Vec<&str> = screen.lines().collect();
    let last_drawn = lines.iter().rposition(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(last_drawn, 13, "{screen}");
    assert!(
        screen.lines().all(|l| l.trim_end().chars().count() <= 50),
        "{screen}"
    );
}

#[test]
fn help_screen_opens_and_closes() {
    let t = Tmux::start("help", 80, 24, "--timeout -1");
    t.wait_for("Enter boot");
    t.keys(&["?"]);
    t.wait_for("edit the kernel command line");
    t.keys(&["Escape"]);
    t.wait_for("Enter boot");
}

#[test]
fn rescue_shell_runs_and_exit_returns_to_the_menu() {
    let t = Tmux::start("shell", 80, 24, "--timeout -1");
    t.wait_for("Enter boot");
    t.keys(&["s"]);
    t.wait_for("type exit to return to the menu");
    t.keys(&["echo SHELL_$((40+2))", "Enter"]);
    t.wait_for("SHELL_42");
    t.keys(&["exit", "Enter"]);
    let screen = t.wait_for("The rescue shell exited; back in the menu.");
    assert!(screen.contains("Boot entries"), "{screen}");
    assert!(
        !screen.contains("SHELL_42"),
        "the menu repainted over the shell: {screen}"
    );
}

#[test]
fn timeout_zero_boots_first_and_shows_the_menu_only_with_the_reason() {
    let t = Tmux::start("immediate", 80, 24, "--timeout 0");
    let screen = t.wait_for("Press any key to return to the menu.");
    assert!(screen.contains("Arch Linux"), "{screen}");
    assert!(
        !screen.contains("press any key to stop"),
        "no countdown: {screen}"
    );
}

#[test]
fn resizing_the_terminal_redraws_at_the_new_size() {
    let t = Tmux::start("resize", 80, 24, "--timeout -1");
    t.wait_for("Details");
    t.resize(40, 12);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.screen().contains("Details") {
        assert!(Instant::now() < deadline, "still wide: {}", t.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
    let screen = t.wait_for("Enter boot e edit");
    assert!(screen.contains("Arch Linux"), "{screen}");
    assert!(screen.lines().all(|l| l.chars().count() <= 40), "{screen}");
    t.resize(100, 30);
    t.wait_for("Details");
}
