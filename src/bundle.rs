//! The support bundle's facts from the machine, for both faces that make
//! one: the menu (stage 1) and `vhdboot report` (the CLI, also in the
//! rescue shell). `vhdboot::report` lays them out; this gathers them.
//!
//! PID 1 holds the scan log, the boot timeline and the failures it saw in
//! its own memory, which a `vhdboot report` run in the rescue shell cannot
//! reach. So before it hands the console to a shell, stage 1 writes them to
//! [`STATE_FILE`] (on the initramfs's /run, never on a user's disk), and
//! the CLI reads them from there when it finds the file.

use std::path::Path;

use serde::{Deserialize, Serialize};
use vhdboot::config::Config;
use vhdboot::model::Snapshot;
use vhdboot::report::{MAX_KERNEL_LINES, ReportFacts};
use vhdboot::sys::{blkid, kmsg};

/// Where stage 1 leaves its state for a `vhdboot report` in the shell.
pub const STATE_FILE: &str = "/run/vhdboot/state.json";

/// The largest state file read back (a snapshot of many images with long
/// logs stays far below it).
const MAX_STATE_BYTES: u64 = 16 << 20;

/// What stage 1 knows and a shell's `vhdboot report` does not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stage1State {
    pub snapshot: Snapshot,
    pub timeline: String,
    /// The menu's failures, as `what: cause` and `hint` pairs.
    pub failures: Vec<(String, String)>,
}

/// Writes the state for a shell's `vhdboot report`. Best effort: a report
/// without it still has everything but the menu's own memory.
pub fn write_state(state: &Stage1State) -> Result<(), String> {
    let path = Path::new(STATE_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string(state).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("writing {STATE_FILE}: {e}"))
}

/// Reads stage 1's state, if this runs under it and the file is sound.
pub fn read_state() -> Option<Stage1State> {
    use std::io::Read;
    let file = std::fs::File::open(STATE_FILE).ok()?;
    let mut text = String::new();
    file.take(MAX_STATE_BYTES).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Gathers the facts that need the machine: versions, the configuration
/// in force, the kernel log (bounded) and the block devices.
/// `timeline` is the boot timeline as its owner knows it.
pub fn gather(config: &Config, config_warnings: &[String], timeline: &str) -> ReportFacts {
    let kernel = std::fs::read_to_string("/proc/version")
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let firmware = if Path::new("/sys/firmware/efi").exists() {
        "UEFI"
    } else {
        "BIOS (or no EFI runtime)"
    };
    let versions = vec![
        format!("vhdboot {}", env!("CARGO_PKG_VERSION")),
        format!("kernel: {kernel}"),
        format!("firmware: {firmware}"),
    ];
    let mut configuration = vec![
        format!(
            "kernel command line: {}",
            std::fs::read_to_string("/proc/cmdline")
                .unwrap_or_default()
                .trim()
        ),
        format!("{config:#?}"),
    ];
    configuration.extend(config_warnings.iter().map(|w| format!("warning: {w}")));
    let kernel_log = match kmsg::read_recent(MAX_KERNEL_LINES) {
        Ok(records) => records.into_iter().map(|r| r.message).collect(),
        Err(e) => vec![format!("could not read the kernel log: {e}")],
    };
    ReportFacts {
        versions,
        configuration,
        timeline: vec![timeline.to_string()],
        kernel_log,
        block_devices: block_devices(),
    }
}

/// One line per block device: name, size, filesystem, label, UUIDs.
fn block_devices() -> Vec<String> {
    blkid::probe_block_devices(Path::new("/sys"))
        .into_iter()
        .map(|d| {
            let mut line = format!("{} {} bytes", d.device.display(), d.size);
            let fields = [
                ("type", &d.fstype),
                ("label", &d.label),
                ("uuid", &d.uuid),
                ("partuuid", &d.partuuid),
                ("error", &d.probe_error),
            ];
            for (name, value) in fields {
                if let Some(v) = value {
                    line.push_str(&format!(" {name}={v:?}"));
                }
            }
            if d.read_only {
                line.push_str(" read-only");
            }
            line
        })
        .collect()
}

/// The configuration PID 1 reads: /etc/vhdboot.conf and /proc/cmdline.
pub fn config_in_force() -> (Config, Vec<String>) {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let conf = std::fs::read_to_string("/etc/vhdboot.conf").ok();
    Config::from_sources(conf.as_deref(), &cmdline)
}
