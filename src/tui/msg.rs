//! Everything that can happen to the menu: key presses, the clock, and the
//! results of the effects it asked for.

use crate::boot::repair::RepairMode;
use crate::model::Snapshot;
use crate::report::ReportFacts;
use crate::tui::host::Failure;
use crate::tui::repair::FatDevice;

/// A key press, reduced to what the menu distinguishes. Keeping it apart
/// from crossterm's type lets tests script keys without a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// A letter pressed with Ctrl, lower-case.
    Ctrl(char),
    Enter,
    Esc,
    Backspace,
    Delete,
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
    PageUp,
    PageDown,
    Tab,
    F(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Key(Key),
    /// One second passed.
    Tick,
    /// The terminal is now this many columns and lines.
    Resize(u16, u16),
    /// Planning, loading or executing a boot failed; the menu stays.
    BootFailed(Failure),
    /// The rescue shell returned.
    ShellExited(Result<(), Failure>),
    Rescanned(Result<Snapshot, Failure>),
    /// The repair shell exited; Ok holds notes on the undoing (a lazy
    /// unmount), Err why opening or undoing failed.
    RepairEnded {
        mode: RepairMode,
        result: Result<Vec<String>, Failure>,
    },
    /// The machine's facts for the report, and the FAT filesystems it may
    /// be saved to.
    ReportGathered {
        facts: Box<ReportFacts>,
        fat: Vec<FatDevice>,
    },
    /// The report was written (where), or why not.
    ReportSaved(Result<String, Failure>),
    /// The running merge's status, or why it stopped.
    MergeProgress(Result<crate::trial::MergeStatus, Failure>),
    /// Keeping or discarding trial changes ended: the note to show, or why
    /// it failed.
    TrialDone(Result<String, Failure>),
    /// Reboot or power off returned, which means it failed.
    PowerFailed(Failure),
    /// A kernel log line, for the log view.
    Kmsg(String),
    /// The menu is on screen for the first time: a preload may start.
    Shown,
    /// Preload `id` finished: the kernel is loaded, or why it is not.
    Preloaded {
        id: u64,
        result: Result<(), Failure>,
    },
    /// Preload `id` started a step ("reading the kernel"), for the status
    /// line while a boot waits for it.
    PreloadStep {
        id: u64,
        step: String,
    },
}
