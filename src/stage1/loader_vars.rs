//! Stage 1's side of the Boot Loader Interface: what it reads from the EFI
//! variables before the menu (the one-shot, the saved and the set default)
//! and what it writes just before kexec, so that the target's `bootctl
//! status` and `systemd-analyze` see vhdboot. Variables live in the
//! firmware, so they survive kexec; they are written once per boot, and
//! only those whose bytes changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vhdboot::boot::entry_id::all_entry_ids;
use vhdboot::boot::loader_interface::{
    self as li, BootRecord, LOADER_GUID, boot_variables, decode_string, file_name, names,
    split_attributes,
};
use vhdboot::discovery::decisions::Remembered;
use vhdboot::model::Snapshot;
use vhdboot::sys::efivars::{self, VarChange};

/// What stage 1 keeps between the start and the kexec.
pub struct LoaderVars {
    dir: PathBuf,
    /// When PID 1 started.
    init: Duration,
    /// `default = @saved` is on.
    save_last_booted: bool,
    /// The entry whose kernel was loaded last (the one exec would start).
    pub wanted_entry: Option<String>,
}

impl LoaderVars {
    pub fn new(dir: &Path, init: Duration, save_last_booted: bool) -> LoaderVars {
        LoaderVars {
            dir: dir.to_path_buf(),
            init,
            save_last_booted,
            wanted_entry: None,
        }
    }

    /// Whether this machine has EFI variables at all.
    pub fn available(&self) -> bool {
        efivars::available(&self.dir)
    }

    fn read_string(&self, name: &str) -> Option<String> {
        let file = efivars::read(&self.dir, &file_name(name, LOADER_GUID)).ok()??;
        let (_, data) = split_attributes(&file)?;
        decode_string(data).filter(|s| !s.is_empty())
    }

    /// Reads what the variables remember and deletes the one-shot at once,
    /// as systemd-boot does: it counts for this start, whatever happens
    /// next. Returns the log lines to show.
    pub fn read_remembered(&self) -> (Remembered, Vec<String>) {
        let mut notes = Vec::new();
        if !self.available() {
            notes.push(
                "EFI variables: not available here (no /sys/firmware/efi: BIOS or a legacy \
                 boot); one-shot and @saved entries are off, the configured default applies"
                    .to_string(),
            );
            return (Remembered::default(), notes);
        }
        let remembered = Remembered {
            one_shot: self.read_string(names::ENTRY_ONE_SHOT),
            entry_default: self.read_string(names::ENTRY_DEFAULT),
            last_booted: self.read_string(names::ENTRY_LAST_BOOTED),
        };
        if let Some(id) = &remembered.one_shot {
            notes.push(format!("EFI variables: one-shot entry {id}"));
            let clear = VarChange {
                file: file_name(names::ENTRY_ONE_SHOT, LOADER_GUID),
                content: None,
            };
            if let Err(e) = efivars::apply(&self.dir, &[clear]) {
                notes.push(format!("EFI variables: clearing the one-shot entry: {e}"));
            }
        }
        if let Some(id) = &remembered.last_booted {
            notes.push(format!("EFI variables: last booted entry {id}"));
        }
        (remembered, notes)
    }

    /// Writes the Boot Loader Interface for the boot of `wanted_entry`
    /// from `snapshot`; returns a line for the log, or None when there is
    /// nothing to say (no EFI, no entry).
    pub fn record_boot(&self, snapshot: &Snapshot, exec: Duration) -> Option<String> {
        if !self.available() {
            return None;
        }
        let selected = self.wanted_entry.as_deref().filter(|id| !id.is_empty())?;
        let entries: Vec<String> = all_entry_ids(snapshot)
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let info = format!("vhdboot {}", env!("CARGO_PKG_VERSION"));
        let record = BootRecord {
            loader_info: &info,
            entries: &entries,
            selected,
            init_usec: micros(self.init),
            exec_usec: micros(exec),
            save_last_booted: self.save_last_booted,
        };
        let wanted: Vec<VarChange> = boot_variables(&record)
            .into_iter()
            .map(|(file, content)| VarChange {
                file,
                content: Some(content),
            })
            .collect();
        Some(match efivars::apply(&self.dir, &wanted) {
            Ok(written) => format!(
                "EFI variables: {} written for {selected} ({})",
                written.len(),
                written
                    .iter()
                    .map(|f| f.trim_end_matches(li::LOADER_GUID).trim_end_matches('-'))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => format!("EFI variables: {e}; booting anyway"),
        })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
