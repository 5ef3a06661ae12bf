//! Decisions made over a snapshot before the menu shows: which entry is the
//! configured default, whether to boot it at once, count down or wait, and
//! which entry the cursor starts on.

use crate::boot::entry_id::find_entry;
use crate::boot::plan::{blocker, image_blocker};
use crate::config::{Config, DefaultSpec, HostSelector, Timeout};
use crate::model::{EntryRef, Snapshot, Volume};

/// How stage 1 starts once the scan is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Boot this entry without showing the menu (timeout 0).
    Boot(EntryRef),
    /// Show the menu with this entry selected and count down to booting it.
    Countdown { entry: EntryRef, seconds: u32 },
    /// Show the menu and wait; `reason` says why the default did not start
    /// (none when no default is configured or the timeout is -1).
    Menu { reason: Option<String> },
}

/// The entry the configured default names: the first entry of the first
/// image whose path matches (case-insensitively, as NTFS and exFAT are) on
/// a volume the host selector matches. `None` when there is no default or
/// no such image with entries.
pub fn find_default(snapshot: &Snapshot, config: &Config) -> Option<EntryRef> {
    let spec = config.default.as_ref()?;
    locate(snapshot, spec).ok()
}

/// Decides between booting the default at once, a countdown and the menu.
pub fn decide_start(snapshot: &Snapshot, config: &Config) -> Start {
    let Some(spec) = &config.default else {
        return Start::Menu { reason: None };
    };
    let entry = match locate(snapshot, spec) {
        Ok(entry) => entry,
        Err(reason) => {
            return Start::Menu {
                reason: Some(reason),
            };
        }
    };
    // The judge of an actual boot, so the menu never counts down to
    // something the boot would then refuse.
    if let Some(err) = blocker(snapshot, entry) {
        return Start::Menu {
            reason: Some(format!("the default {spec} cannot boot: {err}")),
        };
    }
    match config.timeout {
        Timeout::Never => Start::Menu { reason: None },
        Timeout::Immediate | Timeout::Seconds(0) => Start::Boot(entry),
        Timeout::Seconds(seconds) => Start::Countdown { entry, seconds },
    }
}

/// What the EFI variables say about this start (the Boot Loader
/// Interface), as stage 1 read them before the menu. All None where there
/// are no EFI variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remembered {
    /// `LoaderEntryOneShot`, set from the target (`bootctl set-oneshot`,
    /// `systemctl reboot --boot-loader-entry=`); stage 1 deletes it as soon
    /// as it is read, so it counts for this start only.
    pub one_shot: Option<String>,
    /// `LoaderEntryDefault` (`bootctl set-default`).
    pub entry_default: Option<String>,
    /// `LoaderEntryLastBooted`, which `default = @saved` follows. A
    /// one-shot boot does not change it.
    pub last_booted: Option<String>,
}

/// How stage 1 starts, which entry the menu calls the default, and what
/// the log should say about the remembered entries that were passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub start: Start,
    pub default: Option<EntryRef>,
    pub notes: Vec<String>,
}

/// Decides the start as systemd-boot does: a one-shot entry boots at once
/// (it was asked for from the running system, for exactly this start),
/// then `LoaderEntryDefault`, then under `default = @saved` the entry
/// booted last, each with the configured timeout; then the configured
/// path default. A remembered id that names no bootable entry is passed
/// over with a note, never a failure.
pub fn decide_start_remembered(
    snapshot: &Snapshot,
    config: &Config,
    remembered: &Remembered,
) -> Decision {
    let mut notes = Vec::new();
    let mut usable = |id: &Option<String>, what: &str| -> Option<EntryRef> {
        let id = id.as_deref()?;
        let Some(entry) = find_entry(snapshot, id) else {
            notes.push(format!(
                "{what} names {id}, which is not among the entries found; using the next default"
            ));
            return None;
        };
        if let Some(err) = blocker(snapshot, entry) {
            notes.push(format!("{what} names {id}, which cannot boot: {err}"));
            return None;
        }
        Some(entry)
    };
    if let Some(entry) = usable(
        &remembered.one_shot,
        "the one-shot entry (LoaderEntryOneShot)",
    ) {
        return Decision {
            start: Start::Boot(entry),
            default: Some(entry),
            notes,
        };
    }
    let remembered_default =
        usable(&remembered.entry_default, "LoaderEntryDefault").or_else(|| {
            if config.default_saved {
                usable(
                    &remembered.last_booted,
                    "default = @saved (LoaderEntryLastBooted)",
                )
            } else {
                None
            }
        });
    if let Some(entry) = remembered_default {
        let start = match config.timeout {
            Timeout::Never => Start::Menu { reason: None },
            Timeout::Immediate | Timeout::Seconds(0) => Start::Boot(entry),
            Timeout::Seconds(seconds) => Start::Countdown { entry, seconds },
        };
        return Decision {
            start,
            default: Some(entry),
            notes,
        };
    }
    let start = decide_start(snapshot, config);
    let default = match &start {
        Start::Boot(entry) | Start::Countdown { entry, .. } => Some(*entry),
        Start::Menu { .. } => find_default(snapshot, config),
    };
    Decision {
        start,
        default,
        notes,
    }
}

/// The image the configured default names, with or without boot entries,
/// as (volume, image) indices: the menu starts on it even when it cannot
/// boot, so that its reason is what the user sees first.
pub fn default_image(snapshot: &Snapshot, config: &Config) -> Option<(usize, usize)> {
    let spec = config.default.as_ref()?;
    snapshot
        .volumes
        .iter()
        .enumerate()
        .filter(|(_, v)| host_matches(v, &spec.host))
        .find_map(|(v, volume)| {
            volume
                .images
                .iter()
                .position(|i| same_path(&i.path, &spec.path))
                .map(|i| (v, i))
        })
}

/// The entry the cursor starts on: the default if it exists, else the
/// first entry that can boot, else the first entry.
pub fn initial_selection(snapshot: &Snapshot, default: Option<EntryRef>) -> Option<EntryRef> {
    if let Some(d) = default.filter(|&d| snapshot.entry(d).is_some()) {
        return Some(d);
    }
    let mut all = all_entries(snapshot).peekable();
    let first = all.peek().copied();
    all.find(|&r| blocker(snapshot, r).is_none()).or(first)
}

/// Every entry in snapshot order.
pub fn all_entries(snapshot: &Snapshot) -> impl Iterator<Item = EntryRef> + '_ {
    snapshot.volumes.iter().enumerate().flat_map(|(v, vol)| {
        vol.images.iter().enumerate().flat_map(move |(i, img)| {
            (0..img.entries.len()).map(move |e| EntryRef {
                volume: v,
                image: i,
                entry: e,
            })
        })
    })
}

fn host_matches(volume: &Volume, host: &Option<HostSelector>) -> bool {
    let same = |a: &Option<String>, b: &str| {
        a.as_deref()
            .is_some_and(|a| a.to_lowercase() == b.to_lowercase())
    };
    match host {
        None => true,
        Some(HostSelector::Label(l)) => same(&volume.label, l),
        Some(HostSelector::Uuid(u)) => same(&volume.uuid, u),
    }
}

/// NTFS and exFAT compare names case-insensitively; Unicode lowercasing is
/// close to their upcase tables for the names people use.
fn same_path(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// Finds the default, or says in one sentence why it is not there.
fn locate(snapshot: &Snapshot, spec: &DefaultSpec) -> Result<EntryRef, String> {
    let shown = spec;
    let volumes: Vec<usize> = snapshot
        .volumes
        .iter()
        .enumerate()
        .filter(|(_, v)| host_matches(v, &spec.host))
        .map(|(i, _)| i)
        .collect();
    if volumes.is_empty() {
        return Err(format!(
            "the default {shown} was not found: no volume has that {}; check vhdboot.default \
             against the volumes listed",
            match spec.host {
                Some(HostSelector::Label(_)) => "label",
                _ => "UUID",
            }
        ));
    }
    let mut found_without_entries = None;
    for &v in &volumes {
        let Some(volume) = snapshot.volumes.get(v) else {
            continue;
        };
        for (i, image) in volume.images.iter().enumerate() {
            if !same_path(&image.path, &spec.path) {
                continue;
            }
            if image.entries.is_empty() {
                // The judge's words for the image (for a UKI without .linux:
                // that section is missing), so the menu can say why.
                found_without_entries
                    .get_or_insert_with(|| (volume.display_name(), image_blocker(snapshot, v, i)));
                continue;
            }
            return Ok(EntryRef {
                volume: v,
                image: i,
                entry: 0,
            });
        }
    }
    Err(match found_without_entries {
        Some((volume, Some(why))) => {
            format!("the default {shown} on {volume} cannot boot: {why}")
        }
        Some((volume, None)) => format!(
            "the default {shown} on {volume} has no boot entries (no UKI in /EFI/Linux and no \
             Boot Loader Spec entry in its EFI system partition); see its problems in the list"
        ),
        None => format!(
            "the default {shown} was not found on any mounted volume; check the path in \
             vhdboot.default and the search folders"
        ),
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::model::*;
    use std::path::PathBuf;

    pub fn entry(title: &str, cmdline: &str) -> BootEntry {
        BootEntry {
            title: title.into(),
            version: Some("6.8.0-45-generic".into()),
            cmdline: cmdline.into(),
            source: EntrySource::Uki {
                esp: ByteRange {
                    offset: 1 << 20,
                    len: 512 << 20,
                },
                path: "/EFI/Linux/ubuntu.efi".into(),
            },
            kernel_size: 14 << 20,
            initrd_size: 60 << 20,
        }
    }

    pub fn fixed_image(path: &str, entries: Vec<BootEntry>) -> Image {
        let data_size = 20u64 << 30;
        Image {
            trial: None,
            path: path.into(),
            file_size: data_size + 512,
            kind: ImageKind::FixedVhd { data_size },
            entries,
            problems: vec![],
        }
    }

    pub fn ntfs_volume(device: &str, label: &str, uuid: &str, images: Vec<Image>) -> Volume {
        Volume {
            device: PathBuf::from(device),
            fstype: FsType::Ntfs,
            label: Some(label.into()),
            uuid: Some(uuid.into()),
            partuuid: Some("5f3c2a10-0b1e-4c5d-9e8f-0123456789ab".into()),
            size: 500 << 30,
            mount: MountState::Mounted {
                at: PathBuf::from(format!("/run/vhdboot/{label}")),
            },
            badges: vec![],
            images,
        }
    }

    /// Two NTFS volumes: "Data" with Ubuntu (two entries) and Fedora, and
    /// "Backup" with a second copy of Ubuntu.
    pub fn snapshot() -> Snapshot {
        Snapshot {
            volumes: vec![
                ntfs_volume(
                    "/dev/sda2",
                    "Data",
                    "1A2B3C4D5E6F7081",
                    vec![
                        fixed_image(
                            "/Images/Ubuntu 24.04.vhd",
                            vec![
                                entry("Ubuntu 24.04 LTS", "root=PARTUUID=x ro quiet splash"),
                                entry("Ubuntu 24.04 LTS (recovery)", "root=PARTUUID=x ro single"),
                            ],
                        ),
                        fixed_image(
                            "/Images/fedora.vhd",
                            vec![entry("Fedora Linux 41", "rhgb quiet")],
                        ),
                    ],
                ),
                ntfs_volume(
                    "/dev/sdb1",
                    "Backup",
                    "99AA88BB77CC66DD",
                    vec![fixed_image(
                        "/Images/Ubuntu 24.04.vhd",
                        vec![entry("Ubuntu 24.04 LTS", "quiet")],
                    )],
                ),
            ],
            log: vec![],
            secure_boot: None,
            immutable: Default::default(),
        }
    }

    pub fn at(volume: usize, image: usize, entry: usize) -> EntryRef {
        EntryRef {
            volume,
            image,
            entry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::model::{MountState, Problem, VolumeBadge};

    fn config(default: Option<(&Option<HostSelector>, &str)>, timeout: Timeout) -> Config {
        Config {
            default: default.map(|(host, path)| DefaultSpec {
                host: host.clone(),
                path: path.into(),
            }),
            timeout,
            ..Config::default()
        }
    }

    fn reason(start: Start) -> String {
        match start {
            Start::Menu { reason: Some(r) } => r,
            other => panic!("expected a menu with a reason, got {other:?}"),
        }
    }

    #[test]
    fn default_path_matches_case_insensitively_on_the_first_volume() {
        let c = config(
            Some((&None, "/images/UBUNTU 24.04.VHD")),
            Timeout::Seconds(5),
        );
        assert_eq!(find_default(&snapshot(), &c), Some(at(0, 0, 0)));
    }

    #[test]
    fn label_selector_picks_the_volume_case_insensitively() {
        let host = Some(HostSelector::Label("backup".into()));
        let c = config(
            Some((&host, "/Images/Ubuntu 24.04.vhd")),
            Timeout::Seconds(5),
        );
        assert_eq!(find_default(&snapshot(), &c), Some(at(1, 0, 0)));
    }

    #[test]
    fn uuid_selector_picks_the_volume_case_insensitively() {
        let host = Some(HostSelector::Uuid("99aa88bb77cc66dd".into()));
        let c = config(
            Some((&host, "/Images/Ubuntu 24.04.vhd")),
            Timeout::Seconds(5),
        );
        assert_eq!(find_default(&snapshot(), &c), Some(at(1, 0, 0)));
    }

    #[test]
    fn missing_default_is_not_found() {
        let c = config(Some((&None, "/Images/nothing.vhd")), Timeout::Seconds(5));
        assert_eq!(find_default(&snapshot(), &c), None);
        assert_eq!(find_default(&snapshot(), &Config::default()), None);
    }

    #[test]
    fn no_default_configured_shows_the_menu_without_a_reason() {
        assert_eq!(
            decide_start(&snapshot(), &Config::default()),
            Start::Menu { reason: None }
        );
    }

    #[test]
    fn timeout_zero_boots_a_bootable_default_at_once() {
        let c = config(Some((&None, "/Images/fedora.vhd")), Timeout::Immediate);
        assert_eq!(decide_start(&snapshot(), &c), Start::Boot(at(0, 1, 0)));
    }

    #[test]
    fn positive_timeout_counts_down_to_the_default() {
        let c = config(Some((&None, "/Images/fedora.vhd")), Timeout::Seconds(7));
        assert_eq!(
            decide_start(&snapshot(), &c),
            Start::Countdown {
                entry: at(0, 1, 0),
                seconds: 7
            }
        );
    }

    #[test]
    fn timeout_never_waits_in_the_menu() {
        let c = config(Some((&None, "/Images/fedora.vhd")), Timeout::Never);
        assert_eq!(decide_start(&snapshot(), &c), Start::Menu { reason: None });
    }

    #[test]
    fn default_not_found_shows_the_menu_with_the_path() {
        let c = config(Some((&None, "/Images/gone.vhd")), Timeout::Immediate);
        let r = reason(decide_start(&snapshot(), &c));
        assert!(
            r.contains("/Images/gone.vhd") && r.contains("not found"),
            "{r}"
        );
    }

    #[test]
    fn default_on_an_unknown_label_names_the_label() {
        let host = Some(HostSelector::Label("Nope".into()));
        let c = config(Some((&host, "/Images/fedora.vhd")), Timeout::Immediate);
        let r = reason(decide_start(&snapshot(), &c));
        assert!(
            r.contains("LABEL=Nope:/Images/fedora.vhd") && r.contains("label"),
            "{r}"
        );
    }

    #[test]
    fn default_without_entries_says_so() {
        let mut s = snapshot();
        s.volumes[0].images[1].entries.clear();
        let c = config(Some((&None, "/Images/fedora.vhd")), Timeout::Immediate);
        let r = reason(decide_start(&s, &c));
        assert!(
            r.contains("cannot boot") && r.contains("no kernel was found in it"),
            "{r}"
        );
    }

    #[test]
    fn default_without_entries_names_the_images_own_problem() {
        // A UKI without .linux yields no entry and a blocking problem; the
        // reason the menu shows must be that problem, not a generic one.
        let mut s = snapshot();
        let image = &mut s.volumes[0].images[1];
        image.entries.clear();
        image.problems.push(Problem::blocking(
            "/EFI/Linux/fedora.efi has no .linux section",
            "rebuild the UKI with its kernel",
        ));
        let c = config(Some((&None, "/Images/fedora.vhd")), Timeout::Immediate);
        let r = reason(decide_start(&s, &c));
        assert!(r.contains("has no .linux section"), "{r}");
        assert_eq!(default_image(&s, &c), Some((0, 1)));
    }

    #[test]
    fn default_on_a_hibernated_volume_shows_the_menu_with_the_reason() {
        let mut s = snapshot();
        s.volumes[0].badges.push(VolumeBadge::Hibernated);
        let c = config(Some((&None, "/Images/fedora.vhd")), Timeout::Immediate);
        let r = reason(decide_start(&s, &c));
        assert!(r.contains("cannot boot") && r.contains("hibernated"), "{r}");
    }

    #[test]
    fn default_with_a_blocking_problem_shows_the_menu_with_the_problem() {
        let mut s = snapshot();
        s.volumes[0].images[1].problems.push(Problem::blocking(
            "the file is sparse",
            "copy it with cp --sparse=never",
        ));
        let c = config(Some((&None, "/Images/fedora.vhd")), Timeout::Seconds(3));
        let r = reason(decide_start(&s, &c));
        assert!(r.contains("the file is sparse"), "{r}");
    }

    #[test]
    fn initial_selection_prefers_the_default() {
        assert_eq!(
            initial_selection(&snapshot(), Some(at(0, 1, 0))),
            Some(at(0, 1, 0))
        );
    }

    #[test]
    fn initial_selection_ignores_a_stale_default() {
        assert_eq!(
            initial_selection(&snapshot(), Some(at(5, 0, 0))),
            Some(at(0, 0, 0))
        );
    }

    #[test]
    fn initial_selection_skips_entries_that_cannot_boot() {
        let mut s = snapshot();
        s.volumes[0].mount = MountState::Refused {
            reason: "volume is dirty".into(),
        };
        assert_eq!(initial_selection(&s, None), Some(at(1, 0, 0)));
    }

    #[test]
    fn initial_selection_falls_back_to_the_first_entry_when_none_can_boot() {
        let mut s = snapshot();
        for v in &mut s.volumes {
            v.mount = MountState::NotMounted;
        }
        assert_eq!(initial_selection(&s, None), Some(at(0, 0, 0)));
    }

    #[test]
    fn initial_selection_of_an_empty_snapshot_is_none() {
        assert_eq!(initial_selection(&Snapshot::default(), None), None);
    }

    #[test]
    fn all_entries_walks_in_snapshot_order() {
        let all: Vec<_> = all_entries(&snapshot()).collect();
        assert_eq!(
            all,
            vec![at(0, 0, 0), at(0, 0, 1), at(0, 1, 0), at(1, 0, 0)]
        );
    }

    fn id(r: EntryRef) -> Option<String> {
        crate::boot::entry_id::entry_id(&snapshot(), r)
    }

    #[test]
    fn one_shot_boots_at_once_even_when_the_menu_would_wait() {
        let c = config(Some((&None, "/Images/fedora.vhd")), Timeout::Never);
        let remembered = Remembered {
            one_shot: id(at(1, 0, 0)),
            last_booted: id(at(0, 0, 1)),
            ..Remembered::default()
        };
        let d = decide_start_remembered(&snapshot(), &c, &remembered);
        assert_eq!(d.start, Start::Boot(at(1, 0, 0)));
        assert!(d.notes.is_empty(), "{:?}", d.notes);
    }

    #[test]
    fn saved_default_is_preselected_with_the_countdown() {
        let c = Config {
            default_saved: true,
            ..config(None, Timeout::Seconds(5))
        };
        let remembered = Remembered {
            last_booted: id(at(0, 0, 1)),
            ..Remembered::default()
        };
        let d = decide_start_remembered(&snapshot(), &c, &remembered);
        assert_eq!(
            d.start,
            Start::Countdown {
                entry: at(0, 0, 1),
                seconds: 5
            }
        );
        assert_eq!(d.default, Some(at(0, 0, 1)));
    }

    #[test]
    fn last_booted_is_ignored_without_saved() {
        let c = config(Some((&None, "/Images/fedora.vhd")), Timeout::Seconds(5));
        let remembered = Remembered {
            last_booted: id(at(0, 0, 1)),
            ..Remembered::default()
        };
        let d = decide_start_remembered(&snapshot(), &c, &remembered);
        assert_eq!(d.default, Some(at(0, 1, 0)));
    }

    #[test]
    fn saved_without_a_saved_entry_falls_back_to_the_path_default() {
        let c = Config {
            default_saved: true,
            ..config(Some((&None, "/Images/fedora.vhd")), Timeout::Seconds(5))
        };
        let d = decide_start_remembered(&snapshot(), &c, &Remembered::default());
        assert_eq!(
            d.start,
            Start::Countdown {
                entry: at(0, 1, 0),
                seconds: 5
            }
        );
    }

    #[test]
    fn unknown_one_shot_is_noted_and_the_next_default_used() {
        let c = Config {
            default_saved: true,
            ..config(None, Timeout::Seconds(3))
        };
        let remembered = Remembered {
            one_shot: Some("gone-entry-00000000".into()),
            last_booted: id(at(0, 1, 0)),
            ..Remembered::default()
        };
        let d = decide_start_remembered(&snapshot(), &c, &remembered);
        assert_eq!(
            d.start,
            Start::Countdown {
                entry: at(0, 1, 0),
                seconds: 3
            }
        );
        assert!(d.notes[0].contains("gone-entry-00000000"), "{:?}", d.notes);
    }

    #[test]
    fn loader_entry_default_wins_over_saved() {
        let c = Config {
            default_saved: true,
            ..config(None, Timeout::Seconds(0))
        };
        let remembered = Remembered {
            entry_default: id(at(0, 1, 0)),
            last_booted: id(at(0, 0, 0)),
            ..Remembered::default()
        };
        let d = decide_start_remembered(&snapshot(), &c, &remembered);
        assert_eq!(d.start, Start::Boot(at(0, 1, 0)));
    }
}
