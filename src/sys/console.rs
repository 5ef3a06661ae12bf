//! The console as PID 1 finds it: no controlling tty, often a serial line
//! that reports a 0x0 size, and no TERM (lessons.md, "Console as PID 1").

use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// The size used when the console reports none (a serial line says 0x0).
pub const FALLBACK_SIZE: (u16, u16) = (80, 24);

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("opening console {path} failed: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("TIOCSCTTY on {path} failed: {source}")]
    SetControllingTty {
        path: PathBuf,
        source: nix::errno::Errno,
    },
    #[error(
        "could not take the console's foreground back after the rescue shell: {0}; press \
         Ctrl-L, or reboot if the menu does not react to keys"
    )]
    Foreground(nix::errno::Errno),
    #[error("dup2 of {path} onto fd {fd} failed: {source}")]
    Dup {
        path: PathBuf,
        fd: i32,
        source: nix::errno::Errno,
    },
    #[error("turning off the terminal's echo (tcsetattr) failed: {0}")]
    Echo(nix::errno::Errno),
    #[error("TIOCSWINSZ ({cols}x{rows}) failed: {source}")]
    SetSize {
        cols: u16,
        rows: u16,
        source: nix::errno::Errno,
    },
}

/// The tty behind /dev/console: the last entry of
/// /sys/class/tty/console/active (the kernel's preferred console, as
/// busybox's cttyhack picks it), else /dev/console itself. Job control
/// works best on the real device.
pub fn console_device() -> PathBuf {
    console_device_in(Path::new("/sys"), Path::new("/dev"))
}

/// As [`console_device`] with sysfs and /dev under given roots.
pub fn console_device_in(sys_root: &Path, dev_root: &Path) -> PathBuf {
    let active = fs::read_to_string(sys_root.join("class/tty/console/active")).unwrap_or_default();
    active
        .split_whitespace()
        .last()
        .map(|name| dev_root.join(name))
        .filter(|path| path.exists())
        .unwrap_or_else(|| dev_root.join("console"))
}

nix::ioctl_write_int_bad!(ioctl_tiocsctty, libc::TIOCSCTTY);
nix::ioctl_read_bad!(ioctl_tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(ioctl_tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// Makes the console PID 1's controlling terminal and its stdin, stdout
/// and stderr: setsid (EPERM when we already lead a session is fine), then
/// TIOCSCTTY, stealing the tty from a session that still holds it (the
/// rescue shell's, after it exits). Also sets TERM=linux when unset.
///
/// Call it before any thread starts: it changes the environment.
pub fn acquire_controlling_tty() -> Result<PathBuf, ConsoleError> {
    let path = console_device();
    let _ = nix::unistd::setsid();
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| ConsoleError::Open {
            path: path.clone(),
            source,
        })?;
    // SAFETY: TIOCSCTTY takes an int (1 = steal from another session,
    // allowed for root); `tty` is an open tty fd for the call's duration.
    unsafe { ioctl_tiocsctty(tty.as_raw_fd(), 1) }.map_err(|source| {
        ConsoleError::SetControllingTty {
            path: path.clone(),
            source,
        }
    })?;
    let dups: [(i32, nix::Result<()>); 3] = [
        (0, nix::unistd::dup2_stdin(&tty)),
        (1, nix::unistd::dup2_stdout(&tty)),
        (2, nix::unistd::dup2_stderr(&tty)),
    ];
    for (fd, result) in dups {
        result.map_err(|source| ConsoleError::Dup {
            path: path.clone(),
            fd,
            source,
        })?;
    }
    ignore_background_tty_signals();
    set_default_term();
    Ok(path)
}

/// Lets PID 1 take the terminal's foreground back from a background
/// process group. Without this, tcsetpgrp from the background raises
/// SIGTTOU; PID 1 cannot receive a signal it has no handler for, so the
/// kernel would restart the call forever, or refuse it with EIO because
/// PID 1's group has no parent in its session (an orphaned group).
pub fn ignore_background_tty_signals() {
    for sig in [
        nix::sys::signal::Signal::SIGTTOU,
        nix::sys::signal::Signal::SIGTTIN,
    ] {
        // SAFETY: SIG_IGN installs no handler code, so nothing can run in
        // signal context; children get SIG_DFL back before they exec
        // (`child_join_foreground`, `child_take_console_as_ctty`).
        let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) };
    }
}

/// True when `fd` is a terminal whose session is this process's session,
/// i.e. our controlling terminal.
pub fn is_our_controlling_tty(fd: BorrowedFd<'_>) -> bool {
    match (nix::sys::termios::tcgetsid(fd), nix::unistd::getsid(None)) {
        (Ok(tty_session), Ok(ours)) => tty_session == ours,
        _ => false,
    }
}

/// Makes this process's group the foreground of the terminal `fd` again,
/// after a child that held it has exited.
pub fn take_foreground(fd: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    nix::unistd::tcsetpgrp(fd, nix::unistd::getpgrp()).map_err(ConsoleError::Foreground)
}

/// Sets TERM=linux when it is unset (the kernel starts init without it).
/// Call before any thread starts.
pub fn set_default_term() {
    if std::env::var_os("TERM").is_none() {
        // SAFETY: set_var is unsound only while other threads read the
        // environment; PID 1 calls this during early setup, before the
        // menu or any helper thread starts.
        unsafe { std::env::set_var("TERM", "linux") };
    }
}

/// In a forked child before exec: become a process group of its own in
/// the caller's session and the foreground of the terminal on fd 0, then
/// reset the signals PID 1 ignores to their defaults. The child does not
/// start a session: when a session leader exits, the kernel hangs up its
/// terminal, and every open file of the console, PID 1's included, then
/// reads nothing. The menu's input was registered on those files, so after
/// the shell it took no key (issue 11). Only async-signal-safe calls;
/// errors are ignored because the shell still runs without job control.
pub fn child_join_foreground() {
    // SAFETY: setpgid, getpid, tcsetpgrp and signal are async-signal-safe
    // and take no pointers; fd 0 is the console the caller dup'ed there.
    // SIGTTOU is still ignored here (inherited from PID 1), which is what
    // lets a background group call tcsetpgrp; it is reset afterwards.
    unsafe {
        libc::setpgid(0, 0);
        libc::tcsetpgrp(0, libc::getpid());
        reset_signals_to_default();
    }
}

/// Signals PID 1 may ignore, which a shell must get back at their default.
///
/// # Safety
/// Call only in a forked child before exec, or where no other code relies
/// on these dispositions.
unsafe fn reset_signals_to_default() {
    for sig in [
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGCHLD,
        libc::SIGPIPE,
    ] {
        // SAFETY: SIG_DFL installs no handler; signal is async-signal-safe.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// In a forked child before exec: start a session, take fd 0 as the
/// controlling tty, and reset the signals PID 1 may ignore to their
/// defaults so that Ctrl-C and Ctrl-Z work in the shell. Only
/// async-signal-safe calls; errors are ignored because the shell still
/// runs without job control.
pub fn child_take_console_as_ctty() {
    // SAFETY: setsid, ioctl and signal are async-signal-safe and take no
    // pointers; fd 0 is the console the caller dup'ed there.
    unsafe {
        libc::setsid();
        libc::ioctl(0, libc::TIOCSCTTY, 1 as libc::c_int);
        reset_signals_to_default();
    }
}

/// The size the tty reports as (columns, rows), or None when `fd` is not
/// a tty. A serial console reports Some((0, 0)).
pub fn terminal_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` to the pointer, which
    // points to a live local of that type.
    unsafe { ioctl_tiocgwinsz(fd.as_raw_fd(), &mut ws) }.ok()?;
    Some((ws.ws_col, ws.ws_row))
}

/// Sets the tty's size (TIOCSWINSZ), so that crossterm's own `size()`
/// sees a sane value and never falls back to running `tput`.
pub fn set_terminal_size(fd: BorrowedFd<'_>, cols: u16, rows: u16) -> Result<(), ConsoleError> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointer, which
    // points to a live local of that type.
    unsafe { ioctl_tiocswinsz(fd.as_raw_fd(), &ws) }
        .map(drop)
        .map_err(|source| ConsoleError::SetSize { cols, rows, source })
}

/// The terminal's echo, off until this is dropped (a typed password must
/// not show).
pub struct EchoOff<'fd> {
    fd: BorrowedFd<'fd>,
    saved: nix::sys::termios::Termios,
}

/// Turns off the echo of the terminal `fd` (ECHO, keeping ICANON so that
/// the line discipline still edits the line) until the guard drops.
pub fn echo_off(fd: BorrowedFd<'_>) -> Result<EchoOff<'_>, ConsoleError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let saved = tcgetattr(fd).map_err(ConsoleError::Echo)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(fd, SetArg::TCSAFLUSH, &quiet).map_err(ConsoleError::Echo)?;
    Ok(EchoOff { fd, saved })
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        // Best effort: a terminal left without echo is fixed by `stty
        // sane`, and there is nobody to tell at this point.
        let _ = nix::sys::termios::tcsetattr(
            self.fd,
            nix::sys::termios::SetArg::TCSAFLUSH,
            &self.saved,
        );
    }
}

/// Picks the size to draw with: a configured dimension
/// (`vhdboot.columns`/`vhdboot.lines`) wins, then what the tty reports,
/// then 80x24 for each dimension that is still 0.
pub fn choose_size(
    reported: Option<(u16, u16)>,
    configured: (Option<u16>, Option<u16>),
) -> (u16, u16) {
    let (rep_cols, rep_rows) = reported.unwrap_or((0, 0));
    let pick = |conf: Option<u16>, rep: u16, fallback: u16| {
        conf.filter(|&v| v > 0)
            .or(Some(rep).filter(|&v| v > 0))
            .unwrap_or(fallback)
    };
    (
        pick(configured.0, rep_cols, FALLBACK_SIZE.0),
        pick(configured.1, rep_rows, FALLBACK_SIZE.1),
    )
}

/// The size of stdout's tty after [`choose_size`], written back to the tty
/// when it differs from what the tty reported (best effort).
pub fn effective_size(configured: (Option<u16>, Option<u16>)) -> (u16, u16) {
    let stdout = io::stdout();
    let fd = stdout.as_fd();
    let reported = terminal_size(fd);
    let size = choose_size(reported, configured);
    if reported.is_some() && reported != Some(size) {
        let _ = set_terminal_size(fd, size.0, size.1);
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_console_zero_size_falls_back_to_80x24() {
        assert_eq!(choose_size(Some((0, 0)), (None, None)), (80, 24));
        assert_eq!(choose_size(None, (None, None)), (80, 24));
    }

    #[test]
    fn configured_size_wins_over_reported() {
        assert_eq!(choose_size(Some((200, 50)), (Some(100), None)), (100, 50));
        assert_eq!(choose_size(Some((0, 0)), (None, Some(40))), (80, 40));
    }

    #[test]
    fn reported_size_is_kept_when_sane() {
        assert_eq!(choose_size(Some((132, 43)), (None, None)), (132, 43));
    }

    #[test]
    fn console_device_is_the_last_active_console_that_exists() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let dev = root.path().join("dev");
        fs::create_dir_all(sys.join("class/tty/console")).unwrap();
        fs::create_dir_all(&dev).unwrap();
        fs::write(sys.join("class/tty/console/active"), "tty0 ttyS0\n").unwrap();
        fs::write(dev.join("ttyS0"), "").unwrap();
        assert_eq!(console_device_in(&sys, &dev), dev.join("ttyS0"));
        fs::remove_file(dev.join("ttyS0")).unwrap();
        assert_eq!(console_device_in(&sys, &dev), dev.join("console"));
    }

    #[test]
    fn pty_size_round_trips_through_tiocswinsz() {
        let pty = nix::pty::openpty(None, None).unwrap();
        set_terminal_size(pty.slave.as_fd(), 100, 30).unwrap();
        assert_eq!(terminal_size(pty.slave.as_fd()), Some((100, 30)));
    }

    #[test]
    fn a_regular_file_has_no_terminal_size() {
        let file = tempfile::tempfile().unwrap();
        assert_eq!(terminal_size(file.as_fd()), None);
    }
}
