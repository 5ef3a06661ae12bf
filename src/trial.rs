//! Trial boot (issue 15, item 2): the pure parts. A trial boot keeps the
//! target's changes in `<image>.trial` beside the image, a persistent
//! dm-snapshot exception store in the kernel's own format. These
//! functions name the files, judge what the menu may offer for them and
//! read the kernel's merge progress; the syscalls live in `sys` and in
//! stage 2.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// The suffix of the copy-on-write file beside the image.
pub const TRIAL_SUFFIX: &str = ".trial";
/// The suffix of the marker that says a merge (keep) has started. It is
/// written before the first `snapshot-merge` table is loaded and removed
/// only after the merge completed and the store was deleted, so that a
/// power cut in between makes the next start resume the merge: discarding
/// a half-merged store would leave the image with part of the changes.
pub const MERGING_SUFFIX: &str = ".trial.merging";
/// The store's size when vhdboot.conf has no `trial_size`: 1 GiB.
pub const DEFAULT_TRIAL_SIZE: u64 = 1 << 30;
/// The smallest store stage 2 makes: the kernel needs a header chunk and
/// at least one metadata chunk before any data fits.
pub const MIN_TRIAL_SIZE: u64 = 16 << 20;
/// Free bytes stage 2 leaves on the host beyond the store, so that the
/// host's own metadata and the in-use record still fit.
pub const FREE_SPACE_RESERVE: u64 = 64 << 20;

/// The trial store's path for the image at `image` (same filesystem,
/// same folder).
pub fn trial_path(image: &str) -> String {
    format!("{image}{TRIAL_SUFFIX}")
}

/// The merge marker's path for the image at `image`.
pub fn merging_path(image: &str) -> String {
    format!("{image}{MERGING_SUFFIX}")
}

/// What discovery found beside an image (read-only: it only looked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTrial {
    /// The `.trial` file's length in bytes (the store's capacity, not
    /// how much of it the changes use).
    pub size: u64,
    /// Whether a merge was started and not finished.
    pub merging: bool,
}

/// Looks for `<image>.trial` and the merge marker beside the image file
/// at `full` (a path on the read-only mount). Only metadata is read:
/// discovery writes nothing. A store that is not a regular file is no
/// pending trial.
pub fn look(full: &std::path::Path) -> Option<PendingTrial> {
    let text = full.as_os_str().to_string_lossy();
    let meta = std::fs::symlink_metadata(trial_path(&text)).ok()?;
    if !meta.is_file() {
        return None;
    }
    Some(PendingTrial {
        size: meta.len(),
        merging: std::fs::symlink_metadata(merging_path(&text)).is_ok(),
    })
}

/// What the menu offers for an image with a pending trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialOffer {
    /// Boot the trial again, keep (merge) or discard, the last two only
    /// when the host may be written.
    Choose { may_write: bool },
    /// A merge was cut: only resuming it is safe, never discarding.
    ResumeMerge { may_write: bool },
}

/// The decision over a pending trial and the host's write verdict.
pub fn offer(pending: PendingTrial, host_writable: bool) -> TrialOffer {
    if pending.merging {
        TrialOffer::ResumeMerge {
            may_write: host_writable,
        }
    } else {
        TrialOffer::Choose {
            may_write: host_writable,
        }
    }
}

/// The line the menu shows beside an image with a pending trial.
pub fn badge(pending: PendingTrial) -> String {
    if pending.merging {
        format!(
            "trial changes ({} MiB), merge cut short",
            pending.size >> 20
        )
    } else {
        format!("trial changes ({} MiB)", pending.size >> 20)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrialSizeError {
    #[error(
        "trial_size={wanted} is below the {} MiB the kernel's snapshot store needs; \
         raise trial_size in vhdboot.conf",
        MIN_TRIAL_SIZE >> 20
    )]
    TooSmall { wanted: u64 },
    #[error(
        "the host has {} MiB free, and the trial store needs {} MiB plus {} MiB to spare; \
         free space on the host volume or lower trial_size in vhdboot.conf",
        .free >> 20,
        .wanted >> 20,
        FREE_SPACE_RESERVE >> 20
    )]
    NoRoom { wanted: u64, free: u64 },
}

/// Checks the store's size against the host's free bytes, rounded down to
/// whole 4 KiB chunks. Returns the size stage 2 creates.
pub fn check_size(wanted: u64, free: u64) -> Result<u64, TrialSizeError> {
    let size = wanted & !4095;
    if size < MIN_TRIAL_SIZE {
        return Err(TrialSizeError::TooSmall { wanted });
    }
    if size.saturating_add(FREE_SPACE_RESERVE) > free {
        return Err(TrialSizeError::NoRoom { wanted: size, free });
    }
    Ok(size)
}

/// A `snapshot-merge` target's status, as the kernel prints it for a
/// persistent store: `<sectors_allocated>/<total_sectors>
/// <metadata_sectors>` (Documentation/admin-guide/device-mapper/
/// snapshot.rst). The merge is done when the allocated sectors equal the
/// metadata sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeStatus {
    pub allocated: u64,
    pub total: u64,
    pub metadata: u64,
}

/// Why a status line could not be read as merge progress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeStatusError {
    #[error("the snapshot store is invalid (the kernel reports \"Invalid\")")]
    Invalid,
    #[error("the snapshot store hit an I/O error while merging (the kernel reports \"{0}\")")]
    Failed(String),
    #[error("unexpected snapshot-merge status \"{0}\"")]
    Unexpected(String),
}

impl MergeStatus {
    /// Whether every exception is back in the origin.
    pub fn done(self) -> bool {
        self.allocated <= self.metadata
    }

    /// Data sectors still to merge.
    pub fn remaining(self) -> u64 {
        self.allocated.saturating_sub(self.metadata)
    }

    /// Percent merged, given the data sectors there were at the start.
    pub fn percent(self, start_remaining: u64) -> u8 {
        if start_remaining == 0 {
            return 100;
        }
        let done = start_remaining.saturating_sub(self.remaining());
        (done.saturating_mul(100) / start_remaining).min(100) as u8
    }
}

/// Reads the params part of a `snapshot-merge` status (the text after
/// the start, length and target name).
pub fn parse_merge_status(text: &str) -> Result<MergeStatus, MergeStatusError> {
    let text = text.trim();
    match text {
        "Invalid" => return Err(MergeStatusError::Invalid),
        "Merge failed" | "Overflow" => return Err(MergeStatusError::Failed(text.to_string())),
        _ => {}
    }
    let unexpected = || MergeStatusError::Unexpected(text.chars().take(80).collect());
    let mut words = text.split_ascii_whitespace();
    let (fraction, metadata) = match (words.next(), words.next(), words.next()) {
        (Some(f), Some(m), None) => (f, m),
        _ => return Err(unexpected()),
    };
    let (allocated, total) = fraction.split_once('/').ok_or_else(unexpected)?;
    let num = |s: &str| s.parse::<u64>().map_err(|_| unexpected());
    Ok(MergeStatus {
        allocated: num(allocated)?,
        total: num(total)?,
        metadata: num(metadata)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sit_beside_the_image() {
        assert_eq!(trial_path("/vhd/deb.vhd"), "/vhd/deb.vhd.trial");
        assert_eq!(merging_path("/vhd/deb.vhd"), "/vhd/deb.vhd.trial.merging");
    }

    #[test]
    fn look_finds_the_store_and_the_marker_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("deb.vhd");
        std::fs::write(&image, b"x").unwrap();
        assert_eq!(look(&image), None);
        std::fs::write(dir.path().join("deb.vhd.trial"), vec![0u8; 8192]).unwrap();
        assert_eq!(
            look(&image),
            Some(PendingTrial {
                size: 8192,
                merging: false
            })
        );
        std::fs::write(dir.path().join("deb.vhd.trial.merging"), b"").unwrap();
        assert!(look(&image).unwrap().merging);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn merge_status_is_read_and_progress_follows() {
        let start = parse_merge_status("4208/2097152 16").unwrap();
        assert_eq!(
            start,
            MergeStatus {
                allocated: 4208,
                total: 2097152,
                metadata: 16
            }
        );
        assert!(!start.done());
        let half = parse_merge_status(" 2112/2097152 16\n").unwrap();
        assert_eq!(half.percent(start.remaining()), 50);
        let end = parse_merge_status("16/2097152 16").unwrap();
        assert!(end.done());
        assert_eq!(end.percent(start.remaining()), 100);
    }

    #[test]
    fn merge_status_failures_are_named() {
        assert_eq!(
            parse_merge_status("Invalid"),
            Err(MergeStatusError::Invalid)
        );
        assert_eq!(
            parse_merge_status("Merge failed"),
            Err(MergeStatusError::Failed("Merge failed".into()))
        );
        for bad in ["", "12/x 3", "12 3", "1/2 3 4", "-1/2 3"] {
            assert!(
                matches!(
                    parse_merge_status(bad),
                    Err(MergeStatusError::Unexpected(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn size_is_checked_against_free_space() {
        assert_eq!(
            check_size(DEFAULT_TRIAL_SIZE + 100, 4 << 30),
            Ok(DEFAULT_TRIAL_SIZE)
        );
        assert_eq!(
            check_size(1 << 20, 4 << 30),
            Err(TrialSizeError::TooSmall { wanted: 1 << 20 })
        );
        let err = check_size(1 << 30, 1 << 30).unwrap_err();
        assert_eq!(
            err,
            TrialSizeError::NoRoom {
                wanted: 1 << 30,
                free: 1 << 30
            }
        );
        assert!(err.to_string().contains("lower trial_size"), "{err}");
    }

    #[test]
    fn an_interrupted_merge_only_offers_resuming() {
        let cut = PendingTrial {
            size: 256 << 20,
            merging: true,
        };
        assert_eq!(
            offer(cut, true),
            TrialOffer::ResumeMerge { may_write: true }
        );
        assert!(badge(cut).contains("merge cut short"), "{}", badge(cut));
        let fresh = PendingTrial {
            size: 256 << 20,
            merging: false,
        };
        assert_eq!(offer(fresh, false), TrialOffer::Choose { may_write: false });
        assert_eq!(badge(fresh), "trial changes (256 MiB)");
    }
}
