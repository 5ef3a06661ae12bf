//! Opening an image for repair, and saving the support report: the
//! syscalls in the order `vhdboot::boot::repair` decides them, each undone
//! in reverse when the shell exits (ZFSBootMenu's recovery shell).
//!
//! What is written where:
//! - read-only repair: nothing. The loop device is read-only
//!   (LO_FLAGS_READ_ONLY) and every filesystem is mounted `ro` without
//!   journal replay (`noload`, `norecovery`, `rescue=nologreplay`).
//! - read-write repair: the host volume is remounted read-write (its mount
//!   flags only; ntfs3 and exfat then may update their own metadata) for the
//!   shell's lifetime, the image file is written through a writable loop
//!   device, and the image's filesystems are mounted read-write, so the
//!   user's changes (and a journal replay) land in the image. Afterwards
//!   the host is remounted read-only, which writes its data back.
//! - saving the report: `vhdboot-report.txt` in the top folder of the
//!   chosen FAT filesystem (mounted at /run/vhdboot/save for the write
//!   only), or of the chosen host volume (remounted read-write for the
//!   write only).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vhdboot::boot::repair::{
    CHROOT_BINDS, PartitionOutcome, REPAIR_DIR, RepairMode, RepairPlan, chroot_root, partition_dir,
    partition_mount, summary,
};
use vhdboot::sys::loopdev::{self, LoopConfig, LoopDevice};
use vhdboot::sys::mount::{self, MountMode, Unmounted};
use vhdboot::sys::{blkid, pid1};
use vhdboot::terminal_text::escape_controls;
use vhdboot::tui::host::Failure;
use vhdboot::tui::repair::SaveTarget;

/// How long the kernel's partition scan of the loop device may take.
const PARTITION_WAIT: Duration = Duration::from_secs(3);

/// Where a FAT filesystem is mounted while the report is written to it.
const SAVE_DIR: &str = "/run/vhdboot/save";

/// What is open, in the order it was opened, so that it is closed in
/// reverse.
#[derive(Default)]
struct Opened {
    host_read_write: Option<PathBuf>,
    device: Option<LoopDevice>,
    /// Partition mounts, then binds.
    mounts: Vec<PathBuf>,
}

impl Opened {
    /// Undoes everything, in reverse; returns what did not go cleanly.
    fn close(self) -> Vec<String> {
        let mut notes = Vec::new();
        for at in self.mounts.iter().rev() {
            match mount::umount_fs(at) {
                Ok(Unmounted::Clean) => {
                    // An empty partition folder is ours; a bind target is
                    // the image's own folder and stays.
                    if at
                        .parent()
                        .is_some_and(|p| p.parent() == Some(Path::new(REPAIR_DIR)))
                    {
                        let _ = std::fs::remove_dir(at);
                    }
                }
                Ok(Unmounted::Detached) => {
                    notes.push(format!("{} was busy and was detached lazily", at.display()))
                }
                Err(e) => notes.push(e.to_string()),
            }
        }
        if let Some(dev) = &self.device
            && let Err(e) = dev.detach()
        {
            notes.push(e.to_string());
        }
        if let Some(host) = &self.host_read_write
            && let Err(e) = remount_read_only_when_free(host)
        {
            notes.push(format!(
                "{e}; the host stays read-write until the next reboot"
            ));
        }
        notes
    }
}

/// Opens `plan`'s image, runs the shell in its folder with the summary on
/// screen, and closes it all when the shell exits.
pub fn open_and_shell(plan: &RepairPlan) -> Result<Vec<String>, Failure> {
    let mut opened = Opened::default();
    let outcomes = match open(plan, &mut opened) {
        Ok(o) => o,
        Err(f) => {
            let notes = opened.close();
            let mut f = f;
            if !notes.is_empty() {
                f.cause = format!("{}; while undoing: {}", f.cause, notes.join("; "));
            }
            return Err(f);
        }
    };
    let root = chroot_root(&outcomes).map(Path::to_path_buf);
    let mut bind_notes = Vec::new();
    if plan.mode == RepairMode::ReadWrite
        && let Some(root) = &root
    {
        bind_chroot(root, &mut opened, &mut bind_notes);
    }
    let mut console = std::io::stderr();
    let _ = writeln!(console);
    let mut lines = summary(plan, &outcomes, root.as_deref());
    lines.extend(bind_notes.into_iter().map(|n| format!("  {n}")));
    for line in lines {
        let _ = writeln!(console, "{}", escape_controls(&line));
    }
    let shell = pid1::run_rescue_shell_in(&plan.dir);
    let notes = opened.close();
    shell.map_err(|e| {
        Failure::new(
            "running the repair shell /bin/sh",
            e,
            "check that busybox is in the initramfs",
        )
    })?;
    Ok(notes)
}

/// How long the host's read-only remount waits for the loop device to let
/// go of the image file: the kernel finishes a detach when the last opener
/// closes the device, and until then the file is open for writing, so the
/// remount fails with EBUSY.
const HOST_FREE_WAIT: Duration = Duration::from_secs(5);

pub(super) fn remount_read_only_when_free(host: &Path) -> Result<(), mount::MountError> {
    let deadline = std::time::Instant::now() + HOST_FREE_WAIT;
    loop {
        match mount::remount(host, MountMode::ReadOnly) {
            Err(mount::MountError::Remount {
                source: nix::errno::Errno::EBUSY,
                ..
            }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Loads the kernel module of filesystem driver `driver` if it is a module
/// and not loaded yet (stage 1 loads only the host drivers at boot). A
/// failure is left to the mount, whose error then names the driver.
pub(super) fn load_driver(driver: &str) {
    let Ok(release) = vhdboot::sys::modules::kernel_release() else {
        return;
    };
    let root = Path::new("/lib/modules").join(release);
    if let Ok(index) = vhdboot::modprobe::ModuleIndex::load(&root) {
        let _ = index.load_module(driver);
    }
}

fn open(plan: &RepairPlan, opened: &mut Opened) -> Result<Vec<PartitionOutcome>, Failure> {
    let read_only = plan.mode == RepairMode::ReadOnly;
    std::fs::create_dir_all(&plan.dir).map_err(|e| {
        Failure::new(
            format!("creating {}", plan.dir.display()),
            e,
            "free memory (the folder is on /run), or use the rescue shell",
        )
    })?;
    if !read_only {
        mount::remount(&plan.host_mount, MountMode::ReadWrite).map_err(|e| {
            Failure::new(
                format!("making {} writable", plan.volume_name),
                e,
                "open the image read-only (o) instead",
            )
        })?;
        opened.host_read_write = Some(plan.host_mount.clone());
    }
    let config = LoopConfig {
        partscan: true,
        read_only,
        size_limit: plan.data_size,
        ..LoopConfig::default()
    };
    let device = loopdev::attach(&plan.image_file(), &config).map_err(|e| {
        Failure::new(
            format!("attaching {} to a loop device", plan.image_name),
            e,
            "check the scan log (l) for the image's problems",
        )
    })?;
    opened.device = Some(device.clone());
    let mut partitions = loopdev::wait_for_partitions(&device, PARTITION_WAIT);
    if partitions.is_empty() {
        // A filesystem on the whole image, without a partition table.
        partitions.push(device.path.clone());
    }
    let mode = if read_only {
        MountMode::ReadOnly
    } else {
        MountMode::ReadWrite
    };
    let mut outcomes = Vec::new();
    for part in partitions {
        let sb = blkid::probe_superblock(&part).unwrap_or_default();
        let target = partition_dir(&plan.dir, &part);
        let mounted = partition_mount(sb.fstype.as_deref().unwrap_or(""), plan.mode)
            .and_then(|how| {
                load_driver(how.driver);
                mount::mount_fs(&part, &target, how.driver, mode, how.options)
                    .map_err(|e| e.to_string())
            })
            .map(|()| {
                opened.mounts.push(target.clone());
                target.clone()
            });
        let os_release = mounted.as_ref().is_ok_and(|at| {
            at.join("etc/os-release").exists() || at.join("usr/lib/os-release").exists()
        });
        outcomes.push(PartitionOutcome {
            device: part,
            fstype: sb.fstype,
            label: sb.label,
            mounted,
            os_release,
        });
    }
    Ok(outcomes)
}

/// Binds /proc, /sys, /dev and /run into `root`, where it has the folder.
fn bind_chroot(root: &Path, opened: &mut Opened, notes: &mut Vec<String>) {
    for name in CHROOT_BINDS {
        let target = root.join(name);
        if !target.is_dir() {
            notes.push(format!("{} has no /{name}; not bound", root.display()));
            continue;
        }
        match mount::bind_mount(&Path::new("/").join(name), &target) {
            Ok(()) => opened.mounts.push(target),
            Err(e) => notes.push(e.to_string()),
        }
    }
}

/// Writes the report to `target` and puts the volume back as it was.
/// `host_mount` is where stage 1 mounted a host target read-only.
pub fn save_report(
    target: &SaveTarget,
    host_mount: Option<&Path>,
    text: &str,
) -> Result<String, Failure> {
    let failed = |e: &dyn std::fmt::Display| {
        Failure::new(
            format!("saving the report to {}", target.describe()),
            e.to_string(),
            "pick another volume, or run vhdboot report in the shell (s)",
        )
    };
    match target {
        SaveTarget::Fat(fat) => {
            let dir = Path::new(SAVE_DIR);
            mount::mount_fs(&fat.device, dir, "vfat", MountMode::ReadWrite, "")
                .map_err(|e| failed(&e))?;
            let written = write_synced(&dir.join(vhdboot::report::FILE_NAME), text);
            let unmounted = mount::umount_fs(dir);
            written.map_err(|e| failed(&e))?;
            unmounted.map_err(|e| failed(&e))?;
            Ok(format!(
                "{}:/{}",
                fat.device.display(),
                vhdboot::report::FILE_NAME
            ))
        }
        SaveTarget::Host { device, .. } => {
            let at = host_mount.ok_or_else(|| failed(&"the volume is not mounted"))?;
            mount::remount(at, MountMode::ReadWrite).map_err(|e| failed(&e))?;
            let written = write_synced(&at.join(vhdboot::report::FILE_NAME), text);
            let back = mount::remount(at, MountMode::ReadOnly);
            written.map_err(|e| failed(&e))?;
            back.map_err(|e| failed(&e))?;
            Ok(format!(
                "{}:/{}",
                device.display(),
                vhdboot::report::FILE_NAME
            ))
        }
    }
}

fn write_synced(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
