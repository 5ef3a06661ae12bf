//! The BootPlan: everything `Host::load` needs to kexec one entry, decided
//! without touching the system.

use crate::discovery::{EntryRef, EntrySource, FsType, Snapshot};
use serde::Serialize;
use std::path::PathBuf;

/// How stage 2 finds the host filesystem again after kexec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HostId {
    Uuid(String),
    PartUuid(String),
}

/// One boot, fully decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootPlan {
    /// What the user picked, for messages.
    pub title: String,
    /// The host device, e.g. `/dev/sda2`.
    pub host_device: PathBuf,
    pub host_id: HostId,
    pub fstype: FsType,
    /// Where stage 1 mounted the host read-only.
    pub host_mount: PathBuf,
    /// The image's path on the host filesystem, starting with `/`.
    pub image_path: String,
    /// Data bytes in the image (file size minus the footer).
    pub data_size: u64,
    /// Where the kernel and initrd are inside the image.
    pub source: EntrySource,
    /// The final kernel command line: the entry's (or the edited) line plus
    /// the handoff parameters.
    pub cmdline: String,
}

impl BootPlan {
    /// The image file as stage 1 sees it.
    pub fn image_file(&self) -> PathBuf {
        self.host_mount
            .join(self.image_path.trim_start_matches('/'))
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the selected entry no longer exists; press r to rescan")]
    NoSuchEntry(EntryRef),
}

/// Builds the plan for `entry`, booting it with `cmdline` (the entry's own
/// line or the user's edit). TODO(skeleton): filled in by the boot work.
pub fn plan(snapshot: &Snapshot, entry: EntryRef, cmdline: &str) -> Result<BootPlan, PlanError> {
    let _ = (snapshot, cmdline);
    Err(PlanError::NoSuchEntry(entry))
}
