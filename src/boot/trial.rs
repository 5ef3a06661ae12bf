//! Keeping or discarding a pending trial (issue 15): which image, on
//! which host, and whether the host may be written now. The judge of the
//! host is `boot::plan`'s, the same one a boot and the read-write repair
//! ask.

use std::path::PathBuf;

use crate::boot::plan::{PlanError, host_write_blocker};
use crate::boot::repair::{RepairMode, repair_plan};
use crate::model::Snapshot;
use crate::trial::{merging_path, trial_path};

/// What the user asked for an image's pending trial (keys m and x in the
/// menu). Both are confirmed first, and they are the only writes stage 1
/// makes to a host volume of its own accord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialAction {
    /// Merge the changes into the image (`snapshot-merge`), then delete
    /// the store.
    Keep,
    /// Delete the store.
    Discard,
}

/// Everything the machine needs to keep or discard one image's trial.
///
/// What keeping writes, in this order: the host volume is remounted
/// read-write; `<image>.trial.merging` (an empty marker) is created and
/// synced; the image file is attached to a writable loop device and the
/// kernel's `snapshot-merge` target copies every changed chunk from the
/// store back into it (the image's data area only, never its VHD footer,
/// which lies past the loop device's size limit), writing its progress
/// into the store; when the store is empty, the image file is synced,
/// `<image>.trial` and the marker are deleted, and the host is remounted
/// read-only. What discarding writes: the host is remounted read-write,
/// `<image>.trial` is deleted, the host is remounted read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialPlan {
    pub action: TrialAction,
    /// The image's file name, for messages.
    pub image_name: String,
    pub volume_name: String,
    /// Where stage 1 mounted the host (read-only until the action).
    pub host_mount: PathBuf,
    /// The image's path on the host, starting with `/`.
    pub image_path: String,
    /// The loop device's size: the image without its VHD footer.
    pub data_size: u64,
    /// Whether an earlier merge was cut (the marker exists): keeping
    /// resumes it.
    pub resuming: bool,
}

impl TrialPlan {
    /// The image file as stage 1 sees it.
    pub fn image_file(&self) -> PathBuf {
        self.host_mount
            .join(self.image_path.trim_start_matches('/'))
    }

    /// `<image>.trial` as stage 1 sees it.
    pub fn store_file(&self) -> PathBuf {
        PathBuf::from(trial_path(&self.image_file().to_string_lossy()))
    }

    /// `<image>.trial.merging` as stage 1 sees it.
    pub fn marker_file(&self) -> PathBuf {
        PathBuf::from(merging_path(&self.image_file().to_string_lossy()))
    }
}

/// Why a trial cannot be kept or discarded now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrialRefused {
    #[error("{image} has no trial changes")]
    NoTrial { image: String },
    #[error("a merge of {image}'s trial changes was cut short, so the image holds part of them")]
    MergeCut { image: String },
    #[error("{0}")]
    Host(PlanError),
}

impl TrialRefused {
    /// What the user can do next.
    pub fn hint(&self) -> String {
        match self {
            TrialRefused::NoTrial { .. } => "press r to rescan".into(),
            TrialRefused::MergeCut { .. } => {
                "press m to finish the merge; discarding now would leave the image half-changed"
                    .into()
            }
            TrialRefused::Host(e) => e.hint(),
        }
    }

    /// The cause, in the words the menu shows.
    pub fn cause(&self) -> String {
        match self {
            TrialRefused::Host(e) => e.cause(),
            other => other.to_string(),
        }
    }
}

/// Decides whether `action` may run on image `image` of volume `volume`:
/// the image has a pending trial, the host is mounted and `boot::plan`
/// judges it safe to write (the same checks as before stage 2's
/// read-write mount: not hibernated, not dirty, not in doubt), and a
/// discard never follows a cut merge.
pub fn trial_plan(
    snapshot: &Snapshot,
    volume: usize,
    image: usize,
    action: TrialAction,
) -> Result<TrialPlan, TrialRefused> {
    let opened =
        repair_plan(snapshot, volume, image, RepairMode::ReadOnly).map_err(TrialRefused::Host)?;
    let no_trial = || TrialRefused::NoTrial {
        image: opened.image_name.clone(),
    };
    let v = snapshot.volumes.get(volume).ok_or_else(no_trial)?;
    let pending = v
        .images
        .get(image)
        .and_then(|i| i.trial)
        .ok_or_else(no_trial)?;
    if let Some(e) = host_write_blocker(snapshot, v) {
        return Err(TrialRefused::Host(e));
    }
    if pending.merging && action == TrialAction::Discard {
        return Err(TrialRefused::MergeCut {
            image: opened.image_name,
        });
    }
    Ok(TrialPlan {
        action,
        image_name: opened.image_name,
        volume_name: opened.volume_name,
        host_mount: opened.host_mount,
        image_path: opened.image_path,
        data_size: opened.data_size,
        resuming: pending.merging,
    })
}
