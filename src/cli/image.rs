//! `inspect IMAGE`: what stage 1 would see in an image, as text or JSON.

use super::FileArg;
use super::uki::human_size;
use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;
use vhdboot::boot::plan::{PlanError, image_problem};
use vhdboot::image::initrd::{self, ModuleCheck, Presence};
use vhdboot::image::inspect::{Inspection, MountedBoot, Payload, inspect_with, load_payload};
use vhdboot::image::partitions::PartitionKind;
use vhdboot::image::vhd::{FileFooter, VhdFooter, format_utc, read_footer};
use vhdboot::image::window::{CountingReader, ReadCounter};
use vhdboot::image::{bzimage, carry};
use vhdboot::model::{EntrySource, Image, ImageKind, Problem};
use vhdboot::sys::bounded;
use vhdboot::trial::PendingTrial;

#[derive(Args)]
pub struct InspectArgs {
    /// A fixed VHD or raw disk image.
    pub image: FileArg,
    #[arg(long)]
    pub json: bool,
    /// Accept a file without a VHD footer as a raw disk image.
    #[arg(long)]
    pub raw: bool,
    /// Print to stderr how many bytes of the image were read and how long
    /// it took (used by bench/inspect).
    #[arg(long, hide = true)]
    pub stats: bool,
    /// The host filesystem driver the image will be booted from: the
    /// initramfs check looks for `loop` and this module.
    #[arg(long, default_value = "ntfs3", value_parser = ["ntfs3", "exfat"])]
    pub host_fs: String,
    /// Skip reading each entry's initramfs (which can take seconds).
    #[arg(long)]
    pub no_initramfs_check: bool,
}

/// The boot-time initramfs check of one entry, as `inspect` shows it.
#[derive(Serialize)]
struct EntryInitramfs {
    /// The entry's number in the list, from 1.
    entry: usize,
    #[serde(flatten)]
    check: Option<ModuleCheck>,
    /// Why the entry's kernel and initrd could not be read, if they could not.
    error: Option<String>,
}

/// Exit status when the image was read but cannot boot.
const NOT_BOOTABLE: u8 = 2;

#[derive(Serialize)]
struct Report<'a> {
    image: String,
    file_size: u64,
    footer: Option<&'a VhdFooter>,
    bootable: bool,
    initramfs: Vec<EntryInitramfs>,
    /// A trial boot's changes beside the image (`<image>.trial`).
    #[serde(skip_serializing_if = "Option::is_none")]
    trial: Option<PendingTrial>,
    #[serde(flatten)]
    inspection: &'a Inspection,
}

/// Partitions listed in text output. Real disks have a handful; a GPT can
/// declare 8,192 (a hostile one does), which would bury everything else.
const MAX_PARTITIONS_SHOWN: usize = 128;

/// Set in the environment of the child that `inspect_bounded` starts.
const IN_CHILD: &str = "VHDBOOT_BOUNDED_CHILD";

/// The most output the inspecting child may print: text and JSON for the
/// largest entry counts the parsers allow stay far below it.
const MAX_INSPECT_OUTPUT: usize = 64 << 20;

/// `vhdboot inspect` reads an untrusted image the way a boot does (its
/// initramfs check decompresses the initrd), so it runs again as a child of
/// itself under the boot's limits (`load_time`, `load_memory`), and says
/// which limit an image hit instead of hanging or exhausting memory.
pub fn inspect_bounded(a: InspectArgs) -> anyhow::Result<ExitCode> {
    if std::env::var_os(IN_CHILD).is_some() {
        return inspect(a);
    }
    let limits = crate::probe::limits(&vhdboot::config::Config::default().load, MAX_INSPECT_OUTPUT);
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.args(std::env::args_os().skip(1)).env(IN_CHILD, "1");
    let ended = bounded::run_within(cmd, &limits, &[]).map_err(|e| stopped(&a, &e))?;
    std::io::stdout().write_all(&ended.stdout)?;
    std::io::stderr().write_all(ended.stderr.as_bytes())?;
    if let Err(
        e @ (bounded::BoundedError::Cpu { .. }
        | bounded::BoundedError::Memory { .. }
        | bounded::BoundedError::Signal { .. }),
    ) = bounded::classify(ended.status, &ended.stderr, &limits)
    {
        return Err(stopped(&a, &e));
    }
    let code = ended.status.code().unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn stopped(a: &InspectArgs, e: &bounded::BoundedError) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: reading the image stopped: {e}; the image is damaged or built to attack \
         its reader, so stage 1 skips it too; look at it with fsck.vfat or qemu-img on \
         a copy",
        a.image.display()
    )
}

pub fn inspect(a: InspectArgs) -> anyhow::Result<ExitCode> {
    let path = a.image.as_path();
    let started = Instant::now();
    let file = File::open(path).with_context(|| {
        format!(
            "{}: cannot open the image; check the path and permissions",
            path.display()
        )
    })?;
    let file_len = file
        .metadata()
        .with_context(|| format!("{}: cannot read the file's size", path.display()))?
        .len();
    let counter = ReadCounter::new();
    let mut r = CountingReader::new(file, counter.clone());
    // As root, btrfs and xfs roots are read as stage 1 reads them: through
    // a read-only mount in a private mount namespace (`probe::mounted`).
    let mut mounts =
        nix::unistd::geteuid()
            .is_root()
            .then(|| crate::probe::mounted::KernelMounts {
                image: path.to_path_buf(),
            });
    let inspection = inspect_with(
        &mut r,
        file_len,
        a.raw,
        mounts.as_mut().map(|m| m as &mut dyn MountedBoot),
    );
    // The footer was read and checked by inspect; this re-read of 512
    // bytes only fetches its fields for the summary.
    let footer = match read_footer(&mut r, file_len) {
        Ok(FileFooter::Vhd(f)) => Some(f),
        _ => None,
    };
    let elapsed = started.elapsed();
    let mut inspection = inspection;
    let initramfs = if a.no_initramfs_check {
        Vec::new()
    } else {
        check_initramfs(path, &mut inspection, &a.host_fs)?
    };
    let bootable = verdict(path, file_len, &inspection).is_ok();
    let report = Report {
        image: path.display().to_string(),
        file_size: file_len,
        footer: footer.as_ref(),
        bootable,
        initramfs,
        trial: vhdboot::trial::look(path),
        inspection: &inspection,
    };
    if a.json {
        // JSON escapes control characters itself; its newlines are layout.
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report, path);
    }
    if a.stats {
        say_err!(
            "inspect stats: {} bytes read ({}) in {:.1} ms",
            counter.get(),
            human_size(counter.get()),
            elapsed.as_secs_f64() * 1000.0
        );
    }
    Ok(if bootable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_BOOTABLE)
    })
}

/// The judge's verdict on the image, as if it sat on a host that can boot
/// it: `inspect` reads a file, not a host volume.
fn verdict(path: &Path, file_len: u64, inspection: &Inspection) -> Result<u64, PlanError> {
    let image = Image {
        trial: None,
        path: path.display().to_string(),
        file_size: file_len,
        kind: inspection.kind.clone(),
        entries: inspection.entries.clone(),
        problems: inspection.problems.clone(),
    };
    image_problem("the host volume", &image)
}

/// Runs the boot-time initramfs check on every entry, outside the read
/// statistics (it reads whole initrds). A refusal that would stop every
/// entry becomes a blocking problem of the image; one that stops only some
/// entries is a warning, as the others can still boot.
fn check_initramfs(
    path: &Path,
    inspection: &mut Inspection,
    driver: &str,
) -> anyhow::Result<Vec<EntryInitramfs>> {
    let Some(data_size) = inspection.kind.data_size() else {
        return Ok(Vec::new());
    };
    let mut file = File::open(path)
        .with_context(|| format!("{}: cannot open the image again", path.display()))?;
    let mut out = Vec::new();
    let mut refusals = Vec::new();
    for (n, e) in inspection.entries.iter().enumerate() {
        let loaded = match &e.source {
            EntrySource::Mounted {
                partition,
                fs,
                subvol,
                linux,
                initrd,
            } if nix::unistd::geteuid().is_root() => {
                let mut kernel = Vec::new();
                crate::probe::mounted::stream_mounted(
                    path,
                    *partition,
                    (*fs, subvol.as_deref()),
                    linux,
                    initrd,
                    &mut kernel,
                )
                .map(|s| Payload {
                    kernel,
                    initrd: s.initrd,
                })
            }
            other => load_payload(&mut file, data_size, other).map_err(|e| e.to_string()),
        };
        let (check, error, kver) = match loaded {
            Ok(payload) => (
                Some(initrd::check_payload(
                    &payload,
                    e.version.as_deref(),
                    driver,
                )),
                None,
                bzimage::release(&payload.kernel).or_else(|| e.version.clone()),
            ),
            Err(err) => (None, Some(err), None),
        };
        // What the initramfs lacks is looked for in the image's own
        // /lib/modules, as a boot does (`probe::load_into_fds`).
        let image_modules = check
            .as_ref()
            .map(ModuleCheck::wanting)
            .filter(|w| !w.is_empty())
            .map(|wanting| {
                carry::find_image_modules(
                    &mut file,
                    data_size,
                    &e.source,
                    kver.as_deref(),
                    &wanting,
                )
            });
        if let Some(p) = check
            .as_ref()
            .and_then(|c| c.problem_with(image_modules.as_ref()))
        {
            refusals.push((n + 1, e.title.clone(), p));
        }
        out.push(EntryInitramfs {
            entry: n + 1,
            check,
            error,
        });
    }
    let all_blocked =
        refusals.iter().filter(|(_, _, p)| p.blocks_boot).count() == inspection.entries.len();
    for (n, title, p) in refusals {
        inspection.problems.push(Problem {
            what: format!("entry {n} ({title}): {}", p.what),
            hint: p.hint,
            blocks_boot: p.blocks_boot && all_blocked,
        });
    }
    Ok(out)
}

fn presence_text(p: &Presence) -> String {
    match p {
        Presence::File(path) => path.clone(),
        Presence::BuiltIn => "built in".to_string(),
        Presence::Missing => "MISSING".to_string(),
        Presence::Unknown => "unknown".to_string(),
    }
}

fn kind_text(kind: &ImageKind) -> String {
    match kind {
        ImageKind::FixedVhd { data_size } => {
            format!(
                "fixed VHD: {} of disk data, then the 512-byte footer",
                human_size(*data_size)
            )
        }
        ImageKind::DynamicVhd => "dynamic VHD".to_string(),
        ImageKind::DifferencingVhd => "differencing VHD".to_string(),
        ImageKind::Raw { data_size } => format!("raw disk image of {}", human_size(*data_size)),
        ImageKind::Unreadable => "unreadable".to_string(),
    }
}

fn partition_kind_text(kind: PartitionKind) -> &'static str {
    match kind {
        PartitionKind::Esp => "EFI system",
        PartitionKind::Xbootldr => "XBOOTLDR",
        PartitionKind::LinuxRoot => "Linux root (x86-64)",
        PartitionKind::LinuxFilesystem => "Linux filesystem",
        PartitionKind::Other => "other",
    }
}

fn initramfs_text(c: &EntryInitramfs) -> String {
    let Some(check) = &c.check else {
        return format!(
            "not checked: {}",
            c.error.as_deref().unwrap_or("not readable")
        );
    };
    if check.no_initramfs() {
        return "none".to_string();
    }
    let kernel = check.version.as_deref().unwrap_or("unknown kernel");
    let mods: Vec<String> = check
        .modules
        .iter()
        .map(|(m, p)| format!("{m}: {}", presence_text(p)))
        .collect();
    let segs: Vec<&str> = check
        .segments
        .iter()
        .map(|s| s.compression.name())
        .collect();
    let mut line = format!("[{}] for {kernel}: {}", segs.join(" + "), mods.join(", "));
    if let Some(why) = &check.unsure {
        line.push_str(&format!(" (incomplete: {why})"));
    }
    line
}

fn print_text(report: &Report<'_>, path: &Path) {
    let i = report.inspection;
    say!(
        "Image:  {} ({})",
        path.display(),
        human_size(report.file_size)
    );
    say!("Kind:   {}", kind_text(&i.kind));
    if let Some(t) = report.trial {
        say!("Trial:  {}", vhdboot::trial::badge(t));
    }
    if let Some(f) = report.footer {
        say!(
            "Footer: created {} by \"{}\", disk UUID {}",
            format_utc(f.unix_time()),
            f.creator_app.as_text(),
            f.uuid
        );
    }
    if !i.partitions.is_empty() {
        say!("Partitions:");
        say!(
            "  {:>2}  {:<20} {:<20} {:>12} {:>12}  PARTUUID",
            "#",
            "name",
            "type",
            "offset",
            "size"
        );
        for p in i.partitions.iter().take(MAX_PARTITIONS_SHOWN) {
            say!(
                "  {:>2}  {:<20} {:<20} {:>12} {:>12}  {}",
                p.number,
                p.name,
                partition_kind_text(p.kind),
                human_size(p.range.offset),
                human_size(p.range.len),
                p.part_guid
            );
        }
        if let Some(more) = i.partitions.len().checked_sub(MAX_PARTITIONS_SHOWN)
            && more > 0
        {
            say!("  ... and {more} more partition(s); --json lists them all");
        }
    }
    for e in &i.esps {
        let fs = match &e.label {
            Some(l) if !l.is_empty() => format!("FAT, label \"{l}\""),
            Some(_) => "FAT".to_string(),
            None => "not readable as FAT".to_string(),
        };
        say!(
            "{} partition {}: {fs}; {} UKI(s) in /EFI/Linux, {} entry file(s) in /loader/entries",
            partition_kind_text(e.kind),
            e.number,
            e.ukis.len(),
            e.bls_entries.len()
        );
    }
    if i.entries.is_empty() {
        say!("Boot entries: none");
    } else {
        say!("Boot entries:");
    }
    for (n, e) in i.entries.iter().enumerate() {
        say!("  {}. {}", n + 1, e.title);
        let (source, part) = match &e.source {
            EntrySource::Uki { esp, path } => (format!("UKI {path}"), esp),
            EntrySource::Bls { esp, conf, .. } => (format!("Boot Loader Spec entry {conf}"), esp),
            EntrySource::Ext4 {
                partition, linux, ..
            } => (format!("kernel {linux} on ext4"), partition),
            EntrySource::Mounted {
                partition,
                fs,
                linux,
                ..
            } => (format!("kernel {linux} on {}", fs.name()), partition),
        };
        let number = i
            .partitions
            .iter()
            .find(|r| r.range == *part)
            .map_or_else(String::new, |r| format!(" on partition {}", r.number));
        say!("     from:    {source}{number}");
        say!(
            "     version: {}",
            e.version.as_deref().unwrap_or("(unknown)")
        );
        say!(
            "     sizes:   kernel {}, initrd {}",
            human_size(e.kernel_size),
            human_size(e.initrd_size)
        );
        say!("     cmdline: {}", e.cmdline);
        if let Some(c) = report.initramfs.iter().find(|c| c.entry == n + 1) {
            say!("     initramfs: {}", initramfs_text(c));
        }
    }
    if !i.problems.is_empty() {
        say!("Problems:");
        for p in &i.problems {
            let level = if p.blocks_boot { "error" } else { "warning" };
            say!("  {level}: {}", p.what);
            say!("    what to do: {}", p.hint);
        }
    }
    say!(
        "Bootable: {}",
        if report.bootable {
            "yes"
        } else {
            "no (see the problems above)"
        }
    );
}
