//! `uki info` and `uki extract`: look inside a unified kernel image file.

use super::FileArg;
use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use vhdboot::image::bzimage::is_bzimage;
use vhdboot::image::uki::{UkiInfo, UkiSection};

#[derive(Subcommand)]
pub enum UkiCommand {
    /// Show a UKI's sections, os-release, kernel version and cmdline.
    Info {
        file: FileArg,
        #[arg(long)]
        json: bool,
    },
    /// Write the UKI's linux, initrd and cmdline into a folder.
    Extract {
        file: FileArg,
        #[arg(long)]
        out: FileArg,
    },
}

pub fn run(c: UkiCommand) -> anyhow::Result<ExitCode> {
    match c {
        UkiCommand::Info { file, json } => info(&file, json),
        UkiCommand::Extract { file, out } => extract(&file, &out),
    }
}

/// Sizes as people read them ("12.3 MiB").
pub(super) fn human_size(n: u64) -> String {
    humansize::format_size(n, humansize::BINARY)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn open(path: &Path) -> anyhow::Result<(BufReader<File>, UkiInfo)> {
    let file = File::open(path).with_context(|| {
        format!(
            "{}: cannot open the file; check the path and permissions",
            path.display()
        )
    })?;
    let mut r = BufReader::new(file);
    let info = UkiInfo::read(&mut r).with_context(|| {
        format!(
            "{}: reading the UKI's PE headers and sections",
            path.display()
        )
    })?;
    Ok((r, info))
}

#[derive(Serialize)]
struct InfoReport<'a> {
    file: String,
    file_size: u64,
    title: String,
    pretty_name: Option<String>,
    kernel_version: Option<&'a str>,
    cmdline: Option<&'a str>,
    /// None when there is no `.linux` section.
    kernel_is_bzimage: Option<bool>,
    sections: &'a [vhdboot::image::uki::SectionInfo],
    os_release: Option<&'a vhdboot::image::osrelease::OsRelease>,
}

fn info(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (mut r, info) = open(path)?;
    let bzimage = match info.section(UkiSection::Linux) {
        Some(_) => Some(is_bzimage(&info.read_kernel_prefix(&mut r).with_context(
            || {
                format!(
                    "{}: reading the start of the .linux section",
                    path.display()
                )
            },
        )?)),
        None => None,
    };
    let report = InfoReport {
        file: path.display().to_string(),
        file_size: info.file_len,
        title: info.title(&file_name(path)),
        pretty_name: info.os_release.as_ref().and_then(|o| o.display_name()),
        kernel_version: info.version(),
        cmdline: info.cmdline.as_deref(),
        kernel_is_bzimage: bzimage,
        sections: &info.sections,
        os_release: info.os_release.as_ref(),
    };
    if json {
        // JSON escapes control characters itself; its newlines are layout.
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "File:           {} ({})",
        report.file,
        human_size(report.file_size)
    );
    say!("Title:          {}", report.title);
    say!(
        "OS:             {}",
        report
            .pretty_name
            .as_deref()
            .unwrap_or("(no .osrel section)")
    );
    say!(
        "Kernel version: {}",
        report.kernel_version.unwrap_or("(no .uname section)")
    );
    say!(
        "Command line:   {}",
        report.cmdline.unwrap_or("(no .cmdline section)")
    );
    let kernel = match bzimage {
        Some(true) => format!("bzImage, {}", human_size(info.kernel_size())),
        Some(false) => {
            "not a bzImage (no HdrS magic at 0x202); kexec will likely refuse it".to_string()
        }
        None => "missing: no .linux section, so this UKI cannot boot".to_string(),
    };
    say!("Kernel:         {kernel}");
    say!("Sections:");
    for s in &info.sections {
        say!(
            "  {:<10} {:>12}  at {:#x}",
            s.name,
            human_size(s.size),
            s.file_offset
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn extract(path: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let (mut r, info) = open(path)?;
    info.require(UkiSection::Linux)
        .with_context(|| format!("{}: nothing to extract", path.display()))?;
    std::fs::create_dir_all(out).with_context(|| {
        format!(
            "{}: cannot create the output folder; choose another --out",
            out.display()
        )
    })?;
    let copy = |r: &mut BufReader<File>, section: UkiSection, name: &str| -> anyhow::Result<u64> {
        let dest = out.join(name);
        let file = File::create(&dest)
            .with_context(|| format!("{}: cannot create the file", dest.display()))?;
        let mut w = BufWriter::new(file);
        let n = info.copy_section(r, section, &mut w).with_context(|| {
            format!(
                "{}: copying section {section} to {}",
                path.display(),
                dest.display()
            )
        })?;
        w.flush()
            .with_context(|| format!("{}: writing failed; check free space", dest.display()))?;
        say!("{}: {} ({section})", dest.display(), human_size(n));
        Ok(n)
    };
    copy(&mut r, UkiSection::Linux, "linux")?;
    if info.section(UkiSection::Initrd).is_some() {
        copy(&mut r, UkiSection::Initrd, "initrd")?;
    } else {
        say!("(no .initrd section; no initrd written)");
    }
    let cmdline = info.cmdline.clone().unwrap_or_default();
    let dest = out.join("cmdline");
    std::fs::write(&dest, cmdline.as_bytes()).with_context(|| {
        format!(
            "{}: cannot write the file; check free space",
            dest.display()
        )
    })?;
    say!("{}: {cmdline:?}", dest.display());
    Ok(ExitCode::SUCCESS)
}
