//! The boundary between the menu and the machine.

use crate::boot::plan::BootPlan;
use crate::boot::repair::{RepairMode, RepairPlan};
use crate::model::{EntryRef, Snapshot};
use crate::report::ReportFacts;
use crate::tui::repair::{FatDevice, SaveTarget};

/// What the menu asks the machine to do. `update()` returns these and never
/// acts itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Plan, load and exec this entry with this command line; None means
    /// the entry's own line, which `boot::plan` looks up.
    Boot {
        entry: EntryRef,
        cmdline: Option<String>,
    },
    /// Prepare this boot in the background: read, check and load it with
    /// kexec_file_load, without rebooting. The outcome comes back as
    /// `Msg::Preloaded { id }`; a newer preload or `CancelPreload` makes
    /// this one moot.
    Preload {
        id: u64,
        entry: EntryRef,
        cmdline: Option<String>,
    },
    /// Stop the running preload (its child is killed) or unload the kernel
    /// it loaded.
    CancelPreload,
    /// Reboot into the kernel a finished preload loaded: no second load.
    BootPreloaded {
        entry: EntryRef,
        cmdline: Option<String>,
    },
    /// Restore the terminal, run the rescue shell, come back to the menu.
    RescueShell,
    /// Open image `image` of volume `volume` for repair, run the shell,
    /// undo it all when the shell exits.
    Repair {
        volume: usize,
        image: usize,
        mode: RepairMode,
    },
    /// Gather the machine's facts for the support report.
    GatherReport,
    /// Write the report to `target` (the user said yes).
    SaveReport {
        target: SaveTarget,
        text: String,
    },
    /// Keep or discard the trial changes of image `image` of volume
    /// `volume` (the user said yes). Keep starts the merge and answers
    /// with its first status; discard answers when the store is gone.
    Trial {
        volume: usize,
        image: usize,
        action: crate::boot::trial::TrialAction,
    },
    /// Read the running merge's progress.
    PollMerge,
    /// The merge is done: remove its device, delete the store and the
    /// marker, put the host back read-only.
    FinishMerge,
    /// Scan the disks again.
    Rescan,
    Reboot,
    PowerOff,
    /// Leave the menu (demo mode only; PID 1 never exits).
    Quit,
}

/// A failure as the user sees it: what failed, where, and what to do next.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// One line: what failed and where (device, file, section).
    pub what: String,
    /// The underlying cause, e.g. the kernel's message.
    pub cause: String,
    /// What the user can do next.
    pub hint: String,
}

impl Failure {
    pub fn new(what: impl Into<String>, cause: impl ToString, hint: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            cause: cause.to_string(),
            hint: hint.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}. {}", self.what, self.cause, self.hint)
    }
}

/// The machine, as the menu's executor sees it. Load never transfers
/// control; exec either never returns or returns the reason it failed.
pub trait Host {
    /// Reads the kernel and initrd the plan names, appends the stage-2
    /// archive and loads it all with kexec_file_load.
    fn load(&mut self, plan: &BootPlan) -> Result<(), Failure>;
    /// Starts loading `plan` as [`Host::load`] does, in the background, and
    /// returns at once. A host that finishes at once returns the outcome;
    /// one that works in the background returns None and sends
    /// `Msg::Preloaded { id }` to the menu's inbox later. Starting a preload
    /// makes any earlier one moot.
    fn preload(&mut self, id: u64, plan: &BootPlan) -> Option<Result<(), Failure>>;
    /// Stops the running preload, or unloads the kernel a finished one
    /// loaded. Returns at once; it never waits for the work it stops.
    fn cancel_preload(&mut self);
    /// Syncs, unmounts, restores the terminal and reboots into the loaded
    /// kernel. Returns only on failure.
    fn exec(&mut self) -> Failure;
    /// Runs the rescue shell on the console and returns when it exits.
    fn rescue_shell(&mut self) -> Result<(), Failure>;
    /// Scans the disks again.
    fn rescan(&mut self) -> Result<Snapshot, Failure>;
    /// Opens the image `plan` names (loop device, mounts, and for
    /// read-write a writable host and a chroot), runs the rescue shell with
    /// a summary, and undoes everything when it exits. Ok holds notes on
    /// the undoing.
    fn repair(&mut self, plan: &RepairPlan) -> Result<Vec<String>, Failure> {
        Err(Failure::new(
            format!("opening {} for repair", plan.image_name),
            "this menu cannot open images",
            "use the boot menu of vhdboot itself",
        ))
    }
    /// The machine's facts for the report and the FAT filesystems found.
    fn gather_report(&mut self) -> (ReportFacts, Vec<FatDevice>) {
        (ReportFacts::default(), Vec::new())
    }
    /// Writes `text` to `target`; returns the file's path as shown.
    fn save_report(&mut self, target: &SaveTarget, text: &str) -> Result<String, Failure> {
        let _ = text;
        Err(Failure::new(
            format!("saving the report to {}", target.describe()),
            "this menu cannot write to disks",
            "use the boot menu of vhdboot itself",
        ))
    }
    /// Deletes the trial store `plan` names, with the host read-write for
    /// that only. Ok holds the note to show.
    fn discard_trial(&mut self, plan: &crate::boot::trial::TrialPlan) -> Result<String, Failure> {
        Err(Failure::new(
            format!("discarding the trial changes of {}", plan.image_name),
            "this menu cannot write to disks",
            "use the boot menu of vhdboot itself",
        ))
    }
    /// Starts (or resumes) merging the trial store `plan` names into its
    /// image and returns the merge's first status.
    fn start_merge(
        &mut self,
        plan: &crate::boot::trial::TrialPlan,
    ) -> Result<crate::trial::MergeStatus, Failure> {
        Err(Failure::new(
            format!("merging the trial changes into {}", plan.image_name),
            "this menu cannot write to disks",
            "use the boot menu of vhdboot itself",
        ))
    }
    /// The running merge's status. On an error the host has undone the
    /// merge's devices and mounts, leaving the store and the marker for a
    /// resume.
    fn merge_status(&mut self) -> Result<crate::trial::MergeStatus, Failure> {
        Err(Failure::new(
            "reading the merge's progress",
            "no merge runs",
            "press r to rescan",
        ))
    }
    /// Ends a completed merge: removes its device, deletes the store and
    /// the marker and remounts the host read-only. Ok holds the note.
    fn finish_merge(&mut self) -> Result<String, Failure> {
        Err(Failure::new(
            "finishing the merge",
            "no merge runs",
            "press r to rescan",
        ))
    }
    /// Returns only on failure.
    fn reboot(&mut self) -> Failure;
    /// Returns only on failure.
    fn power_off(&mut self) -> Failure;
}
