//! `scan`. TODO(skeleton): filled in by the boot engine.

use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct ScanArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_a: ScanArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("scan is not built yet")
}
