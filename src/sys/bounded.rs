//! Running a child under limits: address space and CPU time through
//! setrlimit, wall-clock time through a watchdog in the parent, and a cap
//! on what it may print. PID 1 reads untrusted disk content only in such
//! children (shared/design.md, "Discovery in its own process"): a child that
//! loops, allocates without end or dies takes nobody with it, and the parent
//! says which limit it hit.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::sys::pid1;

/// What a bounded child may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_AS in bytes: the child's whole address space, binary and
    /// stack included. An allocation past it fails, and Rust aborts.
    pub memory: u64,
    /// Wall-clock time from spawn to exit. CPU time (RLIMIT_CPU) is set to
    /// the same number of seconds, rounded up, so a child that spins is
    /// stopped by the kernel even if the watchdog were late.
    pub wall: Duration,
    /// The most bytes read from its stdout; more is an error.
    pub max_output: usize,
}

/// Why a bounded child gave no usable output. Each says which limit or
/// which ending, so the caller can tell the user in words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoundedError {
    #[error("could not start {program}: {reason}")]
    Spawn { program: String, reason: String },
    #[error("it took longer than {} s and was stopped", .limit.as_secs_f64())]
    WallClock { limit: Duration },
    #[error("it used more than {} s of CPU time and was stopped", .limit_secs)]
    Cpu { limit_secs: u64 },
    #[error("it ran out of its {} MiB memory budget", .limit / (1024 * 1024))]
    Memory { limit: u64 },
    #[error("it printed more than {limit} bytes")]
    OutputTooLarge { limit: usize },
    #[error("it was killed by signal {signal}")]
    Signal { signal: i32 },
    #[error("it failed (exit code {code}){}", stderr_suffix(.stderr))]
    Exit { code: i32, stderr: String },
    #[error("reading its output failed: {reason}")]
    Io { reason: String },
    #[error("it was stopped because its result is no longer wanted")]
    Cancelled,
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// The most bytes of a child's stderr kept for its error message.
const MAX_STDERR: usize = 4096;

/// How a finished child's status reads, given its limits. Pure, so the
/// mapping is tested without running anything.
pub fn classify(status: ExitStatus, stderr: &str, limits: &Limits) -> Result<(), BoundedError> {
    if let Some(signal) = status.signal() {
        return Err(match signal {
            libc::SIGXCPU => BoundedError::Cpu {
                limit_secs: cpu_seconds(limits.wall),
            },
            // Rust aborts on an allocation failure ("memory allocation of N
            // bytes failed"); under RLIMIT_AS that is the memory limit.
            libc::SIGABRT if stderr.contains("memory allocation") => BoundedError::Memory {
                limit: limits.memory,
            },
            // RLIMIT_CPU's hard limit is one second past the soft one.
            libc::SIGKILL => BoundedError::Cpu {
                limit_secs: cpu_seconds(limits.wall),
            },
            signal => BoundedError::Signal { signal },
        });
    }
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(BoundedError::Exit {
            code,
            stderr: stderr.trim().to_string(),
        }),
        None => Err(BoundedError::Signal { signal: 0 }),
    }
}

fn cpu_seconds(wall: Duration) -> u64 {
    wall.as_secs()
        .saturating_add(u64::from(wall.subsec_nanos() > 0))
        .max(1)
}

/// Runs `cmd` under `limits` and returns its stdout when it exits 0.
/// stdin is /dev/null; stderr is kept (its first 4 KiB) for the error.
pub fn run_bounded(cmd: Command, limits: &Limits) -> Result<Vec<u8>, BoundedError> {
    let ended = run_watched(cmd, limits, &[], None)?;
    classify(ended.status, &ended.stderr, limits)?;
    Ok(ended.stdout)
}

/// What a parent watches while a child runs, besides its limits: whether
/// its result is still wanted, and what it says on stderr as it goes.
pub struct Watch<'a> {
    /// Asked at least every [`WATCH_INTERVAL`]; once true, the child is
    /// killed and [`BoundedError::Cancelled`] returned. A preload the user
    /// moved away from stops within that interval.
    pub cancelled: &'a dyn Fn() -> bool,
    /// Each chunk of stderr as it arrives (the boot child's progress lines).
    pub on_stderr: &'a mut dyn FnMut(&[u8]),
}

/// How often a watched child's cancellation is checked.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(20);

/// [`run_bounded`], with open files handed to the child and under a
/// [`Watch`]: each `(file, fd)` becomes the child's descriptor `fd` (3 and
/// up), for [`inherited_file`] there. The boot's child writes the kernel
/// and initrd into memfds this way, which the parent then gives to
/// kexec_file_load.
pub fn run_bounded_watched(
    cmd: Command,
    limits: &Limits,
    pass: &[(BorrowedFd<'_>, RawFd)],
    watch: &mut Watch<'_>,
) -> Result<Vec<u8>, BoundedError> {
    let ended = run_watched(cmd, limits, pass, Some(watch))?;
    classify(ended.status, &ended.stderr, limits)?;
    Ok(ended.stdout)
}

/// How a child that stayed within its wall clock and output cap ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The first 4 KiB of its stderr.
    pub stderr: String,
}

/// Runs `cmd` under `limits` and returns how it ended, whatever its exit
/// code; only the wall clock, the output cap and a failure to start or read
/// are errors here. [`classify`] reads the status.
pub fn run_within(
    cmd: Command,
    limits: &Limits,
    pass: &[(BorrowedFd<'_>, RawFd)],
) -> Result<Ended, BoundedError> {
    run_watched(cmd, limits, pass, None)
}

fn run_watched(
    mut cmd: Command,
    limits: &Limits,
    pass: &[(BorrowedFd<'_>, RawFd)],
    mut watch: Option<&mut Watch<'_>>,
) -> Result<Ended, BoundedError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let passing: Vec<(RawFd, RawFd)> = pass.iter().map(|(f, to)| (f.as_raw_fd(), *to)).collect();
    let memory = limits.memory;
    let cpu = cpu_seconds(limits.wall);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and calls
    // only setrlimit, prctl, fcntl and dup2, which are async-signal-safe;
    // it reads the `passing` list built before the fork, allocates nothing
    // and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            let as_limit = libc::rlimit {
                rlim_cur: memory,
                rlim_max: memory,
            };
            // The hard CPU limit one second past the soft one: SIGXCPU
            // first, SIGKILL if the child ignores it.
            let cpu_limit = libc::rlimit {
                rlim_cur: cpu,
                rlim_max: cpu.saturating_add(1),
            };
            if libc::setrlimit(libc::RLIMIT_AS, &as_limit) != 0
                || libc::setrlimit(libc::RLIMIT_CPU, &cpu_limit) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // A child whose parent died (the CLI killed) must not go on.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            for &(from, to) in &passing {
                // dup2 onto another number clears close-on-exec; onto the
                // same number it does nothing, so clear the flag instead.
                let ok = if from == to {
                    libc::fcntl(from, libc::F_SETFD, 0) == 0
                } else {
                    libc::dup2(from, to) == to
                };
                if !ok {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = pid1::spawn_claimed(&mut cmd).map_err(|e| BoundedError::Spawn {
        program,
        reason: e.to_string(),
    })?;
    let deadline = Instant::now() + limits.wall;
    // A child may close its output and go on running: the deadline holds
    // until it has exited, not only until its pipes close.
    let collected = collect(&mut child, limits, deadline, watch.as_deref_mut())
        .and_then(|output| exited_by(&mut child, deadline, limits, watch).map(|()| output));
    if collected.is_err() {
        let _ = child.kill();
    }
    let status = pid1::wait_claimed(&mut child).map_err(|e| BoundedError::Io {
        reason: e.to_string(),
    });
    let (stdout, stderr) = collected?;
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    Ok(Ended {
        status: status?,
        stdout,
        stderr,
    })
}

/// Reads the child's stdout and stderr until both close, the deadline
/// passes or stdout grows past its cap.
fn collect(
    child: &mut Child,
    limits: &Limits,
    deadline: Instant,
    mut watch: Option<&mut Watch<'_>>,
) -> Result<(Vec<u8>, Vec<u8>), BoundedError> {
    let io_err = |e: io::Error| BoundedError::Io {
        reason: e.to_string(),
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while stdout.is_some() || stderr.is_some() {
        if watch.as_ref().is_some_and(|w| (w.cancelled)()) {
            return Err(BoundedError::Cancelled);
        }
        let mut left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BoundedError::WallClock { limit: limits.wall });
        }
        if watch.is_some() {
            left = left.min(WATCH_INTERVAL);
        }
        let mut fds = Vec::with_capacity(2);
        for fd in [
            stdout.as_ref().map(|s| s.as_raw_fd()),
            stderr.as_ref().map(|s| s.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a live, correctly sized array of pollfd for the
        // call's duration; poll writes only their revents fields.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_err(e));
        }
        if let Some(s) = stdout.as_mut()
            && readable(&fds, s.as_raw_fd())
        {
            let n = s.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                stdout = None;
            } else {
                let chunk = buf.get(..n).unwrap_or_default();
                if out.len().saturating_add(n) > limits.max_output {
                    return Err(BoundedError::OutputTooLarge {
                        limit: limits.max_output,
                    });
                }
                out.extend_from_slice(chunk);
            }
        }
        if let Some(s) = stderr.as_mut()
            && readable(&fds, s.as_raw_fd())
        {
            let n = s.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                stderr = None;
            } else {
                if let Some(w) = watch.as_mut() {
                    (w.on_stderr)(buf.get(..n).unwrap_or_default());
                }
                let room = MAX_STDERR.saturating_sub(err.len()).min(n);
                err.extend_from_slice(buf.get(..room).unwrap_or_default());
            }
        }
    }
    Ok((out, err))
}

/// Waits for the child to exit until `deadline`. The status stays in
/// `child` for the final wait. A child usually exits microseconds after
/// closing its output, so the wait is on a pidfd, which becomes readable
/// the moment it exits; sleeping in steps instead cost 5 ms per image
/// (bench/discovery.py).
fn exited_by(
    child: &mut Child,
    deadline: Instant,
    limits: &Limits,
    watch: Option<&mut Watch<'_>>,
) -> Result<(), BoundedError> {
    let pidfd = pidfd_open(child.id());
    let mut nap = Duration::from_micros(50);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => {
                return Err(BoundedError::Io {
                    reason: e.to_string(),
                });
            }
        }
        if watch.as_ref().is_some_and(|w| (w.cancelled)()) {
            return Err(BoundedError::Cancelled);
        }
        let mut left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BoundedError::WallClock { limit: limits.wall });
        }
        if watch.is_some() {
            left = left.min(WATCH_INTERVAL);
        }
        match &pidfd {
            Some(fd) => {
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
                // SAFETY: one live pollfd for the call's duration; poll
                // writes only its revents field.
                unsafe { libc::poll(&mut pfd, 1, ms) };
            }
            // Kernels before 5.3 have no pidfd: poll the status in steps.
            None => {
                std::thread::sleep(nap.min(left));
                nap = (nap * 2).min(Duration::from_millis(5));
            }
        }
    }
}

/// A pidfd for `pid` (pidfd_open(2)), which polls readable once the
/// process has exited; None where the kernel has no pidfd_open.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new
    // descriptor or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: the descriptor was just returned by the kernel and nothing
    // else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The file a bounded parent handed this process as descriptor `fd`
/// ([`run_bounded_watched`]), or None when no such descriptor is open.
pub fn inherited_file(fd: RawFd) -> Option<File> {
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with
    // EBADF when `fd` is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open, and by the contract with the parent
    // nothing else in this process owns it, so the File may close it.
    Some(unsafe { File::from_raw_fd(fd) })
}

fn readable(fds: &[libc::pollfd], fd: i32) -> bool {
    fds.iter()
        .any(|p| p.fd == fd && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(wall_ms: u64) -> Limits {
        Limits {
            memory: 256 * 1024 * 1024,
            wall: Duration::from_millis(wall_ms),
            max_output: 1024,
        }
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn output_of_a_well_behaved_child_is_returned() {
        assert_eq!(
            run_bounded(sh("printf hello"), &limits(5000)),
            Ok(b"hello".to_vec())
        );
    }

    #[test]
    fn a_watched_child_is_killed_once_cancelled_and_its_stderr_heard() {
        let started = Instant::now();
        let heard = std::cell::RefCell::new(Vec::new());
        let cancelled = || heard.borrow().ends_with(b"step\n");
        let mut on_stderr = |chunk: &[u8]| heard.borrow_mut().extend_from_slice(chunk);
        let r = run_bounded_watched(
            sh("echo step >&2; sleep 30"),
            &limits(20_000),
            &[],
            &mut Watch {
                cancelled: &cancelled,
                on_stderr: &mut on_stderr,
            },
        );
        assert_eq!(r, Err(BoundedError::Cancelled));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_child_that_sleeps_past_the_wall_clock_is_stopped() {
        let started = Instant::now();
        let r = run_bounded(sh("sleep 30"), &limits(300));
        assert_eq!(
            r,
            Err(BoundedError::WallClock {
                limit: Duration::from_millis(300)
            })
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_child_that_closes_its_output_but_keeps_running_is_stopped() {
        let started = Instant::now();
        let r = run_bounded(sh("exec >/dev/null 2>&1; sleep 30"), &limits(300));
        assert_eq!(
            r,
            Err(BoundedError::WallClock {
                limit: Duration::from_millis(300)
            })
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_passed_file_is_the_child_descriptor_asked_for() {
        let mut file = tempfile::tempfile().unwrap();
        let r = run_bounded_watched(
            sh("printf passed >&5"),
            &limits(5000),
            &[(std::os::fd::AsFd::as_fd(&file), 5)],
            &mut Watch {
                cancelled: &|| false,
                on_stderr: &mut |_| {},
            },
        );
        assert_eq!(r, Ok(Vec::new()));
        let mut text = String::new();
        std::io::Seek::rewind(&mut file).unwrap();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "passed");
    }

    #[test]
    fn too_much_output_is_an_error() {
        let r = run_bounded(sh("yes | head -c 100000"), &limits(5000));
        assert_eq!(r, Err(BoundedError::OutputTooLarge { limit: 1024 }));
    }

    #[test]
    fn a_failing_child_reports_its_code_and_stderr() {
        let r = run_bounded(sh("echo broken >&2; exit 3"), &limits(5000));
        assert_eq!(
            r,
            Err(BoundedError::Exit {
                code: 3,
                stderr: "broken".into()
            })
        );
    }

    #[test]
    fn a_child_that_spins_is_stopped_by_the_cpu_limit() {
        // The wall clock is long; the CPU limit (1 s) ends the loop first.
        let mut l = limits(1000);
        l.wall = Duration::from_millis(900);
        let r = run_bounded(sh("while :; do :; done"), &l);
        assert!(
            matches!(
                r,
                Err(BoundedError::Cpu { .. } | BoundedError::WallClock { .. })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn an_abort_after_a_failed_allocation_reads_as_the_memory_limit() {
        let status = ExitStatus::from_raw(libc::SIGABRT);
        let l = limits(1000);
        assert_eq!(
            classify(status, "memory allocation of 1048576 bytes failed\n", &l),
            Err(BoundedError::Memory { limit: l.memory })
        );
        assert_eq!(
            classify(ExitStatus::from_raw(libc::SIGXCPU), "", &l),
            Err(BoundedError::Cpu { limit_secs: 1 })
        );
        assert_eq!(
            classify(ExitStatus::from_raw(libc::SIGSEGV), "", &l),
            Err(BoundedError::Signal {
                signal: libc::SIGSEGV
            })
        );
    }
}
