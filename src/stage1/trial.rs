//! Keeping and discarding a pending trial (issue 15): the only writes
//! stage 1 makes to a host volume of its own accord, each after the user
//! confirmed it and after `vhdboot::boot::trial::trial_plan` found the host safe
//! to write (the checks stage 2 makes before its read-write mount).
//!
//! What each one writes, and nothing else:
//! - discard: the host is remounted read-write (its mount flags only),
//!   `<image>.trial` is deleted and the folder synced, and the host is
//!   remounted read-only.
//! - keep: the host is remounted read-write; `<image>.trial.merging`, an
//!   empty marker, is created and synced before anything else, so that a
//!   power cut from then on makes the next start offer to finish the
//!   merge (and refuse to boot the half-merged image); the image file is
//!   attached to a writable loop device limited to its data size (its VHD
//!   footer lies past the limit and is never written) and `<image>.trial`
//!   to a second one; device-mapper's `snapshot-merge` target then copies
//!   each changed chunk from the store back into the image and records
//!   its progress in the store, in the kernel's own format. When the
//!   kernel reports no data chunk left, the device and the loop devices
//!   go, the image file is synced, `<image>.trial` and then the marker are
//!   deleted, the folder is synced and the host is remounted read-only.
//!
//! Device-mapper sits on loop devices of the files, never on the host
//! partition (shared/lessons.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use vhdboot::boot::handoff::Overlay;
use vhdboot::boot::trial::TrialPlan;
use vhdboot::image::vhd;
use vhdboot::sys::devmapper::{self, Target};
use vhdboot::sys::loopdev::{self, LoopConfig, LoopDevice};
use vhdboot::sys::mount::{self, MountMode};
use vhdboot::trial::{MergeStatus, parse_merge_status};
use vhdboot::tui::host::Failure;

/// The merge's device-mapper name.
const DM_NAME: &str = "vhdboot-merge";

/// A merge that runs: what to undo, in reverse.
pub struct Merge {
    plan: TrialPlan,
    origin: LoopDevice,
    cow: LoopDevice,
}

/// Deletes the store. The host is read-write for that only.
pub fn discard(plan: &TrialPlan) -> Result<String, Failure> {
    let failed = |e: &dyn std::fmt::Display| {
        Failure::new(
            format!("discarding the trial changes of {}", plan.image_name),
            e.to_string(),
            "check the scan log (l); the trial stays until it is discarded",
        )
    };
    let store = plan.store_file();
    // Only a regular file is a store (discovery said so; this checks again
    // at the moment of writing).
    let meta = std::fs::symlink_metadata(&store).map_err(|e| failed(&e))?;
    if !meta.is_file() {
        return Err(failed(&format!(
            "{} is not a regular file",
            store.display()
        )));
    }
    mount::remount(&plan.host_mount, MountMode::ReadWrite).map_err(|e| failed(&e))?;
    let removed = std::fs::remove_file(&store).and_then(|()| sync_dir(&store));
    let back = super::repair::remount_read_only_when_free(&plan.host_mount);
    removed.map_err(|e| failed(&format!("deleting {}: {e}", store.display())))?;
    back.map_err(|e| {
        failed(&format!(
            "{e}; the host stays read-write until the next reboot"
        ))
    })?;
    Ok(format!(
        "Discarded the trial changes: {}.trial deleted; {} unchanged.",
        plan.image_name, plan.image_name
    ))
}

/// Starts (or resumes) the merge and returns its first status.
pub fn start(plan: &TrialPlan) -> Result<(Merge, MergeStatus), Failure> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Failure::new(
            format!("merging the trial changes into {}: {what}", plan.image_name),
            e.to_string(),
            if plan.resuming {
                "the merge stays cut short; check the scan log (l), then press m to try again"
            } else {
                "nothing was merged; check the scan log (l), then press m to try again"
            },
        )
    };
    // The same modules a snapshot boot needs in the target, here in the
    // bootstrapper's kernel (initrd/build puts them in its initramfs).
    for m in Overlay::MODULES {
        super::repair::load_driver(m);
    }
    mount::remount(&plan.host_mount, MountMode::ReadWrite)
        .map_err(|e| failed("making the host writable", &e))?;
    let undo_host = |f: Failure| {
        let _ = super::repair::remount_read_only_when_free(&plan.host_mount);
        f
    };
    let marker = plan.marker_file();
    if !plan.resuming {
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .and_then(|()| sync_dir(&marker))
            .map_err(|e| undo_host(failed(&format!("creating {}", marker.display()), &e)))?;
    }
    // A marker made now, before any chunk moved, goes again when the
    // merge cannot start: the image is still whole.
    let undo_marker = |f: Failure| {
        if !plan.resuming {
            let _ = std::fs::remove_file(&marker).and_then(|()| sync_dir(&marker));
        }
        undo_host(f)
    };
    let origin = loopdev::attach(
        &plan.image_file(),
        &LoopConfig {
            direct_io: true,
            size_limit: plan.data_size,
            block_size: vhd::SECTOR_SIZE,
            ..LoopConfig::default()
        },
    )
    .map_err(|e| undo_marker(failed("attaching the image", &e)))?;
    let cow = match loopdev::attach(
        &plan.store_file(),
        &LoopConfig {
            direct_io: true,
            block_size: vhd::SECTOR_SIZE,
            ..LoopConfig::default()
        },
    ) {
        Ok(d) => d,
        Err(e) => {
            let _ = origin.detach();
            return Err(undo_marker(failed("attaching the .trial store", &e)));
        }
    };
    let sectors = plan.data_size / u64::from(vhd::SECTOR_SIZE);
    let target = Target::snapshot_merge(&origin.path, &cow.path, sectors);
    if let Err(e) = devmapper::create(DM_NAME, &target) {
        let _ = cow.detach();
        let _ = origin.detach();
        return Err(undo_marker(failed("starting snapshot-merge", &e)));
    }
    let merge = Merge {
        plan: plan.clone(),
        origin,
        cow,
    };
    let first = match status() {
        Ok(s) => s,
        Err(e) => return Err(merge.stop(failed("reading its progress", &e))),
    };
    Ok((merge, first))
}

fn status() -> Result<MergeStatus, String> {
    let text = devmapper::status(DM_NAME).map_err(|e| e.to_string())?;
    parse_merge_status(&text).map_err(|e| e.to_string())
}

impl Merge {
    /// The merge's progress; on an error everything is undone but the
    /// store and the marker, so the next start resumes.
    pub fn status(self) -> Result<(Merge, MergeStatus), Failure> {
        match status() {
            Ok(s) => Ok((self, s)),
            Err(e) => {
                let f = Failure::new(
                    format!("merging the trial changes into {}", self.plan.image_name),
                    e,
                    "the merge stopped and resumes when you press m again; the image does not \
                     boot until it is finished",
                );
                Err(self.stop(f))
            }
        }
    }

    /// Removes the device and the loop devices and puts the host back
    /// read-only, keeping the store and the marker. Returns `f` with what
    /// did not undo cleanly.
    fn stop(self, mut f: Failure) -> Failure {
        let notes = self.release();
        if let Err(e) = super::repair::remount_read_only_when_free(&self.plan.host_mount) {
            f.cause = format!("{}; {e}", f.cause);
        }
        if !notes.is_empty() {
            f.cause = format!("{}; while undoing: {}", f.cause, notes.join("; "));
        }
        f
    }

    fn release(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Err(e) = remove_when_idle(DM_NAME) {
            notes.push(e.to_string());
        }
        for dev in [&self.cow, &self.origin] {
            if let Err(e) = dev.detach() {
                notes.push(e.to_string());
            }
        }
        notes
    }

    /// The kernel reported no data chunk left: take the stack down, sync
    /// the image, delete the store and then the marker, and remount the
    /// host read-only.
    pub fn finish(self) -> Result<String, Failure> {
        let plan = self.plan.clone();
        let failed = |e: &dyn std::fmt::Display| {
            Failure::new(
                format!("finishing the merge into {}", plan.image_name),
                e.to_string(),
                "the changes are in the image; restart, and press m to finish deleting the \
                 .trial file",
            )
        };
        let notes = self.release();
        if !notes.is_empty() {
            let _ = super::repair::remount_read_only_when_free(&plan.host_mount);
            return Err(failed(&notes.join("; ")));
        }
        let image = plan.image_file();
        let (store, marker) = (plan.store_file(), plan.marker_file());
        let written = std::fs::File::open(&image)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("syncing {}: {e}", image.display()))
            .and_then(|()| {
                std::fs::remove_file(&store)
                    .and_then(|()| sync_dir(&store))
                    .map_err(|e| format!("deleting {}: {e}", store.display()))
            })
            .and_then(|()| {
                std::fs::remove_file(&marker)
                    .and_then(|()| sync_dir(&marker))
                    .map_err(|e| format!("deleting {}: {e}", marker.display()))
            });
        let back = super::repair::remount_read_only_when_free(&plan.host_mount);
        written.map_err(|e| failed(&e))?;
        back.map_err(|e| {
            failed(&format!(
                "{e}; the host stays read-write until the next reboot"
            ))
        })?;
        Ok(format!(
            "Kept the trial changes: merged into {}; {}.trial deleted.",
            plan.image_name, plan.image_name
        ))
    }
}

/// Removes the device, retrying while something (udev's probe in a
/// target, a reader of /dev/dm-N) still has it open.
fn remove_when_idle(name: &str) -> Result<(), devmapper::DmError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match devmapper::remove(name) {
            Err(devmapper::DmError::Ioctl {
                source: nix::errno::Errno::EBUSY,
                ..
            }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Syncs the folder holding `path`, so that a creation or deletion in it
/// survives a power cut.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    std::fs::File::open(dir)?.sync_all()
}
