//! A built-in snapshot for `vhdboot menu --demo`, the snapshot tests and
//! the benchmark: every kind of row and problem the menu can show.

use crate::model::{
    BootEntry, ByteRange, EntryRef, EntrySource, FsType, Image, ImageKind, MountState, Problem,
    Snapshot, Volume, VolumeBadge,
};
use std::path::PathBuf;

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;
const ESP: ByteRange = ByteRange {
    offset: MIB,
    len: 512 * MIB,
};

fn uki(title: &str, version: &str, path: &str, cmdline: &str) -> BootEntry {
    BootEntry {
        title: title.into(),
        version: Some(version.into()),
        cmdline: cmdline.into(),
        source: EntrySource::Uki {
            esp: ESP,
            path: path.into(),
        },
        kernel_size: 14 * MIB,
        initrd_size: 38 * MIB,
    }
}

fn fixed(path: &str, size: u64, entries: Vec<BootEntry>, problems: Vec<Problem>) -> Image {
    Image {
        trial: None,
        path: path.into(),
        file_size: size + 512,
        kind: ImageKind::FixedVhd { data_size: size },
        entries,
        problems,
    }
}

/// The demo's default: Arch's first UKI.
pub const DEFAULT_ENTRY: EntryRef = EntryRef {
    volume: 0,
    image: 0,
    entry: 0,
};

pub fn fixture_snapshot() -> Snapshot {
    let arch = fixed(
        "/vhd/arch.vhd",
        32 * GIB,
        vec![
            uki(
                "Arch Linux",
                "6.12.4-arch1-1",
                "/EFI/Linux/arch-linux.efi",
                "root=PARTUUID=0c6ec3b8-1f5b-4b4e-9a0f-3d6f0e8a1b21 rw quiet splash",
            ),
            uki(
                "Arch Linux (LTS)",
                "6.6.63-1-lts",
                "/EFI/Linux/arch-linux-lts.efi",
                "root=PARTUUID=0c6ec3b8-1f5b-4b4e-9a0f-3d6f0e8a1b21 rw",
            ),
        ],
        vec![],
    );
    let debian = fixed(
        "/vhd/debian.vhd",
        20 * GIB,
        vec![BootEntry {
            title: "Debian GNU/Linux 12 (bookworm)".into(),
            version: Some("6.1.0-28-amd64".into()),
            cmdline: "root=UUID=5d0b9c1e-7d43-4f57-8a43-1c2b3d4e5f60 ro quiet".into(),
            source: EntrySource::Bls {
                esp: ESP,
                conf: "/loader/entries/debian-6.1.0-28-amd64.conf".into(),
                linux: "/debian/6.1.0-28-amd64/linux".into(),
                initrd: vec!["/debian/6.1.0-28-amd64/initrd.img".into()],
            },
            kernel_size: 8 * MIB,
            initrd_size: 30 * MIB,
        }],
        vec![],
    );
    let fedora = fixed(
        "/vhd/fedora.vhd",
        24 * GIB,
        vec![uki(
            "Fedora Linux 41 (Workstation Edition)",
            "6.11.4-301.fc41.x86_64",
            "/EFI/Linux/fedora.efi",
            "root=UUID=9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d ro rhgb quiet",
        )],
        vec![Problem::warning(
            "the UKI has no .osrel section; the title comes from .uname",
            "Rebuild the UKI with ukify to carry os-release.",
        )],
    );
    let dynamic = Image {
        trial: None,
        path: "/vhd/scratch-dynamic.vhd".into(),
        file_size: 3 * GIB,
        kind: ImageKind::DynamicVhd,
        entries: vec![],
        problems: vec![Problem::blocking(
            "dynamic VHD: cannot sit on a loop device",
            "Convert it on another Linux: vhdboot convert scratch-dynamic.vhd fixed.vhd",
        )],
    };
    let ubuntu = fixed(
        "/images/ubuntu.vhd",
        16 * GIB,
        vec![uki(
            "Ubuntu 24.04.1 LTS",
            "6.8.0-49-generic",
            "/EFI/Linux/ubuntu.efi",
            "root=LABEL=ubuntu ro quiet splash",
        )],
        vec![],
    );
    Snapshot {
        volumes: vec![
            Volume {
                device: PathBuf::from("/dev/nvme0n1p3"),
                fstype: FsType::Ntfs,
                label: Some("Data".into()),
                uuid: Some("4A1C5E2F1C5E16B9".into()),
                partuuid: Some("b3c1d2e4-5f60-4a7b-8c9d-0e1f2a3b4c5d".into()),
                size: 900 * GIB,
                mount: MountState::Mounted {
                    at: PathBuf::from("/run/vhdboot/demo/data"),
                },
                badges: vec![],
                images: vec![arch, debian, fedora, dynamic],
            },
            Volume {
                device: PathBuf::from("/dev/sdb1"),
                fstype: FsType::Exfat,
                label: Some("Portable".into()),
                uuid: Some("1C2B-3A4D".into()),
                partuuid: Some("00c0ffee-01".into()),
                size: 128 * GIB,
                mount: MountState::Mounted {
                    at: PathBuf::from("/run/vhdboot/demo/portable"),
                },
                badges: vec![],
                images: vec![ubuntu],
            },
            Volume {
                device: PathBuf::from("/dev/nvme0n1p4"),
                fstype: FsType::Ntfs,
                label: Some("Windows".into()),
                uuid: Some("8E2A4B6C2A4B52F1".into()),
                partuuid: None,
                size: 250 * GIB,
                mount: MountState::Refused {
                    reason: "volume is dirty and \"force\" flag is not set".into(),
                },
                badges: vec![VolumeBadge::Dirty],
                images: vec![],
            },
        ],
        log: vec![
            "probe: /dev/nvme0n1p3 ntfs LABEL=Data".into(),
            "mount: /dev/nvme0n1p3 read-only at /run/vhdboot/demo/data (ntfs3)".into(),
            "probe: /dev/nvme0n1p4 ntfs LABEL=Windows".into(),
            "mount: /dev/nvme0n1p4 refused: volume is dirty and \"force\" flag is not set".into(),
            "probe: /dev/sdb1 exfat LABEL=Portable".into(),
            "mount: /dev/sdb1 read-only at /run/vhdboot/demo/portable (exfat)".into(),
            "image: /vhd/arch.vhd fixed VHD, 2 UKIs".into(),
            "image: /vhd/debian.vhd fixed VHD, 1 BLS entry".into(),
            "image: /vhd/fedora.vhd fixed VHD, 1 UKI (no .osrel)".into(),
            "image: /vhd/scratch-dynamic.vhd dynamic VHD: not bootable".into(),
            "image: /images/ubuntu.vhd fixed VHD, 1 UKI".into(),
        ],
        secure_boot: None,
        immutable: Default::default(),
    }
}
