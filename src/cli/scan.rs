//! `vhdboot scan`: what stage 1 would list, on an ordinary Linux.
//!
//! Volumes the system already mounted are read where they are. Others are
//! mounted read-only in a temporary folder (as root) and unmounted again.
//! `--root DIR` reads a folder as if it were a host volume, without root.

use anyhow::Context;
use clap::Args;
use humansize::{BINARY, format_size};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::live_scan::Discovery;
use vhdboot::boot::entry_id::all_entry_ids;
use vhdboot::boot::plan::{PlanError, image_blocker, image_problem};
use vhdboot::config::Config;
use vhdboot::discovery::scan::find_image_files;
use vhdboot::model::{FsType, MountState, Snapshot, Volume};
use vhdboot::sys::tempdir;

#[derive(Args)]
pub struct ScanArgs {
    /// Print the snapshot as JSON.
    #[arg(long)]
    pub json: bool,
    /// Read this folder as a host volume instead of probing block devices
    /// (may be given more than once).
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// Also list raw *.img files.
    #[arg(long)]
    pub raw: bool,
}

pub fn run(a: ScanArgs) -> anyhow::Result<ExitCode> {
    let config = Config {
        raw_images: a.raw,
        ..Config::default()
    };
    let snapshot = if a.roots.is_empty() {
        scan_devices(config)?
    } else {
        Snapshot {
            volumes: a.roots.iter().map(|r| folder_volume(r, &config)).collect(),
            log: Vec::new(),
            secure_boot: None,
            immutable: Default::default(),
        }
    };
    if a.json {
        // JSON escapes control characters itself; its newlines are layout.
        println!(
            "{}",
            serde_json::to_string_pretty(&with_entry_ids(&snapshot)?)?
        );
    } else {
        print_snapshot(&snapshot, !a.roots.is_empty());
    }
    Ok(ExitCode::SUCCESS)
}

/// The snapshot as JSON, each entry with its stable `id` (the name
/// `bootctl set-oneshot` and `default = @saved` use) added beside the
/// fields the model has.
fn with_entry_ids(snapshot: &Snapshot) -> anyhow::Result<serde_json::Value> {
    let mut json = serde_json::to_value(snapshot)?;
    for (r, id) in all_entry_ids(snapshot) {
        if let Some(entry) = json
            .pointer_mut(&format!(
                "/volumes/{}/images/{}/entries/{}",
                r.volume, r.image, r.entry
            ))
            .and_then(|e| e.as_object_mut())
        {
            entry.insert("id".into(), serde_json::Value::String(id));
        }
    }
    Ok(json)
}

pub(super) fn scan_devices(config: Config) -> anyhow::Result<Snapshot> {
    // A private folder (mkdtemp: random name, mode 0700), never a
    // predictable one another user could plant a symlink at.
    let tmp = tempdir::mkdtemp("vhdboot-scan-").context("creating the mount folder")?;
    let mut discovery = Discovery::new(config, &tmp);
    discovery.poll();
    let snapshot = discovery.snapshot();
    discovery.unmount_all();
    remove_mount_folder(&tmp);
    Ok(snapshot)
}

/// Removes the mount folder and the mount points in it. Only empty
/// folders are removed: if an unmount failed, the volume's files stay
/// untouched and the folder is left, with a line saying so.
fn remove_mount_folder(tmp: &Path) {
    if let Ok(entries) = std::fs::read_dir(tmp) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
    if let Err(e) = std::fs::remove_dir(tmp) {
        say_err!("vhdboot: left the mount folder {}: {e}", tmp.display());
    }
}

fn folder_volume(root: &Path, config: &Config) -> Volume {
    let images = find_image_files(root, &config.search, config.depth, config.raw_images)
        .iter()
        .map(|p| crate::probe::describe_bounded(root, p, config.raw_images, &config.probe))
        .collect();
    Volume {
        device: root.to_path_buf(),
        fstype: FsType::Other("folder".into()),
        label: None,
        uuid: None,
        partuuid: None,
        size: 0,
        mount: MountState::Mounted {
            at: root.to_path_buf(),
        },
        badges: Vec::new(),
        images,
    }
}

/// Prints what was found and the judge's verdict on each image. Folders
/// given with `--root` stand in for host volumes that are not there, so
/// only their images are judged.
fn print_snapshot(s: &Snapshot, folders: bool) {
    if s.volumes.is_empty() {
        say!(
            "no NTFS or exFAT volumes found (run as root to mount unmounted ones, or pass --root DIR)"
        );
    }
    for (vi, v) in s.volumes.iter().enumerate() {
        say!(
            "{} ({}, {}, {})",
            v.display_name(),
            v.device.display(),
            v.fstype.driver(),
            format_size(v.size, BINARY)
        );
        if let MountState::Refused { reason } = &v.mount {
            say!("  not mounted: {reason}");
        }
        if v.images.is_empty() && matches!(v.mount, MountState::Mounted { .. }) {
            say!("  no images");
        }
        for (ii, img) in v.images.iter().enumerate() {
            let blocker = if folders {
                image_problem(&v.display_name(), img).err()
            } else {
                image_blocker(s, vi, ii)
            };
            let state = if blocker.is_none() {
                "bootable"
            } else {
                "not bootable"
            };
            say!(
                "  {} ({}, {state})",
                img.path,
                format_size(img.file_size, BINARY)
            );
            for e in &img.entries {
                say!("    - {}", e.title);
            }
            for p in &img.problems {
                say!("    ! {} ({})", p.what, p.hint);
            }
            // A refusal that is not one of the image's own problems (the
            // host's state, say) is not listed above.
            if let Some(why) = blocker.filter(|b| !matches!(b, PlanError::ImageBlocked { .. })) {
                println!("    ! {} ({})", why.cause(), why.hint());
            }
        }
    }
    for line in &s.log {
        say_err!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vhdboot::model::{BootEntry, ByteRange, EntrySource, Image, ImageKind};

    #[test]
    fn json_entries_carry_their_stable_ids() {
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
        let snapshot = Snapshot {
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
        };
        let json = with_entry_ids(&snapshot).unwrap();
        let id = json
            .pointer("/volumes/0/images/0/entries/0/id")
            .and_then(|v| v.as_str())
            .unwrap();
        assert!(id.starts_with("debian-debian-"), "{id}");
        assert_eq!(
            json.pointer("/volumes/0/images/0/entries/0/title").unwrap(),
            "Debian"
        );
    }
}
