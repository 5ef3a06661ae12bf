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
    /// The one-shot entry of this start: booting it does not change the
    /// saved entry (systemd-boot's rule), so @saved comes back after it.
    one_shot: Option<String>,
}

impl LoaderVars {
    pub fn new(dir: &Path, init: Duration, save_last_booted: bool) -> LoaderVars {
        LoaderVars {
            dir: dir.to_path_buf(),
            init,
            save_last_booted,
            wanted_entry: None,
            one_shot: None,
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
    pub fn read_remembered(&mut self) -> (Remembered, Vec<String>) {
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
        self.one_shot = remembered.one_shot.clone();
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
            save_last_booted: self.save_last_booted && self.one_shot.as_deref() != Some(selected),
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

#[cfg(test)]
mod tests {
    use super::*;
    use vhdboot::boot::loader_interface::{NV_BS_RT, encode_string, with_attributes};
    use vhdboot::model::{
        BootEntry, ByteRange, EntrySource, FsType, Image, ImageKind, MountState, Volume,
    };

    fn snapshot() -> Snapshot {
        let entry = BootEntry {
            title: "Debian".into(),
            version: Some("6.12.1".into()),
            cmdline: "root=x".into(),
            source: EntrySource::Uki {
                esp: ByteRange { offset: 0, len: 1 },
                path: "/EFI/Linux/debian-6.12.1.efi".into(),
            },
            kernel_size: 1,
            initrd_size: 1,
        };
        Snapshot {
            volumes: vec![Volume {
                device: "/dev/vda1".into(),
                fstype: FsType::Ntfs,
                label: None,
                uuid: Some("1234".into()),
                partuuid: None,
                size: 1,
                mount: MountState::NotMounted,
                badges: vec![],
                images: vec![Image {
                    trial: None,
                    path: "/debian.vhd".into(),
                    file_size: 1024,
                    kind: ImageKind::FixedVhd { data_size: 512 },
                    entries: vec![entry],
                    problems: vec![],
                }],
            }],
            ..Snapshot::default()
        }
    }

    fn var(dir: &Path, name: &str) -> Option<Vec<u8>> {
        std::fs::read(dir.join(file_name(name, LOADER_GUID))).ok()
    }

    #[test]
    fn one_shot_is_read_once_and_deleted() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join(file_name(names::ENTRY_ONE_SHOT, LOADER_GUID));
        std::fs::write(&file, with_attributes(NV_BS_RT, &encode_string("a-b-1"))).unwrap();
        let mut vars = LoaderVars::new(t.path(), Duration::ZERO, false);
        let (remembered, _) = vars.read_remembered();
        assert_eq!(remembered.one_shot.as_deref(), Some("a-b-1"));
        assert!(!file.exists());
        assert_eq!(vars.read_remembered().0.one_shot, None);
    }

    #[test]
    fn boot_writes_the_interface_once_and_rewrites_only_what_changed() {
        let t = tempfile::tempdir().unwrap();
        let mut vars = LoaderVars::new(t.path(), Duration::from_millis(1500), true);
        let snap = snapshot();
        vars.wanted_entry = vhdboot::boot::entry_id::entry_id(
            &snap,
            vhdboot::model::EntryRef {
                volume: 0,
                image: 0,
                entry: 0,
            },
        );
        let first = vars.record_boot(&snap, Duration::from_secs(3)).unwrap();
        assert!(first.contains("7 written"), "{first}");
        let info = var(t.path(), names::INFO).unwrap();
        assert_eq!(
            decode_string(&info[4..]).unwrap(),
            format!("vhdboot {}", env!("CARGO_PKG_VERSION"))
        );
        let init = var(t.path(), names::TIME_INIT).unwrap();
        assert_eq!(decode_string(&init[4..]).as_deref(), Some("1500000"));
        assert_eq!(
            var(t.path(), names::ENTRY_LAST_BOOTED),
            var(t.path(), names::ENTRY_SELECTED)
        );
        // The same boot again: only the exec time differs.
        let second = vars.record_boot(&snap, Duration::from_secs(4)).unwrap();
        assert!(
            second.contains("1 written") && second.contains("LoaderTimeExecUSec"),
            "{second}"
        );
    }

    #[test]
    fn without_efi_nothing_is_written_and_the_log_says_so() {
        let t = tempfile::tempdir().unwrap();
        let mut vars = LoaderVars::new(&t.path().join("missing"), Duration::ZERO, true);
        vars.wanted_entry = Some("x".into());
        assert_eq!(vars.record_boot(&snapshot(), Duration::ZERO), None);
        let (remembered, notes) = vars.read_remembered();
        assert_eq!(remembered, Remembered::default());
        assert!(notes[0].contains("not available here"), "{notes:?}");
    }

    #[test]
    fn booting_the_one_shot_entry_keeps_the_saved_one() {
        let t = tempfile::tempdir().unwrap();
        let snap = snapshot();
        let id = vhdboot::boot::entry_id::all_entry_ids(&snap)[0].1.clone();
        let last = t
            .path()
            .join(file_name(names::ENTRY_LAST_BOOTED, LOADER_GUID));
        std::fs::write(&last, with_attributes(NV_BS_RT, &encode_string("other"))).unwrap();
        let one_shot = t.path().join(file_name(names::ENTRY_ONE_SHOT, LOADER_GUID));
        std::fs::write(&one_shot, with_attributes(NV_BS_RT, &encode_string(&id))).unwrap();
        let mut vars = LoaderVars::new(t.path(), Duration::ZERO, true);
        vars.read_remembered();
        vars.wanted_entry = Some(id.clone());
        vars.record_boot(&snap, Duration::ZERO).unwrap();
        assert_eq!(
            decode_string(&std::fs::read(&last).unwrap()[4..]).as_deref(),
            Some("other")
        );
        assert_eq!(
            decode_string(&var(t.path(), names::ENTRY_SELECTED).unwrap()[4..]),
            Some(id)
        );
    }
}
