//! Stage 1's side of vhdboot's in-use record (`boot::in_use`): whether a
//! host volume still carries it, read through the read-only mount, at most
//! [`MAX_LEN`] bytes. No write: clearing it is the user's step (README).

use crate::boot::in_use::{FILE_NAME, InUseRecord, MAX_LEN};
use crate::model::VolumeBadge;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

/// The badge and a sentence for the scan log when the volume mounted at
/// `root` holds the record; None when it does not. A record that cannot
/// be read or parsed still counts: it exists, so the last boot from this
/// volume did not end with the clean detach that deletes it.
pub fn not_detached_badge(root: &Path) -> Result<Option<(VolumeBadge, String)>, String> {
    let path = root.join(FILE_NAME);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("opening {}: {e}", path.display())),
    };
    let mut text = String::new();
    let details = match file.take(MAX_LEN).read_to_string(&mut text) {
        Ok(_) => InUseRecord::parse(&text).map_or_else(
            || "its content is not a vhdboot record".to_string(),
            |r| r.describe(),
        ),
        Err(e) => format!("it cannot be read: {e}"),
    };
    Ok(Some((
        VolumeBadge::NotDetached,
        format!("{} is there: {details}", path.display()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_record_gives_no_badge() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(not_detached_badge(dir.path()), Ok(None));
    }

    #[test]
    fn a_record_gives_the_badge_and_names_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let record = InUseRecord {
            image: "/Images/debian.vhd".into(),
            started_unix: 0,
            boot_id: "b00t".into(),
        };
        std::fs::write(dir.path().join(FILE_NAME), record.render()).unwrap();
        let (badge, line) = not_detached_badge(dir.path()).unwrap().unwrap();
        assert_eq!(badge, VolumeBadge::NotDetached);
        assert!(
            line.contains("/Images/debian.vhd was attached at 1970-01-01"),
            "{line}"
        );
    }

    #[test]
    fn an_unreadable_or_huge_record_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), vec![b'x'; 1 << 20]).unwrap();
        let (badge, line) = not_detached_badge(dir.path()).unwrap().unwrap();
        assert_eq!(badge, VolumeBadge::NotDetached);
        assert!(line.contains("not a vhdboot record"), "{line}");
    }
}
