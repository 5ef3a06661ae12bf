//! What PID 1 must do itself: mount the pseudo-filesystems, reap orphans,
//! never die on a panic, keep kernel chatter off the menu, reboot, and run
//! the rescue shell with job control.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sys::reboot::{RebootMode as NixRebootMode, reboot};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use crate::sys::console;
use crate::sys::mount::{MountError, mountinfo_has_mount_point};

/// The shell for rescue and for the panic hook: busybox with its applets.
pub const SHELL: &str = "/bin/sh";

struct PseudoMount {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: &'static str,
}

fn pseudo_mounts() -> [PseudoMount; 6] {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    [
        PseudoMount {
            source: "proc",
            target: "proc",
            fstype: "proc",
            flags: nosuid_nodev_noexec,
            data: "",
        },
        PseudoMount {
            source: "sysfs",
            target: "sys",
            fstype: "sysfs",
            flags: nosuid_nodev_noexec,
            data: "",
        },
        PseudoMount {
            source: "devtmpfs",
            target: "dev",
            fstype: "devtmpfs",
            flags: MsFlags::MS_NOSUID,
            data: "mode=0755",
        },
        PseudoMount {
            source: "devpts",
            target: "dev/pts",
            fstype: "devpts",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            data: "mode=0620,ptmxmode=0666",
        },
        PseudoMount {
            source: "tmpfs",
            target: "dev/shm",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: "mode=1777",
        },
        PseudoMount {
            source: "tmpfs",
            target: "run",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data: "mode=0755",
        },
    ]
}

/// Mounts proc, sysfs, devtmpfs (+ devpts, /dev/shm) and /run
/// ([`mount_efivarfs`] follows once modules are loaded). Mount points are created when missing and mounts
/// already in place are left alone. Nothing here is fatal: each failure is
/// returned so that PID 1 can show it and carry on.
pub fn mount_pseudo_filesystems() -> Vec<MountError> {
    mount_pseudo_filesystems_in(Path::new("/"))
}

/// As [`mount_pseudo_filesystems`], under `root` (tests pass a temp dir).
pub fn mount_pseudo_filesystems_in(root: &Path) -> Vec<MountError> {
    let mut warnings = Vec::new();
    for m in pseudo_mounts() {
        let target = root.join(m.target);
        if let Err(e) = mount_once(m.source, &target, m.fstype, m.flags, m.data) {
            warnings.push(e);
        }
    }
    warnings
}

/// Mounts efivarfs read-only on EFI machines; None on others. It runs after
/// the kernel modules are loaded: Debian's kernels build efivarfs as a
/// module, so an earlier mount fails with ENODEV. `sys::efivars` opens it
/// for writing only around an intended write.
pub fn mount_efivarfs() -> Option<Result<(), MountError>> {
    mount_efivarfs_in(Path::new("/"))
}

/// As [`mount_efivarfs`], under `root`.
pub fn mount_efivarfs_in(root: &Path) -> Option<Result<(), MountError>> {
    // efivarfs exists only when the kernel was booted through EFI; its
    // directory is part of sysfs, so it is never created here.
    let efivars = root.join("sys/firmware/efi/efivars");
    if !efivars.is_dir() {
        return None;
    }
    Some(mount_once(
        "efivarfs",
        &efivars,
        "efivarfs",
        super::efivars::mount_flags(true),
        "",
    ))
}

fn mount_once(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> Result<(), MountError> {
    // Mounting proc or tmpfs twice does not fail, it stacks a second
    // mount, so look first. Without /proc yet, nothing is mounted.
    let canonical = fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    if let Ok(info) = fs::read_to_string("/proc/self/mountinfo")
        && mountinfo_has_mount_point(&info, &canonical)
    {
        return Ok(());
    }
    fs::create_dir_all(target).map_err(|source| MountError::CreateTarget {
        target: target.to_path_buf(),
        source,
    })?;
    let data = (!data.is_empty()).then_some(data);
    match mount(Some(source), target, Some(fstype), flags, data) {
        Ok(()) | Err(Errno::EBUSY) => Ok(()),
        Err(errno) => Err(MountError::Mount {
            device: PathBuf::from(source),
            target: target.to_path_buf(),
            fstype: fstype.to_string(),
            mode: if flags.contains(MsFlags::MS_RDONLY) {
                crate::sys::mount::MountMode::ReadOnly
            } else {
                crate::sys::mount::MountMode::ReadWrite
            },
            source: errno,
            kernel: Vec::new(),
        }),
    }
}

/// Children somebody waits for by pid ([`spawn_and_wait`]); the reaper
/// leaves their exit status alone.
static CLAIMED: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

fn with_claimed<T>(f: impl FnOnce(&mut HashSet<i32>) -> T) -> T {
    let mut guard = CLAIMED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(guard.get_or_insert_with(HashSet::new))
}

/// Reaps every exited child nobody else waits for, without blocking
/// (tini's `waitpid(-1, WNOHANG)` loop). Call it from the event loop's
/// tick. Returns the reaped pids and how they ended, for the log.
///
/// A claimed child that has exited is left for its waiter, and reaping
/// stops behind it until that waiter collects it (waitid can only peek at
/// the first zombie).
pub fn reap_zombies() -> Vec<(Pid, WaitStatus)> {
    let mut reaped = Vec::new();
    loop {
        let next = with_claimed(|claimed| {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            let pid = match waitid(Id::All, flags) {
                Ok(status) => status.pid()?,
                // ECHILD: no children at all.
                Err(_) => return None,
            };
            if claimed.contains(&pid.as_raw()) {
                return None;
            }
            waitpid(pid, Some(WaitPidFlag::WNOHANG))
                .ok()
                .map(|status| (pid, status))
        });
        match next {
            Some(entry) => reaped.push(entry),
            None => return reaped,
        }
    }
}

/// Spawns `cmd` and waits for that child only. The pid is claimed under
/// the reaper's lock before anyone can reap it, so [`reap_zombies`] running
/// in another thread cannot steal the exit status.
pub fn spawn_and_wait(cmd: &mut Command) -> io::Result<ExitStatus> {
    let mut child = spawn_claimed(cmd)?;
    wait_claimed(&mut child)
}

/// Spawns `cmd` with its pid claimed, so that [`reap_zombies`] leaves its
/// exit status for [`wait_claimed`], which must be called for it.
pub fn spawn_claimed(cmd: &mut Command) -> io::Result<Child> {
    with_claimed(|claimed| {
        let child = cmd.spawn()?;
        if let Ok(pid) = i32::try_from(child.id()) {
            claimed.insert(pid);
        }
        Ok::<_, io::Error>(child)
    })
}

/// Waits for a child from [`spawn_claimed`] and drops its claim.
pub fn wait_claimed(child: &mut Child) -> io::Result<ExitStatus> {
    let status = child.wait();
    if let Ok(pid) = i32::try_from(child.id()) {
        with_claimed(|claimed| claimed.remove(&pid));
    }
    status
}

#[derive(Debug, thiserror::Error)]
pub enum Pid1Error {
    #[error("reading {path} failed: {source}")]
    ReadPrintk {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} holds {value:?}, not a console log level")]
    BadPrintk { path: PathBuf, value: String },
    #[error("writing log level {level} to {path} failed: {source}")]
    WritePrintk {
        path: PathBuf,
        level: u8,
        #[source]
        source: io::Error,
    },
    #[error("starting the rescue shell {shell} on {console} failed: {source}")]
    Shell {
        shell: PathBuf,
        console: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Sets the console log level (the first field of
/// /proc/sys/kernel/printk) and returns the previous one, so that kernel
/// messages stop drawing over the menu. Restore it with the returned value.
pub fn set_console_loglevel(level: u8) -> Result<u8, Pid1Error> {
    set_console_loglevel_in(Path::new("/proc/sys/kernel/printk"), level)
}

/// As [`set_console_loglevel`] with the printk file given.
pub fn set_console_loglevel_in(printk: &Path, level: u8) -> Result<u8, Pid1Error> {
    let text = fs::read_to_string(printk).map_err(|source| Pid1Error::ReadPrintk {
        path: printk.to_path_buf(),
        source,
    })?;
    let old = text
        .split_whitespace()
        .next()
        .and_then(|f| f.parse::<u8>().ok())
        .ok_or_else(|| Pid1Error::BadPrintk {
            path: printk.to_path_buf(),
            value: text.trim().to_string(),
        })?;
    // Writing one number sets only the console level and keeps the rest.
    fs::write(printk, format!("{level}\n")).map_err(|source| Pid1Error::WritePrintk {
        path: printk.to_path_buf(),
        level,
        source,
    })?;
    Ok(old)
}

/// How to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootMode {
    Restart,
    PowerOff,
    /// Into the kernel loaded with kexec_file_load.
    Kexec,
}

impl RebootMode {
    fn nix(self) -> NixRebootMode {
        match self {
            RebootMode::Restart => NixRebootMode::RB_AUTOBOOT,
            RebootMode::PowerOff => NixRebootMode::RB_POWER_OFF,
            RebootMode::Kexec => NixRebootMode::RB_KEXEC,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("reboot(2) with {mode:?} failed: {source}{}", hint(*.mode, *.source))]
pub struct RebootError {
    pub mode: RebootMode,
    pub source: Errno,
}

fn hint(mode: RebootMode, errno: Errno) -> &'static str {
    match (mode, errno) {
        (RebootMode::Kexec, Errno::EINVAL) => " (no kernel is loaded; load it again)",
        (_, Errno::EPERM) => " (not allowed: we are not root or not in the initial namespace)",
        _ => "",
    }
}

/// Syncs the filesystems and calls reboot(2). Returns only on failure.
pub fn sync_and_reboot(mode: RebootMode) -> RebootError {
    nix::unistd::sync();
    match reboot(mode.nix()) {
        Err(source) => RebootError { mode, source },
        Ok(never) => match never {},
    }
}

/// Runs busybox's shell on the console with job control, waits for it,
/// then takes the console back for PID 1 (the shell's session owned it).
/// Orphans the shell leaves behind are for [`reap_zombies`], which never
/// takes the shell's own exit status.
pub fn run_rescue_shell() -> Result<ExitStatus, Pid1Error> {
    run_rescue_shell_in(Path::new("/"))
}

/// As [`run_rescue_shell`], starting in folder `dir` (the repair shell
/// starts where the image's partitions are mounted).
pub fn run_rescue_shell_in(dir: &Path) -> Result<ExitStatus, Pid1Error> {
    let mut cmd = Command::new(SHELL);
    cmd.current_dir(dir);
    // A leading dash makes it a login shell, which reads /etc/profile.
    cmd.arg0("-sh").env("PS1", "(vhdboot rescue) \\w # ");
    run_with_controlling_tty(cmd, &console::console_device())
}

/// Runs `cmd` with `tty` as stdin, stdout and stderr and default signal
/// dispositions, so that job control and Ctrl-C work in it, and waits for
/// that child only.
///
/// When `tty` is already our controlling terminal (PID 1's console), the
/// child becomes the terminal's foreground process group inside our
/// session, and we take the foreground back when it exits: our own files
/// of the terminal stay open and working, so the menu reads keys again.
/// Otherwise the child gets a session of its own with `tty` as its
/// controlling terminal.
pub fn run_with_controlling_tty(mut cmd: Command, tty: &Path) -> Result<ExitStatus, Pid1Error> {
    let shell_error = |source| Pid1Error::Shell {
        shell: PathBuf::from(cmd.get_program()),
        console: tty.to_path_buf(),
        source,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tty)
        .map_err(shell_error)?;
    let stdin = file.try_clone().map_err(shell_error)?;
    let stdout = file.try_clone().map_err(shell_error)?;
    let program = PathBuf::from(cmd.get_program());
    let ours = console::is_our_controlling_tty(file.as_fd());
    let keep = file.try_clone().map_err(shell_error)?;
    cmd.stdin(stdin).stdout(stdout).stderr(file);
    // SAFETY: the closures run in the forked child before exec and call
    // only async-signal-safe functions (setpgid, tcsetpgrp, setsid, ioctl,
    // signal); they allocate nothing and touch no locks.
    unsafe {
        if ours {
            cmd.pre_exec(|| {
                console::child_join_foreground();
                Ok(())
            });
        } else {
            cmd.pre_exec(|| {
                console::child_take_console_as_ctty();
                Ok(())
            });
        }
    }
    let status = spawn_and_wait(&mut cmd);
    if ours {
        // The shell may have left the foreground to a job or to its own
        // (now empty) group; the menu needs it back before it reads keys.
        if let Err(e) = console::take_foreground(keep.as_fd()) {
            let _ = crate::sys::kmsg::kmsg_write(&e.to_string());
        }
    }
    status.map_err(|source| Pid1Error::Shell {
        shell: program,
        console: tty.to_path_buf(),
        source,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{path} or one of its arguments contains a NUL byte")]
    Nul { path: PathBuf },
    #[error("executing {path} failed: {source}{}", exec_hint(*.source))]
    Exec { path: PathBuf, source: Errno },
}

fn exec_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::ENOENT => " (no such file, or its interpreter/loader is missing)",
        Errno::EACCES => " (not executable, or on a noexec mount)",
        Errno::ENOEXEC => " (not an executable this kernel can run)",
        _ => "",
    }
}

/// Replaces this process with `path` (stage 2 hands PID 1 over to the
/// target's own init this way). `args` excludes argv[0], which is `path`.
/// Returns only on failure.
pub fn exec_init(path: &Path, args: &[&str]) -> ExecError {
    use std::os::unix::ffi::OsStrExt;
    let nul = || ExecError::Nul {
        path: path.to_path_buf(),
    };
    let Ok(program) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return nul();
    };
    let mut argv = vec![program.clone()];
    for arg in args {
        match std::ffi::CString::new(*arg) {
            Ok(a) => argv.push(a),
            Err(_) => return nul(),
        }
    }
    match nix::unistd::execv(&program, &argv) {
        Err(source) => ExecError::Exec {
            path: path.to_path_buf(),
            source,
        },
        Ok(never) => match never {},
    }
}

/// Makes a panic in PID 1 survivable: restores the terminal through
/// `restore`, prints the panic to the console, then replaces the process
/// with a shell loop on the console. If even that fails it sleeps forever:
/// PID 1 must never exit (the kernel would panic).
pub fn install_panic_hook(restore: fn()) {
    std::panic::set_hook(Box::new(move |info| {
        restore();
        // Until the configuration is read, whether a password guards the
        // shell is unknown: the locked shell reads it afresh and opens the
        // plain shell only when none is set.
        let open = PANIC_SHELL.load(Ordering::SeqCst) == PANIC_SHELL_OPEN;
        let shell = if open {
            "starting a shell; type `reboot -f` to restart"
        } else {
            "starting the rescue shell, which asks for the password if one is set"
        };
        let message = format!("\r\nvhdboot: internal error: {info}\r\nvhdboot: {shell}.\r\n");
        let _ = io::stderr().write_all(message.as_bytes());
        if let Ok(mut c) = fs::OpenOptions::new().write(true).open("/dev/console") {
            let _ = c.write_all(message.as_bytes());
        }
        let _ = crate::sys::kmsg::kmsg_write(&format!("internal error: {info}"));
        if !open {
            exec_locked_shell();
        }
        exec_shell_forever();
    }));
}

/// Which shell follows a panic: PANIC_SHELL_UNKNOWN until stage 1 has read
/// its configuration, then PANIC_SHELL_LOCKED when vhdboot.conf (or the
/// command line) holds a password, else PANIC_SHELL_OPEN. Anything but
/// OPEN ends in the locked shell (`/init --locked-shell`), which re-reads
/// the configuration: a panic before the password is known must not open
/// the shell it guards.
static PANIC_SHELL: AtomicU8 = AtomicU8::new(PANIC_SHELL_UNKNOWN);
const PANIC_SHELL_UNKNOWN: u8 = 0;
const PANIC_SHELL_LOCKED: u8 = 1;
const PANIC_SHELL_OPEN: u8 = 2;

/// The argument `/init` takes to be the locked shell (main.rs).
pub const LOCKED_SHELL_ARG: &str = "--locked-shell";

/// Records whether the shell that follows a panic sits behind the
/// password, once the configuration has been read.
pub fn set_panic_shell_locked(locked: bool) {
    let state = if locked {
        PANIC_SHELL_LOCKED
    } else {
        PANIC_SHELL_OPEN
    };
    PANIC_SHELL.store(state, Ordering::SeqCst);
}

/// Replaces PID 1 with a fresh `/init --locked-shell`: a new process
/// image, free of whatever state the panic left, that asks for the
/// password before each shell. If the exec fails, PID 1 sleeps: a locked
/// system never falls back to an open shell.
fn exec_locked_shell() -> ! {
    let _ = nix::unistd::execv(c"/init", &[c"/init", c"--locked-shell"]);
    let _ = crate::sys::kmsg::kmsg_write("the locked shell could not start (execv /init)");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

pub fn exec_shell_forever() -> ! {
    let _ = console::acquire_controlling_tty();
    // A loop around the shell keeps PID 1 alive when the user types `exit`.
    let script = c"while :; do /bin/sh; echo 'vhdboot: type reboot -f to restart'; done";
    let _ = nix::unistd::execv(c"/bin/sh", &[c"sh", c"-c", script]);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_loglevel_is_set_and_the_old_one_returned() {
        let dir = tempfile::tempdir().unwrap();
        let printk = dir.path().join("printk");
        fs::write(&printk, "7\t4\t1\t7\n").unwrap();
        assert_eq!(set_console_loglevel_in(&printk, 3).unwrap(), 7);
        assert_eq!(fs::read_to_string(&printk).unwrap(), "3\n");
    }

    #[test]
    fn garbage_printk_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let printk = dir.path().join("printk");
        fs::write(&printk, "hello").unwrap();
        let err = set_console_loglevel_in(&printk, 3).unwrap_err();
        assert!(err.to_string().contains("printk"), "{err}");
    }

    #[test]
    fn exec_of_a_missing_init_returns_an_error_naming_it() {
        let err = exec_init(Path::new("/nonexistent/init"), &["--switched-root"]);
        assert!(
            matches!(
                err,
                ExecError::Exec {
                    source: Errno::ENOENT,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("/nonexistent/init"), "{err}");
    }

    #[test]
    fn kexec_reboot_without_a_loaded_kernel_says_so() {
        let err = RebootError {
            mode: RebootMode::Kexec,
            source: Errno::EINVAL,
        };
        assert!(err.to_string().contains("no kernel is loaded"), "{err}");
    }
}
