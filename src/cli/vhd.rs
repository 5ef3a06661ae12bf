//! `raw2vhd` and `vhd info`.
//!
//! raw2vhd appends 512 bytes: the footer is written through a file opened
//! for appending, so no byte of the disk data can be overwritten
//! (shared/design.md, data-safety invariant 4). The one other write is for
//! a grown image whose new tail is a hole (see [`fill_grown_tail`]): zeros
//! go only into the bytes after the old footer, which `truncate` added and
//! which read as zeros, never over the user's data.

use super::FileArg;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::ExitCode;
use vhdboot::image::vhd::{
    self, DiskType, FileFooter, MAX_VHD_SIZE, VhdError, VhdFooter, format_utc, kind_problem,
    next_multiple_of_512, vhd_timestamp,
};
use vhdboot::model::ImageKind;

/// How far back raw2vhd looks for a footer left inside the data by
/// `truncate`. Reading zeros is cheap, but a grown file may hold gigabytes
/// of them; past this the note is simply left out.
const STALE_SCAN: u64 = 256 * 1024 * 1024;

#[derive(Args)]
pub struct Raw2VhdArgs {
    /// The raw disk image to append a footer to.
    pub file: FileArg,
    /// Say what would be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand)]
pub enum VhdCommand {
    /// Show a VHD's footer.
    Info {
        file: FileArg,
        #[arg(long)]
        json: bool,
    },
}

pub fn raw2vhd(a: Raw2VhdArgs) -> anyhow::Result<ExitCode> {
    let path = a.file.as_path();
    let shown = path.display();
    let mut file =
        File::open(path).with_context(|| format!("raw2vhd: cannot open {shown} for reading"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("raw2vhd: cannot stat {shown}"))?;
    if !meta.is_file() {
        bail!("raw2vhd: {shown} is not a regular file; raw2vhd works on image files only");
    }
    let len = meta.len();
    if len == 0 {
        bail!("raw2vhd: {shown} is empty; there is no disk to turn into a VHD");
    }
    refuse_damaged_vhd(&mut file, len, path)?;
    if len % 512 != 0 {
        let next = next_multiple_of_512(len);
        bail!(
            "raw2vhd: {shown} is {len} bytes, not a multiple of 512, so it is not a whole number of sectors; \
             if it is a disk image, pad it with `truncate -s {next} {shown}` (the next multiple of 512) and run raw2vhd again"
        );
    }

    match vhd::read_footer(&mut file, len) {
        Ok(FileFooter::Vhd(f)) => return already_vhd(path, &f),
        Ok(FileFooter::None) => {}
        Err(VhdError::SizeMismatch {
            current_size,
            expected,
            file_size,
        }) => bail!(
            "raw2vhd: {shown} already ends with a fixed-VHD footer, but it says the disk holds {current_size} bytes \
             (a {expected}-byte file) while the file is {file_size} bytes; nothing was written. \
             Check how the file was resized before going on; `vhdboot vhd info {shown}` shows the footer"
        ),
        Err(
            e @ (VhdError::BadChecksum { .. }
            | VhdError::BadVersion { .. }
            | VhdError::UnknownType { .. }),
        ) => bail!(
            "raw2vhd: {shown} ends with something that looks like a VHD footer but is not valid ({e}); \
             nothing was written. If the last 512 bytes are really disk data, this is unusual: check the image"
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("raw2vhd: reading the end of {shown}"));
        }
    }

    // A file with holes (ntfs-3g makes one of `truncate`'s growth) is
    // scanned back to its old footer however far that is: reading a hole
    // costs no disk I/O, and the fill below needs to know where it ends.
    let allocated = meta.blocks().saturating_mul(512);
    let sparse = allocated < len;
    let scan = if sparse { len } else { STALE_SCAN };
    let stale = vhd::find_stale_footer(&mut file, len, scan)
        .with_context(|| format!("raw2vhd: scanning the end of {shown} for an old footer"))?;
    drop(file);
    let grown_tail = match stale {
        Some((offset, _)) if sparse => Some(offset + 512..len),
        _ => None,
    };

    let footer = VhdFooter::new_fixed(len, vhd_timestamp(now_unix()), random_uuid()?)
        .with_context(|| format!("raw2vhd: building the footer for {shown}"))?;
    if len > MAX_VHD_SIZE {
        say_err!(
            "raw2vhd: warning: {shown} is larger than 2040 GiB; Windows and Ventoy refuse VHDs that large"
        );
    }
    if let Some((offset, _)) = stale {
        say!(
            "{shown}: an older VHD footer lies at byte {offset}, inside the data area now \
             (the file was grown after it was written); a fresh footer for the new size will follow the data"
        );
    }

    if sparse && grown_tail.is_none() {
        say_err!(
            "raw2vhd: note: {shown} is sparse (only {allocated} of its {len} bytes are allocated); \
             vhdboot boots only fully allocated files, so copy it onto the host volume with \
             `cp --sparse=never`"
        );
    }

    if a.dry_run {
        if let Some(tail) = &grown_tail {
            say!(
                "{shown}: would write zeros into bytes {}..{} (the grown part, a hole now) \
                 so that the host allocates it",
                tail.start,
                tail.end
            );
        }
        say!(
            "{shown}: would append a 512-byte fixed-VHD footer at byte {len} (dry run: nothing written)"
        );
        print_footer(&footer, len + 512);
        return Ok(ExitCode::SUCCESS);
    }

    if let Some(tail) = grown_tail {
        fill_grown_tail(path, tail, len)?;
        // Holes before the old footer are the user's data's own; they are
        // left alone, and named.
        let allocated = std::fs::metadata(path)
            .with_context(|| format!("raw2vhd: cannot stat {shown}"))?
            .blocks()
            .saturating_mul(512);
        if allocated < len {
            say_err!(
                "raw2vhd: note: {shown} still has holes before the grown part (only {allocated} \
                 of its {len} bytes are allocated); vhdboot boots only fully allocated files, so \
                 make a copy with `cp --sparse=never`"
            );
        }
    }

    let mut out = OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| {
            format!("raw2vhd: cannot open {shown} for appending (is it read-only?)")
        })?;
    // Recheck the size: appending is only right if nothing changed since.
    let now_len = out
        .metadata()
        .with_context(|| format!("raw2vhd: cannot stat {shown}"))?
        .len();
    if now_len != len {
        bail!(
            "raw2vhd: {shown} changed size while raw2vhd ran ({len} then {now_len} bytes); nothing was written, run it again"
        );
    }
    out.write_all(&footer.to_bytes())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("raw2vhd: appending the footer to {shown} failed; check free space, then run `vhdboot vhd info {shown}`"))?;
    drop(out);

    let mut check = File::open(path)
        .with_context(|| format!("raw2vhd: cannot reopen {shown} to check the footer"))?;
    vhd::read_footer(&mut check, len + 512).with_context(|| {
        format!("raw2vhd: the footer just written to {shown} does not read back")
    })?;
    say!("{shown}: appended a fixed-VHD footer; the disk data ({len} bytes) is unchanged");
    print_footer(&footer, len + 512);
    Ok(ExitCode::SUCCESS)
}

/// Writes zeros into `tail`, the part of a grown image after its old
/// footer, when the host filesystem left it a hole.
///
/// Why: `truncate` on ntfs-3g marks the file sparse and allocates nothing
/// for the new part (its `$DATA` gets the sparse flag, and the initialized
/// size, NTFS' valid data length, stays at the old end). vhdboot refuses a
/// sparse image (`discovery::preflight`), and writes into a hole through
/// ntfs3 would have to allocate clusters under the loop device. Writing
/// the zeros allocates the clusters and moves the valid data length to the
/// end; ntfs-3g drops the sparse flag once no hole is left. ntfs3 itself
/// allocates on `truncate` (the file is not sparse, so this never runs
/// there) and zero-fills from the valid data length up to any later write
/// (`ntfs_extend` in fs/ntfs3/file.c), so the footer's own append moves
/// the valid data length to the end.
///
/// What it touches: only `tail`, which `find_stale_footer` has just read
/// as zeros from the old footer to the end of the file; each chunk is read
/// again right before it is written and left alone unless still all zeros.
/// The user's data, up to and including the old footer, is never written.
fn fill_grown_tail(path: &Path, tail: std::ops::Range<u64>, len: u64) -> anyhow::Result<()> {
    const CHUNK: u64 = 1024 * 1024;
    let shown = path.display();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("raw2vhd: cannot open {shown} for writing (is it read-only?)"))?;
    let now_len = file
        .metadata()
        .with_context(|| format!("raw2vhd: cannot stat {shown}"))?
        .len();
    if now_len != len {
        bail!(
            "raw2vhd: {shown} changed size while raw2vhd ran ({len} then {now_len} bytes); nothing was written, run it again"
        );
    }
    let zeros = vec![0u8; CHUNK as usize];
    let mut seen = vec![0u8; CHUNK as usize];
    let mut at = tail.start;
    while at < tail.end {
        let n = usize::try_from((tail.end - at).min(CHUNK)).unwrap_or(0);
        let (seen, zeros) = (
            seen.get_mut(..n).unwrap_or_default(),
            zeros.get(..n).unwrap_or_default(),
        );
        file.read_exact_at(seen, at)
            .with_context(|| format!("raw2vhd: reading {shown} at byte {at}"))?;
        if seen != zeros {
            bail!(
                "raw2vhd: {shown} changed at byte {at} while raw2vhd ran (the grown part is no longer zeros); \
                 the footer was not written, run it again"
            );
        }
        file.write_all_at(zeros, at).with_context(|| {
            format!(
                "raw2vhd: writing zeros into the grown part of {shown} at byte {at} failed \
                 ({} bytes of {} still to allocate); check the host volume's free space, then run raw2vhd again",
                tail.end - at,
                tail.end - tail.start
            )
        })?;
        at += n as u64;
    }
    file.sync_all()
        .with_context(|| format!("raw2vhd: syncing the grown part of {shown}"))?;
    say!(
        "{shown}: the grown part (bytes {}..{}) was a hole; wrote zeros into it so the host volume allocates it",
        tail.start,
        tail.end
    );
    Ok(())
}

/// Refuses a file that `vhd info` recognises as a dynamic or differencing
/// VHD by the footer copy at its start while its end holds no valid
/// footer: a damaged dynamic VHD is no raw disk, and a fixed footer on it
/// would describe its BAT and blocks as disk data.
fn refuse_damaged_vhd(file: &mut File, len: u64, path: &Path) -> anyhow::Result<()> {
    let shown = path.display();
    let Some(copy) = vhd::footer_copy_at_start(file)
        .with_context(|| format!("raw2vhd: reading the start of {shown}"))?
    else {
        return Ok(());
    };
    if matches!(vhd::read_footer(file, len), Ok(FileFooter::Vhd(_))) {
        return Ok(());
    }
    let kind = type_name(copy.disk_type);
    let next = match copy.disk_type {
        DiskType::Dynamic => format!(
            "`vhdboot convert {shown} OUT.vhd` reads it from the copy and writes a fixed VHD"
        ),
        _ => "merge it into a fixed VHD with `qemu-img convert -O vpc -o subformat=fixed`"
            .to_string(),
    };
    bail!(
        "raw2vhd: {shown} is a damaged {kind} VHD (the footer at its end is missing or invalid, \
         the copy at its start is intact; `vhdboot vhd info {shown}` shows it), not a raw disk; \
         nothing was written. {next}"
    )
}

fn already_vhd(path: &Path, f: &VhdFooter) -> anyhow::Result<ExitCode> {
    let shown = path.display();
    match f.disk_type {
        DiskType::Fixed => {
            say!(
                "{shown} is already a fixed VHD ({} bytes of disk data); nothing written",
                f.current_size
            );
            Ok(ExitCode::SUCCESS)
        }
        DiskType::Dynamic | DiskType::Differencing => {
            let kind = f.image_kind();
            let hint = kind_problem(&kind).map(|p| p.hint).unwrap_or_default();
            bail!(
                "raw2vhd: {shown} is already a {} VHD, not a raw image; nothing written. To boot it, {hint}",
                type_name(f.disk_type)
            )
        }
    }
}

fn type_name(t: DiskType) -> &'static str {
    match t {
        DiskType::Fixed => "fixed",
        DiskType::Dynamic => "dynamic",
        DiskType::Differencing => "differencing",
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random (version 4) UUID from the kernel's random source.
fn random_uuid() -> anyhow::Result<[u8; 16]> {
    let mut u = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut u))
        .context("raw2vhd: reading /dev/urandom for the disk's unique id")?;
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    Ok(u)
}

fn print_footer(f: &VhdFooter, file_size: u64) {
    let g = &f.geometry;
    say!("  type:          {}", type_name(f.disk_type));
    say!(
        "  disk size:     {} bytes ({})",
        f.current_size,
        humansize::format_size(f.current_size, humansize::BINARY)
    );
    say!("  original size: {} bytes", f.original_size);
    say!("  file size:     {file_size} bytes");
    say!(
        "  geometry:      {} cylinders, {} heads, {} sectors/track (C*H*S = {} bytes)",
        g.cylinders,
        g.heads,
        g.sectors_per_track,
        g.size_bytes()
    );
    say!("  unique id:     {}", f.uuid);
    say!("  created:       {}", format_utc(f.unix_time()));
    say!(
        "  creator:       \"{}\" version {}.{} on \"{}\"",
        f.creator_app.as_text(),
        f.creator_version >> 16,
        f.creator_version & 0xffff,
        f.creator_os.as_text()
    );
    say!(
        "  saved state:   {}",
        if f.saved_state { "yes" } else { "no" }
    );
    say!("  checksum:      {:#010x}", f.checksum);
}

#[derive(Serialize)]
struct VhdInfo<'a> {
    path: String,
    file_size: u64,
    kind: &'a ImageKind,
    bootable: bool,
    /// Why it cannot boot, with what to do.
    problem: Option<String>,
    footer: Option<&'a VhdFooter>,
}

pub fn run(c: VhdCommand) -> anyhow::Result<ExitCode> {
    match c {
        VhdCommand::Info { file, json } => info(&file, json),
    }
}

fn info(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let shown = path.display();
    let mut file = File::open(path).with_context(|| format!("vhd info: cannot open {shown}"))?;
    let len = file
        .metadata()
        .with_context(|| format!("vhd info: cannot stat {shown}"))?
        .len();
    let footer = match vhd::read_footer(&mut file, len) {
        Ok(FileFooter::Vhd(f)) => Some(f),
        Ok(FileFooter::None) => vhd::footer_copy_at_start(&mut file)
            .with_context(|| format!("vhd info: reading the start of {shown}"))?,
        Err(e @ VhdError::SizeMismatch { .. }) => {
            bail!("vhd info: {shown}: {e}")
        }
        Err(e) => {
            return Err(e).with_context(|| format!("vhd info: reading the footer of {shown}"));
        }
    };
    let Some(footer) = footer else {
        bail!(
            "vhd info: {shown} has no VHD footer (the last 512 bytes do not start with \"conectix\"); \
             if it is a raw disk image, make it a fixed VHD with `vhdboot raw2vhd {shown}`"
        );
    };
    let kind = footer.image_kind();
    let problem = kind_problem(&kind).map(|p| format!("{}; {}", p.what, p.hint));
    if json {
        let info = VhdInfo {
            path: shown.to_string(),
            file_size: len,
            kind: &kind,
            bootable: problem.is_none(),
            problem,
            footer: Some(&footer),
        };
        // JSON escapes control characters itself; its newlines are layout.
        println!(
            "{}",
            serde_json::to_string_pretty(&info).context("vhd info: encoding JSON")?
        );
    } else {
        say!("{shown}: {} VHD", type_name(footer.disk_type));
        print_footer(&footer, len);
        match &problem {
            None => say!(
                "  bootable:      yes (loop device size limit {} bytes)",
                footer.current_size
            ),
            Some(p) => say!("  bootable:      no: {p}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
