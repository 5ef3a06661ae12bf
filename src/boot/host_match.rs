//! Which block device stage 2 mounts: the one that matches everything
//! stage 1 handed over (UUID, PARTUUID, filesystem type, size), and only
//! if exactly one does. Pure: stage 2 feeds it what libblkid found.

use super::handoff::HostIdentity;
use crate::model::FsType;
use std::path::PathBuf;

/// One block device as stage 2 sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub device: PathBuf,
    pub uuid: Option<String>,
    pub partuuid: Option<String>,
    /// libblkid's TYPE.
    pub fstype: Option<String>,
    pub size: u64,
}

/// Why no device can be mounted (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostMatchError {
    #[error("no device with the host's id has appeared")]
    Missing,
    #[error(
        "{} has the host's id, but its {field} is {found} where stage 1 saw {expected}; \
         refusing to mount a volume that may not be the one the image is on",
        .device.display()
    )]
    Mismatch {
        device: PathBuf,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error(
        "{} all match the host's UUID, PARTUUID, filesystem type and size; refusing to \
         guess which one holds the image (detach the copy and boot again)",
        .devices.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" and ")
    )]
    Ambiguous { devices: Vec<PathBuf> },
}

impl HostMatchError {
    /// Whether waiting longer may help: the right disk may still appear.
    /// Two matching devices never become one.
    pub fn may_resolve(&self) -> bool {
        !matches!(self, HostMatchError::Ambiguous { .. })
    }
}

/// The first way `c` differs from what stage 1 saw, if any.
fn difference(
    want: &HostIdentity,
    fstype: &FsType,
    c: &Candidate,
) -> Option<(&'static str, String, String)> {
    let same =
        |a: &str, b: &Option<String>| b.as_deref().is_some_and(|b| b.eq_ignore_ascii_case(a));
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    if let Some(u) = &want.uuid
        && !same(u, &c.uuid)
    {
        return Some(("filesystem UUID", u.clone(), shown(&c.uuid)));
    }
    if let Some(p) = &want.partuuid
        && !same(p, &c.partuuid)
    {
        return Some(("partition UUID", p.clone(), shown(&c.partuuid)));
    }
    let found_fs = c.fstype.as_deref().map(FsType::from_blkid);
    if found_fs.as_ref() != Some(fstype) {
        return Some((
            "filesystem type",
            fstype.driver().to_string(),
            shown(&c.fstype),
        ));
    }
    if let Some(size) = want.size
        && size != c.size
    {
        return Some(("size", format!("{size} bytes"), format!("{} bytes", c.size)));
    }
    None
}

/// The one device that matches every fact stage 1 handed over. A device
/// that shares an id but differs in another fact is reported, so that the
/// message says what changed.
pub fn match_host(
    want: &HostIdentity,
    fstype: &FsType,
    candidates: &[Candidate],
) -> Result<PathBuf, HostMatchError> {
    let has_an_id = |c: &Candidate| {
        let eq = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b));
        eq(&want.uuid, &c.uuid) || eq(&want.partuuid, &c.partuuid)
    };
    let mut full = Vec::new();
    let mut first_mismatch = None;
    for c in candidates.iter().filter(|c| has_an_id(c)) {
        match difference(want, fstype, c) {
            None => full.push(c.device.clone()),
            Some((field, expected, found)) => {
                first_mismatch.get_or_insert(HostMatchError::Mismatch {
                    device: c.device.clone(),
                    field,
                    expected,
                    found,
                });
            }
        }
    }
    match full.len() {
        1 => Ok(full.remove(0)),
        0 => Err(first_mismatch.unwrap_or(HostMatchError::Missing)),
        _ => Err(HostMatchError::Ambiguous { devices: full }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> HostIdentity {
        HostIdentity {
            uuid: Some("1A2B3C4D5E6F7081".into()),
            partuuid: Some("5f3c2a10-01".into()),
            size: Some(1 << 30),
        }
    }

    fn dev(name: &str, uuid: &str, partuuid: &str, fstype: &str, size: u64) -> Candidate {
        Candidate {
            device: PathBuf::from(name),
            uuid: Some(uuid.into()),
            partuuid: Some(partuuid.into()),
            fstype: Some(fstype.into()),
            size,
        }
    }

    #[test]
    fn the_one_device_matching_everything_is_chosen() {
        let devices = [
            dev("/dev/vda1", "FFFF", "aaaa-01", "vfat", 1 << 20),
            dev(
                "/dev/vdb1",
                "1a2b3c4d5e6f7081",
                "5F3C2A10-01",
                "ntfs",
                1 << 30,
            ),
        ];
        assert_eq!(
            match_host(&want(), &FsType::Ntfs, &devices),
            Ok(PathBuf::from("/dev/vdb1"))
        );
    }

    #[test]
    fn a_clone_told_apart_by_partuuid_is_not_chosen() {
        let devices = [
            dev("/dev/vda1", "1A2B3C4D5E6F7081", "other-01", "ntfs", 1 << 30),
            dev(
                "/dev/vdb1",
                "1A2B3C4D5E6F7081",
                "5f3c2a10-01",
                "ntfs",
                1 << 30,
            ),
        ];
        assert_eq!(
            match_host(&want(), &FsType::Ntfs, &devices),
            Ok(PathBuf::from("/dev/vdb1"))
        );
    }

    #[test]
    fn two_devices_matching_everything_are_refused() {
        let devices = [
            dev(
                "/dev/vda1",
                "1A2B3C4D5E6F7081",
                "5f3c2a10-01",
                "ntfs",
                1 << 30,
            ),
            dev(
                "/dev/vdb1",
                "1A2B3C4D5E6F7081",
                "5f3c2a10-01",
                "ntfs",
                1 << 30,
            ),
        ];
        let err = match_host(&want(), &FsType::Ntfs, &devices).unwrap_err();
        assert!(!err.may_resolve());
        assert_eq!(
            err.to_string(),
            "/dev/vda1 and /dev/vdb1 all match the host's UUID, PARTUUID, filesystem type and \
             size; refusing to guess which one holds the image (detach the copy and boot again)"
        );
    }

    #[test]
    fn each_fact_that_differs_is_named() {
        for (device, field) in [
            (
                dev(
                    "/dev/sda1",
                    "1A2B3C4D5E6F7081",
                    "5f3c2a10-02",
                    "ntfs",
                    1 << 30,
                ),
                "partition UUID",
            ),
            (
                dev(
                    "/dev/sda1",
                    "1A2B3C4D5E6F7081",
                    "5f3c2a10-01",
                    "exfat",
                    1 << 30,
                ),
                "filesystem type",
            ),
            (
                dev(
                    "/dev/sda1",
                    "1A2B3C4D5E6F7081",
                    "5f3c2a10-01",
                    "ntfs",
                    1 << 29,
                ),
                "size",
            ),
            (
                dev("/dev/sda1", "0000", "5f3c2a10-01", "ntfs", 1 << 30),
                "filesystem UUID",
            ),
        ] {
            let err = match_host(&want(), &FsType::Ntfs, &[device]).unwrap_err();
            assert!(err.may_resolve());
            match &err {
                HostMatchError::Mismatch { field: f, .. } => assert_eq!(*f, field),
                other => panic!("{field}: {other:?}"),
            }
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn nothing_with_the_id_is_missing() {
        let devices = [dev("/dev/vda1", "FFFF", "aaaa-01", "vfat", 1 << 20)];
        assert_eq!(
            match_host(&want(), &FsType::Ntfs, &devices),
            Err(HostMatchError::Missing)
        );
        assert_eq!(
            match_host(&want(), &FsType::Ntfs, &[]),
            Err(HostMatchError::Missing)
        );
    }

    #[test]
    fn an_old_handoff_checks_only_what_it_carries() {
        let old = HostIdentity {
            uuid: Some("1A2B3C4D5E6F7081".into()),
            partuuid: None,
            size: None,
        };
        let devices = [dev(
            "/dev/vdb1",
            "1A2B3C4D5E6F7081",
            "anything",
            "ntfs",
            12345,
        )];
        assert_eq!(
            match_host(&old, &FsType::Ntfs, &devices),
            Ok(PathBuf::from("/dev/vdb1"))
        );
    }
}
