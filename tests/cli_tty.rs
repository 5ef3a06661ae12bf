//! CLI commands that behave differently on a terminal: `vhdboot passwd`
//! (asks twice, echo off) and `vhdboot convert` (a progress bar), each run
//! in a detached tmux pane and, for contrast, with pipes.
#![expect(
    clippy::unwrap_used,
    reason = "test harness: a tmux or tool call that cannot run must fail the test"
)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vhdboot");

/// A command running in a tmux pane of its own server.
struct Pane {
    socket: String,
}

impl Pane {
    fn start(name: &str, command: &str) -> Pane {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "tmux is not installed; these tests need it (apt-get install tmux)"
        );
        let p = Pane {
            socket: format!("vhdboot-cli-{}-{name}", std::process::id()),
        };
        // The trailing echo and sleep keep the pane alive to be read.
        let script = format!("{command}; echo EXITED=$?; sleep 60");
        let status = Command::new("tmux")
            .args(["-L", &p.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "200", "-y", "30", "sh", "-c", &script])
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        p
    }

    fn send(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
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

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// `openssl passwd -6` recomputes `hash` from its own salt and `password`:
/// glibc's algorithm, checked by a tool that is not ours.
fn openssl_agrees(hash: &str, password: &str) {
    let fields: Vec<&str> = hash.split('$').collect();
    // "", "6", "rounds=5000", salt, digest
    assert_eq!(fields.len(), 5, "{hash}");
    assert_eq!(fields[2], "rounds=5000", "{hash}");
    let out = Command::new("openssl")
        .args([
            "passwd",
            "-6",
            "-salt",
            &format!("rounds=5000${}", fields[3]),
        ])
        .arg(password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hash);
}

#[test]
fn passwd_reads_stdin_when_it_is_no_terminal() {
    let mut child = Command::new(BIN)
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout).unwrap();
    openssl_agrees(hash.trim(), "correct horse");
}

#[test]
fn passwd_refuses_an_empty_password() {
    let out = Command::new(BIN)
        .arg("passwd")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the password is empty"));
}

#[test]
fn passwd_on_a_terminal_asks_twice_and_never_echoes() {
    let pane = Pane::start("passwd", &format!("{BIN} passwd"));
    pane.wait_for("New password:");
    pane.send(&["-l", "s3cret-word"]);
    pane.send(&["Enter"]);
    pane.wait_for("The same again:");
    pane.send(&["-l", "s3cret-word"]);
    pane.send(&["Enter"]);
    let screen = pane.wait_for("EXITED=");
    assert!(screen.contains("EXITED=0"), "{screen}");
    assert!(
        !screen.contains("s3cret"),
        "the password was echoed:\n{screen}"
    );
    let hash = screen
        .lines()
        .find(|l| l.starts_with("$6$"))
        .unwrap_or_else(|| unreachable!("no hash printed:\n{screen}"));
    openssl_agrees(hash.trim(), "s3cret-word");
}

#[test]
fn passwd_on_a_terminal_refuses_two_different_passwords() {
    let pane = Pane::start("passwd-differ", &format!("{BIN} passwd"));
    pane.wait_for("New password:");
    pane.send(&["-l", "one"]);
    pane.send(&["Enter"]);
    pane.wait_for("The same again:");
    pane.send(&["-l", "two"]);
    pane.send(&["Enter"]);
    let screen = pane.wait_for("EXITED=");
    assert!(screen.contains("the two passwords differ"), "{screen}");
    assert!(screen.contains("EXITED=1"), "{screen}");
    assert!(!screen.contains("$6$"), "{screen}");
}

#[test]
fn convert_on_a_terminal_draws_a_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.vhd");
    support::disk::run(
        Command::new(support::disk::tool("qemu-img"))
            .args(["create", "-q", "-f", "vpc", "-o", "subformat=dynamic"])
            .arg(&input)
            .arg("64M"),
    );
    support::disk::run(
        Command::new(support::disk::tool("qemu-io"))
            .args(["-f", "vpc", "-c", "write -P 0x5a 0 8M"])
            .arg(&input),
    );
    let output = dir.path().join("out.vhd");
    let pane = Pane::start(
        "convert",
        &format!("{BIN} convert {} {}", input.display(), output.display()),
    );
    let screen = pane.wait_for("EXITED=");
    assert!(screen.contains("EXITED=0"), "{screen}");
    // indicatif's finished bar: full, with the byte counts.
    assert!(
        screen.contains("\u{2588}\u{2588}\u{2588}\u{2588}"),
        "{screen}"
    );
    let bar = screen
        .lines()
        .find(|l| l.contains('\u{2588}'))
        .unwrap_or_default();
    // "████ 64.02 MiB/64.02 MiB 1 GiB/s eta 0s": done equals total.
    let (before, after) = bar.split_once(" MiB/").unwrap_or_default();
    let done = before.rsplit(' ').next().unwrap_or_default();
    let total = after.split(' ').next().unwrap_or_default();
    assert!(!done.is_empty() && done == total, "{bar}");
    assert!(
        !screen.contains("convert: 10%"),
        "plain lines on a terminal:\n{screen}"
    );
}
