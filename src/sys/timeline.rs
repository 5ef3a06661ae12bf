//! Boot-path timestamps: each step is marked with the monotonic clock, the
//! clock the kernel stamps its own log lines with, so that our marks and the
//! kernel's messages read as one timeline.
//!
//! Every mark goes to /dev/kmsg as `vhdboot: t=1.234 s modules loaded
//! (+0.456 s)`, so it shows up in the menu's log view and in `dmesg`.
//! [`summary`] gives all marks on one line, for the console just before
//! kexec, when the kernel log is about to be lost with the old kernel.
//! `bench/bootpath` reads these lines from the serial console.

use std::sync::Mutex;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

use super::kmsg;

/// The marks of this process, oldest first. A global, because the steps
/// happen in different modules (startup, discovery, the boot host).
static MARKS: Mutex<Vec<Mark>> = Mutex::new(Vec::new());
/// The most marks kept. Each preload adds a few, and a user may move
/// between entries for as long as the menu is up; the summary keeps the
/// first ones and logs the rest to /dev/kmsg only.
const MAX_MARKS: usize = 256;

/// One step and when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub what: &'static str,
    pub at: Duration,
}

/// The time since boot on CLOCK_MONOTONIC, or zero if the clock fails
/// (it does not on Linux; a wrong figure is better than no boot).
pub fn monotonic() -> Duration {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Records that `what` happened now and logs it to /dev/kmsg. Never fails:
/// timing must not stop a boot.
pub fn mark(what: &'static str) {
    let line = record(what, monotonic());
    let _ = kmsg::kmsg_write(&line);
}

/// As [`mark`], for a step that ended earlier: PID 1's start is taken
/// before /dev is mounted, so it is logged once /dev/kmsg exists.
pub fn mark_at(what: &'static str, at: Duration) {
    let line = record(what, at);
    let _ = kmsg::kmsg_write(&line);
}

/// Records a mark at `at` and returns its log line.
fn record(what: &'static str, at: Duration) -> String {
    let Ok(mut marks) = MARKS.lock() else {
        return format_mark(what, at, None);
    };
    let previous = marks.last().map(|m| m.at);
    if marks.len() < MAX_MARKS {
        marks.push(Mark { what, at });
    }
    format_mark(what, at, previous)
}

/// `t=1.234 s what (+0.456 s)`; the step's duration is left out for the
/// first mark.
pub fn format_mark(what: &str, at: Duration, previous: Option<Duration>) -> String {
    match previous {
        Some(p) => format!(
            "t={:.3} s {what} (+{:.3} s)",
            at.as_secs_f64(),
            at.saturating_sub(p).as_secs_f64()
        ),
        None => format!("t={:.3} s {what}", at.as_secs_f64()),
    }
}

/// All marks so far on one line:
/// `timeline: 1.234 PID 1 start | 1.690 modules loaded +0.456 | ...`.
pub fn summary() -> String {
    let marks = MARKS.lock().map(|m| m.clone()).unwrap_or_default();
    format_summary(&marks)
}

/// As [`summary`], over given marks.
pub fn format_summary(marks: &[Mark]) -> String {
    let mut out = String::from("timeline:");
    let mut previous: Option<Duration> = None;
    for (i, m) in marks.iter().enumerate() {
        if i > 0 {
            out.push_str(" |");
        }
        out.push_str(&format!(" {:.3} {}", m.at.as_secs_f64(), m.what));
        if let Some(p) = previous {
            out.push_str(&format!(" +{:.3}", m.at.saturating_sub(p).as_secs_f64()));
        }
        previous = Some(m.at);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_mark_has_no_step_duration() {
        assert_eq!(
            format_mark("PID 1 start", Duration::from_millis(1234), None),
            "t=1.234 s PID 1 start"
        );
    }

    #[test]
    fn later_marks_show_the_step_duration() {
        assert_eq!(
            format_mark(
                "modules loaded",
                Duration::from_millis(1690),
                Some(Duration::from_millis(1234))
            ),
            "t=1.690 s modules loaded (+0.456 s)"
        );
    }

    #[test]
    fn summary_lists_marks_in_order_with_durations() {
        let marks = [
            Mark {
                what: "start",
                at: Duration::from_millis(1000),
            },
            Mark {
                what: "done",
                at: Duration::from_millis(1500),
            },
        ];
        assert_eq!(
            format_summary(&marks),
            "timeline: 1.000 start | 1.500 done +0.500"
        );
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic();
        let b = monotonic();
        assert!(a > Duration::ZERO);
        assert!(b >= a);
    }
}
