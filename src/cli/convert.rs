//! `vhdboot convert IN.vhd OUT.vhd`: a dynamic VHD to a fixed one that
//! vhdboot can boot.
//!
//! IN is only read. OUT is written under a temporary name beside it and
//! renamed at the end, so a failed or interrupted run never leaves a
//! half-written OUT that looks finished; an existing OUT is replaced only
//! with --force, and never when it is IN itself. Blocks that IN does not
//! hold are left as holes in OUT, unless --preallocate asks for every byte
//! to be written.

use super::FileArg;
use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::{self, File, OpenOptions};
use std::io::IsTerminal;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vhdboot::image::dynamic_vhd::DynamicVhd;
use vhdboot::image::vhd::{FOOTER_SIZE, VhdFooter, vhd_timestamp};
use vhdboot::sys::fileinfo::free_bytes;

/// Zero runs shorter than this are written as data: a hole per sector
/// would fragment OUT for nothing.
const HOLE_GRANULE: usize = 64 * 1024;

#[derive(Args)]
pub struct ConvertArgs {
    /// The dynamic VHD to read.
    pub input: FileArg,
    /// The fixed VHD to write.
    pub output: FileArg,
    /// Replace OUT if it exists (never IN itself).
    #[arg(long)]
    pub force: bool,
    /// Write OUT fully allocated, its empty blocks as zeros, so that it can
    /// be written straight onto the NTFS or exFAT volume vhdboot boots it
    /// from (vhdboot refuses sparse images). The default is a sparse OUT:
    /// quicker, and only as large on disk as IN's data, for a disk of a
    /// build machine; copy it to the host volume with `cp --sparse=never`.
    #[arg(long)]
    pub preallocate: bool,
}

pub fn run(a: ConvertArgs) -> anyhow::Result<ExitCode> {
    let (input, output) = (a.input.as_path(), a.output.as_path());
    let (shown_in, shown_out) = (input.display(), output.display());
    let mut file = File::open(input).with_context(|| format!("convert: cannot open {shown_in}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("convert: cannot stat {shown_in}"))?;
    if !meta.is_file() {
        bail!("convert: {shown_in} is not a regular file");
    }
    let vhd = DynamicVhd::open(&mut file, meta.len())
        .with_context(|| format!("convert: {shown_in} cannot be converted"))?;
    if vhd.footer_from_start {
        say_err!(
            "convert: note: {shown_in} has no valid footer at its end; using the copy at its start"
        );
    }

    match fs::metadata(output) {
        Ok(out) if out.dev() == meta.dev() && out.ino() == meta.ino() => {
            bail!("convert: {shown_out} is {shown_in} itself; convert never writes over its input")
        }
        Ok(_) if !a.force => bail!(
            "convert: {shown_out} exists; nothing was written. Choose another name, or add \
             --force to replace it"
        ),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("convert: cannot stat {shown_out}")),
    }

    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let data = if a.preallocate {
        vhd.disk_size
    } else {
        vhd.allocated_bytes()
    };
    let needed = data.saturating_add(FOOTER_SIZE);
    let free = free_bytes(&dir)
        .with_context(|| format!("convert: cannot read the free space of {}", dir.display()))?;
    if free < needed {
        bail!(
            "convert: {} has {} free, but {shown_out} needs {} ({} of data plus the footer); \
             nothing was written. Free some space or write OUT elsewhere",
            dir.display(),
            human(free),
            human(needed),
            human(data)
        );
    }

    let partial = partial_name(output);
    let result = write_fixed(&mut file, &vhd, &partial, (input, output), a.preallocate);
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result?;
    fs::rename(&partial, output).with_context(|| {
        format!(
            "convert: renaming {} to {shown_out} failed",
            partial.display()
        )
    })?;
    say!(
        "{shown_out}: a fixed VHD of {} ({} bytes of disk data), from {shown_in}",
        human(vhd.disk_size),
        vhd.disk_size
    );
    if a.preallocate {
        say!("  it is fully allocated: it can boot where it is written");
    } else if vhd.allocated_bytes() < vhd.disk_size {
        say!(
            "  it is sparse where {shown_in} held no data; vhdboot boots only fully allocated \
             files, so copy it to the NTFS or exFAT volume with `cp --sparse=never` \
             (or convert again with --preallocate)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// OUT's temporary name while it is written: beside it, so the final
/// rename stays on one filesystem.
fn partial_name(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".vhdboot-partial");
    output.with_file_name(name)
}

fn write_fixed(
    file: &mut File,
    vhd: &DynamicVhd,
    partial: &Path,
    (input, output): (&Path, &Path),
    preallocate: bool,
) -> anyhow::Result<()> {
    let shown = output.display();
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(partial)
        .with_context(|| format!("convert: cannot create {}", partial.display()))?;
    let total = vhd.disk_size;
    out.set_len(total + FOOTER_SIZE)
        .with_context(|| format!("convert: cannot size {shown}"))?;

    let progress = Progress::new(total, input, output);
    let mut buf = Vec::new();
    buf.try_reserve_exact(vhd.block_size as usize)
        .context("convert: cannot allocate one block's buffer")?;
    for block in 0..vhd.blocks() {
        let len = vhd.data_len(block) as usize;
        let start = block * vhd.block_size;
        if vhd.is_allocated(block) || preallocate {
            buf.clear();
            buf.resize(len, 0);
            if vhd.is_allocated(block) {
                vhd.read_block(file, block, &mut buf).with_context(|| {
                    format!("convert: reading block {block} of {}", input.display())
                })?;
            }
            for (i, chunk) in buf.chunks(HOLE_GRANULE).enumerate() {
                // Zeros are written too when preallocating: writing them is
                // what allocates on every filesystem, including FUSE ones
                // (ntfs-3g) that have no fallocate.
                if !preallocate && chunk.iter().all(|&b| b == 0) {
                    continue;
                }
                let at = start + (i * HOLE_GRANULE) as u64;
                out.write_all_at(chunk, at).with_context(|| {
                    format!("convert: writing {shown} at byte {at} failed; check the free space")
                })?;
            }
        }
        progress.advance(len as u64);
    }
    let footer = VhdFooter::new_fixed(total, vhd_timestamp(now_unix()), vhd.footer.uuid.0)
        .with_context(|| format!("convert: building the footer of {shown}"))?;
    out.write_all_at(&footer.to_bytes(), total)
        .and_then(|()| out.sync_all())
        .with_context(|| format!("convert: writing the footer of {shown} failed"))?;
    progress.finish();
    Ok(())
}

/// A bar on a terminal; on anything else (a log, a pipe) a plain line at
/// each tenth, which reads well in a file.
enum Progress {
    Bar(ProgressBar),
    Lines {
        total: u64,
        done: std::cell::Cell<u64>,
        said: std::cell::Cell<u64>,
    },
}

impl Progress {
    fn new(total: u64, input: &Path, output: &Path) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style);
            }
            return Progress::Bar(bar);
        }
        say_err!(
            "convert: {} -> {}: {}",
            input.display(),
            output.display(),
            human(total)
        );
        Progress::Lines {
            total,
            done: 0.into(),
            said: 0.into(),
        }
    }

    fn advance(&self, bytes: u64) {
        match self {
            Progress::Bar(bar) => bar.inc(bytes),
            Progress::Lines { total, done, said } => {
                done.set(done.get() + bytes);
                let tenth = done.get().saturating_mul(10) / (*total).max(1);
                if tenth > said.get() {
                    said.set(tenth);
                    eprintln!(
                        "convert: {}% ({} of {})",
                        tenth * 10,
                        human(done.get()),
                        human(*total)
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}

fn human(bytes: u64) -> String {
    humansize::format_size(bytes, humansize::BINARY)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
