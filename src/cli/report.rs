//! `vhdboot report`: the support bundle as one text file (issue 16, item
//! 3). In the rescue shell it reads what stage 1 left in
//! `/run/vhdboot/state.json` (scan log, timeline, the menu's failures); on
//! an ordinary Linux it scans the disks as `vhdboot scan` does.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::bundle;
use vhdboot::config::Config;
use vhdboot::report::{self, SeenFailure};

#[derive(Args)]
pub struct ReportArgs {
    /// Where to write the report; `-` prints it.
    #[arg(long, short, default_value = report::FILE_NAME)]
    pub out: PathBuf,
}

pub fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let text = match bundle::read_state() {
        Some(state) => {
            let (config, warnings) = bundle::config_in_force();
            let facts = bundle::gather(&config, &warnings, &state.timeline);
            let failures: Vec<SeenFailure> = state
                .failures
                .into_iter()
                .map(|(what, hint)| SeenFailure {
                    what,
                    cause: String::new(),
                    hint,
                })
                .collect();
            report::render(&facts, &state.snapshot, &failures)
        }
        None => {
            let config = Config::default();
            let snapshot = super::scan::scan_devices(config.clone())?;
            let facts = bundle::gather(&config, &[], "(not started by vhdboot: no boot timeline)");
            report::render(&facts, &snapshot, &[])
        }
    };
    if a.out.as_os_str() == "-" {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::write(&a.out, &text).with_context(|| format!("writing {}", a.out.display()))?;
    say!(
        "vhdboot: wrote the report to {} ({} bytes)",
        a.out.display(),
        text.len()
    );
    Ok(ExitCode::SUCCESS)
}
