//! `raw2vhd` and `vhd info`. TODO(skeleton): filled in by the image work.

use super::FileArg;
use clap::{Args, Subcommand};
use std::process::ExitCode;

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

pub fn raw2vhd(_a: Raw2VhdArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("raw2vhd is not built yet")
}

pub fn run(_c: VhdCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("vhd info is not built yet")
}
