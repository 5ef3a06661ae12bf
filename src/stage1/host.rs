//! The real `Host`: what the menu's effects do on the machine.

use std::fs::File;

use vhdboot::boot::cpio;
use vhdboot::boot::plan::BootPlan;
use vhdboot::config::Failpoint;
use vhdboot::discovery::Snapshot;
use vhdboot::image::readahead::ReadAhead;
use vhdboot::image::{initrd, inspect};
use vhdboot::sys::{kexec, pid1, timeline};
use vhdboot::tui::host::{Failure, Host};

use super::discover::Discovery;

pub struct RealHost {
    pub discovery: Discovery,
}

/// The initrd kexec_file_load gets (see `cpio::write_stage2_initrd`),
/// written straight into a memfd. The binary is copied from /proc/self/exe
/// inside the kernel, so the 3 MB binary is never held in memory: every
/// extra copy cost tens of milliseconds under QEMU TCG (bench/kexec-trace).
fn stage2_initrd(target_initrd: &[u8]) -> Result<File, Failure> {
    let hint = "use the rescue shell and report it";
    let mut me = File::open("/proc/self/exe")
        .map_err(|e| failure("opening vhdboot itself for stage 2", e, hint))?;
    let len = me
        .metadata()
        .map_err(|e| failure("reading the size of vhdboot itself for stage 2", e, hint))?
        .len();
    let mut out =
        kexec::memfd("initrd").map_err(|e| failure("building the initrd for kexec", e, hint))?;
    cpio::write_stage2_initrd(&mut out, target_initrd, &mut me, len).map_err(|e| {
        failure(
            "writing the initrd with the stage-2 archive to a memfd",
            e,
            "free memory or use the rescue shell",
        )
    })?;
    Ok(out)
}

fn failure(what: impl Into<String>, cause: impl ToString, hint: impl Into<String>) -> Failure {
    Failure {
        what: what.into(),
        cause: cause.to_string(),
        hint: hint.into(),
    }
}

impl RealHost {
    /// After a reboot or kexec that failed, the volumes unmounted for it
    /// are mounted again read-only and scanned, so the menu's entries point
    /// at mounted files again and another boot can work without a restart.
    /// The mount points are named by UUID, so they are the same as before.
    fn mount_again(&mut self, what_failed: &str) {
        self.discovery.note(format!(
            "{what_failed} failed; mounting the volumes read-only again"
        ));
        let _ = self.discovery.remount_and_rescan();
    }
}

impl Host for RealHost {
    fn load(&mut self, plan: &BootPlan) -> Result<(), Failure> {
        timeline::mark("boot requested");
        Failpoint::PanicOnBoot.hit();
        let path = plan.image_file();
        let where_ = format!("{} on {}", plan.image_path, plan.host_device.display());
        let mut file = File::open(&path).map_err(|e| {
            failure(
                format!("opening {where_}"),
                e,
                "the image may have been moved or deleted; press r to rescan",
            )
        })?;
        let len = file
            .metadata()
            .map_err(|e| {
                failure(
                    format!("reading the size of {where_}"),
                    e,
                    "press r to rescan",
                )
            })?
            .len();
        if len < plan.data_size {
            return Err(failure(
                format!("checking {where_}"),
                format!(
                    "the file is {len} bytes, smaller than its {} data bytes",
                    plan.data_size
                ),
                "the image changed since the scan; press r to rescan",
            ));
        }
        let payload =
            // fatfs reads one cluster per call; read-ahead makes that a few
            // hundred large reads for a whole UKI.
            inspect::load_payload(&mut ReadAhead::new(&mut file), plan.data_size, &plan.source).map_err(|e| {
                failure(
                    format!("reading the kernel of {}", plan.title),
                    e,
                    "check the entry with `vhdboot inspect` on another machine",
                )
            })?;
        timeline::mark("UKI read");
        // The pre-flight module check: only now are the initrd's bytes in
        // memory, and decompressing them is too slow for discovery.
        let check = initrd::check_payload(&payload, None, plan.fstype.driver());
        if let Some(problem) = check.problem() {
            if problem.blocks_boot {
                return Err(failure(plan.title.clone(), problem.what, problem.hint));
            }
            self.discovery
                .note(format!("{}: warning: {}", plan.title, problem.what));
        }
        timeline::mark("initrd checked");
        let initrd = stage2_initrd(&payload.initrd)?;
        timeline::mark("stage-2 archive appended");
        let kernel = kexec::memfd_with("kernel", &payload.kernel).map_err(|e| {
            failure(
                format!("copying the kernel of {} for kexec", plan.title),
                e,
                "free memory or use the rescue shell",
            )
        })?;
        drop(payload);
        timeline::mark("kernel copied");
        let loaded = if Failpoint::KexecRefusedOnce.fails() {
            Err(format!(
                "refused on purpose by {} (test only)",
                Failpoint::KexecRefusedOnce
            ))
        } else {
            kexec::kexec_file_load_files(&kernel, Some(&initrd), &plan.cmdline)
                .map_err(|e| e.to_string())
        };
        loaded.map_err(|e| {
            failure(
                format!("loading {} with kexec_file_load", plan.title),
                e,
                "pick another entry, or use the rescue shell",
            )
        })?;
        timeline::mark("kexec_file_load done");
        Ok(())
    }

    fn exec(&mut self) -> Failure {
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
        failure(
            "rebooting into the loaded kernel",
            cause,
            "pick the entry again, or use the rescue shell",
        )
    }

    fn rescue_shell(&mut self) -> Result<(), Failure> {
        pid1::run_rescue_shell().map(|_status| ()).map_err(|e| {
            failure(
                "running the rescue shell /bin/sh",
                e,
                "check that busybox is in the initramfs",
            )
        })
    }

    fn rescan(&mut self) -> Result<Snapshot, Failure> {
        Ok(self.discovery.remount_and_rescan())
    }

    fn reboot(&mut self) -> Failure {
        self.discovery.unmount_all();
        let e = pid1::sync_and_reboot(pid1::RebootMode::Restart);
        self.mount_again("rebooting");
        failure("rebooting", e, "hold the power button")
    }

    fn power_off(&mut self) -> Failure {
        self.discovery.unmount_all();
        let e = pid1::sync_and_reboot(pid1::RebootMode::PowerOff);
        self.mount_again("powering off");
        failure("powering off", e, "hold the power button")
    }
}
