//! `menu --demo`. TODO(skeleton): filled in by the menu work.

use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct MenuArgs {
    /// Use the built-in fixture set instead of scanning.
    #[arg(long)]
    pub demo: bool,
}

pub fn run(_a: MenuArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("menu is not built yet")
}
