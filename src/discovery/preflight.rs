//! Pre-flight checks made during discovery, each turned into a
//! [`Problem`] or a [`VolumeBadge`] that the menu shows and `boot::plan`
//! refuses on. They stay cheap (one `statx` per image, one sector and one
//! MFT record per NTFS volume, four bytes of `hiberfil.sys`); the slow
//! initramfs check runs only at boot (`image::initrd`).
//!
//! The facts come from the caller (stage 1 fills [`FileFacts`] through
//! `sys::fileinfo`), so the decisions here are tested on plain values.

use crate::image::ntfs;
use crate::model::{FileFacts, Problem, VolumeBadge};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The problems in how the image file is stored. Each blocks the boot:
/// stage 2 writes through the loop device, and ntfs3 fails writes past
/// the allocated part of a file (shared/lessons.md), cannot read EFS
/// files, and would have to compress every write.
pub fn file_problems(facts: &FileFacts) -> Vec<Problem> {
    let mut out = Vec::new();
    if facts.encrypted == Some(true) {
        out.push(Problem::blocking(
            "the image file is encrypted by the host filesystem (NTFS EFS), which ntfs3 cannot read",
            "in Windows, decrypt it (Properties > Advanced > clear \"Encrypt contents\", or \
             `cipher /d FILE`), then press r to rescan",
        ));
    }
    if facts.compressed == Some(true) {
        out.push(Problem::blocking(
            "the image file is compressed by the host filesystem (NTFS compression)",
            "in Windows, uncompress it (Properties > Advanced > clear \"Compress contents\", or \
             `compact /u FILE`), then press r to rescan",
        ));
    } else if let Some(allocated) = facts.allocated.filter(|&a| a < facts.size) {
        // A compressed file also has fewer blocks than bytes; it is
        // reported as compressed above, not twice.
        out.push(Problem::blocking(
            format!(
                "the image file is sparse: only {allocated} of its {} bytes are allocated on \
                 the host volume",
                facts.size
            ),
            "writes into the unallocated part fail through ntfs3; make a fully allocated copy \
             (Windows: `fsutil sparse setflag FILE 0`; Linux: `cp --sparse=never`), then press \
             r to rescan",
        ));
    }
    out
}

/// The badge for an NTFS volume's dirty flag, read from the device itself
/// (opened read-only). Errors are sentences for the scan log.
pub fn ntfs_dirty_badge(device: &Path) -> Result<Option<VolumeBadge>, String> {
    let mut f = File::open(device).map_err(|e| format!("opening {}: {e}", device.display()))?;
    let (_, info) =
        ntfs::read_volume_info(&mut f).map_err(|e| format!("{}: {e}", device.display()))?;
    Ok(info.is_dirty().then_some(VolumeBadge::Dirty))
}

/// The badge for Windows hibernation or Fast Startup, from the first bytes
/// of `hiberfil.sys` in the root of a mounted NTFS volume (found without
/// regard to case). No file, or a cleared one, gives None.
pub fn hibernation_badge(root: &Path) -> Result<Option<VolumeBadge>, String> {
    let entries =
        std::fs::read_dir(root).map_err(|e| format!("listing {}: {e}", root.display()))?;
    let Some(entry) = entries.flatten().find(|e| {
        e.file_name()
            .to_string_lossy()
            .eq_ignore_ascii_case(ntfs::HIBERFIL)
    }) else {
        return Ok(None);
    };
    let path = entry.path();
    let mut head = [0u8; 4];
    let mut f = File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let n = f
        .read(&mut head)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(
        ntfs::is_hibernation_signature(head.get(..n).unwrap_or_default())
            .then_some(VolumeBadge::Hibernated),
    )
}

/// The notice shown when the firmware has Secure Boot on. Not blocking:
/// a signed kernel boots; an unsigned one is refused by kexec, and the
/// failure then says so.
pub fn secure_boot_notice(secure_boot: Option<bool>) -> Option<Problem> {
    (secure_boot == Some(true)).then(|| {
        Problem::warning(
            "Secure Boot is on: the target kernel must be signed by a key the firmware trusts, \
             or kexec will refuse it",
            "boot signed distribution kernels, enroll your own key (MOK), or turn Secure Boot \
             off in the firmware setup",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(size: u64, allocated: u64) -> FileFacts {
        FileFacts {
            size,
            allocated: Some(allocated),
            compressed: Some(false),
            encrypted: Some(false),
        }
    }

    #[test]
    fn fully_allocated_plain_file_has_no_problem() {
        assert!(file_problems(&facts(1 << 30, 1 << 30)).is_empty());
        assert!(file_problems(&facts(1000, 4096)).is_empty());
    }

    #[test]
    fn sparse_file_is_blocked_with_the_sizes() {
        let p = file_problems(&facts(1 << 30, 4096));
        assert_eq!(p.len(), 1);
        assert!(p[0].blocks_boot);
        assert!(
            p[0].what.contains("only 4096 of its 1073741824 bytes"),
            "{}",
            p[0].what
        );
        assert!(p[0].hint.contains("--sparse=never"));
    }

    #[test]
    fn compressed_file_is_reported_as_compressed_not_also_sparse() {
        let mut f = facts(1 << 30, 1 << 20);
        f.compressed = Some(true);
        let p = file_problems(&f);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].what.contains("compressed") && p[0].hint.contains("compact /u"));
    }

    #[test]
    fn encrypted_file_is_blocked() {
        let mut f = facts(4096, 4096);
        f.encrypted = Some(true);
        let p = file_problems(&f);
        assert!(p[0].blocks_boot && p[0].hint.contains("cipher /d"), "{p:?}");
    }

    #[test]
    fn unknown_facts_raise_nothing() {
        let f = FileFacts {
            size: 1 << 30,
            allocated: None,
            compressed: None,
            encrypted: None,
        };
        assert!(file_problems(&f).is_empty());
    }

    #[test]
    fn hiberfil_in_any_case_with_a_signature_marks_hibernation() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(hibernation_badge(t.path()), Ok(None));
        std::fs::write(t.path().join("HiberFil.SYS"), b"\0\0\0\0rest").unwrap();
        assert_eq!(hibernation_badge(t.path()), Ok(None));
        std::fs::write(t.path().join("HiberFil.SYS"), b"HIBRrest").unwrap();
        assert_eq!(
            hibernation_badge(t.path()),
            Ok(Some(VolumeBadge::Hibernated))
        );
    }

    #[test]
    fn secure_boot_notice_only_when_on() {
        assert!(secure_boot_notice(Some(false)).is_none());
        assert!(secure_boot_notice(None).is_none());
        let n = secure_boot_notice(Some(true)).unwrap();
        assert!(!n.blocks_boot && n.what.contains("signed"));
    }
}
