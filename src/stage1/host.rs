//! The real `Host`: what the menu's effects do on the machine.

use vhdboot::boot::plan::BootPlan;
use vhdboot::config::Failpoint;
use vhdboot::model::Snapshot;
use vhdboot::sys::{kexec, pid1, timeline};
use vhdboot::tui::host::{Failure, Host};

use crate::live_scan::Discovery;

pub struct RealHost {
    pub discovery: Discovery,
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
        let memfd = |what| {
            kexec::memfd(what).map_err(|e| {
                failure(
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
        let limits = self.discovery.config().load;
        if let Some(warning) = crate::probe::prepare_boot(plan, &limits, &kernel, &initrd)? {
            self.discovery
                .note(format!("{}: warning: {warning}", plan.title));
        }
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
