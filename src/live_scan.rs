//! The live scan: probe block devices, mount NTFS and exFAT volumes
//! read-only, and describe the images on them. Stage 1 runs it at boot and
//! `vhdboot scan` on an ordinary Linux, so it belongs to neither face. Mounting is the only system
//! change it makes, and it is always read-only without `force`
//! (shared/design.md, data-safety invariant 1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vhdboot::config::Config;
use vhdboot::discovery::scan::find_image_files;
use vhdboot::discovery::{in_use, preflight};
use vhdboot::model::{FsType, ImmutablePolicy, MountState, Snapshot, Volume, VolumeBadge};
use vhdboot::sys::{blkid, efi, mount};

/// Where host volumes are mounted, one folder per device (`vda2`): two
/// volumes may share a UUID, and must never be mounted on each other.
pub const HOSTS_DIR: &str = "/run/vhdboot/hosts";

fn add_badge(volume: &mut Volume, badge: Option<VolumeBadge>) {
    if let Some(b) = badge.filter(|b| !volume.badges.contains(b)) {
        volume.badges.push(b);
    }
}

/// The volumes found so far, keyed by device, plus the scan log.
pub struct Discovery {
    config: Config,
    hosts_dir: PathBuf,
    volumes: BTreeMap<PathBuf, Volume>,
    /// Mount points this discovery made itself, and so must unmount.
    ours: Vec<PathBuf>,
    log: Vec<String>,
    started: Instant,
    secure_boot: Option<bool>,
}

impl Discovery {
    pub fn new(config: Config, hosts_dir: &Path) -> Discovery {
        let mut d = Discovery {
            config,
            hosts_dir: hosts_dir.to_path_buf(),
            volumes: BTreeMap::new(),
            ours: Vec::new(),
            log: Vec::new(),
            started: Instant::now(),
            secure_boot: efi::secure_boot(Path::new(efi::EFIVARS)),
        };
        if let Some(n) = preflight::secure_boot_notice(d.secure_boot) {
            d.note(format!("{}; {}", n.what, n.hint));
        }
        d
    }

    /// Reads the Secure Boot state again: stage 1 mounts efivarfs only
    /// after loading its module, after this discovery was made.
    pub fn reread_secure_boot(&mut self) {
        let before = self.secure_boot;
        self.secure_boot = efi::secure_boot(Path::new(efi::EFIVARS));
        if self.secure_boot != before
            && let Some(n) = preflight::secure_boot_notice(self.secure_boot)
        {
            self.note(format!("{}; {}", n.what, n.hint));
        }
    }

    /// The configuration this discovery scans with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn note(&mut self, line: String) {
        let t = self.started.elapsed().as_secs_f64();
        self.log.push(format!("[{t:7.3}] {line}"));
    }

    /// Probes the block devices and adds the NTFS and exFAT volumes not seen
    /// before. Returns how many new volumes were added.
    pub fn poll(&mut self) -> usize {
        let devices = blkid::probe_block_devices(Path::new("/sys"));
        let mut added = 0;
        for dev in devices {
            if self.volumes.contains_key(&dev.device) {
                continue;
            }
            let fstype = match dev.fstype.as_deref() {
                Some(t) => FsType::from_blkid(t),
                None => continue,
            };
            if !matches!(fstype, FsType::Ntfs | FsType::Exfat) {
                continue;
            }
            let mut volume = Volume {
                device: dev.device.clone(),
                fstype,
                label: dev.label.clone(),
                uuid: dev.uuid.clone(),
                partuuid: dev.partuuid.clone(),
                size: dev.size,
                mount: MountState::NotMounted,
                badges: Vec::new(),
                images: Vec::new(),
            };
            if dev.read_only {
                volume.badges.push(VolumeBadge::ReadOnly);
            }
            if dev.removable {
                volume.badges.push(VolumeBadge::Removable);
                self.note(format!(
                    "{} is on a removable disk: Windows' hibernation on the internal disks \
                     does not hold it",
                    volume.device.display()
                ));
            }
            let (badges, notes) =
                preflight::device_badges(&volume.device, &volume.fstype, volume.size);
            for badge in badges {
                add_badge(&mut volume, Some(badge));
            }
            for note in notes {
                self.note(note);
            }
            self.mount_and_scan(&mut volume);
            self.volumes.insert(dev.device, volume);
            added += 1;
        }
        added
    }

    fn mount_point(&self, volume: &Volume) -> PathBuf {
        let key = match volume.device.strip_prefix("/dev") {
            Ok(name) => name.to_string_lossy().replace('/', "_"),
            Err(_) => volume.device.to_string_lossy().replace('/', "_"),
        };
        self.hosts_dir.join(key)
    }

    fn mount_and_scan(&mut self, volume: &mut Volume) {
        // A volume the running system already mounted (the CLI on an
        // ordinary Linux) is read where it is, never mounted twice.
        if let Some(at) = mount::mount_point_of(&volume.device) {
            self.note(format!(
                "{} is already mounted at {}; reading it there",
                volume.device.display(),
                at.display()
            ));
            volume.mount = MountState::Mounted { at };
            self.check_hibernation(volume);
            self.scan_images(volume);
            return;
        }
        let target = self.mount_point(volume);
        let driver = volume.fstype.driver().to_string();
        match mount::mount_fs(
            &volume.device,
            &target,
            &driver,
            mount::MountMode::ReadOnly,
            "",
        ) {
            Ok(()) => {
                self.note(format!(
                    "mounted {} ({}) read-only at {}",
                    volume.device.display(),
                    driver,
                    target.display()
                ));
                self.ours.push(target.clone());
                volume.mount = MountState::Mounted { at: target };
                self.check_hibernation(volume);
                self.scan_images(volume);
            }
            Err(e) => {
                let reason = e.to_string();
                let lower = reason.to_ascii_lowercase();
                if lower.contains("hibernat") {
                    volume.badges.push(VolumeBadge::Hibernated);
                } else if lower.contains("dirty") {
                    volume.badges.push(VolumeBadge::Dirty);
                }
                self.note(format!(
                    "not mounting {}: {reason}",
                    volume.device.display()
                ));
                volume.mount = MountState::Refused { reason };
            }
        }
    }

    /// Windows' hibernation file is read through the read-only mount, and
    /// so is vhdboot's own in-use record (on NTFS and exFAT alike).
    fn check_hibernation(&mut self, volume: &mut Volume) {
        let MountState::Mounted { at } = &volume.mount else {
            return;
        };
        let root = at.clone();
        match in_use::not_detached_badge(&root) {
            Ok(Some((badge, line))) => {
                self.note(format!("{}: {line}", volume.display_name()));
                add_badge(volume, Some(badge));
            }
            Ok(None) => {}
            Err(e) => self.note(format!("cannot check for vhdboot's in-use record: {e}")),
        }
        let MountState::Mounted { at } = &volume.mount else {
            return;
        };
        if volume.fstype != FsType::Ntfs {
            return;
        }
        match preflight::hibernation_badge(at) {
            Ok(badge) => add_badge(volume, badge),
            Err(e) => self.note(format!("cannot check for hibernation: {e}")),
        }
    }

    fn scan_images(&mut self, volume: &mut Volume) {
        let MountState::Mounted { at } = &volume.mount else {
            return;
        };
        let root = at.clone();
        let c = &self.config;
        let paths = find_image_files(&root, &c.search, c.depth, c.raw_images);
        let raw = c.raw_images;
        volume.images = paths
            .iter()
            .map(|p| crate::probe::describe_bounded(&root, p, raw, &c.probe))
            .collect();
        let n_entries: usize = volume.images.iter().map(|i| i.entries.len()).sum();
        self.note(format!(
            "{}: {} image(s), {} boot entr{}",
            volume.display_name(),
            volume.images.len(),
            n_entries,
            if n_entries == 1 { "y" } else { "ies" }
        ));
        for img in &volume.images {
            for p in &img.problems {
                self.note(format!("{}{}: {}", volume.display_name(), img.path, p.what));
            }
        }
    }

    /// Mounts again (read-only) every volume that is not mounted, as after
    /// a failed kexec, reboot or power-off unmounted them all, scans every
    /// mounted volume again and probes for new devices. A volume whose mount
    /// was refused stays as it is: the refusal's reason is still shown.
    pub fn remount_and_rescan(&mut self) -> Snapshot {
        let mut volumes = std::mem::take(&mut self.volumes);
        for v in volumes.values_mut() {
            match v.mount {
                MountState::Mounted { .. } => self.scan_images(v),
                MountState::NotMounted => self.mount_and_scan(v),
                MountState::Refused { .. } => {}
            }
        }
        self.volumes = volumes;
        self.poll();
        self.snapshot()
    }

    /// What was found, with the verdicts that need every volume (Windows'
    /// hibernation anywhere, shared UUIDs) made afresh over the whole set.
    pub fn snapshot(&self) -> Snapshot {
        let mut volumes: Vec<Volume> = self.volumes.values().cloned().collect();
        preflight::apply_machine_verdicts(&mut volumes);
        Snapshot {
            volumes,
            log: self.log.clone(),
            secure_boot: self.secure_boot,
            immutable: ImmutablePolicy {
                images: self.config.immutable.clone(),
                ram_limit: self.config.immutable_ram,
                trial: Vec::new(),
                trial_size: self.config.trial_size,
            },
        }
    }

    /// Waits for disks: polls until the default entry is found, or, with no
    /// default configured, until images were found and no new device came
    /// for a second, or until `settle` runs out.
    pub fn settle(&mut self, mut between_polls: impl FnMut()) -> Snapshot {
        let deadline = Instant::now() + self.config.settle;
        let mut last_change = Instant::now();
        loop {
            if self.poll() > 0 {
                last_change = Instant::now();
            }
            let snap = self.snapshot();
            let now = Instant::now();
            if self.config.default.is_some() {
                if vhdboot::discovery::decisions::find_default(&snap, &self.config).is_some() {
                    self.note("the default image was found; done waiting for disks".into());
                    return self.snapshot();
                }
            } else if snap.volumes.iter().any(|v| !v.images.is_empty())
                && now.duration_since(last_change) >= Duration::from_secs(1)
            {
                return snap;
            }
            if now >= deadline {
                self.note(format!(
                    "stopped waiting for disks after {} s",
                    self.config.settle.as_secs()
                ));
                return self.snapshot();
            }
            between_polls();
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Unmounts everything this discovery mounted (before kexec, reboot,
    /// or the end of `vhdboot scan`).
    pub fn unmount_all(&mut self) {
        for at in std::mem::take(&mut self.ours) {
            match mount::umount_fs(&at) {
                Ok(mount::Unmounted::Clean) => {}
                Ok(mount::Unmounted::Detached) => {
                    self.note(format!("{} was busy and was detached lazily", at.display()))
                }
                Err(e) => self.note(format!("unmounting {}: {e}", at.display())),
            }
        }
        for v in self.volumes.values_mut() {
            v.mount = MountState::NotMounted;
        }
    }
}
