//! `uki info` and `uki extract`. TODO(skeleton): filled in by the image work.

use super::FileArg;
use clap::Subcommand;
use std::process::ExitCode;

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

pub fn run(_c: UkiCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("uki is not built yet")
}
