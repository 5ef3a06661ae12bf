//! Stable entry ids: the names `LoaderEntries`, `LoaderEntrySelected`,
//! `LoaderEntryOneShot` and `default = @saved` use for an entry. An id must
//! name the same entry after a rescan and after a kernel update in the
//! image, so it is made from what stays: the host volume's identity, the
//! image's path on it, and the entry's file name with the kernel version
//! taken out. It reads `<image>-<entry>-<hash>`, where the hash of the full
//! identity keeps two volumes' same-named images apart.

use crate::model::{BootEntry, EntryRef, EntrySource, Snapshot, Volume};

/// The id of the entry `r` points at, or None when it does not exist.
pub fn entry_id(snapshot: &Snapshot, r: EntryRef) -> Option<String> {
    let volume = snapshot.volumes.get(r.volume)?;
    let image = volume.images.get(r.image)?;
    image.entries.get(r.entry)?;
    let keys: Vec<String> = image.entries.iter().map(entry_key).collect();
    let key = keys.get(r.entry)?;
    // Two kernels of one /boot make the same key once their versions are
    // gone; the first (the newest, as discovery orders them) keeps the
    // plain key, so that an update moves the id to the new kernel.
    let earlier = keys.iter().take(r.entry).filter(|k| *k == key).count();
    let key = if earlier == 0 {
        key.clone()
    } else {
        format!("{key}.{}", earlier + 1)
    };
    let identity = format!(
        "{}\0{}\0{key}",
        volume_identity(volume),
        image.path.to_lowercase()
    );
    let stem = image.name();
    let stem = stem
        .rsplit_once('.')
        .map_or(stem, |(stem, _extension)| stem);
    Some(format!(
        "{}-{}-{:08x}",
        slug(stem),
        slug(&key),
        fnv1a(identity.as_bytes())
    ))
}

/// Every entry's id, in snapshot order.
pub fn all_entry_ids(snapshot: &Snapshot) -> Vec<(EntryRef, String)> {
    let mut out = Vec::new();
    for (v, volume) in snapshot.volumes.iter().enumerate() {
        for (i, image) in volume.images.iter().enumerate() {
            for e in 0..image.entries.len() {
                let r = EntryRef {
                    volume: v,
                    image: i,
                    entry: e,
                };
                if let Some(id) = entry_id(snapshot, r) {
                    out.push((r, id));
                }
            }
        }
    }
    out
}

/// The entry whose id is `id`.
pub fn find_entry(snapshot: &Snapshot, id: &str) -> Option<EntryRef> {
    all_entry_ids(snapshot)
        .into_iter()
        .find(|(_, candidate)| candidate == id)
        .map(|(r, _)| r)
}

/// The volume as the boot plan finds it again: its filesystem UUID, else
/// its partition UUID, else (never for a real host) its device.
fn volume_identity(volume: &Volume) -> String {
    match (&volume.uuid, &volume.partuuid) {
        (Some(u), _) if !u.is_empty() => format!("uuid={}", u.to_lowercase()),
        (_, Some(p)) if !p.is_empty() => format!("partuuid={}", p.to_lowercase()),
        _ => format!("device={}", volume.device.display()),
    }
}

/// The entry's file name without the kernel version and without systemd's
/// boot-counting suffix (`+3-0`), which change with updates and boots.
fn entry_key(entry: &BootEntry) -> String {
    let (kind, path) = match &entry.source {
        EntrySource::Uki { path, .. } => ("", path),
        EntrySource::Bls { conf, .. } => ("", conf),
        EntrySource::Ext4 { linux, .. } | EntrySource::Mounted { linux, .. } => ("boot-", linux),
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    let name = name
        .strip_suffix(".efi")
        .or_else(|| name.strip_suffix(".conf"))
        .unwrap_or(name);
    let name = strip_boot_counting(name);
    let name = match entry.version.as_deref() {
        Some(v) if !v.is_empty() => name.replace(v, ""),
        _ => name.to_string(),
    };
    let trimmed = name.trim_matches(|c| c == '-' || c == '_' || c == '.');
    let trimmed = if trimmed.is_empty() { "entry" } else { trimmed };
    format!("{kind}{trimmed}").to_lowercase()
}

/// `name+3-0` or `name+3` → `name` (the Boot Loader Specification's boot
/// counting); anything else unchanged.
fn strip_boot_counting(name: &str) -> &str {
    match name.rsplit_once('+') {
        Some((head, tail))
            if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit() || c == '-') =>
        {
            head
        }
        _ => name,
    }
}

/// Letters, digits, `.`, `_` and `-` stay; every other run becomes one `_`,
/// so the id is one word for `bootctl` and the kernel command line.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.chars().take(40).collect()
}

/// FNV-1a, 32 bits: short, stable across releases and platforms, which
/// std's hasher does not promise.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::decisions::fixtures::{entry, fixed_image};
    use crate::model::*;

    fn volume(uuid: &str, images: Vec<Image>) -> Volume {
        Volume {
            device: "/dev/sda2".into(),
            fstype: FsType::Ntfs,
            label: Some("Data".into()),
            uuid: Some(uuid.into()),
            partuuid: None,
            size: 1 << 40,
            mount: MountState::NotMounted,
            badges: vec![],
            images,
        }
    }

    fn uki(path: &str, version: &str) -> BootEntry {
        let mut e = entry("Ubuntu", "root=x");
        e.version = Some(version.into());
        if let EntrySource::Uki { path: p, .. } = &mut e.source {
            *p = path.into();
        }
        e
    }

    fn snapshot(volumes: Vec<Volume>) -> Snapshot {
        Snapshot {
            volumes,
            ..Snapshot::default()
        }
    }

    const FIRST: EntryRef = EntryRef {
        volume: 0,
        image: 0,
        entry: 0,
    };

    #[test]
    fn id_names_the_image_and_the_entry_without_the_version() {
        let s = snapshot(vec![volume(
            "1234-ABCD",
            vec![fixed_image(
                "/Images/Ubuntu 24.04.vhd",
                vec![uki(
                    "/EFI/Linux/ubuntu-6.8.0-45-generic.efi",
                    "6.8.0-45-generic",
                )],
            )],
        )]);
        let id = entry_id(&s, FIRST).unwrap();
        assert!(id.starts_with("Ubuntu_24.04-ubuntu-"), "{id}");
        assert_eq!(id.len(), "Ubuntu_24.04-ubuntu-".len() + 8);
    }

    #[test]
    fn id_survives_a_kernel_update_and_a_boot_counter() {
        let image = |path, version| {
            snapshot(vec![volume(
                "1234-ABCD",
                vec![fixed_image("/a.vhd", vec![uki(path, version)])],
            )])
        };
        let before = entry_id(
            &image("/EFI/Linux/ubuntu-6.8.0-45-generic.efi", "6.8.0-45-generic"),
            FIRST,
        );
        let after = entry_id(
            &image(
                "/EFI/Linux/ubuntu-6.8.0-47-generic+3-0.efi",
                "6.8.0-47-generic",
            ),
            FIRST,
        );
        assert_eq!(before, after);
    }

    #[test]
    fn same_image_path_on_two_volumes_gets_two_ids() {
        let img = || fixed_image("/a.vhd", vec![uki("/EFI/Linux/x.efi", "6.1")]);
        let s = snapshot(vec![
            volume("1111-1111", vec![img()]),
            volume("2222-2222", vec![img()]),
        ]);
        let second = EntryRef { volume: 1, ..FIRST };
        assert_ne!(entry_id(&s, FIRST), entry_id(&s, second));
        assert_eq!(find_entry(&s, &entry_id(&s, second).unwrap()), Some(second));
    }

    #[test]
    fn id_does_not_depend_on_the_scan_order_or_the_uuid_case() {
        let img = || fixed_image("/A.vhd", vec![uki("/EFI/Linux/x.efi", "6.1")]);
        let one = snapshot(vec![volume("abcd-0001", vec![img()])]);
        let two = snapshot(vec![
            volume("9999-9999", vec![]),
            volume("ABCD-0001", vec![img()]),
        ]);
        assert_eq!(
            entry_id(&one, FIRST),
            entry_id(&two, EntryRef { volume: 1, ..FIRST })
        );
    }

    #[test]
    fn two_kernels_with_the_same_name_get_distinct_ids() {
        let ext4 = |linux: &str, version: &str| BootEntry {
            version: Some(version.into()),
            source: EntrySource::Ext4 {
                partition: ByteRange { offset: 0, len: 1 },
                linux: linux.into(),
                initrd: vec![],
            },
            ..entry("Debian", "root=x")
        };
        let s = snapshot(vec![volume(
            "1234-ABCD",
            vec![fixed_image(
                "/d.vhd",
                vec![
                    ext4("/vmlinuz-6.12.1", "6.12.1"),
                    ext4("/vmlinuz-6.1.0", "6.1.0"),
                ],
            )],
        )]);
        let ids: Vec<String> = all_entry_ids(&s).into_iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert!(ids[0].starts_with("d-boot-vmlinuz-"), "{ids:?}");
        assert!(ids[1].starts_with("d-boot-vmlinuz.2-"), "{ids:?}");
    }

    #[test]
    fn missing_entry_has_no_id() {
        assert_eq!(entry_id(&Snapshot::default(), FIRST), None);
    }
}
