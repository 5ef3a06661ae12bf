//! The real `Host`: what the menu's effects do on the machine.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use std::path::Path;
use vhdboot::boot::plan::BootPlan;
use vhdboot::config::{ChildLimits, Failpoint};
use vhdboot::model::Snapshot;

use vhdboot::boot::repair::RepairPlan;
use vhdboot::model::MountState;
use vhdboot::report::ReportFacts;
use vhdboot::sys::{blkid, kexec, pid1, timeline};
use vhdboot::tui::repair::{FatDevice, SaveTarget};

use crate::bundle;
use vhdboot::tui::host::{Failure, Host};
use vhdboot::tui::msg::Msg;

use super::loader_vars::LoaderVars;
use crate::live_scan::Discovery;

pub struct RealHost {
    pub discovery: Discovery,
    pub preloads: Preloads,
    /// The Boot Loader Interface variables, written just before kexec.
    pub loader: LoaderVars,
    /// The merge of trial changes that runs, if any (src/stage1/trial.rs).
    pub merge: Option<super::trial::Merge>,
    /// The coldplug, run again at each rescan: a disk plugged in while
    /// the menu runs may need a driver (none when there is no module index).
    pub hotplug: Option<vhdboot::modprobe::Coldplug>,
}

/// No preload is wanted.
const NONE_WANTED: u64 = 0;
/// The id of a load in the foreground ([`Host::load`]); the menu's preload
/// ids count up from 1 and never reach it.
const FOREGROUND: u64 = u64::MAX;

/// The preloads' shared state. The kernel holds one loaded kexec image, so
/// every load and unload happens under `slot`, and a preload that is no
/// longer `wanted` when it gets there loads nothing (or unloads what it
/// just loaded): only the wanted load ever stays in the kernel.
pub struct Preloads {
    /// Where a preload's outcome and steps go: the menu's inbox.
    inbox: mpsc::Sender<Msg>,
    /// The id of the load whose kernel the menu wants loaded.
    wanted: Arc<AtomicU64>,
    /// The id of the load whose kernel is in the kernel's kexec slot.
    slot: Arc<Mutex<Option<u64>>>,
    /// Warnings from preload threads, for the scan log.
    notes: Arc<Mutex<Vec<String>>>,
}

impl Preloads {
    pub fn new(inbox: mpsc::Sender<Msg>) -> Preloads {
        Preloads {
            inbox,
            wanted: Arc::new(AtomicU64::new(NONE_WANTED)),
            slot: Arc::new(Mutex::new(None)),
            notes: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl Preloads {
    /// Sends the preloads' news to a new menu inbox from now on.
    pub fn replace_inbox(&mut self, inbox: mpsc::Sender<Msg>) {
        self.inbox = inbox;
    }
}

/// A lock whose holder panicked still guards valid data (an id).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Unloads the kernel in the slot unless it is the wanted one.
fn unload_unwanted(slot: &mut Option<u64>, wanted: u64) {
    if slot.is_some_and(|loaded| loaded != wanted) {
        let _ = kexec::kexec_file_unload();
        timeline::mark("preload unloaded");
        *slot = None;
    }
}

/// The two memfds for `plan`, filled by the bounded child; the warning it
/// found, if any.
fn prepare_files(
    plan: &BootPlan,
    limits: &ChildLimits,
    cancelled: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(File, File, Option<String>), Failure> {
    let memfd = |what| {
        kexec::memfd(what).map_err(|e| {
            Failure::new(
                format!("creating the {what} memfd for {}", plan.title),
                e,
                "free memory or use the rescue shell",
            )
        })
    };
    let kernel = memfd("kernel")?;
    let initrd = memfd("initrd")?;
    // The image's bytes are untrusted: a child reads the kernel and
    // initrd into the memfds and checks the initrd, under the load
    // limits, so a damaged ESP or initrd costs this boot, not PID 1.
    let warning = crate::probe::prepare_boot(plan, limits, &kernel, &initrd, cancelled, progress)?;
    Ok((kernel, initrd, warning))
}

/// kexec_file_load of the prepared files, or the failpoint's refusal.
fn load_files(plan: &BootPlan, kernel: &File, initrd: &File) -> Result<(), Failure> {
    let loaded = if Failpoint::KexecRefusedOnce.fails() {
        Err(format!(
            "refused on purpose by {} (test only)",
            Failpoint::KexecRefusedOnce
        ))
    } else {
        kexec::kexec_file_load_files(kernel, Some(initrd), &plan.cmdline).map_err(|e| e.to_string())
    };
    loaded.map_err(|e| {
        Failure::new(
            format!("loading {} with kexec_file_load", plan.title),
            e,
            "pick another entry, or use the rescue shell",
        )
    })?;
    timeline::mark("kexec_file_load done");
    Ok(())
}

/// One preload, in its own thread: prepare, then load under the slot's
/// lock if still wanted. Says how it ended unless it was cancelled, in
/// which case nobody listens.
fn run_preload(
    id: u64,
    plan: BootPlan,
    limits: ChildLimits,
    inbox: mpsc::Sender<Msg>,
    wanted: Arc<AtomicU64>,
    slot: Arc<Mutex<Option<u64>>>,
    notes: Arc<Mutex<Vec<String>>>,
) {
    timeline::mark("preload started");
    let cancelled = || wanted.load(Ordering::SeqCst) != id;
    let step = |step: &str| {
        let _ = inbox.send(Msg::PreloadStep {
            id,
            step: step.to_string(),
        });
    };
    let mut progress = |s: &str| step(s);
    let result = prepare_files(&plan, &limits, &cancelled, &mut progress).and_then(
        |(kernel, initrd, warning)| {
            if let Some(warning) = warning {
                lock(&notes).push(format!("{}: warning: {warning}", plan.title));
            }
            let mut slot = lock(&slot);
            if cancelled() {
                return Ok(());
            }
            step("loading");
            load_files(&plan, &kernel, &initrd)?;
            *slot = Some(id);
            // Cancelled during the load, which cannot be interrupted.
            unload_unwanted(&mut slot, wanted.load(Ordering::SeqCst));
            Ok(())
        },
    );
    if cancelled() {
        return;
    }
    if result.is_ok() {
        timeline::mark("preload ready");
    }
    let _ = inbox.send(Msg::Preloaded { id, result });
}

impl RealHost {
    /// After a reboot or kexec that failed, the volumes unmounted for it
    /// are mounted again read-only and scanned, so the menu's entries point
    /// at mounted files again and another boot can work without a restart.
    /// The mount points are named by device, so they are the same as before.
    fn mount_again(&mut self, what_failed: &str) {
        self.discovery.note(format!(
            "{what_failed} failed; mounting the volumes read-only again"
        ));
        let _ = self.discovery.remount_and_rescan();
    }
}

impl RealHost {
    /// Leaves the scan log and the timeline where a `vhdboot report` in
    /// the shell finds them (crate::bundle).
    fn leave_state_for_report(&mut self) {
        let state = bundle::Stage1State {
            snapshot: self.discovery.snapshot(),
            timeline: timeline::summary(),
            failures: Vec::new(),
        };
        if let Err(e) = bundle::write_state(&state) {
            self.discovery
                .note(format!("not saved for vhdboot report: {e}"));
        }
    }

    /// Moves the preload threads' warnings into the scan log.
    fn take_preload_notes(&mut self) {
        let notes = std::mem::take(&mut *lock(&self.preloads.notes));
        for note in notes {
            self.discovery.note(note);
        }
    }
}

impl Host for RealHost {
    fn load(&mut self, plan: &BootPlan) -> Result<(), Failure> {
        timeline::mark("boot requested");
        Failpoint::PanicOnBoot.hit();
        self.preloads.wanted.store(FOREGROUND, Ordering::SeqCst);
        let limits = self.discovery.config().load;
        let (kernel, initrd, warning) = prepare_files(plan, &limits, &|| false, &mut |_| {})?;
        if let Some(warning) = warning {
            self.discovery
                .note(format!("{}: warning: {warning}", plan.title));
        }
        // Waits for a cancelled preload's load or unload to finish.
        let mut slot = lock(&self.preloads.slot);
        load_files(plan, &kernel, &initrd)?;
        *slot = Some(FOREGROUND);
        self.loader.wanted_entry = Some(plan.entry_id.clone());
        Ok(())
    }

    fn preload(&mut self, id: u64, plan: &BootPlan) -> Option<Result<(), Failure>> {
        Failpoint::PanicOnBoot.hit();
        self.take_preload_notes();
        // exec starts the wanted preload only, so the last one asked for
        // is the entry a boot would select.
        self.loader.wanted_entry = Some(plan.entry_id.clone());
        let p = &self.preloads;
        p.wanted.store(id, Ordering::SeqCst);
        let (plan, limits) = (plan.clone(), self.discovery.config().load);
        let (inbox, wanted, slot, notes) = (
            p.inbox.clone(),
            Arc::clone(&p.wanted),
            Arc::clone(&p.slot),
            Arc::clone(&p.notes),
        );
        let title = plan.title.clone();
        std::thread::Builder::new()
            .name("preload".into())
            .spawn(move || run_preload(id, plan, limits, inbox, wanted, slot, notes))
            .map(|_| None)
            .unwrap_or_else(|e| {
                Some(Err(Failure::new(
                    format!("starting the preparation of {title}"),
                    e,
                    "press Enter again, or use the rescue shell",
                )))
            })
    }

    fn cancel_preload(&mut self) {
        let p = &self.preloads;
        p.wanted.store(NONE_WANTED, Ordering::SeqCst);
        // A running preload stops by itself within a moment; a finished one
        // is unloaded here, in a thread, because the slot may be held by a
        // kexec_file_load that runs for seconds.
        let (wanted, slot) = (Arc::clone(&p.wanted), Arc::clone(&p.slot));
        let unload = move || unload_unwanted(&mut lock(&slot), wanted.load(Ordering::SeqCst));
        if std::thread::Builder::new()
            .name("unload".into())
            .spawn(unload)
            .is_err()
        {
            unload_unwanted(&mut lock(&p.slot), p.wanted.load(Ordering::SeqCst));
        }
    }

    fn exec(&mut self) -> Failure {
        timeline::mark("reboot requested");
        self.take_preload_notes();
        let wanted = self.preloads.wanted.load(Ordering::SeqCst);
        if *lock(&self.preloads.slot) != Some(wanted) || wanted == NONE_WANTED {
            return Failure::new(
                "rebooting into the prepared kernel",
                "it is no longer loaded",
                "press Enter again to prepare it afresh",
            );
        }
        // Written before the kexec, from the firmware's NVRAM they reach
        // the target: its `bootctl status` names vhdboot and this entry.
        let snapshot = self.discovery.snapshot();
        if let Some(line) = self.loader.record_boot(&snapshot, timeline::monotonic()) {
            timeline::mark("EFI variables written");
            eprint!("\r\nvhdboot: {line}\r\n");
            self.discovery.note(line);
        }
        self.discovery.unmount_all();
        timeline::mark("reboot");
        // The kernel log goes with this kernel, so the boot path's timeline
        // is printed once on the console, where a serial log keeps it.
        eprint!("\r\nvhdboot: {}\r\n", timeline::summary());
        let cause = if Failpoint::ExecFailsOnce.fails() {
            format!(
                "failed on purpose by {} (test only)",
                Failpoint::ExecFailsOnce
            )
        } else {
            kexec::reboot_into_loaded_kernel().to_string()
        };
        self.mount_again("rebooting into the loaded kernel");
        Failure::new(
            "rebooting into the loaded kernel",
            cause,
            "pick the entry again, or use the rescue shell",
        )
    }

    fn rescue_shell(&mut self) -> Result<(), Failure> {
        self.leave_state_for_report();
        pid1::run_rescue_shell().map(|_status| ()).map_err(|e| {
            Failure::new(
                "running the rescue shell /bin/sh",
                e,
                "check that busybox is in the initramfs",
            )
        })
    }

    fn discard_trial(&mut self, plan: &vhdboot::boot::trial::TrialPlan) -> Result<String, Failure> {
        let result = super::trial::discard(plan);
        self.discovery.note(format!(
            "discard of {}'s trial: {}",
            plan.image_name,
            match &result {
                Ok(note) => note.clone(),
                Err(f) => f.to_string(),
            }
        ));
        result
    }

    fn start_merge(
        &mut self,
        plan: &vhdboot::boot::trial::TrialPlan,
    ) -> Result<vhdboot::trial::MergeStatus, Failure> {
        if self.merge.is_some() {
            return Err(Failure::new(
                format!("merging the trial changes into {}", plan.image_name),
                "another merge runs",
                "wait for it to end",
            ));
        }
        match super::trial::start(plan) {
            Ok((merge, status)) => {
                self.discovery.note(format!(
                    "merge of {}'s trial started{}: {}/{} {} sectors (allocated/total                      metadata)",
                    plan.image_name,
                    if plan.resuming { " (resumed)" } else { "" },
                    status.allocated,
                    status.total,
                    status.metadata
                ));
                self.merge = Some(merge);
                Ok(status)
            }
            Err(f) => {
                self.discovery.note(f.to_string());
                Err(f)
            }
        }
    }

    fn merge_status(&mut self) -> Result<vhdboot::trial::MergeStatus, Failure> {
        let Some(merge) = self.merge.take() else {
            return Err(Failure::new(
                "reading the merge's progress",
                "no merge runs",
                "press r to rescan",
            ));
        };
        let (merge, status) = merge.status().inspect_err(|f| {
            self.discovery.note(f.to_string());
        })?;
        self.merge = Some(merge);
        Ok(status)
    }

    fn finish_merge(&mut self) -> Result<String, Failure> {
        let Some(merge) = self.merge.take() else {
            return Err(Failure::new(
                "finishing the merge",
                "no merge runs",
                "press r to rescan",
            ));
        };
        let result = merge.finish();
        self.discovery.note(match &result {
            Ok(note) => note.clone(),
            Err(f) => f.to_string(),
        });
        result
    }

    fn repair(&mut self, plan: &RepairPlan) -> Result<Vec<String>, Failure> {
        self.leave_state_for_report();
        let result = super::repair::open_and_shell(plan);
        self.discovery.note(format!(
            "repair of {} ({:?}) ended: {}",
            plan.image_name,
            plan.mode,
            match &result {
                Ok(notes) if notes.is_empty() => "everything undone".to_string(),
                Ok(notes) => notes.join("; "),
                Err(f) => f.to_string(),
            }
        ));
        result
    }

    fn gather_report(&mut self) -> (ReportFacts, Vec<FatDevice>) {
        let (config, warnings) = bundle::config_in_force();
        let facts = bundle::gather(&config, &warnings, &timeline::summary());
        let fat = blkid::probe_block_devices(Path::new("/sys"))
            .into_iter()
            // The repair's own loop partitions are never save targets.
            .filter(|d| d.fstype.as_deref() == Some("vfat") && !d.name.starts_with("loop"))
            .map(|d| FatDevice {
                device: d.device,
                label: d.label,
                size: d.size,
            })
            .collect();
        (facts, fat)
    }

    fn save_report(&mut self, target: &SaveTarget, text: &str) -> Result<String, Failure> {
        let snapshot = self.discovery.snapshot();
        let host_mount = match target {
            SaveTarget::Host { volume, .. } => {
                snapshot.volumes.get(*volume).and_then(|v| match &v.mount {
                    MountState::Mounted { at } => Some(at.clone()),
                    _ => None,
                })
            }
            SaveTarget::Fat(_) => None,
        };
        let result = super::repair::save_report(target, host_mount.as_deref(), text);
        if let Ok(path) = &result {
            self.discovery.note(format!("saved the report to {path}"));
        }
        result
    }

    fn rescan(&mut self) -> Result<Snapshot, Failure> {
        self.take_preload_notes();
        if let Some(plug) = self.hotplug.as_mut() {
            for line in super::coldplug_again(plug) {
                self.discovery.note(line);
            }
        }
        Ok(self.discovery.remount_and_rescan())
    }

    fn reboot(&mut self) -> Failure {
        self.discovery.unmount_all();
        let e = pid1::sync_and_reboot(pid1::RebootMode::Restart);
        self.mount_again("rebooting");
        Failure::new("rebooting", e, "hold the power button")
    }

    fn power_off(&mut self) -> Failure {
        self.discovery.unmount_all();
        let e = pid1::sync_and_reboot(pid1::RebootMode::PowerOff);
        self.mount_again("powering off");
        Failure::new("powering off", e, "hold the power button")
    }
}
