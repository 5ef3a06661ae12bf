//! `inspect IMAGE`. TODO(skeleton): filled in by the image work.

use super::FileArg;
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct InspectArgs {
    /// A fixed VHD or raw disk image.
    pub image: FileArg,
    #[arg(long)]
    pub json: bool,
}

pub fn inspect(_a: InspectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("inspect is not built yet")
}
