//! The rescue shells that open without the menu (after a panic of PID 1,
//! and when the menu itself fails) ask for vhdboot.conf's password first
//! when one is set, on the plain console, as the menu's `s` does
//! (tui::lock). Without a password they open as before.
//!
//! Wrong passwords wait 2, 4, 8 ... 60 s, as in the menu, and PID 1 reaps
//! orphans while it waits; a shell that exits brings the prompt back, so
//! PID 1 never exits and the console never stays without a reader.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use vhdboot::config::Config;
use vhdboot::password::Password;
use vhdboot::sys::{console, pid1};

/// The longest line read as a password; the rest of a longer one is
/// read and dropped, so it cannot open the lock by its start.
const LINE_MAX: usize = 1024;

/// What an empty line at the prompt does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnEmptyLine {
    /// Leaves the prompt without a shell (the menu is tried again).
    GiveUp,
    /// Asks again (after a panic there is no menu to go back to).
    AskAgain,
}

/// Asks for the password on the console until the right one is typed,
/// then runs the rescue shell once and returns when it exits. Returns
/// early, without a shell, on an empty line when `on_empty` says so.
pub fn shell_behind_password(password: &Password, on_empty: OnEmptyLine) {
    let mut wait = Duration::ZERO;
    loop {
        pid1::reap_zombies();
        let typed = match read_secret("vhdboot: the rescue shell is locked. Password: ") {
            Ok(t) => t,
            Err(e) => {
                // No console to ask on: nothing can be typed either, so
                // wait (reaping) rather than spin, and never open the shell.
                let _ = vhdboot::sys::kmsg::kmsg_write(&format!("locked shell: {e}"));
                sleep_reaping(Duration::from_secs(10));
                continue;
            }
        };
        if typed.as_deref() == Some("") && on_empty == OnEmptyLine::GiveUp {
            say("vhdboot: no shell; back to the menu.\r\n");
            return;
        }
        if typed.is_some_and(|t| password.matches(&t)) {
            if let Err(e) = pid1::run_rescue_shell() {
                say(&format!("vhdboot: rescue shell: {e}\r\n"));
            }
            return;
        }
        wait = (wait * 2).clamp(Duration::from_secs(2), Duration::from_secs(60));
        say(&format!(
            "vhdboot: wrong password; try again in {} s.\r\n",
            wait.as_secs()
        ));
        sleep_reaping(wait);
    }
}

/// PID 1 after a panic, when a password is set (pid1::install_panic_hook
/// execs `/init --locked-shell`): a fresh process that reads the
/// configuration again and keeps the shell behind the password forever.
pub fn locked_shell_forever() -> ! {
    // A panic here must not end in the unlocked shell loop.
    std::panic::set_hook(Box::new(|info| {
        let _ = vhdboot::sys::kmsg::kmsg_write(&format!("locked shell: internal error: {info}"));
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }));
    let _ = pid1::mount_pseudo_filesystems();
    let _ = console::acquire_controlling_tty();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let conf = std::fs::read_to_string(vhdboot::config::CONF_PATH).ok();
    let (config, _) = Config::from_sources(conf.as_deref(), &cmdline);
    let Some(password) = config.password else {
        // The password is gone from both sources (only a changed
        // initramfs could do that): the shell of an unlocked system.
        pid1::exec_shell_forever();
    };
    loop {
        shell_behind_password(&password, OnEmptyLine::AskAgain);
        say("vhdboot: type reboot -f in the shell to restart.\r\n");
    }
}

fn say(text: &str) {
    if let Ok(mut c) = OpenOptions::new()
        .write(true)
        .open(console::console_device())
    {
        let _ = c.write_all(text.as_bytes());
    }
}

fn sleep_reaping(total: Duration) {
    let end = Instant::now() + total;
    while Instant::now() < end {
        pid1::reap_zombies();
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prints `prompt` and reads one line from the console with the echo off;
/// None for a line longer than LINE_MAX, which counts as a wrong password.
fn read_secret(prompt: &str) -> Result<Option<String>, String> {
    let device = console::console_device();
    let mut tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&device)
        .map_err(|e| format!("opening {}: {e}", device.display()))?;
    let reader = tty
        .try_clone()
        .map_err(|e| format!("{}: {e}", device.display()))?;
    let _quiet = console::echo_off(reader.as_fd()).map_err(|e| e.to_string())?;
    tty.write_all(prompt.as_bytes())
        .map_err(|e| format!("writing to {}: {e}", device.display()))?;
    let mut line = Vec::new();
    let mut too_long = false;
    let mut byte = [0u8; 1];
    let mut reader = &reader;
    loop {
        match reader.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' || byte[0] == b'\r' => break,
            Ok(_) if line.len() < LINE_MAX => line.push(byte[0]),
            // Too long: the rest is read and dropped, and nothing matches.
            Ok(_) => too_long = true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading {}: {e}", device.display())),
        }
    }
    // The line discipline echoes the newline itself (ECHONL, echo_off).
    Ok((!too_long).then(|| String::from_utf8_lossy(&line).into_owned()))
}
