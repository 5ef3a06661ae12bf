//! The rescue shell on PID 1's own console: it runs as the terminal's
//! foreground group inside PID 1's session, and when it exits the console
//! is handed back with PID 1's open files still reading input. The test
//! re-runs itself as a session leader with a pseudo-terminal as its
//! controlling terminal, which is the state PID 1 is in.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test binary: a failed step should stop the test with its message"
)]

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::Command;

use vhdboot::sys::console;
use vhdboot::sys::pid1::run_with_controlling_tty;

const INNER: &str = "VHDBOOT_TEST_FOREGROUND_INNER";
const NAME: &str = "shell_takes_the_foreground_in_our_session_and_gives_it_back";

/// Exits 0 when the shell is not a session leader, is in the session of
/// its parent, is the terminal's foreground group and does not ignore
/// SIGINT; else a code saying which check failed. Fields of
/// /proc/PID/stat: 1 pid, 5 pgrp, 6 session, 8 tpgid.
const CHECK: &str = r#"
set -- $(cat /proc/$$/stat)
[ "$1" != "$6" ] || exit 3
[ "$6" = "$EXPECT_SID" ] || exit 4
[ "$5" = "$8" ] || exit 5
ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status)
[ $(( 0x$ign & 2 )) = 0 ] || exit 6
exit 0
"#;

#[test]
fn shell_takes_the_foreground_in_our_session_and_gives_it_back() {
    if std::env::var_os(INNER).is_some() {
        inner();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the session-leader run failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PID 1's situation: a session leader whose controlling terminal is the
/// console, with the background-terminal signals ignored.
fn inner() {
    nix::unistd::setsid().unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let tty = nix::unistd::ttyname(&pty.slave).unwrap();
    // SAFETY: TIOCSCTTY takes an int; the slave fd is open for the call.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&pty.slave),
            libc::TIOCSCTTY,
            0,
        )
    };
    assert_eq!(rc, 0, "TIOCSCTTY on {}", tty.display());
    console::ignore_background_tty_signals();
    // PID 1 never receives SIGHUP it has no handler for; this process
    // would, when the terminal closes at the end of the test.
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    // The menu's input file, opened before the shell runs, as PID 1's is.
    let mut menu_input = OpenOptions::new().read(true).open(&tty).unwrap();
    assert!(console::is_our_controlling_tty(menu_input.as_fd()));

    let sid = nix::unistd::getsid(None).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", CHECK]).env("EXPECT_SID", sid.to_string());
    let status = run_with_controlling_tty(cmd, &tty).unwrap();
    let what = match status.code() {
        Some(3) => "the shell leads a session of its own",
        Some(4) => "the shell is not in our session",
        Some(5) => "the shell is not the foreground process group",
        Some(6) => "SIGINT still ignored",
        _ => "",
    };
    assert_eq!(status.code(), Some(0), "{what} ({status})");

    assert_eq!(
        nix::unistd::tcgetpgrp(menu_input.as_fd()).unwrap(),
        nix::unistd::getpgrp(),
        "the foreground was not handed back"
    );
    // A key typed now must reach the file the menu opened before the shell
    // ran: a hung-up terminal would report end-of-file or nothing at all.
    let mut master = std::fs::File::from(pty.master);
    master.write_all(b"j\n").unwrap();
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&menu_input),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the call's duration; 5 s at most.
    let ready = unsafe { libc::poll(&mut pfd, 1, 5000) };
    assert_eq!(ready, 1, "no input arrived after the shell exited");
    let mut buf = [0u8; 8];
    let n = menu_input.read(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"j\n",
        "the menu's terminal file reads {:?}",
        &buf[..n]
    );
}
