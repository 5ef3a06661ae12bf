//! The support bundle (issue 16, item 3): one text file with everything a
//! bug report needs, in sections with fixed headings (`== versions ==`),
//! so that a reader, and a test, finds each part. ZFSBootMenu's `zreport`
//! and pb-sos are the models. Pure: the facts that need syscalls (the
//! kernel log, the block devices) are gathered by the caller and passed in.

#![forbid(unsafe_code)]

use crate::boot::plan::{blocker, image_blocker};
use crate::model::{EntryRef, MountState, Snapshot};
use crate::terminal_text::escape_controls;

/// The section names, in the order the report has them.
pub const SECTIONS: [&str; 7] = [
    "versions",
    "configuration",
    "scan log",
    "problems",
    "boot timeline",
    "kernel log",
    "block devices",
];

/// The most kernel log lines a report keeps (the newest).
pub const MAX_KERNEL_LINES: usize = 1000;

/// The file name a saved report gets.
pub const FILE_NAME: &str = "vhdboot-report.txt";

/// What the caller gathered from the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFacts {
    /// vhdboot's version, the kernel's, the firmware's mode.
    pub versions: Vec<String>,
    /// The configuration in force, one line per setting.
    pub configuration: Vec<String>,
    pub timeline: Vec<String>,
    /// Kernel messages, oldest first; cut to the newest
    /// [`MAX_KERNEL_LINES`] by [`render`].
    pub kernel_log: Vec<String>,
    pub block_devices: Vec<String>,
}

/// A failure the menu saw (a refused boot, a failed mount), as the report
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenFailure {
    pub what: String,
    pub cause: String,
    pub hint: String,
}

/// The heading line of section `name`.
pub fn heading(name: &str) -> String {
    format!("== {name} ==")
}

/// The whole report. Every line from a disk goes through
/// `escape_controls`, so the file can be shown on a terminal as it is.
pub fn render(facts: &ReportFacts, snapshot: &Snapshot, failures: &[SeenFailure]) -> String {
    let kernel_skip = facts.kernel_log.len().saturating_sub(MAX_KERNEL_LINES);
    let mut kernel = Vec::new();
    if kernel_skip > 0 {
        kernel.push(format!("({kernel_skip} older lines left out)"));
    }
    kernel.extend(facts.kernel_log.iter().skip(kernel_skip).cloned());
    let sections: [(&str, Vec<String>); 7] = [
        ("versions", facts.versions.clone()),
        ("configuration", facts.configuration.clone()),
        ("scan log", snapshot.log.clone()),
        ("problems", problems(snapshot, failures)),
        ("boot timeline", facts.timeline.clone()),
        ("kernel log", kernel),
        ("block devices", facts.block_devices.clone()),
    ];
    let mut out = String::from("vhdboot report\n");
    for (name, lines) in sections {
        out.push('\n');
        out.push_str(&heading(name));
        out.push('\n');
        if lines.is_empty() {
            out.push_str("(none)\n");
        }
        for line in lines {
            out.push_str(&escape_controls(&line));
            out.push('\n');
        }
    }
    out
}

/// Every problem known, each with what to do: volumes that could not be
/// mounted or carry a badge, each image's problems, each entry that cannot
/// boot (the verdict of `boot::plan`), and the failures the menu saw.
pub fn problems(snapshot: &Snapshot, failures: &[SeenFailure]) -> Vec<String> {
    let mut lines = Vec::new();
    for (v, volume) in snapshot.volumes.iter().enumerate() {
        let name = format!("{} ({})", volume.display_name(), volume.device.display());
        if let MountState::Refused { reason } = &volume.mount {
            lines.push(format!("{name}: not mounted: {reason}"));
        }
        for badge in &volume.badges {
            lines.push(format!("{name}: {badge:?}"));
        }
        for (i, image) in volume.images.iter().enumerate() {
            for p in &image.problems {
                let kind = if p.blocks_boot { "error" } else { "warning" };
                lines.push(format!("{name}: {}: {kind}: {}", image.path, p.what));
                lines.push(format!("  hint: {}", p.hint));
            }
            if image.entries.is_empty() {
                if let Some(e) = image_blocker(snapshot, v, i) {
                    lines.push(format!(
                        "{name}: {}: cannot boot: {}",
                        image.path,
                        e.cause()
                    ));
                    lines.push(format!("  hint: {}", e.hint()));
                }
                continue;
            }
            for (n, entry) in image.entries.iter().enumerate() {
                let r = EntryRef {
                    volume: v,
                    image: i,
                    entry: n,
                };
                if let Some(e) = blocker(snapshot, r) {
                    lines.push(format!(
                        "{name}: {}: {}: cannot boot: {}",
                        image.path,
                        entry.title,
                        e.cause()
                    ));
                    lines.push(format!("  hint: {}", e.hint()));
                }
            }
        }
    }
    for f in failures {
        lines.push(format!("menu: {}: {}", f.what, f.cause));
        if !f.hint.is_empty() {
            lines.push(format!("  hint: {}", f.hint));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FsType, Image, ImageKind, Problem, Volume, VolumeBadge};

    fn snapshot() -> Snapshot {
        Snapshot {
            volumes: vec![Volume {
                device: "/dev/vda2".into(),
                fstype: FsType::Ntfs,
                label: Some("WIN".into()),
                uuid: Some("ABCD".into()),
                partuuid: None,
                size: 1 << 30,
                mount: MountState::Mounted {
                    at: "/run/vhdboot/hosts/ABCD".into(),
                },
                badges: vec![VolumeBadge::Dirty],
                images: vec![Image {
                    trial: None,
                    path: "/vhd/broken\u{1b}[2J.vhd".into(),
                    file_size: 1 << 20,
                    kind: ImageKind::DynamicVhd,
                    entries: Vec::new(),
                    problems: vec![Problem::blocking(
                        "it is a dynamic VHD",
                        "convert it to a fixed VHD",
                    )],
                }],
            }],
            log: vec!["[  0.100] mounted /dev/vda2".into()],
            secure_boot: None,
            immutable: Default::default(),
        }
    }

    #[test]
    fn every_section_has_its_fixed_heading_in_order() {
        let text = render(&ReportFacts::default(), &snapshot(), &[]);
        let mut at = 0;
        for name in SECTIONS {
            let found = text[at..]
                .find(&format!("\n== {name} ==\n"))
                .unwrap_or_else(|| panic!("no {name} section after byte {at}:\n{text}"));
            at += found + 1;
        }
    }

    #[test]
    fn problems_come_with_their_hints_and_the_menu_failures() {
        let failures = [SeenFailure {
            what: "loading E2E".into(),
            cause: "EPERM".into(),
            hint: "pick another entry".into(),
        }];
        let text = render(&ReportFacts::default(), &snapshot(), &failures);
        assert!(text.contains("WIN (/dev/vda2): Dirty"), "{text}");
        assert!(text.contains("error: it is a dynamic VHD"), "{text}");
        assert!(text.contains("  hint: convert it to a fixed VHD"), "{text}");
        assert!(text.contains("menu: loading E2E: EPERM\n  hint: pick another entry"));
        assert!(text.contains("[  0.100] mounted /dev/vda2"), "{text}");
    }

    #[test]
    fn text_from_a_disk_cannot_reach_the_terminal_as_a_control() {
        let text = render(&ReportFacts::default(), &snapshot(), &[]);
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn the_kernel_log_is_bounded_to_its_newest_lines() {
        let facts = ReportFacts {
            kernel_log: (0..MAX_KERNEL_LINES + 5)
                .map(|i| format!("line {i}"))
                .collect(),
            ..ReportFacts::default()
        };
        let text = render(&facts, &Snapshot::default(), &[]);
        assert!(text.contains("(5 older lines left out)"), "{text}");
        assert!(!text.contains("line 4\n"));
        assert!(text.contains(&format!("line {}\n", MAX_KERNEL_LINES + 4)));
    }

    #[test]
    fn an_empty_section_says_so() {
        let text = render(&ReportFacts::default(), &Snapshot::default(), &[]);
        assert!(text.contains("== block devices ==\n(none)\n"), "{text}");
    }
}
