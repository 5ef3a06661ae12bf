//! The rescue shell's terminal setup, run on a pseudo-terminal instead of
//! the real console. One test in this binary: it changes the process-wide
//! disposition of SIGINT.

use std::process::Command;

use nix::sys::signal::{SigHandler, Signal, signal};
use vhdboot::sys::pid1::run_with_controlling_tty;

/// Exits 0 when the shell leads its own session, has a controlling tty,
/// is in the foreground, and does not ignore SIGINT; else a code saying
/// which check failed. Fields of /proc/PID/stat: 1 pid, 5 pgrp,
/// 6 session, 7 tty_nr, 8 tpgid.
const CHECK: &str = r#"
set -- $(cat /proc/$$/stat)
[ "$1" = "$6" ] || exit 3
[ "$7" != 0 ] || exit 4
[ "$5" = "$8" ] || exit 5
ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status)
[ $(( 0x$ign & 2 )) = 0 ] || exit 6
[ -t 0 ] && [ -t 1 ] && [ -t 2 ] || exit 7
exit 0
"#;

#[test]
fn shell_gets_its_own_session_the_tty_and_default_signals() {
    let pty = nix::pty::openpty(None, None).unwrap();
    let tty = nix::unistd::ttyname(&pty.slave).unwrap();
    // PID 1 may run with SIGINT ignored; the child must not inherit that.
    // SAFETY: SIG_IGN installs no handler code; no other test in this
    // binary depends on SIGINT.
    unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) }.unwrap();

    let mut cmd = Command::new("sh");
    cmd.args(["-c", CHECK]);
    let status = run_with_controlling_tty(cmd, &tty).unwrap();
    let what = match status.code() {
        Some(3) => "not a session leader",
        Some(4) => "no controlling tty",
        Some(5) => "not the foreground process group",
        Some(6) => "SIGINT still ignored",
        Some(7) => "stdio is not the tty",
        _ => "",
    };
    assert_eq!(status.code(), Some(0), "{what} ({status})");

    // The master stays open until here so the slave never hangs up.
    drop(pty.master);
}
